//! The tracemerge NDJSON record stream (`tracemerge.stream.v1`).
//!
//! Lines are parsed on several threads: one thread reads the input into
//! chunks of whole lines (numbered, with their byte offsets), parser
//! threads turn chunks into records (`edge` and `hit` records in the
//! compact form, each chunk with a name table of its own: [`Compactor`]),
//! and the iterator hands them out in input order, so the sequential steps
//! after it (watermark, lateness, duplicates) see exactly the order of the
//! file.

use std::io::BufRead;
use std::ops::Range;
use std::sync::Arc;
use std::thread;

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::lines::{Line, LineReader};
use crate::{InputItem, Location, SourceError};
use tracemerge_records::{Compactor, Input, RecordError};

/// Lines per chunk of a file, and the bytes at which a chunk is sent early.
pub(crate) const CHUNK_LINES: usize = 1024;
const CHUNK_BYTES: usize = 1 << 20;

/// Chunks read ahead of the iterator, per parser thread.
const AHEAD_PER_PARSER: usize = 4;

/// What the reader thread found on one line.
enum Raw {
    /// A non-blank line: its bytes in the chunk's buffer.
    Text {
        line: u64,
        offset: u64,
        bytes: Range<usize>,
    },
    /// An error already (an over-long line, a read failure).
    Error(SourceError),
}

/// Consecutive lines of the input.
#[derive(Default)]
struct Chunk {
    buffer: Vec<u8>,
    lines: Vec<Raw>,
}

impl Chunk {
    /// The chunk's records, sightings in the compact form: the chunk's
    /// own name table first, so that the engine's one sequential reader
    /// looks up each distinct name once per chunk, not four per line.
    /// (`compactor` is the parser thread's, kept for the capacity of its
    /// table.)
    fn parse(self, name: &str, compactor: &mut Compactor) -> Vec<InputItem> {
        // The chunk's own copy of the file name, which every location
        // holds: its count then moves between threads once a chunk, not
        // at every line (this thread takes a count a line, the engine's
        // reader drops it).
        let name: Arc<str> = Arc::from(name);
        let mut items = Vec::with_capacity(self.lines.len() + 1);
        // The table's place; it is known once the chunk is parsed.
        items.push(Ok((
            Location::file(name.clone()),
            Input::Names {
                first: 0,
                names: Vec::new(),
            },
        )));
        items.extend(self.lines.into_iter().map(|raw| match raw {
            Raw::Text {
                line,
                offset,
                bytes,
            } => {
                let location = Location::line(name.clone(), line, offset);
                match parse_line(&self.buffer[bytes], compactor) {
                    Ok(input) => Ok((location, input)),
                    Err(message) => Err(SourceError::new(location, message)),
                }
            }
            Raw::Error(error) => Err(error),
        }));
        items[0] = Ok((Location::file(name.clone()), compactor.names()));
        items
    }
}

/// A parsed chunk, once its parser is done with it.
type Parsed = Receiver<Vec<InputItem>>;

pub(crate) struct NdjsonReader {
    /// The chunks' results, in input order.
    ordered: Receiver<Parsed>,
    current: std::vec::IntoIter<InputItem>,
}

impl NdjsonReader {
    pub(crate) fn new(
        name: &str,
        reader: Box<dyn BufRead + Send>,
        max_line: usize,
        chunk_lines: usize,
        (first_line, first_offset): (u64, u64),
    ) -> Self {
        let parsers = thread::available_parallelism().map_or(1, |n| n.get());
        let (work_tx, work_rx) =
            bounded::<(Chunk, Sender<Vec<InputItem>>)>(parsers * AHEAD_PER_PARSER);
        let (ordered_tx, ordered) = bounded::<Parsed>(parsers * AHEAD_PER_PARSER);
        for _ in 0..parsers {
            let (work, name) = (work_rx.clone(), name.to_string());
            thread::Builder::new()
                .name("tracemerge-parse".into())
                .spawn(move || {
                    let mut compactor = Compactor::new();
                    for (chunk, done) in work {
                        // The iterator may be gone (the run stopped early).
                        let _ = done.send(chunk.parse(&name, &mut compactor));
                    }
                })
                .expect("spawn a parser thread");
        }
        let lines = LineReader::new(reader, max_line, first_line, first_offset);
        let name = name.to_string();
        thread::Builder::new()
            .name("tracemerge-read".into())
            .spawn(move || {
                let chunks = Chunking {
                    max_line,
                    lines: chunk_lines.max(1),
                };
                read_chunks(&name, lines, chunks, work_tx, ordered_tx)
            })
            .expect("spawn the reader thread");
        NdjsonReader {
            ordered,
            current: Vec::new().into_iter(),
        }
    }
}

/// The reader thread: cuts the input into chunks and hands each to a
/// parser, queueing the place of its result in input order. Ends at the
/// end of the input, or when the iterator is dropped.
/// How the reader thread cuts its input.
struct Chunking {
    max_line: usize,
    /// Lines per chunk (1 for a live input: no line waits for the next).
    lines: usize,
}

fn read_chunks(
    name: &str,
    mut lines: LineReader<Box<dyn BufRead + Send>>,
    chunking: Chunking,
    work: Sender<(Chunk, Sender<Vec<InputItem>>)>,
    ordered: Sender<Parsed>,
) {
    let send = |chunk: Chunk| {
        let (done_tx, done_rx) = bounded(1);
        ordered.send(done_rx).is_ok() && work.send((chunk, done_tx)).is_ok()
    };
    let mut chunk = Chunk::default();
    while let Some(line) = lines.next_line() {
        let raw = match line {
            Line::Text {
                line,
                offset,
                bytes,
            } => {
                let start = chunk.buffer.len();
                chunk.buffer.extend_from_slice(bytes);
                Raw::Text {
                    line,
                    offset,
                    bytes: start..chunk.buffer.len(),
                }
            }
            Line::TooLong { line, offset, len } => Raw::Error(SourceError::new(
                Location::line(name, line, offset),
                format!(
                    "line is {len} bytes long, longer than the limit of {} bytes; skipped",
                    chunking.max_line
                ),
            )),
            Line::Failed {
                line,
                offset,
                error,
            } => Raw::Error(SourceError::fatal(
                Location::line(name, line, offset),
                format!("read error: {error}"),
            )),
        };
        chunk.lines.push(raw);
        if (chunk.lines.len() >= chunking.lines || chunk.buffer.len() >= CHUNK_BYTES)
            && !send(std::mem::take(&mut chunk))
        {
            return;
        }
    }
    if !chunk.lines.is_empty() {
        send(chunk);
    }
}

/// Parses one line into the compact form of `compactor`'s chunk; `Err`
/// carries the message.
fn parse_line(bytes: &[u8], compactor: &mut Compactor) -> Result<Input, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        format!(
            "line is not valid UTF-8 (byte {} of the line)",
            e.valid_up_to()
        )
    })?;
    // A line is one line of JSON: its column says where.
    compactor.compact_json(text).map_err(|e| match e {
        RecordError::Json { what, line, column } if line > 0 => format!("{what} (column {column})"),
        other => other.to_string(),
    })
}

impl Iterator for NdjsonReader {
    type Item = InputItem;

    fn next(&mut self) -> Option<InputItem> {
        loop {
            if let Some(item) = self.current.next() {
                return Some(item);
            }
            let parsed = self.ordered.recv().ok()?;
            // A parser drops its sender only after sending.
            self.current = parsed.recv().ok()?.into_iter();
        }
    }
}
