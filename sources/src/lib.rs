//! Readers that turn outside files into the tracemerge record stream
//! (`tracemerge.stream.v1`, DESIGN.md §3).
//!
//! [`open`] detects the format by content, never by file name:
//!
//! | content | reader |
//! |---|---|
//! | gzip (magic `1f 8b`) | decompressed, then detected again |
//! | tracemerge NDJSON (first object has `type`) | [`Record::from_json`] per line |
//! | `stella.callgraph.v1` JSON document | one `graph` record (+ `edge` records, below) |
//! | Stella runtime-facts NDJSON (first object has `symbolId`) | `hit` records |
//! | Stella runtime-facts document (`{subject, callgraphId, events[]}`) | `hit` records |
//! | tracemerge replay log (magic `89 54 4D 4C 4F 47 0D 0A`) | [`tmlog::Reader`] |
//! | Windows ETW trace (.etl) | `tracemerge-etl` |
//!
//! [`tmlog`] also writes the replay log (`tracemerge convert`).
//!
//! [`open_all_inputs`] reads the same for the engine: `edge` and `hit`
//! records come in a compact form ([`Input`]), their names as indices into
//! a table (a replay log's own, or one per chunk of NDJSON lines), which
//! spares the engine a string per name.
//!
//! Every error names the file (`<stdin>` for `-`), the 1-based line and the
//! byte offset of the line start in the decompressed stream, or a JSON path
//! into a document, or for a replay log the 1-based block and the byte offset
//! of its start. NDJSON is read line by line with a bounded buffer
//! ([`Options::max_line`], 256 MiB): constant memory, and an over-long line is
//! skipped without being stored. A bad NDJSON line is one error item; the
//! iterator goes on with the next line, so the caller decides whether to stop.
//! Errors with [`SourceError::fatal`] set (I/O and decompression failures, bad
//! documents) end their input. JSON documents (Stella callgraph, runtime-facts
//! document) are parsed whole, up to 4 GiB.
//!
//! # Stella Ops mapping
//!
//! Formats as documented by Stella Ops (git.stella-ops.org,
//! `docs/signals/callgraph-formats.md`, `docs2/signals/callgraph-schema.md`,
//! `docs/reachability/runtime-facts.md`, `docs/api/signals/reachability-contract.md`).
//!
//! **Callgraph** (`stella.callgraph.v1`; a document without `schema` but with
//! `nodes` and `edges` is read as the legacy form):
//! - `artifact`: [`Options::artifact`] if given, else the graph's `id` (the
//!   callgraph id: in Stella it is what runtime facts refer to, via
//!   `callgraphId`), else `graphHash`; none of them is an error at `id`.
//! - `at`: [`Options::at`], else 0. `ingestedAt` is deliberately not used: it
//!   is when Stella stored the graph, not when the code began to run, and a
//!   snapshot dated at ingestion would leave earlier runtime evidence without
//!   a snapshot.
//! - `nodes[].id` → nodes (non-empty, unique); `edges[]` `sourceId`/`targetId`
//!   → caller/callee (must be nodes), `kind` (`static`|`heuristic`, any case),
//!   `reason` (string), `weight` (0.0–1.0) kept on the edge;
//!   `entrypoints[].nodeId` (or legacy `roots[].id`) → entrypoints (must be
//!   nodes). Everything else is ignored.
//! - An edge of kind `runtime` is runtime evidence, not static analysis: it is
//!   left out of the snapshot and becomes an `edge` record (hits 1, at = the
//!   graph's `at`, source `stella:callgraph`).
//!
//! **Runtime facts** (`RuntimeFactEvent`: `symbolId`, `hitCount`,
//! `observedAt`, `buildId`, `processId`, `containerId`, …; snake_case
//! spellings such as `symbol_id`, `hit_count` are accepted too):
//! - `symbol` ← `symbolId` (required, non-empty).
//! - `hits` ← `hitCount`, an integer 1..=2⁶³−1 (absent: 1).
//! - `at` ← `observedAt`: RFC 3339 string or epoch milliseconds; absent: the
//!   [`Options::at`] default, else an error (a hit needs a time).
//! - `artifact` ← [`Options::artifact`], else `callgraphId` (on the event, or
//!   the document's), else `buildId`, else `imageDigest` (the document's
//!   `subject.imageDigest`); none is an error.
//! - `source` ← `stella:` + host (`host`/`hostname`/`nodeName`, on the event
//!   or in `metadata`) and `container:<containerId>`, joined by `/`; the
//!   process (`pid:<processId>`) only when neither is known; `stella` when
//!   nothing is. Processes of one container are not separate sources, so a
//!   quorum counts hosts/containers, not restarts.
//! - Hits are summed per (artifact, symbol, source, observedAt ms), as Stella
//!   sums per `symbolId`, but keeping each observation time so that the
//!   engine's windows stay exact (summing across times would move old hits to
//!   the newest time). Sums are emitted in order of first appearance at the
//!   end of the input (or when 65,536 distinct keys are pending), located at
//!   their first event; a sum that would pass 2⁶³−1 is split.

pub mod callgraph;
mod detect;
mod lines;
mod ndjson;
mod stella;
pub mod time;
pub mod tmlog;

use std::fmt;
use std::io::{BufRead, BufReader, Cursor, Read};
use std::sync::Arc;

pub use detect::Format;
use tracemerge_records::Expander;
pub use tracemerge_records::{Input, Record};

/// The default and largest sensible line length: 256 MiB.
pub const MAX_LINE: usize = 256 << 20;

/// Where a record or an error comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// Display name: the path as given, `<stdin>` for `-`.
    pub file: Arc<str>,
    /// 1-based line; 0 when not line-oriented.
    pub line: u64,
    /// 1-based block of a replay log; 0 when not block-oriented.
    pub block: u64,
    /// Byte offset of the line or block start in the decompressed stream.
    pub offset: u64,
    /// JSON path inside a document or record, e.g. `edges[3].targetId`.
    pub path: Option<String>,
}

impl Location {
    // The file name is shared: a reader makes a location for every
    // record, and an `Arc` clone costs no allocation.
    pub fn file(file: impl Into<Arc<str>>) -> Location {
        Location {
            file: file.into(),
            line: 0,
            block: 0,
            offset: 0,
            path: None,
        }
    }

    pub fn line(file: impl Into<Arc<str>>, line: u64, offset: u64) -> Location {
        Location {
            line,
            offset,
            ..Location::file(file)
        }
    }

    /// Block `block` (1-based) of a replay log, starting at byte `offset`.
    pub fn block(file: impl Into<Arc<str>>, block: u64, offset: u64) -> Location {
        Location {
            block,
            offset,
            ..Location::file(file)
        }
    }

    pub fn with_path(mut self, path: impl Into<String>) -> Location {
        self.path = Some(path.into());
        self
    }
}

impl fmt::Display for Location {
    /// `file.ndjson:3 (byte 120)`, `cg.json: edges[3].targetId`,
    /// `facts.ndjson:2 (byte 40): hitCount`, `trace.tmlog: block 17 (byte 123456)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if self.line > 0 {
            write!(f, ":{} (byte {})", self.line, self.offset)?;
        } else if self.block > 0 {
            write!(f, ": block {} (byte {})", self.block, self.offset)?;
        }
        if let Some(path) = &self.path {
            write!(f, ": {path}")?;
        }
        Ok(())
    }
}

/// Bad input or a failed read, with where it happened.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {message}")]
pub struct SourceError {
    pub location: Location,
    pub message: String,
    /// The input cannot be read further (I/O or decompression failure, a bad
    /// document, unknown format). A non-fatal error concerns one line; the
    /// iterator goes on after it.
    pub fatal: bool,
}

impl SourceError {
    pub fn new(location: Location, message: impl Into<String>) -> SourceError {
        SourceError {
            location,
            message: message.into(),
            fatal: false,
        }
    }

    pub fn fatal(location: Location, message: impl Into<String>) -> SourceError {
        SourceError {
            location,
            message: message.into(),
            fatal: true,
        }
    }
}

/// One item of a record stream.
pub type Item = Result<(Location, Record), SourceError>;

/// A record stream.
pub type RecordStream = Box<dyn Iterator<Item = Item> + Send>;

/// One item of an input stream: a record, a sighting in its compact form,
/// or the names it refers to ([`Input`]), as the engine takes them.
pub type InputItem = Result<(Location, Input), SourceError>;

/// An input stream: what [`open_all_inputs`] reads, for the engine.
pub type InputStream = Box<dyn Iterator<Item = InputItem> + Send>;

/// The records of an input stream: compact sightings expanded.
fn expanded(inputs: InputStream) -> RecordStream {
    let mut expander = Expander::new();
    Box::new(inputs.filter_map(move |item| match item {
        Ok((location, input)) => Some(Ok((location, expander.expand(input)?))),
        Err(e) => Some(Err(e)),
    }))
}

/// A record stream as inputs.
fn whole(records: impl Iterator<Item = Item> + Send + 'static) -> InputStream {
    Box::new(records.map(|item| item.map(|(location, record)| (location, Input::from(record)))))
}

/// Settings for formats that do not carry everything a record needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Artifact of every record from Stella inputs (overrides the callgraph
    /// `id` and the runtime facts' `callgraphId`/`buildId`/`imageDigest`).
    /// tracemerge NDJSON is not changed.
    pub artifact: Option<String>,
    /// Time of records whose input has none: a Stella callgraph snapshot,
    /// runtime facts without `observedAt`.
    pub at: Option<u64>,
    /// Longest accepted NDJSON line in bytes (default [`MAX_LINE`]).
    pub max_line: usize,
    /// Entrypoints of a static call graph read from another analyser's
    /// output (default: `main` or `main.main` if present, else the
    /// functions nothing calls).
    pub entrypoints: Option<Vec<String>>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            artifact: None,
            at: None,
            max_line: MAX_LINE,
            entrypoints: None,
        }
    }
}

/// The display name of a path: `<stdin>` for `-`.
pub fn display_name(path: &str) -> String {
    if path == "-" {
        "<stdin>".to_string()
    } else {
        path.to_string()
    }
}

/// Opens a file (`-` is stdin) as a record stream, detecting its format.
pub fn open(path: &str) -> Result<RecordStream, SourceError> {
    open_with(path, &Options::default())
}

/// [`open`] with options.
pub fn open_with(path: &str, options: &Options) -> Result<RecordStream, SourceError> {
    open_inputs(path, options).map(expanded)
}

/// [`open_with`] as an input stream: sightings in their compact form.
pub fn open_inputs(path: &str, options: &Options) -> Result<InputStream, SourceError> {
    let name = display_name(path);
    if path == "-" {
        return open_detected(&name, Box::new(std::io::stdin()), options, 1, 0);
    }
    let file = std::fs::File::open(path).map_err(|e| {
        SourceError::fatal(Location::file(name.as_str()), format!("cannot open: {e}"))
    })?;
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(SourceError::fatal(
            Location::file(name.as_str()),
            "is a directory, not an input file",
        ));
    }
    open_detected(&name, Box::new(file), options, ndjson::CHUNK_LINES, 0)
}

/// Reads a record stream from any reader; `name` is used in locations. The
/// reader may be live (a pipe from a collector): every NDJSON line is
/// handed on as soon as it is read, not once a chunk of lines is full.
pub fn from_reader(
    name: &str,
    reader: impl Read + Send + 'static,
    options: &Options,
) -> Result<RecordStream, SourceError> {
    open_detected(name, Box::new(reader), options, 1, 0).map(expanded)
}

/// Detects the format of `reader` (for tools that want to say what a file is).
pub fn detect_format(reader: &mut dyn Read) -> Result<Option<Format>, std::io::Error> {
    Ok(match detect::detect(reader)?.1 {
        detect::Detected::Format(f) => Some(f),
        _ => None,
    })
}

/// Opens `reader` by its detected format. NDJSON lines are parsed in
/// chunks of `chunk_lines` on parser threads.
fn open_detected(
    name: &str,
    mut reader: Box<dyn Read + Send>,
    options: &Options,
    chunk_lines: usize,
    gzip_depth: u32,
) -> Result<InputStream, SourceError> {
    let (peeked, detected) = detect::detect(&mut *reader)
        .map_err(|e| SourceError::fatal(Location::line(name, 1, 0), format!("read error: {e}")))?;
    let first = Location::line(name, peeked.skipped_lines + 1, peeked.skipped_bytes);
    let format = match detected {
        detect::Detected::Empty => {
            let what = if gzip_depth > 0 {
                "empty input (the decompressed stream has no records)"
            } else {
                "empty input (no records)"
            };
            return Err(SourceError::fatal(Location::file(name), what));
        }
        detect::Detected::Unknown(message) => return Err(SourceError::fatal(first, message)),
        detect::Detected::Format(f) => f,
    };
    let start = (peeked.skipped_lines + 1, peeked.skipped_bytes);
    let rest: Box<dyn Read + Send> = Box::new(Cursor::new(peeked.prefix).chain(reader));
    open_format(name, rest, format, options, chunk_lines, gzip_depth, start)
}

/// Reads a record stream from any reader as the given format, without
/// detecting it (for a caller that knows what the input is). Gzip is
/// decompressed, then detected.
pub fn from_reader_as(
    name: &str,
    reader: impl Read + Send + 'static,
    format: Format,
    options: &Options,
) -> Result<RecordStream, SourceError> {
    open_format(name, Box::new(reader), format, options, 1, 0, (1, 0)).map(expanded)
}

/// Opens `rest` as `format`; its first byte is at `start` (line, offset).
fn open_format(
    name: &str,
    rest: Box<dyn Read + Send>,
    format: Format,
    options: &Options,
    chunk_lines: usize,
    gzip_depth: u32,
    (start_line, start_offset): (u64, u64),
) -> Result<InputStream, SourceError> {
    match format {
        detect::Format::Gzip => {
            if gzip_depth >= 3 {
                return Err(SourceError::fatal(
                    Location::file(name),
                    "gzip nested more than 3 levels deep",
                ));
            }
            let decoder = flate2::read::MultiGzDecoder::new(rest);
            open_detected(
                name,
                Box::new(decoder),
                options,
                chunk_lines,
                gzip_depth + 1,
            )
        }
        detect::Format::Ndjson => {
            let buffered: Box<dyn BufRead + Send> =
                Box::new(BufReader::with_capacity(64 << 10, rest));
            Ok(Box::new(ndjson::NdjsonReader::new(
                name,
                buffered,
                options.max_line,
                chunk_lines,
                (start_line, start_offset),
            )))
        }
        detect::Format::StellaRuntimeFacts => {
            let buffered: Box<dyn BufRead + Send> =
                Box::new(BufReader::with_capacity(64 << 10, rest));
            Ok(whole(stella::RuntimeFactsReader::new(
                name,
                buffered,
                options,
                start_line,
                start_offset,
            )))
        }
        detect::Format::StellaCallgraph => Ok(whole(
            stella::read_callgraph(name, rest, options, start_line, start_offset).into_iter(),
        )),
        detect::Format::StellaRuntimeFactsDocument => Ok(whole(
            stella::read_runtime_facts_document(name, rest, options, start_line, start_offset)
                .into_iter(),
        )),
        detect::Format::Etl => read_etl(name, rest).map(whole),
        detect::Format::ReplayLog => Ok(Box::new(ReplayLogItems(tmlog::Reader::new(name, rest)?))),
        detect::Format::CallGraph(analyser) => {
            let imported = import_program(vec![(name.to_string(), analyser, rest)], options)?;
            Ok(whole(std::iter::once(Ok((
                Location::file(name),
                Record::Graph(imported.graph),
            )))))
        }
    }
}

/// The analyser whose call graph `path` holds, if it is one (stdin is
/// never peeked: it cannot be read twice).
fn call_graph_analyser(path: &str) -> Option<callgraph::Analyser> {
    if path == "-" {
        return None;
    }
    let mut file = std::fs::File::open(path).ok()?;
    match detect::detect(&mut file).ok()?.1 {
        detect::Detected::Format(detect::Format::CallGraph(analyser)) => Some(analyser),
        _ => None,
    }
}

/// Reads the call-graph files of one program into its `graph` record
/// (artifact and time from `options`, which must name the artifact).
pub fn import_program(
    files: Vec<(String, callgraph::Analyser, Box<dyn Read + Send>)>,
    options: &Options,
) -> Result<callgraph::Imported, SourceError> {
    let first = files.first().map_or("<none>", |f| f.0.as_str()).to_string();
    let Some(artifact) = &options.artifact else {
        return Err(SourceError::fatal(
            Location::file(first.as_str()),
            format!(
                "a static call graph ({}) names no artifact: give --artifact NAME \
                 (the artifact of the runtime records, e.g. build-id:… from `probe`)",
                files[0].1.name()
            ),
        ));
    };
    let mut program = callgraph::ProgramGraph::default();
    for (name, analyser, reader) in files {
        program.read(analyser, &name, reader).map_err(|e| {
            let location = Location::file(e.file.as_str());
            if e.line > 0 {
                SourceError::fatal(location, format!("line {}: {}", e.line, e.what))
            } else {
                SourceError::fatal(location, e.what)
            }
        })?;
    }
    program
        .finish(
            artifact,
            options.at.unwrap_or(0),
            options.entrypoints.as_deref(),
        )
        .map_err(|e| SourceError::fatal(Location::file(first.as_str()), e.to_string()))
}

/// Opens the next input of `paths`; a run of consecutive static call-graph
/// files is one program, read into one `graph` record.
fn open_next(
    paths: &mut std::collections::VecDeque<String>,
    options: &Options,
) -> Option<Result<InputStream, SourceError>> {
    let path = paths.pop_front()?;
    let Some(analyser) = call_graph_analyser(&path) else {
        return Some(open_inputs(&path, options));
    };
    let mut group = vec![(path, analyser)];
    while let Some(next) = paths.front() {
        match call_graph_analyser(next) {
            Some(analyser) => group.push((paths.pop_front()?, analyser)),
            None => break,
        }
    }
    let first = group[0].0.clone();
    let mut files = Vec::with_capacity(group.len());
    for (path, analyser) in group {
        let name = display_name(&path);
        match std::fs::File::open(&path) {
            Ok(file) => files.push((name, analyser, Box::new(file) as Box<dyn Read + Send>)),
            Err(e) => {
                return Some(Err(SourceError::fatal(
                    Location::file(name.as_str()),
                    format!("cannot open: {e}"),
                )))
            }
        }
    }
    Some(import_program(files, options).map(|imported| {
        whole(std::iter::once(Ok((
            Location::file(first.as_str()),
            Record::Graph(imported.graph),
        ))))
    }))
}

/// A replay log's items, each located at its block.
struct ReplayLogItems(tmlog::Reader<Box<dyn Read + Send>>);

impl Iterator for ReplayLogItems {
    type Item = InputItem;

    fn next(&mut self) -> Option<InputItem> {
        let input = self.0.next()?;
        Some(input.map(|input| (self.0.location(), input)))
    }
}

/// Decodes a whole ETW trace into its edge records (then a watermark). The
/// records of the buffers before any damage come first; the damage follows
/// as a fatal error naming the buffer and byte offset.
fn read_etl(name: &str, mut reader: Box<dyn Read + Send>) -> Result<RecordStream, SourceError> {
    let mut data = Vec::new();
    reader
        .read_to_end(&mut data)
        .map_err(|e| SourceError::fatal(Location::file(name), format!("read error: {e}")))?;
    let options = tracemerge_etl::ImportOptions::default();
    let trace = tracemerge_etl::Trace::decode_with(&data, &options.decode)
        .map_err(|e| SourceError::fatal(Location::file(name), e.to_string()))?;
    let import = tracemerge_etl::edges::edges(trace, name, &options, None);
    let records = import
        .records
        .into_iter()
        .map(|r| Ok((Location::file(name), r)));
    let damage = import
        .damage
        .into_iter()
        .take(1)
        .map(|e| Err(SourceError::fatal(Location::file(name), e.to_string())));
    Ok(Box::new(
        records.chain(damage).collect::<Vec<_>>().into_iter(),
    ))
}

/// Several inputs chained into one stream, in the given order. Every path is
/// checked to exist up front; each file is opened when the previous one ends.
/// An error opening a later file (empty, unknown format, …) is yielded as a
/// fatal item and the chain goes on with the next file.
pub fn open_all(paths: &[String], options: &Options) -> Result<RecordStream, SourceError> {
    open_all_inputs(paths, options).map(expanded)
}

/// [`open_all`] as an input stream, for the engine: sightings in their
/// compact form.
pub fn open_all_inputs(paths: &[String], options: &Options) -> Result<InputStream, SourceError> {
    if paths.is_empty() {
        return Err(SourceError::fatal(
            Location::file("<none>"),
            "no input files given",
        ));
    }
    if paths.iter().filter(|p| *p == "-").count() > 1 {
        return Err(SourceError::fatal(
            Location::file("<stdin>"),
            "stdin (-) given more than once",
        ));
    }
    for path in paths.iter().filter(|p| *p != "-") {
        if let Err(e) = std::fs::metadata(path) {
            return Err(SourceError::fatal(
                Location::file(path.as_str()),
                format!("cannot open: {e}"),
            ));
        }
    }
    let mut rest: std::collections::VecDeque<String> = paths.iter().cloned().collect();
    let first = open_next(&mut rest, options).expect("paths is not empty")?;
    Ok(Box::new(Chain {
        current: Some(first),
        rest,
        options: options.clone(),
    }))
}

struct Chain {
    current: Option<InputStream>,
    rest: std::collections::VecDeque<String>,
    options: Options,
}

impl Iterator for Chain {
    type Item = InputItem;

    fn next(&mut self) -> Option<InputItem> {
        loop {
            if let Some(current) = &mut self.current {
                if let Some(item) = current.next() {
                    return Some(item);
                }
                self.current = None;
            }
            match open_next(&mut self.rest, &self.options)? {
                Ok(stream) => self.current = Some(stream),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// The JSON type of a value, for messages.
pub(crate) fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// serde_json appends ` at line 1 column N` to messages about a single line;
/// the line is already in the location, so only the column is kept.
pub(crate) fn clean_json_message(message: &str) -> String {
    if let Some(i) = message.rfind(" at line ") {
        if let Some(col) = message[i..].split(" column ").nth(1) {
            if col.bytes().all(|b| b.is_ascii_digit()) && !col.is_empty() {
                return format!("{} (column {col})", &message[..i]);
            }
        }
    }
    message.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_display() {
        assert_eq!(
            Location::line("file.ndjson", 3, 120).to_string(),
            "file.ndjson:3 (byte 120)"
        );
        assert_eq!(
            Location::file("cg.json")
                .with_path("edges[3].targetId")
                .to_string(),
            "cg.json: edges[3].targetId"
        );
        assert_eq!(
            Location::line("f", 2, 40).with_path("hitCount").to_string(),
            "f:2 (byte 40): hitCount"
        );
        assert_eq!(
            Location::block("trace.tmlog", 17, 123456).to_string(),
            "trace.tmlog: block 17 (byte 123456)"
        );
        assert_eq!(display_name("-"), "<stdin>");
        let e = SourceError::new(Location::line("a", 1, 0), "bad");
        assert_eq!(e.to_string(), "a:1 (byte 0): bad");
    }

    #[test]
    fn json_message_cleanup() {
        assert_eq!(
            clean_json_message("expected value at line 1 column 5"),
            "expected value (column 5)"
        );
        assert_eq!(clean_json_message("duplicate node"), "duplicate node");
    }
}
