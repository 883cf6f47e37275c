//! gcc `-fcallgraph-info` output: one VCG file (`.ci`) per translation
//! unit, one statement per line:
//!
//! ```text
//! graph: { title: "a.c"
//! node: { title: "a.c:helper" label: "helper\na.c:2:12" }
//! node: { title: "printf" label: "printf\n/usr/include/stdio.h:356:12" shape : ellipse }
//! edge: { sourcename: "main" targetname: "a.c:helper" label: "a.c:5:50" }
//! edge: { sourcename: "twice" targetname: "__indirect_call" label: "a.c:3:42" }
//! }
//! ```
//!
//! A node without `shape` is defined in this unit (its label's second line
//! is where); `shape : ellipse` marks one only declared. Edges to the
//! `__indirect_call` placeholder are the caller's indirect call sites.

use std::io::BufRead;

use super::{numbered_lines, preview, quoted, ImportError, ProgramGraph};

/// gcc's name for the target of a call through a pointer.
const INDIRECT_PLACEHOLDER: &str = "__indirect_call";

#[derive(Debug, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Colon,
    Open,
    Close,
}

fn tokens(line: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut rest = line.trim_start();
    while !rest.is_empty() {
        let c = rest.chars().next().unwrap_or(' ');
        rest = match c {
            ':' => {
                out.push(Token::Colon);
                &rest[1..]
            }
            '{' => {
                out.push(Token::Open);
                &rest[1..]
            }
            '}' => {
                out.push(Token::Close);
                &rest[1..]
            }
            '"' => {
                let (text, after) = quoted(rest)?;
                out.push(Token::Text(text));
                after
            }
            c if c.is_ascii_alphanumeric() || c == '_' => {
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                    .unwrap_or(rest.len());
                out.push(Token::Word(rest[..end].to_string()));
                &rest[end..]
            }
            _ => return Err(format!("unexpected character {c:?} at {:?}", preview(rest))),
        }
        .trim_start();
    }
    Ok(out)
}

/// True when a line opens a VCG graph (`graph: {`).
pub(crate) fn starts_graph(line: &str) -> bool {
    matches!(
        tokens(line).as_deref(),
        Ok([Token::Word(w), Token::Colon, Token::Open, ..]) if w == "graph"
    )
}

/// The `name: value` pairs of a statement, and whether it ends with `}`.
fn attributes(tokens: &[Token]) -> Result<(Vec<(String, String)>, bool), String> {
    let mut attrs = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i..] {
            [Token::Close] => return Ok((attrs, true)),
            [Token::Word(name), Token::Colon, Token::Text(value) | Token::Word(value), ..] => {
                attrs.push((name.clone(), value.clone()));
                i += 3;
            }
            _ => return Err(format!("expected `name: value` at token {}", i + 1)),
        }
    }
    Ok((attrs, false))
}

fn attribute<'a>(attrs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

pub(crate) fn read(
    graph: &mut ProgramGraph,
    file: &str,
    reader: impl BufRead,
) -> Result<(), ImportError> {
    let mut open_graph: Option<u64> = None;
    let mut graphs = 0;
    for line in numbered_lines(file, reader) {
        let (number, text) = line?;
        let bad = |what: String| ImportError::new(file, number, what);
        let toks = tokens(&text).map_err(bad)?;
        match toks.as_slice() {
            [] => {}
            [Token::Close] => {
                if open_graph.take().is_none() {
                    return Err(bad("`}` closes no graph".into()));
                }
            }
            [Token::Word(kind), Token::Colon, Token::Open, rest @ ..] => {
                let (attrs, closed) = attributes(rest).map_err(bad)?;
                match kind.as_str() {
                    "graph" => {
                        if open_graph.is_some() {
                            return Err(bad("a graph inside a graph".into()));
                        }
                        graphs += 1;
                        if !closed {
                            open_graph = Some(number);
                        }
                    }
                    "node" | "edge" if open_graph.is_none() => {
                        return Err(bad(format!("{kind} outside a graph")));
                    }
                    _ if !closed => return Err(bad(format!("{kind}: missing closing `}}`"))),
                    "node" => node(graph, &attrs).map_err(bad)?,
                    "edge" => edge(graph, &attrs).map_err(bad)?,
                    other => return Err(bad(format!("unknown VCG statement `{other}`"))),
                }
            }
            _ => return Err(bad(format!("not a VCG statement: {:?}", preview(&text)))),
        }
    }
    if let Some(opened) = open_graph {
        return Err(ImportError::new(
            file,
            opened,
            "the graph opened here is never closed (file cut short?)",
        ));
    }
    if graphs == 0 {
        return Err(ImportError::new(file, 1, "no `graph: {` in the file"));
    }
    Ok(())
}

fn node(graph: &mut ProgramGraph, attrs: &[(String, String)]) -> Result<(), String> {
    let title = attribute(attrs, "title").ok_or("node without a title")?;
    if title == INDIRECT_PLACEHOLDER {
        return Ok(());
    }
    if title.is_empty() {
        return Err("node with an empty title".into());
    }
    // The label is `name\nfile:line:col` (escaped newline), then, with
    // `-fcallgraph-info=su,da`, stack and allocation lines.
    let label = attribute(attrs, "label").unwrap_or(title);
    let mut parts = label.split("\\n");
    let plain = parts.next().filter(|p| !p.is_empty()).unwrap_or(title);
    let defined = attribute(attrs, "shape").is_none();
    let file = parts
        .next()
        .filter(|_| defined)
        .and_then(|place| place.rsplitn(3, ':').nth(2));
    graph.function(title, plain, file);
    Ok(())
}

fn edge(graph: &mut ProgramGraph, attrs: &[(String, String)]) -> Result<(), String> {
    let source = attribute(attrs, "sourcename").ok_or("edge without a sourcename")?;
    let target = attribute(attrs, "targetname").ok_or("edge without a targetname")?;
    if source.is_empty() || target.is_empty() {
        return Err("edge with an empty end".into());
    }
    if target == INDIRECT_PLACEHOLDER {
        graph.indirect_call(source);
    } else {
        graph.edge(source, target);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_str(text: &str) -> Result<ProgramGraph, ImportError> {
        let mut g = ProgramGraph::default();
        read(&mut g, "t.ci", text.as_bytes())?;
        Ok(g)
    }

    #[test]
    fn reads_nodes_edges_and_indirect_calls() {
        let text = r#"graph: { title: "a.c"
node: { title: "a.c:helper" label: "helper\na.c:2:12" }
node: { title: "twice" label: "twice\na.c:3:5" }
node: { title: "__indirect_call" label: "Indirect Call Placeholder" shape : ellipse }
edge: { sourcename: "twice" targetname: "__indirect_call" label: "a.c:3:42" }
edge: { sourcename: "twice" targetname: "__indirect_call" label: "a.c:3:45" }
node: { title: "main" label: "main\na.c:5:5" }
edge: { sourcename: "main" targetname: "twice" label: "a.c:5:50" }
node: { title: "printf" label: "printf\n/usr/include/stdio.h:356:12" shape : ellipse }
edge: { sourcename: "main" targetname: "printf" label: "a.c:5:35" }
edge: { sourcename: "main" targetname: "a.c:helper" label: "a.c:5:36" }
}
"#;
        let g = read_str(text).unwrap().finish("a", 0, None).unwrap().graph;
        assert_eq!(g.nodes, ["helper", "main", "printf", "twice"]);
        let edges: Vec<_> = g.edges.iter().map(|e| (&*e.caller, &*e.callee)).collect();
        assert_eq!(
            edges,
            [("main", "helper"), ("main", "printf"), ("main", "twice")]
        );
        assert_eq!(g.indirect_calls["twice"], 2);
        assert_eq!(g.modules["helper"], "a.c");
        assert!(!g.modules.contains_key("printf"), "declared only");
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            (
                "graph: { title: \"a\"\nnode: { label: \"x\" }\n}\n",
                2,
                "without a title",
            ),
            (
                "graph: { title: \"a\"\nedge: { sourcename: \"x\" }\n}\n",
                2,
                "targetname",
            ),
            (
                "graph: { title: \"a\"\nnode: { title: \"x\"\n}\n",
                2,
                "closing",
            ),
            (
                "graph: { title: \"a\"\nnode: { title: \"x }\n",
                2,
                "unterminated",
            ),
            ("graph: { title: \"a\"\n", 1, "never closed"),
            ("graph: { title: \"a\"\n}\n}\n", 3, "closes no graph"),
            (
                "graph: { title: \"a\"\nvertex: { title: \"x\" }\n}\n",
                2,
                "unknown",
            ),
            (
                "graph: { title: \"a\"\n% junk\n}\n",
                2,
                "unexpected character",
            ),
        ];
        for (text, line, what) in cases {
            let err = read_str(text).unwrap_err();
            assert_eq!(err.line, line, "{text:?}: {err}");
            assert!(err.to_string().contains(what), "{text:?}: {err}");
            assert!(err.to_string().starts_with("t.ci:"), "{err}");
        }
    }
}
