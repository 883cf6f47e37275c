//! The ingest suite's streaming run on its own (or, with `--dedup`, its
//! hash-map baseline; `--workers N` runs it on N workers), for a profiler
//! to look at:
//!
//! ```text
//! cargo build --release -p tracemerge-bench --example ingest_stream
//! valgrind --tool=callgrind --separate-threads=yes \
//!     target/release/examples/ingest_stream --records 300000
//! ```
//!
//! Instructions per thread (callgrind) do not move with the machine's load
//! the way times do, so small changes show; `perf record` works too. The
//! records are made before the run starts and are not counted in the times
//! it prints. Allocates with mimalloc, as the `tracemerge` command does.

use std::convert::Infallible;
use std::time::Instant;

use tracemerge_bench::baseline::HashDedup;
use tracemerge_bench::driver::run_to_end;
use tracemerge_bench::suites::ingest::workload;
use tracemerge_bench::IngestPlan;
use tracemerge_dataflow::Options;
use tracemerge_records::{Config, Record};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut plan = IngestPlan {
        functions: 5000,
        records: 1_000_000,
        ttl: 10_000,
        skew: 1.1,
    };
    let mut dedup = false;
    let mut workers = 1;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--records" => plan.records = args.next().ok_or("--records needs a number")?.parse()?,
            "--dedup" => dedup = true,
            "--workers" => workers = args.next().ok_or("--workers needs a number")?.parse()?,
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    let config = Config {
        ttl: plan.ttl,
        ..Config::default()
    };
    let records: Vec<Record> = workload(&plan, plan.records, 1).stream().collect();
    let started = Instant::now();
    if dedup {
        let mut dedup = HashDedup::new(&config);
        for record in records {
            dedup.push(record);
        }
        println!(
            "hash dedup: {:.3} s, {:?}",
            started.elapsed().as_secs_f64(),
            dedup.summary()
        );
    } else {
        let records = records.into_iter().map(Ok::<_, Infallible>);
        let (report, elapsed) = run_to_end(records, &config, Options::threads(workers))?;
        println!(
            "engine, streaming: {:.3} s, digest {}",
            elapsed.as_secs_f64(),
            report.digest
        );
    }
    Ok(())
}
