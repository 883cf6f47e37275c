//! Address → symbol name, through /proc/PID/maps and ELF symbol tables.
//!
//! Naming (DESIGN.md issue 4): a function of the *main* module (the probed
//! binary) is its plain symbol name; a function of another module is
//! `MODULE!name` (`libc.so.6!msort_with_tmp.part.0`); an address without a
//! symbol is `MODULE+0xVADDR` (link-time address within the module), and an
//! address outside any file mapping is `[unknown]+0xADDR` (`[vdso]+0x…` and
//! the like for named anonymous mappings).

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::demangle::{NameStyle, Namer};
use crate::elf::ElfInfo;

/// Identity of a file: (device major, device minor, inode).
pub type FileId = (u32, u32, u64);

/// The identity of the file at `path`.
pub fn file_id(path: &Path) -> std::io::Result<FileId> {
    let m = std::fs::metadata(path)?;
    let dev = m.dev();
    Ok((libc::major(dev), libc::minor(dev), m.ino()))
}

#[derive(Clone, Debug)]
struct Mapping {
    start: u64,
    end: u64,
    offset: u64,
    file: FileId,
    path: String,
}

/// A loaded module: its file name and symbol table.
#[derive(Debug)]
pub struct Module {
    pub name: String,
    pub info: ElfInfo,
}

/// Resolves addresses of one or more processes. Keeps the last known maps of
/// every process it has seen, so addresses of a process that has exited
/// still resolve if its maps were read while it lived.
#[derive(Default)]
pub struct Symbolizer {
    main: Option<FileId>,
    modules: HashMap<FileId, Option<Arc<Module>>>,
    procs: HashMap<u32, Vec<Mapping>>,
    /// Processes whose maps were re-read since the last `new_round`.
    fresh: std::collections::HashSet<u32>,
    /// Mangled or demangled function names.
    namer: Namer,
}

impl Symbolizer {
    /// `main`: the module whose symbols get plain names (the probed binary).
    pub fn new(main: Option<FileId>) -> Symbolizer {
        Symbolizer {
            main,
            ..Default::default()
        }
    }

    /// Which name of a function the results carry (default: mangled).
    pub fn set_name_style(&mut self, style: NameStyle) {
        self.namer = Namer::new(style);
    }

    /// Sets the main module (sampling mode: the process's executable).
    pub fn set_main(&mut self, main: Option<FileId>) {
        self.main = main;
    }

    /// Allows one more re-read of each process's maps for addresses that
    /// fall outside the known mappings (call once per drain).
    pub fn new_round(&mut self) {
        self.fresh.clear();
    }

    /// Re-reads /proc/PID/maps; keeps the old maps when the process is gone.
    /// Returns whether the maps could be read.
    pub fn refresh(&mut self, pid: u32) -> bool {
        self.fresh.insert(pid);
        match read_maps(pid) {
            Some(maps) if !maps.is_empty() => {
                // Load the modules now, while /proc/PID/map_files still works.
                for m in &maps {
                    self.modules
                        .entry(m.file)
                        .or_insert_with(|| load_module(pid, m));
                }
                self.procs.insert(pid, maps);
                true
            }
            _ => false,
        }
    }

    fn mapping(&mut self, pid: u32, addr: u64) -> Option<Mapping> {
        let find = |maps: &Vec<Mapping>| {
            maps.iter()
                .find(|m| addr >= m.start && addr < m.end)
                .cloned()
        };
        if let Some(m) = self.procs.get(&pid).and_then(find) {
            return Some(m);
        }
        if !self.fresh.contains(&pid) {
            self.refresh(pid);
            return self.procs.get(&pid).and_then(find);
        }
        None
    }

    /// The module mapped at `addr` in `pid`, and `addr`'s link-time address in it.
    pub fn module_at(&mut self, pid: u32, addr: u64) -> Option<(Arc<Module>, u64, bool)> {
        let m = self.mapping(pid, addr)?;
        if m.file.2 == 0 {
            return None;
        }
        let module = self.modules.get(&m.file).cloned().flatten()?;
        let vaddr = module.info.vaddr_of_offset(addr - m.start + m.offset)?;
        Some((module, vaddr, Some(m.file) == self.main))
    }

    /// Whether the code at `addr` runs with its own frame on the
    /// frame-pointer chain (see [`ElfInfo::has_frame_at`]).
    pub fn has_frame_at(&mut self, pid: u32, addr: u64) -> bool {
        match self.module_at(pid, addr) {
            Some((module, vaddr, _)) => module.info.has_frame_at(vaddr),
            None => false,
        }
    }

    /// The name of the code at `addr` in process `pid`.
    pub fn resolve(&mut self, pid: u32, addr: u64) -> String {
        let Some(m) = self.mapping(pid, addr) else {
            return format!("[unknown]+0x{addr:x}");
        };
        if m.file.2 == 0 {
            let name = if m.path.is_empty() {
                "[anon]"
            } else {
                m.path.as_str()
            };
            return format!("{name}+0x{:x}", addr - m.start);
        }
        let base = basename(&m.path);
        let Some(module) = self.modules.get(&m.file).cloned().flatten() else {
            return format!("{base}+0x{:x}", addr - m.start + m.offset);
        };
        let file_offset = addr - m.start + m.offset;
        let Some(vaddr) = module.info.vaddr_of_offset(file_offset) else {
            return format!("{}+0x{file_offset:x}", module.name);
        };
        match module.info.lookup(vaddr) {
            Some(sym) if Some(m.file) == self.main => self.namer.name(&sym.name),
            Some(sym) => format!("{}!{}", module.name, self.namer.name(&sym.name)),
            None => format!("{}+0x{vaddr:x}", module.name),
        }
    }
}

fn basename(path: &str) -> String {
    let path = path.strip_suffix(" (deleted)").unwrap_or(path);
    path.rsplit('/').next().unwrap_or(path).to_string()
}

fn load_module(pid: u32, m: &Mapping) -> Option<Arc<Module>> {
    if m.file.2 == 0 || !m.path.starts_with('/') {
        return None;
    }
    // The exact file the process mapped (also in other mount namespaces and
    // when deleted or replaced since), else the path seen from its root.
    let candidates = [
        PathBuf::from(format!("/proc/{pid}/map_files/{:x}-{:x}", m.start, m.end)),
        PathBuf::from(format!("/proc/{pid}/root{}", m.path)),
        PathBuf::from(&m.path),
    ];
    for path in candidates {
        if file_id(&path).ok() != Some(m.file) {
            continue;
        }
        if let Ok(info) = ElfInfo::read(&path) {
            return Some(Arc::new(Module {
                name: basename(&m.path),
                info,
            }));
        }
    }
    None
}

fn read_maps(pid: u32) -> Option<Vec<Mapping>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    Some(parse_maps(&text))
}

fn parse_maps(text: &str) -> Vec<Mapping> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut it = line.split_ascii_whitespace();
        let (Some(range), Some(_perms), Some(offset), Some(dev), Some(inode)) =
            (it.next(), it.next(), it.next(), it.next(), it.next())
        else {
            continue;
        };
        let path = it.collect::<Vec<_>>().join(" ");
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let Some((major, minor)) = dev.split_once(':') else {
            continue;
        };
        let hex = |s: &str| u64::from_str_radix(s, 16).ok();
        let (Some(start), Some(end), Some(offset), Some(major), Some(minor), Ok(ino)) = (
            hex(start),
            hex(end),
            hex(offset),
            hex(major),
            hex(minor),
            inode.parse::<u64>(),
        ) else {
            continue;
        };
        out.push(Mapping {
            start,
            end,
            offset,
            file: (major as u32, minor as u32, ino),
            path,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_maps_lines() {
        let maps = parse_maps(concat!(
            "55d0c8a00000-55d0c8a01000 r-xp 00001000 fd:01 1234   /usr/bin/my prog\n",
            "7f0000000000-7f0000021000 rw-p 00000000 00:00 0 \n",
            "7ffd1e9f0000-7ffd1e9f2000 r-xp 00000000 00:00 0      [vdso]\n",
            "garbage\n",
        ));
        assert_eq!(maps.len(), 3);
        assert_eq!(maps[0].start, 0x55d0c8a00000);
        assert_eq!(maps[0].offset, 0x1000);
        assert_eq!(maps[0].file, (0xfd, 1, 1234));
        assert_eq!(maps[0].path, "/usr/bin/my prog");
        assert_eq!(maps[1].path, "");
        assert_eq!(maps[2].path, "[vdso]");
        assert_eq!(
            basename("/usr/lib/x86_64-linux-gnu/libc.so.6 (deleted)"),
            "libc.so.6"
        );
    }

    #[test]
    fn resolves_own_code_by_plain_name_and_others_qualified() {
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let pid = std::process::id();
        let mut sym = Symbolizer::new(file_id(&exe).ok());
        sym.refresh(pid);
        let here =
            resolves_own_code_by_plain_name_and_others_qualified as *const () as usize as u64;
        let name = sym.resolve(pid, here);
        assert!(
            name.contains("resolves_own_code_by_plain_name_and_others_qualified"),
            "{name}"
        );
        assert!(!name.contains('!'), "{name}");
        let libc_fn = libc::getpid as *const () as usize as u64;
        let name = sym.resolve(pid, libc_fn);
        assert!(
            name.starts_with("libc.so.6!") || name.starts_with("libc.so.6+0x"),
            "{name}"
        );
        assert!(sym.resolve(pid, 8).starts_with("[unknown]+0x"));
    }
}
