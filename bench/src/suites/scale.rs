//! `scale`: the ingest workload on 1, 2, … timely workers: records/s and
//! the ratio of the most workers to one.

use std::convert::Infallible;

use serde_json::{json, Value};
use tracemerge_dataflow::Options;
use tracemerge_records::{Config, Record};

use crate::driver::{ratio, run_to_end, sig};
use crate::{BenchError, IngestPlan, ScalePlan};

pub fn run(
    plan: &ScalePlan,
    ingest: &IngestPlan,
    seed: u64,
    log: &mut dyn FnMut(&str),
) -> Result<Value, BenchError> {
    let shape = IngestPlan {
        functions: plan.functions,
        ..ingest.clone()
    };
    let records: Vec<Record> = super::ingest::workload(&shape, plan.records, seed)
        .stream()
        .collect();
    let n = records.len();
    let config = Config {
        ttl: ingest.ttl,
        ..Config::default()
    };
    let mut runs = Vec::new();
    let mut digests = Vec::new();
    for &workers in &plan.workers {
        log(&format!("scale: {n} records on {workers} worker(s)"));
        let copy = records.clone();
        let (report, elapsed) = run_to_end(
            copy.into_iter().map(Ok::<_, Infallible>),
            &config,
            Options::threads(workers),
        )?;
        digests.push(report.digest.clone());
        runs.push((workers, n as f64 / elapsed.as_secs_f64(), elapsed));
    }
    let first = runs.first().map_or(0.0, |r| r.1);
    let last = runs.last().map_or(0.0, |r| r.1);
    Ok(json!({
        "records": n,
        "functions": plan.functions,
        "ttl_ms": ingest.ttl,
        "runs": runs.iter().map(|(w, rate, t)| json!({
            "workers": w,
            "seconds": sig(t.as_secs_f64()),
            "records_per_s": sig(*rate),
        })).collect::<Vec<_>>(),
        "ratio": sig(ratio(last, first)),
        "ratio_workers": [plan.workers.first(), plan.workers.last()],
        "same_digest": digests.windows(2).all(|w| w[0] == w[1]),
        "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
    }))
}
