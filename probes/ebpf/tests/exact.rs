//! Exact mode against a cc-built program with a known call pattern.

mod common;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::time::Duration;

use tracemerge_ebpf::exact::Config;
use tracemerge_ebpf::run;
use tracemerge_records::Record;

fn trace(config: Config, argv: Vec<OsString>) -> (Vec<Record>, run::Outcome) {
    common::trace(&config, argv, Duration::from_millis(200))
}

#[test]
fn exact_edges_and_counts() {
    let Some(_guard) = common::bpf_or_skip("exact_edges_and_counts") else {
        return;
    };
    let dir = common::scratch("exact");
    let prog = common::calls_program(&dir);
    let config = common::calls_config(&prog);
    let (records, outcome) = trace(config, vec![prog.clone().into(), "5".into()]);
    assert_eq!(outcome.exit_code, 0);
    let got = common::edges(&records);
    eprintln!("{got:#?}");

    let compares: u64 = {
        let out = std::process::Command::new(&prog).arg("5").output().unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        text.split_whitespace()
            .find_map(|w| w.strip_prefix("compares="))
            .unwrap()
            .parse()
            .unwrap()
    };
    let mut want: BTreeMap<(String, String), u64> = [
        (("main", "middle"), 5),
        (("middle", "leaf"), 5),
        (("main", "via_pointer"), 2),
        (("via_pointer", "leaf"), 2),
    ]
    .into_iter()
    .map(|((a, b), n)| ((a.to_string(), b.to_string()), n))
    .collect();
    // Callers outside the binary are module-qualified: main's caller and
    // the qsort callback's caller live in libc.
    let libc_callers: Vec<_> = got
        .keys()
        .filter(|(c, _)| c.starts_with("libc.so.6"))
        .cloned()
        .collect();
    for (caller, callee) in &libc_callers {
        assert!(
            caller.starts_with("libc.so.6!") || caller.starts_with("libc.so.6+0x"),
            "{caller}"
        );
        match callee.as_str() {
            "compare" => {
                want.insert((caller.clone(), callee.clone()), compares);
            }
            "main" => {
                want.insert((caller.clone(), callee.clone()), 1);
            }
            other => panic!("unexpected libc caller of {other}"),
        }
    }
    assert_eq!(got, want);
    assert!(
        libc_callers.iter().any(|(_, c)| c == "compare"),
        "no libc caller of compare"
    );

    // Coverage for the probed functions, an artifact from the build id.
    let cov: Vec<_> = records
        .iter()
        .filter_map(|r| {
            if let Record::Coverage(c) = r {
                Some(c)
            } else {
                None
            }
        })
        .collect();
    assert!(!cov.is_empty());
    let mut symbols = cov[0].symbols.clone();
    symbols.sort();
    assert_eq!(
        symbols,
        ["compare", "leaf", "main", "middle", "via_pointer"]
    );
    for r in &records {
        if let Record::Edge(e) = r {
            assert!(e.artifact.starts_with("build-id:"), "{}", e.artifact);
        }
    }
    assert!(matches!(records.last(), Some(Record::Watermark { .. })));
    assert_eq!(outcome.summary["losses"], 0);
    common::assert_clean();
}

#[test]
fn map_full_is_counted_and_withholds_coverage() {
    let Some(_guard) = common::bpf_or_skip("map_full_is_counted_and_withholds_coverage") else {
        return;
    };
    let dir = common::scratch("full");
    let prog = common::calls_program(&dir);
    let mut config = common::calls_config(&prog);
    // Room for 2 of the 6 distinct (callee, call site) entries.
    config.map_entries = 2;
    let (records, outcome) = trace(config, vec![prog.clone().into(), "5".into()]);
    eprintln!("{}", outcome.summary);
    assert!(
        outcome.summary["losses"].as_u64().unwrap() > 0,
        "{}",
        outcome.summary
    );
    assert!(
        outcome.summary["loss_detail"]["exact_map_full"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(
        outcome.summary["windows_without_coverage"]
            .as_u64()
            .unwrap()
            > 0
    );
    // A lost call must not let a function pass for unobserved: windows
    // with losses carry the count and no symbols.
    let coverage: Vec<_> = records
        .iter()
        .filter_map(|r| match r {
            Record::Coverage(c) => Some(c),
            _ => None,
        })
        .collect();
    assert!(!coverage.is_empty(), "the loss is in the record stream");
    assert!(coverage
        .iter()
        .all(|c| c.symbols.is_empty() && c.lost.unwrap_or(0) > 0));
    assert!(
        records
            .iter()
            .filter(|r| matches!(r, Record::Edge(_)))
            .count()
            <= 2
    );
    common::assert_clean();
}

#[test]
fn drain_loses_nothing_under_contention() {
    let Some(_guard) = common::bpf_or_skip("drain_loses_nothing_under_contention") else {
        return;
    };
    let dir = common::scratch("contention");
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/threads.c");
    let prog = dir.join("threads");
    common::cc(&src, &prog, &["-pthread"]);
    // Twice as many threads as CPUs: programs are preempted mid-increment
    // while the collector reads, every 2 ms.
    let threads = 2 * std::thread::available_parallelism().map_or(2, |n| n.get());
    let calls_per_thread = 60_000u64;
    let mut config = Config::new(&prog);
    config.functions = Some(vec!["work".into(), "leaf".into()]);
    let (records, outcome) = common::trace(
        &config,
        vec![
            prog.clone().into(),
            threads.to_string().into(),
            calls_per_thread.to_string().into(),
        ],
        Duration::from_millis(2),
    );
    assert_eq!(outcome.exit_code, 0);
    let got = common::edges(&records);
    let want = threads as u64 * calls_per_thread;
    assert_eq!(
        got.get(&("work".to_string(), "leaf".to_string())),
        Some(&want)
    );
    let into_work: u64 = got
        .iter()
        .filter(|((_, callee), _)| callee == "work")
        .map(|(_, n)| n)
        .sum();
    assert_eq!(into_work, want, "{got:?}");
    // The counts really were read while the threads ran.
    let windows_with_edges = records
        .iter()
        .filter_map(|r| match r {
            Record::Edge(e) => Some(e.at),
            _ => None,
        })
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    assert!(
        windows_with_edges >= 10,
        "only {windows_with_edges} windows had edges"
    );
    assert_eq!(outcome.summary["losses"], 0);
    common::assert_clean();
}
