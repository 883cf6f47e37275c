//! Shared by the root-needing tests: build C test programs; skipping (or
//! failing under TRACEMERGE_REQUIRE_ALL=1), one BPF user at a time and the
//! leak check come from `tracemerge_ebpf::testing`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

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
