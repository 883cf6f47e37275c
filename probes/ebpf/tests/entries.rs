//! Entry probes of every kind (emulated, single-stepped, nop-optimized, past
//! an endbr64) count every call exactly, with the right caller.

mod common;

use std::time::Duration;

use tracemerge_ebpf::exact::{self, Config};
use tracemerge_ebpf::plan::{EntryKind, KernelFeatures};
use tracemerge_records::Record;

#[test]
fn plan_matches_the_known_entries() {
    // No BPF needed: the plan only reads the file.
    let dir = common::scratch("plan");
    let prog = common::entries_program(&dir);
    let wanted: Vec<String> = common::ENTRY_FUNCTIONS.map(String::from).to_vec();
    let (plans, skipped) = exact::plan(&prog, Some(&wanted)).unwrap();
    assert!(skipped.is_empty());
    let nop = if KernelFeatures::running().nop_probes {
        EntryKind::NopOptimized
    } else {
        EntryKind::SingleStepped
    };
    let want = [
        ("entry_push", 0, EntryKind::Emulated),
        ("entry_rip", 0, EntryKind::SingleStepped),
        ("entry_nop5", 0, nop),
        ("entry_endbr_push", 4, EntryKind::Emulated),
        ("entry_nops", 0, EntryKind::Emulated),
        ("entry_endbr", 0, EntryKind::SingleStepped),
    ];
    for (name, offset, kind) in want {
        let p = plans.iter().find(|p| p.name == name).unwrap();
        assert_eq!((p.probe_addr - p.addr, p.kind), (offset, kind), "{name}");
    }
    let err = exact::plan(std::path::Path::new("/proc/self/status"), None).unwrap_err();
    assert!(
        matches!(&err, tracemerge_ebpf::ProbeError::File { path, .. } if path.ends_with("status")),
        "{err:?}"
    );
    let err = err.to_string();
    assert!(err.starts_with("/proc/self/status: "), "{err}");
}

#[test]
fn every_kind_of_entry_counts_every_call() {
    let Some(_guard) = common::bpf_or_skip("every_kind_of_entry_counts_every_call") else {
        return;
    };
    let dir = common::scratch("entries");
    let prog = common::entries_program(&dir);
    let mut config = Config::new(&prog);
    config.functions = Some(common::ENTRY_FUNCTIONS.map(String::from).to_vec());
    let calls = 20_000u64;
    let (records, outcome) = common::trace(
        &config,
        vec![prog.clone().into(), calls.to_string().into()],
        Duration::from_millis(100),
    );
    assert_eq!(outcome.exit_code, 0);
    for name in common::ENTRY_FUNCTIONS {
        let from_call_all: u64 = records
            .iter()
            .filter_map(|r| match r {
                Record::Edge(e) if e.callee == name && e.caller == "call_all" => Some(e.hits),
                _ => None,
            })
            .sum();
        let total: u64 = records
            .iter()
            .filter_map(|r| match r {
                Record::Edge(e) if e.callee == name => Some(e.hits),
                _ => None,
            })
            .sum();
        assert_eq!((from_call_all, total), (calls, calls), "{name}");
    }
    let entries = &outcome.summary["entries"];
    assert_eq!(entries["functions"], 6);
    assert_eq!(outcome.summary["losses"], 0);
    common::assert_clean();
}
