//! Exact mode: an entry uprobe on every chosen function of one binary, all
//! in a single uprobe_multi link. The kernel counts (process, callee, call
//! site); every window user space drains the counts, names both ends and
//! emits `edge` records, plus a `coverage` record for the functions that
//! were probed during the window.

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tracemerge_records::{Coverage, EdgeObservation, Record};

use crate::elf::ElfInfo;
use crate::kernel::{ExactCounts, Kernel, Losses};
use crate::symbolize::{file_id, Symbolizer};
use crate::target::now_ms;

/// What to probe.
#[derive(Clone, Debug)]
pub struct Config {
    /// The ELF file whose functions are probed (executable or library).
    pub binary: PathBuf,
    /// Function names to probe; `None`: every function with a symbol.
    pub functions: Option<Vec<String>>,
    /// Artifact id of the records; default `build-id:<hex>` of the binary
    /// (`path:<binary>` when it has no build id).
    pub artifact: Option<String>,
    /// `source` of the records; default `ebpf:<hostname>`.
    pub source: Option<String>,
    /// Only this process (`None`: every process that runs the binary).
    pub pid: Option<u32>,
    /// Capacity of the kernel count map (distinct (process, callee, call
    /// site) per window); more is counted as loss.
    pub map_entries: u32,
}

impl Config {
    pub fn new(binary: impl Into<PathBuf>) -> Config {
        Config {
            binary: binary.into(),
            functions: None,
            artifact: None,
            source: None,
            pid: None,
            map_entries: 65536,
        }
    }
}

/// Totals over the whole session.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Edge records emitted (one per distinct edge and window).
    pub edges: u64,
    /// Calls counted in them.
    pub hits: u64,
    /// Windows drained.
    pub windows: u64,
    /// Windows whose coverage was withheld because events were lost.
    pub windows_without_coverage: u64,
    pub losses: Losses,
    /// Functions probed.
    pub functions: usize,
    /// Creating the maps and loading the program.
    pub load: Duration,
    /// Creating the uprobe_multi link (all probes).
    pub attach: Duration,
    pub detach: Duration,
}

impl Summary {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "mode": "exact",
            "functions": self.functions,
            "edges": self.edges,
            "hits": self.hits,
            "windows": self.windows,
            "windows_without_coverage": self.windows_without_coverage,
            "losses": self.losses.lost(),
            "loss_detail": self.losses.to_json(),
            "load_ms": self.load.as_secs_f64() * 1e3,
            "attach_ms": self.attach.as_secs_f64() * 1e3,
            "detach_ms": self.detach.as_secs_f64() * 1e3,
        })
    }
}

/// A running exact-mode probe. Dropping it detaches everything.
pub struct Session {
    kernel: Kernel,
    counts: ExactCounts,
    // Field order matters for drop: the link before the program and maps.
    link: Option<OwnedFd>,
    _prog: OwnedFd,
    names: Vec<String>,
    /// The names again, sorted (coverage records).
    sorted_names: Vec<String>,
    skipped: Vec<String>,
    artifact: String,
    source: String,
    symbolizer: Symbolizer,
    window_start: u64,
    detached_at: Option<u64>,
    losses_reported: Losses,
    summary: Summary,
}

/// The default `source`: `ebpf:<hostname>`.
pub fn default_source() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("ebpf:{}", host.trim())
}

impl Session {
    /// Loads the program and attaches it to the chosen functions.
    pub fn attach(config: &Config) -> Result<Session, String> {
        let binary = std::fs::canonicalize(&config.binary)
            .map_err(|e| format!("{}: {e}", config.binary.display()))?;
        let info = ElfInfo::read(&binary)?;
        let mut by_name: std::collections::HashMap<&str, &crate::elf::Symbol> =
            std::collections::HashMap::new();
        for s in info.probeable_functions() {
            by_name.entry(s.name.as_str()).or_insert(s);
        }
        let mut chosen: Vec<&crate::elf::Symbol> = Vec::new();
        let mut skipped = Vec::new();
        match &config.functions {
            None => chosen.extend(info.probeable_functions()),
            Some(list) => {
                let mut seen = std::collections::HashSet::new();
                for name in list {
                    match by_name.get(name.as_str()) {
                        Some(s) if seen.insert(s.addr) => chosen.push(s),
                        Some(_) => {}
                        None => skipped.push(name.clone()),
                    }
                }
            }
        }
        if chosen.is_empty() {
            return Err(format!(
                "{}: no function to probe (none with a symbol{})",
                binary.display(),
                if skipped.is_empty() {
                    String::new()
                } else {
                    format!("; not found: {}", skipped.join(", "))
                }
            ));
        }
        let offsets: Vec<u64> = chosen
            .iter()
            .map(|s| info.file_offset(s.addr).unwrap())
            .collect();
        let cookies: Vec<u64> = (0..chosen.len() as u64).collect();
        let names: Vec<String> = chosen.iter().map(|s| s.name.clone()).collect();

        let started = Instant::now();
        let kernel = Kernel::load(config.map_entries, 1)?;
        let prog = kernel.load_exact_program()?;
        let load = started.elapsed();
        let started = Instant::now();
        let link = crate::sys::uprobe_multi_link(
            &prog,
            &binary,
            &offsets,
            &cookies,
            config.pid.unwrap_or(0),
        )
        .map_err(|e| {
            format!(
                "attaching {} uprobes to {} (uprobe_multi): {e}",
                offsets.len(),
                binary.display()
            )
        })?;
        let attach = started.elapsed();

        let artifact = config
            .artifact
            .clone()
            .unwrap_or_else(|| match &info.build_id {
                Some(id) => format!("build-id:{id}"),
                None => format!("path:{}", binary.display()),
            });
        let main = file_id(&binary).ok();
        let summary = Summary {
            functions: names.len(),
            load,
            attach,
            ..Default::default()
        };
        let mut symbolizer = Symbolizer::new(main);
        if let Some(pid) = config.pid {
            // Read its maps now, in case it exits before the first drain.
            symbolizer.refresh(pid);
        }
        Ok(Session {
            kernel,
            counts: ExactCounts::default(),
            link: Some(link),
            _prog: prog,
            sorted_names: {
                let mut s = names.clone();
                s.sort();
                s
            },
            names,
            skipped,
            artifact,
            source: config.source.clone().unwrap_or_else(default_source),
            symbolizer,
            window_start: now_ms(),
            detached_at: None,
            losses_reported: Losses::default(),
            summary,
        })
    }

    /// Runs of the kernel program and the time spent in them (counted only
    /// while the sysctl kernel.bpf_stats_enabled is 1).
    pub fn program_stats(&self) -> Option<(u64, u64)> {
        crate::sys::prog_run_stats(&self._prog).ok()
    }

    /// The artifact id the records carry.
    pub fn artifact(&self) -> &str {
        &self.artifact
    }

    /// The probed functions, in attach order.
    pub fn functions(&self) -> &[String] {
        &self.names
    }

    /// Requested functions that the binary does not have.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// Reads the memory maps of `pid` now (for example at its exit stop),
    /// so that its addresses resolve after it is gone.
    pub fn remember_process(&mut self, pid: u32) {
        self.symbolizer.refresh(pid);
    }

    /// Ends one window: the edges counted since the last drain, and the
    /// coverage of the window (withheld if events were lost in it: a lost
    /// call must not pass for a function that did not run).
    pub fn drain(&mut self) -> Result<Vec<Record>, String> {
        let now = now_ms();
        let entries = self.read_counts()?;
        self.window(entries, now)
    }

    /// Calls counted since the last read. Keys of reaped processes are
    /// dropped after their last read (`/proc/TGID` gone: no thread left).
    fn read_counts(&mut self) -> Result<Vec<(crate::kernel::ExactKey, u64)>, String> {
        self.kernel.exact_deltas(&mut self.counts, |tgid| {
            !std::path::Path::new(&format!("/proc/{tgid}")).exists()
        })
    }

    /// Detaches every probe (one link: a single close) and returns the
    /// records of the last window.
    pub fn finish(&mut self) -> Result<Vec<Record>, String> {
        self.detach();
        let now = self.detached_at.unwrap_or_else(now_ms);
        // Closing the link waited for programs in flight: this read is final.
        let entries = self.read_counts()?;
        self.window(entries, now)
    }

    /// Removes all probes now (the maps stay readable).
    pub fn detach(&mut self) {
        if let Some(link) = self.link.take() {
            let started = Instant::now();
            drop(link);
            self.summary.detach = started.elapsed();
            self.detached_at = Some(now_ms());
        }
    }

    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    fn window(
        &mut self,
        entries: Vec<(crate::kernel::ExactKey, u64)>,
        now: u64,
    ) -> Result<Vec<Record>, String> {
        self.symbolizer.new_round();
        let mut edges: BTreeMap<(String, String), u64> = BTreeMap::new();
        for (key, hits) in entries {
            let Some(callee) = self.names.get(key.cookie as usize) else {
                continue;
            };
            let caller = if key.ret == 0 {
                "[unknown]".to_string()
            } else {
                // ret - 1: the call instruction, inside the caller even when
                // the call is the caller's last instruction.
                self.symbolizer.resolve(key.tgid, key.ret - 1)
            };
            *edges.entry((caller, callee.clone())).or_default() += hits;
        }
        let mut out = Vec::with_capacity(edges.len() + 1);
        for ((caller, callee), hits) in edges {
            self.summary.edges += 1;
            self.summary.hits += hits;
            out.push(Record::Edge(EdgeObservation {
                artifact: self.artifact.clone(),
                caller,
                callee,
                at: now,
                hits,
                source: self.source.clone(),
                event_id: None,
            }));
        }
        let losses = self.kernel.losses()?;
        let new_losses = losses.since(&self.losses_reported);
        self.losses_reported = losses;
        self.summary.losses = losses;
        self.summary.windows += 1;
        let probed_in_window =
            self.link.is_some() || self.detached_at.is_some_and(|t| t > self.window_start);
        if new_losses.exact_map_full > 0 {
            // The loss goes into the stream; the coverage it spoils does not.
            self.summary.windows_without_coverage += 1;
            out.push(Record::Coverage(Coverage {
                artifact: self.artifact.clone(),
                symbols: Vec::new(),
                from: self.window_start,
                to: now.max(self.window_start),
                source: self.source.clone(),
                lost: Some(new_losses.lost()),
            }));
        } else if probed_in_window && now > self.window_start {
            out.push(Record::Coverage(Coverage {
                artifact: self.artifact.clone(),
                symbols: self.sorted_names.clone(),
                from: self.window_start,
                to: now,
                source: self.source.clone(),
                lost: None,
            }));
        }
        self.window_start = now;
        Ok(out)
    }
}
