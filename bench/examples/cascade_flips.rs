//! The cascade suite at one subtree size, with as many flips as asked, for
//! a profiler to look at the flips rather than the graph's load:
//!
//! ```text
//! cargo build --release -p tracemerge-bench --example cascade_flips
//! perf record -g target/release/examples/cascade_flips --fraction 0.01 --repeats 300
//! ```
//!
//! Prints the suite's result (on and off latencies, the recompute's).

use tracemerge_bench::suites::cascade;
use tracemerge_bench::CascadePlan;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut plan = CascadePlan {
        functions: 100_000,
        fractions: vec![0.5],
        repeats: 100,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--fraction" => plan.fractions = vec![value()?.parse()?],
            "--repeats" => plan.repeats = value()?.parse()?,
            "--functions" => plan.functions = value()?.parse()?,
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    let result = cascade::run(&plan, 1, &mut |line| eprintln!("{line}"))?;
    println!("{}", serde_json::to_string_pretty(&result)?);
    Ok(())
}
