//! `probe` and `etl`: the collectors' own benchmarks, run here so that one
//! results file has every figure. `probe` needs root and eBPF; `etl` needs
//! the ETL traces of `../shared/data/etw/`. Each reports
//! `{"skipped": reason}` when it cannot run.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::{skipped, BenchError, EtlPlan, ProbePlan};

/// The eBPF collector's benchmark (`tracemerge_ebpf::bench::run`).
pub fn probe(plan: &ProbePlan, work_dir: &Path) -> Result<Value, BenchError> {
    if let Some(why) = tracemerge_ebpf::unsupported() {
        return Ok(skipped(why));
    }
    // The probe tests take this lock too: one BPF user at a time, so their
    // leak checks never see our programs.
    let _lock = tracemerge_ebpf::lock::exclusive().map_err(BenchError::os("BPF lock"))?;
    let options = tracemerge_ebpf::bench::Options {
        work_dir: work_dir.join("probe"),
        calls: plan.calls,
        repeats: plan.repeats,
        attach_sizes: plan.attach_sizes.clone(),
    };
    let mut result = tracemerge_ebpf::bench::run(&options)?;
    result["lua"] = crate::suites::probe_lua::run(
        &work_dir.join("probe-lua"),
        plan.lua_scale,
        plan.lua_reference_scale,
        plan.repeats,
        10.0,
    )?;
    Ok(result)
}

/// `../shared/data/etw` beside the workspace this crate was built in, if
/// it is there, else beside the current directory.
pub fn default_etl_dir() -> Option<PathBuf> {
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/etw");
    let here = PathBuf::from("../shared/data/etw");
    [built, here]
        .into_iter()
        .find(|p| p.is_dir())
        .map(|p| p.canonicalize().unwrap_or(p))
}

/// The ETL decoder's speed (`tracemerge_etl::bench::decode_speed`) on every
/// `.etl` file of the directory.
pub fn etl(plan: &EtlPlan) -> Result<Value, BenchError> {
    let Some(dir) = &plan.dir else {
        return Ok(skipped(
            "no ETL directory (../shared/data/etw not found; give --etl-dir)",
        ));
    };
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "etl"))
            .collect(),
        Err(e) => return Ok(skipped(format!("{}: {e}", dir.display()))),
    };
    if files.is_empty() {
        return Ok(skipped(format!("no .etl files in {}", dir.display())));
    }
    files.sort();
    let mut results = Vec::new();
    let (mut bytes, mut seconds, mut events) = (0u64, 0f64, 0u64);
    for path in &files {
        let v = tracemerge_etl::bench::decode_speed_runs(path, plan.runs).map_err(|source| {
            BenchError::Etl {
                path: path.clone(),
                source,
            }
        })?;
        bytes += v["bytes"].as_u64().unwrap_or(0);
        events += v["events"].as_u64().unwrap_or(0);
        seconds += v["decode_seconds"].as_f64().unwrap_or(0.0);
        results.push(v);
    }
    Ok(json!({
        "dir": dir.display().to_string(),
        "files": results,
        "total_bytes": bytes,
        "total_events": events,
        "decode_mb_per_s": crate::driver::sig(crate::driver::ratio(bytes as f64 / 1e6, seconds)),
        "decode_events_per_s": crate::driver::sig(crate::driver::ratio(events as f64, seconds)),
    }))
}
