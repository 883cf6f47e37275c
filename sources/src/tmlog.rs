//! The binary replay log (`.tmlog`). Its one job: store the record stream
//! (`tracemerge.stream.v1`, DESIGN.md §3) compactly and give back exactly
//! the same records, fast, with any damage found and located.
//!
//! # Format, version 1
//!
//! ```text
//! log     = header block* end [log]     logs concatenated byte-wise read as one
//! header  = magic 89 54 4D 4C 4F 47 0D 0A ("\x89TMLOG\r\n"), version u32 LE
//! block   = length u32 LE (≥ 1), crc u32 LE, payload[length]
//! end     = length 0, crc             the writer finished; nothing but EOF or
//!                                     another log may follow
//! crc     = CRC32C (Castagnoli) of the 4 length bytes followed by the payload
//! payload = record_count varint, string_count varint,
//!           string × string_count, record × record_count
//! string  = byte_length varint, UTF-8 bytes      appended to the string table
//! record  = byte_length varint, tag u8, fields   (byte_length covers tag+fields)
//! ```
//!
//! `varint` is unsigned LEB128 (at most 10 bytes). The string table belongs
//! to one log and grows across blocks: a block defines the strings that first
//! appear in it, before its records; later blocks refer to them by index, so
//! a hot symbol costs a one- or two-byte varint. Field types:
//!
//! - `str`: varint index into the string table (0 = first string defined).
//! - `time`: zigzag varint of the wrapping difference from the previous time
//!   in the same block (the first is relative to 0), so that consecutive
//!   records cost a byte or two of time and each block decodes on its own
//!   (given the table).
//! - `inline`: byte_length varint + UTF-8 bytes, not interned: event ids are
//!   unique, and interning them would grow the table with the record count.
//! - `node`: varint position in this graph's `nodes`.
//! - `strs`: count varint, then `str` × count.
//!
//! | tag | record | fields |
//! |---|---|---|
//! | 1 | graph | artifact str, at time, nodes strs, edge count varint, edge × count, entrypoints: count varint, node × count |
//! | 2 | targets | artifact str, at time, symbols strs |
//! | 3 | edge | artifact str, caller str, callee str, at time, hits varint, source str, [event_id inline] |
//! | 4 | hit | artifact str, symbol str, at time, hits varint, source str, [event_id inline] |
//! | 5 | coverage | artifact str, to time, to − from varint, symbols strs, source str, [lost varint] |
//! | 6 | watermark | at time |
//!
//! Tag bit `0x10` marks the optional last field (`event_id`, `lost`); other
//! bits must be clear. A static `edge` is: flags u8 (bit 0 kind static, bit 1
//! kind heuristic, bit 2 has reason, bit 3 has weight), caller node, callee
//! node, [reason str], [weight: the f64's bits, u64 LE].
//!
//! # Reading
//!
//! [`Reader`] streams: it holds one block and the string table, so memory
//! does not depend on the number of records. A block is checked (CRC) and
//! decoded whole before any of its records is handed out; the records it
//! decodes are checked like NDJSON records (times, hits, graph consistency).
//! Damage of any kind (checksum mismatch, bad varint, undefined string,
//! unknown tag, a cut-short file, a missing end marker) is one fatal
//! [`SourceError`] located at the damaged block — `trace.tmlog: block 17
//! (byte 123456): checksum mismatch …` — after every record of the blocks
//! before it. A header with an unknown version is rejected at once. Blocks
//! are numbered from 1 (the end marker counts, and so do the blocks of
//! earlier concatenated logs); the byte offset is where the block's frame
//! starts in the (decompressed) stream.
//!
//! [`Writer`] ends a block once it holds [`BLOCK_BYTES`] of encoding (a big
//! graph ends the block it lands in), or on [`Writer::flush`].
//!
//! A block may not decode to more than [`MAX_BLOCK_MEMORY`] (records and the
//! strings it defines), so a forged length or count cannot make the reader
//! allocate without bound; [`Writer`] never writes a block past that limit.

use std::collections::{HashMap, VecDeque};
use std::io::{self, ErrorKind, Read, Write};
use std::mem::size_of;

use tracemerge_records::{
    Coverage, EdgeKind, GraphSnapshot, IndexedSighting, Input, NameIndex, Record, Sighted,
    StaticEdge, Targets, MAX_TIME,
};

use crate::{Location, SourceError};

/// The first bytes of every log. The high first byte keeps it from looking
/// like text; `\r\n` shows a file mangled by newline conversion.
pub const MAGIC: [u8; 8] = *b"\x89TMLOG\r\n";
/// The format version this module writes and reads.
pub const VERSION: u32 = 1;
/// Magic and version.
pub const HEADER_LEN: usize = MAGIC.len() + 4;
/// Length and CRC in front of each block.
const FRAME_LEN: usize = 8;

/// The most memory one block may decode to (records and new strings; the
/// new strings are held twice, in the table and in the names handed on).
pub const MAX_BLOCK_MEMORY: u64 = 1 << 30;
/// The largest record the writer accepts, in decoded memory. Half the block
/// limit: the strings a record defines cost at most as much as the record.
pub const MAX_RECORD_MEMORY: u64 = MAX_BLOCK_MEMORY / 2;
/// Encoded bytes after which the writer ends a block: small enough that
/// damage loses little and a live reader sees records soon, large enough
/// that frames cost nothing.
pub const BLOCK_BYTES: usize = 64 << 10;
/// Decoded memory after which the writer ends a block (blocks of big graphs).
const BLOCK_MEMORY: u64 = 64 << 20;

const TAG_GRAPH: u8 = 1;
const TAG_TARGETS: u8 = 2;
const TAG_EDGE: u8 = 3;
const TAG_HIT: u8 = 4;
const TAG_COVERAGE: u8 = 5;
const TAG_WATERMARK: u8 = 6;
const TAG_KIND: u8 = 0x0f;
const TAG_OPTIONAL: u8 = 0x10;
/// Edges and hits: `hits` is an estimate (`"estimated": true`).
const TAG_ESTIMATED: u8 = 0x20;

const EDGE_STATIC: u8 = 1;
const EDGE_HEURISTIC: u8 = 2;
const EDGE_REASON: u8 = 4;
const EDGE_WEIGHT: u8 = 8;

// Sizes charged against the block memory limit (see `footprint`).
const RECORD_SIZE: u64 = size_of::<Record>() as u64;
const STRING_SIZE: u64 = size_of::<String>() as u64;
const STATIC_EDGE_SIZE: u64 = size_of::<StaticEdge>() as u64;

/// Payloads up to this size are read into a buffer sized up front; larger
/// (rare, or forged) lengths grow the buffer only as bytes actually arrive.
const PRESIZE_LIMIT: usize = 16 << 20;
/// Buffer capacity kept between blocks; a larger one is released.
const KEEP_CAPACITY: usize = 4 << 20;

/// What a record must satisfy to be written or read: what
/// [`Record::from_json`] accepts.
fn check(record: &Record) -> Result<(), String> {
    record.validate().map_err(|e| e.to_string())?;
    // `validate` has made sure that a coverage's `from` ≤ `to` = `time()`.
    check_time(record.time())?;
    match record {
        Record::Edge(e) => check_hits(e.hits)?,
        Record::Hit(h) => check_hits(h.hits)?,
        _ => {}
    }
    if let Record::Graph(g) = record {
        // JSON cannot carry NaN or infinities, so no reader produces them.
        if let Some(w) = g
            .edges
            .iter()
            .filter_map(|e| e.weight)
            .find(|w| !w.is_finite())
        {
            return Err(format!("edge weight {w} is not a finite number"));
        }
    }
    Ok(())
}

/// A record's time is within what JSON times may say.
fn check_time(time: u64) -> Result<(), String> {
    if time > MAX_TIME {
        return Err(format!(
            "time {time} is out of range (milliseconds since the epoch, at most {MAX_TIME})"
        ));
    }
    Ok(())
}

/// An edge's or hit's count is between 1 and `i64::MAX`, as in JSON input.
fn check_hits(hits: u64) -> Result<(), String> {
    if hits == 0 || hits > i64::MAX as u64 {
        return Err(format!(
            "hits must be between 1 and {}, got {hits}",
            i64::MAX
        ));
    }
    Ok(())
}

/// Memory a decoded record takes (its heap strings and vectors, not
/// allocator overhead). The reader charges exactly this while decoding.
fn footprint(record: &Record) -> u64 {
    fn text(s: &str) -> u64 {
        s.len() as u64
    }
    fn strings(v: &[String]) -> u64 {
        v.len() as u64 * STRING_SIZE + v.iter().map(|s| text(s)).sum::<u64>()
    }
    RECORD_SIZE
        + match record {
            Record::Graph(g) => {
                text(&g.artifact)
                    + strings(&g.nodes)
                    + strings(&g.entrypoints)
                    + g.edges.len() as u64 * STATIC_EDGE_SIZE
                    + g.edges
                        .iter()
                        .map(|e| {
                            text(&e.caller) + text(&e.callee) + e.reason.as_deref().map_or(0, text)
                        })
                        .sum::<u64>()
            }
            Record::Targets(t) => text(&t.artifact) + strings(&t.symbols),
            Record::Edge(e) => {
                text(&e.artifact)
                    + text(&e.caller)
                    + text(&e.callee)
                    + text(&e.source)
                    + e.event_id.as_deref().map_or(0, text)
            }
            Record::Hit(h) => {
                text(&h.artifact)
                    + text(&h.symbol)
                    + text(&h.source)
                    + h.event_id.as_deref().map_or(0, text)
            }
            Record::Coverage(c) => text(&c.artifact) + strings(&c.symbols) + text(&c.source),
            Record::Watermark { .. } => 0,
        }
}

// ---------------------------------------------------------------------------
// Writing

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn zigzag(delta: i64) -> u64 {
    ((delta << 1) ^ (delta >> 63)) as u64
}

fn unzigzag(value: u64) -> i64 {
    (value >> 1) as i64 ^ -((value & 1) as i64)
}

/// The writer's half of the string table.
struct Interner {
    ids: tracemerge_records::intern::Interner,
    /// Definitions of the strings new in the current block, encoded.
    defs: Vec<u8>,
    new_in_block: u64,
    /// Memory the reader will charge for those definitions.
    defs_memory: u64,
}

impl Interner {
    fn intern(&mut self, s: &str) -> u64 {
        if let Some(i) = self.ids.get(s) {
            return i.into();
        }
        let i = self.ids.intern(s).into();
        put_varint(&mut self.defs, s.len() as u64);
        self.defs.extend_from_slice(s.as_bytes());
        self.new_in_block += 1;
        self.defs_memory += STRING_SIZE + s.len() as u64;
        i
    }
}

/// Encodes one record's tag and fields (without its length).
struct Encoder<'a> {
    strings: &'a mut Interner,
    out: &'a mut Vec<u8>,
    prev_time: &'a mut u64,
}

impl Encoder<'_> {
    fn varint(&mut self, v: u64) {
        put_varint(self.out, v);
    }

    fn str(&mut self, s: &str) {
        let i = self.strings.intern(s);
        put_varint(self.out, i);
    }

    fn strs(&mut self, v: &[String]) {
        self.varint(v.len() as u64);
        for s in v {
            self.str(s);
        }
    }

    fn time(&mut self, t: u64) {
        let delta = t.wrapping_sub(*self.prev_time) as i64;
        *self.prev_time = t;
        self.varint(zigzag(delta));
    }

    fn inline(&mut self, s: &str) {
        self.varint(s.len() as u64);
        self.out.extend_from_slice(s.as_bytes());
    }

    /// The tag of an edge or hit record: its kind, with the flags of an
    /// event id and of an estimated count.
    fn sighting_tag(&mut self, kind: u8, event_id: bool, estimated: bool) {
        let optional = if event_id { TAG_OPTIONAL } else { 0 };
        let estimated = if estimated { TAG_ESTIMATED } else { 0 };
        self.out.push(kind | optional | estimated);
    }

    /// What an edge or hit record ends with: hits, source, the event id.
    fn sighting_end(&mut self, hits: u64, source: &str, event_id: Option<&str>) {
        self.varint(hits);
        self.str(source);
        if let Some(id) = event_id {
            self.inline(id);
        }
    }

    fn record(&mut self, record: &Record) {
        match record {
            Record::Graph(g) => {
                self.out.push(TAG_GRAPH);
                self.str(&g.artifact);
                self.time(g.at);
                self.strs(&g.nodes);
                // `check` has made sure every endpoint and entrypoint is a node.
                let position: HashMap<&str, u64> = g
                    .nodes
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (n.as_str(), i as u64))
                    .collect();
                let node = |s: &String| position.get(s.as_str()).copied().unwrap_or(0);
                self.varint(g.edges.len() as u64);
                for e in &g.edges {
                    let mut flags = match e.kind {
                        None => 0,
                        Some(EdgeKind::Static) => EDGE_STATIC,
                        Some(EdgeKind::Heuristic) => EDGE_HEURISTIC,
                    };
                    if e.reason.is_some() {
                        flags |= EDGE_REASON;
                    }
                    if e.weight.is_some() {
                        flags |= EDGE_WEIGHT;
                    }
                    self.out.push(flags);
                    self.varint(node(&e.caller));
                    self.varint(node(&e.callee));
                    if let Some(reason) = &e.reason {
                        self.str(reason);
                    }
                    if let Some(weight) = e.weight {
                        self.out.extend_from_slice(&weight.to_bits().to_le_bytes());
                    }
                }
                self.varint(g.entrypoints.len() as u64);
                for entry in &g.entrypoints {
                    self.varint(node(entry));
                }
            }
            Record::Targets(t) => {
                self.out.push(TAG_TARGETS);
                self.str(&t.artifact);
                self.time(t.at);
                self.strs(&t.symbols);
            }
            Record::Edge(e) => {
                self.sighting_tag(TAG_EDGE, e.event_id.is_some(), e.estimated);
                self.str(&e.artifact);
                self.str(&e.caller);
                self.str(&e.callee);
                self.time(e.at);
                self.sighting_end(e.hits, &e.source, e.event_id.as_deref());
            }
            Record::Hit(h) => {
                self.sighting_tag(TAG_HIT, h.event_id.is_some(), h.estimated);
                self.str(&h.artifact);
                self.str(&h.symbol);
                self.time(h.at);
                self.sighting_end(h.hits, &h.source, h.event_id.as_deref());
            }
            Record::Coverage(c) => {
                let optional = if c.lost.is_some() { TAG_OPTIONAL } else { 0 };
                self.out.push(TAG_COVERAGE | optional);
                self.str(&c.artifact);
                self.time(c.to);
                // `check` has made sure that from ≤ to.
                self.varint(c.to - c.from);
                self.strs(&c.symbols);
                self.str(&c.source);
                if let Some(lost) = c.lost {
                    self.varint(lost);
                }
            }
            Record::Watermark { at } => {
                self.out.push(TAG_WATERMARK);
                self.time(*at);
            }
        }
    }
}

fn invalid_input(message: String) -> io::Error {
    io::Error::new(ErrorKind::InvalidInput, message)
}

/// Writes a replay log. Records go into blocks of about [`BLOCK_BYTES`];
/// [`Writer::flush`] ends a block early (for a live reader), and
/// [`Writer::finish`] must be called to write the last block and the end
/// marker: a log without it reads as cut short. After an I/O error the log
/// is incomplete; start a new one.
pub struct Writer<W: Write> {
    out: W,
    strings: Interner,
    /// Encoded records of the current block.
    records: Vec<u8>,
    record_count: u64,
    /// Decoded memory of the current block's records.
    memory: u64,
    prev_time: u64,
    block_bytes: usize,
    max_record_memory: u64,
    scratch: Vec<u8>,
}

impl<W: Write> Writer<W> {
    /// Writes the header.
    pub fn new(out: W) -> io::Result<Writer<W>> {
        Writer::with_block_size(out, BLOCK_BYTES)
    }

    /// [`Writer::new`] with another block size in encoded bytes (at least 1:
    /// each record in its own block).
    pub fn with_block_size(mut out: W, block_bytes: usize) -> io::Result<Writer<W>> {
        out.write_all(&MAGIC)?;
        out.write_all(&VERSION.to_le_bytes())?;
        Ok(Writer {
            out,
            strings: Interner {
                ids: Default::default(),
                defs: Vec::new(),
                new_in_block: 0,
                defs_memory: 0,
            },
            records: Vec::new(),
            record_count: 0,
            memory: 0,
            prev_time: 0,
            block_bytes: block_bytes.max(1),
            max_record_memory: MAX_RECORD_MEMORY,
            scratch: Vec::new(),
        })
    }

    /// Appends a record. A record that [`Record::from_json`] would reject
    /// (bad time or hits, edge to a non-node, reversed coverage, …) or that
    /// is larger than [`MAX_RECORD_MEMORY`] is refused with
    /// [`ErrorKind::InvalidInput`], and the log is unchanged.
    pub fn write(&mut self, record: &Record) -> io::Result<()> {
        check(record).map_err(|m| invalid_input(format!("record cannot be written: {m}")))?;
        let memory = footprint(record);
        if memory > self.max_record_memory {
            return Err(invalid_input(format!(
                "record cannot be written: it takes {memory} bytes in memory, more than \
                 the {} a replay log record may",
                self.max_record_memory
            )));
        }
        if self.record_count > 0 && self.memory + memory > BLOCK_MEMORY {
            self.end_block()?;
        }
        self.scratch.clear();
        Encoder {
            strings: &mut self.strings,
            out: &mut self.scratch,
            prev_time: &mut self.prev_time,
        }
        .record(record);
        put_varint(&mut self.records, self.scratch.len() as u64);
        self.records.extend_from_slice(&self.scratch);
        self.record_count += 1;
        self.memory += memory;
        if self.records.len() + self.strings.defs.len() >= self.block_bytes {
            self.end_block()?;
        }
        Ok(())
    }

    /// Ends the current block and flushes the output, so that a reader sees
    /// every record written so far.
    pub fn flush(&mut self) -> io::Result<()> {
        self.end_block()?;
        self.out.flush()
    }

    /// The output.
    pub fn get_ref(&self) -> &W {
        &self.out
    }

    /// Writes the last block and the end marker, flushes, and gives the
    /// output back.
    pub fn finish(mut self) -> io::Result<W> {
        self.end_block()?;
        write_frame(&mut self.out, &[])?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn end_block(&mut self) -> io::Result<()> {
        if self.record_count == 0 {
            return Ok(());
        }
        let mut head = Vec::with_capacity(20);
        put_varint(&mut head, self.record_count);
        put_varint(&mut head, self.strings.new_in_block);
        write_frame(&mut self.out, &[&head, &self.strings.defs, &self.records])?;
        self.strings.defs.clear();
        self.strings.new_in_block = 0;
        self.strings.defs_memory = 0;
        self.records.clear();
        self.record_count = 0;
        self.memory = 0;
        self.prev_time = 0;
        // Do not keep the buffers of one huge record for the rest of the log.
        for buffer in [&mut self.records, &mut self.strings.defs, &mut self.scratch] {
            if buffer.capacity() > KEEP_CAPACITY {
                *buffer = Vec::new();
            }
        }
        Ok(())
    }
}

/// Writes one frame whose payload is `parts` concatenated (none: the end
/// marker).
fn write_frame(out: &mut impl Write, parts: &[&[u8]]) -> io::Result<()> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let len = u32::try_from(len).map_err(|_| {
        invalid_input(format!(
            "a replay log block of {len} bytes does not fit the 4 GiB frame"
        ))
    })?;
    let len = len.to_le_bytes();
    let crc = parts.iter().fold(crc32c::crc32c(&len), |crc, part| {
        crc32c::crc32c_append(crc, part)
    });
    out.write_all(&len)?;
    out.write_all(&crc.to_le_bytes())?;
    for part in parts {
        out.write_all(part)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Reading

/// What is wrong inside a block payload.
#[derive(Debug)]
enum Bad {
    /// A field runs past the end of its record or of the payload.
    End,
    Varint,
    StringIndex {
        index: u64,
        defined: usize,
    },
    NodeIndex {
        index: u64,
        nodes: usize,
    },
    Tag(u8),
    EdgeFlags(u8),
    Utf8,
    Memory,
    Trailing(usize),
    Invalid(String),
}

impl std::fmt::Display for Bad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bad::End => f.write_str("a field runs past the end of its record"),
            Bad::Varint => f.write_str("bad varint (more than 64 bits)"),
            Bad::StringIndex { index, defined } => write!(
                f,
                "string index {index} is not defined (the table has {defined} strings)"
            ),
            Bad::NodeIndex { index, nodes } => {
                write!(
                    f,
                    "node position {index} is not in the graph's {nodes} nodes"
                )
            }
            Bad::Tag(tag) => write!(f, "unknown record tag 0x{tag:02x}"),
            Bad::EdgeFlags(flags) => write!(f, "bad static edge flags 0x{flags:02x}"),
            Bad::Utf8 => f.write_str("string is not valid UTF-8"),
            Bad::Memory => write!(
                f,
                "the block decodes to more than {MAX_BLOCK_MEMORY} bytes of memory"
            ),
            Bad::Trailing(n) => write!(f, "{n} unread bytes after the fields"),
            Bad::Invalid(m) => write!(f, "invalid record: {m}"),
        }
    }
}

/// A cursor over a payload or one record.
struct Bytes<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Bytes<'a> {
    fn new(data: &'a [u8]) -> Self {
        Bytes { data, pos: 0 }
    }

    fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    fn byte(&mut self) -> Result<u8, Bad> {
        let b = *self.data.get(self.pos).ok_or(Bad::End)?;
        self.pos += 1;
        Ok(b)
    }

    #[inline]
    fn varint(&mut self) -> Result<u64, Bad> {
        let mut value = 0u64;
        let mut shift = 0;
        loop {
            let b = self.byte()?;
            // The tenth byte may only hold the 64th bit.
            if shift == 63 && b > 1 {
                return Err(Bad::Varint);
            }
            value |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(value);
            }
            shift += 7;
        }
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], Bad> {
        let n = usize::try_from(n).map_err(|_| Bad::End)?;
        if n > self.remaining() {
            return Err(Bad::End);
        }
        let slice = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(slice)
    }

    /// A count of items that take at least a byte each: larger than what is
    /// left means damage, and must not size an allocation.
    fn count(&mut self) -> Result<usize, Bad> {
        let n = self.varint()?;
        if n > self.remaining() as u64 {
            return Err(Bad::End);
        }
        Ok(n as usize)
    }
}

/// Decodes the records of one block.
struct Decoder<'t> {
    table: &'t [String],
    /// Memory this block may still decode to.
    budget: u64,
    prev_time: u64,
}

impl Decoder<'_> {
    fn charge(&mut self, bytes: u64) -> Result<(), Bad> {
        self.budget = self.budget.checked_sub(bytes).ok_or(Bad::Memory)?;
        Ok(())
    }

    /// A string's index, checked against the table; charged as the
    /// string it names, which a reader of whole records gets.
    fn index(&mut self, b: &mut Bytes) -> Result<NameIndex, Bad> {
        let index = b.varint()?;
        let (i, s) = usize::try_from(index)
            .ok()
            .and_then(|i| Some((NameIndex::try_from(i).ok()?, self.table.get(i)?)))
            .ok_or(Bad::StringIndex {
                index,
                defined: self.table.len(),
            })?;
        self.charge(s.len() as u64)?;
        Ok(i)
    }

    fn str(&mut self, b: &mut Bytes) -> Result<String, Bad> {
        let i = self.index(b)?;
        Ok(self.table[i as usize].clone())
    }

    fn strs(&mut self, b: &mut Bytes) -> Result<Vec<String>, Bad> {
        let n = b.count()?;
        self.charge(n as u64 * STRING_SIZE)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(self.str(b)?);
        }
        Ok(v)
    }

    fn time(&mut self, b: &mut Bytes) -> Result<u64, Bad> {
        let delta = unzigzag(b.varint()?);
        self.prev_time = self.prev_time.wrapping_add(delta as u64);
        Ok(self.prev_time)
    }

    fn inline(&mut self, b: &mut Bytes) -> Result<String, Bad> {
        let len = b.varint()?;
        let bytes = b.take(len)?;
        self.charge(len)?;
        let s = std::str::from_utf8(bytes).map_err(|_| Bad::Utf8)?;
        Ok(s.to_owned())
    }

    /// The event id of an edge or hit record, there when its tag says so.
    fn event_id(&mut self, b: &mut Bytes, present: bool) -> Result<Option<String>, Bad> {
        present.then(|| self.inline(b)).transpose()
    }

    fn node<'n>(&self, b: &mut Bytes, nodes: &'n [String]) -> Result<&'n String, Bad> {
        let index = b.varint()?;
        usize::try_from(index)
            .ok()
            .and_then(|i| nodes.get(i))
            .ok_or(Bad::NodeIndex {
                index,
                nodes: nodes.len(),
            })
    }

    /// The next record: sightings in their compact form (names as table
    /// indices), everything else whole.
    fn record(&mut self, b: &mut Bytes) -> Result<Input, Bad> {
        let tag = b.byte()?;
        let optional = tag & TAG_OPTIONAL != 0;
        let estimated = tag & TAG_ESTIMATED != 0;
        if tag & !(TAG_KIND | TAG_OPTIONAL | TAG_ESTIMATED) != 0
            || (estimated && !matches!(tag & TAG_KIND, TAG_EDGE | TAG_HIT))
        {
            return Err(Bad::Tag(tag));
        }
        self.charge(RECORD_SIZE)?;
        let record = match (tag & TAG_KIND, optional) {
            (kind @ (TAG_EDGE | TAG_HIT), _) => {
                return self.sighting(b, kind == TAG_EDGE, optional, estimated)
            }
            (TAG_GRAPH, false) => Record::Graph(self.graph(b)?),
            (TAG_TARGETS, false) => Record::Targets(Targets {
                artifact: self.str(b)?,
                at: self.time(b)?,
                symbols: self.strs(b)?,
            }),
            (TAG_COVERAGE, _) => {
                let artifact = self.str(b)?;
                let to = self.time(b)?;
                let span = b.varint()?;
                Record::Coverage(Coverage {
                    artifact,
                    // A span past `to` would be a reversed interval; it is
                    // rejected below rather than wrapped around.
                    from: to.checked_sub(span).ok_or_else(|| {
                        Bad::Invalid(format!("coverage span {span} is longer than to = {to}"))
                    })?,
                    to,
                    symbols: self.strs(b)?,
                    source: self.str(b)?,
                    lost: if optional { Some(b.varint()?) } else { None },
                })
            }
            (TAG_WATERMARK, false) => Record::Watermark { at: self.time(b)? },
            _ => return Err(Bad::Tag(tag)),
        };
        check(&record).map_err(Bad::Invalid)?;
        Ok(Input::from(record))
    }

    /// The fields of an `edge` or `hit` record after its tag, checked as
    /// [`check`] checks the whole record.
    fn sighting(
        &mut self,
        b: &mut Bytes,
        edge: bool,
        optional: bool,
        estimated: bool,
    ) -> Result<Input, Bad> {
        let artifact = self.index(b)?;
        let what = if edge {
            Sighted::Edge {
                caller: self.index(b)?,
                callee: self.index(b)?,
            }
        } else {
            Sighted::Hit {
                symbol: self.index(b)?,
            }
        };
        let at = self.time(b)?;
        let hits = b.varint()?;
        let source = self.index(b)?;
        let event_id = self.event_id(b, optional)?;
        check_time(at)
            .and_then(|()| check_hits(hits))
            .map_err(Bad::Invalid)?;
        Ok(Input::Sighting(IndexedSighting {
            what,
            artifact,
            at,
            hits,
            source,
            event_id,
            estimated,
        }))
    }

    fn graph(&mut self, b: &mut Bytes) -> Result<GraphSnapshot, Bad> {
        let artifact = self.str(b)?;
        let at = self.time(b)?;
        let nodes = self.strs(b)?;
        let n = b.count()?;
        self.charge(n as u64 * STATIC_EDGE_SIZE)?;
        let mut edges = Vec::with_capacity(n);
        for _ in 0..n {
            let flags = b.byte()?;
            if flags & !(EDGE_STATIC | EDGE_HEURISTIC | EDGE_REASON | EDGE_WEIGHT) != 0 {
                return Err(Bad::EdgeFlags(flags));
            }
            let kind = match flags & (EDGE_STATIC | EDGE_HEURISTIC) {
                0 => None,
                EDGE_STATIC => Some(EdgeKind::Static),
                EDGE_HEURISTIC => Some(EdgeKind::Heuristic),
                _ => return Err(Bad::EdgeFlags(flags)),
            };
            let caller = self.node(b, &nodes)?.clone();
            let callee = self.node(b, &nodes)?.clone();
            self.charge((caller.len() + callee.len()) as u64)?;
            let reason = if flags & EDGE_REASON != 0 {
                Some(self.str(b)?)
            } else {
                None
            };
            let weight = if flags & EDGE_WEIGHT != 0 {
                let bits = b.take(8)?;
                let bits: [u8; 8] = bits.try_into().map_err(|_| Bad::End)?;
                Some(f64::from_bits(u64::from_le_bytes(bits)))
            } else {
                None
            };
            edges.push(StaticEdge {
                caller,
                callee,
                kind,
                reason,
                weight,
            });
        }
        let n = b.count()?;
        self.charge(n as u64 * STRING_SIZE)?;
        let mut entrypoints = Vec::with_capacity(n);
        for _ in 0..n {
            let entry = self.node(b, &nodes)?.clone();
            self.charge(entry.len() as u64)?;
            entrypoints.push(entry);
        }
        Ok(GraphSnapshot {
            artifact,
            at,
            nodes,
            edges,
            entrypoints,
            indirect_calls: Default::default(),
            modules: Default::default(),
        })
    }
}

/// Decodes a checked payload: new strings go to `table`, records to `out`.
/// `offset` is where the payload starts in the stream, for messages.
fn decode_block(
    payload: &[u8],
    offset: u64,
    budget: u64,
    table: &mut Vec<String>,
    out: &mut VecDeque<Input>,
) -> Result<(), String> {
    let mut b = Bytes::new(payload);
    let at = |pos: usize| offset + pos as u64;
    let head = |b: &mut Bytes| -> Result<(u64, u64), Bad> { Ok((b.varint()?, b.varint()?)) };
    let (record_count, string_count) =
        head(&mut b).map_err(|e| format!("block head (byte {}): {e}", at(0)))?;
    let mut budget = budget;
    let first = table.len();
    for i in 0..string_count {
        let start = b.pos;
        let mut define = || -> Result<(), Bad> {
            let len = b.varint()?;
            let bytes = b.take(len)?;
            budget = budget.checked_sub(STRING_SIZE + len).ok_or(Bad::Memory)?;
            let s = std::str::from_utf8(bytes).map_err(|_| Bad::Utf8)?;
            table.push(s.to_owned());
            Ok(())
        };
        define().map_err(|e| {
            format!(
                "string definition {} of {string_count} (byte {}): {e}",
                i + 1,
                at(start)
            )
        })?;
    }
    if table.len() > first {
        // A table past 2^32 names fails at its first index (`index`).
        out.push_back(Input::Names {
            first: NameIndex::try_from(first).unwrap_or(NameIndex::MAX),
            names: table[first..].to_vec(),
        });
    }
    let mut decoder = Decoder {
        table: table.as_slice(),
        budget,
        prev_time: 0,
    };
    for i in 0..record_count {
        let start = b.pos;
        let mut one = || -> Result<Input, Bad> {
            let len = b.varint()?;
            let mut fields = Bytes::new(b.take(len)?);
            let record = decoder.record(&mut fields)?;
            if fields.remaining() > 0 {
                return Err(Bad::Trailing(fields.remaining()));
            }
            Ok(record)
        };
        let record = one().map_err(|e| {
            format!(
                "record {} of {record_count} (byte {}): {e}",
                i + 1,
                at(start)
            )
        })?;
        out.push_back(record);
    }
    if b.remaining() > 0 {
        return Err(format!(
            "{} bytes after the last of its {record_count} records (byte {})",
            b.remaining(),
            at(b.pos)
        ));
    }
    Ok(())
}

/// Reads until `buf` is full or the input ends; how many bytes it got.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match input.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Reads a replay log: an iterator of records, ending with one fatal error
/// if the log is damaged (see the module documentation).
pub struct Reader<R> {
    input: R,
    name: std::sync::Arc<str>,
    table: Vec<String>,
    payload: Vec<u8>,
    /// Items of the current block not yet handed out.
    pending: VecDeque<Input>,
    /// Number (1-based, counted across concatenated logs) and start offset
    /// of the current block.
    block: u64,
    block_offset: u64,
    /// Bytes consumed so far.
    offset: u64,
    done: bool,
}

/// What reading a block came to (errors aside).
enum Step {
    /// Records are pending (or another log began after an end marker).
    Block,
    /// The end marker, and nothing after it.
    End,
}

impl<R: Read> Reader<R> {
    /// Reads and checks the header; `name` is used in locations (the path,
    /// or `<stdin>`).
    pub fn new(name: &str, input: R) -> Result<Reader<R>, SourceError> {
        let mut reader = Reader {
            input,
            name: name.into(),
            table: Vec::new(),
            payload: Vec::new(),
            pending: VecDeque::new(),
            block: 0,
            block_offset: 0,
            offset: 0,
            done: false,
        };
        let mut header = [0u8; HEADER_LEN];
        let got = read_full(&mut reader.input, &mut header)
            .map_err(|e| reader.header_error(format!("read error: {e}")))?;
        reader.check_header(&header[..got])?;
        Ok(reader)
    }

    /// Where the records handed out last come from: their block.
    pub fn location(&self) -> Location {
        Location::block(self.name.clone(), self.block, self.block_offset)
    }

    fn header_error(&self, message: String) -> SourceError {
        let path = if self.offset == 0 {
            "header".to_string()
        } else {
            format!("header at byte {}", self.offset)
        };
        SourceError::fatal(Location::file(self.name.clone()).with_path(path), message)
    }

    fn check_header(&mut self, header: &[u8]) -> Result<(), SourceError> {
        let magic_len = header.len().min(MAGIC.len());
        if header[..magic_len] != MAGIC[..magic_len] {
            return Err(self.header_error(
                "not a tracemerge replay log (the magic bytes 89 54 4D 4C 4F 47 0D 0A are missing)"
                    .into(),
            ));
        }
        if header.len() < HEADER_LEN {
            return Err(self.header_error(format!(
                "truncated: the header has {} of its {HEADER_LEN} bytes",
                header.len()
            )));
        }
        let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
        if version != VERSION {
            return Err(self.header_error(format!(
                "unsupported replay log format version {version}; this tracemerge reads \
                 version {VERSION} (a newer tracemerge may read it)"
            )));
        }
        self.offset += HEADER_LEN as u64;
        Ok(())
    }

    fn block_error(&self, message: String) -> SourceError {
        SourceError::fatal(self.location(), message)
    }

    /// Reads the next block into `pending` (or passes the end marker).
    fn read_block(&mut self) -> Result<Step, SourceError> {
        self.block += 1;
        self.block_offset = self.offset;
        let mut frame = [0u8; FRAME_LEN];
        let got = read_full(&mut self.input, &mut frame)
            .map_err(|e| self.block_error(format!("read error: {e}")))?;
        if got == 0 {
            return Err(self.block_error(
                "the log ends without its end marker: it was cut short, or its writer \
                 did not finish (every record before this point was read)"
                    .into(),
            ));
        }
        if got < FRAME_LEN {
            return Err(self.block_error(format!(
                "truncated: the block frame has {got} of its {FRAME_LEN} bytes"
            )));
        }
        let len_bytes = [frame[0], frame[1], frame[2], frame[3]];
        let len = u32::from_le_bytes(len_bytes) as usize;
        let stored = u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]);
        self.payload.clear();
        if self.payload.capacity() > KEEP_CAPACITY.max(len) {
            self.payload = Vec::new();
        }
        let got = if len <= PRESIZE_LIMIT {
            self.payload.resize(len, 0);
            read_full(&mut self.input, &mut self.payload)
        } else {
            // Grows only as data arrives: a forged length cannot allocate.
            (&mut self.input)
                .take(len as u64)
                .read_to_end(&mut self.payload)
        }
        .map_err(|e| self.block_error(format!("read error: {e}")))?;
        if got < len {
            return Err(
                self.block_error(format!("truncated: the block has {got} of its {len} bytes"))
            );
        }
        let computed = crc32c::crc32c_append(crc32c::crc32c(&len_bytes), &self.payload);
        if computed != stored {
            return Err(self.block_error(format!(
                "checksum mismatch (stored {stored:08x}, computed {computed:08x}): \
                 the block is damaged"
            )));
        }
        self.offset += (FRAME_LEN + len) as u64;
        if len == 0 {
            return self.after_end_marker();
        }
        let payload_offset = self.block_offset + FRAME_LEN as u64;
        decode_block(
            &self.payload,
            payload_offset,
            MAX_BLOCK_MEMORY,
            &mut self.table,
            &mut self.pending,
        )
        .map_err(|message| {
            self.pending.clear();
            SourceError::fatal(
                Location::block(self.name.clone(), self.block, self.block_offset),
                message,
            )
        })?;
        Ok(Step::Block)
    }

    /// After an end marker: the end of the input, or another log.
    fn after_end_marker(&mut self) -> Result<Step, SourceError> {
        let mut header = [0u8; HEADER_LEN];
        let got = read_full(&mut self.input, &mut header)
            .map_err(|e| self.header_error(format!("read error: {e}")))?;
        if got == 0 {
            return Ok(Step::End);
        }
        self.check_header(&header[..got]).map_err(|mut e| {
            e.message = format!("after the end marker: {}", e.message);
            e
        })?;
        self.table.clear();
        Ok(Step::Block)
    }
}

/// The records of a log, sightings in their compact form; a block's new
/// names come first, as one [`Input::Names`].
impl<R: Read> Iterator for Reader<R> {
    type Item = Result<Input, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(record) = self.pending.pop_front() {
                return Some(Ok(record));
            }
            if self.done {
                return None;
            }
            match self.read_block() {
                Ok(Step::Block) => {}
                Ok(Step::End) => {
                    self.done = true;
                    return None;
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Whether `prefix` starts like a replay log (any version: the reader
/// explains an unknown one).
pub(crate) fn has_magic(prefix: &[u8]) -> bool {
    prefix.starts_with(&MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracemerge_records::{EdgeObservation, Expander, HitObservation};

    fn edge(caller: &str, callee: &str, at: u64) -> Record {
        Record::Edge(EdgeObservation {
            artifact: "app@1".into(),
            caller: caller.into(),
            callee: callee.into(),
            at,
            hits: 1,
            source: "ebpf:h1".into(),
            event_id: None,
            estimated: false,
        })
    }

    fn log(records: &[Record], block_bytes: usize) -> Vec<u8> {
        let mut w = Writer::with_block_size(Vec::new(), block_bytes).unwrap();
        for r in records {
            w.write(r).unwrap();
        }
        w.finish().unwrap()
    }

    /// The records before the error, and the error; nothing may follow it.
    fn read(bytes: &[u8]) -> (Vec<Record>, Option<SourceError>) {
        let mut records = Vec::new();
        let mut reader = match Reader::new("t.tmlog", bytes) {
            Ok(r) => r,
            Err(e) => return (records, Some(e)),
        };
        let mut expander = Expander::new();
        for item in reader.by_ref() {
            match item {
                Ok(input) => records.extend(expander.expand(input)),
                Err(e) => {
                    assert!(reader.next().is_none(), "{e}: items after a fatal error");
                    return (records, Some(e));
                }
            }
        }
        (records, None)
    }

    /// A log of one hand-made block: the strings, then raw record bytes.
    fn raw_log(strings: &[&str], records: &[&[u8]]) -> Vec<u8> {
        let mut payload = Vec::new();
        put_varint(&mut payload, records.len() as u64);
        put_varint(&mut payload, strings.len() as u64);
        for s in strings {
            put_varint(&mut payload, s.len() as u64);
            payload.extend_from_slice(s.as_bytes());
        }
        for r in records {
            put_varint(&mut payload, r.len() as u64);
            payload.extend_from_slice(r);
        }
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&VERSION.to_le_bytes());
        write_frame(&mut out, &[&payload]).unwrap();
        write_frame(&mut out, &[]).unwrap();
        out
    }

    #[test]
    fn estimated_counts_round_trip() {
        let Record::Edge(mut e) = edge("a", "b", 5) else {
            unreachable!()
        };
        e.estimated = true;
        e.hits = 40;
        let hit = Record::Hit(HitObservation {
            artifact: "app@1".into(),
            symbol: "b".into(),
            at: 7,
            hits: 3,
            source: "ebpf:h1".into(),
            event_id: Some("x".into()),
            estimated: true,
        });
        let records = vec![Record::Edge(e), edge("a", "c", 6), hit];
        let (back, err) = read(&log(&records, 1 << 16));
        assert!(err.is_none(), "{err:?}");
        assert_eq!(back, records);
    }

    #[test]
    fn varints_and_zigzag_round_trip_at_the_edges() {
        for v in [
            0,
            1,
            127,
            128,
            300,
            u64::from(u32::MAX),
            u64::MAX - 1,
            u64::MAX,
        ] {
            let mut buf = Vec::new();
            put_varint(&mut buf, v);
            assert!(buf.len() <= 10);
            let mut b = Bytes::new(&buf);
            assert_eq!(b.varint().unwrap(), v);
            assert_eq!(b.remaining(), 0);
        }
        for d in [0, 1, -1, 63, -64, i64::MAX, i64::MIN] {
            assert_eq!(unzigzag(zigzag(d)), d);
        }
        assert!(zigzag(-1) == 1 && zigzag(1) == 2, "small deltas stay small");
        // eleven bytes, and a tenth byte above 1, are too long
        assert!(matches!(Bytes::new(&[0xff; 11]).varint(), Err(Bad::Varint)));
        let mut ten = vec![0xff; 9];
        ten.push(0x02);
        assert!(matches!(Bytes::new(&ten).varint(), Err(Bad::Varint)));
        assert!(matches!(Bytes::new(&[0x80]).varint(), Err(Bad::End)));
    }

    #[test]
    fn hot_symbols_cost_a_varint() {
        let records: Vec<Record> = (0..1000).map(|i| edge("main", "work", i)).collect();
        let bytes = log(&records, BLOCK_BYTES);
        // artifact, caller, callee, source: 1 byte each; time delta, hits:
        // 1 each; tag and length: 1 each.
        assert!(bytes.len() < 1000 * 9 + 200, "{} bytes", bytes.len());
        assert_eq!(read(&bytes), (records, None));
    }

    #[test]
    fn strings_are_defined_once_across_blocks() {
        let records: Vec<Record> = (0..50).map(|i| edge("main", "work", i)).collect();
        let bytes = log(&records, 16);
        let occurrences = bytes.windows(4).filter(|w| w == b"main").count();
        assert_eq!(occurrences, 1);
        let (got, error) = read(&bytes);
        assert!(error.is_none(), "{error:?}");
        assert_eq!(got, records);
    }

    #[test]
    fn bad_varint_is_located() {
        let mut record = vec![TAG_WATERMARK];
        record.extend_from_slice(&[0xff; 10]);
        record.push(0x7f);
        let bytes = raw_log(&[], &[&record]);
        let (got, error) = read(&bytes);
        assert!(got.is_empty());
        let error = error.unwrap();
        assert!(error.fatal);
        assert_eq!(error.location.block, 1);
        assert_eq!(error.location.offset, HEADER_LEN as u64);
        assert!(error.message.contains("record 1 of 1"), "{error}");
        assert!(error.message.contains("bad varint"), "{error}");
        assert!(
            error
                .to_string()
                .starts_with("t.tmlog: block 1 (byte 12): "),
            "{error}"
        );
    }

    #[test]
    fn undefined_string_and_unknown_tag_and_bad_flags() {
        let cases: [(&[u8], &str); 6] = [
            (&[TAG_TARGETS, 5, 0, 0], "string index 5 is not defined"),
            (&[0x07, 0], "unknown record tag 0x07"),
            (
                &[TAG_WATERMARK | TAG_OPTIONAL, 0],
                "unknown record tag 0x16",
            ),
            (&[0x46, 0], "unknown record tag 0x46"),
            // graph "a" with node "a" and an edge whose flags say both kinds
            (
                &[TAG_GRAPH, 0, 0, 1, 0, 1, 3, 0, 0, 0],
                "bad static edge flags 0x03",
            ),
            (&[TAG_GRAPH, 0, 0, 1, 0, 1, 0, 0, 4, 0], "node position 4"),
        ];
        for (record, needle) in cases {
            let (got, error) = read(&raw_log(&["a"], &[&[TAG_WATERMARK, 2], record]));
            assert!(got.is_empty(), "{needle}: the bad block yields nothing");
            let error = error.unwrap();
            assert!(error.message.contains("record 2 of 2"), "{error}");
            assert!(error.message.contains(needle), "{needle}: {error}");
        }
    }

    #[test]
    fn decoded_records_are_checked_like_json_ones() {
        let mut over = vec![TAG_WATERMARK];
        put_varint(&mut over, zigzag(MAX_TIME as i64 + 1));
        let cases: [(&[u8], &str); 5] = [
            (&over, "out of range"),
            // hits 0
            (&[TAG_EDGE, 0, 0, 0, 2, 0, 0], "hits must be"),
            // graph with the node "a" twice
            (&[TAG_GRAPH, 0, 0, 2, 0, 0, 0, 0], "duplicate node"),
            // coverage span longer than `to`
            (&[TAG_COVERAGE, 0, 2, 3, 0, 0], "span 3"),
            // trailing bytes inside the record
            (&[TAG_WATERMARK, 2, 9], "1 unread bytes"),
        ];
        for (record, needle) in cases {
            let (_, error) = read(&raw_log(&["a"], &[record]));
            let error = error.unwrap();
            assert!(error.message.contains(needle), "{needle}: {error}");
        }
    }

    #[test]
    fn forged_counts_cannot_allocate_without_bound() {
        // A 1 KiB symbol, then a targets record naming it 100,000 times:
        // 100 kB of payload that would decode to 100 MB. (The reader's
        // limit is 1 GiB; a smaller one keeps the test light.)
        let budget = 10 << 20;
        let payload = |strings: &[&str], record: &[u8]| {
            let log = raw_log(strings, &[record]);
            log[HEADER_LEN + FRAME_LEN..log.len() - FRAME_LEN].to_vec()
        };
        let big = "x".repeat(1 << 10);
        let mut record = vec![TAG_TARGETS, 0, 0];
        put_varint(&mut record, 100_000);
        record.extend(std::iter::repeat_n(0u8, 100_000));
        let (mut table, mut out) = (Vec::new(), VecDeque::new());
        let e =
            decode_block(&payload(&[&big], &record), 20, budget, &mut table, &mut out).unwrap_err();
        assert!(e.contains("decodes to more than"), "{e}");
        // the same record within the limit decodes
        let (mut table, mut out) = (Vec::new(), VecDeque::new());
        decode_block(&payload(&["x"], &record), 20, budget, &mut table, &mut out).unwrap();
        // The block's new names, then the record.
        assert_eq!(out.len(), 2);
        assert!(matches!(out.back(), Some(Input::Record(_))));
        // a count beyond the bytes left is damage, not an allocation
        let mut record = vec![TAG_TARGETS, 0, 0];
        put_varint(&mut record, u64::MAX);
        let (_, error) = read(&raw_log(&["a"], &[&record]));
        assert!(error.unwrap().message.contains("past the end"));
    }

    #[test]
    fn the_writer_refuses_what_the_reader_would_reject() {
        let mut w = Writer::new(Vec::new()).unwrap();
        let bad = [
            Record::Watermark { at: MAX_TIME + 1 },
            Record::Coverage(Coverage {
                artifact: "a".into(),
                symbols: vec![],
                from: 5,
                to: 4,
                source: String::new(),
                lost: None,
            }),
            Record::Graph(GraphSnapshot {
                artifact: "a".into(),
                at: 0,
                nodes: vec!["m".into()],
                edges: vec![StaticEdge {
                    weight: Some(f64::NAN),
                    ..StaticEdge::new("m", "m")
                }],
                entrypoints: vec![],
                indirect_calls: Default::default(),
                modules: Default::default(),
            }),
        ];
        for record in &bad {
            let e = w.write(record).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        }
        w.max_record_memory = 1000;
        let big = Record::Targets(Targets {
            artifact: "a".into(),
            at: 0,
            symbols: vec!["s".repeat(2000)],
        });
        assert!(w.write(&big).unwrap_err().to_string().contains("memory"));
        // refused records left nothing behind: the log is empty and whole
        let bytes = w.finish().unwrap();
        assert_eq!(read(&bytes), (vec![], None));
        assert_eq!(bytes.len(), HEADER_LEN + FRAME_LEN);
    }

    #[test]
    fn footprint_is_what_the_reader_charges() {
        let records = vec![
            Record::Graph(GraphSnapshot {
                artifact: "app".into(),
                at: 3,
                nodes: vec!["main".into(), "a".into()],
                edges: vec![
                    StaticEdge::new("main", "a"),
                    StaticEdge {
                        reason: Some("vtable".into()),
                        kind: Some(EdgeKind::Heuristic),
                        weight: Some(0.5),
                        ..StaticEdge::new("a", "main")
                    },
                ],
                entrypoints: vec!["main".into()],
                indirect_calls: Default::default(),
                modules: Default::default(),
            }),
            edge("main", "a", 4),
        ];
        let bytes = log(&records, BLOCK_BYTES);
        let payload = &bytes[HEADER_LEN + FRAME_LEN..bytes.len() - FRAME_LEN];
        let mut b = Bytes::new(payload);
        let (count, strings) = (b.varint().unwrap(), b.varint().unwrap());
        let mut table = Vec::new();
        for _ in 0..strings {
            let len = b.varint().unwrap();
            table.push(String::from_utf8(b.take(len).unwrap().to_vec()).unwrap());
        }
        let mut decoder = Decoder {
            table: &table,
            budget: MAX_BLOCK_MEMORY,
            prev_time: 0,
        };
        let mut expander = Expander::new();
        expander.expand(Input::Names {
            first: 0,
            names: table.clone(),
        });
        for record in records.iter().take(count as usize) {
            let before = decoder.budget;
            let len = b.varint().unwrap();
            let got = decoder
                .record(&mut Bytes::new(b.take(len).unwrap()))
                .unwrap();
            assert_eq!(expander.expand(got).as_ref(), Some(record));
            assert_eq!(before - decoder.budget, footprint(record));
        }
    }

    #[test]
    fn header_errors_say_what_is_wrong() {
        let mut bytes = log(&[edge("a", "b", 1)], BLOCK_BYTES);
        bytes[8] = 7;
        let e = Reader::new("v.tmlog", &bytes[..]).err().unwrap();
        assert_eq!(
            e.to_string(),
            "v.tmlog: header: unsupported replay log format version 7; this tracemerge \
             reads version 1 (a newer tracemerge may read it)"
        );
        let e = Reader::new("v.tmlog", &bytes[..10]).err().unwrap();
        assert!(e.message.contains("header has 10 of its 12 bytes"), "{e}");
        let e = Reader::new("v.tmlog", &b"\x89PNG\r\n\x1a\n\0\0\0\0"[..])
            .err()
            .unwrap();
        assert!(e.message.contains("magic"), "{e}");
    }

    #[test]
    fn flush_shows_a_live_reader_every_record_so_far() {
        let mut w = Writer::new(Vec::new()).unwrap();
        w.write(&edge("a", "b", 1)).unwrap();
        assert_eq!(w.get_ref().len(), HEADER_LEN, "still in the open block");
        w.flush().unwrap();
        w.write(&edge("b", "c", 2)).unwrap();
        w.flush().unwrap();
        let (got, error) = read(w.get_ref());
        assert_eq!(got, vec![edge("a", "b", 1), edge("b", "c", 2)]);
        let error = error.unwrap();
        assert_eq!(error.location.block, 3);
        assert!(error.message.contains("without its end marker"), "{error}");
        let (got, error) = read(&w.finish().unwrap());
        assert_eq!((got.len(), error), (2, None));
    }

    #[test]
    fn concatenated_logs_read_as_one() {
        let first = vec![edge("a", "b", 1), edge("b", "c", 2)];
        let second = vec![edge("x", "y", 3)];
        let mut bytes = log(&first, BLOCK_BYTES);
        bytes.extend(log(&second, BLOCK_BYTES));
        let (got, error) = read(&bytes);
        assert!(error.is_none(), "{error:?}");
        assert_eq!(got, [first, second].concat());
        // but garbage after the end marker is not ignored
        let mut bytes = log(&[edge("a", "b", 1)], BLOCK_BYTES);
        bytes.extend_from_slice(b"junk");
        let (got, error) = read(&bytes);
        assert_eq!(got.len(), 1);
        let error = error.unwrap();
        assert!(error.message.contains("after the end marker"), "{error}");
    }
}
