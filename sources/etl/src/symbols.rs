//! PDB symbol lookup: finds an image's PDB by its DbgID_RSDS identity
//! (GUID and age) in a symbol directory laid out like a symbol server
//! (`DIR/name.pdb/GUIDAGE/name.pdb`, or `DIR/name.pdb` flat), and maps
//! RVAs to function names with a per-PDB table and an RVA → name cache.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use pdb::FallibleIterator;

use crate::error::EtlError;
use crate::kernel::DbgIdRsds;

/// Functions of one PDB, sorted by RVA.
#[derive(Debug, Default)]
pub struct FunctionTable {
    /// (rva, length or 0 when unknown, name)
    functions: Vec<(u32, u32, String)>,
}

impl FunctionTable {
    /// Builds a table from `(rva, len, name)` triples (len 0 = unknown: the
    /// function then ends where the next one starts).
    pub fn new(mut functions: Vec<(u32, u32, String)>) -> FunctionTable {
        functions.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        functions.dedup_by_key(|f| f.0);
        FunctionTable { functions }
    }

    /// The function containing `rva`.
    pub fn lookup(&self, rva: u32) -> Option<&str> {
        let i = self
            .functions
            .partition_point(|f| f.0 <= rva)
            .checked_sub(1)?;
        let (start, len, name) = &self.functions[i];
        let inside = if *len > 0 {
            rva - start < *len
        } else {
            self.functions.get(i + 1).is_none_or(|n| rva < n.0)
        };
        inside.then_some(name.as_str())
    }

    pub fn len(&self) -> usize {
        self.functions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.functions.is_empty()
    }

    /// Reads procedures (with their lengths) from the module streams and
    /// function publics from the global symbols of a PDB; checks that its
    /// GUID matches `expect` when given.
    pub fn from_pdb(path: &Path, expect: Option<&DbgIdRsds>) -> Result<FunctionTable, EtlError> {
        let err = |reason: String| EtlError::Symbols {
            path: path.to_path_buf(),
            reason,
        };
        let file = File::open(path).map_err(|e| err(e.to_string()))?;
        let mut pdb = pdb::PDB::open(file).map_err(|e| err(e.to_string()))?;
        if let Some(id) = expect {
            let info = pdb.pdb_information().map_err(|e| err(e.to_string()))?;
            let g = info.guid.as_bytes();
            // uuid bytes are big-endian fields; the RSDS GUID is little-endian.
            let le = [
                g[3], g[2], g[1], g[0], g[5], g[4], g[7], g[6], g[8], g[9], g[10], g[11], g[12],
                g[13], g[14], g[15],
            ];
            if le != id.guid.0 {
                return Err(err(format!(
                    "GUID {} does not match the image's {}",
                    info.guid, id.guid
                )));
            }
        }
        let map = pdb.address_map().map_err(|e| err(e.to_string()))?;
        let mut out = Vec::new();
        let dbi = pdb.debug_information().map_err(|e| err(e.to_string()))?;
        let mut modules = dbi.modules().map_err(|e| err(e.to_string()))?;
        while let Some(module) = modules.next().map_err(|e| err(e.to_string()))? {
            let Some(info) = pdb.module_info(&module).map_err(|e| err(e.to_string()))? else {
                continue;
            };
            let mut symbols = info.symbols().map_err(|e| err(e.to_string()))?;
            while let Some(sym) = symbols.next().map_err(|e| err(e.to_string()))? {
                if let Ok(pdb::SymbolData::Procedure(p)) = sym.parse() {
                    if let Some(rva) = p.offset.to_rva(&map) {
                        out.push((rva.0, p.len, p.name.to_string().into_owned()));
                    }
                }
            }
        }
        let globals = pdb.global_symbols().map_err(|e| err(e.to_string()))?;
        let mut it = globals.iter();
        while let Some(sym) = it.next().map_err(|e| err(e.to_string()))? {
            if let Ok(pdb::SymbolData::Public(p)) = sym.parse() {
                if p.function {
                    if let Some(rva) = p.offset.to_rva(&map) {
                        out.push((rva.0, 0, p.name.to_string().into_owned()));
                    }
                }
            }
        }
        Ok(FunctionTable::new(out))
    }
}

/// Where to find PDBs, with loaded tables and an RVA cache.
#[derive(Debug)]
pub struct SymbolDir {
    root: PathBuf,
    tables: HashMap<(String, [u8; 16], u32), Option<FunctionTable>>,
    cache: HashMap<(String, [u8; 16], u32, u32), Option<String>>,
    /// PDBs that were looked for and not found or not readable, with why.
    pub problems: Vec<String>,
}

impl SymbolDir {
    pub fn new(root: impl Into<PathBuf>) -> SymbolDir {
        SymbolDir {
            root: root.into(),
            tables: HashMap::new(),
            cache: HashMap::new(),
            problems: Vec::new(),
        }
    }

    /// Candidate paths of the PDB named by `id`.
    pub fn candidates(&self, id: &DbgIdRsds) -> Vec<PathBuf> {
        let name = crate::trace::module_name(&id.pdb_file_name);
        let raw = id
            .pdb_file_name
            .rsplit(['\\', '/'])
            .next()
            .unwrap_or(&id.pdb_file_name)
            .to_string();
        let key = format!("{}{:X}", id.guid.simple_upper(), id.age);
        let mut v = Vec::new();
        for n in [&raw, &name] {
            v.push(self.root.join(n).join(&key).join(n));
            v.push(self.root.join(n));
        }
        v.dedup();
        v
    }

    /// The function containing `rva` in the image identified by `id`.
    pub fn function(&mut self, id: &DbgIdRsds, rva: u32) -> Option<String> {
        let tkey = (id.pdb_file_name.to_lowercase(), id.guid.0, id.age);
        let ckey = (tkey.0.clone(), tkey.1, tkey.2, rva);
        if let Some(hit) = self.cache.get(&ckey) {
            return hit.clone();
        }
        if !self.tables.contains_key(&tkey) {
            let mut table = None;
            for path in self.candidates(id) {
                if path.is_file() {
                    match FunctionTable::from_pdb(&path, Some(id)) {
                        Ok(t) => {
                            table = Some(t);
                            break;
                        }
                        Err(e) => self.problems.push(e.to_string()),
                    }
                }
            }
            self.tables.insert(tkey.clone(), table);
        }
        let name = self
            .tables
            .get(&tkey)
            .and_then(|t| t.as_ref())
            .and_then(|t| t.lookup(rva))
            .map(str::to_string);
        self.cache.insert(ckey, name.clone());
        name
    }

    /// Number of PDBs found and loaded.
    pub fn loaded(&self) -> usize {
        self.tables.values().filter(|t| t.is_some()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_by_length_and_by_next_start() {
        let t = FunctionTable::new(vec![
            (0x1000, 0x20, "a".into()),
            (0x1100, 0, "b".into()),
            (0x1200, 0x10, "c".into()),
        ]);
        assert_eq!(t.lookup(0x0fff), None);
        assert_eq!(t.lookup(0x1000), Some("a"));
        assert_eq!(t.lookup(0x101f), Some("a"));
        assert_eq!(t.lookup(0x1020), None, "past a's length");
        assert_eq!(t.lookup(0x11ff), Some("b"), "b ends where c starts");
        assert_eq!(t.lookup(0x1210), None);
    }

    #[test]
    fn symbol_server_paths() {
        let id = DbgIdRsds {
            base: 0,
            pid: 0,
            guid: crate::events::Guid::from_fields(
                0x1234_5678,
                0x9abc,
                0xdef0,
                [1, 2, 3, 4, 5, 6, 7, 8],
            ),
            age: 0x1a,
            pdb_file_name: r"E:\build\obj\Shop.pdb".into(),
        };
        let d = SymbolDir::new("/sym");
        let c = d.candidates(&id);
        assert_eq!(
            c[0],
            PathBuf::from("/sym/Shop.pdb/123456789ABCDEF001020304050607081A/Shop.pdb")
        );
        assert!(c.contains(&PathBuf::from("/sym/shop.pdb")));
    }
}
