//! Where each function's entry probe goes and what a probed call will cost,
//! decided from the function's first instructions before anything is
//! attached (`tracemerge probe plan`).
//!
//! An x86-64 uprobe replaces the first byte of the probed instruction with
//! `int3`. After the BPF program ran the kernel must execute the displaced
//! instruction: a few kinds it emulates (pushes, relative branches, nops);
//! any other it single-steps out of line (a second trap, ~10× the cost).
//! Kernels ≥ 6.18 also turn a probe on the 5-byte nop `0f 1f 44 00 00` into a
//! call to a trampoline, with no trap at all, after its first hit.
//!
//! An `endbr64` at the entry is stepped over when the instruction after it is
//! a push or the 5-byte nop: neither is ever a jump target inside the
//! function, so a probe there still fires once per call, with the return
//! address still at the stack pointer.

use std::fmt;

use crate::elf::{ElfInfo, Symbol};

const ENDBR64: [u8; 4] = [0xf3, 0x0f, 0x1e, 0xfa];
/// The 5-byte nop that `-mfentry -mnop-mcount -pg` puts at every entry and
/// that the kernel optimizes into a trampoline call.
pub const NOP5: [u8; 5] = [0x0f, 0x1f, 0x44, 0x00, 0x00];

/// How the kernel handles a probe at a function's entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntryKind {
    /// 5-byte nop on a kernel that optimizes it: a call to a trampoline.
    NopOptimized,
    /// The instruction is emulated after the trap.
    Emulated,
    /// The instruction is single-stepped out of line (two traps).
    SingleStepped,
}

impl EntryKind {
    pub fn name(self) -> &'static str {
        match self {
            EntryKind::NopOptimized => "nop_optimized",
            EntryKind::Emulated => "emulated",
            EntryKind::SingleStepped => "single_stepped",
        }
    }

    /// The expected added cost of one probed call, as measured by the
    /// `probe` bench suite on this kind of machine (see the README).
    pub fn cost_class(self) -> &'static str {
        match self {
            EntryKind::NopOptimized => "~0.4 µs",
            EntryKind::Emulated => "~1 µs",
            EntryKind::SingleStepped => "~7.5 µs",
        }
    }

    /// A rough per-call cost in nanoseconds (used to budget probes).
    pub fn cost_ns(self) -> f64 {
        match self {
            EntryKind::NopOptimized => 350.0,
            EntryKind::Emulated => 1_000.0,
            EntryKind::SingleStepped => 7_500.0,
        }
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the running kernel does with uprobes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelFeatures {
    /// Optimizes probes on the 5-byte nop and emulates every nop (≥ 6.18).
    pub nop_probes: bool,
}

impl KernelFeatures {
    /// From a kernel release string (`6.18.44-…`).
    pub fn from_release(release: &str) -> KernelFeatures {
        let mut parts = release
            .split(|c: char| !c.is_ascii_digit())
            .filter(|p| !p.is_empty())
            .map(|p| p.parse::<u32>().unwrap_or(0));
        let major = parts.next().unwrap_or(0);
        let minor = parts.next().unwrap_or(0);
        KernelFeatures {
            nop_probes: (major, minor) >= (6, 18),
        }
    }

    /// Of the running kernel.
    pub fn running() -> KernelFeatures {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        KernelFeatures::from_release(release.trim())
    }
}

/// The plan for one function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryPlan {
    pub name: String,
    /// The function's address (link-time).
    pub addr: u64,
    /// Where the probe goes (`addr`, or past an `endbr64`).
    pub probe_addr: u64,
    pub kind: EntryKind,
    /// The bytes of the probed instruction's start (for the listing).
    pub first_bytes: Vec<u8>,
}

/// Plans the probe of `sym` in `info`.
pub fn plan_entry(info: &ElfInfo, sym: &Symbol, kernel: KernelFeatures) -> EntryPlan {
    let code = info.bytes(sym.addr, 16.min(sym.size.max(1) as usize));
    let (skip, kind) = classify(code, kernel);
    let at = &code[skip.min(code.len())..];
    EntryPlan {
        name: sym.name.clone(),
        addr: sym.addr,
        probe_addr: sym.addr + skip as u64,
        kind,
        first_bytes: at[..at.len().min(5)].to_vec(),
    }
}

/// How far into `code` (a function's first bytes) to probe, and what the
/// kernel will do there.
pub fn classify(code: &[u8], kernel: KernelFeatures) -> (usize, EntryKind) {
    if code.starts_with(&ENDBR64) {
        let rest = &code[ENDBR64.len()..];
        if rest.starts_with(&NOP5) || push_len(rest).is_some() {
            return (ENDBR64.len(), first_instruction(rest, kernel));
        }
    }
    (0, first_instruction(code, kernel))
}

/// `push %reg` (`50+r`, or `41 50+r` for r8–r15): its length.
fn push_len(code: &[u8]) -> Option<usize> {
    match code {
        [0x50..=0x57, ..] => Some(1),
        [0x41, 0x50..=0x57, ..] => Some(2),
        _ => None,
    }
}

fn first_instruction(code: &[u8], kernel: KernelFeatures) -> EntryKind {
    if code.starts_with(&NOP5) {
        return if kernel.nop_probes {
            EntryKind::NopOptimized
        } else {
            EntryKind::SingleStepped
        };
    }
    if push_len(code).is_some() {
        return EntryKind::Emulated;
    }
    match code {
        // nop, and prefix + nop.
        [0x90, ..] | [0x66, 0x90, ..] => EntryKind::Emulated,
        // Other multi-byte nops: emulated where the kernel emulates nops.
        [0x0f, 0x1f, ..] | [0x66, 0x0f, 0x1f, ..] if kernel.nop_probes => EntryKind::Emulated,
        // call rel32, jmp rel32, jmp rel8, jcc rel8, jcc rel32.
        [0xe8, ..] | [0xe9, ..] | [0xeb, ..] | [0x70..=0x7f, ..] | [0x0f, 0x80..=0x8f, ..] => {
            EntryKind::Emulated
        }
        _ => EntryKind::SingleStepped,
    }
}

/// Counts per kind, in the order of [`EntryKind`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlanSummary {
    pub nop_optimized: usize,
    pub emulated: usize,
    pub single_stepped: usize,
}

impl PlanSummary {
    pub fn of<'a>(plans: impl IntoIterator<Item = &'a EntryPlan>) -> PlanSummary {
        let mut s = PlanSummary::default();
        for p in plans {
            match p.kind {
                EntryKind::NopOptimized => s.nop_optimized += 1,
                EntryKind::Emulated => s.emulated += 1,
                EntryKind::SingleStepped => s.single_stepped += 1,
            }
        }
        s
    }

    pub fn total(&self) -> usize {
        self.nop_optimized + self.emulated + self.single_stepped
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "functions": self.total(),
            "nop_optimized": self.nop_optimized,
            "emulated": self.emulated,
            "single_stepped": self.single_stepped,
        })
    }
}

impl fmt::Display for PlanSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} functions: {} nop-optimized ({}), {} emulated ({}), {} single-stepped ({} per call)",
            self.total(),
            self.nop_optimized,
            EntryKind::NopOptimized.cost_class(),
            self.emulated,
            EntryKind::Emulated.cost_class(),
            self.single_stepped,
            EntryKind::SingleStepped.cost_class(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEW: KernelFeatures = KernelFeatures { nop_probes: true };
    const OLD: KernelFeatures = KernelFeatures { nop_probes: false };

    #[test]
    fn kernel_release_decides_nop_support() {
        assert!(KernelFeatures::from_release("6.18.44-fc-v657").nop_probes);
        assert!(KernelFeatures::from_release("7.0.1").nop_probes);
        assert!(!KernelFeatures::from_release("6.17.9-arch1").nop_probes);
        assert!(!KernelFeatures::from_release("5.19.0").nop_probes);
        assert!(!KernelFeatures::from_release("garbage").nop_probes);
    }

    #[test]
    fn entries_are_classified_by_their_first_instruction() {
        // push %rbp; mov %rsp,%rbp
        assert_eq!(
            classify(&[0x55, 0x48, 0x89, 0xe5], NEW),
            (0, EntryKind::Emulated)
        );
        // push %r15
        assert_eq!(
            classify(&[0x41, 0x57, 0x41, 0x56], NEW),
            (0, EntryKind::Emulated)
        );
        // mov 0x0(%rip),%rax: single-stepped
        let rip_mov = [0x48, 0x8b, 0x05, 0, 0, 0, 0];
        assert_eq!(classify(&rip_mov, NEW), (0, EntryKind::SingleStepped));
        // sub $0x18,%rsp (shrink-wrapped frame set-up): single-stepped
        assert_eq!(
            classify(&[0x48, 0x83, 0xec, 0x18], NEW),
            (0, EntryKind::SingleStepped)
        );
        // -mfentry -mnop-mcount: the 5-byte nop, optimized on 6.18
        let fentry = [0x0f, 0x1f, 0x44, 0x00, 0x00, 0x48, 0x8b];
        assert_eq!(classify(&fentry, NEW), (0, EntryKind::NopOptimized));
        assert_eq!(classify(&fentry, OLD), (0, EntryKind::SingleStepped));
        // gcc -fpatchable-function-entry=5: five one-byte nops, emulated
        assert_eq!(classify(&[0x90; 6], OLD), (0, EntryKind::Emulated));
        // clang's variant of the 5-byte nop is not the optimizable one
        assert_eq!(
            classify(&[0x0f, 0x1f, 0x44, 0x00, 0x08], NEW),
            (0, EntryKind::Emulated)
        );
        // a branch as first instruction
        assert_eq!(classify(&[0xe9, 1, 2, 3, 4], OLD), (0, EntryKind::Emulated));
        assert_eq!(
            classify(&[0x0f, 0x84, 1, 2, 3, 4], OLD),
            (0, EntryKind::Emulated)
        );
    }

    #[test]
    fn endbr64_is_stepped_over_only_before_a_prologue_instruction() {
        let cet_push = [0xf3, 0x0f, 0x1e, 0xfa, 0x55, 0x48, 0x89, 0xe5];
        assert_eq!(classify(&cet_push, NEW), (4, EntryKind::Emulated));
        let cet_fentry = [0xf3, 0x0f, 0x1e, 0xfa, 0x0f, 0x1f, 0x44, 0x00, 0x00];
        assert_eq!(classify(&cet_fentry, NEW), (4, EntryKind::NopOptimized));
        // Anything else after endbr64 may be a loop head: probe the entry.
        let cet_mov = [0xf3, 0x0f, 0x1e, 0xfa, 0x48, 0x8b, 0x05, 0, 0, 0, 0];
        assert_eq!(classify(&cet_mov, NEW), (0, EntryKind::SingleStepped));
        // A function that is just endbr64.
        assert_eq!(classify(&ENDBR64, NEW), (0, EntryKind::SingleStepped));
    }

    #[test]
    fn summary_counts_each_kind() {
        let plan = |kind| EntryPlan {
            name: String::new(),
            addr: 0,
            probe_addr: 0,
            kind,
            first_bytes: vec![],
        };
        let plans = [
            plan(EntryKind::Emulated),
            plan(EntryKind::SingleStepped),
            plan(EntryKind::Emulated),
            plan(EntryKind::NopOptimized),
        ];
        let s = PlanSummary::of(&plans);
        assert_eq!((s.nop_optimized, s.emulated, s.single_stepped), (1, 2, 1));
        assert_eq!(s.total(), 4);
        assert!(s.to_string().starts_with("4 functions: 1 nop-optimized"));
    }
}
