//! The record walker: every header type that appears inside ETL buffers
//! (system, compact, perfinfo, `EVENT_HEADER` with extended data items,
//! classic full and instance headers, WPP messages). Records are 8-byte
//! aligned; unknown kinds are skipped by their size.

use crate::file::{u16_at, u32_at, u64_at, BUFFER_HEADER_SIZE};
use serde::Serialize;
use std::fmt;

/// `TRACE_HEADER_TYPE_*`
pub mod header_type {
    pub const SYSTEM32: u8 = 1;
    pub const SYSTEM64: u8 = 2;
    pub const COMPACT32: u8 = 3;
    pub const COMPACT64: u8 = 4;
    pub const FULL_HEADER32: u8 = 10;
    pub const INSTANCE32: u8 = 11;
    pub const TIMED: u8 = 12;
    pub const ERROR: u8 = 13;
    pub const WNODE_HEADER: u8 = 14;
    pub const MESSAGE: u8 = 15;
    pub const PERFINFO32: u8 = 16;
    pub const PERFINFO64: u8 = 17;
    pub const EVENT_HEADER32: u8 = 18;
    pub const EVENT_HEADER64: u8 = 19;
    pub const FULL_HEADER64: u8 = 20;
    pub const INSTANCE64: u8 = 21;
}

/// `EVENT_HEADER_FLAG_EXTENDED_INFO`
pub const EVENT_HEADER_FLAG_EXTENDED_INFO: u16 = 0x0001;
/// `EVENT_HEADER_EXT_TYPE_STACK_TRACE32` / `…64`
pub const EXT_TYPE_STACK_TRACE32: u16 = 5;
pub const EXT_TYPE_STACK_TRACE64: u16 = 6;

/// A provider GUID.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    pub fn from_bytes(b: &[u8]) -> Option<Guid> {
        Some(Guid(b.get(..16)?.try_into().ok()?))
    }
    pub const fn from_fields(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> Guid {
        let a = d1.to_le_bytes();
        let b = d2.to_le_bytes();
        let c = d3.to_le_bytes();
        Guid([
            a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d4[0], d4[1], d4[2], d4[3], d4[4],
            d4[5], d4[6], d4[7],
        ])
    }
    /// Upper-case hex without dashes, as in symbol-server paths.
    pub fn simple_upper(&self) -> String {
        let b = &self.0;
        let mut s = format!(
            "{:08X}{:04X}{:04X}",
            u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            u16::from_le_bytes([b[4], b[5]]),
            u16::from_le_bytes([b[6], b[7]])
        );
        for x in &b[8..] {
            s.push_str(&format!("{x:02X}"));
        }
        s
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
            u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            u16::from_le_bytes([b[4], b[5]]),
            u16::from_le_bytes([b[6], b[7]]),
            b[8],
            b[9],
            b[10],
            b[11],
            b[12],
            b[13],
            b[14],
            b[15]
        )
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Guid {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Which header family a record uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum HeaderKind {
    /// Kernel `SYSTEM_TRACE_HEADER` (with CPU times).
    System,
    /// Kernel compact header (no CPU times).
    Compact,
    /// Kernel `PERFINFO_TRACE_HEADER` (no thread or process).
    PerfInfo,
    /// Manifest / TraceLogging `EVENT_HEADER`.
    EventHeader,
    /// Classic `EVENT_TRACE_HEADER` (provider GUID + class type).
    Full,
    /// Classic `EVENT_INSTANCE_HEADER`.
    Instance,
    /// WPP message, timed, error, WNODE: skipped by size.
    Other,
}

impl HeaderKind {
    pub fn is_kernel(self) -> bool {
        matches!(
            self,
            HeaderKind::System | HeaderKind::Compact | HeaderKind::PerfInfo
        )
    }
}

/// One extended data item of an `EVENT_HEADER` record.
#[derive(Clone, Copy, Debug)]
pub struct ExtItem<'a> {
    pub ext_type: u16,
    pub data: &'a [u8],
}

/// One decoded record header with its payload.
#[derive(Clone, Copy, Debug)]
pub struct Event<'a> {
    /// Byte position of the record in its buffer (0x48 = first record).
    pub position: usize,
    pub header_type: u8,
    pub kind: HeaderKind,
    /// Pointer size of the payload (4 or 8).
    pub pointer_size: usize,
    /// Kernel: header version; EVENT_HEADER: descriptor version; classic: class version.
    pub version: u16,
    /// Kernel group (high byte of the hook id); 0 otherwise.
    pub group: u8,
    /// Kernel type / classic class type / EVENT_HEADER opcode.
    pub opcode: u8,
    /// EVENT_HEADER event id.
    pub id: u16,
    pub provider: Option<Guid>,
    /// `u32::MAX` when the header has none (perfinfo).
    pub thread_id: u32,
    pub process_id: u32,
    pub timestamp: i64,
    /// EVENT_HEADER flags.
    pub flags: u16,
    /// Raw extended data area (EVENT_HEADER with `EXTENDED_INFO`).
    pub ext: &'a [u8],
    pub payload: &'a [u8],
}

impl<'a> Event<'a> {
    /// The extended data items. Each item on disk is `{u16 size (8-byte item
    /// header included), u16 type, u16 linkage, u16 data size}` then data.
    pub fn ext_items(&self) -> ExtItems<'a> {
        ExtItems {
            data: self.ext,
            pos: 0,
        }
    }
}

/// Iterator over extended data items; stops at the first malformed one.
pub struct ExtItems<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for ExtItems<'a> {
    type Item = ExtItem<'a>;
    fn next(&mut self) -> Option<ExtItem<'a>> {
        let (size, ty, _, ds) = ext_item_header(self.data, self.pos)?;
        let item = ExtItem {
            ext_type: ty,
            data: &self.data[self.pos + 8..self.pos + 8 + ds],
        };
        self.pos = (self.pos + size + 7) & !7;
        Some(item)
    }
}

/// `(item size, type, more items follow, data size)` of the item at `p`,
/// when it is well-formed and fits in `area`.
fn ext_item_header(area: &[u8], p: usize) -> Option<(usize, u16, bool, usize)> {
    let size = u16_at(area, p)? as usize;
    let ty = u16_at(area, p + 2)?;
    let link = u16_at(area, p + 4)?;
    let ds = u16_at(area, p + 6)? as usize;
    if size < 8 || 8 + ds > size || p + size > area.len() {
        return None;
    }
    Some((size, ty, link & 1 != 0, ds))
}

/// A malformed record: where and why. The rest of its buffer is skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordError {
    /// Byte position in the buffer (0x48 = first record).
    pub position: usize,
    pub reason: String,
}

/// Walks the records of one buffer payload (the bytes after the buffer header).
pub struct EventWalker<'a> {
    data: &'a [u8],
    pos: usize,
    default_ps: usize,
    done: bool,
}

impl<'a> EventWalker<'a> {
    pub fn new(payload: &'a [u8], default_pointer_size: usize) -> EventWalker<'a> {
        EventWalker {
            data: payload,
            pos: 0,
            default_ps: default_pointer_size,
            done: false,
        }
    }

    /// Bytes of the payload not walked because of an error.
    pub fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    fn fail(&mut self, reason: String) -> Option<Result<Event<'a>, RecordError>> {
        self.done = true;
        Some(Err(RecordError {
            position: BUFFER_HEADER_SIZE + self.pos,
            reason,
        }))
    }
}

impl<'a> Iterator for EventWalker<'a> {
    type Item = Result<Event<'a>, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        use header_type::*;
        if self.done {
            return None;
        }
        let d = &self.data[self.pos.min(self.data.len())..];
        let Some(marker) = u32_at(d, 0) else {
            self.done = true;
            return None;
        };
        if marker == 0xffff_ffff {
            self.done = true;
            return None;
        }
        let ht = d[2];
        let mflags = d[3];
        if mflags & 0x80 == 0 {
            return self.fail(format!("unknown record marker {marker:#010x}"));
        }
        let typed = mflags & 0xc0 == 0xc0;
        let (size, min) = match ht {
            SYSTEM32 | SYSTEM64 if typed => (u16_at(d, 4).unwrap_or(0), 0x20),
            COMPACT32 | COMPACT64 if typed => (u16_at(d, 4).unwrap_or(0), 0x18),
            PERFINFO32 | PERFINFO64 if typed => (u16_at(d, 4).unwrap_or(0), 0x10),
            EVENT_HEADER32 | EVENT_HEADER64 if typed => (u16_at(d, 0).unwrap_or(0), 0x50),
            FULL_HEADER32 | FULL_HEADER64 if typed => (u16_at(d, 0).unwrap_or(0), 0x30),
            INSTANCE32 | INSTANCE64 if typed => (u16_at(d, 0).unwrap_or(0), 0x30),
            _ => (u16_at(d, 0).unwrap_or(0), 8),
        };
        let size = size as usize;
        if size == 0 {
            return self.fail(format!("zero-size record (marker {marker:#010x})"));
        }
        if size < min {
            return self.fail(format!(
                "record size {size} is smaller than its {min}-byte header (type {ht})"
            ));
        }
        if size > d.len() {
            return self.fail(format!(
                "record of {size} bytes overruns the buffer end ({} bytes left)",
                d.len()
            ));
        }
        let rec = &d[..size];
        let position = BUFFER_HEADER_SIZE + self.pos;
        self.pos = (self.pos + size + 7) & !7;
        let mut ev = Event {
            position,
            header_type: ht,
            kind: HeaderKind::Other,
            pointer_size: self.default_ps,
            version: 0,
            group: 0,
            opcode: 0,
            id: 0,
            provider: None,
            thread_id: u32::MAX,
            process_id: u32::MAX,
            timestamp: 0,
            flags: 0,
            ext: &[],
            payload: &rec[min..],
        };
        if !typed {
            return Some(Ok(ev));
        }
        let r32 = |o| u32_at(rec, o).unwrap_or(0);
        let r64 = |o| u64_at(rec, o).unwrap_or(0) as i64;
        match ht {
            SYSTEM32 | SYSTEM64 | COMPACT32 | COMPACT64 | PERFINFO32 | PERFINFO64 => {
                ev.kind = match ht {
                    SYSTEM32 | SYSTEM64 => HeaderKind::System,
                    COMPACT32 | COMPACT64 => HeaderKind::Compact,
                    _ => HeaderKind::PerfInfo,
                };
                ev.pointer_size = if matches!(ht, SYSTEM32 | COMPACT32 | PERFINFO32) {
                    4
                } else {
                    8
                };
                ev.version = u16_at(rec, 0).unwrap_or(0);
                ev.opcode = rec[6];
                ev.group = rec[7];
                if ev.kind == HeaderKind::PerfInfo {
                    ev.timestamp = r64(8);
                } else {
                    ev.thread_id = r32(8);
                    ev.process_id = r32(12);
                    ev.timestamp = r64(16);
                }
            }
            EVENT_HEADER32 | EVENT_HEADER64 => {
                ev.kind = HeaderKind::EventHeader;
                ev.flags = u16_at(rec, 4).unwrap_or(0);
                ev.pointer_size =
                    if ev.flags & 0x20 != 0 || (ht == EVENT_HEADER32 && ev.flags & 0x40 == 0) {
                        4
                    } else {
                        8
                    };
                ev.thread_id = r32(8);
                ev.process_id = r32(12);
                ev.timestamp = r64(16);
                ev.provider = Guid::from_bytes(&rec[24..40]);
                ev.id = u16_at(rec, 40).unwrap_or(0);
                ev.version = u16::from(rec[42]);
                ev.opcode = rec[45];
                if ev.flags & EVENT_HEADER_FLAG_EXTENDED_INFO != 0 {
                    // Items follow the header: {u16 size, u16 type, u16 linkage
                    // (bit 0: another item follows), u16 data size}, data.
                    let area = &rec[0x50..];
                    let mut p = 0usize;
                    loop {
                        let Some((isz, _, more, _)) = ext_item_header(area, p) else {
                            return self.fail(format!(
                                "extended data item at record byte {:#x} does not fit the {size}-byte record",
                                0x50 + p
                            ));
                        };
                        p = ((p + isz + 7) & !7).min(area.len());
                        if !more {
                            break;
                        }
                    }
                    ev.ext = &area[..p];
                    ev.payload = &area[p..];
                }
            }
            FULL_HEADER32 | FULL_HEADER64 | INSTANCE32 | INSTANCE64 => {
                ev.kind = if matches!(ht, FULL_HEADER32 | FULL_HEADER64) {
                    HeaderKind::Full
                } else {
                    HeaderKind::Instance
                };
                ev.pointer_size = if matches!(ht, FULL_HEADER32 | INSTANCE32) {
                    4
                } else {
                    8
                };
                ev.opcode = rec[4];
                ev.version = u16_at(rec, 6).unwrap_or(0);
                ev.thread_id = r32(8);
                ev.process_id = r32(12);
                ev.timestamp = r64(16);
                if ev.kind == HeaderKind::Full {
                    ev.provider = Guid::from_bytes(&rec[24..40]);
                }
            }
            _ => {}
        }
        Some(Ok(ev))
    }
}
