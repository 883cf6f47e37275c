//! Shared by the root-needing tests: skip (or fail under
//! TRACEMERGE_REQUIRE_ALL=1), build C test programs, serialize BPF use.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

static BPF: Mutex<()> = Mutex::new(());

/// Held while a test uses BPF: the in-process lock for test threads, a file
/// lock for test processes run in parallel (nextest, other test binaries).
pub struct BpfGuard {
    _thread: MutexGuard<'static, ()>,
    _file: std::fs::File,
}

fn file_lock() -> std::fs::File {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(std::env::temp_dir().join("tracemerge-bpf-tests.lock"))
        .unwrap();
    f.lock().unwrap();
    f
}

/// Returns a guard when the probes can run here; otherwise prints why and
/// returns None, or panics when TRACEMERGE_REQUIRE_ALL=1.
pub fn bpf_or_skip(test: &str) -> Option<BpfGuard> {
    if let Some(why) = tracemerge_ebpf::unsupported() {
        if std::env::var("TRACEMERGE_REQUIRE_ALL").as_deref() == Ok("1") {
            panic!("{test}: cannot run ({why}) and TRACEMERGE_REQUIRE_ALL=1");
        }
        // Straight to stderr: the test harness captures eprintln!.
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
        return None;
    }
    // One BPF test at a time: leak checks look at every loaded program.
    let thread = BPF.lock().unwrap_or_else(|e| e.into_inner());
    Some(BpfGuard {
        _thread: thread,
        _file: file_lock(),
    })
}

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

/// Asserts that no tracemerge BPF program is loaded any more (the kernel
/// frees a closed program after an RCU grace period: allow it a moment).
pub fn assert_clean() {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let left = tracemerge_ebpf::leftover_programs();
        if left.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "BPF programs left behind: {left:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
