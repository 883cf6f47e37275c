//! Runs the `probe` benchmark suite and prints its JSON (needs root).
//! `cargo run --release -p tracemerge-ebpf --example probe_bench [CALLS]`

fn main() {
    let mut options = tracemerge_ebpf::bench::Options::default();
    if let Some(calls) = std::env::args().nth(1) {
        options.calls = calls.parse().expect("CALLS: a number");
    }
    // No other probe run shares the kernel (or the CPUs' caches) meanwhile.
    let _lock = tracemerge_ebpf::lock::exclusive().expect("the probe lock file");
    match tracemerge_ebpf::bench::run(&options) {
        Ok(v) => println!("{}", serde_json::to_string_pretty(&v).unwrap()),
        Err(e) => {
            eprintln!("probe bench: {e}");
            std::process::exit(1);
        }
    }
}
