//! ELF facts the collector needs: function symbols, load segments (file
//! offset ↔ virtual address) and the build id.

use crate::error::ProbeError;
use std::path::{Path, PathBuf};

use object::{Object, ObjectSegment, ObjectSymbol, SymbolKind};

/// A function symbol: `[addr, addr + size)` in the module's virtual
/// addresses (link-time addresses, before any load bias).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symbol {
    pub addr: u64,
    pub size: u64,
    pub name: String,
}

#[derive(Clone, Copy, Debug)]
struct Segment {
    vaddr: u64,
    offset: u64,
    filesz: u64,
}

/// The symbol table and layout of one ELF file.
#[derive(Debug, Default)]
pub struct ElfInfo {
    /// Lower-case hex of the GNU build id, when the file has one.
    pub build_id: Option<String>,
    /// Entry point (not probed: it has no caller).
    pub entry: u64,
    /// Function symbols sorted by address, one per address (aliases folded:
    /// a global name wins over a local one, then the smaller name).
    pub symbols: Vec<Symbol>,
    segments: Vec<Segment>,
    /// The file's bytes (8-byte aligned words, length in the last word).
    data: Vec<u64>,
}

/// Reads a whole file into 8-byte aligned memory (the `object` crate wants
/// its ELF structures aligned).
fn read_aligned(path: &Path) -> Result<Vec<u64>, ProbeError> {
    let bytes = std::fs::read(path).map_err(|e| ProbeError::file(path, e))?;
    let mut words = vec![0u64; bytes.len().div_ceil(8)];
    // SAFETY: `words` has at least `bytes.len()` bytes, and any byte
    // pattern is a valid u64.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), words.as_mut_ptr().cast::<u8>(), bytes.len());
    }
    words.push(bytes.len() as u64); // remember the length in a last word
    Ok(words)
}

fn as_bytes(words: &[u64]) -> &[u8] {
    let len = *words.last().unwrap() as usize;
    // SAFETY: the words hold `len` file bytes followed by the length word.
    unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), len) }
}

impl ElfInfo {
    /// Reads `path`. When the file has no `.symtab` (stripped, as most
    /// distribution libraries are) and a separate debug file with the same
    /// build id is installed under /usr/lib/debug/.build-id, its symbol
    /// table is used as well.
    pub fn read(path: &Path) -> Result<ElfInfo, ProbeError> {
        let words = read_aligned(path)?;
        let file = object::File::parse(as_bytes(&words)).map_err(|e| ProbeError::file(path, e))?;
        let build_id = file
            .build_id()
            .ok()
            .flatten()
            .map(|id| id.iter().map(|b| format!("{b:02x}")).collect::<String>());
        let segments = file
            .segments()
            .map(|s| {
                let (offset, filesz) = s.file_range();
                Segment {
                    vaddr: s.address(),
                    offset,
                    filesz,
                }
            })
            .collect();
        let mut raw: Vec<(u64, u64, bool, String)> = Vec::new();
        let mut has_symtab = false;
        for sym in file.symbols() {
            has_symtab = true;
            push_symbol(&mut raw, &sym);
        }
        for sym in file.dynamic_symbols() {
            push_symbol(&mut raw, &sym);
        }
        if !has_symtab {
            if let Some(debug) = build_id.as_deref().and_then(debug_file) {
                if let Ok(words) = read_aligned(&debug) {
                    if let Ok(dfile) = object::File::parse(as_bytes(&words)) {
                        for sym in dfile.symbols() {
                            push_symbol(&mut raw, &sym);
                        }
                    }
                }
            }
        }
        let entry = file.entry();
        drop(file);
        Ok(ElfInfo {
            build_id,
            entry,
            symbols: fold_aliases(raw),
            segments,
            data: words,
        })
    }

    /// The file offset at which `vaddr` is stored (what uprobes want).
    pub fn file_offset(&self, vaddr: u64) -> Option<u64> {
        self.segments
            .iter()
            .find(|s| vaddr >= s.vaddr && vaddr - s.vaddr < s.filesz)
            .and_then(|s| (vaddr - s.vaddr).checked_add(s.offset))
    }

    /// The virtual address stored at file offset `offset`.
    pub fn vaddr_of_offset(&self, offset: u64) -> Option<u64> {
        self.segments
            .iter()
            .find(|s| offset >= s.offset && offset - s.offset < s.filesz)
            .and_then(|s| (offset - s.offset).checked_add(s.vaddr))
    }

    /// Up to `len` bytes of the file at virtual address `vaddr`.
    pub fn bytes(&self, vaddr: u64, len: usize) -> &[u8] {
        if self.data.is_empty() {
            return &[];
        }
        let all = as_bytes(&self.data);
        match self.file_offset(vaddr) {
            Some(off) if (off as usize) < all.len() => {
                let off = off as usize;
                &all[off..off.saturating_add(len).min(all.len())]
            }
            _ => &[],
        }
    }

    /// Whether, with the program counter at `vaddr`, the function there has
    /// its own frame on the frame-pointer chain: it starts with the x86-64
    /// frame prologue (`[endbr64] push %rbp; mov %rsp,%rbp`), `vaddr` is past
    /// that prologue and is not a `ret` (after the epilogue). Otherwise a
    /// frame-pointer walk from here skips the caller.
    pub fn has_frame_at(&self, vaddr: u64) -> bool {
        let Some(sym) = self.lookup(vaddr) else {
            return false;
        };
        let code = self.bytes(sym.addr, 8);
        let p = if code.starts_with(&[0xf3, 0x0f, 0x1e, 0xfa]) {
            4
        } else {
            0
        };
        let prologue = code.get(p..p + 4);
        if !matches!(
            prologue,
            Some([0x55, 0x48, 0x89, 0xe5]) | Some([0x55, 0x48, 0x8b, 0xec])
        ) {
            return false;
        }
        if vaddr < sym.addr.saturating_add(p as u64 + 4) {
            return false;
        }
        !matches!(self.bytes(vaddr, 2), [0xc3, ..] | [0xf3, 0xc3])
    }

    /// The function containing `vaddr`.
    pub fn lookup(&self, vaddr: u64) -> Option<&Symbol> {
        let i = self.symbols.partition_point(|s| s.addr <= vaddr);
        // Symbols may nest (rare); look back a little for one that contains.
        self.symbols[..i]
            .iter()
            .rev()
            .take(4)
            .find(|s| vaddr - s.addr < s.size.max(1))
    }

    /// The functions worth probing: sized, defined, not the entry point.
    pub fn probeable_functions(&self) -> impl Iterator<Item = &Symbol> {
        self.symbols.iter().filter(move |s| {
            s.size > 0 && s.addr != self.entry && self.file_offset(s.addr).is_some()
        })
    }
}

fn push_symbol<'a, S: ObjectSymbol<'a>>(raw: &mut Vec<(u64, u64, bool, String)>, sym: &S) {
    if sym.kind() != SymbolKind::Text || !sym.is_definition() || sym.address() == 0 {
        return;
    }
    if let Ok(name) = sym.name() {
        if !name.is_empty() {
            raw.push((
                sym.address(),
                sym.size(),
                sym.is_global() || sym.is_weak(),
                name.to_string(),
            ));
        }
    }
}

fn fold_aliases(mut raw: Vec<(u64, u64, bool, String)>) -> Vec<Symbol> {
    // Per address: largest size first, then global before local, then name.
    raw.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then(b.1.cmp(&a.1))
            .then(b.2.cmp(&a.2))
            .then(a.3.cmp(&b.3))
    });
    raw.dedup_by(|later, first| later.0 == first.0);
    raw.into_iter()
        .map(|(addr, size, _, name)| Symbol { addr, size, name })
        .collect()
}

/// The installed separate debug file for a build id, if any.
pub fn debug_file(build_id: &str) -> Option<PathBuf> {
    if build_id.len() < 3 {
        return None;
    }
    let p = PathBuf::from(format!(
        "/usr/lib/debug/.build-id/{}/{}.debug",
        &build_id[..2],
        &build_id[2..]
    ));
    p.is_file().then_some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Files the fuzz target found (`probes/ebpf/fuzz`): a symbol and a
    /// segment that end past 2^64. Every query stays in range instead of
    /// overflowing.
    #[test]
    fn forged_ranges_past_the_address_space() {
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
        for name in [
            "elf-crash-lookup-overflow.bin",
            "elf-crash-file-offset-overflow.bin",
        ] {
            let info = ElfInfo::read(&data.join(name)).expect("the file parses");
            assert!(!info.symbols.is_empty(), "{name}: no symbols");
            for sym in &info.symbols {
                let found = info
                    .lookup(sym.addr)
                    .expect("a symbol contains its own address");
                assert!(found.addr <= sym.addr, "{name}");
                let _ = info.has_frame_at(sym.addr);
                let _ = info.bytes(sym.addr, 16);
                if let Some(offset) = info.file_offset(sym.addr) {
                    let _ = info.vaddr_of_offset(offset);
                }
            }
            let _ = info.lookup(u64::MAX);
            let _ = info.file_offset(u64::MAX);
            let _ = info.vaddr_of_offset(u64::MAX);
        }
    }

    /// A function that keeps its own symbol (a test function may be
    /// inlined into the harness's closure).
    #[inline(never)]
    fn elf_test_marker(x: u64) -> u64 {
        std::hint::black_box(x).wrapping_mul(3)
    }

    #[test]
    fn reads_own_executable() {
        assert_eq!(elf_test_marker(std::hint::black_box(2)), 6);
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let info = ElfInfo::read(&exe).unwrap();
        assert!(info.build_id.as_deref().is_some_and(|id| id.len() >= 16));
        let f = info
            .symbols
            .iter()
            .find(|s| s.name.contains("elf_test_marker"))
            .expect("own symbol");
        assert_eq!(info.lookup(f.addr + 1).map(|s| &s.name), Some(&f.name));
        let off = info.file_offset(f.addr).unwrap();
        assert_eq!(info.vaddr_of_offset(off), Some(f.addr));
        assert!(info.probeable_functions().all(|s| s.addr != info.entry));
        // Aliases are folded: one symbol per address.
        assert!(info.symbols.windows(2).all(|w| w[0].addr < w[1].addr));
    }
}
