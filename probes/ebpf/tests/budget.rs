//! `--budget`: a hot function leaves the probes, its counts become
//! estimates, a visit catches its new caller, cold functions stay exact and
//! covered, and no coverage record claims the paused function.

mod common;

use std::time::Duration;

use std::time::Instant;

use tracemerge_ebpf::budget::{Budget, MAX_VISIT_STRETCH};
use tracemerge_ebpf::exact::{Config, Session};
use tracemerge_ebpf::target::{Command, Event, NEW_EDGE_SIGNAL};
use tracemerge_records::Record;

#[test]
fn budget_pauses_hot_functions_and_keeps_cold_ones_exact() {
    let Some(_guard) = common::bpf_or_skip("budget_pauses_hot_functions_and_keeps_cold_ones_exact")
    else {
        return;
    };
    let dir = common::scratch("budget");
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/hot.c");
    let prog = dir.join("hot");
    common::cc(&src, &prog, &[]);
    let truth = dir.join("hot_calls.txt");
    let mut config = Config::new(&prog);
    config.functions = Some(
        [
            "main",
            "phase_a",
            "phase_b",
            "hot",
            "cold_once",
            "never_called",
        ]
        .map(String::from)
        .to_vec(),
    );
    // 50%: the run is short, and its fully probed warm-up (two windows of
    // `hot` at ~1,000× its own cost) must be paid back before visits.
    let mut budget = Budget::new(0.50);
    budget.revisit_every = 2;
    budget.revisit_for = Duration::from_millis(5);
    config.budget = Some(budget);
    let (records, outcome) = common::trace(
        &config,
        vec![prog.clone().into(), "1.0".into(), truth.clone().into()],
        Duration::from_millis(100),
    );
    assert_eq!(outcome.exit_code, 0);
    let budget = &outcome.summary["budget"];
    eprintln!("{}", outcome.summary);
    assert_eq!(budget["paused_functions"], serde_json::json!(["hot"]));
    assert!(budget["visits"].as_u64().unwrap() >= 2, "{budget}");

    let edges: Vec<_> = records
        .iter()
        .filter_map(|r| match r {
            Record::Edge(e) => Some(e),
            _ => None,
        })
        .collect();
    let total = |caller: &str, callee: &str, estimated: bool| -> u64 {
        edges
            .iter()
            .filter(|e| e.caller == caller && e.callee == callee && e.estimated == estimated)
            .map(|e| e.hits)
            .sum()
    };
    // Cold functions: exact, never estimated.
    assert_eq!(total("main", "cold_once", false), 1);
    assert_eq!(total("main", "phase_a", false), 1);
    assert_eq!(total("main", "phase_b", false), 1);
    assert_eq!(total("main", "cold_once", true), 0);
    // The hot function: estimated once paused; its later caller is found by
    // a visit.
    let first_estimate = edges
        .iter()
        .filter(|e| e.callee == "hot" && e.estimated)
        .map(|e| e.at)
        .min()
        .expect("estimated edges of hot");
    assert!(
        total("phase_b", "hot", true) > 0,
        "phase_b -> hot not found"
    );
    // Estimates extrapolate beyond what was counted while probed, and stay
    // below the calls made: a rate measured under probes is far below the
    // program's own when, as here, the probe costs 1,000× the function (the
    // correction for the probe's cost is capped at 20×).
    let true_calls: u64 = std::fs::read_to_string(&truth)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let exact = total("phase_a", "hot", false);
    let estimated = total("phase_a", "hot", true) + total("phase_b", "hot", true);
    eprintln!("hot: {exact} counted exactly, {estimated} estimated, {true_calls} made");
    assert!(exact > 0 && estimated > exact, "{exact} then {estimated}");
    assert!(
        exact + estimated <= true_calls,
        "{exact} + {estimated} > {true_calls}"
    );
    // Coverage: cold functions are claimed all along; the paused function
    // never in a window that starts after it left the link.
    let coverage: Vec<_> = records
        .iter()
        .filter_map(|r| match r {
            Record::Coverage(c) if !c.symbols.is_empty() => Some(c),
            _ => None,
        })
        .collect();
    assert!(coverage.iter().any(|c| c.from >= first_estimate));
    for c in &coverage {
        assert!(c.symbols.contains(&"never_called".to_string()));
        if c.from >= first_estimate {
            assert!(!c.symbols.contains(&"hot".to_string()), "{c:?}");
        }
    }
    assert_eq!(outcome.summary["losses"], 0);
    common::assert_clean();
}

/// tests/programs/late.c, built in a scratch directory `name`, and its
/// budget configuration: `hot` is paused after the warm-up and only a new
/// edge can bring it back.
fn late_program(name: &str) -> (std::path::PathBuf, Config) {
    let dir = common::scratch(name);
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/late.c");
    let prog = dir.join("late");
    common::cc(&src, &prog, &[]);
    let mut config = Config::new(&prog);
    config.functions = Some(
        ["main", "phase_a", "finale", "hot", "never_called"]
            .map(String::from)
            .to_vec(),
    );
    // 40%: probed, `hot` costs ~1,000× itself, so it is paused after the
    // warm-up all the same; 3 s of the program's own work then earn the
    // credit for a visit of it (the new-edge stop is armed only then) even
    // when the process's system time, which the probes are charged from,
    // carries the loaded machine's noise (interrupts charged to it: up to
    // 0.64 s seen against 0.06-0.09 s, which put 20% in debt).
    let mut budget = Budget::new(0.40);
    // No regular visits: only a new edge can bring `hot` back.
    budget.revisit_every = 1_000_000;
    config.budget = Some(budget);
    (prog, config)
}

/// A paused function's new caller in the program's last moments: `finale`
/// runs once, calls the paused `hot` 7 times and the program exits, long
/// before a visit could come (visits are off here). The kernel sees the
/// new edge `main → finale`, stops the traced thread before `finale` runs,
/// every paused function comes back, and `finale → hot` is counted.
#[test]
fn a_new_edge_brings_paused_functions_back_before_the_program_goes_on() {
    let Some(_guard) =
        common::bpf_or_skip("a_new_edge_brings_paused_functions_back_before_the_program_goes_on")
    else {
        return;
    };
    let (prog, config) = late_program("budget-late");
    let (records, outcome) = common::trace(
        &config,
        vec![prog.clone().into(), "3".into()],
        Duration::from_millis(100),
    );
    assert_eq!(outcome.exit_code, 0);
    let budget = &outcome.summary["budget"];
    eprintln!("{}", outcome.summary);
    assert_eq!(budget["paused_functions"], serde_json::json!(["hot"]));
    let hits = |caller: &str, callee: &str| -> u64 {
        records
            .iter()
            .filter_map(|r| match r {
                Record::Edge(e) if e.caller == caller && e.callee == callee => Some(e.hits),
                _ => None,
            })
            .sum()
    };
    assert_eq!(hits("main", "finale"), 1);
    assert!(
        hits("finale", "hot") >= 7,
        "finale -> hot: {}",
        hits("finale", "hot")
    );
    assert_eq!(budget["new_edge_stops"], 1, "{budget}");
    // `hot` stayed out of the coverage records once paused, visit or not.
    let first_estimate = records
        .iter()
        .filter_map(|r| match r {
            Record::Edge(e) if e.callee == "hot" && e.estimated => Some(e.at),
            _ => None,
        })
        .min()
        .expect("estimated edges of hot");
    for r in &records {
        if let Record::Coverage(c) = r {
            if c.from >= first_estimate {
                assert!(!c.symbols.contains(&"hot".to_string()), "{c:?}");
            }
        }
    }
    assert_eq!(outcome.summary["losses"], 0);
    common::assert_clean();
}

/// The visit a new-edge stop starts begins while the traced thread is
/// stopped, and the thread may wait a while before it runs again (a loaded
/// machine, the collector busy). Neither a window that ends meanwhile nor
/// the wait may end that visit: `finale`'s calls of `hot` come after it.
/// Here a window ends right after the stop, and the thread stays stopped
/// longer than any visit lasts in wall time before it is resumed.
#[test]
fn a_new_edge_visit_lasts_until_the_program_has_gone_on() {
    let Some(_guard) = common::bpf_or_skip("a_new_edge_visit_lasts_until_the_program_has_gone_on")
    else {
        return;
    };
    let (prog, mut config) = late_program("budget-late-window");
    let mut command = Command::spawn(&[prog.into(), "3".into()], false).unwrap();
    config.pid = Some(command.pid);
    let mut session = Session::attach(&config).unwrap();
    session.stop_on_new_edges(command.pid, NEW_EDGE_SIGNAL);
    command.resume();
    let mut records = Vec::new();
    let mut stops = 0;
    let window = Duration::from_millis(100);
    let mut window_end = Instant::now() + window;
    // Twice the longest a visit is planned to last.
    let longest_visit = config
        .budget
        .unwrap()
        .revisit_for
        .mul_f64(MAX_VISIT_STRETCH);
    // The collection loop of `run::run`, with a window's end and a wait
    // forced between the stop and the resume.
    let exit_code = loop {
        std::thread::sleep(Duration::from_millis(5));
        session.tick();
        match command.poll() {
            Event::Running => {}
            Event::NewEdge => {
                stops += 1;
                session.new_edge_stop();
                records.extend(session.drain().unwrap());
                std::thread::sleep(longest_visit * 2);
                session.tick();
                command.resume();
            }
            Event::Exiting => {
                session.remember_process(command.pid);
                records.extend(session.finish().unwrap());
                command.resume();
                break loop {
                    match command.poll() {
                        Event::Exited(code) => break code,
                        Event::Running => std::thread::sleep(Duration::from_millis(1)),
                        _ => command.resume(),
                    }
                };
            }
            Event::Exited(code) => panic!("exited ({code}) without an exit stop"),
        }
        if Instant::now() >= window_end {
            records.extend(session.drain().unwrap());
            window_end = Instant::now() + window;
        }
    };
    assert_eq!(exit_code, 0);
    let summary = session.summary().to_json();
    drop(session);
    eprintln!("{summary}");
    assert_eq!(stops, 1);
    assert_eq!(
        summary["budget"]["paused_functions"],
        serde_json::json!(["hot"])
    );
    let edges = common::edges(&records);
    let hits = |caller: &str, callee: &str| {
        edges
            .get(&(caller.to_string(), callee.to_string()))
            .copied()
            .unwrap_or(0)
    };
    assert_eq!(hits("main", "finale"), 1);
    assert!(
        hits("finale", "hot") >= 7,
        "finale -> hot: {}",
        hits("finale", "hot")
    );
    assert_eq!(summary["losses"], 0);
    common::assert_clean();
}
