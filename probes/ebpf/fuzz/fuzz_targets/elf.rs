//! Fuzz target: the ELF symbol reader of the eBPF collector
//! (`tracemerge_ebpf::elf::ElfInfo`): symbols, segments, build id, then
//! every query the collector makes of them.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tracemerge_ebpf::elf::ElfInfo;

/// `ElfInfo::read` takes a path: one scratch file per process.
fn scratch() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        std::env::temp_dir().join(format!("tracemerge-elf-fuzz-{}", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let path = scratch();
    std::fs::write(path, data).expect("write the scratch file");
    let Ok(info) = ElfInfo::read(path) else {
        return;
    };
    assert!(info.symbols.windows(2).all(|w| w[0].addr < w[1].addr));
    for sym in &info.symbols {
        let _ = info.lookup(sym.addr);
        let _ = info.has_frame_at(sym.addr);
        let _ = info.bytes(sym.addr, 16);
        if let Some(offset) = info.file_offset(sym.addr) {
            let _ = info.vaddr_of_offset(offset);
        }
    }
    let _ = info.probeable_functions().count();
    let _ = info.lookup(info.entry);
});
