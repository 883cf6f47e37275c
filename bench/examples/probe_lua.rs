//! The Lua part of the `probe` suite alone (needs root):
//! `cargo run -p tracemerge-bench --example probe_lua [SCALE] [BUDGET%] [REFERENCE_SCALE]`
//! (SCALE: rounds of the script natively and under the budget, default
//! 20000; REFERENCE_SCALE: rounds under full exact probing, default 200).

fn main() {
    let mut args = std::env::args().skip(1);
    let scale = args
        .next()
        .map_or(20_000, |s| s.parse().expect("SCALE: a number"));
    let budget = args.next().map_or(10.0, |s| {
        s.trim_end_matches('%')
            .parse()
            .expect("BUDGET: a percentage")
    });
    let reference = args
        .next()
        .map_or(200, |s| s.parse().expect("REFERENCE_SCALE: a number"));
    // TRACEMERGE_LUA_BUILD=plain or nop_entries: that build only.
    let only = std::env::var("TRACEMERGE_LUA_BUILD").ok();
    let builds: Vec<_> = tracemerge_bench::suites::probe_lua::builds()
        .into_iter()
        .filter(|(name, _)| only.as_deref().is_none_or(|o| o == *name))
        .collect();
    let _lock = tracemerge_ebpf::lock::exclusive().expect("the BPF lock file");
    let dir = std::env::temp_dir().join("tracemerge-probe-lua");
    match tracemerge_bench::suites::probe_lua::run_builds(
        &dir, &builds, scale, reference, 3, budget,
    ) {
        Ok(v) => println!("{}", serde_json::to_string_pretty(&v).unwrap()),
        Err(e) => {
            eprintln!("probe_lua: {e}");
            std::process::exit(1);
        }
    }
}
