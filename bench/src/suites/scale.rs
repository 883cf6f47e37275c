//! `scale`: the ingest workload on 1, 2, … timely workers: records/s and
//! the ratio of the most workers to one; and each run's CPU time by
//! thread, whose busiest thread bounds how fast the run could be with a
//! core for every thread (more than this machine may have).

use std::convert::Infallible;

use serde_json::{json, Value};
use tracemerge_dataflow::threads::ThreadTime;
use tracemerge_dataflow::Options;
use tracemerge_records::{Config, Record};

use crate::driver::{ratio, run_timed, sig};
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
        let (report, elapsed, threads) = run_timed(
            copy.into_iter().map(Ok::<_, Infallible>),
            &config,
            Options::threads(workers),
        )?;
        digests.push(report.digest.clone());
        runs.push((workers, n as f64 / elapsed.as_secs_f64(), elapsed, threads));
    }
    let first = runs.first().map_or(0.0, |r| r.1);
    let last = runs.last().map_or(0.0, |r| r.1);
    let busiest = |threads: &[ThreadTime]| {
        threads
            .iter()
            .map(|t| t.cpu)
            .max()
            .unwrap_or_default()
            .as_secs_f64()
    };
    let busiest_first = runs.first().map_or(0.0, |r| busiest(&r.3));
    let busiest_last = runs.last().map_or(0.0, |r| busiest(&r.3));
    Ok(json!({
        "records": n,
        "functions": plan.functions,
        "ttl_ms": ingest.ttl,
        "runs": runs.iter().map(|(w, rate, t, threads)| json!({
            "workers": w,
            "seconds": sig(t.as_secs_f64()),
            "records_per_s": sig(*rate),
            "cpu_seconds": sig(threads.iter().map(|t| t.cpu.as_secs_f64()).sum()),
            "busiest_thread_cpu_seconds": sig(busiest(threads)),
            "threads": threads.iter().map(|t| json!({
                "thread": format!("{} {}", t.role.name(), t.index),
                "cpu_seconds": sig(t.cpu.as_secs_f64()),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "ratio": sig(ratio(last, first)),
        "busiest_thread_ratio": sig(ratio(busiest_first, busiest_last)),
        "ratio_workers": [plan.workers.first(), plan.workers.last()],
        "same_digest": digests.windows(2).all(|w| w[0] == w[1]),
        "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
    }))
}
