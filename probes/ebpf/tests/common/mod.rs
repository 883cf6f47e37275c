//! Shared by the root-needing tests: build C test programs; skipping (or
//! failing under TRACEMERGE_REQUIRE_ALL=1), one BPF user at a time and the
//! leak check come from `tracemerge_ebpf::testing`.

#![allow(dead_code, unused_imports)]

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tracemerge_ebpf::exact::{Config, Session};
use tracemerge_ebpf::run::{self, Collector, Options, Target};
use tracemerge_records::Record;

pub use tracemerge_ebpf::testing::{assert_clean, bpf_or_skip};

pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "tracemerge-ebpf-test-{}-{name}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Compiles a C file with cc (PIE, frame pointers, no inlining).
pub fn cc(source: &Path, out: &Path, extra: &[&str]) {
    let status = Command::new("cc")
        .args([
            "-O1",
            "-g0",
            "-fno-omit-frame-pointer",
            "-fno-inline",
            "-fno-optimize-sibling-calls",
            "-mno-omit-leaf-frame-pointer",
        ])
        .args(extra)
        .arg("-o")
        .arg(out)
        .arg(source)
        .status()
        .expect("running cc");
    assert!(status.success(), "cc {}", source.display());
}

pub fn calls_program(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/calls.c");
    let out = dir.join("calls");
    cc(&src, &out, &[]);
    out
}

/// Exact probing of the calls program at its five functions (main, middle,
/// leaf, via_pointer and the qsort callback compare).
pub fn calls_config(prog: &Path) -> Config {
    let mut config = Config::new(prog);
    config.functions = Some(
        ["main", "middle", "leaf", "via_pointer", "compare"]
            .map(String::from)
            .to_vec(),
    );
    config
}

/// The program with one function per kind of probed entry
/// (tests/programs/entries.c).
pub fn entries_program(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/entries.c");
    let out = dir.join("entries");
    cc(&src, &out, &[]);
    out
}

pub const ENTRY_FUNCTIONS: [&str; 6] = [
    "entry_push",
    "entry_rip",
    "entry_nop5",
    "entry_endbr_push",
    "entry_nops",
    "entry_endbr",
];

/// Runs `argv` under exact probing with `config` (its pid set to the
/// child's), windows of `window`, for at most a minute; the records written
/// and the outcome.
pub fn trace(
    config: &Config,
    argv: Vec<OsString>,
    window: Duration,
) -> (Vec<Record>, run::Outcome) {
    let mut records = Vec::new();
    let outcome = run::run(
        &Target::Command(argv),
        Options {
            duration: Some(Duration::from_secs(60)),
            ..Options::new(window)
        },
        |pid| {
            let mut c = config.clone();
            c.pid = pid;
            Session::attach(&c).map(Collector::Exact)
        },
        &mut |r| {
            records.extend_from_slice(r);
            Ok(())
        },
    )
    .unwrap();
    (records, outcome)
}

/// Hits per (caller, callee) over all edge records.
pub fn edges(records: &[Record]) -> BTreeMap<(String, String), u64> {
    let mut out = BTreeMap::new();
    for r in records {
        if let Record::Edge(e) = r {
            *out.entry((e.caller.clone(), e.callee.clone())).or_default() += e.hits;
        }
    }
    out
}
