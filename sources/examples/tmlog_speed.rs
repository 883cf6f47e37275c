//! Measures replay log decoding on one core: records/s and MB/s of log.
//!
//! `cargo run --release -p tracemerge-sources --example tmlog_speed [FILE]`
//!
//! FILE is any input (NDJSON, tmlog, gzip, …); it is converted to a log in
//! memory first. Without FILE, the default `tracemerge generate` workload
//! (10,000 functions, 200,000 records) is used.

use std::time::Instant;

use tracemerge_records::Record;
use tracemerge_sources::tmlog::{Reader, Writer};

fn main() {
    let records: Vec<Record> = match std::env::args().nth(1) {
        Some(path) => tracemerge_sources::open(&path)
            .unwrap_or_else(|e| fail(&e.to_string()))
            .map(|item| item.unwrap_or_else(|e| fail(&e.to_string())).1)
            .collect(),
        None => tracemerge_scenarios::workload::Workload {
            functions: 10_000,
            records: 200_000,
            ..Default::default()
        }
        .stream()
        .collect(),
    };
    let ndjson_bytes: usize = records.iter().map(|r| r.to_json().len() + 1).sum();
    let mut writer = Writer::new(Vec::new()).expect("writes to memory");
    let start = Instant::now();
    for r in &records {
        writer.write(r).unwrap_or_else(|e| fail(&e.to_string()));
    }
    let log = writer.finish().expect("writes to memory");
    let encode = start.elapsed().as_secs_f64();
    println!(
        "{} records: {} bytes of NDJSON, {} bytes of tmlog ({:.1}x smaller)",
        records.len(),
        ndjson_bytes,
        log.len(),
        ndjson_bytes as f64 / log.len() as f64
    );
    println!(
        "encode: {:.2} M records/s",
        records.len() as f64 / encode / 1e6
    );
    // Best of a few runs: the first pays for page faults and cold caches.
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        let mut count = 0usize;
        for item in Reader::new("memory", &log[..]).unwrap_or_else(|e| fail(&e.to_string())) {
            item.unwrap_or_else(|e| fail(&e.to_string()));
            count += 1;
        }
        assert_eq!(count, records.len());
        best = best.min(start.elapsed().as_secs_f64());
    }
    println!(
        "decode: {:.2} M records/s, {:.0} MB/s of log ({:.0} MB/s of NDJSON equivalent)",
        records.len() as f64 / best / 1e6,
        log.len() as f64 / best / 1e6,
        ndjson_bytes as f64 / best / 1e6
    );
    // The path `merge` takes: detection, and a location for every record.
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        let stream = tracemerge_sources::from_reader(
            "memory",
            std::io::Cursor::new(log.clone()),
            &tracemerge_sources::Options::default(),
        )
        .unwrap_or_else(|e| fail(&e.to_string()));
        let mut count = 0usize;
        for item in stream {
            item.unwrap_or_else(|e| fail(&e.to_string()));
            count += 1;
        }
        assert_eq!(count, records.len());
        best = best.min(start.elapsed().as_secs_f64());
    }
    println!(
        "decode with locations (tracemerge_sources::from_reader): {:.2} M records/s",
        records.len() as f64 / best / 1e6
    );
}

fn fail(message: &str) -> ! {
    eprintln!("tmlog_speed: {message}");
    std::process::exit(1)
}
