//! User-space handle on the kernel side: the compiled object, its maps
//! (created and owned by aya), the lossless exact-count reader and the
//! double-buffered sampling drain.

use crate::error::ProbeError;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use aya::maps::{Array, HashMap, Map, MapData, PerCpuArray, StackTraceMap};
use object::{Object, ObjectSection, ObjectSymbol, RelocationTarget};

use crate::sys;

#[repr(C, align(8))]
struct Aligned<T: ?Sized>(T);

static OBJECT: &Aligned<[u8]> = &Aligned(*include_bytes!("../bpf/tracemerge.bpf.o"));

/// The compiled kernel-side object (built from `bpf/tracemerge.bpf.c` by
/// `bpf/build.sh`; committed, so building this crate needs no clang).
pub fn object_bytes() -> &'static [u8] {
    &OBJECT.0
}

/// Key of the exact-mode count map (`struct exact_key` in the C source).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ExactKey {
    pub tgid: u32,
    pub pad: u32,
    pub cookie: u64,
    pub ret: u64,
}
// SAFETY: plain integers, no padding bytes (the pad is explicit).
unsafe impl aya::Pod for ExactKey {}

/// Key of the sampling-mode count map (`struct sample_key`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SampleKey {
    pub tgid: u32,
    pub stack_id: u32,
}
// SAFETY: plain integers, no padding.
unsafe impl aya::Pod for SampleKey {}

/// Loss counters, by cause (slots of the `losses` map).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Losses {
    /// Exact mode: a new (process, callee, call site) did not fit in the map.
    pub exact_map_full: u64,
    /// Exact mode: the return address could not be read (counted under an
    /// `[unknown]` caller, so not lost, but reported).
    pub exact_no_return_address: u64,
    /// Sampling: a new (process, stack) did not fit in the map.
    pub sample_map_full: u64,
    /// Sampling: the stack map's bucket held another stack.
    pub sample_stack_collision: u64,
    /// Sampling: no user stack (kernel thread, or unreadable).
    pub sample_no_user_stack: u64,
}

impl Losses {
    /// Events whose edges are missing from the output.
    pub fn lost(&self) -> u64 {
        self.exact_map_full + self.sample_map_full + self.sample_stack_collision
    }

    pub fn since(&self, earlier: &Losses) -> Losses {
        Losses {
            exact_map_full: self.exact_map_full - earlier.exact_map_full,
            exact_no_return_address: self.exact_no_return_address - earlier.exact_no_return_address,
            sample_map_full: self.sample_map_full - earlier.sample_map_full,
            sample_stack_collision: self.sample_stack_collision - earlier.sample_stack_collision,
            sample_no_user_stack: self.sample_no_user_stack - earlier.sample_no_user_stack,
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "exact_map_full": self.exact_map_full,
            "exact_no_return_address": self.exact_no_return_address,
            "sample_map_full": self.sample_map_full,
            "sample_stack_collision": self.sample_stack_collision,
            "sample_no_user_stack": self.sample_no_user_stack,
        })
    }
}

/// How long programs that read the old buffer index may still be running
/// after a flip. BPF programs run for microseconds; this is ample.
const FLIP_GRACE: Duration = Duration::from_millis(5);

/// The maps of one loaded object.
pub struct Kernel {
    ebpf: aya::Ebpf,
    active: u32,
}

fn map_fd(map: &Map) -> Option<RawFd> {
    let data: &MapData = match map {
        Map::HashMap(d) | Map::Array(d) | Map::PerCpuArray(d) | Map::StackTraceMap(d) => d,
        _ => return None,
    };
    Some(data.fd().as_fd().as_raw_fd())
}

impl Kernel {
    /// Creates the maps. `exact_entries` / `sample_entries` size the count
    /// maps (each of the two buffers).
    pub fn load(exact_entries: u32, sample_entries: u32) -> Result<Kernel, ProbeError> {
        let ebpf = aya::EbpfLoader::new()
            .btf(None)
            .map_max_entries("exact", exact_entries)
            .map_max_entries("sample0", sample_entries)
            .map_max_entries("sample1", sample_entries)
            .load(object_bytes())
            .map_err(|e| ProbeError::kernel("creating BPF maps", e))?;
        Ok(Kernel { ebpf, active: 0 })
    }

    pub fn ebpf_mut(&mut self) -> &mut aya::Ebpf {
        &mut self.ebpf
    }

    /// Loads the exact-mode program for uprobe_multi. aya 0.14 cannot load
    /// a program with the `BPF_TRACE_UPROBE_MULTI` expected attach type, so
    /// this reads the program's instructions from the object, points its map
    /// references at aya's map fds, and loads it with bpf(BPF_PROG_LOAD).
    pub fn load_exact_program(&self) -> Result<OwnedFd, ProbeError> {
        let insns = self.relocated("uprobe/tm_exact")?;
        sys::prog_load(
            sys::PROG_TYPE_KPROBE,
            sys::TRACE_UPROBE_MULTI,
            &insns,
            "Dual MIT/GPL",
            "tm_exact",
        )
        .map_err(|e| ProbeError::kernel("loading the exact-mode BPF program", e))
    }

    /// The instructions of program section `section`, with every map
    /// reference (`ld_imm64` + `R_BPF_64_64` relocation) turned into a
    /// `BPF_PSEUDO_MAP_FD` load of the map aya created.
    fn relocated(&self, section: &str) -> Result<Vec<u8>, ProbeError> {
        let file =
            object::File::parse(object_bytes()).map_err(|e| ProbeError::object(None, None, e))?;
        let sec = file.section_by_name(section).ok_or_else(|| {
            ProbeError::object(
                Some(section),
                None,
                format!("BPF object has no section {section}"),
            )
        })?;
        let mut insns = sec
            .data()
            .map_err(|e| ProbeError::object(Some(section), None, e))?
            .to_vec();
        for (offset, rel) in sec.relocations() {
            let bad = |what: String| ProbeError::object(Some(section), Some(offset), what);
            let RelocationTarget::Symbol(index) = rel.target() else {
                return Err(bad(format!("{section}: unexpected relocation at {offset}")));
            };
            let sym = file
                .symbol_by_index(index)
                .map_err(|e| bad(e.to_string()))?;
            let name = sym.name().map_err(|e| bad(e.to_string()))?;
            let fd =
                self.ebpf.map(name).and_then(map_fd).ok_or_else(|| {
                    bad(format!("{section}: relocation against unknown map {name}"))
                })?;
            let at = offset as usize;
            if at + 16 > insns.len() || insns[at] != 0x18 {
                return Err(bad(format!(
                    "{section}: relocation at {offset} is not an ld_imm64"
                )));
            }
            const BPF_PSEUDO_MAP_FD: u8 = 1;
            insns[at + 1] = (insns[at + 1] & 0x0f) | (BPF_PSEUDO_MAP_FD << 4);
            insns[at + 4..at + 8].copy_from_slice(&fd.to_ne_bytes());
            insns[at + 12..at + 16].copy_from_slice(&0i32.to_ne_bytes());
        }
        Ok(insns)
    }

    fn ctl(&mut self) -> Result<Array<&mut MapData, u64>, ProbeError> {
        let map = (self.ebpf.map_mut("ctl")).ok_or_else(|| ProbeError::map("ctl", "no ctl map"))?;
        Array::try_from(map).map_err(|e| ProbeError::map("ctl", e))
    }

    /// Restricts sampling to one process (`0`: every process).
    pub fn set_sample_filter(&mut self, tgid: u32) -> Result<(), ProbeError> {
        self.ctl()?
            .set(1, tgid as u64, 0)
            .map_err(|e| ProbeError::map("ctl", e))
    }

    /// Makes the exact-mode links of `generation` (the high half of their
    /// cookies) the ones that count.
    pub fn set_exact_generation(&mut self, generation: u32) -> Result<(), ProbeError> {
        self.ctl()?
            .set(2, generation as u64, 0)
            .map_err(|e| ProbeError::map("ctl", e))
    }

    /// Arms the one-shot new-edge signal: the next exact-mode program run in
    /// thread `tid` that counts a key seen for the first time sends `signal`
    /// to that thread (and disarms it). `None` disarms.
    pub fn arm_new_edge_signal(&mut self, armed: Option<(u32, i32)>) -> Result<(), ProbeError> {
        let value = armed.map_or(0, |(tid, signal)| ((signal as u64) << 32) | tid as u64);
        self.ctl()?
            .set(3, value, 0)
            .map_err(|e| ProbeError::map("ctl", e))
    }

    /// Whether the new-edge signal is still armed (not yet sent).
    pub fn new_edge_signal_armed(&mut self) -> Result<bool, ProbeError> {
        Ok(self.ctl_value(3)? != 0)
    }

    /// Exact keys the kernel has inserted so far (first sightings of an
    /// edge at a call site).
    pub fn new_edges(&mut self) -> Result<u64, ProbeError> {
        self.ctl_value(4)
    }

    fn ctl_value(&mut self, slot: u32) -> Result<u64, ProbeError> {
        self.ctl()?
            .get(&slot, 0)
            .map_err(|e| ProbeError::map("ctl", e))
    }

    /// Makes the other buffer active and returns the now idle one, once
    /// programs that saw the old index have finished.
    pub fn flip(&mut self) -> Result<u32, ProbeError> {
        let idle = self.active;
        self.active ^= 1;
        let active = self.active as u64;
        (self.ctl()?.set(0, active, 0)).map_err(|e| ProbeError::map("ctl", e))?;
        std::thread::sleep(FLIP_GRACE);
        Ok(idle)
    }

    /// The exact-mode calls counted since the last call (see
    /// [`ExactCounts`]). `gone` says whether a process has been reaped.
    pub fn exact_deltas(
        &mut self,
        counts: &mut ExactCounts,
        gone: impl Fn(u32) -> bool,
    ) -> Result<Vec<(ExactKey, u64)>, ProbeError> {
        let map =
            (self.ebpf.map_mut("exact")).ok_or_else(|| ProbeError::map("exact", "no map exact"))?;
        let mut hash = HashMap::<&mut MapData, ExactKey, u64>::try_from(map)
            .map_err(|e| ProbeError::map("exact", e))?;
        // Decide which processes are gone *before* reading: their counters
        // are final only if no thread of theirs could run after the read.
        let gone = counts.processes_gone(gone);
        let keys: Vec<ExactKey> = hash.keys().filter_map(Result::ok).collect();
        let mut now = Vec::with_capacity(keys.len());
        for key in keys {
            if let Ok(n) = hash.get(&key, 0) {
                now.push((key, n));
            }
        }
        let deltas = counts.advance(now);
        for key in counts.forget(&gone) {
            let _ = hash.remove(&key);
        }
        Ok(deltas)
    }

    /// Reads and empties an idle sampling buffer: (key, count, frames).
    #[allow(clippy::type_complexity)]
    pub fn take_samples(
        &mut self,
        buffer: u32,
    ) -> Result<
        (
            Vec<(SampleKey, u64)>,
            std::collections::HashMap<u32, Vec<u64>>,
        ),
        ProbeError,
    > {
        let counts = take_hash::<SampleKey>(
            &mut self.ebpf,
            if buffer == 0 { "sample0" } else { "sample1" },
        )?;
        let name = if buffer == 0 { "stacks0" } else { "stacks1" };
        let map = (self.ebpf.map_mut(name)).ok_or_else(|| ProbeError::map(name, "no stack map"))?;
        let mut stacks = StackTraceMap::try_from(map).map_err(|e| ProbeError::map(name, e))?;
        let ids: Vec<u32> = stacks.stack_ids().filter_map(Result::ok).collect();
        let mut frames = std::collections::HashMap::new();
        for id in ids {
            if let Ok(trace) = stacks.get(&id, 0) {
                frames.insert(id, trace.frames().iter().map(|f| f.ip).collect());
            }
            let _ = stacks.remove(&id);
        }
        Ok((counts, frames))
    }

    /// Loss counters so far (summed over CPUs).
    pub fn losses(&self) -> Result<Losses, ProbeError> {
        let map =
            (self.ebpf.map("losses")).ok_or_else(|| ProbeError::map("losses", "no losses map"))?;
        let arr = PerCpuArray::<&MapData, u64>::try_from(map)
            .map_err(|e| ProbeError::map("losses", e))?;
        let slot = |i: u32| -> u64 { arr.get(&i, 0).map(|v| v.iter().sum()).unwrap_or(0) };
        Ok(Losses {
            exact_map_full: slot(0),
            exact_no_return_address: slot(1),
            sample_map_full: slot(2),
            sample_stack_collision: slot(3),
            sample_no_user_stack: slot(4),
        })
    }
}

/// Exact counts without loss, by construction: the kernel's counters only
/// grow (atomic adds), and a key is never deleted while its process can
/// still run, so every increment — also one by a program that was preempted
/// across a read — shows up in this read or a later one. Each read reports
/// the growth since the previous one. A process's keys are dropped (here and
/// in the kernel) once it has been reaped, after a last read that follows
/// the reaping; this bounds the map by the call sites of live processes.
#[derive(Debug, Default)]
pub struct ExactCounts {
    last: std::collections::HashMap<ExactKey, u64>,
}

impl ExactCounts {
    /// The processes with counters that `gone` says have been reaped.
    fn processes_gone(&self, gone: impl Fn(u32) -> bool) -> std::collections::HashSet<u32> {
        let tgids: std::collections::HashSet<u32> = self.last.keys().map(|k| k.tgid).collect();
        tgids.into_iter().filter(|&t| gone(t)).collect()
    }

    /// Takes the counters as read now; returns the keys that grew and by how
    /// much. A key missing from `now` keeps its last value (it is only
    /// deleted through [`ExactCounts::forget`]).
    pub fn advance(&mut self, now: Vec<(ExactKey, u64)>) -> Vec<(ExactKey, u64)> {
        let mut grew = Vec::new();
        for (key, value) in now {
            let last = self.last.entry(key).or_insert(0);
            // A counter never shrinks while its key lives; a smaller value
            // means the key was deleted and inserted again: all of it is new.
            let delta = if value >= *last { value - *last } else { value };
            *last = value;
            if delta > 0 {
                grew.push((key, delta));
            }
        }
        grew
    }

    /// Drops the keys of the given processes; returns them.
    pub fn forget(&mut self, tgids: &std::collections::HashSet<u32>) -> Vec<ExactKey> {
        if tgids.is_empty() {
            return Vec::new();
        }
        let keys: Vec<ExactKey> = self
            .last
            .keys()
            .filter(|k| tgids.contains(&k.tgid))
            .copied()
            .collect();
        for k in &keys {
            self.last.remove(k);
        }
        keys
    }

    /// Keys held (live in the kernel map).
    pub fn len(&self) -> usize {
        self.last.len()
    }

    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}

fn take_hash<K: aya::Pod>(
    ebpf: &mut aya::Ebpf,
    name: &'static str,
) -> Result<Vec<(K, u64)>, ProbeError> {
    let map =
        (ebpf.map_mut(name)).ok_or_else(|| ProbeError::map(name, format!("no map {name}")))?;
    let mut hash =
        HashMap::<&mut MapData, K, u64>::try_from(map).map_err(|e| ProbeError::map(name, e))?;
    // Collect the keys first: deleting while walking with get_next_key can
    // restart the walk.
    let keys: Vec<K> = hash.keys().filter_map(Result::ok).collect();
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        if let Ok(n) = hash.get(&key, 0) {
            out.push((key, n));
        }
        let _ = hash.remove(&key);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_has_both_programs_and_only_map_relocations() {
        let file = object::File::parse(object_bytes()).unwrap();
        let maps = [
            "ctl", "exact", "sample0", "sample1", "stacks0", "stacks1", "losses",
        ];
        for section in ["uprobe/tm_exact", "perf_event"] {
            let sec = file.section_by_name(section).unwrap();
            let data = sec.data().unwrap();
            assert_eq!(data.len() % 8, 0);
            let mut n = 0;
            for (offset, rel) in sec.relocations() {
                let RelocationTarget::Symbol(i) = rel.target() else {
                    panic!()
                };
                let name = file.symbol_by_index(i).unwrap().name().unwrap();
                assert!(maps.contains(&name), "{section}: {name}");
                assert_eq!(data[offset as usize], 0x18, "ld_imm64");
                n += 1;
            }
            assert!(n > 0);
        }
        // Key layouts shared with the C side.
        assert_eq!(std::mem::size_of::<ExactKey>(), 24);
        assert_eq!(std::mem::size_of::<SampleKey>(), 8);
    }

    fn key(tgid: u32, cookie: u64) -> ExactKey {
        ExactKey {
            tgid,
            pad: 0,
            cookie,
            ret: 0x1000 + cookie,
        }
    }

    #[test]
    fn exact_counts_report_growth_and_never_lose_a_late_increment() {
        let mut counts = ExactCounts::default();
        assert_eq!(
            counts.advance(vec![(key(1, 0), 5), (key(1, 1), 2)]).len(),
            2
        );
        // An increment that lands after a read (a preempted program) is
        // part of the next read's growth; unchanged keys report nothing.
        let grew = counts.advance(vec![(key(1, 0), 8), (key(1, 1), 2)]);
        assert_eq!(grew, vec![(key(1, 0), 3)]);
        // A key read late (inserted during the walk) counts from zero.
        let grew = counts.advance(vec![(key(1, 0), 8), (key(2, 0), 4)]);
        assert_eq!(grew, vec![(key(2, 0), 4)]);
        // Only the keys of reaped processes go, and only they.
        let gone = counts.processes_gone(|t| t == 1);
        assert_eq!(gone, [1].into_iter().collect());
        let mut dropped = counts.forget(&gone);
        dropped.sort_by_key(|k| k.cookie);
        assert_eq!(dropped, vec![key(1, 0), key(1, 1)]);
        assert_eq!(counts.len(), 1);
        // A key deleted and re-created (pid reuse) starts again from zero.
        assert_eq!(counts.advance(vec![(key(2, 0), 1)]), vec![(key(2, 0), 1)]);
    }

    #[test]
    fn losses_split_lost_from_reported() {
        let a = Losses {
            exact_map_full: 3,
            exact_no_return_address: 4,
            sample_map_full: 1,
            sample_stack_collision: 2,
            sample_no_user_stack: 9,
        };
        assert_eq!(a.lost(), 6);
        assert_eq!(a.since(&a), Losses::default());
    }
}
