//! The `probe` suite on real C code: Lua 5.4 (vendored by the `lua-src`
//! crate, built by bench/build.rs) running a call-heavy script
//! (bench/lua/calls.lua), native and under `probe exact` of every function,
//! once as built like distribution C and once with a 5-byte nop at every
//! entry, and under `--budget`. Reports wall times as ratios to the native
//! run of the same build in the same run, the per-call cost, the entry plan,
//! and, for the budget: edge recall against full probing, coverage claims
//! of functions that ran, and whether the verdicts on run and never-run
//! targets equal full probing's.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tracemerge_ebpf::budget::Budget;
use tracemerge_ebpf::exact::{Config, Session};
use tracemerge_ebpf::plan::PlanSummary;
use tracemerge_ebpf::run::{self, Collector, Options, Target};
use tracemerge_records::Record;

use crate::error::{boxed, BenchError};

const SCRIPT: &str = include_str!("../../lua/calls.lua");

/// The two Lua builds.
pub fn builds() -> [(&'static str, PathBuf); 2] {
    [
        ("plain", PathBuf::from(env!("TRACEMERGE_LUA_PLAIN"))),
        ("nop_entries", PathBuf::from(env!("TRACEMERGE_LUA_NOP"))),
    ]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// CPU time (user + system) of the waited-for children so far, in seconds.
fn children_cpu_seconds() -> f64 {
    // SAFETY: rusage is plain data that getrusage fills in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    s(usage.ru_utime) + s(usage.ru_stime)
}

/// Wall and CPU seconds of one native run.
fn native_run(exe: &Path, script: &Path, scale: u32) -> Result<(f64, f64), BenchError> {
    let cpu = children_cpu_seconds();
    let wall = native_seconds(exe, script, scale)?;
    Ok((wall, children_cpu_seconds() - cpu))
}

fn native_seconds(exe: &Path, script: &Path, scale: u32) -> Result<f64, BenchError> {
    let started = Instant::now();
    let out = Command::new(exe)
        .arg(script)
        .arg(scale.to_string())
        .output()
        .map_err(|source| BenchError::Spawn {
            program: exe.display().to_string(),
            source,
        })?;
    if !out.status.success() {
        return Err(BenchError::ScriptFailed {
            exe: exe.to_path_buf(),
            script: script.to_path_buf(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(started.elapsed().as_secs_f64())
}

/// What one probed run of the Lua host gave.
pub struct ProbedRun {
    pub seconds: f64,
    /// CPU time of the traced program (user + system: the probes' traps
    /// and BPF program run in its system time).
    pub cpu_seconds: f64,
    pub records: Vec<Record>,
    pub summary: Value,
}

impl ProbedRun {
    /// Calls per (caller, callee), estimated or not.
    pub fn edges(&self) -> BTreeMap<(String, String), u64> {
        let mut edges = BTreeMap::new();
        for r in &self.records {
            if let Record::Edge(e) = r {
                *edges
                    .entry((e.caller.clone(), e.callee.clone()))
                    .or_default() += e.hits;
            }
        }
        edges
    }

    /// Functions that appear in an edge (as caller or callee).
    pub fn executed(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for r in &self.records {
            if let Record::Edge(e) = r {
                out.insert(e.caller.clone());
                out.insert(e.callee.clone());
            }
        }
        out
    }

    /// Functions some coverage record claims.
    pub fn claimed(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for r in &self.records {
            if let Record::Coverage(c) = r {
                out.extend(c.symbols.iter().cloned());
            }
        }
        out
    }
}

/// One run under exact probing of every function of `exe` (with a budget
/// if given).
pub fn probed_run(
    exe: &Path,
    script: &Path,
    scale: u32,
    budget: Option<Budget>,
) -> Result<ProbedRun, BenchError> {
    let started = Instant::now();
    let cpu = children_cpu_seconds();
    let mut records = Vec::new();
    let outcome = run::run(
        &Target::Command(vec![exe.into(), script.into(), scale.to_string().into()]),
        Options {
            duration: Some(Duration::from_secs(600)),
            command_stdout_to_stderr: true,
            // The budget acts at window ends: its windows are short, so
            // that the first, fully probed one costs little.
            ..Options::new(Duration::from_millis(if budget.is_some() {
                50
            } else {
                250
            }))
        },
        |pid| {
            let mut config = Config::new(exe);
            config.pid = pid;
            config.budget = budget;
            config.artifact = Some("lua".into());
            Session::attach(&config).map(Collector::Exact)
        },
        &mut |r| {
            records.extend_from_slice(r);
            Ok(())
        },
    )
    .map_err(BenchError::Probe)?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu_seconds = children_cpu_seconds() - cpu;
    if outcome.exit_code != 0 {
        return Err(BenchError::Exited {
            exe: exe.to_path_buf(),
            code: outcome.exit_code,
        });
    }
    Ok(ProbedRun {
        seconds,
        cpu_seconds,
        records,
        summary: outcome.summary,
    })
}

/// The verdict of each target from the merged records of a run.
fn verdicts(run: &ProbedRun, targets: &[String]) -> Result<BTreeMap<String, String>, BenchError> {
    let mut records = vec![Record::Targets(tracemerge_records::Targets {
        artifact: "lua".into(),
        at: 0,
        symbols: targets.to_vec(),
    })];
    records.extend(run.records.iter().cloned());
    let config = tracemerge_records::Config {
        // The run lasts seconds: count coverage from 100 ms on.
        min_coverage: 100,
        ..Default::default()
    };
    let report = tracemerge_dataflow::merge_records(&records, &config, 1).map_err(boxed)?;
    let report = serde_json::to_value(&report).unwrap_or_default();
    let mut out = BTreeMap::new();
    for artifact in report["artifacts"].as_array().into_iter().flatten() {
        for v in artifact["verdicts"].as_array().into_iter().flatten() {
            out.insert(
                v["target"].as_str().unwrap_or_default().to_string(),
                v["state"].as_str().unwrap_or_default().to_string(),
            );
        }
    }
    Ok(out)
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// Runs the Lua part of the suite: native and `--budget` probing at `scale`
/// (the script's size argument; long, so that windows and the budget
/// settle), and full exact probing at `reference_scale` (every call probed
/// costs hundreds of times the program's own time), for both builds.
/// The script repeats one mix of calls: its edges are those of a few rounds
/// (`budget.edges_not_in_reference` counts the long run's edges that the
/// reference lacks).
pub fn run(
    work_dir: &Path,
    scale: u32,
    reference_scale: u32,
    repeats: usize,
    budget_percent: f64,
) -> Result<Value, BenchError> {
    run_builds(
        work_dir,
        &builds(),
        scale,
        reference_scale,
        repeats,
        budget_percent,
    )
}

/// [`run`] on some of the [`builds`] (the comparisons between the two need
/// both).
pub fn run_builds(
    work_dir: &Path,
    builds: &[(&str, PathBuf)],
    scale: u32,
    reference_scale: u32,
    repeats: usize,
    budget_percent: f64,
) -> Result<Value, BenchError> {
    std::fs::create_dir_all(work_dir).map_err(BenchError::io(work_dir))?;
    let script = work_dir.join("calls.lua");
    std::fs::write(&script, SCRIPT).map_err(BenchError::io(&script))?;
    let mut out = serde_json::Map::new();
    let mut edge_sets = Vec::new();
    for (name, exe) in builds {
        let exe = exe.as_path();
        let (plans, _) = tracemerge_ebpf::exact::plan(exe, None)?;
        let plan = PlanSummary::of(&plans);
        let full = probed_run(exe, &script, reference_scale, None)?;
        let reference_native = median(
            (0..repeats.max(1))
                .map(|_| native_seconds(exe, &script, reference_scale))
                .collect::<Result<_, _>>()?,
        );
        // Native runs just before and after the budgeted run (the
        // machine's load moves): medians of wall and CPU time.
        let mut natives = Vec::new();
        for _ in 0..repeats.max(1).div_ceil(2) {
            natives.push(native_run(exe, &script, scale)?);
        }
        let full_edges = full.edges();
        let calls: u64 = full_edges.values().sum();
        let budgeted = probed_run(
            exe,
            &script,
            scale,
            Some(Budget::new(budget_percent / 100.0)),
        )?;
        for _ in 0..repeats.max(1).div_ceil(2) {
            natives.push(native_run(exe, &script, scale)?);
        }
        let native = median(natives.iter().map(|n| n.0).collect());
        let native_cpu = median(natives.iter().map(|n| n.1).collect());
        let budget_edges = budgeted.edges();
        let found = full_edges
            .keys()
            .filter(|k| budget_edges.contains_key(k))
            .count();
        // Edges full probing found and the budget missed, most called first
        // (their calls in the reference run).
        let mut missed: Vec<(&(String, String), &u64)> = full_edges
            .iter()
            .filter(|(k, _)| !budget_edges.contains_key(*k))
            .collect();
        missed.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let missed: Vec<Value> = missed
            .iter()
            .map(|((caller, callee), n)| json!([caller, callee, n]))
            .collect();
        let not_in_reference = budget_edges
            .keys()
            .filter(|k| !full_edges.contains_key(*k))
            .count();
        // A claim is false when the function ran (full probing saw it) but
        // the budgeted run neither saw it run nor left it out of coverage.
        let ran = full.executed();
        let budget_executed = budgeted.executed();
        let claimed = budgeted.claimed();
        let false_claims: Vec<&String> = claimed
            .iter()
            .filter(|f| ran.contains(*f) && !budget_executed.contains(*f))
            .collect();
        // Targets: functions that ran (every tenth) and that never ran.
        let all: Vec<String> = plans.iter().map(|p| p.name.clone()).collect();
        let mut targets: Vec<String> = all
            .iter()
            .filter(|f| ran.contains(*f))
            .step_by(10)
            .cloned()
            .collect();
        targets.extend(
            all.iter()
                .filter(|f| !ran.contains(*f))
                .step_by(10)
                .cloned(),
        );
        let full_verdicts = verdicts(&full, &targets)?;
        let budget_verdicts = verdicts(&budgeted, &targets)?;
        let differing: Vec<&String> = targets
            .iter()
            .filter(|t| full_verdicts.get(*t) != budget_verdicts.get(*t))
            .collect();
        let mut states: BTreeMap<&str, usize> = BTreeMap::new();
        for s in full_verdicts.values() {
            *states.entry(s.as_str()).or_default() += 1;
        }
        out.insert(
            name.to_string(),
            json!({
                "entries": plan.to_json(),
                "native_s": round(native, 4),
                "native_cpu_s": round(native_cpu, 4),
                "reference_native_s": round(reference_native, 4),
                "exact_s": round(full.seconds, 4),
                "exact_over_native": round(full.seconds / reference_native, 2),
                "calls": calls,
                "edges": full_edges.len(),
                "cost_per_call_ns": ((full.seconds - reference_native) / calls.max(1) as f64 * 1e9).round(),
                "losses": full.summary["losses"],
                "budget": {
                    "percent": budget_percent,
                    "wall_s": round(budgeted.seconds, 4),
                    "wall_over_native": round(budgeted.seconds / native, 3),
                    "cpu_s": round(budgeted.cpu_seconds, 3),
                    "cpu_over_native": round(budgeted.cpu_seconds / native_cpu, 3),
                    "native_walls_s": natives.iter().map(|n| round(n.0, 3)).collect::<Vec<_>>(),
                    "process_system_ms": budgeted.summary["budget"]["process_system_ms"],
                    "cost_scale": budgeted.summary["budget"]["cost_scale"],
                    "edges": budget_edges.len(),
                    "edge_recall_vs_exact": round(found as f64 / full_edges.len().max(1) as f64, 4),
                    "edges_missed": missed,
                    "edges_not_in_reference": not_in_reference,
                    "probe_cost_estimate_ms": budgeted.summary["budget"]["probe_cost_ms"],
                    "paused": budgeted.summary["budget"]["paused"],
                    "visits": budgeted.summary["budget"]["visits"],
                    "estimated_edges": budgeted.summary["budget"]["estimated_edges"],
                    "functions_claimed": claimed.len(),
                    "false_coverage_claims": false_claims,
                    "targets": targets.len(),
                    "target_states_full_exact": states,
                    "verdicts_equal": differing.is_empty(),
                    "verdicts_differing": differing,
                },
            }),
        );
        edge_sets.push(full_edges);
    }
    out.insert("scale".into(), json!(scale));
    out.insert("reference_scale".into(), json!(reference_scale));
    if edge_sets.len() < 2 {
        return Ok(Value::Object(out));
    }
    // The same program: the same edges and counts, whichever the entries.
    let same_edges = edge_sets[0].keys().eq(edge_sets[1].keys());
    let same_counts = edge_sets[0] == edge_sets[1];
    let cost = |k: &str| out[k]["cost_per_call_ns"].as_f64().unwrap_or(f64::NAN);
    let ratio = round(cost("nop_entries") / cost("plain"), 3);
    out.insert("same_edges_both_builds".into(), json!(same_edges));
    out.insert("same_counts_both_builds".into(), json!(same_counts));
    out.insert("nop_cost_over_plain_cost".into(), json!(ratio));
    Ok(Value::Object(out))
}
