//! `ingest`: records/s through the engine on one worker (dedup and live
//! windows over a Zipf-skewed stream of edge observations), against
//! [`HashDedup`], a hand-written hash-map dedup of the same records in the
//! same run: the ceiling for this part of the work.

use std::time::Instant;

use serde_json::{json, Value};
use tracemerge_dataflow::Options;
use tracemerge_records::{Config, Record, Report};
use tracemerge_scenarios::workload::Workload;

use crate::baseline::{DedupSummary, HashDedup};
use crate::driver::{ratio, run_to_end, sig};
use crate::IngestPlan;

/// The ingest stream: a small static graph, then edge observations only
/// (hot edges Zipf-skewed, 2% missing from the graph) with a watermark
/// every 1,000 records, 1 ms apart.
pub fn workload(plan: &IngestPlan, records: usize, seed: u64) -> Workload {
    Workload {
        seed,
        functions: plan.functions,
        records,
        skew: plan.skew,
        hit_share: 0.0,
        coverage_share: 0.0,
        watermark_every: 1000,
        ..Workload::default()
    }
}

/// The engine's final live edges in the terms of [`DedupSummary`].
pub fn summary_of(report: &Report) -> DedupSummary {
    let mut s = DedupSummary::default();
    for a in &report.artifacts {
        for e in &a.observed_edges {
            s.live_edges += 1;
            s.hits += e.hits;
            s.in_static += e.in_static as u64;
        }
    }
    s
}

pub fn run(plan: &IngestPlan, seed: u64, log: &mut dyn FnMut(&str)) -> Result<Value, String> {
    let records: Vec<Record> = workload(plan, plan.records, seed).stream().collect();
    let n = records.len();
    let config = Config {
        ttl: plan.ttl,
        ..Config::default()
    };
    log(&format!(
        "ingest: {n} records through the engine (1 worker)"
    ));
    let copy = records.clone();
    let (report, engine) = run_to_end(
        copy.into_iter().map(Ok::<_, String>),
        &config,
        Options::threads(1),
    )?;

    log("ingest: the same records through the hash-map dedup");
    let started = Instant::now();
    let mut dedup = HashDedup::new(&config);
    for r in records {
        dedup.push(r);
    }
    let hashed = dedup.summary();
    let hash = started.elapsed();

    let engine_rate = n as f64 / engine.as_secs_f64();
    let hash_rate = n as f64 / hash.as_secs_f64();
    let engine_summary = summary_of(&report);
    Ok(json!({
        "records": n,
        "functions": plan.functions,
        "ttl_ms": plan.ttl,
        "skew": plan.skew,
        "workers": 1,
        "engine_seconds": sig(engine.as_secs_f64()),
        "engine_records_per_s": sig(engine_rate),
        "hash_dedup_seconds": sig(hash.as_secs_f64()),
        "hash_dedup_records_per_s": sig(hash_rate),
        "ratio_vs_hash_dedup": sig(ratio(engine_rate, hash_rate)),
        "live_edges": engine_summary.live_edges,
        "live_hits": engine_summary.hits,
        "agree": engine_summary == hashed,
        "hash_dedup_live_edges": hashed.live_edges,
        "hash_dedup_live_hits": hashed.hits,
    }))
}
