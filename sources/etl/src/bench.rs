//! Decode speed against the I/O floor (reading the file).

use std::path::Path;
use std::time::Instant;

use serde_json::{json, Value};

use crate::trace::Trace;

/// Reads `path` (best of `runs` after a warm-up read), then decodes it
/// fully (buffers, decompression, records, typed events, stacks) and
/// reports MB/s, events/s and the ratio decode time / read time.
pub fn decode_speed(path: &Path) -> Result<Value, crate::EtlError> {
    decode_speed_runs(path, 3)
}

pub fn decode_speed_runs(path: &Path, runs: u32) -> Result<Value, crate::EtlError> {
    let io = |e| crate::EtlError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let runs = runs.max(1);
    let mut data = std::fs::read(path).map_err(io)?;
    let mut read_s = f64::MAX;
    for _ in 0..runs {
        let t = Instant::now();
        data = std::fs::read(path).map_err(io)?;
        read_s = read_s.min(t.elapsed().as_secs_f64());
    }
    let mut decode_s = f64::MAX;
    let mut events = 0;
    let mut stacks = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let d = std::fs::read(path).map_err(io)?;
        let trace = Trace::decode(&d)?;
        decode_s = decode_s.min(t.elapsed().as_secs_f64());
        events = trace.counts.records;
        stacks = trace.stacks.len();
    }
    // Phases: buffers only (walk + inflate), then records too.
    let mut inflate_s = f64::MAX;
    let mut records_s = f64::MAX;
    let mut inflated = 0usize;
    for _ in 0..runs {
        let t = Instant::now();
        inflated = crate::file::BufferWalker::new(&data)
            .filter_map(Result::ok)
            .map(|b| b.payload.len())
            .sum();
        inflate_s = inflate_s.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let mut n = 0u64;
        for b in crate::file::BufferWalker::new(&data).filter_map(Result::ok) {
            n += crate::events::EventWalker::new(&b.payload, 8)
                .filter(Result::is_ok)
                .count() as u64;
        }
        std::hint::black_box(n);
        records_s = records_s.min(t.elapsed().as_secs_f64());
    }
    let mb = data.len() as f64 / 1e6;
    Ok(json!({
        "file": path.display().to_string(),
        "bytes": data.len(),
        "events": events,
        "stacks": stacks,
        "runs": runs,
        "read_seconds": read_s,
        "decode_seconds": decode_s,
        "read_mb_per_s": mb / read_s,
        "decode_mb_per_s": mb / decode_s,
        "decode_events_per_s": events as f64 / decode_s,
        "decode_over_read_ratio": decode_s / read_s,
        "inflated_bytes": inflated,
        "phase_buffers_seconds": inflate_s,
        "phase_records_seconds": records_s,
        "inflate_mb_per_s": inflated as f64 / 1e6 / inflate_s,
    }))
}
