//! What a probed call on the 5-byte-nop entry (the kernel's uprobe
//! trampoline, no trap) costs, split: the kernel's entry path alone (an
//! empty BPF program: `r0 = 0; exit`) against the exact-mode program, with
//! the kernel's BPF run-time statistics off (as in production) and on (as
//! when the bench reads `run_time_ns`, which adds two clock reads per run).
//! All variants alternate in one invocation, so their ratios share the
//! machine's load. Needs root.
//! `cargo run --release -p tracemerge-ebpf --example probe_floor [CALLS] [ROUNDS]`

use std::path::Path;
use std::process::Command;

use serde_json::json;
use tracemerge_ebpf::exact::{Config, Session};
use tracemerge_ebpf::plan::EntryKind;
use tracemerge_ebpf::{bench, elf, exact, sys};

const FUNCTION: &str = "entry_nop5";
const STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

fn ns_per_call(exe: &Path, calls: u64) -> f64 {
    let out = Command::new(exe)
        .args([&calls.to_string(), FUNCTION])
        .output()
        .expect("running the entries program");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("ns per call")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn round3(x: f64) -> f64 {
    (x * 1e3).round() / 1e3
}

/// ns per call under the exact-mode program, the calls it counted, and
/// the program's own ns per run when statistics are on.
fn exact_run(exe: &Path, calls: u64, stats: bool) -> (f64, u64, Option<f64>) {
    let mut config = Config::new(exe);
    config.functions = Some(vec![FUNCTION.into()]);
    let mut session = Session::attach(&config).expect("attaching");
    let before = std::fs::read_to_string(STATS).unwrap_or_default();
    if stats {
        std::fs::write(STATS, "1").expect("enabling BPF statistics");
    }
    let ns = ns_per_call(exe, calls);
    let prog = session
        .program_stats()
        .filter(|&(_, runs)| stats && runs > 0)
        .map(|(ns, runs)| ns as f64 / runs as f64);
    let _ = std::fs::write(STATS, before.trim());
    let counted = session
        .finish()
        .expect("draining")
        .iter()
        .filter_map(|r| match r {
            tracemerge_records::Record::Edge(e) if e.callee == FUNCTION => Some(e.hits),
            _ => None,
        })
        .sum();
    (ns, counted, prog)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let calls: u64 = args.next().map_or(1_000_000, |s| s.parse().expect("CALLS"));
    let rounds: usize = args.next().map_or(5, |s| s.parse().expect("ROUNDS"));
    if let Some(why) = tracemerge_ebpf::unsupported() {
        eprintln!("probe_floor: {why}");
        std::process::exit(1);
    }
    let _lock = tracemerge_ebpf::lock::exclusive().expect("the BPF lock file");
    let dir = std::env::temp_dir().join("tracemerge-probe-floor");
    let exe = bench::build_entries_program(&dir).expect("building entries.c");
    let exe = std::fs::canonicalize(exe).unwrap();
    let info = elf::ElfInfo::read(&exe).expect("reading entries");
    let (plans, _) = exact::plan(&exe, Some(&[FUNCTION.to_string()])).expect("plan");
    assert_eq!(
        plans[0].kind,
        EntryKind::NopOptimized,
        "this kernel does not optimize the 5-byte nop"
    );
    let offset = info.file_offset(plans[0].probe_addr).unwrap();
    // r0 = 0; exit
    let empty: [u8; 16] = [0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];
    let prog = sys::prog_load(
        sys::PROG_TYPE_KPROBE,
        sys::TRACE_UPROBE_MULTI,
        &empty,
        "GPL",
        "tm_floor",
    )
    .expect("loading the empty program");
    let (mut plain, mut floor, mut exact, mut exact_stats, mut prog_ns) =
        (vec![], vec![], vec![], vec![], vec![]);
    let mut rounds_out = Vec::new();
    for _ in 0..rounds {
        let p = ns_per_call(&exe, calls);
        let link = sys::uprobe_multi_link(&prog, &exe, &[offset], &[0], 0).expect("attaching");
        let f = ns_per_call(&exe, calls);
        drop(link);
        let (e, counted, _) = exact_run(&exe, calls, false);
        assert_eq!(counted, calls, "every call counted");
        let (es, counted, bpf) = exact_run(&exe, calls, true);
        assert_eq!(counted, calls, "every call counted");
        rounds_out.push(json!({
            "unprobed_ns": round3(p),
            "empty_program_ns": round3(f - p),
            "exact_ns": round3(e - p),
            "exact_with_stats_ns": round3(es - p),
            "exact_program_ns": bpf.map(round3),
        }));
        plain.push(p);
        floor.push(f - p);
        exact.push(e - p);
        exact_stats.push(es - p);
        if let Some(b) = bpf {
            prog_ns.push(b);
        }
    }
    let out = json!({
        "calls": calls,
        "rounds": rounds_out,
        "median": {
            "unprobed_ns": round3(median(plain)),
            "empty_program_ns": round3(median(floor.clone())),
            "exact_ns": round3(median(exact.clone())),
            "exact_with_stats_ns": round3(median(exact_stats)),
            "exact_program_ns": if prog_ns.is_empty() { None } else { Some(round3(median(prog_ns))) },
            "exact_over_empty": round3(median(exact) / median(floor)),
        },
    });
    println!("{}", serde_json::to_string_pretty(&out).unwrap());
}
