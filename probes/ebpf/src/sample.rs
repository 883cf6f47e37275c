//! Sampling mode: a perf-event CPU sampler (default 99 Hz on every CPU)
//! that records the user stack of the running thread (walked by the kernel
//! through frame pointers); stacks are counted in the kernel and drained
//! every window into `edge` records (adjacent frames) and `hit` records
//! (leaf frames). Cheap, but only sees what was on CPU at a sample: it
//! never proves that a function did not run, so it emits no coverage.

use crate::error::ProbeError;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use aya::programs::perf_event::{PerfEventConfig, PerfEventScope, SamplePolicy, SoftwareEvent};
use aya::programs::PerfEvent;
use tracemerge_records::{EdgeObservation, HitObservation, Record};

use crate::demangle::NameStyle;
use crate::elf::ElfInfo;
use crate::kernel::{Kernel, Losses};
use crate::symbolize::{file_id, FileId, Symbolizer};
use crate::target::now_ms;

/// What to sample.
#[derive(Clone, Debug)]
pub struct Config {
    /// Samples per second on each CPU.
    pub frequency: u64,
    /// Only this process (`None`: every process).
    pub pid: Option<u32>,
    /// Artifact id of the records; default `build-id:<hex>` of each
    /// process's executable.
    pub artifact: Option<String>,
    /// `source` of the records; default `ebpf:<hostname>`.
    pub source: Option<String>,
    /// Capacity of the kernel count map (distinct (process, stack) per window).
    pub map_entries: u32,
    /// Which name of a function the records carry (mangled by default).
    pub names: NameStyle,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            frequency: 99,
            pid: None,
            artifact: None,
            source: None,
            map_entries: 16384,
            names: NameStyle::Mangled,
        }
    }
}

/// Totals over the whole session.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub samples: u64,
    /// Samples whose frame-pointer walk ran past the program's first frame
    /// into an address outside user space (the walk is cut there: such a
    /// "frame" is garbage read from the stack, never a caller).
    pub walks_left_user_space: u64,
    /// Samples whose leaf → caller edge was not emitted because the leaf
    /// had no frame of its own at that moment.
    pub leaf_edges_dropped: u64,
    pub edges: u64,
    pub hits: u64,
    pub windows: u64,
    pub losses: Losses,
    pub cpus: usize,
    pub attach: Duration,
    pub detach: Duration,
}

impl Summary {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "mode": "sample",
            "cpus": self.cpus,
            "samples": self.samples,
            "walks_left_user_space": self.walks_left_user_space,
            "leaf_edges_dropped": self.leaf_edges_dropped,
            "edges": self.edges,
            "hits": self.hits,
            "windows": self.windows,
            "losses": self.losses.lost(),
            "loss_detail": self.losses.to_json(),
            "attach_ms": self.attach.as_secs_f64() * 1e3,
            "detach_ms": self.detach.as_secs_f64() * 1e3,
        })
    }
}

struct Process {
    artifact: String,
    main: Option<FileId>,
}

/// A running sampler. Dropping it stops sampling.
pub struct Session {
    kernel: Kernel,
    attached: bool,
    artifact: Option<String>,
    source: String,
    symbolizer: Symbolizer,
    processes: HashMap<u32, Process>,
    builds: HashMap<FileId, Option<String>>,
    /// Samples whose stack was gone from the stack map when drained.
    missing_stacks: u64,
    summary: Summary,
}

impl Session {
    /// Loads the sampler and starts it on every online CPU.
    pub fn attach(config: &Config) -> Result<Session, ProbeError> {
        let started = Instant::now();
        let mut kernel = Kernel::load(1, config.map_entries)?;
        kernel.set_sample_filter(config.pid.unwrap_or(0))?;
        let cpus = aya::util::online_cpus().map_err(|(what, e)| ProbeError::kernel(what, e))?;
        {
            let prog: &mut PerfEvent = kernel
                .ebpf_mut()
                .program_mut("tm_sample")
                .ok_or_else(|| ProbeError::object(None, None, "BPF object has no tm_sample"))?
                .try_into()
                .map_err(|e| ProbeError::object(None, None, format!("tm_sample: {e}")))?;
            prog.load()
                .map_err(|e| ProbeError::kernel("loading the sampler", e))?;
            for &cpu in &cpus {
                prog.attach(
                    PerfEventConfig::Software(SoftwareEvent::CpuClock),
                    PerfEventScope::AllProcessesOneCpu { cpu },
                    SamplePolicy::Frequency(config.frequency),
                    false,
                )
                .map_err(|e| ProbeError::kernel(format!("starting the sampler on CPU {cpu}"), e))?;
            }
        }
        let summary = Summary {
            cpus: cpus.len(),
            attach: started.elapsed(),
            ..Default::default()
        };
        let mut session = Session {
            kernel,
            attached: true,
            artifact: config.artifact.clone(),
            source: config
                .source
                .clone()
                .unwrap_or_else(crate::exact::default_source),
            symbolizer: {
                let mut s = Symbolizer::new(None);
                s.set_name_style(config.names);
                s
            },
            processes: HashMap::new(),
            builds: HashMap::new(),
            missing_stacks: 0,
            summary,
        };
        if let Some(pid) = config.pid {
            session.remember_process(pid);
        }
        Ok(session)
    }

    /// Reads the executable and memory maps of `pid` now (for example at its
    /// exit stop), so that its samples resolve after it is gone.
    pub fn remember_process(&mut self, pid: u32) {
        self.symbolizer.refresh(pid);
        self.process(pid);
    }

    fn process(&mut self, pid: u32) -> &Process {
        if !self.processes.contains_key(&pid) {
            let exe = crate::target::exe(pid).ok();
            let main = exe.as_deref().and_then(|p| file_id(p).ok());
            let artifact = match (&self.artifact, main) {
                (Some(a), _) => a.clone(),
                (None, Some(id)) => {
                    let build = self
                        .builds
                        .entry(id)
                        .or_insert_with(|| {
                            exe.as_deref()
                                .and_then(|p| ElfInfo::read(p).ok())
                                .and_then(|i| i.build_id)
                        })
                        .clone();
                    match build {
                        Some(b) => format!("build-id:{b}"),
                        None => format!("path:{}", exe.as_deref().unwrap().display()),
                    }
                }
                (None, None) => format!("pid:{pid}"),
            };
            self.processes.insert(pid, Process { artifact, main });
        }
        &self.processes[&pid]
    }

    /// Ends one window: edges and hits of the stacks sampled since the last
    /// drain.
    pub fn drain(&mut self) -> Result<Vec<Record>, ProbeError> {
        let idle = self.kernel.flip()?;
        let (counts, stacks) = self.kernel.take_samples(idle)?;
        self.window(counts, stacks, now_ms())
    }

    /// Stops sampling and returns the records of the last window.
    pub fn finish(&mut self) -> Result<Vec<Record>, ProbeError> {
        self.detach();
        let now = now_ms();
        let mut counts = Vec::new();
        let mut stacks = HashMap::new();
        // Both buffers: samples may have landed in either.
        for _ in 0..2 {
            let idle = self.kernel.flip()?;
            let (c, s) = self.kernel.take_samples(idle)?;
            // Stack ids of the two buffers are separate maps: keep them apart.
            for (k, n) in c {
                if let Some(frames) = s.get(&k.stack_id) {
                    let id = stacks.len() as u32;
                    stacks.insert(id, frames.clone());
                    counts.push((
                        crate::kernel::SampleKey {
                            tgid: k.tgid,
                            stack_id: id,
                        },
                        n,
                    ));
                }
            }
        }
        self.window(counts, stacks, now)
    }

    /// Stops sampling now.
    pub fn detach(&mut self) {
        if self.attached {
            let started = Instant::now();
            if let Some(p) = self.kernel.ebpf_mut().program_mut("tm_sample") {
                if let Ok(p) = <&mut PerfEvent>::try_from(p) {
                    let _ = p.unload();
                }
            }
            self.attached = false;
            self.summary.detach = started.elapsed();
        }
    }

    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    fn window(
        &mut self,
        counts: Vec<(crate::kernel::SampleKey, u64)>,
        stacks: HashMap<u32, Vec<u64>>,
        now: u64,
    ) -> Result<Vec<Record>, ProbeError> {
        self.symbolizer.new_round();
        let mut edges: BTreeMap<(String, String, String), u64> = BTreeMap::new();
        let mut hits: BTreeMap<(String, String), u64> = BTreeMap::new();
        for (key, n) in counts {
            self.summary.samples += n;
            let Some(frames) = stacks.get(&key.stack_id) else {
                self.missing_stacks += n;
                continue;
            };
            let (artifact, main) = {
                let p = self.process(key.tgid);
                (p.artifact.clone(), p.main)
            };
            self.symbolizer.set_main(main);
            let (frames, left_user_space) = user_space_frames(frames);
            if left_user_space {
                self.summary.walks_left_user_space += n;
            }
            let names: Vec<String> = frames
                .iter()
                .enumerate()
                .map(|(i, &ip)| {
                    self.symbolizer
                        .resolve(key.tgid, if i == 0 { ip } else { ip - 1 })
                })
                .collect();
            let Some(leaf) = names.first() else { continue };
            *hits.entry((artifact.clone(), leaf.clone())).or_default() += n;
            // A leaf sampled outside its own frame (no frame pointer, or in
            // its prologue or at its `ret`) hides its caller: the next frame
            // is the caller's caller, and that edge would be false.
            let skip = usize::from(!self.symbolizer.has_frame_at(key.tgid, frames[0]));
            self.summary.leaf_edges_dropped += n * skip as u64;
            let mut seen = BTreeSet::new();
            for pair in names.windows(2).skip(skip) {
                if seen.insert((pair[1].clone(), pair[0].clone())) {
                    *edges
                        .entry((artifact.clone(), pair[1].clone(), pair[0].clone()))
                        .or_default() += n;
                }
            }
        }
        let mut out = Vec::with_capacity(edges.len() + hits.len());
        for ((artifact, caller, callee), n) in edges {
            self.summary.edges += 1;
            out.push(Record::Edge(EdgeObservation {
                artifact,
                caller,
                callee,
                at: now,
                hits: n,
                source: self.source.clone(),
                event_id: None,
                // Sample counts are estimates (DESIGN.md §3).
                estimated: true,
            }));
        }
        for ((artifact, symbol), n) in hits {
            self.summary.hits += n;
            out.push(Record::Hit(HitObservation {
                artifact,
                symbol,
                at: now,
                hits: n,
                source: self.source.clone(),
                event_id: None,
                // Sample counts are estimates (DESIGN.md §3).
                estimated: true,
            }));
        }
        let mut losses = self.kernel.losses()?;
        losses.sample_stack_collision += self.missing_stacks;
        self.summary.losses = losses;
        self.summary.windows += 1;
        Ok(out)
    }
}

/// One past the highest user-space address: 47-bit virtual addresses, or
/// 56-bit where the CPU has five-level paging (`la57`).
fn user_space_end() -> u64 {
    static END: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *END.get_or_init(|| {
        let la57 = std::fs::read_to_string("/proc/cpuinfo")
            .map(|t| t.split_ascii_whitespace().any(|w| w == "la57"))
            .unwrap_or(false);
        if la57 {
            1 << 56
        } else {
            1 << 47
        }
    })
}

/// The frames of a user stack up to (not including) the first address that
/// cannot be user code: below the first page or above user space. The
/// kernel's frame-pointer walk goes on until it reads something unmapped;
/// past the program's first frame (`_start` has no caller, its saved frame
/// pointer is whatever was on the stack) it yields garbage such as
/// `0xd80000555685774c`. Returns whether the walk was cut.
fn user_space_frames(frames: &[u64]) -> (&[u64], bool) {
    cut_at_non_user(frames, user_space_end())
}

fn cut_at_non_user(frames: &[u64], end: u64) -> (&[u64], bool) {
    const FIRST_PAGE: u64 = 4096;
    // Zero is how the kernel pads a short stack: the end, not a bad frame.
    let frames = match frames.iter().position(|&ip| ip == 0) {
        Some(i) => &frames[..i],
        None => frames,
    };
    match frames
        .iter()
        .position(|&ip| !(FIRST_PAGE..end).contains(&ip))
    {
        Some(i) => (&frames[..i], true),
        None => (frames, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_stop_at_addresses_outside_user_space() {
        let end = 1u64 << 47;
        let good = [0x5555_5555_1234, 0x5555_5555_2000, 0x7f00_0000_1000];
        assert_eq!(cut_at_non_user(&good, end), (&good[..], false));
        // The frame seen past `_start` in the wild, then more garbage.
        let bad = [
            0x5555_5555_1234,
            0x5555_5555_2000,
            0xd800_0055_5685_774c,
            0x5555_5555_3000,
        ];
        assert_eq!(cut_at_non_user(&bad, end), (&bad[..2], true));
        let kernel_half = [0x5555_5555_1234, 0xffff_ffff_8100_0000];
        assert_eq!(
            cut_at_non_user(&kernel_half, end),
            (&kernel_half[..1], true)
        );
        let null_page = [0x5555_5555_1234, 0x10];
        assert_eq!(cut_at_non_user(&null_page, end), (&null_page[..1], true));
        // Zero padding ends the stack without counting as a bad walk.
        let padded = [0x5555_5555_1234, 0, 0];
        assert_eq!(cut_at_non_user(&padded, end), (&padded[..1], false));
        // Five-level paging widens user space.
        let high = [0x5555_5555_1234, 0x00f0_0000_0000_0000];
        assert_eq!(cut_at_non_user(&high, 1 << 56), (&high[..], false));
        assert_eq!(cut_at_non_user(&high, end), (&high[..1], true));
    }
}
