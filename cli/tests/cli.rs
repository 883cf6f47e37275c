//! The `tracemerge` command end to end: merge, replay, demo, determinism
//! across workers, processes, batch sizes and arrival order, and bad input.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tracemerge_records::Record;
use tracemerge_scenarios::random::{self, StreamParams};

mod common;
use common::{json, scratch, tracemerge, tracemerge_with_stdin, write_ndjson, BIN};

fn digest(out: &Output) -> String {
    json(out)["digest"].as_str().unwrap().to_string()
}

const DESIGN: &str = r#"{"type":"graph","artifact":"shop@1.4","at":0,"nodes":["main","a","b"],"edges":[["main","a"],["a","b"]],"entrypoints":["main"]}
{"type":"targets","artifact":"shop@1.4","at":0,"symbols":["b","vuln_fn"]}
{"type":"edge","artifact":"shop@1.4","caller":"main","callee":"a","at":1000,"hits":3,"source":"ebpf:host-1"}
{"type":"hit","artifact":"shop@1.4","symbol":"a","at":1000,"hits":1,"source":"etw:host-2"}
{"type":"coverage","artifact":"shop@1.4","symbols":["a","b"],"from":0,"to":5000,"source":"ebpf:host-1"}
{"type":"watermark","at":10000}
"#;

#[test]
fn merge_design_example_from_stdin_and_gzip() {
    let dir = scratch("design");
    let plain = dir.join("design.ndjson");
    std::fs::write(&plain, DESIGN).unwrap();
    let gz = dir.join("design.ndjson.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(DESIGN.as_bytes()).unwrap();
    std::fs::write(&gz, enc.finish().unwrap()).unwrap();

    let report = json(&tracemerge(&[
        "merge",
        plain.to_str().unwrap(),
        "--min-coverage",
        "1s",
    ]));
    assert_eq!(report["schema"], "tracemerge.report.v1");
    assert_eq!(report["as_of"], 10000);
    assert_eq!(report["stats"]["records"], 6);
    let a = &report["artifacts"][0];
    assert_eq!(
        a["reach"],
        serde_json::json!({"static": 3, "runtime": 2, "effective": 3})
    );
    assert_eq!(a["verdicts"][0]["target"], "b");
    assert_eq!(
        a["verdicts"][0]["path"],
        serde_json::json!(["main", "a", "b"])
    );
    assert_eq!(
        a["verdicts"][0]["hops"],
        serde_json::json!(["both", "static"])
    );
    assert_eq!(a["conflicts"][0]["kind"], "reachable_but_unobserved");

    let from_gz = tracemerge(&["merge", gz.to_str().unwrap(), "--min-coverage", "1s"]);
    let from_stdin =
        tracemerge_with_stdin(&["merge", "-", "--min-coverage", "1s"], DESIGN.as_bytes());
    assert_eq!(json(&from_gz), report);
    assert_eq!(json(&from_stdin), report);

    // -o writes the same report to a file.
    let out = dir.join("report.json");
    let status = tracemerge(&[
        "merge",
        plain.to_str().unwrap(),
        "--min-coverage",
        "1s",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(status.status.success() && status.stdout.is_empty());
    let written: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(written, report);
}

/// A random stream rich enough that every part of the engine moves.
fn random_stream(dir: &Path, seed: u64) -> (PathBuf, Vec<Record>) {
    let records = random::stream(seed, &StreamParams::dense());
    let path = dir.join(format!("random-{seed}.ndjson"));
    write_ndjson(&path, &records);
    (path, records)
}

#[test]
fn same_digest_for_workers_and_batch_sizes() {
    let dir = scratch("workers");
    let (path, _) = random_stream(&dir, 7);
    let file = path.to_str().unwrap();
    let base = digest(&tracemerge(&["merge", file, "--lateness", "2s", "-w", "1"]));
    for extra in [
        &["-w", "2"][..],
        &["-w", "4"],
        &["--batch", "1"],
        &["--batch", "100"],
        &["--batch", "100000000"],
        &["-w", "3", "--batch", "1"],
    ] {
        let mut args = vec!["merge", file, "--lateness", "2s"];
        args.extend_from_slice(extra);
        assert_eq!(digest(&tracemerge(&args)), base, "{extra:?}");
    }
}

/// `--profile` ends with every engine thread's CPU time and the process's,
/// and leaves the report as it was.
#[test]
fn profile_names_every_engine_thread() {
    let dir = scratch("profile");
    let (path, _) = random_stream(&dir, 5);
    let file = path.to_str().unwrap();
    let plain = digest(&tracemerge(&["merge", file, "-w", "2"]));
    let out = tracemerge(&["merge", file, "-w", "2", "--profile"]);
    assert_eq!(digest(&out), plain);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let table = stderr
        .split_once("CPU time by thread")
        .map(|(_, table)| table)
        .unwrap_or_else(|| panic!("no thread table: {stderr}"));
    for thread in [
        "reader 0",
        "aggregator 0",
        "aggregator 1",
        "worker 0",
        "worker 1",
        "sink 0",
    ] {
        assert!(table.contains(thread), "{thread} missing: {table}");
    }
    assert!(table.contains("the process: "), "{table}");
}

#[test]
fn same_digest_for_arrival_order_within_lateness() {
    let dir = scratch("shuffle");
    let lateness = 2000;
    let (path, records) = random_stream(&dir, 11);
    let base = digest(&tracemerge(&[
        "merge",
        path.to_str().unwrap(),
        "--lateness",
        "2s",
    ]));
    for seed in 0..3 {
        let shuffled = random::shuffle_within_lateness(&records, lateness, seed);
        assert_ne!(shuffled, records, "the shuffle must move something");
        let other = dir.join(format!("shuffled-{seed}.ndjson"));
        write_ndjson(&other, &shuffled);
        let d = digest(&tracemerge(&[
            "merge",
            other.to_str().unwrap(),
            "--lateness",
            "2s",
        ]));
        assert_eq!(d, base, "shuffle seed {seed}");
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn two_processes_give_the_single_worker_digest() {
    let dir = scratch("cluster");
    let (path, _) = random_stream(&dir, 3);
    let file = path.to_str().unwrap();
    let base = digest(&tracemerge(&["merge", file]));
    let hosts = dir.join("hosts.txt");
    std::fs::write(
        &hosts,
        format!("127.0.0.1:{}\n127.0.0.1:{}\n", free_port(), free_port()),
    )
    .unwrap();
    let spawn = |index: &str| {
        Command::new(BIN)
            .args([
                "merge",
                file,
                "-n",
                "2",
                "-p",
                index,
                "-h",
                hosts.to_str().unwrap(),
            ])
            .args(["-w", "2", "--progress-mode", "eager"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (first, second) = (spawn("0"), spawn("1"));
    let (first, second) = (
        first.wait_with_output().unwrap(),
        second.wait_with_output().unwrap(),
    );
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(second.stdout.is_empty(), "only process 0 writes the report");
    assert_eq!(digest(&first), base);
}

#[test]
fn replay_emits_a_change_feed_that_adds_up_to_the_report() {
    let dir = scratch("replay");
    let (path, _) = random_stream(&dir, 5);
    let report_path = dir.join("final.json");
    let out = tracemerge(&[
        "replay",
        path.to_str().unwrap(),
        "--report",
        report_path.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    let as_of = report["as_of"].as_u64().unwrap();
    // Accumulate every change at or before as_of; what remains of the
    // observed edges must be exactly the report's.
    let mut live: std::collections::BTreeMap<String, i64> = Default::default();
    let mut last_at = 0;
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let change: serde_json::Value = serde_json::from_str(line).unwrap();
        let at = change["at"].as_u64().unwrap();
        assert!(at >= last_at, "changes come in event-time order");
        last_at = at;
        if at <= as_of && change["kind"] == "edge" {
            let key = format!("{}|{}", change["artifact"], change["edge"]);
            *live.entry(key).or_default() += change["diff"].as_i64().unwrap();
        }
    }
    live.retain(|_, n| *n != 0);
    assert!(live.values().all(|n| *n == 1));
    let mut expected = std::collections::BTreeSet::new();
    for a in report["artifacts"].as_array().unwrap() {
        for e in a["observed_edges"].as_array().unwrap() {
            let edge = serde_json::json!({
                "caller": e["caller"], "callee": e["callee"], "hits": e["hits"],
                "first_seen": e["first_seen"], "last_seen": e["last_seen"],
                "sources": e["sources"], "in_static": e["in_static"],
            });
            expected.insert(format!("{}|{}", a["artifact"], edge));
        }
    }
    assert!(!expected.is_empty());
    assert_eq!(
        live.keys()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>(),
        expected
    );
}

#[test]
fn replay_keeps_what_came_before_a_bad_line() {
    let dir = scratch("replay-bad");
    let path = dir.join("stream.ndjson");
    let mut text = DESIGN.to_string();
    text.push_str("{\"type\":\"edge\",\"artifact\":\"shop@1.4\"\n");
    std::fs::write(&path, text).unwrap();
    let out = tracemerge(&["replay", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("stream.ndjson:7"), "{stderr}");
    let feed = String::from_utf8(out.stdout).unwrap();
    assert!(
        feed.contains(r#""kind":"edge""#),
        "changes before the bad line are out: {feed}"
    );
    assert!(feed.contains(r#""target":"b""#), "{feed}");
}

#[test]
fn bad_input_names_file_and_line_and_never_panics() {
    let dir = scratch("bad");
    let good = r#"{"type":"watermark","at":1}"#;
    let cases: Vec<(&str, String, &str)> = vec![
        ("malformed", format!("{good}\n{{\"type\":\"edge\",\n"), ":2"),
        ("wrong-type", format!("{good}\n{{\"type\":\"watermark\",\"at\":\"soon\"}}\n"), "invalid type"),
        ("missing-field", format!("{good}\n{{\"type\":\"hit\",\"artifact\":\"a\",\"at\":5}}\n"), "missing field `symbol`"),
        ("unknown-type", format!("{good}\n{{\"type\":\"teleport\",\"at\":5}}\n"), "unknown variant"),
        ("negative", format!("{good}\n{{\"type\":\"watermark\",\"at\":-5}}\n"), ":2"),
        ("overflow", format!("{good}\n{{\"type\":\"watermark\",\"at\":184467440737095516160}}\n"), ":2"),
        (
            "unknown-node",
            format!("{good}\n{{\"type\":\"graph\",\"artifact\":\"a\",\"at\":0,\"nodes\":[\"m\"],\"edges\":[[\"m\",\"ghost\"]]}}\n"),
            "\"ghost\" is not a node",
        ),
        ("empty", String::new(), "empty"),
    ];
    for (name, text, needle) in cases {
        let path = dir.join(format!("{name}.ndjson"));
        std::fs::write(&path, text).unwrap();
        for cmd in ["merge", "replay"] {
            let out = tracemerge(&[cmd, path.to_str().unwrap()]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{name}/{cmd} must fail");
            assert_eq!(out.status.code(), Some(1), "{name}/{cmd}: {stderr}");
            assert!(
                stderr.contains(&format!("{name}.ndjson")),
                "{name}/{cmd}: {stderr}"
            );
            assert!(stderr.contains(needle), "{name}/{cmd}: {stderr}");
            assert!(!stderr.contains("panicked"), "{name}/{cmd}: {stderr}");
        }
    }
}

#[test]
fn a_100_mb_line_is_an_error_not_a_crash() {
    let dir = scratch("huge");
    let path = dir.join("huge.ndjson");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    writeln!(f, r#"{{"type":"watermark","at":1}}"#).unwrap();
    f.write_all(b"{\"type\":\"targets\",\"artifact\":\"a\",\"at\":1,\"symbols\":[\"")
        .unwrap();
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..100 {
        f.write_all(&chunk).unwrap();
    }
    f.write_all(b"\"]}\n{\"type\":\"edge\"\n").unwrap();
    drop(f);
    // The huge line itself is valid: it is read, and the bad line after it is named.
    let out = tracemerge(&["merge", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("huge.ndjson:3"), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["stats"]["records"], 2,
        "both good lines were accepted"
    );
}

#[test]
fn keep_going_counts_invalid_records() {
    let dir = scratch("keep-going");
    let path = dir.join("mixed.ndjson");
    let mut lines: Vec<&str> = DESIGN.lines().collect();
    lines.insert(2, "not json");
    let text = lines.join("\n");
    std::fs::write(&path, text).unwrap();
    let out = tracemerge(&["merge", "--keep-going", path.to_str().unwrap()]);
    let report = json(&out);
    assert_eq!(report["stats"]["invalid"], 1);
    assert_eq!(report["stats"]["records"], 6);
    assert!(String::from_utf8_lossy(&out.stderr).contains("mixed.ndjson:3"));
}

#[test]
fn demo_prints_every_state_and_conflict_kind() {
    let dir = scratch("demo");
    let out_path = dir.join("demo.json");
    let out = tracemerge(&["demo", "-o", out_path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for state in tracemerge_records::State::ALL {
        assert!(
            text.contains(state.name()),
            "demo shows {}: {text}",
            state.name()
        );
    }
    for kind in tracemerge_records::Conflict::KINDS {
        assert!(text.contains(kind), "demo shows {kind}: {text}");
    }
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out_path).unwrap()).unwrap();
    assert!(text.contains(report["digest"].as_str().unwrap()));
}

/// `watch` takes the engine options of `merge` (one definition, one
/// duration rule): a duration without a unit is a usage error, and the
/// quarantine file is read (its error names it) before any probe starts.
#[test]
fn watch_takes_the_engine_options_of_merge() {
    let out = tracemerge(&["watch", "--ttl", "10", "plan", "--binary", "/bin/true"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("needs a unit"), "{stderr}");
    let missing = scratch("watch-options").join("no-such-quarantine.txt");
    let out = tracemerge(&[
        "watch",
        "--lateness",
        "1s",
        "--quarantine",
        missing.to_str().unwrap(),
        "plan",
        "--binary",
        "/bin/true",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("no-such-quarantine.txt"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
