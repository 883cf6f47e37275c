//! Property tests of the static call-graph importers: a random program
//! graph written in each analyser's format is detected by content and read
//! back exactly; arbitrary or cut-short input gives an error naming the
//! file, never a panic.

use std::collections::BTreeSet;

use proptest::prelude::*;
use tracemerge_sources::{from_reader, Options, Record};

fn options() -> Options {
    Options {
        artifact: Some("prog".into()),
        ..Options::default()
    }
}

/// Nodes and edges of an imported graph.
type Graph = (BTreeSet<String>, BTreeSet<(String, String)>);

/// Imports `text` (detected by content) into its graph record.
fn import(name: &str, text: &str) -> Result<Graph, String> {
    let mut stream = from_reader(
        name,
        std::io::Cursor::new(text.as_bytes().to_vec()),
        &options(),
    )
    .map_err(|e| e.to_string())?;
    let first = stream
        .next()
        .ok_or("no record")?
        .map_err(|e| e.to_string())?;
    assert!(stream.next().is_none(), "one program, one record");
    let Record::Graph(g) = first.1 else {
        return Err(format!("not a graph: {:?}", first.1));
    };
    assert_eq!(g.artifact, "prog");
    Ok((
        g.nodes.into_iter().collect(),
        g.edges.into_iter().map(|e| (e.caller, e.callee)).collect(),
    ))
}

fn vcg(nodes: &[String], edges: &[(String, String)]) -> String {
    let mut s = String::from("graph: { title: \"p.c\"\n");
    for n in nodes {
        s += &format!("node: {{ title: \"{n}\" label: \"{n}\\np.c:1:1\" }}\n");
    }
    for (a, b) in edges {
        s += &format!("edge: {{ sourcename: \"{a}\" targetname: \"{b}\" label: \"p.c:2:3\" }}\n");
    }
    s + "}\n"
}

fn dot(nodes: &[String], edges: &[(String, String)]) -> String {
    let id = |n: &String| {
        format!(
            "Node0x{:x}",
            nodes.iter().position(|m| m == n).unwrap() + 16
        )
    };
    let mut s = String::from("digraph \"Call graph: p.ll\" {\n\tlabel=\"Call graph: p.ll\";\n\n");
    for n in nodes {
        s += &format!("\t{} [shape=record,label=\"{{{n}}}\"];\n", id(n));
    }
    for (a, b) in edges {
        s += &format!("\t{} -> {};\n", id(a), id(b));
    }
    s + "}\n"
}

fn llvm_text(nodes: &[String], edges: &[(String, String)]) -> String {
    let mut s = String::from("Call graph node <<null function>><<0x1>>  #uses=0\n");
    for n in nodes {
        s += &format!("  CS<None> calls function '{n}'\n");
    }
    for n in nodes {
        s += &format!("\nCall graph node for function: '{n}'<<0x2>>  #uses=1\n");
        for (_, b) in edges.iter().filter(|(a, _)| a == n) {
            s += &format!("  CS<0x3> calls function '{b}'\n");
        }
    }
    s
}

fn go_digraph(edges: &[(String, String)]) -> String {
    edges
        .iter()
        .map(|(a, b)| format!("\"pkg.{a}\" \"pkg.{b}\"\n"))
        .collect()
}

fn pycg(nodes: &[String], edges: &[(String, String)]) -> String {
    let map: std::collections::BTreeMap<&String, Vec<&String>> = nodes
        .iter()
        .map(|n| {
            (
                n,
                edges
                    .iter()
                    .filter(|(a, _)| a == n)
                    .map(|(_, b)| b)
                    .collect(),
            )
        })
        .collect();
    serde_json::to_string(&map).unwrap()
}

/// A small program graph: names `f0`, `f_1`, … and edges among them.
fn program() -> impl Strategy<Value = (Vec<String>, Vec<(String, String)>)> {
    (1usize..12).prop_flat_map(|n| {
        let nodes: Vec<String> = (0..n)
            .map(|i| {
                if i % 2 == 0 {
                    format!("f{i}")
                } else {
                    format!("f_{i}")
                }
            })
            .collect();
        let pairs = proptest::collection::btree_set((0..n, 0..n), 1..25);
        (Just(nodes), pairs).prop_map(|(nodes, pairs)| {
            let edges = pairs
                .into_iter()
                .map(|(a, b)| (nodes[a].clone(), nodes[b].clone()))
                .collect();
            (nodes, edges)
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn every_format_reads_back_exactly((nodes, edges) in program()) {
        let want_nodes: BTreeSet<String> = nodes.iter().cloned().collect();
        let want_edges: BTreeSet<(String, String)> = edges.iter().cloned().collect();
        for (name, text) in [
            ("p.ci", vcg(&nodes, &edges)),
            ("p.dot", dot(&nodes, &edges)),
            ("p.txt", llvm_text(&nodes, &edges)),
            ("p.json", pycg(&nodes, &edges)),
        ] {
            let (n, e) = import(name, &text).map_err(|e| TestCaseError::fail(format!("{name}: {e}\n{text}")))?;
            prop_assert_eq!(&n, &want_nodes, "{}", name);
            prop_assert_eq!(&e, &want_edges, "{}", name);
        }
        // Go names carry a package; only functions with an edge appear.
        let (n, e) = import("go.txt", &go_digraph(&edges)).map_err(TestCaseError::fail)?;
        let go_edges: BTreeSet<(String, String)> = edges.iter().map(|(a, b)| (format!("pkg.{a}"), format!("pkg.{b}"))).collect();
        prop_assert_eq!(&e, &go_edges);
        prop_assert_eq!(n.len(), go_edges.iter().flat_map(|(a, b)| [a, b]).collect::<BTreeSet<_>>().len());
    }

    #[test]
    fn cut_short_input_is_an_error_or_a_smaller_graph((nodes, edges) in program(), cut in 0.0f64..1.0) {
        for (name, text) in [
            ("p.ci", vcg(&nodes, &edges)),
            ("p.dot", dot(&nodes, &edges)),
            ("p.txt", llvm_text(&nodes, &edges)),
            ("p.json", pycg(&nodes, &edges)),
        ] {
            let mut at = ((text.len() as f64) * cut) as usize;
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            match import(name, &text[..at]) {
                Ok((_, e)) => {
                    let all: BTreeSet<(String, String)> = edges.iter().cloned().collect();
                    prop_assert!(e.is_subset(&all), "{}: cut at {} invented edges", name, at);
                }
                Err(message) => prop_assert!(message.contains(name) || message.contains("<"), "{}: {}", name, message),
            }
        }
    }

    #[test]
    fn arbitrary_text_never_panics(lines in proptest::collection::vec("[ -~]{0,40}", 0..8), head in 0usize..5) {
        let heads = ["graph: { title: \"x\"\n", "digraph \"Call graph: x\" {\n", "Call graph node <<null function>>\n", "\"a.b\" \"c.d\"\n", "{\"a\": [\"b\"]"];
        let text = format!("{}{}", heads[head], lines.join("\n"));
        if let Err(message) = import("junk", &text) {
            prop_assert!(message.starts_with("junk"), "{}", message);
        }
    }
}
