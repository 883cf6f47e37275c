//! The outer layer of an ETL file: a sequence of buffers, each with a
//! 0x48-byte `WMI_BUFFER_HEADER`, the first one holding the log-file header.
//! Compressed buffers (`EVENT_TRACE_COMPRESSED_MODE`) carry an XPRESS stream
//! after an uncompressed header and inflate to `SavedOffset − 0x48` bytes.

use crate::error::EtlError;
use crate::xpress;
use serde::Serialize;

/// Size of `WMI_BUFFER_HEADER`.
pub const BUFFER_HEADER_SIZE: usize = 0x48;
/// Largest buffer accepted (ETW's own limit is 16 MiB; leave headroom).
pub const MAX_BUFFER_SIZE: u32 = 64 << 20;

/// `ETW_BUFFER_FLAG_*`
pub const BUFFER_FLAG_FLUSH_MARKER: u16 = 0x0001;
pub const BUFFER_FLAG_EVENTS_LOST: u16 = 0x0002;
pub const BUFFER_FLAG_BUFFER_LOST: u16 = 0x0004;
pub const BUFFER_FLAG_PROC_INDEX: u16 = 0x0020;
pub const BUFFER_FLAG_COMPRESSED: u16 = 0x0040;

/// `EVENT_TRACE_COMPRESSED_MODE` in `LogFileMode`.
pub const LOG_FILE_MODE_COMPRESSED: u32 = 0x0400_0000;

pub(crate) fn u16_at(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?))
}
pub(crate) fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
}
pub(crate) fn u64_at(b: &[u8], o: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?))
}
/// A pointer-sized value.
pub(crate) fn ptr_at(b: &[u8], o: usize, ps: usize) -> Option<u64> {
    if ps == 4 {
        u32_at(b, o).map(u64::from)
    } else {
        u64_at(b, o)
    }
}

/// The fields of `WMI_BUFFER_HEADER` that matter for decoding.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct BufferHeader {
    /// Size of the buffer in the file (compressed size for compressed buffers).
    pub buffer_size: u32,
    /// End of the valid data, header included (inflated size + 0x48 when compressed).
    pub saved_offset: u32,
    pub current_offset: u32,
    pub timestamp: i64,
    pub sequence: i64,
    pub processor: u16,
    pub logger_id: u16,
    pub state: u32,
    pub offset: u32,
    pub flags: u16,
    pub buffer_type: u16,
}

impl BufferHeader {
    pub fn parse(b: &[u8]) -> Option<BufferHeader> {
        if b.len() < BUFFER_HEADER_SIZE {
            return None;
        }
        let flags = u16_at(b, 0x34)?;
        let ctx = u32_at(b, 0x28)?;
        Some(BufferHeader {
            buffer_size: u32_at(b, 0)?,
            saved_offset: u32_at(b, 4)?,
            current_offset: u32_at(b, 8)?,
            timestamp: u64_at(b, 0x10)? as i64,
            sequence: u64_at(b, 0x18)? as i64,
            processor: if flags & BUFFER_FLAG_PROC_INDEX != 0 {
                ctx as u16
            } else {
                (ctx & 0xff) as u16
            },
            logger_id: (ctx >> 16) as u16,
            state: u32_at(b, 0x2c)?,
            offset: u32_at(b, 0x30)?,
            flags,
            buffer_type: u16_at(b, 0x36)?,
        })
    }

    pub fn is_compressed(&self) -> bool {
        self.flags & BUFFER_FLAG_COMPRESSED != 0
    }
}

/// One buffer of the file, its events ready to walk.
#[derive(Debug)]
pub struct Buffer<'a> {
    /// Index of the buffer in the file (0 = the header buffer).
    pub index: u32,
    /// Byte offset of the buffer in the file.
    pub file_offset: u64,
    pub header: BufferHeader,
    /// The buffer's bytes after the 0x48-byte header (inflated when compressed),
    /// up to the end of valid data. Record positions are `0x48 + index` here.
    pub payload: std::borrow::Cow<'a, [u8]>,
}

/// What the walker skipped because of damage.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Skipped {
    pub buffers: u64,
    pub bytes: u64,
}

/// Walks the buffers of a file held in memory. Damage is reported as an
/// `Err` item; the walker then goes on with the next buffer it can find
/// (or stops when it cannot know where that is).
pub struct BufferWalker<'a> {
    data: &'a [u8],
    pos: u64,
    index: u32,
    /// Nominal buffer size from the log-file header (uncompressed files lay
    /// buffers out at multiples of it; used to resynchronise after damage).
    nominal: Option<u32>,
    done: bool,
    pub skipped: Skipped,
}

impl<'a> BufferWalker<'a> {
    pub fn new(data: &'a [u8]) -> BufferWalker<'a> {
        BufferWalker {
            data,
            pos: 0,
            index: 0,
            nominal: None,
            done: false,
            skipped: Skipped::default(),
        }
    }

    /// Sets the nominal buffer size (from the log-file header), used to
    /// find the next buffer after a corrupted one in uncompressed files.
    pub fn set_nominal_buffer_size(&mut self, size: u32) {
        if (BUFFER_HEADER_SIZE as u32..=MAX_BUFFER_SIZE).contains(&size) {
            self.nominal = Some(size);
        }
    }

    fn skip_rest(&mut self) {
        let rest = self.data.len() as u64 - self.pos.min(self.data.len() as u64);
        if rest > 0 {
            self.skipped.buffers += 1;
            self.skipped.bytes += rest;
        }
        self.done = true;
    }

    /// After a damaged buffer at `self.pos`: jump to the next nominal
    /// boundary when the layout is regular, else give up on the rest.
    fn resync(&mut self) {
        match self.nominal {
            Some(n) if self.pos.is_multiple_of(u64::from(n)) => {
                let next = self.pos + u64::from(n);
                self.skipped.buffers += 1;
                self.skipped.bytes += u64::from(n).min(self.data.len() as u64 - self.pos);
                self.pos = next;
                self.index += 1;
            }
            _ => self.skip_rest(),
        }
    }
}

impl<'a> Iterator for BufferWalker<'a> {
    type Item = Result<Buffer<'a>, EtlError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.pos >= self.data.len() as u64 {
            return None;
        }
        let start = self.pos as usize;
        let index = self.index;
        let rest = &self.data[start..];
        let Some(header) = BufferHeader::parse(rest) else {
            let e = EtlError::Truncated {
                buffer: index,
                offset: self.pos,
                needed: BUFFER_HEADER_SIZE as u64,
                available: rest.len() as u64,
            };
            self.skip_rest();
            return Some(Err(e));
        };
        let size = header.buffer_size;
        let bad = |reason: String| EtlError::BadBuffer {
            buffer: index,
            offset: start as u64,
            reason,
        };
        if size < BUFFER_HEADER_SIZE as u32 || size > MAX_BUFFER_SIZE {
            let e = bad(format!(
                "buffer size {size} is outside {BUFFER_HEADER_SIZE}..={MAX_BUFFER_SIZE}"
            ));
            self.resync();
            return Some(Err(e));
        }
        let compressed = header.is_compressed();
        let end_of_data = if compressed {
            header.saved_offset
        } else {
            header.saved_offset.max(header.offset)
        };
        if end_of_data > MAX_BUFFER_SIZE
            || (end_of_data as usize) < BUFFER_HEADER_SIZE
            || (!compressed && end_of_data > size)
        {
            let e = bad(format!(
                "data end {end_of_data:#x} does not fit a buffer of {size} bytes"
            ));
            self.resync();
            return Some(Err(e));
        }
        if (size as usize) > rest.len() {
            let e = EtlError::Truncated {
                buffer: index,
                offset: self.pos,
                needed: u64::from(size),
                available: rest.len() as u64,
            };
            self.skip_rest();
            return Some(Err(e));
        }
        self.pos += u64::from(size);
        self.index += 1;
        let body = &rest[BUFFER_HEADER_SIZE..size as usize];
        let payload = if compressed {
            let mut out = Vec::new();
            if let Err(x) =
                xpress::decompress(body, end_of_data as usize - BUFFER_HEADER_SIZE, &mut out)
            {
                self.skipped.buffers += 1;
                self.skipped.bytes += u64::from(size);
                return Some(Err(EtlError::Decompress {
                    buffer: index,
                    offset: start as u64,
                    position: x.position,
                    reason: x.reason,
                }));
            }
            std::borrow::Cow::Owned(out)
        } else {
            std::borrow::Cow::Borrowed(&body[..end_of_data as usize - BUFFER_HEADER_SIZE])
        };
        Some(Ok(Buffer {
            index,
            file_offset: start as u64,
            header,
            payload,
        }))
    }
}

/// Windows FILETIME of the Unix epoch.
pub const FILETIME_UNIX_EPOCH: i64 = 116_444_736_000_000_000;

/// `TRACE_LOGFILE_HEADER`, from the first event of the first buffer.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LogFileHeader {
    pub buffer_size: u32,
    pub version: String,
    /// The OS build number that wrote the file.
    pub provider_version: u32,
    pub number_of_processors: u32,
    pub end_time: i64,
    pub timer_resolution: u32,
    pub maximum_file_size: u32,
    pub log_file_mode: u32,
    pub buffers_written: u32,
    pub start_buffers: u32,
    pub pointer_size: u32,
    pub events_lost: u32,
    pub cpu_speed_mhz: u32,
    pub boot_time: i64,
    pub perf_freq: i64,
    pub start_time: i64,
    /// 1 = QueryPerformanceCounter, 2 = system time, 3 = CPU cycle counter.
    pub clock_type: u32,
    pub buffers_lost: u32,
    pub logger_name: String,
    pub log_file_name: String,
    /// Timestamp (in the trace clock) of the header event: pairs with `start_time`.
    pub header_timestamp: i64,
}

pub(crate) fn utf16z(b: &[u8]) -> (String, usize) {
    let mut units = Vec::new();
    let mut i = 0;
    while i + 1 < b.len() {
        let u = u16::from_le_bytes([b[i], b[i + 1]]);
        i += 2;
        if u == 0 {
            return (String::from_utf16_lossy(&units), i);
        }
        units.push(u);
    }
    (String::from_utf16_lossy(&units), b.len())
}

pub(crate) fn ansiz(b: &[u8]) -> (String, usize) {
    match b.iter().position(|&c| c == 0) {
        Some(n) => (String::from_utf8_lossy(&b[..n]).into_owned(), n + 1),
        None => (String::from_utf8_lossy(b).into_owned(), b.len()),
    }
}

impl LogFileHeader {
    /// Parses the payload of the EventTrace header event (group 0, type 0);
    /// `ps_hint` is the pointer size of the event's header type.
    pub fn parse(p: &[u8], ps_hint: usize, header_timestamp: i64) -> Option<LogFileHeader> {
        let ps = match u32_at(p, 44)? {
            4 => 4,
            8 => 8,
            _ => ps_hint,
        };
        let v = p.get(4..8)?;
        // Pointers LoggerName, LogFileName; TIME_ZONE_INFORMATION (172 bytes);
        // then 8-byte aligned BootTime.
        let tz = 56 + 2 * ps;
        let boot = (tz + 172 + 7) & !7;
        let mut h = LogFileHeader {
            buffer_size: u32_at(p, 0)?,
            version: format!("{}.{}.{}.{}", v[0], v[1], v[2], v[3]),
            provider_version: u32_at(p, 8)?,
            number_of_processors: u32_at(p, 12)?,
            end_time: u64_at(p, 16)? as i64,
            timer_resolution: u32_at(p, 24)?,
            maximum_file_size: u32_at(p, 28)?,
            log_file_mode: u32_at(p, 32)?,
            buffers_written: u32_at(p, 36)?,
            start_buffers: u32_at(p, 40)?,
            pointer_size: ps as u32,
            events_lost: u32_at(p, 48)?,
            cpu_speed_mhz: u32_at(p, 52)?,
            boot_time: u64_at(p, boot)? as i64,
            perf_freq: u64_at(p, boot + 8)? as i64,
            start_time: u64_at(p, boot + 16)? as i64,
            clock_type: u32_at(p, boot + 24)?,
            buffers_lost: u32_at(p, boot + 28)?,
            header_timestamp,
            ..LogFileHeader::default()
        };
        let strings = p.get(boot + 32..).unwrap_or(&[]);
        let (name, used) = utf16z(strings);
        h.logger_name = name;
        h.log_file_name = utf16z(&strings[used.min(strings.len())..]).0;
        Some(h)
    }
}

/// Converts event timestamps (in the trace's clock) to milliseconds since
/// the Unix epoch.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    clock_type: u32,
    freq: i64,
    start_filetime: i64,
    start_ts: i64,
}

impl Clock {
    pub fn new(h: &LogFileHeader) -> Clock {
        let freq = match h.clock_type {
            3 => i64::from(h.cpu_speed_mhz) * 1_000_000,
            _ => h.perf_freq,
        };
        Clock {
            clock_type: h.clock_type,
            freq: if freq > 0 { freq } else { 10_000_000 },
            start_filetime: h.start_time,
            start_ts: h.header_timestamp,
        }
    }

    /// A QueryPerformanceCounter clock: `start_ticks` was read at FILETIME
    /// `start_filetime` (a live session's start).
    pub fn qpc(freq: i64, start_filetime: i64, start_ticks: i64) -> Clock {
        Clock {
            clock_type: 1,
            freq: if freq > 0 { freq } else { 10_000_000 },
            start_filetime,
            start_ts: start_ticks,
        }
    }

    /// FILETIME (100 ns since 1601) of a timestamp.
    pub fn filetime(&self, ts: i64) -> i64 {
        if self.clock_type == 2 {
            return ts;
        }
        let delta =
            (i128::from(ts) - i128::from(self.start_ts)) * 10_000_000 / i128::from(self.freq);
        (i128::from(self.start_filetime) + delta).clamp(0, i128::from(i64::MAX)) as i64
    }

    /// The timestamp (in this clock) of a FILETIME: the inverse of [`Clock::filetime`].
    pub fn ticks_from_filetime(&self, ft: i64) -> i64 {
        if self.clock_type == 2 {
            return ft;
        }
        let delta =
            (i128::from(ft) - i128::from(self.start_filetime)) * i128::from(self.freq) / 10_000_000;
        (i128::from(self.start_ts) + delta).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    /// Milliseconds since the Unix epoch (0 for times before it).
    pub fn unix_ms(&self, ts: i64) -> u64 {
        let ft = self.filetime(ts);
        if ft <= FILETIME_UNIX_EPOCH {
            0
        } else {
            ((ft - FILETIME_UNIX_EPOCH) / 10_000) as u64
        }
    }

    /// Duration of `ticks` clock ticks in microseconds.
    pub fn ticks_to_us(&self, ticks: i64) -> f64 {
        if self.clock_type == 2 {
            ticks as f64 / 10.0
        } else {
            ticks as f64 * 1e6 / self.freq as f64
        }
    }
}
