//! `memory`: peak RSS of the engine holding many live observed edges, and
//! what one live edge costs, against a plain adjacency list of the same
//! edges.
//!
//! Each measurement is a child process (this program again, started by a
//! [`Launcher`] with the child's task in the [`CHILD_ENV`] variable) that
//! runs the engine over a generated stream: a static graph, then one
//! observation of each of `edges` distinct static edges (all live at the
//! end). A second child runs the same graph with no observations. Each
//! child's peak RSS is the `VmHWM` of its own address space, which it
//! prints before exiting; the parent also records `ru_maxrss` from `wait4`
//! (an upper bound, see `Measured`). The cost per live edge is given two
//! ways, which bracket it:
//!
//! - `bytes_per_live_edge`: the difference of the two peaks over the live
//!   edges. The graph-only peak is a transient of ingesting the snapshot,
//!   higher than what the graph holds when the run with edges peaks (at
//!   its end), so this understates the cost.
//! - `bytes_per_live_edge_same_point`: the peak with edges less the
//!   graph-only child's RSS at the same point of its run: when the final
//!   report is handed over (all rounds done; the ingest's snapshot and
//!   the sink still held). This counts every transient of the run with edges against
//!   them, so it may overstate the cost; `bytes_per_live_edge_at_report`
//!   is the difference of the two children's RSS at that point (what the
//!   edges hold once the transients are over).

use std::convert::Infallible;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use tracemerge_dataflow::{Event, Options};
use tracemerge_records::{Config, Report};
use tracemerge_scenarios::workload::Workload;

use crate::driver::{ratio, sig};
use crate::error::boxed;
use crate::{BenchError, MemoryPlan};

/// The environment variable that carries a child's task (JSON).
pub const CHILD_ENV: &str = "TRACEMERGE_BENCH_CHILD";

/// The prefix of the child's result line on stdout.
const MARK: &str = "tracemerge-bench-child:";

/// How to start this program as a memory child: `program args…`, with the
/// task in [`CHILD_ENV`]; the program must call [`child_main`].
#[derive(Clone, Debug)]
pub struct Launcher {
    pub program: PathBuf,
    pub args: Vec<String>,
}

impl Launcher {
    /// This executable with `args`.
    pub fn current_exe(args: &[&str]) -> Result<Launcher, BenchError> {
        Ok(Launcher {
            program: std::env::current_exe().map_err(BenchError::os("current_exe"))?,
            args: args.iter().map(|s| s.to_string()).collect(),
        })
    }
}

/// Functions of the graph for `edges` live edges: the generated graphs
/// have about 3.4 distinct static edges per function; a margin keeps
/// enough of them.
pub fn functions_for(edges: usize) -> usize {
    (edges / 3).max(100)
}

/// The final report and the RSS (KiB) when it was handed over.
type ReportAndRss = (Report, Option<u64>);

/// The child side: reads the task from [`CHILD_ENV`], runs the engine over
/// the generated stream and prints one result line.
pub fn child_main() -> Result<(), BenchError> {
    let task = std::env::var(CHILD_ENV).map_err(|_| BenchError::NoChildTask)?;
    let task: Value = serde_json::from_str(&task).map_err(|source| BenchError::Json {
        what: CHILD_ENV.into(),
        source,
    })?;
    let get = |key: &'static str| task[key].as_u64().ok_or(BenchError::ChildTaskKey { key });
    let (functions, edges, seed) = (get("functions")?, get("edges")?, get("seed")?);
    let workload = Workload {
        seed,
        functions: functions as usize,
        watermark_every: 100_000,
        ..Workload::default()
    };
    let started = Instant::now();
    let stream = workload.live_edges(edges as usize).map(Ok::<_, Infallible>);
    // The final report, and the RSS when it is handed over (the same
    // point in both children).
    let last: Arc<Mutex<Option<ReportAndRss>>> = Arc::default();
    let slot = last.clone();
    tracemerge_dataflow::run(
        stream,
        &Config::default(),
        Options::threads(1),
        move |event| {
            if let Event::Report { report, last: true } = event {
                let rss = status_kib("VmRSS:");
                *slot.lock().expect("report slot") = Some((report, rss));
            }
        },
    )
    .map_err(boxed)?;
    let (report, rss_at_report) =
        (last.lock().expect("report slot").take()).ok_or(BenchError::NoFinalReport)?;
    let live: usize = report
        .artifacts
        .iter()
        .map(|a| a.observed_edges.len())
        .sum();
    let result = json!({
        "live_edges": live,
        "records": report.stats.records,
        "seconds": started.elapsed().as_secs_f64(),
        "vm_hwm_kib": status_kib("VmHWM:"),
        "vm_rss_at_report_kib": rss_at_report,
    });
    println!("\n{MARK} {result}");
    Ok(())
}

/// A figure of /proc/self/status in KiB: `VmHWM:` (peak RSS) or `VmRSS:`.
fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?;
        rest.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

/// A child's result line and its peak RSS (bytes).
struct Measured {
    result: Value,
    /// The child's own peak RSS: `VmHWM` of its address space, as it
    /// reported it before exiting.
    peak_rss: u64,
    /// Its RSS when the final report was handed over.
    report_rss: Option<u64>,
    /// `ru_maxrss` from `wait4`. Linux folds into it the high-water mark of
    /// the address space the child replaced at exec, that is this (parent)
    /// process's peak when it spawned the child, so it is an upper bound:
    /// exact only while the parent is smaller than the child.
    wait4_maxrss: u64,
    wall: f64,
}

fn spawn(launcher: &Launcher, task: &Value) -> Result<Measured, BenchError> {
    let started = Instant::now();
    let mut child = Command::new(&launcher.program)
        .args(&launcher.args)
        .env(CHILD_ENV, task.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| BenchError::Spawn {
            program: launcher.program.display().to_string(),
            source,
        })?;
    let mut stderr = child.stderr.take().expect("piped");
    let errors = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("piped")
        .read_to_string(&mut out)
        .map_err(BenchError::os("child stdout"))?;
    let (status, usage) = wait4(child.id())?;
    let wall = started.elapsed().as_secs_f64();
    let errors = errors.join().unwrap_or_default();
    // (Under a test harness the line may follow the harness's own text.)
    let line = out
        .lines()
        .find_map(|l| l.find(MARK).map(|i| &l[i + MARK.len()..]));
    let Some(line) = line.filter(|_| status == 0) else {
        let tail: String = errors
            .lines()
            .rev()
            .take(5)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join(" | ");
        return Err(BenchError::ChildFailed {
            status,
            stderr: tail,
        });
    };
    let result: Value = serde_json::from_str(line.trim()).map_err(|source| BenchError::Json {
        what: "child result".into(),
        source,
    })?;
    // ru_maxrss is in KiB on Linux.
    let wait4_maxrss = usage.ru_maxrss.max(0) as u64 * 1024;
    let peak_rss = result["vm_hwm_kib"]
        .as_u64()
        .map_or(wait4_maxrss, |k| k * 1024);
    let report_rss = result["vm_rss_at_report_kib"].as_u64().map(|k| k * 1024);
    Ok(Measured {
        result,
        peak_rss,
        report_rss,
        wait4_maxrss,
        wall,
    })
}

/// Waits for `pid`; its wait status and resource usage.
fn wait4(pid: u32) -> Result<(i32, libc::rusage), BenchError> {
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 writes it and the status for a
    // child of this process that nothing else waits for.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        let r = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
        if r == pid as libc::pid_t {
            return Ok((status, usage));
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(BenchError::Os {
                what: "wait4",
                source: e,
            });
        }
    }
}

/// Bytes of `Vec<Vec<u32>>` holding `edges` edges over `functions` nodes
/// (each inner vector exactly as long as its node's out-degree).
pub fn adjacency_bytes(functions: usize, edges: usize) -> u64 {
    (functions * std::mem::size_of::<Vec<u32>>() + edges * std::mem::size_of::<u32>()) as u64
}

fn mib(bytes: u64) -> f64 {
    sig(bytes as f64 / 1048576.0)
}

pub fn run(plan: &MemoryPlan, seed: u64, log: &mut dyn FnMut(&str)) -> Result<Value, BenchError> {
    let Some(launcher) = &plan.launcher else {
        return Ok(crate::skipped(
            "no way to start a child process of this program was given",
        ));
    };
    let mut sizes = Vec::new();
    // (edges, bytes per edge, baseline rss, seconds of both children)
    let mut previous: Option<(usize, f64, u64, f64)> = None;
    for &edges in &plan.edges {
        let functions = functions_for(edges);
        if let Some((prev_edges, per_edge, prev_base, prev_seconds)) = previous {
            let scale = edges as f64 / prev_edges as f64;
            let need = (prev_base as f64 * scale + per_edge * edges as f64) as u64;
            let seconds = prev_seconds * scale;
            let available = crate::machine::meminfo_kib("MemAvailable").map(|k| k * 1024);
            let mut reasons = Vec::new();
            if seconds > plan.max_seconds {
                reasons.push(format!(
                    "estimated {seconds:.0} s for both children, over the limit of {:.0} s",
                    plan.max_seconds
                ));
            }
            if let Some(available) = available.filter(|a| need as f64 > *a as f64 * 0.8) {
                reasons.push(format!(
                    "estimated peak {:.1} GiB, over 80% of the {:.1} GiB available",
                    need as f64 / 1073741824.0,
                    available as f64 / 1073741824.0
                ));
            }
            let reason = (!reasons.is_empty()).then(|| reasons.join("; "));
            if let Some(reason) = reason {
                log(&format!("memory: {edges} live edges skipped: {reason}"));
                sizes.push(json!({
                    "live_edges": edges,
                    "skipped": reason,
                    "estimate": {
                        "peak_rss_mib": mib(need),
                        "seconds": sig(seconds),
                        "from_live_edges": prev_edges,
                    },
                }));
                continue;
            }
        }
        log(&format!(
            "memory: {functions}-function graph alone, then with {edges} live edges (child processes)"
        ));
        let task = |edges: usize| json!({"functions": functions, "edges": edges, "seed": seed});
        let base = spawn(launcher, &task(0))?;
        let full = spawn(launcher, &task(edges))?;
        let live = full.result["live_edges"].as_u64().unwrap_or(0);
        let delta = full.peak_rss.saturating_sub(base.peak_rss);
        let per_edge = ratio(delta as f64, live as f64);
        // Against the graph-only state at the same point (the report).
        let same_point =
            (base.report_rss).map(|b| ratio(full.peak_rss.saturating_sub(b) as f64, live as f64));
        let at_report = (base.report_rss.zip(full.report_rss))
            .map(|(b, f)| ratio(f.saturating_sub(b) as f64, live as f64));
        let adjacency = adjacency_bytes(functions, live as usize);
        let adjacency_per_edge = ratio(adjacency as f64, live as f64);
        log(&format!(
            "memory: {live} live edges: peak {} MiB ({} MiB without them; {} MiB at the report), \
             {:.0} bytes per live edge ({} against the graph-only report point; {} at the report)",
            mib(full.peak_rss),
            mib(base.peak_rss),
            base.report_rss.map_or("?".into(), |b| mib(b).to_string()),
            per_edge,
            same_point.map_or("?".into(), |b| format!("{b:.0}")),
            at_report.map_or("?".into(), |b| format!("{b:.0}")),
        ));
        sizes.push(json!({
            "live_edges": live,
            "functions": functions,
            "peak_rss_mib": mib(full.peak_rss),
            "graph_only_peak_rss_mib": mib(base.peak_rss),
            "wait4_maxrss_mib": mib(full.wait4_maxrss),
            "bytes_per_live_edge": sig(per_edge),
            "bytes_per_live_edge_same_point": same_point.map(sig),
            "bytes_per_live_edge_at_report": at_report.map(sig),
            "rss_at_report_mib": full.report_rss.map(mib),
            "graph_only_rss_at_report_mib": base.report_rss.map(mib),
            "adjacency_bytes": adjacency,
            "adjacency_bytes_per_edge": sig(adjacency_per_edge),
            "ratio_vs_adjacency": sig(ratio(per_edge, adjacency_per_edge)),
            "child_seconds": sig(full.wall),
            "graph_only_child_seconds": sig(base.wall),
        }));
        previous = Some((edges, per_edge, base.peak_rss, base.wall + full.wall));
    }
    // Headline figures from the largest measured size.
    let measured = sizes
        .iter()
        .filter(|s| s.get("skipped").is_none())
        .max_by_key(|s| s["live_edges"].as_u64().unwrap_or(0))
        .cloned();
    let mut out = json!({
        "adjacency": "Vec<Vec<u32>> indexed by caller: 24 bytes per function + 4 per edge",
        "sizes": sizes,
    });
    if let Some(m) = measured {
        out["live_edges"] = m["live_edges"].clone();
        out["peak_rss_mib"] = m["peak_rss_mib"].clone();
        out["bytes_per_live_edge"] = m["bytes_per_live_edge"].clone();
        out["bytes_per_live_edge_same_point"] = m["bytes_per_live_edge_same_point"].clone();
        out["ratio_vs_adjacency"] = m["ratio_vs_adjacency"].clone();
    }
    Ok(out)
}
