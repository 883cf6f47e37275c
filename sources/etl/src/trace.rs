//! Whole-file decoding: walks every buffer and record, keeps the typed
//! events, then builds the per-process module map over time and the
//! assembled stacks ([`crate::stacks`]: the rules of TraceEvent, fed in
//! logged order), each stack matched to its event.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::error::EtlError;
use crate::events::{
    header_type, Event, EventWalker, HeaderKind, EXT_TYPE_STACK_TRACE32, EXT_TYPE_STACK_TRACE64,
};
use crate::file::{
    u32_at, u64_at, Buffer, BufferWalker, Clock, LogFileHeader, Skipped, BUFFER_FLAG_BUFFER_LOST,
    BUFFER_FLAG_EVENTS_LOST, BUFFER_HEADER_SIZE,
};
use crate::kernel::{
    self, group, DbgIdRsds, Decoded, ImageEvent, Lifecycle, ProcessEvent, StackEvent, StackKeyDef,
    StackKeyRef,
};
use crate::stacks::{kernel_floor, AssemblyCounts, StackAssembler};
pub use crate::stacks::{Stack, StackOrigin};

/// Smallest prefix [`is_etl`] needs.
pub const ETL_PREFIX_LEN: usize = BUFFER_HEADER_SIZE + 8;

/// True when `prefix` (the first bytes of a file; 0x50 are enough) starts
/// like an ETL file: a plausible buffer header followed by the system header
/// of the EventTrace log-file header event (group 0, type 0).
pub fn is_etl(prefix: &[u8]) -> bool {
    not_etl_reason(prefix).is_none()
}

fn not_etl_reason(prefix: &[u8]) -> Option<String> {
    if prefix.len() < ETL_PREFIX_LEN {
        return Some(format!(
            "{} bytes is shorter than a buffer header and its first record",
            prefix.len()
        ));
    }
    let size = u32_at(prefix, 0).unwrap_or(0);
    if !(BUFFER_HEADER_SIZE as u32 + 0x20..=crate::file::MAX_BUFFER_SIZE).contains(&size) {
        return Some(format!("first buffer size {size} is implausible"));
    }
    let r = &prefix[BUFFER_HEADER_SIZE..];
    let ht = r[2];
    let flags = r[3];
    if flags & 0xc0 != 0xc0 || !(ht == header_type::SYSTEM32 || ht == header_type::SYSTEM64) {
        return Some("the first record is not a kernel system header".to_string());
    }
    if r[6] != 0 || r[7] != 0 {
        return Some(format!(
            "the first record is event {}/{}, not the log-file header 0/0",
            r[7], r[6]
        ));
    }
    None
}

/// Decoding options. Stack assembly follows one set of rules (TraceEvent's,
/// see [`crate::stacks`]); the earlier alternative conventions are withdrawn.
/// Kept so that callers' option structs stay stable.
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct DecodeOptions {}

/// A loaded image in one process over a time interval.
#[derive(Clone, Debug)]
pub struct ModuleSpan {
    pub base: u64,
    pub size: u64,
    /// Lower-case file name without its path (`ntdll.dll`).
    pub name: String,
    pub path: String,
    pub time_date_stamp: u32,
    /// Trace-clock interval `[load, unload)` (`i64::MIN`/`MAX` when open).
    pub load: i64,
    pub unload: i64,
}

/// Per-process module map over time; kernel modules live under pid 0.
#[derive(Clone, Debug, Default)]
pub struct ModuleMap {
    by_pid: HashMap<u32, Vec<ModuleSpan>>,
    /// Image events per pid (kernel-space images under pid 0).
    events_by_pid: HashMap<u32, u64>,
    max_size: HashMap<u32, u64>,
    kernel_floor: u64,
}

/// Lower-case file name of a path with `\` or `/` separators.
pub fn module_name(path: &str) -> String {
    path.rsplit(['\\', '/'])
        .next()
        .unwrap_or(path)
        .to_lowercase()
}

impl ModuleMap {
    pub(crate) fn build(images: &[(i64, ImageEvent)], pointer_size: u32) -> ModuleMap {
        let kernel_floor = kernel_floor(pointer_size);
        let mut by_pid: HashMap<u32, Vec<ModuleSpan>> = HashMap::new();
        let mut events_by_pid: HashMap<u32, u64> = HashMap::new();
        for (ts, im) in images {
            let pid = if im.base >= kernel_floor { 0 } else { im.pid };
            *events_by_pid.entry(pid).or_default() += 1;
            let spans = by_pid.entry(pid).or_default();
            let open = spans
                .iter()
                .rposition(|s| s.base == im.base && s.unload == i64::MAX);
            // Where a span of this base with no load seen begins: when the
            // last one ended.
            let last_unload = |spans: &[ModuleSpan]| {
                spans
                    .iter()
                    .filter(|s| s.base == im.base)
                    .map(|s| s.unload)
                    .max()
                    .unwrap_or(i64::MIN)
            };
            let span = |load, unload| ModuleSpan {
                base: im.base,
                size: im.size,
                name: module_name(&im.file_name),
                path: im.file_name.clone(),
                time_date_stamp: im.time_date_stamp,
                load,
                unload,
            };
            match im.kind {
                Lifecycle::Start => spans.push(span(*ts, i64::MAX)),
                Lifecycle::DcStart => {
                    if open.is_none() {
                        spans.push(span(i64::MIN, i64::MAX));
                    }
                }
                Lifecycle::End | Lifecycle::Defunct => match open {
                    Some(i) => spans[i].unload = *ts,
                    None => {
                        let from = last_unload(spans);
                        spans.push(span(from, *ts));
                    }
                },
                Lifecycle::DcEnd => {
                    if open.is_none() {
                        let from = last_unload(spans);
                        spans.push(span(from, i64::MAX));
                    }
                }
            }
        }
        let mut max_size = HashMap::new();
        for (pid, spans) in by_pid.iter_mut() {
            spans.sort_by_key(|s| (s.base, s.load));
            max_size.insert(*pid, spans.iter().map(|s| s.size).max().unwrap_or(0));
        }
        ModuleMap {
            by_pid,
            events_by_pid,
            max_size,
            kernel_floor,
        }
    }

    /// True for kernel-space addresses.
    pub fn is_kernel_address(&self, addr: u64) -> bool {
        addr >= self.kernel_floor
    }

    /// The image containing `addr` in process `pid` at time `ts`; kernel
    /// addresses are looked up among the kernel modules (pid 0).
    pub fn lookup(&self, pid: u32, addr: u64, ts: i64) -> Option<&ModuleSpan> {
        let pid = if addr >= self.kernel_floor { 0 } else { pid };
        let spans = self.by_pid.get(&pid)?;
        let max = *self.max_size.get(&pid)?;
        let end = spans.partition_point(|s| s.base <= addr);
        let mut best: Option<&ModuleSpan> = None;
        for s in spans[..end].iter().rev() {
            if s.base.saturating_add(max) <= addr {
                break;
            }
            if addr - s.base < s.size
                && s.load <= ts
                && ts < s.unload
                && best.is_none_or(|b| s.load > b.load)
            {
                best = Some(s);
            }
        }
        best
    }

    /// Distinct processes (other than pid 0) with images.
    pub fn processes(&self) -> usize {
        self.by_pid.keys().filter(|&&p| p != 0).count()
    }

    /// Distinct pids of image events, pid 0 (kernel modules) included.
    pub fn image_pids(&self) -> usize {
        self.events_by_pid.len()
    }

    /// Image events of kernel modules (pid 0).
    pub fn kernel_image_events(&self) -> u64 {
        self.events_by_pid.get(&0).copied().unwrap_or(0)
    }

    /// Distinct kernel modules (pid 0) by base and name.
    pub fn kernel_modules(&self) -> usize {
        self.by_pid
            .get(&0)
            .map(|v| {
                v.iter()
                    .map(|s| (s.base, &s.name))
                    .collect::<BTreeSet<_>>()
                    .len()
            })
            .unwrap_or(0)
    }

    pub fn spans(&self) -> impl Iterator<Item = (u32, &ModuleSpan)> {
        self.by_pid
            .iter()
            .flat_map(|(p, v)| v.iter().map(move |s| (*p, s)))
    }
}

/// Counters of what the decoder saw.
#[derive(Clone, Debug, Default)]
pub struct Counts {
    /// Buffers located in the file (header buffer and damaged ones included).
    pub buffers: u64,
    pub buffers_decoded: u64,
    pub buffers_compressed: u64,
    /// Buffers whose header says events (or buffers) were lost before them.
    pub buffers_flagged_lost: u64,
    pub records: u64,
    /// Kernel events by (group, type).
    pub kernel: BTreeMap<(u8, u8), u64>,
    /// Other events by provider GUID.
    pub providers: BTreeMap<crate::events::Guid, u64>,
    pub other_records: u64,
    /// Known events whose payload was too short for their fields.
    pub bad_payloads: u64,
    /// Records skipped after a malformed record (rest of the buffer).
    pub skipped_record_bytes: u64,
    pub stack_fragments: u64,
    pub key_refs: u64,
    pub key_refs_unresolved: u64,
    pub keys_defined: u64,
    pub inline_stacks: u64,
    /// Thread events decoded (group 0x05).
    pub thread_events: u64,
    /// Image loads logged under the classic hook (group 0x03, type 10).
    pub classic_image_loads: u64,
    pub assembly: AssemblyCounts,
}

/// Everything decoded from one ETL file.
#[derive(Debug)]
pub struct Trace {
    pub header: LogFileHeader,
    pub clock: Clock,
    pub counts: Counts,
    pub modules: ModuleMap,
    pub stacks: Vec<Stack>,
    /// Image name of each process id (last one seen).
    pub process_names: HashMap<u32, String>,
    pub processes: Vec<(i64, ProcessEvent)>,
    /// PDB identities by (image base, pid).
    pub pdbs: HashMap<(u64, u32), DbgIdRsds>,
    /// Damage met while decoding; decoding went on after each.
    pub damage: Vec<EtlError>,
    pub skipped: Skipped,
    pub first_timestamp: i64,
    pub last_timestamp: i64,
}

/// A StackWalk event, kept until all are sorted into logged order.
#[derive(Clone, Debug)]
pub(crate) enum StackItem {
    Full(StackEvent),
    KeyRef(StackKeyRef),
    KeyDef(StackKeyDef),
}

impl StackItem {
    pub(crate) fn feed(self, assembler: &mut StackAssembler) {
        match self {
            StackItem::Full(s) => assembler.full_stack(s),
            StackItem::KeyRef(r) => assembler.key_ref(r),
            StackItem::KeyDef(d) => assembler.key_def(d),
        }
    }
}

impl Trace {
    /// Decodes a whole file held in memory. Fails only when the bytes are
    /// not an ETL file; damage further in is collected in `damage`.
    pub fn decode(data: &[u8]) -> Result<Trace, EtlError> {
        Trace::decode_with(data, &DecodeOptions::default())
    }

    /// [`Trace::decode`] with non-default stack assembly conventions.
    pub fn decode_with(data: &[u8], _options: &DecodeOptions) -> Result<Trace, EtlError> {
        if let Some(reason) = not_etl_reason(data) {
            return Err(EtlError::NotEtl { offset: 0, reason });
        }
        let mut walker = BufferWalker::new(data);
        let mut counts = Counts::default();
        let mut damage = Vec::new();
        let mut header: Option<LogFileHeader> = None;
        let mut st = State::default();
        while let Some(item) = walker.next() {
            counts.buffers += 1;
            let buf = match item {
                Ok(b) => b,
                Err(e) => {
                    if header.is_none() {
                        return Err(EtlError::NotEtl {
                            offset: 0,
                            reason: format!("the header buffer does not decode: {e}"),
                        });
                    }
                    damage.push(e);
                    continue;
                }
            };
            counts.buffers_decoded += 1;
            if buf.header.is_compressed() {
                counts.buffers_compressed += 1;
            }
            if buf.header.flags & (BUFFER_FLAG_EVENTS_LOST | BUFFER_FLAG_BUFFER_LOST) != 0 {
                counts.buffers_flagged_lost += 1;
            }
            let ps = header.as_ref().map_or(8, |h| h.pointer_size as usize);
            let mut events = EventWalker::new(&buf.payload, ps);
            for ev in events.by_ref() {
                match ev {
                    Ok(ev) => {
                        if header.is_none() {
                            let parsed = (ev.kind == HeaderKind::System
                                && ev.group == 0
                                && ev.opcode == 0)
                                .then(|| {
                                    LogFileHeader::parse(ev.payload, ev.pointer_size, ev.timestamp)
                                })
                                .flatten();
                            match parsed {
                                Some(h) => {
                                    walker.set_nominal_buffer_size(h.buffer_size);
                                    header = Some(h);
                                }
                                None => {
                                    return Err(EtlError::NotEtl {
                                        offset: buf.file_offset + ev.position as u64,
                                        reason: "the log-file header event is missing or too short"
                                            .into(),
                                    })
                                }
                            }
                        }
                        st.event(&ev, &mut counts);
                    }
                    Err(e) => {
                        if header.is_none() {
                            return Err(EtlError::NotEtl {
                                offset: buf.file_offset + e.position as u64,
                                reason: format!("the header buffer does not decode: {}", e.reason),
                            });
                        }
                        damage.push(bad_record(&buf, e.position, e.reason));
                    }
                }
            }
            counts.skipped_record_bytes += events.remaining() as u64;
        }
        let skipped = walker.skipped.clone();
        let Some(header) = header else {
            return Err(EtlError::NotEtl {
                offset: 0,
                reason: "no log-file header".into(),
            });
        };
        Ok(st.finish(header, counts, damage, skipped))
    }

    /// Adds the stacks of `other`, recorded on the same machine at the same
    /// time (a user-mode session beside the kernel session), converting its
    /// timestamps to this trace's clock; images resolve through this trace.
    pub fn absorb_stacks(&mut self, other: Trace) {
        for mut s in other.stacks {
            s.timestamp = self
                .clock
                .ticks_from_filetime(other.clock.filetime(s.timestamp));
            self.stacks.push(s);
        }
        self.stacks.sort_by_key(|s| (s.timestamp, s.tid));
        self.counts.inline_stacks += other.counts.inline_stacks;
        self.damage.extend(other.damage);
    }

    /// `(stacks, frames, frames_in_image)` over the stacks of one origin;
    /// a frame is in an image when it falls inside an image loaded in the
    /// stack's process (kernel modules for kernel addresses) at the stack's
    /// time, return addresses (all frames but the first) minus one.
    pub fn frame_stats(&self, origin: StackOrigin) -> (u64, u64, u64) {
        let (mut stacks, mut frames, mut in_image) = (0u64, 0u64, 0u64);
        for s in self.stacks.iter().filter(|s| s.origin == origin) {
            stacks += 1;
            frames += s.frames.len() as u64;
            for (i, &a) in s.frames.iter().enumerate() {
                let look = if i == 0 { a } else { a.wrapping_sub(1) };
                if self.modules.lookup(s.pid, look, s.timestamp).is_some() {
                    in_image += 1;
                }
            }
        }
        (stacks, frames, in_image)
    }
}

fn bad_record(buf: &Buffer<'_>, position: usize, reason: String) -> EtlError {
    EtlError::BadRecord {
        buffer: buf.index,
        offset: buf.file_offset,
        position,
        reason,
    }
}

/// What the record walk keeps; shared by the file decoder and the
/// real-time decoder ([`crate::realtime`]).
pub(crate) struct State {
    kernel_counts: Vec<u64>,
    pub(crate) images: Vec<(i64, ImageEvent)>,
    pub(crate) processes: Vec<(i64, ProcessEvent)>,
    pub(crate) threads: HashMap<u32, u32>,
    /// StackWalk events with their logged timestamp, in arrival order.
    pub(crate) stack_items: Vec<(i64, StackItem)>,
    keys: BTreeSet<u64>,
    pub(crate) inline: Vec<Stack>,
    /// (tid, timestamp) → kernel event, for matching stacks.
    pub(crate) tagged: HashMap<(u32, i64), (u8, u8)>,
    pub(crate) pdbs: HashMap<(u64, u32), DbgIdRsds>,
    first_ts: Option<i64>,
    pub(crate) last_ts: i64,
}

impl Default for State {
    fn default() -> State {
        State {
            kernel_counts: vec![0; 1 << 16],
            images: Vec::new(),
            processes: Vec::new(),
            threads: HashMap::new(),
            stack_items: Vec::new(),
            keys: BTreeSet::new(),
            inline: Vec::new(),
            tagged: HashMap::new(),
            pdbs: HashMap::new(),
            first_ts: None,
            last_ts: 0,
        }
    }
}

impl State {
    pub(crate) fn event(&mut self, ev: &Event<'_>, counts: &mut Counts) {
        counts.records += 1;
        if ev.kind != HeaderKind::Other && ev.timestamp > 0 {
            self.first_ts = Some(self.first_ts.map_or(ev.timestamp, |f| f.min(ev.timestamp)));
            self.last_ts = self.last_ts.max(ev.timestamp);
        }
        if ev.kind.is_kernel() {
            self.kernel_counts[usize::from(ev.group) << 8 | usize::from(ev.opcode)] += 1;
            if ev.group != group::STACK_WALK && ev.thread_id != u32::MAX {
                self.tagged
                    .insert((ev.thread_id, ev.timestamp), (ev.group, ev.opcode));
            }
        } else if let Some(g) = ev.provider {
            *counts.providers.entry(g).or_default() += 1;
        } else {
            counts.other_records += 1;
        }
        if ev.kind == HeaderKind::EventHeader && !ev.ext.is_empty() {
            for item in ev.ext_items() {
                let ps = match item.ext_type {
                    EXT_TYPE_STACK_TRACE64 => 8,
                    EXT_TYPE_STACK_TRACE32 => 4,
                    _ => continue,
                };
                // MatchId (u64) then addresses.
                let frames: Vec<u64> = (0..item.data.len().saturating_sub(8) / ps)
                    .filter_map(|i| {
                        let o = 8 + i * ps;
                        if ps == 8 {
                            u64_at(item.data, o)
                        } else {
                            u32_at(item.data, o).map(u64::from)
                        }
                    })
                    .collect();
                counts.inline_stacks += 1;
                self.inline.push(Stack {
                    timestamp: ev.timestamp,
                    pid: ev.process_id,
                    tid: ev.thread_id,
                    frames,
                    event: None,
                    origin: StackOrigin::Inline,
                });
            }
        }
        let Some(decoded) = kernel::decode(ev) else {
            return;
        };
        let Ok(decoded) = decoded else {
            counts.bad_payloads += 1;
            return;
        };
        let ts = ev.timestamp;
        match decoded {
            Decoded::Image(im) => {
                if ev.group == group::PROCESS {
                    counts.classic_image_loads += 1;
                }
                self.images.push((ts, im))
            }
            Decoded::Process(p) => self.processes.push((ts, p)),
            Decoded::Thread(t) => {
                counts.thread_events += 1;
                self.threads.insert(t.tid, t.pid);
            }
            Decoded::Stack(s) => {
                counts.stack_fragments += 1;
                self.stack_items.push((ts, StackItem::Full(s)));
            }
            Decoded::KeyRef(r) => {
                counts.stack_fragments += 1;
                counts.key_refs += 1;
                self.stack_items.push((ts, StackItem::KeyRef(r)));
            }
            Decoded::KeyDef(d) => {
                self.keys.insert(d.key);
                self.stack_items.push((ts, StackItem::KeyDef(d)));
            }
            Decoded::Sample(s) => {
                self.tagged.insert(
                    (s.tid, ts),
                    (group::PERFINFO, kernel::PERFINFO_SAMPLED_PROFILE),
                );
            }
            Decoded::ImageId(_) => {}
            Decoded::Rsds(r) => {
                self.pdbs.insert((r.base, r.pid), r);
            }
        }
    }

    /// The event each stack belongs to, when one was seen.
    pub(crate) fn tag(&self, stacks: &mut [Stack]) {
        for s in stacks {
            s.event = self.tagged.get(&(s.tid, s.timestamp)).copied();
        }
    }

    pub(crate) fn kernel_counts_into(&self, counts: &mut Counts) {
        counts.kernel.clear();
        for (i, &n) in self.kernel_counts.iter().enumerate() {
            if n > 0 {
                counts.kernel.insert(((i >> 8) as u8, i as u8), n);
            }
        }
        counts.keys_defined = self.keys.len() as u64;
    }

    fn finish(
        mut self,
        header: LogFileHeader,
        mut counts: Counts,
        damage: Vec<EtlError>,
        skipped: Skipped,
    ) -> Trace {
        self.kernel_counts_into(&mut counts);
        self.images.sort_by_key(|(ts, _)| *ts);
        self.processes.sort_by_key(|(ts, _)| *ts);
        let modules = ModuleMap::build(&self.images, header.pointer_size);
        // Buffers are per processor: put the StackWalk events back into the
        // order they were logged (stable, so ties keep file order).
        let mut items = std::mem::take(&mut self.stack_items);
        items.sort_by_key(|(ts, _)| *ts);
        let mut assembler = StackAssembler::new(header.pointer_size);
        for (_, item) in items {
            item.feed(&mut assembler);
        }
        counts.key_refs_unresolved = assembler.finish();
        counts.assembly = assembler.counts;
        let mut stacks = assembler.take_ready();
        self.tag(&mut stacks);
        stacks.append(&mut self.inline);
        stacks.sort_by_key(|s| (s.timestamp, s.tid));
        let mut process_names = HashMap::new();
        for (_, p) in &self.processes {
            if !p.image_file_name.is_empty() {
                process_names.insert(p.pid, p.image_file_name.clone());
            }
        }
        let clock = Clock::new(&header);
        Trace {
            clock,
            counts,
            modules,
            stacks,
            process_names,
            processes: self.processes,
            pdbs: self.pdbs,
            damage,
            skipped,
            first_timestamp: self.first_ts.unwrap_or(header.header_timestamp),
            last_timestamp: self.last_ts,
            header,
        }
    }
}
