//! Real-time decoding: the events a live ETW consumer receives (one
//! `EVENT_RECORD` at a time, kernel events named by their class GUID rather
//! than a group byte) go through the same record decoding ([`crate::kernel`])
//! and the same stack assembly ([`crate::stacks`]) as a file, and come out
//! as edge records window by window, with watermarks.
//!
//! Real-time buffers are delivered per processor, so events arrive out of
//! order by up to a buffer flush; StackWalk events are held until no earlier
//! one can still come (the reorder horizon) and fed in logged order.

use std::collections::{BTreeMap, HashMap, HashSet};

use tracemerge_records::Record;

use crate::edges::{EdgeAggregator, ImportOptions, ImportStats, NameContext};
use crate::events::{Event, Guid, HeaderKind, EVENT_HEADER_FLAG_EXTENDED_INFO};
use crate::file::{Clock, BUFFER_HEADER_SIZE};
use crate::kernel::{group, Lifecycle};
use crate::stacks::{Stack, StackAssembler};
use crate::symbols::SymbolDir;
use crate::trace::{Counts, ModuleMap, StackItem, State};

/// `EVENT_HEADER_FLAG_*` of `EVENT_RECORD.EventHeader.Flags`.
pub const EVENT_HEADER_FLAG_32_BIT_HEADER: u16 = 0x0020;
pub const EVENT_HEADER_FLAG_64_BIT_HEADER: u16 = 0x0040;
pub const EVENT_HEADER_FLAG_CLASSIC_HEADER: u16 = 0x0100;

/// Kernel event groups and the class GUID a real-time consumer sees for them.
pub const KERNEL_CLASSES: [(u8, Guid); 6] = [
    (
        group::EVENT_TRACE,
        Guid::from_fields(
            0x68fd_d900,
            0x4a3e,
            0x11d1,
            [0x84, 0xf4, 0x00, 0x00, 0xf8, 0x04, 0x64, 0xe3],
        ),
    ),
    (
        group::PROCESS,
        Guid::from_fields(
            0x3d6f_a8d0,
            0xfe05,
            0x11d0,
            [0x9d, 0xda, 0x00, 0xc0, 0x4f, 0xd7, 0xba, 0x7c],
        ),
    ),
    (
        group::THREAD,
        Guid::from_fields(
            0x3d6f_a8d1,
            0xfe05,
            0x11d0,
            [0x9d, 0xda, 0x00, 0xc0, 0x4f, 0xd7, 0xba, 0x7c],
        ),
    ),
    (
        group::PERFINFO,
        Guid::from_fields(
            0xce1d_bfb4,
            0x137e,
            0x4da6,
            [0x87, 0xb0, 0x3f, 0x59, 0xaa, 0x10, 0x2c, 0xbc],
        ),
    ),
    (
        group::IMAGE,
        Guid::from_fields(
            0x2cb1_5d1d,
            0x5fc1,
            0x11d2,
            [0xab, 0xe1, 0x00, 0xa0, 0xc9, 0x11, 0xf5, 0x18],
        ),
    ),
    (
        group::STACK_WALK,
        Guid::from_fields(
            0xdef2_fe46,
            0x7bd6,
            0x4b80,
            [0xbd, 0x94, 0xf5, 0x7f, 0xe2, 0x0d, 0x0c, 0xe3],
        ),
    ),
];

/// The kernel group of a class GUID.
pub fn kernel_group(provider: &Guid) -> Option<u8> {
    KERNEL_CLASSES
        .iter()
        .find(|(_, g)| g == provider)
        .map(|(n, _)| *n)
}

/// The class GUID of a kernel group.
pub fn kernel_class(group: u8) -> Option<Guid> {
    KERNEL_CLASSES
        .iter()
        .find(|(n, _)| *n == group)
        .map(|(_, g)| *g)
}

/// An event as a real-time consumer receives it: the fields of
/// `EVENT_RECORD` the decoder reads, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveEvent {
    pub provider: Guid,
    pub id: u16,
    pub version: u8,
    pub opcode: u8,
    /// `EVENT_HEADER` flags (pointer size, classic header, …).
    pub flags: u16,
    pub thread_id: u32,
    pub process_id: u32,
    /// Raw QueryPerformanceCounter ticks (`PROCESS_TRACE_MODE_RAW_TIMESTAMP`).
    pub timestamp: i64,
    pub payload: Vec<u8>,
    /// Extended data items (type, data), such as user-mode stack traces.
    pub extended: Vec<(u16, Vec<u8>)>,
}

impl LiveEvent {
    /// What a real-time consumer receives for a record logged to a file:
    /// used to replay files through the real-time path. `None` for records
    /// the real-time path has no use for (kernel groups it does not decode,
    /// WPP and other untyped records).
    pub fn from_logged(ev: &Event<'_>) -> Option<LiveEvent> {
        let pointer_flag = if ev.pointer_size == 4 {
            EVENT_HEADER_FLAG_32_BIT_HEADER
        } else {
            EVENT_HEADER_FLAG_64_BIT_HEADER
        };
        let (provider, flags, extended) = match ev.kind {
            k if k.is_kernel() => (
                kernel_class(ev.group)?,
                EVENT_HEADER_FLAG_CLASSIC_HEADER | pointer_flag,
                Vec::new(),
            ),
            HeaderKind::Full | HeaderKind::Instance => (
                ev.provider.unwrap_or_default(),
                EVENT_HEADER_FLAG_CLASSIC_HEADER | pointer_flag,
                Vec::new(),
            ),
            HeaderKind::EventHeader => (
                ev.provider?,
                ev.flags & !EVENT_HEADER_FLAG_EXTENDED_INFO,
                ev.ext_items()
                    .map(|i| (i.ext_type, i.data.to_vec()))
                    .collect(),
            ),
            _ => return None,
        };
        Some(LiveEvent {
            provider,
            id: ev.id,
            version: ev.version as u8,
            opcode: ev.opcode,
            flags,
            thread_id: ev.thread_id,
            process_id: ev.process_id,
            timestamp: ev.timestamp,
            payload: ev.payload.to_vec(),
            extended,
        })
    }

    /// The decoder's view of this event. `ext` receives the extended data
    /// items laid out as in a file.
    fn as_event<'a>(&'a self, default_pointer_size: usize, ext: &'a mut Vec<u8>) -> Event<'a> {
        let pointer_size = if self.flags & EVENT_HEADER_FLAG_32_BIT_HEADER != 0 {
            4
        } else if self.flags & EVENT_HEADER_FLAG_64_BIT_HEADER != 0 {
            8
        } else {
            default_pointer_size
        };
        let classic = self.flags & EVENT_HEADER_FLAG_CLASSIC_HEADER != 0;
        let kernel = if classic {
            kernel_group(&self.provider)
        } else {
            None
        };
        ext.clear();
        for (i, (ty, data)) in self.extended.iter().enumerate() {
            // {u16 item size, u16 type, u16 linkage (another follows), u16 data size}
            let len = data.len().min(usize::from(u16::MAX) - 8);
            let more = u16::from(i + 1 < self.extended.len());
            ext.extend_from_slice(&((8 + len) as u16).to_le_bytes());
            ext.extend_from_slice(&ty.to_le_bytes());
            ext.extend_from_slice(&more.to_le_bytes());
            ext.extend_from_slice(&(len as u16).to_le_bytes());
            ext.extend_from_slice(&data[..len]);
            ext.resize(ext.len().next_multiple_of(8), 0);
        }
        Event {
            position: BUFFER_HEADER_SIZE,
            header_type: 0,
            kind: match (kernel, classic) {
                (Some(_), _) => HeaderKind::System,
                (None, true) => HeaderKind::Full,
                (None, false) => HeaderKind::EventHeader,
            },
            pointer_size,
            version: u16::from(self.version),
            group: kernel.unwrap_or(0),
            opcode: self.opcode,
            id: self.id,
            provider: Some(self.provider),
            thread_id: self.thread_id,
            process_id: self.process_id,
            timestamp: self.timestamp,
            flags: self.flags,
            ext,
            payload: &self.payload,
        }
    }
}

/// Settings of a [`RealtimeDecoder`].
#[derive(Clone, Debug)]
pub struct RealtimeOptions {
    /// Pointer size of the machine (events without a pointer-size flag).
    pub pointer_size: u32,
    pub clock: Clock,
    /// How far (ticks) events may arrive out of order: a real-time buffer
    /// is delivered when full or at the session's flush timer (1 s).
    pub reorder_ticks: i64,
    /// How long (event time) the watermark waits for a stack still being
    /// assembled (its thread still in the kernel, its key not defined yet);
    /// a stack completed later is stamped at the watermark.
    pub patience_ticks: i64,
    /// Keep only the stacks of this process.
    pub pid: Option<u32>,
    /// Edge naming, windows, artifact map and `source` (required here).
    pub import: ImportOptions,
    /// FILETIME of the session start (goes into record ids).
    pub start_time: i64,
}

/// Decodes live events into edge records as they come.
pub struct RealtimeDecoder {
    options: RealtimeOptions,
    state: State,
    pub counts: Counts,
    assembler: StackAssembler,
    /// StackWalk events not fed yet, by (logged time, arrival).
    reorder: BTreeMap<(i64, u64), StackItem>,
    arrivals: u64,
    newest: Option<i64>,
    modules: ModuleMap,
    modules_from: usize,
    process_names: HashMap<u32, String>,
    ended: HashSet<u32>,
    aggregator: EdgeAggregator,
    symbols: Option<SymbolDir>,
    watermark: u64,
    ext: Vec<u8>,
}

impl RealtimeDecoder {
    pub fn new(options: RealtimeOptions) -> RealtimeDecoder {
        let source = options
            .import
            .source
            .clone()
            .unwrap_or_else(|| "etw:live".to_string());
        RealtimeDecoder {
            aggregator: EdgeAggregator::new(&options.import, source, options.start_time),
            symbols: options.import.symbols.as_ref().map(SymbolDir::new),
            assembler: StackAssembler::new(options.pointer_size),
            modules: ModuleMap::build(&[], options.pointer_size),
            options,
            state: State::default(),
            counts: Counts::default(),
            reorder: BTreeMap::new(),
            arrivals: 0,
            newest: None,
            modules_from: 0,
            process_names: HashMap::new(),
            ended: HashSet::new(),
            watermark: 0,
            ext: Vec::new(),
        }
    }

    /// Takes one event.
    pub fn push(&mut self, live: &LiveEvent) {
        let mut ext = std::mem::take(&mut self.ext);
        let ev = live.as_event(self.options.pointer_size as usize, &mut ext);
        self.state.event(&ev, &mut self.counts);
        if ev.timestamp > 0 {
            self.newest = Some(self.newest.map_or(ev.timestamp, |n| n.max(ev.timestamp)));
        }
        self.ext = ext;
        for (ts, item) in self.state.stack_items.drain(..) {
            self.reorder.insert((ts, self.arrivals), item);
            self.arrivals += 1;
        }
        // Process events are only needed for names and ends.
        for (_, p) in self.state.processes.drain(..) {
            if !p.image_file_name.is_empty() {
                self.process_names.insert(p.pid, p.image_file_name.clone());
            }
            if p.kind == Lifecycle::End {
                self.ended.insert(p.pid);
            }
        }
    }

    /// True once the End event of process `pid` has been seen.
    pub fn process_ended(&self, pid: u32) -> bool {
        self.ended.contains(&pid)
    }

    /// Feeds the StackWalk events logged at or before `cutoff`.
    fn feed_until(&mut self, cutoff: i64) {
        while let Some(entry) = self.reorder.first_entry() {
            if entry.key().0 > cutoff {
                break;
            }
            entry.remove().feed(&mut self.assembler);
        }
    }

    /// Completed stacks up to `cutoff`, matched to their events, of the
    /// process asked for. Inline stacks wait for the horizon too: the image
    /// events they need may still be on their way.
    fn completed(&mut self, cutoff: i64) -> Vec<Stack> {
        let mut stacks = self.assembler.take_ready();
        stacks.extend(self.state.inline.extract_if(.., |s| s.timestamp <= cutoff));
        self.state.tag(&mut stacks);
        if let Some(pid) = self.options.pid {
            stacks.retain(|s| s.pid == pid);
        }
        stacks
    }

    fn refresh_modules(&mut self) {
        if self.state.images.len() != self.modules_from {
            self.state.images.sort_by_key(|(ts, _)| *ts);
            self.modules = ModuleMap::build(&self.state.images, self.options.pointer_size);
            self.modules_from = self.state.images.len();
        }
    }

    fn aggregate(&mut self, stacks: &[Stack]) {
        self.refresh_modules();
        let cx = NameContext {
            modules: &self.modules,
            process_names: &self.process_names,
            pdbs: &self.state.pdbs,
            clock: &self.options.clock,
        };
        self.aggregator
            .add(stacks, &cx, self.symbols.as_mut(), self.watermark);
    }

    /// The records of the windows no later event can change, then a
    /// watermark when event time moved on. Call once per window.
    pub fn drain(&mut self) -> Vec<Record> {
        let Some(newest) = self.newest else {
            return Vec::new();
        };
        let cutoff = newest.saturating_sub(self.options.reorder_ticks);
        self.feed_until(cutoff);
        let stacks = self.completed(cutoff);
        self.aggregate(&stacks);
        // No stack for an event before `safe` can still come out, but for
        // those waiting longer than the patience (stamped at the watermark).
        let safe = self
            .assembler
            .oldest_open_since(cutoff.saturating_sub(self.options.patience_ticks))
            .map_or(cutoff, |open| open.min(cutoff));
        self.state.tagged.retain(|(_, ts), _| *ts >= safe);
        let safe_ms = self.options.clock.unix_ms(safe);
        let mut records = self.aggregator.take_before(safe_ms);
        let watermark = self.aggregator.window_start(safe_ms);
        if watermark > self.watermark {
            self.watermark = watermark;
            records.push(Record::Watermark { at: watermark });
        }
        records
    }

    /// End of the session: everything left, then the final watermark.
    pub fn finish(&mut self) -> Vec<Record> {
        self.feed_until(i64::MAX);
        let unresolved = self.assembler.finish();
        self.counts.key_refs_unresolved += unresolved;
        self.counts.assembly = self.assembler.counts;
        let stacks = self.completed(i64::MAX);
        self.aggregate(&stacks);
        let mut records = self.aggregator.take_all();
        let last = records.iter().map(Record::time).max().unwrap_or(0);
        let end = self
            .newest
            .map_or(0, |n| self.options.clock.unix_ms(n))
            .max(last)
            .max(self.watermark);
        records.push(Record::Watermark { at: end });
        self.state.kernel_counts_into(&mut self.counts);
        records
    }

    /// Stacks, pairs and records so far.
    pub fn stats(&self) -> &ImportStats {
        &self.aggregator.stats
    }
}
