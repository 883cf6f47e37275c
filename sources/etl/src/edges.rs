//! Call edges from assembled stacks: caller = frame i+1, callee = frame i
//! (return addresses minus one before lookup), named `module!function`
//! with symbols and `module!+0xRVA` without, aggregated per time window
//! into `edge` records, followed by a final watermark.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use tracemerge_records::{EdgeObservation, Record};

use crate::error::EtlError;
use crate::file::Clock;
use crate::kernel::DbgIdRsds;
use crate::symbols::SymbolDir;
use crate::trace::{DecodeOptions, ModuleMap, ModuleSpan, Stack, Trace};

/// What an edge endpoint names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Granularity {
    /// `module!function` (PDB) or `module!+0xRVA`.
    #[default]
    Function,
    /// The module only (`ntdll.dll`); edges inside one module are dropped.
    Module,
}

/// Options of [`import`].
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// Symbol directory (symbol-server layout) searched for PDBs.
    pub symbols: Option<PathBuf>,
    /// Process image name → artifact.
    pub artifact_map: ArtifactMap,
    pub granularity: Granularity,
    /// Observations of one edge within a window become one record (ms, ≥ 1).
    pub window_ms: u64,
    /// `source` of the records; default `etw:<file name>`.
    pub source: Option<String>,
    /// Return what decodes from a damaged file instead of failing.
    pub lenient: bool,
    pub decode: DecodeOptions,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            symbols: None,
            artifact_map: ArtifactMap::default(),
            granularity: Granularity::Function,
            window_ms: 1000,
            source: None,
            lenient: false,
            decode: DecodeOptions::default(),
        }
    }
}

/// Maps process image names (case-insensitive) to artifacts. `*` is the
/// default; an artifact `-` drops the process. Without an entry, the
/// artifact is the process image name (`pid:N` when unknown).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArtifactMap {
    entries: HashMap<String, String>,
}

impl ArtifactMap {
    pub fn insert(&mut self, process: &str, artifact: &str) {
        self.entries
            .insert(process.to_lowercase(), artifact.to_string());
    }

    /// Parses a JSON object `{"process.exe": "artifact"}` or lines
    /// `process.exe = artifact` (`#` comments).
    pub fn parse(text: &str) -> Result<ArtifactMap, String> {
        let mut m = ArtifactMap::default();
        if text.trim_start().starts_with('{') {
            let v: HashMap<String, String> =
                serde_json::from_str(text).map_err(|e| format!("artifact map JSON: {e}"))?;
            for (k, a) in v {
                m.insert(&k, &a);
            }
            return Ok(m);
        }
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let Some((k, a)) = line.split_once('=') else {
                return Err(format!("line {}: expected `process = artifact`", n + 1));
            };
            let (k, a) = (k.trim(), a.trim());
            if k.is_empty() || a.is_empty() {
                return Err(format!("line {}: empty process or artifact", n + 1));
            }
            m.insert(k, a);
        }
        Ok(m)
    }

    pub fn load(path: &Path) -> Result<ArtifactMap, EtlError> {
        let text = std::fs::read_to_string(path).map_err(|e| EtlError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        ArtifactMap::parse(&text).map_err(|reason| EtlError::Input {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// The artifact of a process, `None` when it is dropped.
    pub fn artifact(&self, process: &str) -> Option<String> {
        let a = self
            .entries
            .get(&process.to_lowercase())
            .or_else(|| self.entries.get("*"))
            .cloned()
            .unwrap_or_else(|| process.to_string());
        (a != "-").then_some(a)
    }
}

/// What an import produced.
#[derive(Debug, Default)]
pub struct Import {
    pub records: Vec<Record>,
    pub damage: Vec<EtlError>,
    pub stats: ImportStats,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ImportStats {
    pub stacks: u64,
    /// Live: stacks completed after the watermark passed their time,
    /// stamped at the watermark.
    pub stacks_late: u64,
    /// Adjacent frame pairs looked at.
    pub pairs: u64,
    /// Pairs that became an observation.
    pub observations: u64,
    /// Pairs with a frame outside every known image.
    pub pairs_unresolved: u64,
    /// Module granularity: pairs inside one module.
    pub pairs_same_module: u64,
    pub pairs_dropped_process: u64,
    pub edge_records: u64,
    pub symbolized_frames: u64,
    pub pdbs_loaded: u64,
    /// PDBs found but unusable (wrong GUID, unreadable), with why.
    pub symbol_problems: Vec<String>,
}

/// Decodes `path` and returns its record stream (edges, then a watermark).
/// A damaged file is an error unless `options.lenient`.
pub fn import(path: &Path, options: &ImportOptions) -> Result<Vec<Record>, EtlError> {
    let imp = import_report(path, options)?;
    if !options.lenient {
        if let Some(e) = imp.damage.into_iter().next() {
            return Err(e);
        }
    }
    Ok(imp.records)
}

/// Like [`import`], but always returns what decoded, with the damage met.
pub fn import_report(path: &Path, options: &ImportOptions) -> Result<Import, EtlError> {
    let data = std::fs::read(path).map_err(|e| EtlError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let trace = Trace::decode_with(&data, &options.decode)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let mut symbols = options.symbols.as_ref().map(SymbolDir::new);
    Ok(edges(trace, &name, options, symbols.as_mut()))
}

/// What naming a frame needs from a decoded trace, file or live.
pub struct NameContext<'a> {
    pub modules: &'a ModuleMap,
    pub process_names: &'a HashMap<u32, String>,
    pub pdbs: &'a HashMap<(u64, u32), DbgIdRsds>,
    pub clock: &'a Clock,
}

impl<'a> NameContext<'a> {
    pub fn of(trace: &'a Trace) -> NameContext<'a> {
        NameContext {
            modules: &trace.modules,
            process_names: &trace.process_names,
            pdbs: &trace.pdbs,
            clock: &trace.clock,
        }
    }
}

struct Namer<'a> {
    cx: &'a NameContext<'a>,
    pdb_by_base: HashMap<u64, &'a DbgIdRsds>,
    symbols: Option<&'a mut SymbolDir>,
    granularity: Granularity,
    symbolized: u64,
}

impl Namer<'_> {
    fn name(&mut self, pid: u32, addr: u64, ts: i64) -> Option<(String, String)> {
        let m: &ModuleSpan = self.cx.modules.lookup(pid, addr, ts)?;
        let module = m.name.clone();
        if self.granularity == Granularity::Module {
            return Some((module.clone(), module));
        }
        let rva = (addr - m.base) as u32;
        if let Some(dir) = self.symbols.as_deref_mut() {
            let id = self
                .cx
                .pdbs
                .get(&(m.base, pid))
                .or_else(|| self.pdb_by_base.get(&m.base).copied());
            if let Some(f) = id.and_then(|id| dir.function(id, rva)) {
                self.symbolized += 1;
                return Some((format!("{module}!{f}"), module));
            }
        }
        Some((format!("{module}!+{rva:#x}"), module))
    }
}

/// Aggregates the caller → callee pairs of stacks per time window into
/// `edge` records; used by the file import (all stacks, then everything)
/// and by the live collector (stacks as they complete, windows as they close).
pub struct EdgeAggregator {
    source: String,
    window: u64,
    granularity: Granularity,
    artifact_map: ArtifactMap,
    /// Record ids are `{id_prefix}:{n}`: the same input gives the same ids,
    /// so a re-import is deduplicated.
    id_prefix: String,
    next_id: u64,
    /// (window, artifact, caller, callee) -> (first at, hits)
    agg: BTreeMap<(u64, String, String, String), (u64, u64)>,
    artifacts: HashMap<u32, Option<String>>,
    pub stats: ImportStats,
}

impl EdgeAggregator {
    /// `start_time` (FILETIME of the trace or session start) goes into the record ids.
    pub fn new(options: &ImportOptions, source: String, start_time: i64) -> EdgeAggregator {
        let window = options.window_ms.max(1);
        let id_prefix = format!(
            "{source}:{start_time:x}:{}{}",
            match options.granularity {
                Granularity::Function => "f",
                Granularity::Module => "m",
            },
            window
        );
        EdgeAggregator {
            source,
            window,
            granularity: options.granularity,
            artifact_map: options.artifact_map.clone(),
            id_prefix,
            next_id: 0,
            agg: BTreeMap::new(),
            artifacts: HashMap::new(),
            stats: ImportStats::default(),
        }
    }

    /// Counts the pairs of adjacent frames of `stacks`. Their observations
    /// are stamped no earlier than `not_before_ms` (a live stack completed
    /// after the watermark passed its time; 0 for files).
    pub fn add(
        &mut self,
        stacks: &[Stack],
        cx: &NameContext<'_>,
        symbols: Option<&mut SymbolDir>,
        not_before_ms: u64,
    ) {
        let mut namer = Namer {
            cx,
            pdb_by_base: cx.pdbs.values().map(|r| (r.base, r)).collect(),
            symbols,
            granularity: self.granularity,
            symbolized: 0,
        };
        let stats = &mut self.stats;
        for s in stacks {
            stats.stacks += 1;
            let artifact = self
                .artifacts
                .entry(s.pid)
                .or_insert_with(|| {
                    let process = cx
                        .process_names
                        .get(&s.pid)
                        .cloned()
                        .unwrap_or_else(|| format!("pid:{}", s.pid));
                    self.artifact_map.artifact(&process)
                })
                .clone();
            let mut at = cx.clock.unix_ms(s.timestamp);
            if at < not_before_ms {
                at = not_before_ms;
                stats.stacks_late += 1;
            }
            let names: Vec<Option<(String, String)>> = s
                .frames
                .iter()
                .enumerate()
                .map(|(i, &a)| {
                    let look = if i == 0 { a } else { a.wrapping_sub(1) };
                    namer.name(s.pid, look, s.timestamp)
                })
                .collect();
            for w in names.windows(2) {
                stats.pairs += 1;
                let Some(artifact) = &artifact else {
                    stats.pairs_dropped_process += 1;
                    continue;
                };
                let (Some(callee), Some(caller)) = (&w[0], &w[1]) else {
                    stats.pairs_unresolved += 1;
                    continue;
                };
                if self.granularity == Granularity::Module && callee.1 == caller.1 {
                    stats.pairs_same_module += 1;
                    continue;
                }
                stats.observations += 1;
                let e = self
                    .agg
                    .entry((
                        at / self.window,
                        artifact.clone(),
                        caller.0.clone(),
                        callee.0.clone(),
                    ))
                    .or_insert((at, 0));
                e.0 = e.0.min(at);
                e.1 += 1;
            }
        }
        stats.symbolized_frames += namer.symbolized;
        if let Some(dir) = namer.symbols.as_deref() {
            stats.pdbs_loaded = dir.loaded() as u64;
            stats.symbol_problems = dir.problems.clone();
        }
    }

    /// Start (ms) of the window holding `at_ms`.
    pub fn window_start(&self, at_ms: u64) -> u64 {
        at_ms / self.window * self.window
    }

    /// The records of the windows that end at or before `until_ms`, in time order.
    pub fn take_before(&mut self, until_ms: u64) -> Vec<Record> {
        let first_open = until_ms / self.window;
        let open = self
            .agg
            .split_off(&(first_open, String::new(), String::new(), String::new()));
        let closed = std::mem::replace(&mut self.agg, open);
        self.records(closed)
    }

    /// The records of every window.
    pub fn take_all(&mut self) -> Vec<Record> {
        let all = std::mem::take(&mut self.agg);
        self.records(all)
    }

    fn records(
        &mut self,
        rows: BTreeMap<(u64, String, String, String), (u64, u64)>,
    ) -> Vec<Record> {
        let mut rows: Vec<_> = rows.into_iter().collect();
        rows.sort_by(|a, b| {
            (a.1 .0, &a.0 .1, &a.0 .2, &a.0 .3).cmp(&(b.1 .0, &b.0 .1, &b.0 .2, &b.0 .3))
        });
        let records: Vec<Record> = rows
            .into_iter()
            .map(|((_, artifact, caller, callee), (at, hits))| {
                let n = self.next_id;
                self.next_id += 1;
                Record::Edge(EdgeObservation {
                    artifact,
                    caller,
                    callee,
                    at,
                    hits,
                    source: self.source.clone(),
                    event_id: Some(format!("{}:{n}", self.id_prefix)),
                    estimated: false,
                })
            })
            .collect();
        self.stats.edge_records += records.len() as u64;
        records
    }
}

/// Turns a decoded trace into edge records (aggregated per window) and a
/// final watermark.
pub fn edges(
    trace: Trace,
    file_name: &str,
    options: &ImportOptions,
    symbols: Option<&mut SymbolDir>,
) -> Import {
    let source = options
        .source
        .clone()
        .unwrap_or_else(|| format!("etw:{file_name}"));
    let mut aggregator = EdgeAggregator::new(options, source, trace.header.start_time);
    aggregator.add(&trace.stacks, &NameContext::of(&trace), symbols, 0);
    let mut records = aggregator.take_all();
    let last = records.iter().map(Record::time).max().unwrap_or(0);
    records.push(Record::Watermark {
        at: trace.clock.unix_ms(trace.last_timestamp).max(last),
    });
    Import {
        records,
        damage: trace.damage,
        stats: aggregator.stats,
    }
}
