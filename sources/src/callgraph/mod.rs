//! Static call graphs written by other analysers, read into one `graph`
//! record per program.
//!
//! | analyser | how it is recognised | reader |
//! |---|---|---|
//! | gcc `-fcallgraph-info` (`.ci`, VCG) | starts with `graph: {` | [`gcc`] |
//! | LLVM `opt -passes=dot-callgraph` (`.dot`) | starts with `digraph "Call graph` | [`llvm`] |
//! | LLVM `opt -passes=print-callgraph` (text) | starts with `Call graph node` | [`llvm`] |
//! | Go `callgraph` (`-format digraph`, or the default template) | `"a" "b"` or `a\t--static-1:2-->\tb` lines | [`go`] |
//! | PyCG JSON (`{"caller": ["callee", …]}`) | a JSON object of string arrays | [`pycg`] |
//!
//! Several files of one program (gcc writes one `.ci` per translation
//! unit) are one graph: their nodes and edges are united.
//!
//! Names are made to match what the probes report:
//! - C (gcc, LLVM): the plain symbol name. gcc titles a `static` function
//!   `file.c:name`; it becomes `name` when no other function of the
//!   program has that name, and stays `file.c:name` otherwise (an
//!   *ambiguous* name: the probe reports both as `name`; see
//!   [`Imported::ambiguous`]).
//! - Go: the ELF symbol the Go linker writes: `(*pkg.T).M` → `pkg.(*T).M`,
//!   `(pkg.T).M` → `pkg.T.M`, closures `f$1` → `f.func1`, bound methods
//!   `M$bound` → `M-fm`, a dot in the last element of the package path →
//!   `%2e`, and the program's main package (the one package other than
//!   `runtime` with a function `main`) → `main`.
//! - PyCG: its own dotted names, unchanged.

pub mod gcc;
pub mod go;
pub mod llvm;
pub mod pycg;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Read};

use tracemerge_records::{GraphSnapshot, StaticEdge, Time};

/// Which analyser wrote a call graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Analyser {
    GccCi,
    LlvmDot,
    LlvmText,
    GoCallgraph,
    Pycg,
}

impl Analyser {
    pub fn name(self) -> &'static str {
        match self {
            Analyser::GccCi => "gcc -fcallgraph-info (.ci)",
            Analyser::LlvmDot => "LLVM dot-callgraph (.dot)",
            Analyser::LlvmText => "LLVM print-callgraph text",
            Analyser::GoCallgraph => "Go callgraph output",
            Analyser::Pycg => "PyCG JSON",
        }
    }
}

/// Bad call-graph input: the file, the 1-based line (0 when unknown) and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {what}")]
pub struct ImportError {
    pub file: String,
    pub line: u64,
    pub what: String,
}

/// A program's call graph that cannot become a `graph` record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// A qualified id (`file.c:name`) equals another function's plain name.
    #[error("two functions resolve to the same node name")]
    NameClash,
    /// Entrypoints given that are not nodes of the graph.
    #[error("entrypoints not in the call graph: {}", missing.join(", "))]
    MissingEntrypoints { missing: Vec<String> },
}

impl ImportError {
    pub fn new(file: &str, line: u64, what: impl Into<String>) -> ImportError {
        ImportError {
            file: file.to_string(),
            line,
            what: what.into(),
        }
    }
}

/// Recognises a text call graph from the first bytes of an input (leading
/// whitespace already dropped). PyCG, being JSON, is recognised by the
/// JSON scan of `detect`.
pub fn detect_text(prefix: &[u8]) -> Option<Analyser> {
    let first_line = prefix.split(|&b| b == b'\n').next().unwrap_or(prefix);
    let line = String::from_utf8_lossy(first_line);
    let line = line.trim_end_matches('\r');
    if gcc::starts_graph(line) {
        Some(Analyser::GccCi)
    } else if line.starts_with("digraph \"Call graph") {
        Some(Analyser::LlvmDot)
    } else if line.starts_with("Call graph node") {
        Some(Analyser::LlvmText)
    } else if go::parse_line(line).is_ok_and(|edge| edge.is_some()) {
        Some(Analyser::GoCallgraph)
    } else {
        None
    }
}

/// One function as an importer found it.
#[derive(Clone, Debug, Default)]
struct Function {
    /// The name the probes would report (before disambiguation); the id
    /// when the analyser gives none.
    plain: Option<String>,
    module: Option<String>,
}

/// A program's call graph while the files of one program are read.
#[derive(Debug, Default)]
pub struct ProgramGraph {
    /// Function id as the analyser names it (gcc: `file.c:name` for static
    /// functions) → what is known of it.
    functions: BTreeMap<String, Function>,
    edges: BTreeSet<(String, String)>,
    indirect: BTreeMap<String, u64>,
}

impl ProgramGraph {
    /// Adds (or completes) a function; `plain` is its probe name.
    pub(crate) fn function(&mut self, id: &str, plain: &str, module: Option<&str>) {
        let f = self.functions.entry(id.to_string()).or_default();
        if f.plain.is_none() {
            f.plain = Some(plain.to_string());
        }
        if f.module.is_none() {
            f.module = module.map(str::to_string);
        }
    }

    /// Adds a call edge between two function ids (added as functions if new).
    pub(crate) fn edge(&mut self, caller: &str, callee: &str) {
        for id in [caller, callee] {
            self.functions.entry(id.to_string()).or_default();
        }
        self.edges.insert((caller.to_string(), callee.to_string()));
    }

    /// Counts one indirect call site of `caller`.
    pub(crate) fn indirect_call(&mut self, caller: &str) {
        self.functions.entry(caller.to_string()).or_default();
        *self.indirect.entry(caller.to_string()).or_default() += 1;
    }

    /// Reads one file of the program.
    pub fn read(
        &mut self,
        analyser: Analyser,
        file: &str,
        reader: impl Read,
    ) -> Result<(), ImportError> {
        let reader = std::io::BufReader::new(reader);
        match analyser {
            Analyser::GccCi => gcc::read(self, file, reader),
            Analyser::LlvmDot => llvm::read_dot(self, file, reader),
            Analyser::LlvmText => llvm::read_text(self, file, reader),
            Analyser::GoCallgraph => go::read(self, file, reader),
            Analyser::Pycg => pycg::read(self, file, reader),
        }
    }

    /// Settles the names and builds the `graph` record. `entrypoints`: the
    /// given ones (each must be a node), else `main` or `main.main` when
    /// present, else every function without a caller.
    pub fn finish(
        self,
        artifact: &str,
        at: Time,
        entrypoints: Option<&[String]>,
    ) -> Result<Imported, GraphError> {
        let plain_of = |id: &'_ str, f: &'_ Function| -> String {
            f.plain.clone().unwrap_or_else(|| id.to_string())
        };
        let plains: BTreeMap<&str, String> = self
            .functions
            .iter()
            .map(|(id, f)| (id.as_str(), plain_of(id, f)))
            .collect();
        let mut by_plain: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (id, plain) in &plains {
            by_plain.entry(plain.as_str()).or_default().push(id);
        }
        let mut ambiguous = Vec::new();
        let name_of: BTreeMap<&str, &str> = plains
            .iter()
            .map(|(id, plain)| {
                let unique = by_plain[plain.as_str()].len() == 1;
                (*id, if unique { plain.as_str() } else { *id })
            })
            .collect();
        for (plain, ids) in &by_plain {
            if ids.len() > 1 {
                ambiguous.push(plain.to_string());
            }
        }
        let mut nodes: Vec<String> = name_of.values().map(|n| n.to_string()).collect();
        nodes.sort();
        let node_set: BTreeSet<&str> = name_of.values().copied().collect();
        if node_set.len() != nodes.len() {
            // A qualified id equal to another function's plain name.
            return Err(GraphError::NameClash);
        }
        let named_edges: BTreeSet<(&str, &str)> = self
            .edges
            .iter()
            .map(|(a, b)| (name_of[a.as_str()], name_of[b.as_str()]))
            .collect();
        let edges = named_edges
            .into_iter()
            .map(|(a, b)| StaticEdge::new(a, b))
            .collect::<Vec<_>>();
        let entrypoints = match entrypoints {
            Some(given) => {
                let missing: Vec<String> = given
                    .iter()
                    .filter(|e| !node_set.contains(e.as_str()))
                    .cloned()
                    .collect();
                if !missing.is_empty() {
                    return Err(GraphError::MissingEntrypoints { missing });
                }
                given.to_vec()
            }
            None => default_entrypoints(&node_set, &edges),
        };
        let modules = self
            .functions
            .iter()
            .filter_map(|(id, f)| Some((name_of[id.as_str()].to_string(), f.module.clone()?)))
            .collect();
        let indirect_calls = self
            .indirect
            .iter()
            .map(|(id, n)| (name_of[id.as_str()].to_string(), *n))
            .collect();
        Ok(Imported {
            graph: GraphSnapshot {
                artifact: artifact.to_string(),
                at,
                nodes,
                edges,
                entrypoints,
                indirect_calls,
                modules,
            },
            ambiguous,
        })
    }
}

fn default_entrypoints(nodes: &BTreeSet<&str>, edges: &[StaticEdge]) -> Vec<String> {
    for main in ["main", "main.main"] {
        if nodes.contains(main) {
            return vec![main.to_string()];
        }
    }
    let called: BTreeSet<&str> = edges
        .iter()
        .filter(|e| e.caller != e.callee)
        .map(|e| e.callee.as_str())
        .collect();
    nodes
        .iter()
        .filter(|n| !called.contains(*n))
        .map(|n| n.to_string())
        .collect()
}

/// A program's graph record and what the import noticed.
#[derive(Debug)]
pub struct Imported {
    pub graph: GraphSnapshot,
    /// Plain names shared by several functions (static functions of the
    /// same name in several translation units): their nodes keep the
    /// analyser's qualified names (`file.c:name`).
    pub ambiguous: Vec<String>,
}

/// The lines of a text input, numbered from 1; a line that is not UTF-8
/// is an error naming it.
pub(crate) fn numbered_lines<'a>(
    file: &'a str,
    reader: impl BufRead + 'a,
) -> impl Iterator<Item = Result<(u64, String), ImportError>> + 'a {
    let mut number = 0u64;
    reader.split(b'\n').map(move |line| {
        number += 1;
        let bytes = line.map_err(|e| ImportError::new(file, number, format!("read error: {e}")))?;
        let mut text = String::from_utf8(bytes)
            .map_err(|_| ImportError::new(file, number, "not UTF-8 text"))?;
        if text.ends_with('\r') {
            text.pop();
        }
        Ok((number, text))
    })
}

/// Reads a double-quoted string at the start of `s` (C-style escapes
/// `\"` and `\\`; other escapes are kept as written). Returns the text and
/// the rest after the closing quote.
pub(crate) fn quoted(s: &str) -> Result<(String, &str), String> {
    let body = s
        .strip_prefix('"')
        .ok_or_else(|| format!("expected a quoted string at {:?}", preview(s)))?;
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &body[i + 1..])),
            '\\' => match chars.next() {
                Some((_, '"')) => out.push('"'),
                Some((_, '\\')) => out.push('\\'),
                Some((_, other)) => {
                    out.push('\\');
                    out.push(other);
                }
                None => break,
            },
            c => out.push(c),
        }
    }
    Err(format!("unterminated string {:?}", preview(s)))
}

/// The start of a text, for messages.
pub(crate) fn preview(s: &str) -> String {
    let mut p: String = s.chars().take(60).collect();
    if p.len() < s.len() {
        p.push('…');
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_names_are_plain_unless_shared() {
        let mut g = ProgramGraph::default();
        g.function("a.c:helper", "helper", Some("a.c"));
        g.function("b.c:helper", "helper", Some("b.c"));
        g.function("c.c:only", "only", Some("c.c"));
        g.edge("main", "a.c:helper");
        g.edge("main", "c.c:only");
        let imported = g.finish("p", 0, None).unwrap();
        assert_eq!(imported.ambiguous, vec!["helper".to_string()]);
        assert_eq!(
            imported.graph.nodes,
            vec!["a.c:helper", "b.c:helper", "only", "main"]
                .into_iter()
                .map(String::from)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
        );
        assert_eq!(imported.graph.entrypoints, vec!["main".to_string()]);
        assert_eq!(imported.graph.modules["only"], "c.c");
    }

    #[test]
    fn entrypoints_must_be_nodes() {
        let mut g = ProgramGraph::default();
        g.edge("a", "b");
        let err = g.finish("p", 0, Some(&["zz".to_string()])).unwrap_err();
        assert_eq!(
            err,
            GraphError::MissingEntrypoints {
                missing: vec!["zz".into()]
            }
        );
        assert!(err.to_string().contains("zz"), "{err}");
        let mut g = ProgramGraph::default();
        g.edge("a", "b");
        g.edge("c", "b");
        assert_eq!(
            g.finish("p", 0, None).unwrap().graph.entrypoints,
            ["a", "c"]
        );
    }

    #[test]
    fn quoted_strings() {
        assert_eq!(quoted(r#""a\"b" rest"#).unwrap(), ("a\"b".into(), " rest"));
        assert_eq!(quoted(r#""x\ny""#).unwrap().0, "x\\ny");
        assert!(quoted(r#""open"#).is_err());
        assert!(quoted("bare").is_err());
    }
}
