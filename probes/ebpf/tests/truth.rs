//! Full exact mode counts every call exactly: per-edge counts equal an
//! `-finstrument-functions` ground truth taken in the same run.
//!
//! tests/programs/mix.c is built with `-finstrument-functions` and the
//! research bench's tracer (bench/research/tracer.c: counts every (call
//! site, function) pair at entry, writes them at exit), linked `-no-pie` so
//! that its addresses are the ELF's own. Every function of the binary is
//! probed in the same run; the probe's edges between the program's own
//! functions must be the tracer's pairs, named by their functions, with the
//! same counts.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use tracemerge_ebpf::elf::ElfInfo;
use tracemerge_ebpf::exact::Config;

/// The tracer's own functions (called from every instrumented entry and
/// exit, and at exit): not part of the program's calls.
fn is_tracer(name: &str) -> bool {
    name.starts_with("__cyg_profile_func_") || name == "tm_ground_truth_dump"
}

#[test]
fn full_exact_counts_equal_instrumented_ground_truth() {
    let Some(_guard) = common::bpf_or_skip("full_exact_counts_equal_instrumented_ground_truth")
    else {
        return;
    };
    let dir = common::scratch("truth");
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = here.join("tests/programs/mix.c");
    let tracer = here.join("../../bench/research/tracer.c");
    let prog = dir.join("mix");
    // The tracer itself is not instrumented (its functions say so).
    common::cc(
        &src,
        &prog,
        &[
            "-finstrument-functions",
            "-fno-pie",
            "-no-pie",
            tracer.to_str().unwrap(),
        ],
    );
    let truth_file = dir.join("truth.txt");
    std::env::set_var("TM_GROUND_TRUTH", &truth_file);
    let config = Config::new(&prog);
    let (records, outcome) = common::trace(
        &config,
        vec![prog.clone().into(), "3000".into()],
        Duration::from_millis(100),
    );
    std::env::remove_var("TM_GROUND_TRUTH");
    assert_eq!(outcome.exit_code, 0);
    assert_eq!(outcome.summary["losses"], 0, "{}", outcome.summary);

    let info = ElfInfo::read(&prog).unwrap();
    let name = |addr: u64| info.lookup(addr).map(|s| s.name.clone());
    let mut truth: BTreeMap<(String, String), u64> = BTreeMap::new();
    let text = std::fs::read_to_string(&truth_file).unwrap();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields[0] == "dropped" {
            assert_eq!(fields[1], "0", "the tracer's table overflowed");
            continue;
        }
        let hex = |s: &str| u64::from_str_radix(s, 16).unwrap();
        let count: u64 = fields[2].parse().unwrap();
        // A call site outside the binary (libc's qsort, __libc_start_main)
        // has no name here; the probe names those callers by module.
        let (Some(caller), Some(callee)) = (name(hex(fields[0])), name(hex(fields[1]))) else {
            continue;
        };
        *truth.entry((caller, callee)).or_default() += count;
    }
    let own: std::collections::BTreeSet<String> =
        info.probeable_functions().map(|s| s.name.clone()).collect();
    let probed: BTreeMap<(String, String), u64> = common::edges(&records)
        .into_iter()
        .filter(|((caller, callee), _)| {
            own.contains(caller) && own.contains(callee) && !is_tracer(callee)
        })
        .collect();
    eprintln!("ground truth: {truth:#?}");
    // The program makes the edges the test means it to.
    for edge in [
        ("main", "dispatch"),
        ("dispatch", "op_add"),
        ("op_mul", "note"),
        ("fib", "fib"),
        ("is_even", "is_odd"),
        ("is_odd", "is_even"),
        ("by_value", "note"),
    ] {
        assert!(
            truth.contains_key(&(edge.0.to_string(), edge.1.to_string())),
            "{edge:?} not in the ground truth"
        );
    }
    assert_eq!(probed, truth, "probe (left) against ground truth (right)");
    common::assert_clean();
}
