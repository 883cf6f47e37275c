//! The Lua part of the `probe` suite alone (needs root):
//! `cargo run -p tracemerge-bench --example probe_lua [SCALE] [BUDGET%]`

fn main() {
    let mut args = std::env::args().skip(1);
    let scale = args
        .next()
        .map_or(1000, |s| s.parse().expect("SCALE: a number"));
    let budget = args.next().map_or(10.0, |s| {
        s.trim_end_matches('%')
            .parse()
            .expect("BUDGET: a percentage")
    });
    let _lock = tracemerge_ebpf::lock::exclusive().expect("the BPF lock file");
    let dir = std::env::temp_dir().join("tracemerge-probe-lua");
    match tracemerge_bench::suites::probe_lua::run(&dir, scale, 3, budget) {
        Ok(v) => println!("{}", serde_json::to_string_pretty(&v).unwrap()),
        Err(e) => {
            eprintln!("probe_lua: {e}");
            std::process::exit(1);
        }
    }
}
