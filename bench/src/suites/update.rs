//! `update`: how long the engine takes to bring verdicts and conflicts up
//! to date after a change of 1, 10, 100 or 1,000 runtime edges, on graphs
//! of several sizes, against [`Recompute`] (closures, verdicts, witness
//! paths and conflicts recomputed from scratch in plain Rust).
//!
//! A change is a set of edge observations at one event time `t` followed by
//! watermarks at `t + 1` and `t + 2`; its latency runs from handing the
//! first record to the engine until [`Event::Progress`](tracemerge_dataflow::Event)
//! reports a frontier at or past `t + 2`: every output of the round at
//! `t + 1`, where the change lands, is final. (The round at a watermark is
//! evaluated once event time has passed it, since records at exactly the
//! watermark may still come; the second watermark is what passes it.)
//! Half of the edges (alternating) are observations of static edges, half
//! are new runtime edges, half of those into statically unreachable
//! functions, so under the `union` strategy they change effective
//! reachability and witness paths.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use tracemerge_dataflow::Options;
use tracemerge_records::{Config, EdgeObservation, Record, Report, Time};
use tracemerge_scenarios::workload::Workload;

use crate::baseline::Recompute;
use crate::driver::{ratio, sig, Driver, Latencies};
use crate::{BenchError, UpdatePlan};

/// The engine and the baseline, both loaded with the same stream.
pub struct Loaded {
    pub workload: Workload,
    pub driver: Driver,
    pub baseline: Recompute,
    /// The last watermark sent.
    pub watermark: Time,
    pub load_seconds: f64,
    pub baseline_load_seconds: f64,
    pub static_edges: usize,
}

/// Streams `workload` (graph, targets, runtime records, watermarks) into a
/// fresh engine and a fresh baseline, and waits until the engine has caught up.
pub fn load(workload: Workload, config: &Config) -> Result<Loaded, BenchError> {
    let records: Vec<Record> = workload.stream().collect();
    let started = Instant::now();
    let mut baseline = Recompute::new(config, &workload.artifact);
    for r in &records {
        baseline.push(r);
    }
    let baseline_load_seconds = started.elapsed().as_secs_f64();
    let watermark = records
        .iter()
        .filter_map(|r| match r {
            Record::Watermark { at } => Some(*at),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let started = Instant::now();
    let mut driver = Driver::start(config, Options::threads(1));
    for r in records {
        driver.send(r);
    }
    driver.wait(watermark)?;
    let static_edges = baseline.static_edge_count();
    Ok(Loaded {
        workload,
        driver,
        baseline,
        watermark,
        load_seconds: started.elapsed().as_secs_f64(),
        baseline_load_seconds,
        static_edges,
    })
}

impl Loaded {
    /// Sends `records` and a watermark at `at` to both; the engine's latency.
    pub fn change(&mut self, records: Vec<Record>, at: Time) -> Result<Duration, BenchError> {
        for r in &records {
            self.baseline.push(r);
        }
        // The engine's driver closes the round with a watermark at `at + 1`.
        self.baseline.push(&Record::Watermark { at });
        self.baseline.push(&Record::Watermark { at: at + 1 });
        self.watermark = at + 1;
        self.driver.change(records, at)
    }

    /// Times one recomputation from scratch; also returns its effective reach.
    pub fn recompute(&self) -> (Duration, u64) {
        let started = Instant::now();
        let outcome = self.baseline.recompute();
        let elapsed = started.elapsed();
        std::hint::black_box(&outcome);
        (elapsed, outcome.reach.effective)
    }

    /// Ends the engine and compares its final report with the baseline's
    /// recomputation at the same watermark.
    pub fn finish(self) -> Result<Value, BenchError> {
        let outcome = self.baseline.recompute();
        let expected = self.baseline.artifact_report(&outcome);
        let report = self.driver.finish()?.ok_or(BenchError::NoFinalReport)?;
        Ok(agreement(&report, &expected))
    }
}

/// Whether the engine's report and the baseline agree, part by part.
pub fn agreement(report: &Report, expected: &tracemerge_records::ArtifactReport) -> Value {
    let actual = report
        .artifacts
        .iter()
        .find(|a| a.artifact == expected.artifact)
        .cloned()
        .unwrap_or_default();
    json!({
        "as_of": report.as_of,
        "verdicts": actual.verdicts == expected.verdicts,
        "conflicts": actual.conflicts == expected.conflicts,
        "reach": actual.reach == expected.reach,
        "observed_edges": actual.observed_edges == expected.observed_edges,
    })
}

/// Makes the edge observations of one change.
struct Changes {
    rng: ChaCha8Rng,
    artifact: String,
    statics: Vec<(String, String)>,
    functions: usize,
    unreachable: Vec<String>,
    made: usize,
}

impl Changes {
    fn new(loaded: &Loaded, seed: u64) -> Changes {
        let w = &loaded.workload;
        let statics = w
            .graph()
            .edges
            .into_iter()
            .map(|e| (e.caller, e.callee))
            .collect();
        let unreachable = loaded
            .baseline
            .statically_unreachable()
            .into_iter()
            .map(|id| loaded.baseline.symbol(id).to_string())
            .collect();
        Changes {
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x0c4a_96e5 ^ w.functions as u64),
            artifact: w.artifact.clone(),
            statics,
            functions: w.functions.max(2),
            unreachable,
            made: 0,
        }
    }

    fn make(&mut self, edges: usize, at: Time) -> Vec<Record> {
        (0..edges)
            .map(|_| {
                self.made += 1;
                let novel = self.made.is_multiple_of(2) || self.statics.is_empty();
                let (caller, callee) = if novel {
                    let caller = Workload::function(self.rng.gen_range(0..self.functions));
                    let callee = if !self.unreachable.is_empty() && self.rng.gen_bool(0.5) {
                        self.unreachable[self.rng.gen_range(0..self.unreachable.len())].clone()
                    } else {
                        Workload::function(self.rng.gen_range(0..self.functions))
                    };
                    (caller, callee)
                } else {
                    self.statics[self.rng.gen_range(0..self.statics.len())].clone()
                };
                Record::Edge(EdgeObservation {
                    artifact: self.artifact.clone(),
                    caller,
                    callee,
                    at,
                    hits: 1,
                    source: format!("ebpf:host-{}", self.rng.gen_range(0..16)),
                    event_id: None,
                    estimated: false,
                })
            })
            .collect()
    }
}

/// Measured changes of `edges` edges.
pub fn repeats_for(plan: &UpdatePlan, edges: usize) -> usize {
    ((plan.repeats as f64 / (edges as f64).sqrt()).round() as usize).max(2)
}

fn one_size(
    plan: &UpdatePlan,
    functions: usize,
    seed: u64,
    log: &mut dyn FnMut(&str),
) -> Result<Value, BenchError> {
    let workload = Workload {
        seed,
        functions,
        records: plan.warmup_records,
        ..Workload::default()
    };
    // Default ttl (10 min): nothing expires during the measurement.
    let config = Config::default();
    log(&format!("update: loading a {functions}-function graph"));
    let mut loaded = load(workload, &config)?;
    log(&format!(
        "update: {functions} functions, {} static edges loaded in {:.2} s",
        loaded.static_edges, loaded.load_seconds
    ));
    let mut changes = Changes::new(&loaded, seed);
    let mut at = loaded.watermark;
    // Two changes to warm up, not measured.
    for _ in 0..2 {
        let records = changes.make(1, at);
        loaded.change(records, at + 1)?;
        at += 3;
    }
    let mut per_size = Vec::new();
    let mut engine_by: BTreeMap<usize, Latencies> = BTreeMap::new();
    let mut recompute_by: BTreeMap<usize, Latencies> = BTreeMap::new();
    let mut all_recompute = Latencies::default();
    for &edges in &plan.changes {
        let reps = repeats_for(plan, edges);
        let engine = engine_by.entry(edges).or_default();
        let recompute = recompute_by.entry(edges).or_default();
        for rep in 0..reps {
            let records = changes.make(edges, at);
            engine.record(loaded.change(records, at + 1)?);
            if rep < plan.recompute_repeats.max(1) {
                let (took, _) = loaded.recompute();
                recompute.record(took);
                all_recompute.record(took);
            }
            at += 3;
        }
        log(&format!(
            "update: {functions} functions, {edges}-edge changes: engine p50 {:.3} ms, recompute p50 {:.3} ms",
            engine.p50_ms(),
            recompute.p50_ms()
        ));
        per_size.push(json!({
            "edges": edges,
            "engine": engine.summary(),
            "recompute": recompute.summary(),
            "speedup_p50": sig(ratio(recompute.p50_ms(), engine.p50_ms())),
            "speedup_p99": sig(ratio(recompute.p99_ms(), engine.p99_ms())),
        }));
    }
    let live_edges = loaded.baseline.live_edges();
    let (load_seconds, baseline_load_seconds, static_edges) = (
        loaded.load_seconds,
        loaded.baseline_load_seconds,
        loaded.static_edges,
    );
    let agree = loaded.finish()?;
    Ok(json!({
        "functions": functions,
        "static_edges": static_edges,
        "live_edges_at_end": live_edges,
        "load_seconds": sig(load_seconds),
        "baseline_load_seconds": sig(baseline_load_seconds),
        "recompute": all_recompute.summary(),
        "changes": per_size,
        "agree": agree,
    }))
}

pub fn run(plan: &UpdatePlan, seed: u64, log: &mut dyn FnMut(&str)) -> Result<Value, BenchError> {
    let mut results = Vec::new();
    for &functions in &plan.sizes {
        results.push(one_size(plan, functions, seed, log)?);
    }
    // The headline: 1-edge changes (or the smallest measured) on the graph
    // nearest the headline size.
    let nearest = results.iter().min_by_key(|r| {
        let f = r["functions"].as_u64().unwrap_or(0) as i128;
        (f - plan.headline_functions as i128).abs()
    });
    let mut headline = json!({});
    if let Some(r) = nearest {
        if let Some(c) = r["changes"].as_array().and_then(|cs| {
            cs.iter()
                .min_by_key(|c| c["edges"].as_u64().unwrap_or(u64::MAX))
        }) {
            let engine_p50 = c["engine"]["p50_ms"].as_f64().unwrap_or(0.0);
            let engine_p99 = c["engine"]["p99_ms"].as_f64().unwrap_or(0.0);
            let recompute_p50 = c["recompute"]["p50_ms"].as_f64().unwrap_or(0.0);
            let recompute_p99 = c["recompute"]["p99_ms"].as_f64().unwrap_or(0.0);
            headline = json!({
                "speedup_vs_recompute": sig(ratio(recompute_p50, engine_p50)),
                "speedup_vs_recompute_p99": sig(ratio(recompute_p99, engine_p99)),
                "speedup_graph_functions": r["functions"],
                "speedup_change_edges": c["edges"],
                "engine_p50_ms": engine_p50,
                "engine_p99_ms": engine_p99,
                "recompute_p50_ms": recompute_p50,
            });
        }
    }
    let mut out = json!({
        "graph_sizes": plan.sizes,
        "change_sizes": plan.changes,
        "mean_fanout": Workload::default().mean_fanout,
        "warmup_records": plan.warmup_records,
        "results": results,
    });
    if let (Some(o), Some(h)) = (out.as_object_mut(), headline.as_object()) {
        for (k, v) in h {
            o.insert(k.clone(), v.clone());
        }
    }
    Ok(out)
}
