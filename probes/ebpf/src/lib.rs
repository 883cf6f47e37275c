//! eBPF collector for Linux: turns running processes into tracemerge
//! records (DESIGN.md §3, §6).
//!
//! Its one job: observe which call edges a process executes and report them
//! as `edge`, `hit` and `coverage` records.
//!
//! * [`exact`]: entry uprobes (one uprobe_multi link) on the chosen
//!   functions of a binary; exact per-window counts of caller → callee.
//! * [`sample`]: perf-event CPU sampling with frame-pointer user stacks;
//!   cheap enough to leave on, but proves nothing about absence.
//! * [`patch`]: exact mode without the kernel on the call path
//!   (`--entries patch`): nop entries of one process rewritten into calls
//!   of a counting stub injected into it.
//!
//! Kernel side: `bpf/tracemerge.bpf.c`, compiled by `bpf/build.sh` into the
//! committed `bpf/tracemerge.bpf.o`, which is embedded here (no clang needed
//! to build). User side: aya creates and reads the maps and runs the
//! sampler; the exact-mode program is loaded and attached through two raw
//! bpf(2) calls ([`sys`]), because aya 0.14 has no uprobe_multi.
//! Names come from ELF symbol tables and /proc/PID/maps ([`symbolize`]).
//!
//! Two optional modules are not part of the collector: `bench` (the
//! `probe` suite of `tracemerge bench`, feature `bench`) and `testing`
//! (helpers of the tests that load BPF programs, feature `testing`).

#[cfg(feature = "bench")]
pub mod bench;
pub mod budget;
pub mod demangle;
pub mod elf;
pub mod error;
pub mod exact;
pub mod kernel;
pub mod lock;
pub mod patch;
pub mod plan;
pub mod run;
pub mod sample;
pub mod symbolize;
pub mod sys;
pub mod target;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::ProbeError;
pub use kernel::Losses;

/// Why the probes cannot run here, or `None` when they can: needs Linux on
/// x86_64, root (CAP_BPF + CAP_PERFMON) and a kernel with uprobe_multi.
pub fn unsupported() -> Option<String> {
    if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        return Some("the eBPF collector supports Linux on x86_64 only".into());
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root (eBPF probes need CAP_BPF and CAP_PERFMON)".into());
    }
    if let Err(e) = sys::loaded_programs() {
        return Some(format!("bpf(2) is not usable: {e}"));
    }
    None
}

/// Ids and names of loaded BPF programs that belong to tracemerge (named
/// `tm_…`): empty when every collector has cleaned up.
pub fn leftover_programs() -> Vec<(u32, String)> {
    sys::loaded_programs()
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, name)| name.starts_with("tm_"))
        .collect()
}
