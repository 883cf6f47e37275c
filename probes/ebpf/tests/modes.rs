//! Sampling mode, attaching to a running process, and the library loop.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use tracemerge_ebpf::run::{self, Collector, Options, Target};
use tracemerge_records::Record;

fn collect(
    target: Target,
    attach: impl FnOnce(Option<u32>) -> Result<Collector, tracemerge_ebpf::ProbeError>,
) -> (Vec<Record>, run::Outcome) {
    let mut records = Vec::new();
    let outcome = run::run(
        &target,
        Options {
            duration: Some(Duration::from_secs(30)),
            ..Options::new(Duration::from_millis(300))
        },
        attach,
        &mut |r| {
            records.extend_from_slice(r);
            Ok(())
        },
    )
    .unwrap();
    (records, outcome)
}

#[test]
fn sampling_finds_hot_edges() {
    let Some(_guard) = common::bpf_or_skip("sampling_finds_hot_edges") else {
        return;
    };
    let dir = common::scratch("sample");
    let prog = common::calls_program(&dir);
    let (records, outcome) = collect(
        Target::Command(vec![prog.clone().into(), "3".into(), "1.5".into()]),
        |pid| {
            let config = tracemerge_ebpf::sample::Config {
                frequency: 499,
                pid,
                ..Default::default()
            };
            tracemerge_ebpf::sample::Session::attach(&config).map(Collector::Sample)
        },
    );
    assert_eq!(outcome.exit_code, 0);
    let mut edges: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut hits: BTreeMap<String, u64> = BTreeMap::new();
    for r in &records {
        match r {
            Record::Edge(e) => {
                assert!(e.estimated, "sampled counts are estimates");
                *edges
                    .entry((e.caller.clone(), e.callee.clone()))
                    .or_default() += e.hits
            }
            Record::Hit(h) => {
                assert!(h.estimated, "sampled counts are estimates");
                *hits.entry(h.symbol.clone()).or_default() += h.hits
            }
            Record::Coverage(_) => panic!("sampling must not claim coverage"),
            _ => {}
        }
    }
    eprintln!("{edges:#?}\n{hits:#?}\n{}", outcome.summary);
    // ~1.5 s at 499 Hz in the hot loop: hundreds of samples. Ask for a
    // fraction, the machine is shared.
    let hot = |a: &str, b: &str| {
        edges
            .get(&(a.to_string(), b.to_string()))
            .copied()
            .unwrap_or(0)
    };
    assert!(hot("hot", "hot_inner") >= 50, "hot -> hot_inner");
    assert!(hot("main", "hot") >= 50, "main -> hot");
    assert!(
        hits.get("hot_inner").copied().unwrap_or(0) >= 50,
        "hits of hot_inner"
    );
    // A walk past the first frame is cut, never an edge to a kernel-half
    // or non-canonical "caller".
    for (caller, callee) in edges.keys() {
        for name in [caller, callee] {
            if let Some(hex) = name.strip_prefix("[unknown]+0x") {
                let addr = u64::from_str_radix(hex, 16).unwrap();
                assert!(addr < 1 << 56, "edge through {name}");
            }
        }
    }
    assert!(outcome.summary["walks_left_user_space"].is_u64());
    common::assert_clean();
}

#[test]
fn attach_to_running_process() {
    let Some(_guard) = common::bpf_or_skip("attach_to_running_process") else {
        return;
    };
    let dir = common::scratch("pid");
    let prog = common::calls_program(&dir);
    let mut child = Command::new(&prog)
        .args(["4", "wait"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    let pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    let go = std::thread::spawn(move || {
        let status = child.wait().unwrap();
        assert!(status.success());
    });
    let (records, _) = collect(Target::Pid(pid), |p| {
        assert_eq!(p, Some(pid));
        let mut config = common::calls_config(&prog);
        config.pid = p;
        let session = tracemerge_ebpf::exact::Session::attach(&config)?;
        // Probes are in: let the process make its calls.
        writeln!(stdin, "go").unwrap();
        Ok(Collector::Exact(session))
    });
    go.join().unwrap();
    let mut edges: BTreeMap<(String, String), u64> = BTreeMap::new();
    for r in &records {
        if let Record::Edge(e) = r {
            *edges
                .entry((e.caller.clone(), e.callee.clone()))
                .or_default() += e.hits;
        }
    }
    eprintln!("{edges:#?}");
    let get = |a: &str, b: &str| edges.get(&(a.to_string(), b.to_string())).copied();
    assert_eq!(get("main", "middle"), Some(4));
    assert_eq!(get("middle", "leaf"), Some(4));
    assert_eq!(get("main", "via_pointer"), Some(2));
    assert_eq!(get("via_pointer", "leaf"), Some(2));
    // main started before the probes: its own entry was not seen.
    assert!(edges.keys().all(|(_, callee)| callee != "main"));
    assert!(edges
        .keys()
        .any(|(caller, callee)| caller.starts_with("libc.so.6") && callee == "compare"));
    common::assert_clean();
}

#[test]
fn all_functions_by_default() {
    let Some(_guard) = common::bpf_or_skip("all_functions_by_default") else {
        return;
    };
    let dir = common::scratch("all");
    let prog = common::calls_program(&dir);
    let (records, _) = collect(
        Target::Command(vec![prog.clone().into(), "2".into()]),
        |pid| {
            let mut config = tracemerge_ebpf::exact::Config::new(&prog);
            config.pid = pid;
            tracemerge_ebpf::exact::Session::attach(&config).map(Collector::Exact)
        },
    );
    let cov = records
        .iter()
        .find_map(|r| {
            if let Record::Coverage(c) = r {
                Some(c.symbols.clone())
            } else {
                None
            }
        })
        .unwrap();
    for f in [
        "main",
        "middle",
        "leaf",
        "via_pointer",
        "compare",
        "hot",
        "hot_inner",
        "now",
    ] {
        assert!(cov.iter().any(|s| s == f), "{f} not probed: {cov:?}");
    }
    assert!(
        !cov.iter().any(|s| s == "_start"),
        "the entry point has no caller"
    );
    let edges: Vec<(String, String, u64)> = records
        .iter()
        .filter_map(|r| {
            if let Record::Edge(e) = r {
                Some((e.caller.clone(), e.callee.clone(), e.hits))
            } else {
                None
            }
        })
        .collect();
    assert!(
        edges.contains(&("main".into(), "middle".into(), 2)),
        "{edges:?}"
    );
    assert!(
        edges.contains(&("middle".into(), "leaf".into(), 2)),
        "{edges:?}"
    );
    common::assert_clean();
}
