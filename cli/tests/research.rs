//! Research mode end to end: static call graphs made by the real tools in
//! the test (gcc, clang + opt, Go's callgraph, PyCG) read by `convert`,
//! `merge` and `eval`; malformed call graphs rejected with file and line.
//! A test whose tool is missing skips with the reason (fails instead under
//! TRACEMERGE_REQUIRE_ALL=1; .ci/setup.d installs the tools).

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{json, ok, run_ok, scratch, tracemerge};
use tracemerge_skip::skip;

/// True when `program args…` runs and exits 0.
fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs a tool in `dir`, asserting success; returns its stdout and stderr.
fn tool(dir: &Path, program: &str, args: &[&str]) -> (String, String) {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The one `graph` record `convert` made of `inputs`.
fn convert_graph(dir: &Path, inputs: &[&Path], extra: &[&str]) -> serde_json::Value {
    let out = dir.join("graph.ndjson");
    let mut args = vec!["convert", "-o", s(&out)];
    args.extend(extra);
    args.extend(inputs.iter().map(|p| s(p)));
    ok(&tracemerge(&args));
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    let graph: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(graph["type"], "graph");
    graph
}

fn edges(graph: &serde_json::Value) -> Vec<(String, String)> {
    graph["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e[0].as_str().unwrap().to_string(),
                e[1].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn has_edge(graph: &serde_json::Value, a: &str, b: &str) -> bool {
    edges(graph).iter().any(|(x, y)| x == a && y == b)
}

const C_MAIN: &str = r#"#include <stdio.h>
static int helper(int x) { return x * 2; }
int twice(int (*f)(int), int x) { return f(f(x)); }
extern int other(int);
static int unused(int x) { return x; }
int main(int argc, char **argv) { (void)argv; printf("%d\n", twice(helper, argc) + other(argc)); return 0; }
int (*keep)(int) = unused;
"#;
const C_OTHER: &str = r#"static int helper(int x) { return x + 1; }
int other(int x) { return helper(x); }
"#;

fn c_sources(dir: &Path) {
    std::fs::write(dir.join("a.c"), C_MAIN).unwrap();
    std::fs::write(dir.join("b.c"), C_OTHER).unwrap();
}

#[test]
fn gcc_callgraph_info_is_one_program_and_evaluates() {
    if !runs("gcc", &["--version"]) {
        return skip("gcc_callgraph_info", "gcc is not installed");
    }
    let dir = scratch("research-gcc");
    c_sources(&dir);
    tool(
        &dir,
        "gcc",
        &["-O0", "-fcallgraph-info", "-c", "a.c", "b.c"],
    );
    let (a, b) = (dir.join("a.ci"), dir.join("b.ci"));
    let graph = convert_graph(&dir, &[&a, &b], &["--artifact", "prog"]);
    assert_eq!(graph["artifact"], "prog");
    assert_eq!(graph["entrypoints"], serde_json::json!(["main"]));
    // Two static `helper`s: ambiguous, kept qualified; `other` from both units is one node.
    let nodes: Vec<&str> = graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    for n in [
        "a.c:helper",
        "b.c:helper",
        "main",
        "twice",
        "other",
        "printf",
        "unused",
    ] {
        assert!(nodes.contains(&n), "{n} missing from {nodes:?}");
    }
    assert!(!nodes.contains(&"__indirect_call"));
    assert!(has_edge(&graph, "main", "twice"));
    assert!(has_edge(&graph, "main", "other"));
    assert!(has_edge(&graph, "other", "b.c:helper"));
    assert_eq!(graph["indirect_calls"]["twice"], 2);
    assert_eq!(graph["modules"]["twice"], "a.c");

    // What a probe of the program would see (named as it names them).
    let runtime = dir.join("runtime.ndjson");
    std::fs::write(
        &runtime,
        [
            r#"{"type":"targets","artifact":"prog","at":0,"symbols":["unused","a.c:helper"]}"#,
            r#"{"type":"edge","artifact":"prog","caller":"main","callee":"twice","at":1,"hits":1}"#,
            r#"{"type":"edge","artifact":"prog","caller":"twice","callee":"a.c:helper","at":1,"hits":2}"#,
            r#"{"type":"edge","artifact":"prog","caller":"main","callee":"other","at":1,"hits":1}"#,
            r#"{"type":"edge","artifact":"prog","caller":"other","callee":"helper","at":1,"hits":1}"#,
            r#"{"type":"edge","artifact":"prog","caller":"libc.so.6!__libc_start_call_main","callee":"main","at":1}"#,
            r#"{"type":"watermark","at":2}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let out_json = dir.join("eval.json");
    let out_html = dir.join("eval.html");
    let run = ok(&tracemerge(&[
        "eval",
        s(&a),
        s(&b),
        s(&runtime),
        "--artifact",
        "prog",
        "-o",
        s(&out_json),
        "--html",
        s(&out_html),
    ]))
    .clone();
    assert!(String::from_utf8_lossy(&run.stderr).contains("recall"));
    let eval: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out_json).unwrap()).unwrap();
    assert_eq!(eval["schema"], "tracemerge.eval.v1");
    let p = &eval["artifacts"][0];
    assert_eq!(p["runtime_edges"], 5);
    assert_eq!(p["runtime_edges_known"], 3, "{p}");
    assert_eq!(p["matched"], 2, "{p}"); // main→twice, main→other
    assert_eq!(p["misses_by_class"]["indirect_call"], 1); // twice → a.c:helper
    assert_eq!(p["misses_by_class"]["ambiguous_name"], 1); // other → helper
    assert_eq!(p["misses_by_class"]["caller_not_in_static"], 1);
    assert_eq!(
        p["executed_statically_unreachable"],
        serde_json::json!(["a.c:helper"])
    );
    assert_eq!(p["verdict_changes"][0]["target"], "a.c:helper");
    assert_eq!(
        p["verdict_changes"][0]["path"],
        serde_json::json!(["main", "twice", "a.c:helper"])
    );
    let html = std::fs::read_to_string(&out_html).unwrap();
    assert!(html.contains("<svg") && html.contains("indirect_call"));
    // The same evaluation is the same bytes.
    let again = tracemerge(&["eval", s(&a), s(&b), s(&runtime), "--artifact", "prog"]);
    assert_eq!(ok(&again).stdout, std::fs::read(&out_json).unwrap());

    // `merge` reads the .ci files directly, with the same options.
    let report = json(&tracemerge(&[
        "merge",
        s(&a),
        s(&b),
        s(&runtime),
        "--artifact",
        "prog",
    ]));
    assert_eq!(report["artifacts"][0]["artifact"], "prog");
    // main, twice, other, printf, b.c:helper (a.c:helper only by pointer).
    assert_eq!(report["artifacts"][0]["reach"]["static"], 5);
}

#[test]
fn static_names_match_the_symbols_of_the_program() {
    if !runs("gcc", &["--version"]) || !runs("nm", &["--version"]) {
        return skip("static_names_match", "gcc or nm is not installed");
    }
    let dir = scratch("research-names");
    std::fs::write(dir.join("b.c"), C_OTHER).unwrap();
    std::fs::write(
        dir.join("a.c"),
        C_MAIN.replace("static int helper", "static int only_here"),
    )
    .unwrap();
    let a_src = std::fs::read_to_string(dir.join("a.c"))
        .unwrap()
        .replace("twice(helper", "twice(only_here");
    std::fs::write(dir.join("a.c"), a_src).unwrap();
    tool(
        &dir,
        "gcc",
        &["-O0", "-fcallgraph-info", "a.c", "b.c", "-o", "prog"],
    );
    let graph = convert_graph(
        &dir,
        &[&dir.join("prog-a.ci"), &dir.join("prog-b.ci")],
        &["--artifact", "p"],
    );
    let (symbols, _) = tool(&dir, "nm", &["--defined-only", "prog"]);
    let defined: Vec<&str> = symbols
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    // Every function defined in the program is a node under its symbol name.
    for f in ["main", "twice", "other", "only_here", "helper", "unused"] {
        assert!(defined.contains(&f), "nm lacks {f}");
        let nodes = graph["nodes"].as_array().unwrap();
        assert!(nodes.iter().any(|n| n == f), "graph lacks {f}: {nodes:?}");
    }
}

#[test]
fn llvm_dot_and_text_agree() {
    let Some((clang, opt)) = tracemerge_bench::suites::research::llvm_tools() else {
        return skip(
            "llvm_dot_and_text",
            "clang-19 and opt-19 (Debian llvm-19) are not installed",
        );
    };
    let dir = scratch("research-llvm");
    c_sources(&dir);
    tool(
        &dir,
        clang,
        &["-O0", "-S", "-emit-llvm", "a.c", "-o", "a.ll"],
    );
    tool(
        &dir,
        opt,
        &["-passes=dot-callgraph", "-disable-output", "a.ll"],
    );
    let (_, text) = tool(
        &dir,
        opt,
        &["-passes=print-callgraph", "-disable-output", "a.ll"],
    );
    std::fs::write(dir.join("a.cg.txt"), text).unwrap();
    let dot = convert_graph(
        &dir,
        &[&dir.join("a.ll.callgraph.dot")],
        &["--artifact", "a"],
    );
    let txt = convert_graph(&dir, &[&dir.join("a.cg.txt")], &["--artifact", "a"]);
    assert!(has_edge(&dot, "main", "twice") && has_edge(&dot, "main", "other"));
    assert_eq!(edges(&dot), edges(&txt));
    assert_eq!(dot["nodes"], txt["nodes"]);
    // The calls through `f` in twice are indirect call sites in the text form.
    assert_eq!(txt["indirect_calls"]["twice"], 2);
}

#[test]
fn go_callgraph_names_are_the_binarys_symbols() {
    if !runs("go", &["version"])
        || !runs("callgraph", &["-help"]) && !Path::new("/usr/bin/callgraph").exists()
    {
        return skip(
            "go_callgraph",
            "go or callgraph (Debian golang-go, golang-golang-x-tools) is not installed",
        );
    }
    let dir = scratch("research-go");
    std::fs::write(dir.join("go.mod"), "module example.com/shapes\n\ngo 1.19\n").unwrap();
    std::fs::write(
        dir.join("main.go"),
        r#"package main

import "fmt"

type Shape interface{ Area() float64 }
type Sq struct{ s float64 }

func (q Sq) Area() float64 { return q.s * q.s }
func (q *Sq) Grow() { q.s++ }

func total(xs []Shape) float64 {
	t := 0.0
	for _, x := range xs {
		t += x.Area()
	}
	return t
}

func main() {
	q := &Sq{2}
	q.Grow()
	f := func() float64 { return total([]Shape{*q}) }
	fmt.Println(f())
}
"#,
    )
    .unwrap();
    let (cg, _) = tool(
        &dir,
        "callgraph",
        &["-format", "digraph", "-algo", "cha", "."],
    );
    std::fs::write(dir.join("cg.txt"), cg).unwrap();
    let (default_format, _) = tool(&dir, "callgraph", &["-algo", "cha", "."]);
    std::fs::write(dir.join("cg-default.txt"), default_format).unwrap();
    let go_env = [("GOFLAGS", "-buildvcs=false")];
    run_ok(
        Command::new("go")
            // Without inlining, so that every function of the graph is in the binary.
            .args(["build", "-gcflags=-l", "-o", "shapes", "."])
            .envs(go_env)
            .current_dir(&dir),
    );
    let graph = convert_graph(&dir, &[&dir.join("cg.txt")], &["--artifact", "shapes"]);
    assert_eq!(graph["entrypoints"], serde_json::json!(["main.main"]));
    assert!(has_edge(&graph, "main.main", "main.main.func1"), "closure");
    assert!(has_edge(&graph, "main.main.func1", "main.total"));
    assert!(
        has_edge(&graph, "main.total", "main.Sq.Area"),
        "interface call (cha)"
    );
    assert_eq!(graph["modules"]["main.total"], "main");
    // The main package's functions are named as the linker named them.
    let (symbols, _) = tool(&dir, "go", &["tool", "nm", "shapes"]);
    let defined: Vec<&str> = symbols
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    for n in graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
    {
        if n.starts_with("main.") && !n.contains("init") {
            assert!(defined.contains(&n), "{n} is not a symbol of the binary");
        }
    }
    // The default template gives the same edges, and marks the dynamic ones.
    let default_graph = convert_graph(
        &dir,
        &[&dir.join("cg-default.txt")],
        &["--artifact", "shapes"],
    );
    assert_eq!(edges(&default_graph), edges(&graph));
    assert!(
        default_graph["indirect_calls"]["main.total"]
            .as_u64()
            .unwrap()
            >= 1
    );
}

#[test]
fn pycg_json_graph() {
    if !runs("python3", &["-m", "pycg", "--help"]) {
        return skip(
            "pycg_json",
            "PyCG is not installed (pip install pycg==0.0.7)",
        );
    }
    let dir = scratch("research-pycg");
    std::fs::write(
        dir.join("main.py"),
        "import util\ndef run(f):\n    return f(2)\ndef main():\n    print(run(util.double))\n    util.Greeter().hello()\nif __name__ == \"__main__\":\n    main()\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("util.py"),
        "def double(x):\n    return x * 2\nclass Greeter:\n    def hello(self):\n        return double(1)\n",
    )
    .unwrap();
    tool(
        &dir,
        "python3",
        &[
            "-m",
            "pycg",
            "--package",
            ".",
            "main.py",
            "util.py",
            "-o",
            "cg.json",
        ],
    );
    let graph = convert_graph(
        &dir,
        &[&dir.join("cg.json")],
        &["--artifact", "py", "--entrypoints", "main"],
    );
    assert!(has_edge(&graph, "main", "main.main"));
    assert!(has_edge(&graph, "main.main", "util.Greeter.hello"));
    assert!(has_edge(&graph, "util.Greeter.hello", "util.double"));
    assert_eq!(graph["modules"]["util.Greeter.hello"], "util.Greeter");
}

/// Writes `text` as `name` in `dir`.
fn file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn malformed_call_graphs_name_file_and_line() {
    let dir = scratch("research-bad");
    let cases = [
        ("bad.ci", "graph: { title: \"a.c\"\nnode: { title: \"main\" }\nedge: { sourcename: \"main\" }\n}\n", "bad.ci: line 3: edge without a targetname"),
        ("cut.ci", "graph: { title: \"a.c\"\nnode: { title: \"main\" }\n", "cut.ci: line 1: the graph opened here is never closed"),
        ("bad.dot", "digraph \"Call graph: x\" {\n\tNode0x1 [shape=record,label=\"{main}\"];\n\tNode0x1 -> Node0x9;\n}\n", "bad.dot: line 3: edge names node Node0x9"),
        ("bad.txt", "Call graph node for function: 'main'<<0x1>>  #uses=1\n  CS<0x2> jumps to 'x'\n", "bad.txt: line 2: unknown call site"),
        ("bad.go.txt", "\"a.f\" \"b.g\"\n\"a.f\" \"b.g\n", "bad.go.txt: line 2: unterminated"),
        ("cut.json", "{\"a\": [\"b\"],\n \"c\": [\"d\"", "cut.json: line 2: not a PyCG call graph"),
        ("other.json", "{\"a\": [\"b\"],\n \"c\": [\"d\", 7]}\n", "other.json:1 (byte 0): a JSON document that is neither"),
    ];
    let good = file(&dir, "good.ndjson", "{\"type\":\"watermark\",\"at\":5}\n");
    for (name, text, message) in cases {
        let bad = file(&dir, name, text);
        let out_file = dir.join("out.ndjson");
        let out = tracemerge(&[
            "convert",
            "--artifact",
            "p",
            s(&good),
            s(&bad),
            "-o",
            s(&out_file),
        ]);
        assert!(!out.status.success(), "{name} accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{name}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        // What came before the bad input is kept.
        assert_eq!(
            std::fs::read_to_string(&out_file).unwrap(),
            "{\"type\":\"watermark\",\"at\":5}\n"
        );
        let merged = tracemerge(&["merge", "--artifact", "p", s(&good), s(&bad)]);
        assert_eq!(merged.status.code(), Some(1), "{name}");
    }
    // A call graph needs an artifact name.
    let ci = file(
        &dir,
        "ok.ci",
        "graph: { title: \"a.c\"\nnode: { title: \"main\" }\n}\n",
    );
    let out = tracemerge(&["convert", s(&ci), "-o", s(&dir.join("x.ndjson"))]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--artifact"));
    let out = tracemerge(&[
        "convert",
        "--artifact",
        "p",
        "--entrypoints",
        "nope",
        s(&ci),
        "-o",
        s(&dir.join("x.ndjson")),
    ]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("entrypoints not in the call graph: nope")
    );
}

#[test]
fn research_bench_pipeline_small() {
    if !runs("gcc", &["--version"]) || !runs("cargo", &["--version"]) {
        return skip("research_bench", "gcc or cargo is not installed");
    }
    let dir = scratch("research-bench");
    let results = dir.join("results.json");
    ok(&tracemerge(&[
        "bench",
        "research",
        "--quick",
        "-o",
        s(&results),
    ]));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&results).unwrap()).unwrap();
    let r = &v["research"];
    assert!(r.get("skipped").is_none(), "{r}");
    for program in ["lua", "zlib"] {
        let p = &r[program];
        assert!(p["functions"].as_u64().unwrap() > 50, "{program}: {p}");
        let truth = p["truth_edges"].as_u64().unwrap();
        assert!(truth > 20, "{program}: {p}");
        // Against the exact ground truth, every known edge is matched or classified.
        let t = &p["against_truth"];
        let missed: u64 = t["misses_by_class"]
            .as_object()
            .unwrap()
            .values()
            .map(|x| x.as_u64().unwrap())
            .sum();
        assert_eq!(
            t["runtime_edges"].as_u64().unwrap(),
            t["matched"].as_u64().unwrap() + missed,
            "{program}: {t}"
        );
        let recall = p["recall"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&recall), "{program}: {recall}");
        match p["probe"].get("skipped") {
            Some(why) => skip("research_bench probe", why.as_str().unwrap()),
            None => {
                let probe = &p["probe"];
                let matching = probe["matching_truth"].as_u64().unwrap();
                assert!(
                    matching as f64 >= 0.9 * truth as f64,
                    "{program}: probe {probe}"
                );
            }
        }
    }
    if let Some(why) = r["lua"]["llvm"].get("skipped") {
        skip("research_bench llvm", why.as_str().unwrap());
    } else {
        assert!(
            r["lua"]["llvm"]["common_edges"].as_u64().unwrap() > 100,
            "{}",
            r["lua"]["llvm"]
        );
    }
}
