//! `replay`: a large recorded stream replayed from a file end to end
//! (reading, decoding, the engine, the final report), in records/s.
//!
//! The file is a binary replay log (`.tmlog`) written by [`produce`];
//! the replay opens it by content through [`tracemerge_sources`].

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{json, Value};
use tracemerge_dataflow::Options;
use tracemerge_records::{Config, Record};
use tracemerge_scenarios::workload::Workload;

use tracemerge_sources::tmlog::Writer;

use crate::driver::{run_to_end, sig};
use crate::{BenchError, ReplayPlan};

/// Writes `records` as a binary replay log (`.tmlog`) in `dir`; returns
/// its path. The one place that decides the file's format.
pub fn produce(dir: &Path, records: impl Iterator<Item = Record>) -> Result<PathBuf, BenchError> {
    std::fs::create_dir_all(dir).map_err(BenchError::io(dir))?;
    let path = dir.join("replay.tmlog");
    let failed = |e: std::io::Error| BenchError::io(&path)(e);
    let file = std::fs::File::create(&path).map_err(failed)?;
    let mut log = Writer::new(BufWriter::with_capacity(1 << 20, file)).map_err(failed)?;
    for r in records {
        log.write(&r).map_err(failed)?;
    }
    log.finish().map_err(failed)?.flush().map_err(failed)?;
    Ok(path)
}

pub fn run(
    plan: &ReplayPlan,
    seed: u64,
    work_dir: &Path,
    log: &mut dyn FnMut(&str),
) -> Result<Value, BenchError> {
    let workload = Workload {
        seed,
        functions: plan.functions,
        records: plan.records,
        ..Workload::default()
    };
    log(&format!("replay: writing {} records", plan.records));
    let started = Instant::now();
    let path = produce(work_dir, workload.stream())?;
    let write_seconds = started.elapsed().as_secs_f64();
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let format = std::fs::File::open(&path)
        .ok()
        .and_then(|mut f| tracemerge_sources::detect_format(&mut f).ok().flatten())
        .map_or("unknown".to_string(), |f| f.name().to_string());

    log(&format!(
        "replay: replaying {} ({:.0} MB, {format})",
        path.display(),
        bytes as f64 / 1e6
    ));
    let stream = tracemerge_sources::open_inputs(&path.display().to_string(), &Default::default())?;
    let records = stream.map(|item| item.map(|(_, r)| r));
    let result = run_to_end(records, &Config::default(), Options::threads(plan.workers));
    let _ = std::fs::remove_file(&path);
    let (report, elapsed) = result?;
    let n = report.stats.records;
    let seconds = elapsed.as_secs_f64();
    Ok(json!({
        "format": format,
        "records": n,
        "functions": plan.functions,
        "workers": plan.workers,
        "file_bytes": bytes,
        "write_seconds": sig(write_seconds),
        "seconds": sig(seconds),
        "records_per_s": sig(n as f64 / seconds),
        "mb_per_s": sig(bytes as f64 / 1e6 / seconds),
        "digest": report.digest,
    }))
}
