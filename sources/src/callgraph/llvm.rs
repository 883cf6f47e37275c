//! LLVM's call graphs, from `opt -passes=dot-callgraph` (a Graphviz file
//! per module) and `opt -passes=print-callgraph` (text on stderr).
//!
//! In both, LLVM's *external node* (no function) stands for code outside
//! the module: an edge from it is not a call, an edge to it from a call
//! site is an indirect call (or a call into unknown code), counted as the
//! caller's indirect call site.

use std::collections::BTreeMap;
use std::io::BufRead;

use super::{numbered_lines, preview, quoted, ImportError, ProgramGraph};

/// The label LLVM's dot printer gives a node without a function.
const EXTERNAL_LABEL: &str = "external node";

/// `print-callgraph` text:
///
/// ```text
/// Call graph node <<null function>><<0x55…>>  #uses=0
///   CS<None> calls function 'main'
/// Call graph node for function: 'main'<<0x55…>>  #uses=1
///   CS<0x55…> calls function 'twice'
///   CS<0x55…> calls external node
/// ```
pub(crate) fn read_text(
    graph: &mut ProgramGraph,
    file: &str,
    reader: impl BufRead,
) -> Result<(), ImportError> {
    // None inside the null function's block: its edges are not calls.
    let mut current: Option<Option<String>> = None;
    for line in numbered_lines(file, reader) {
        let (number, text) = line?;
        let bad = |what: String| ImportError::new(file, number, what);
        let trimmed = text.trim();
        if trimmed.is_empty() {
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix("Call graph node") {
            let rest = rest.trim_start();
            if rest.starts_with("<<null function>>") {
                current = Some(None);
            } else if let Some(named) = rest.strip_prefix("for function: ") {
                let name = quoted_name(named).map_err(bad)?;
                graph.function(&name, &name, None);
                current = Some(Some(name));
            } else {
                return Err(bad(format!("unknown call graph node {:?}", preview(rest))));
            }
            continue;
        }
        let Some(site) = trimmed.strip_prefix("CS<") else {
            return Err(bad(format!(
                "not a print-callgraph line: {:?}",
                preview(trimmed)
            )));
        };
        let caller = match &current {
            None => return Err(bad("a call site before any `Call graph node`".into())),
            Some(caller) => caller,
        };
        let (address, what) = site
            .split_once('>')
            .ok_or_else(|| bad(format!("unterminated call site {:?}", preview(trimmed))))?;
        let what = what.trim();
        if what == "calls external node" {
            // `CS<None>` is a declaration's "may call anything", not a site.
            if let (Some(caller), false) = (caller, address == "None") {
                graph.indirect_call(caller);
            }
        } else if let Some(callee) = what.strip_prefix("calls function ") {
            let callee = quoted_name(callee).map_err(bad)?;
            if let Some(caller) = caller {
                graph.edge(caller, &callee);
            } else {
                graph.function(&callee, &callee, None);
            }
        } else {
            return Err(bad(format!("unknown call site {:?}", preview(what))));
        }
    }
    Ok(())
}

/// `'name'` possibly followed by `<<0x…>>` and `#uses=`; the name may
/// itself hold quotes, so it ends at the last quote before `<<` (or the end).
fn quoted_name(s: &str) -> Result<String, String> {
    let body = s
        .strip_prefix('\'')
        .ok_or_else(|| format!("expected a quoted function name at {:?}", preview(s)))?;
    let end_search = body.find("<<").unwrap_or(body.len());
    let end = body[..end_search]
        .rfind('\'')
        .ok_or_else(|| format!("unterminated function name {:?}", preview(s)))?;
    let name = &body[..end];
    if name.is_empty() {
        return Err("empty function name".into());
    }
    Ok(name.to_string())
}

/// `dot-callgraph` output:
///
/// ```text
/// digraph "Call graph: a.ll" {
///     label="Call graph: a.ll";
///     Node0x55b8c5006100 [shape=record,label="{twice}"];
///     Node0x55b8c50065f0 -> Node0x55b8c5006100;
/// }
/// ```
pub(crate) fn read_dot(
    graph: &mut ProgramGraph,
    file: &str,
    reader: impl BufRead,
) -> Result<(), ImportError> {
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    let mut edges: Vec<(u64, String, String)> = Vec::new();
    let mut opened = false;
    let mut closed = false;
    for line in numbered_lines(file, reader) {
        let (number, text) = line?;
        let bad = |what: String| ImportError::new(file, number, what);
        let t = text.trim();
        if t.is_empty() {
            continue;
        }
        if closed {
            return Err(bad("text after the graph's closing `}`".into()));
        }
        if !opened {
            if t.starts_with("digraph ") && t.ends_with('{') {
                opened = true;
                continue;
            }
            return Err(bad(format!(
                "expected `digraph … {{`, found {:?}",
                preview(t)
            )));
        }
        if t == "}" {
            closed = true;
            continue;
        }
        let statement = t
            .strip_suffix(';')
            .ok_or_else(|| bad(format!("statement without `;`: {:?}", preview(t))))?;
        if statement.starts_with("label=") {
            continue;
        }
        if let Some((from, to)) = statement.split_once("->") {
            let from = node_id(from).map_err(bad)?;
            let to = node_id(to.split('[').next().unwrap_or(to)).map_err(bad)?;
            edges.push((number, from, to));
        } else if let Some((id, attrs)) = statement.split_once('[') {
            let id = node_id(id).map_err(bad)?;
            let label = dot_label(attrs).map_err(bad)?;
            labels.insert(id, label);
        } else {
            return Err(bad(format!("unknown dot statement {:?}", preview(t))));
        }
    }
    if !closed {
        return Err(ImportError::new(
            file,
            0,
            "the digraph is never closed (file cut short?)",
        ));
    }
    let function = |id: &str| labels.get(id).filter(|l| *l != EXTERNAL_LABEL);
    for (id, label) in &labels {
        if function(id).is_some() {
            graph.function(label, label, None);
        }
    }
    for (number, from, to) in edges {
        for end in [&from, &to] {
            if !labels.contains_key(end) {
                return Err(ImportError::new(
                    file,
                    number,
                    format!("edge names node {end}, which has no node statement"),
                ));
            }
        }
        match (function(&from), function(&to)) {
            (Some(caller), Some(callee)) => graph.edge(caller, callee),
            (Some(caller), None) => graph.indirect_call(caller),
            (None, _) => {}
        }
    }
    Ok(())
}

/// A node id, without a port (`Node0x…:s0`).
fn node_id(s: &str) -> Result<String, String> {
    let id = s.trim().split(':').next().unwrap_or("").trim();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("bad node id {:?}", preview(s.trim())));
    }
    Ok(id.to_string())
}

/// The function name in `shape=record,label="{name}"]` (record fields in
/// braces, `\{`-style escapes).
fn dot_label(attrs: &str) -> Result<String, String> {
    let at = attrs
        .find("label=")
        .ok_or_else(|| format!("node without a label: {:?}", preview(attrs)))?;
    let (text, _) = quoted(&attrs[at + "label=".len()..])?;
    let inner = text
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or(&text);
    let mut name = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => name.extend(chars.next()),
            '|' => break,
            c => name.push(c),
        }
    }
    if name.is_empty() {
        return Err("node with an empty label".into());
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_edges_and_indirect_sites() {
        let text = "Call graph node <<null function>><<0x1>>  #uses=0\n  CS<None> calls function 'main'\n  CS<None> calls function 'twice'\n\nCall graph node for function: 'main'<<0x2>>  #uses=1\n  CS<0x3> calls function 'twice'\n  CS<0x4> calls function 'printf'\n\nCall graph node for function: 'printf'<<0x5>>  #uses=2\n  CS<None> calls external node\n\nCall graph node for function: 'twice'<<0x6>>  #uses=2\n  CS<0x7> calls external node\n  CS<0x8> calls external node\n";
        let mut g = ProgramGraph::default();
        read_text(&mut g, "cg.txt", text.as_bytes()).unwrap();
        let g = g.finish("a", 0, None).unwrap().graph;
        assert_eq!(g.nodes, ["main", "printf", "twice"]);
        assert_eq!(g.edges.len(), 2);
        assert_eq!(g.indirect_calls.get("twice"), Some(&2));
        assert_eq!(g.indirect_calls.get("printf"), None);
    }

    #[test]
    fn dot_edges_and_external_node() {
        let text = "digraph \"Call graph: a.ll\" {\n\tlabel=\"Call graph: a.ll\";\n\n\tNode0x1 [shape=record,label=\"{external node}\"];\n\tNode0x1 -> Node0x2;\n\tNode0x2 [shape=record,label=\"{main}\"];\n\tNode0x2 -> Node0x3;\n\tNode0x2 -> Node0x1;\n\tNode0x3 [shape=record,label=\"{a\\<b\\>}\"];\n}\n";
        let mut g = ProgramGraph::default();
        read_dot(&mut g, "cg.dot", text.as_bytes()).unwrap();
        let g = g.finish("a", 0, None).unwrap().graph;
        assert_eq!(g.nodes, ["a<b>", "main"]);
        assert_eq!(g.edges.len(), 1);
        assert_eq!(g.indirect_calls.get("main"), Some(&1));
    }

    #[test]
    fn errors_name_the_line() {
        let dot = [
            (
                "digraph \"Call graph\" {\n\tNode0x1 -> Node0x2;\n}\n",
                2,
                "no node statement",
            ),
            (
                "digraph \"Call graph\" {\n\tNode0x1 [shape=record];\n}\n",
                2,
                "without a label",
            ),
            (
                "digraph \"Call graph\" {\n\tNode0x1 [label=\"{a}\"]\n}\n",
                2,
                "without `;`",
            ),
            ("digraph \"Call graph\" {\n", 0, "never closed"),
            ("graph x {\n}\n", 1, "expected `digraph"),
        ];
        for (text, line, what) in dot {
            let err = read_dot(&mut ProgramGraph::default(), "d.dot", text.as_bytes()).unwrap_err();
            assert_eq!(err.line, line, "{text:?}: {err}");
            assert!(err.to_string().contains(what), "{text:?}: {err}");
        }
        let txt = [
            ("  CS<0x1> calls function 'a'\n", 1, "before any"),
            (
                "Call graph node for function: 'a'<<0x1>>\n  CS<0x1> jumps\n",
                2,
                "unknown call site",
            ),
            (
                "Call graph node for function: a<<0x1>>\n",
                1,
                "quoted function name",
            ),
            (
                "Call graph node for function: 'a'<<0x1>>\nhello\n",
                2,
                "not a print-callgraph",
            ),
        ];
        for (text, line, what) in txt {
            let err =
                read_text(&mut ProgramGraph::default(), "t.txt", text.as_bytes()).unwrap_err();
            assert_eq!(err.line, line, "{text:?}: {err}");
            assert!(err.to_string().contains(what), "{text:?}: {err}");
        }
    }
}
