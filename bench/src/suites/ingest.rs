//! `ingest`: records/s through the engine on one worker (dedup and live
//! windows over a Zipf-skewed stream of edge observations), against
//! [`HashDedup`], a hand-written hash-map dedup of the same records in the
//! same run: the ceiling for this part of the work. Each stream runs twice
//! through the engine: streaming (a dataflow round at every watermark, as
//! `replay` and a service run) and as `merge` runs it (final report only:
//! the live evidence enters the dataflow once, at the end). The same is
//! measured on the fleet workload ([`Workload::fleet_stream`]).

use std::convert::Infallible;
use std::time::Instant;

use serde_json::{json, Value};
use tracemerge_dataflow::Options;
use tracemerge_records::{Config, Record, Report};
use tracemerge_scenarios::workload::Workload;

use crate::baseline::{DedupSummary, HashDedup};
use crate::driver::{ratio, run_to_end, sig};
use crate::{BenchError, IngestPlan};

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

/// One stream through the engine, streaming and as `merge`, and through
/// the hash-map dedup.
fn measure(
    records: Vec<Record>,
    config: &Config,
    log: &mut dyn FnMut(&str),
) -> Result<Value, BenchError> {
    let n = records.len();
    log(&format!(
        "ingest: {n} records through the engine, streaming (1 worker)"
    ));
    let (report, engine) = run_to_end(
        records.clone().into_iter().map(Ok::<_, Infallible>),
        config,
        Options::threads(1),
    )?;
    log(&format!(
        "ingest: {n} records through the engine as merge runs it"
    ));
    let mut merge_options = Options::threads(1);
    merge_options.final_only = true;
    merge_options.round_every = 1000;
    let (merged, merge) = run_to_end(
        records.clone().into_iter().map(Ok::<_, Infallible>),
        config,
        merge_options,
    )?;

    log("ingest: the same records through the hash-map dedup");
    let started = Instant::now();
    let mut dedup = HashDedup::new(config);
    for r in records {
        dedup.push(r);
    }
    let hashed = dedup.summary();
    let hash = started.elapsed();

    let engine_rate = n as f64 / engine.as_secs_f64();
    let merge_rate = n as f64 / merge.as_secs_f64();
    let hash_rate = n as f64 / hash.as_secs_f64();
    let engine_summary = summary_of(&report);
    Ok(json!({
        "records": n,
        "workers": 1,
        "engine_seconds": sig(engine.as_secs_f64()),
        "engine_records_per_s": sig(engine_rate),
        "merge_seconds": sig(merge.as_secs_f64()),
        "merge_records_per_s": sig(merge_rate),
        "hash_dedup_seconds": sig(hash.as_secs_f64()),
        "hash_dedup_records_per_s": sig(hash_rate),
        "ratio_vs_hash_dedup": sig(ratio(engine_rate, hash_rate)),
        "merge_ratio_vs_hash_dedup": sig(ratio(merge_rate, hash_rate)),
        "live_edges": engine_summary.live_edges,
        "live_hits": engine_summary.hits,
        "agree": engine_summary == hashed && merged.digest == report.digest,
        "hash_dedup_live_edges": hashed.live_edges,
        "hash_dedup_live_hits": hashed.hits,
    }))
}

pub fn run(plan: &IngestPlan, seed: u64, log: &mut dyn FnMut(&str)) -> Result<Value, BenchError> {
    let config = Config {
        ttl: plan.ttl,
        ..Config::default()
    };
    let records: Vec<Record> = workload(plan, plan.records, seed).stream().collect();
    let mut out = measure(records, &config, log)?;
    log("ingest: the fleet workload");
    let fleet: Vec<Record> = Workload::fleet(seed, plan.records).fleet_stream().collect();
    let fleet = measure(fleet, &config, log)?;
    if let Some(o) = out.as_object_mut() {
        o.insert("functions".into(), json!(plan.functions));
        o.insert("ttl_ms".into(), json!(plan.ttl));
        o.insert("skew".into(), json!(plan.skew));
        o.insert("fleet".into(), fleet);
    }
    Ok(out)
}
