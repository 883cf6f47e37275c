//! End-to-end tests of `tracemerge probe …` (root and BPF needed: skipped
//! with a reason otherwise, failed instead under TRACEMERGE_REQUIRE_ALL=1).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tracemerge_ebpf::testing::{assert_clean, bpf_or_skip, Exclusive};

mod common;
use common::{run_ok, scratch, BIN};

/// The test program of the eBPF crate (known call pattern, a call through a
/// function pointer, a qsort callback from libc), built with cc.
fn calls_program(dir: &Path) -> PathBuf {
    program(dir, "calls")
}

/// What a test of the calls program starts with: the BPF lock (`None`:
/// the test is skipped, and says why), a scratch directory `name` and the
/// program built in it.
fn calls_test(test: &str, name: &str) -> Option<(Exclusive, PathBuf, PathBuf)> {
    let guard = bpf_or_skip(test)?;
    let dir = scratch(name);
    let prog = calls_program(&dir);
    Some((guard, dir, prog))
}

/// tests/programs/NAME.c of the eBPF crate, built with cc.
fn program(dir: &Path, name: &str) -> PathBuf {
    program_with(dir, name, &[])
}

/// tests/programs/NAME.c built with cc and `extra` flags besides ours.
fn program_with(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../probes/ebpf/tests/programs")
        .join(format!("{name}.c"));
    let out = dir.join(name);
    let status = Command::new("cc")
        .args([
            "-O1",
            "-fno-omit-frame-pointer",
            "-fno-inline",
            "-fno-optimize-sibling-calls",
        ])
        .args(extra)
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .status()
        .expect("running cc");
    assert!(status.success());
    out
}

fn functions_file(dir: &Path) -> PathBuf {
    let f = dir.join("functions.txt");
    std::fs::write(
        &f,
        "# the calls.c call pattern\nmain\nmiddle\nleaf\nvia_pointer\ncompare\n",
    )
    .unwrap();
    f
}

/// `command` (the binary with its first arguments) with `--binary PROG
/// --functions FILE -- PROG TIMES`: the calls program run TIMES times,
/// probed at its five functions; asserts that it succeeded.
fn run_calls(command: &mut Command, dir: &Path, prog: &Path, times: &str) -> Output {
    run_ok(
        command
            .arg("--binary")
            .arg(prog)
            .arg("--functions")
            .arg(functions_file(dir))
            .arg("--")
            .arg(prog)
            .arg(times),
    )
}

/// A static graph of the calls program that, like many analysers, misses
/// the call through the function pointer (via_pointer is statically
/// unreachable from main), and its targets.
fn calls_graph(dir: &Path) -> PathBuf {
    let graph = dir.join("graph.ndjson");
    std::fs::write(
        &graph,
        concat!(
            r#"{"type":"graph","artifact":"calls@test","at":0,"nodes":["main","middle","leaf","via_pointer","compare"],"#,
            r#""edges":[["main","middle"],["middle","leaf"],["via_pointer","leaf"]],"entrypoints":["main"]}"#,
            "\n",
            r#"{"type":"targets","artifact":"calls@test","at":0,"symbols":["via_pointer","leaf"]}"#,
            "\n"
        ),
    )
    .unwrap();
    graph
}

/// The JSON values of NDJSON text, one a line.
fn ndjson(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn records(path: &Path) -> Vec<Value> {
    ndjson(&std::fs::read_to_string(path).unwrap())
}

fn edge_hits(records: &[Value], caller: &str, callee: &str) -> u64 {
    records
        .iter()
        .filter(|r| r["type"] == "edge" && r["caller"] == caller && r["callee"] == callee)
        .map(|r| r["hits"].as_u64().unwrap())
        .sum()
}

fn summary(stderr: &str) -> Value {
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix("tracemerge probe: summary "))
        .unwrap_or_else(|| panic!("no summary in stderr:\n{stderr}"));
    serde_json::from_str(line).unwrap()
}

/// The first line of `reader` that contains `text` (the probe prints its
/// entry plan before it says it has attached).
fn line_with(reader: &mut impl BufRead, text: &str) -> String {
    let mut line = String::new();
    while !line.contains(text) {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            panic!("no line with {text:?}");
        }
    }
    line
}

fn wait_timeout(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("process did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn exact_command_edges_counts_and_summary() {
    let Some((_guard, dir, prog)) = calls_test("exact_command_edges_counts_and_summary", "exact")
    else {
        return;
    };
    let out = dir.join("records.ndjson");
    let run = run_calls(
        Command::new(BIN)
            .args(["probe", "exact", "--window", "200ms", "-o"])
            .arg(&out),
        &dir,
        &prog,
        "6",
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    let stdout = String::from_utf8_lossy(&run.stdout);
    let compares: u64 = stdout
        .split_whitespace()
        .find_map(|w| w.strip_prefix("compares="))
        .unwrap()
        .parse()
        .unwrap();

    let recs = records(&out);
    assert_eq!(edge_hits(&recs, "main", "middle"), 6);
    assert_eq!(edge_hits(&recs, "middle", "leaf"), 6);
    assert_eq!(edge_hits(&recs, "main", "via_pointer"), 2);
    assert_eq!(edge_hits(&recs, "via_pointer", "leaf"), 2);
    let libc_compare: Vec<&Value> = recs
        .iter()
        .filter(|r| r["type"] == "edge" && r["callee"] == "compare")
        .collect();
    assert!(!libc_compare.is_empty());
    for r in &libc_compare {
        assert!(
            r["caller"].as_str().unwrap().starts_with("libc.so.6"),
            "{r}"
        );
    }
    assert_eq!(
        libc_compare
            .iter()
            .map(|r| r["hits"].as_u64().unwrap())
            .sum::<u64>(),
        compares
    );
    // Nothing else: exactly the expected edges (main's own caller is libc's).
    for r in recs.iter().filter(|r| r["type"] == "edge") {
        let (caller, callee) = (r["caller"].as_str().unwrap(), r["callee"].as_str().unwrap());
        let known = matches!(
            (caller, callee),
            ("main", "middle")
                | ("middle", "leaf")
                | ("main", "via_pointer")
                | ("via_pointer", "leaf")
        ) || (caller.starts_with("libc.so.6")
            && (callee == "compare" || callee == "main"));
        assert!(known, "unexpected edge {caller} -> {callee}");
        assert!(r["artifact"].as_str().unwrap().starts_with("build-id:"));
    }
    assert!(recs.iter().any(|r| r["type"] == "coverage"));
    assert_eq!(recs.last().unwrap()["type"], "watermark");

    let s = summary(&stderr);
    assert_eq!(s["mode"], "exact");
    assert_eq!(s["losses"], 0);
    assert_eq!(s["hits"].as_u64().unwrap(), 6 + 6 + 2 + 2 + compares + 1);
    assert_clean();
}

#[test]
fn merged_report_shows_the_function_pointer_conflict() {
    let Some((_guard, dir, prog)) =
        calls_test("merged_report_shows_the_function_pointer_conflict", "merge")
    else {
        return;
    };
    let out = dir.join("records.ndjson");
    run_calls(
        Command::new(BIN)
            .args(["probe", "exact", "--artifact", "calls@test", "-o"])
            .arg(&out),
        &dir,
        &prog,
        "3",
    );

    let graph = calls_graph(&dir);
    let merged = run_ok(Command::new(BIN).arg("merge").arg(&graph).arg(&out));
    let report: Value = serde_json::from_slice(&merged.stdout).unwrap();
    let artifact = report["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["artifact"] == "calls@test")
        .unwrap_or_else(|| panic!("no calls@test in {report}"));

    let conflicts = artifact["conflicts"].as_array().unwrap();
    assert!(
        conflicts
            .iter()
            .any(|c| c["kind"] == "runtime_edge_not_in_static"
                && c["caller"] == "main"
                && c["callee"] == "via_pointer"),
        "no runtime_edge_not_in_static main -> via_pointer in {conflicts:?}"
    );
    let verdicts = artifact["verdicts"].as_array().unwrap();
    let via = verdicts
        .iter()
        .find(|v| v["target"] == "via_pointer")
        .unwrap();
    assert_eq!(via["state"], "contested", "{via}");
    let observed = artifact["observed_edges"].as_array().unwrap();
    assert!(
        observed.iter().any(|e| e["callee"] == "compare"
            && e["caller"].as_str().unwrap().starts_with("libc.so.6")
            && e["in_static"] == false),
        "no module-qualified libc caller of compare in {observed:?}"
    );
    let main_middle = observed
        .iter()
        .find(|e| e["caller"] == "main" && e["callee"] == "middle")
        .unwrap();
    assert_eq!(main_middle["hits"], 3);
    assert_eq!(main_middle["in_static"], true);
    assert_clean();
}

#[test]
fn stdout_carries_only_records() {
    let Some((_guard, dir, prog)) = calls_test("stdout_carries_only_records", "stdout") else {
        return;
    };
    let run = run_calls(Command::new(BIN).args(["probe", "exact"]), &dir, &prog, "2");
    let stderr = String::from_utf8_lossy(&run.stderr);
    // The command's own output went to stderr; stdout is the record stream.
    assert!(stderr.contains("compares="), "{stderr}");
    let stdout = String::from_utf8(run.stdout).unwrap();
    for line in stdout.lines() {
        let record: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert!(record["type"].is_string());
    }
    assert!(stdout.contains(r#""caller":"main","callee":"middle","#));
    assert_clean();
}

#[test]
fn sample_command_finds_hot_edges() {
    let Some((_guard, dir, prog)) = calls_test("sample_command_finds_hot_edges", "sample") else {
        return;
    };
    let out = dir.join("records.ndjson");
    let run = run_ok(
        Command::new(BIN)
            .args(["probe", "sample", "--frequency", "499", "-o"])
            .arg(&out)
            .arg("--")
            .arg(&prog)
            .args(["2", "1.2"]),
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    let recs = records(&out);
    assert!(edge_hits(&recs, "hot", "hot_inner") >= 40, "{stderr}");
    assert!(edge_hits(&recs, "main", "hot") >= 40, "{stderr}");
    assert!(recs
        .iter()
        .any(|r| r["type"] == "hit" && r["symbol"] == "hot_inner"));
    assert!(
        !recs.iter().any(|r| r["type"] == "coverage"),
        "sampling proves no absence"
    );
    assert_eq!(summary(&stderr)["mode"], "sample");
    assert_clean();
}

#[test]
fn exact_attaches_to_a_running_pid() {
    let Some((_guard, dir, prog)) = calls_test("exact_attaches_to_a_running_pid", "pid") else {
        return;
    };
    let mut target = Command::new(&prog)
        .args(["5", "wait"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(target.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    let out = dir.join("records.ndjson");
    let mut probe = Command::new(BIN)
        .args(["probe", "exact", "--binary"])
        .arg(&prog)
        .arg("--functions")
        .arg(functions_file(&dir))
        .args(["--pid", &target.id().to_string(), "-o"])
        .arg(&out)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(probe.stderr.take().unwrap());
    let line = line_with(&mut stderr, "attached");
    assert!(line.contains("attached 5 functions"), "{line}");
    writeln!(target.stdin.as_mut().unwrap(), "go").unwrap();
    assert!(wait_timeout(&mut target, Duration::from_secs(10)).success());
    let status = wait_timeout(&mut probe, Duration::from_secs(10));
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert!(status.success(), "{rest}");
    let recs = records(&out);
    assert_eq!(edge_hits(&recs, "main", "middle"), 5);
    assert_eq!(edge_hits(&recs, "via_pointer", "leaf"), 2);
    assert_clean();
}

#[test]
fn sigint_detaches_and_cleans_up() {
    let Some((_guard, _, prog)) = calls_test("sigint_detaches_and_cleans_up", "sigint") else {
        return;
    };

    // Every process running the binary (no command, no pid): stops on SIGINT.
    let mut probe = Command::new(BIN)
        .args(["probe", "exact", "--window", "100ms", "--binary"])
        .arg(&prog)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(probe.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap(); // a window went by: attached
    assert!(first.contains("\"coverage\""), "{first}");
    assert!(
        !tracemerge_ebpf::leftover_programs().is_empty(),
        "probe not loaded?"
    );
    // SAFETY: signalling our own child.
    unsafe { libc_kill(probe.id() as i32, 2) };
    let status = wait_timeout(&mut probe, Duration::from_secs(10));
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(
        rest.lines().last().unwrap().contains("\"watermark\""),
        "{rest}"
    );
    assert_clean();

    // With a command: the interrupt reaches the command, the probe drains
    // and exits with it.
    let mut probe = Command::new(BIN)
        .args(["probe", "exact", "--binary"])
        .arg(&prog)
        .arg("--")
        .arg(&prog)
        .args(["1", "60"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(probe.stderr.take().unwrap());
    let line = line_with(&mut stderr, "attached");
    assert!(line.contains("attached"), "{line}");
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: signalling our own child.
    unsafe { libc_kill(probe.id() as i32, 2) };
    let status = wait_timeout(&mut probe, Duration::from_secs(10));
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert_eq!(status.code(), Some(130), "{rest}"); // 128 + SIGINT, from the command
    assert!(rest.contains("summary"), "{rest}");
    assert_clean();
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

#[test]
fn watch_prints_verdict_and_conflict_changes_as_they_happen() {
    let Some((_guard, dir, prog)) = calls_test(
        "watch_prints_verdict_and_conflict_changes_as_they_happen",
        "watch",
    ) else {
        return;
    };
    let graph = calls_graph(&dir);
    let run = run_calls(
        Command::new(BIN)
            .arg("watch")
            .arg("--graph")
            .arg(&graph)
            .args(["exact", "--artifact", "calls@test"]),
        &dir,
        &prog,
        "3",
    );
    let changes = ndjson(&String::from_utf8(run.stdout).unwrap());
    assert!(
        changes
            .iter()
            .all(|c| c["kind"] == "verdict" || c["kind"] == "conflict"),
        "{changes:?}"
    );
    // First the static verdict, then the runtime evidence flips it.
    assert!(changes.iter().any(|c| c["diff"] == 1
        && c["verdict"]["target"] == "via_pointer"
        && c["verdict"]["state"] == "static_unreachable"));
    assert!(changes.iter().any(|c| c["diff"] == 1
        && c["verdict"]["target"] == "via_pointer"
        && c["verdict"]["state"] == "contested"));
    assert!(changes.iter().any(|c| c["diff"] == 1
        && c["conflict"]["kind"] == "runtime_edge_not_in_static"
        && c["conflict"]["caller"] == "main"
        && c["conflict"]["callee"] == "via_pointer"));
    assert_clean();
}

/// `watch … exact --budget`: once the hot function leaves the probes its
/// edges are estimated, no coverage claims it from then on (so the engine
/// never finds it unobserved), while a function that never runs is found
/// unobserved; `-o` keeps the records `watch` merged.
#[test]
fn watch_with_a_budget_estimates_paused_functions_and_never_claims_them() {
    let Some(_guard) =
        bpf_or_skip("watch_with_a_budget_estimates_paused_functions_and_never_claims_them")
    else {
        return;
    };
    let dir = scratch("watch-budget");
    let prog = program(&dir, "hot");
    let graph = dir.join("graph.ndjson");
    std::fs::write(
        &graph,
        concat!(
            r#"{"type":"graph","artifact":"hot@test","at":0,"nodes":["main","phase_a","phase_b","hot","cold_once","never_called"],"#,
            r#""edges":[["main","phase_a"],["main","phase_b"],["phase_a","hot"],["phase_b","hot"],["main","cold_once"],["main","never_called"]],"entrypoints":["main"]}"#,
            "\n",
            r#"{"type":"targets","artifact":"hot@test","at":0,"symbols":["hot","cold_once","never_called"]}"#,
            "\n"
        ),
    )
    .unwrap();
    let functions = dir.join("functions.txt");
    std::fs::write(
        &functions,
        "main\nphase_a\nphase_b\nhot\ncold_once\nnever_called\n",
    )
    .unwrap();
    let records_file = dir.join("records.ndjson");
    let run = run_ok(
        Command::new(BIN)
            .arg("watch")
            .arg("--graph")
            .arg(&graph)
            .args(["--min-coverage", "200ms"])
            .args(["exact", "--artifact", "hot@test", "--budget", "10%"])
            .args(["--window", "100ms", "--binary"])
            .arg(&prog)
            .arg("--functions")
            .arg(&functions)
            .arg("-o")
            .arg(&records_file)
            .arg("--")
            .arg(&prog)
            .arg("1.0"),
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    let budget = &summary(&stderr)["budget"];
    assert_eq!(
        budget["paused_functions"],
        serde_json::json!(["hot"]),
        "{budget}"
    );

    let records = records(&records_file);
    let first_estimate = records
        .iter()
        .filter(|r| r["type"] == "edge" && r["callee"] == "hot" && r["estimated"] == true)
        .map(|r| r["at"].as_u64().unwrap())
        .min()
        .expect("estimated edges of the paused function");
    // Before the pause its edges were counted exactly; cold edges always are.
    assert!(records.iter().any(|r| r["type"] == "edge"
        && r["callee"] == "hot"
        && r["estimated"].as_bool() != Some(true)
        && r["at"].as_u64().unwrap() < first_estimate));
    for r in records.iter().filter(|r| r["type"] == "edge") {
        if r["callee"] != "hot" {
            assert_ne!(r["estimated"], true, "{r}");
        }
    }
    // Coverage claims the paused function only for windows that ended
    // before it left the probes; the function that never runs all along.
    let coverage: Vec<&Value> = records.iter().filter(|r| r["type"] == "coverage").collect();
    let claims = |r: &Value, f: &str| r["symbols"].as_array().unwrap().iter().any(|s| s == f);
    assert!(coverage
        .iter()
        .any(|c| c["from"].as_u64().unwrap() >= first_estimate));
    for c in &coverage {
        if claims(c, "hot") {
            assert!(c["to"].as_u64().unwrap() < first_estimate, "{c}");
        }
        assert!(claims(c, "never_called") || c["symbols"].as_array().unwrap().is_empty());
    }

    // What the engine made of it: the paused function is never unobserved,
    // the one that never ran is (cold_once may be until it runs, at the end).
    let changes = ndjson(&String::from_utf8(run.stdout).unwrap());
    let unobserved = |f: &str| {
        changes.iter().any(|c| {
            c["diff"] == 1
                && c["conflict"]["kind"] == "reachable_but_unobserved"
                && c["conflict"]["symbol"] == f
        })
    };
    assert!(unobserved("never_called"), "{changes:?}");
    assert!(!unobserved("hot"), "{changes:?}");
    assert!(changes.iter().any(|c| c["diff"] == 1
        && c["verdict"]["target"] == "hot"
        && c["verdict"]["state"] == "confirmed_reachable"));
    assert_clean();
}

/// `probe etw` is the Windows collector: elsewhere it says so and fails,
/// before touching anything.
#[cfg(not(windows))]
#[test]
fn probe_etw_needs_windows() {
    let out = Command::new(BIN)
        .args(["probe", "etw", "--duration", "1s", "--window", "500ms"])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("ETW needs Windows"), "{stderr}");
    assert!(out.stdout.is_empty());
    // Its options parse like the other probes' (a bad one is a usage error).
    let out = Command::new(BIN)
        .args(["probe", "etw", "--provider", "not-a-guid"])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("invalid GUID"), "{stderr}");
}

/// `probe plan` reads the binary only: no root, no BPF.
#[test]
fn plan_names_each_entry_kind_and_summarizes() {
    let dir = scratch("probe-plan");
    let exe = tracemerge_ebpf::bench::build_entries_program(&dir).unwrap();
    let functions = dir.join("functions.txt");
    std::fs::write(
        &functions,
        "entry_push\nentry_rip\nentry_nop5\nentry_endbr_push\nentry_nops\nno_such_fn\n",
    )
    .unwrap();
    let out = run_ok(
        Command::new(BIN)
            .args(["probe", "plan", "--json", "--binary"])
            .arg(&exe)
            .arg("--functions")
            .arg(&functions),
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let entry = |name: &str| -> (String, u64) {
        let f = doc["functions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["function"] == name)
            .unwrap_or_else(|| panic!("{name} missing: {doc}"));
        (
            f["entry"].as_str().unwrap().to_string(),
            f["probe_offset"].as_u64().unwrap(),
        )
    };
    let nop = if tracemerge_ebpf::plan::KernelFeatures::running().nop_probes {
        "nop_optimized"
    } else {
        "single_stepped"
    };
    assert_eq!(entry("entry_push"), ("emulated".into(), 0));
    assert_eq!(entry("entry_rip"), ("single_stepped".into(), 0));
    assert_eq!(entry("entry_nop5"), (nop.into(), 0));
    assert_eq!(entry("entry_endbr_push"), ("emulated".into(), 4));
    assert_eq!(entry("entry_nops"), ("emulated".into(), 0));
    assert_eq!(doc["summary"]["functions"], 5);
    assert_eq!(doc["summary"]["emulated"], 3);
    assert_eq!(doc["not_found"], serde_json::json!(["no_such_fn"]));

    // The table: a row per function and the summary line.
    let out = run_ok(
        Command::new(BIN)
            .args(["probe", "plan", "--binary"])
            .arg(&exe),
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("entry_rip ") && l.contains("single_stepped")),
        "{text}"
    );
    assert!(text.lines().any(|l| l.starts_with("summary: ")), "{text}");

    // Not an ELF file: the path and the reason, a non-zero exit.
    let out = Command::new(BIN)
        .args(["probe", "plan", "--binary"])
        .arg(&functions)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&functions.display().to_string()), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// A budget that is not a percentage is refused before anything runs.
#[test]
fn bad_budget_is_refused_with_its_reason() {
    for bad in ["ten", "0", "-5%"] {
        let out = Command::new(BIN)
            .args(["probe", "exact", "--binary", "/bin/true"])
            .arg(format!("--budget={bad}"))
            .arg("--")
            .arg("/bin/true")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("bad budget"), "{bad}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// tests/programs/patched.c built with gcc -fpatchable-function-entry=5
/// (a nop at every entry).
fn patched_program(dir: &Path) -> PathBuf {
    program_with(
        dir,
        "patched",
        &["-fpatchable-function-entry=5", "-pthread"],
    )
}

/// The calls of patched.c's known pattern made after the patch went in
/// (tests/programs/patched.c).
fn assert_patched_pattern(recs: &[Value]) {
    assert_eq!(edge_hits(recs, "main", "middle"), 1000);
    assert_eq!(edge_hits(recs, "middle", "leaf"), 3000);
    assert_eq!(edge_hits(recs, "main", "dispatch"), 700);
    assert_eq!(edge_hits(recs, "dispatch", "red"), 300);
    assert_eq!(edge_hits(recs, "dispatch", "blue"), 400);
    assert_eq!(edge_hits(recs, "worker", "leaf"), 20_000);
    assert_eq!(edge_hits(recs, "late_worker", "leaf"), 2000);
    assert_eq!(edge_hits(recs, "libc.so.6!start_thread", "late_worker"), 2);
    for r in recs.iter().filter(|r| r["type"] == "edge") {
        assert!(r["artifact"].as_str().unwrap().starts_with("build-id:"));
        assert!(r.get("estimated").is_none_or(|e| e == false), "{r}");
    }
}

/// `--entries patch` with a command: patched at its exec, so every call is
/// counted, the threads' starts and main's own call too; with the entries
/// program, nop entries are patched and the other functions get uprobes.
#[test]
fn exact_entries_patch_counts_every_call_of_a_command() {
    let Some(_guard) = bpf_or_skip("exact_entries_patch_counts_every_call_of_a_command") else {
        return;
    };
    let dir = scratch("patch-command");
    let prog = patched_program(&dir);
    let out = dir.join("records.ndjson");
    let mut probe = Command::new(BIN)
        .args([
            "probe",
            "exact",
            "--entries",
            "patch",
            "--window",
            "100ms",
            "--binary",
        ])
        .arg(&prog)
        .arg("-o")
        .arg(&out)
        .arg("--")
        .arg(&prog)
        .arg("exit")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(probe.stdin.as_mut().unwrap()).unwrap();
    let run = probe.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let spins: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("spins "))
        .unwrap()
        .parse()
        .unwrap();
    let recs = records(&out);
    assert_patched_pattern(&recs);
    assert_eq!(edge_hits(&recs, "spinner", "spin"), spins);
    assert_eq!(edge_hits(&recs, "libc.so.6!start_thread", "worker"), 4);
    assert_eq!(edge_hits(&recs, "libc.so.6!start_thread", "spinner"), 1);
    let cov: Vec<&Value> = recs.iter().filter(|r| r["type"] == "coverage").collect();
    assert!(!cov.is_empty());
    assert!(
        cov.iter()
            .all(|c| c["symbols"].as_array().unwrap().len() == 15),
        "{cov:?}"
    );
    let s = summary(&stderr);
    assert_eq!(s["patched"]["functions"], 15, "{s}");
    assert_eq!(s["functions"], 15, "{s}");
    assert_eq!(s["losses"], 0, "{s}");

    // Mixed: two nop entries patched, the rest under uprobes.
    let entries = tracemerge_ebpf::bench::build_entries_program(&dir).unwrap();
    let out = dir.join("entries.ndjson");
    let run = run_ok(
        Command::new(BIN)
            .args(["probe", "exact", "--entries", "patch", "--binary"])
            .arg(&entries)
            .arg("-o")
            .arg(&out)
            .arg("--")
            .arg(&entries)
            .arg("3000"),
    );
    let recs = records(&out);
    for f in [
        "entry_push",
        "entry_rip",
        "entry_nop5",
        "entry_endbr_push",
        "entry_nops",
        "entry_endbr",
    ] {
        assert_eq!(edge_hits(&recs, "call_all", f), 3000, "{f}");
    }
    let s = summary(&String::from_utf8_lossy(&run.stderr));
    assert_eq!(s["patched"]["functions"], 2, "{s}");
    assert!(s["entries"]["single_stepped"].as_u64().unwrap() > 0, "{s}");
    assert_clean();
}

/// `--entries patch --pid`: a running process is patched while its
/// threads run, counted exactly, and its code is the file's again when
/// the probe ends (it goes on running).
#[test]
fn exact_entries_patch_on_a_pid_restores_its_code() {
    let Some(_guard) = bpf_or_skip("exact_entries_patch_on_a_pid_restores_its_code") else {
        return;
    };
    let dir = scratch("patch-pid");
    let prog = patched_program(&dir);
    let mut target = Command::new(&prog)
        .arg("stay")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut target_out = BufReader::new(target.stdout.take().unwrap());
    let mut line = String::new();
    target_out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    let out = dir.join("records.ndjson");
    let mut probe = Command::new(BIN)
        .args(["probe", "exact", "--entries", "patch", "--window", "100ms"])
        .args(["--duration", "2s", "--binary"])
        .arg(&prog)
        .args(["--pid", &target.id().to_string(), "-o"])
        .arg(&out)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(probe.stderr.take().unwrap());
    let line = line_with(&mut stderr, "patched");
    assert!(line.contains("patched 15 nop entries"), "{line}");
    writeln!(target.stdin.as_mut().unwrap()).unwrap();
    line_with(&mut target_out, "done");
    let status = wait_timeout(&mut probe, Duration::from_secs(20));
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert!(status.success(), "{rest}");
    let s = summary(&rest);
    assert_eq!(s["patched"]["restored"], true, "{s}");
    // Its code equals the file's again.
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", target.id())).unwrap();
    let file = std::fs::read(&prog).unwrap();
    let mem = std::fs::File::open(format!("/proc/{}/mem", target.id())).unwrap();
    let mut checked = 0;
    for l in maps.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 6 || !f[1].contains('x') || Path::new(f[5]) != prog {
            continue;
        }
        let (a, b) = f[0].split_once('-').unwrap();
        let a = u64::from_str_radix(a, 16).unwrap();
        let b = u64::from_str_radix(b, 16).unwrap();
        let offset = usize::from_str_radix(f[2], 16).unwrap();
        let len = ((b - a) as usize).min(file.len() - offset);
        let mut buf = vec![0; len];
        std::os::unix::fs::FileExt::read_exact_at(&mem, &mut buf, a).unwrap();
        assert!(buf == file[offset..offset + len], "code at {a:#x} differs");
        checked += len;
    }
    assert!(checked > 0);
    writeln!(target.stdin.as_mut().unwrap()).unwrap();
    assert!(wait_timeout(&mut target, Duration::from_secs(10)).success());
    let recs = records(&out);
    assert_patched_pattern(&recs);
    assert_clean();
}

/// `probe plan --entries patch` shows the nop entries as patched.
#[test]
fn plan_shows_which_entries_would_be_patched() {
    let dir = scratch("probe-plan-patch");
    let exe = tracemerge_ebpf::bench::build_entries_program(&dir).unwrap();
    let out = run_ok(
        Command::new(BIN)
            .args(["probe", "plan", "--entries", "patch", "--json", "--binary"])
            .arg(&exe),
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    for f in doc["functions"].as_array().unwrap() {
        let patched = f["function"] == "entry_nop5" || f["function"] == "entry_nops";
        assert_eq!(f["entry"] == "patched", patched, "{f}");
    }
    assert_eq!(doc["summary"]["patched"], 2, "{doc}");
    let out = run_ok(
        Command::new(BIN)
            .args(["probe", "plan", "--entries", "patch", "--binary"])
            .arg(&exe),
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("entry_nops ") && l.contains("patched")),
        "{text}"
    );
    assert!(text.contains("2 patched"), "{text}");
}
