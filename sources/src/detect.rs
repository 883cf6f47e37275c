//! Format detection by content (never by file name).
//!
//! Order: gzip magic (then detection starts again on the decompressed
//! bytes) → binary formats (the replay log by its 8 magic bytes, then ETL)
//! → text: leading UTF-8 BOM and whitespace are skipped, then the first
//! JSON object is scanned just far enough to see a deciding key.

use std::io::{ErrorKind, Read};

use crate::callgraph::Analyser;

/// What an input turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// gzip-compressed; detection continues inside.
    Gzip,
    /// `tracemerge.stream.v1` NDJSON (DESIGN.md §3).
    Ndjson,
    /// A Stella Ops `stella.callgraph.v1` JSON document.
    StellaCallgraph,
    /// Stella Ops runtime facts, NDJSON of `RuntimeFactEvent`.
    StellaRuntimeFacts,
    /// Stella Ops runtime facts, the structured document
    /// `{subject, callgraphId, events[]}`.
    StellaRuntimeFactsDocument,
    /// A Windows ETW trace (.etl), decoded by crate tracemerge-etl.
    Etl,
    /// The binary replay log (.tmlog), read by [`crate::tmlog::Reader`].
    ReplayLog,
    /// A static call graph written by another analyser, read by
    /// [`crate::callgraph`].
    CallGraph(crate::callgraph::Analyser),
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Gzip => "gzip",
            Format::Ndjson => "tracemerge NDJSON",
            Format::StellaCallgraph => "stella.callgraph.v1 JSON",
            Format::StellaRuntimeFacts => "Stella runtime-facts NDJSON",
            Format::StellaRuntimeFactsDocument => "Stella runtime-facts JSON",
            Format::Etl => "ETW trace (.etl)",
            Format::ReplayLog => "replay log (.tmlog)",
            Format::CallGraph(analyser) => analyser.name(),
        }
    }
}

// Binary formats. Detection calls these on the first bytes of the
// (decompressed) input, before any text detection, whenever the input does
// not start like text (`{`, `[`, whitespace, BOM).

/// ETL: the decoder's own check of the log-file header.
fn is_etl(prefix: &[u8]) -> bool {
    tracemerge_etl::is_etl(prefix)
}

/// Replay log: its magic bytes (the reader checks the version, so that an
/// unknown version is reported as such rather than as an unknown format).
fn is_replay_log(prefix: &[u8]) -> bool {
    crate::tmlog::has_magic(prefix)
}

/// How many bytes binary detection may look at.
const BINARY_PEEK: usize = 4096;
/// How far text detection reads when the first object is undecided.
pub(crate) const TEXT_PEEK: usize = 256 * 1024;

/// The first bytes of an input, read for detection; `prefix` is handed on
/// to the reader (chained before the rest), nothing is lost.
pub(crate) struct Peeked {
    pub prefix: Vec<u8>,
    /// Leading whitespace/BOM already dropped (not in `prefix`).
    pub skipped_bytes: u64,
    /// Newlines among the dropped bytes.
    pub skipped_lines: u64,
    pub eof: bool,
}

pub(crate) enum Detected {
    Format(Format),
    Empty,
    /// Content that is no known format; the message explains.
    Unknown(String),
}

/// One read of at most `max - prefix.len()` bytes appended to `prefix`;
/// true at end of input. One read only: a pipe is not waited on for more
/// than it has.
fn fill_once(reader: &mut dyn Read, prefix: &mut Vec<u8>, max: usize) -> std::io::Result<bool> {
    let mut chunk = [0u8; 8192];
    let n = max.saturating_sub(prefix.len()).min(chunk.len());
    loop {
        match reader.read(&mut chunk[..n]) {
            Ok(0) => return Ok(n > 0),
            Ok(got) => {
                prefix.extend_from_slice(&chunk[..got]);
                return Ok(false);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Reads until `prefix` holds `want` bytes or the input ends; true at end.
fn fill(reader: &mut dyn Read, prefix: &mut Vec<u8>, want: usize) -> std::io::Result<bool> {
    while prefix.len() < want {
        if fill_once(reader, prefix, want)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Reads what is needed to decide, and decides. Reads as little as it can:
/// a live NDJSON stream on stdin is decided by its first line.
pub(crate) fn detect(reader: &mut dyn Read) -> std::io::Result<(Peeked, Detected)> {
    let mut p = Peeked {
        prefix: Vec::new(),
        skipped_bytes: 0,
        skipped_lines: 0,
        eof: false,
    };
    p.eof = fill(reader, &mut p.prefix, 2)?;
    if p.prefix.is_empty() {
        return Ok((p, Detected::Empty));
    }
    if p.prefix.starts_with(&[0x1f, 0x8b]) {
        return Ok((p, Detected::Format(Format::Gzip)));
    }
    let texty = |b: u8| b == b'{' || b == b'[' || b.is_ascii_whitespace() || b == 0xEF;
    if !texty(p.prefix[0]) {
        // The magic alone decides a replay log, so a live one on a pipe is
        // not held up waiting for more bytes.
        if !p.eof {
            p.eof = fill(reader, &mut p.prefix, crate::tmlog::MAGIC.len())?;
        }
        if is_replay_log(&p.prefix) {
            return Ok((p, Detected::Format(Format::ReplayLog)));
        }
        if !p.eof {
            p.eof = fill(reader, &mut p.prefix, BINARY_PEEK)?;
        }
        if let Some(analyser) = crate::callgraph::detect_text(&p.prefix) {
            return Ok((p, Detected::Format(Format::CallGraph(analyser))));
        }
        if is_etl(&p.prefix) {
            return Ok((p, Detected::Format(Format::Etl)));
        }
        let d = Detected::Unknown(describe_unknown(&p.prefix));
        return Ok((p, d));
    }
    // Text: drop a BOM and leading whitespace, keeping count.
    if p.prefix[0] == 0xEF && !p.eof {
        p.eof = fill(reader, &mut p.prefix, 3)?;
    }
    if p.prefix.starts_with(b"\xEF\xBB\xBF") {
        p.prefix.drain(..3);
        p.skipped_bytes += 3;
    } else if p.prefix[0] == 0xEF {
        let d = Detected::Unknown(describe_unknown(&p.prefix));
        return Ok((p, d));
    }
    loop {
        let ws = p
            .prefix
            .iter()
            .take_while(|b| b.is_ascii_whitespace())
            .count();
        p.skipped_lines += p.prefix[..ws].iter().filter(|&&b| b == b'\n').count() as u64;
        p.skipped_bytes += ws as u64;
        p.prefix.drain(..ws);
        if !p.prefix.is_empty() {
            break;
        }
        if p.eof {
            return Ok((p, Detected::Empty));
        }
        let len = p.prefix.len();
        p.eof = fill_once(reader, &mut p.prefix, len + 8192)?;
    }
    match p.prefix[0] {
        b'{' => {}
        b'[' => {
            return Ok((
                p,
                Detected::Unknown(
                    "a JSON array is not a supported input (expected tracemerge NDJSON, \
                     a stella.callgraph.v1 document or Stella runtime facts)"
                        .into(),
                ),
            ))
        }
        _ => {
            if !p.eof {
                p.eof = fill(reader, &mut p.prefix, BINARY_PEEK)?;
            }
            if let Some(analyser) = crate::callgraph::detect_text(&p.prefix) {
                return Ok((p, Detected::Format(Format::CallGraph(analyser))));
            }
            let d = Detected::Unknown(describe_unknown(&p.prefix));
            return Ok((p, d));
        }
    }
    loop {
        match scan(&p.prefix) {
            Scan::Decided(f) => return Ok((p, Detected::Format(f))),
            Scan::Invalid => return Ok((p, Detected::Format(Format::Ndjson))),
            Scan::Complete {
                multiline,
                end,
                graph_keys: true,
                ..
            } => {
                // `nodes` and `edges` without `schema`: a legacy callgraph
                // document if nothing follows the object; a (bad) NDJSON
                // record if more lines follow it.
                let rest = &p.prefix[end..];
                if !rest.iter().all(u8::is_ascii_whitespace) {
                    let f = if multiline {
                        Format::StellaCallgraph
                    } else {
                        Format::Ndjson
                    };
                    return Ok((p, Detected::Format(f)));
                }
                if p.eof || p.prefix.len() >= TEXT_PEEK {
                    return Ok((p, Detected::Format(Format::StellaCallgraph)));
                }
            }
            Scan::Complete {
                end,
                string_lists: true,
                ..
            } if p.prefix[end..].iter().all(u8::is_ascii_whitespace) => {
                return Ok((p, Detected::Format(Format::CallGraph(Analyser::Pycg))));
            }
            Scan::Complete { multiline, .. } => {
                // An object without a deciding key. On one line it is taken
                // as a (bad) NDJSON record, so the error names the line and
                // a reader that keeps going can skip it.
                if multiline {
                    return Ok((
                        p,
                        Detected::Unknown(
                            "a JSON document that is neither stella.callgraph.v1 (no `schema`, \
                             `nodes`/`edges`), Stella runtime facts (no `events`) nor a PyCG \
                             call graph (not every value is an array of names)"
                                .into(),
                        ),
                    ));
                }
                return Ok((p, Detected::Format(Format::Ndjson)));
            }
            Scan::Incomplete {
                pretty_nodes,
                string_lists,
            } => {
                // Undecided within the peek limit, or a truncated object:
                // a pretty-printed document with `nodes` is a callgraph,
                // one whose values so far are all arrays of strings is
                // PyCG's, anything else is read as NDJSON (errors per line).
                if p.eof || p.prefix.len() >= TEXT_PEEK {
                    let f = if pretty_nodes {
                        Format::StellaCallgraph
                    } else if string_lists {
                        Format::CallGraph(Analyser::Pycg)
                    } else {
                        Format::Ndjson
                    };
                    return Ok((p, Detected::Format(f)));
                }
            }
        }
        let len = p.prefix.len();
        p.eof = fill_once(reader, &mut p.prefix, (len + 8192).min(TEXT_PEEK))?;
    }
}

fn describe_unknown(prefix: &[u8]) -> String {
    let shown: String = prefix
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "unrecognised input format (starts with bytes {shown}); expected tracemerge NDJSON, \
         a tracemerge replay log (.tmlog), stella.callgraph.v1 JSON, Stella runtime-facts \
         NDJSON, an ETW trace (.etl), or any of these gzip-compressed"
    )
}

#[derive(Debug, PartialEq)]
enum Scan {
    Decided(Format),
    /// Not JSON as far as it goes.
    Invalid,
    /// The first object ended without a deciding key.
    Complete {
        multiline: bool,
        /// Index just after the object.
        end: usize,
        /// It has `nodes` and `edges` at the top.
        graph_keys: bool,
        /// It has keys and every value is an array of strings (PyCG's
        /// call graph).
        string_lists: bool,
    },
    /// The prefix ended inside the first object.
    Incomplete {
        /// A pretty-printed object (`{` alone on its line) with `nodes`.
        pretty_nodes: bool,
        /// Keys so far, each value an array of strings.
        string_lists: bool,
    },
}

/// Scans the first JSON object of `b` (which starts with `{`) for a
/// deciding key: `type` (tracemerge), `schema: "stella.callgraph…"` or
/// `sourceId` in an edge (callgraph), `symbolId` (runtime fact),
/// `events` with `callgraphId` (runtime-facts document).
fn scan(b: &[u8]) -> Scan {
    // Container stack: true for an object.
    let mut stack: Vec<bool> = Vec::new();
    let mut expect_key = false;
    // The depth-1 key whose value comes next, if it is one we look at.
    let mut pending: Option<String> = None;
    let mut keys: Vec<String> = Vec::new();
    let mut multiline = false;
    // Every depth-1 value so far is an array holding only strings.
    let mut string_lists = true;
    let mut i = 0;
    let decide_keys = |keys: &[String]| -> Option<Format> {
        let has = |k: &str| keys.iter().any(|x| x == k);
        if has("events") && has("callgraphId") {
            return Some(Format::StellaRuntimeFactsDocument);
        }
        None
    };
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\r' => i += 1,
            b'\n' => {
                multiline = true;
                i += 1;
            }
            b'{' | b'[' => {
                if !(stack.is_empty() || (stack.len() == 1 && c == b'[')) {
                    string_lists = false;
                }
                stack.push(c == b'{');
                expect_key = c == b'{';
                pending = None;
                i += 1;
            }
            b'}' | b']' => {
                if stack.pop() != Some(c == b'}') {
                    return Scan::Invalid;
                }
                pending = None;
                i += 1;
                if stack.is_empty() {
                    let has = |k: &str| keys.iter().any(|x| x == k);
                    let graph_keys = has("nodes") && has("edges");
                    return Scan::Complete {
                        multiline,
                        end: i,
                        graph_keys,
                        string_lists: string_lists && !keys.is_empty() && !graph_keys,
                    };
                }
            }
            b':' => {
                i += 1;
            }
            b',' => {
                expect_key = stack.last() == Some(&true);
                pending = None;
                i += 1;
            }
            b'"' => {
                let start = i + 1;
                let mut j = start;
                let mut escaped = false;
                loop {
                    match b.get(j) {
                        None => return incomplete(b, &keys, string_lists),
                        Some(b'\\') if !escaped => escaped = true,
                        Some(b'"') if !escaped => break,
                        Some(_) => escaped = false,
                    }
                    j += 1;
                }
                let text = String::from_utf8_lossy(&b[start..j]).into_owned();
                i = j + 1;
                if stack.is_empty() {
                    return Scan::Invalid;
                }
                if expect_key {
                    expect_key = false;
                    let depth = stack.len();
                    if depth == 1 {
                        match text.as_str() {
                            "type" => return Scan::Decided(Format::Ndjson),
                            "symbolId" | "symbol_id" => {
                                return Scan::Decided(Format::StellaRuntimeFacts)
                            }
                            "schema" => pending = Some(text.clone()),
                            _ => {}
                        }
                        keys.push(text);
                        if let Some(f) = decide_keys(&keys) {
                            return Scan::Decided(f);
                        }
                    } else if depth == 3 && (text == "sourceId" || text == "targetId") {
                        return Scan::Decided(Format::StellaCallgraph);
                    }
                } else {
                    if stack.len() != 2 {
                        string_lists = false;
                    }
                    if pending.take().is_some() && text.starts_with("stella.callgraph") {
                        return Scan::Decided(Format::StellaCallgraph);
                    }
                }
            }
            _ => {
                if stack.is_empty() || expect_key {
                    return Scan::Invalid;
                }
                // A number or literal: skip to the next delimiter.
                pending = None;
                string_lists = false;
                while i < b.len() && !b",]} \t\r\n".contains(&b[i]) {
                    if !(b[i].is_ascii_alphanumeric() || b"+-.".contains(&b[i])) {
                        return Scan::Invalid;
                    }
                    i += 1;
                }
            }
        }
    }
    incomplete(b, &keys, string_lists)
}

fn incomplete(b: &[u8], keys: &[String], string_lists: bool) -> Scan {
    let first_line = b.split(|&c| c == b'\n').next().unwrap_or(b);
    let pretty = first_line.len() < b.len() && first_line[1..].iter().all(u8::is_ascii_whitespace);
    Scan::Incomplete {
        pretty_nodes: pretty && keys.iter().any(|k| k == "nodes"),
        string_lists: string_lists && !keys.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detect_bytes(b: &[u8]) -> Detected {
        let mut r: &[u8] = b;
        detect(&mut r).unwrap().1
    }

    fn format_of(b: &[u8]) -> Option<Format> {
        match detect_bytes(b) {
            Detected::Format(f) => Some(f),
            _ => None,
        }
    }

    #[test]
    fn decides_by_content() {
        assert_eq!(
            format_of(b"{\"type\":\"watermark\",\"at\":1}\n"),
            Some(Format::Ndjson)
        );
        assert_eq!(
            format_of(b"{\"at\":1,\"nodes\":[\"a\"],\"edges\":[],\"type\":\"graph\"}"),
            Some(Format::Ndjson)
        );
        assert_eq!(
            format_of(b"\xEF\xBB\xBF\n\n  {\"symbolId\":\"a\",\"hitCount\":2}\n"),
            Some(Format::StellaRuntimeFacts)
        );
        assert_eq!(
            format_of(b"{\n  \"schema\": \"stella.callgraph.v1\",\n  \"id\": \"cg\""),
            Some(Format::StellaCallgraph)
        );
        assert_eq!(
            format_of(b"{\"id\":\"x\",\"nodes\":[{\"id\":\"a\"}],\"edges\":[{\"sourceId\":\"a\""),
            Some(Format::StellaCallgraph)
        );
        // legacy callgraph without schema, complete
        assert_eq!(
            format_of(b"{\"id\":\"x\",\"nodes\":[],\"edges\":[]}"),
            Some(Format::StellaCallgraph)
        );
        assert_eq!(
            format_of(b"{\"callgraphId\":\"cg\",\"subject\":{\"type\":\"x\"},\"events\":[]}"),
            Some(Format::StellaRuntimeFactsDocument)
        );
        assert_eq!(format_of(b"\x1f\x8b\x08\x00"), Some(Format::Gzip));
        assert_eq!(
            format_of(b"\x89TMLOG\r\n\x01\x00\x00\x00"),
            Some(Format::ReplayLog)
        );
        // any version: the reader names an unknown one
        assert_eq!(
            format_of(b"\x89TMLOG\r\n\x63\x00\x00\x00"),
            Some(Format::ReplayLog)
        );
        // not quite the magic
        assert_eq!(format_of(b"\x89TMLOG\n\n\x01\x00\x00\x00"), None);
    }

    #[test]
    fn legacy_callgraph_only_when_nothing_follows() {
        // a graph record whose `type` key is damaged, followed by more lines:
        // NDJSON, so that the other lines are still read
        assert_eq!(
            format_of(b"{\"tIpe\":\"graph\",\"nodes\":[\"a\"],\"edges\":[]}\n{\"type\":\"watermark\",\"at\":1}\n"),
            Some(Format::Ndjson)
        );
        assert_eq!(
            format_of(b"{\"id\":\"g\",\"nodes\":[],\"edges\":[]}\n\n"),
            Some(Format::StellaCallgraph)
        );
        // truncated pretty-printed document with nodes
        assert_eq!(
            format_of(b"{\n  \"id\": \"g\",\n  \"nodes\": [ {\"id\": \"a\"}"),
            Some(Format::StellaCallgraph)
        );
        // truncated single line: NDJSON (the line gets the error)
        assert_eq!(
            format_of(b"{\"id\": \"g\", \"nodes\": [ {\"id\": \"a\"}"),
            Some(Format::Ndjson)
        );
    }

    #[test]
    fn nested_keys_do_not_decide() {
        // `type` inside a nested object is not the record type
        assert_eq!(
            format_of(b"{\"symbol\":{\"type\":1},\"symbolId\":\"s\"}"),
            Some(Format::StellaRuntimeFacts)
        );
    }

    #[test]
    fn bad_first_lines_fall_back_to_ndjson_or_fail_clearly() {
        // malformed JSON on line 1: NDJSON, so the line gets its own error
        assert_eq!(
            format_of(b"{bad\n{\"type\":\"watermark\",\"at\":1}\n"),
            Some(Format::Ndjson)
        );
        assert_eq!(format_of(b"{\"foo\":1}\n"), Some(Format::Ndjson));
        assert!(matches!(detect_bytes(b""), Detected::Empty));
        assert!(matches!(detect_bytes(b" \n\r\n\t"), Detected::Empty));
        assert!(matches!(detect_bytes(b"\xEF\xBB\xBF"), Detected::Empty));
        for bad in [&b"hello\n"[..], b"[1,2]", b"\x00\x01\x02\x03", b"\xEF\x00"] {
            match detect_bytes(bad) {
                Detected::Unknown(m) => assert!(!m.is_empty()),
                _ => panic!("{bad:?} was recognised"),
            }
        }
        assert!(matches!(
            detect_bytes(b"{\n\"foo\": 1\n}\n"),
            Detected::Unknown(m) if m.contains("neither")
        ));
    }

    #[test]
    fn counts_skipped_whitespace() {
        let mut r: &[u8] = b"\n\n  {\"type\":\"watermark\",\"at\":1}";
        let (p, d) = detect(&mut r).unwrap();
        assert!(matches!(d, Detected::Format(Format::Ndjson)));
        assert_eq!((p.skipped_bytes, p.skipped_lines), (4, 2));
        assert!(p.prefix.starts_with(b"{"));
    }

    #[test]
    fn stops_reading_once_decided() {
        // A reader that fails after the first line: detection must not need more.
        struct Then<'a>(&'a [u8]);
        impl Read for Then<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.0.is_empty() {
                    return Err(std::io::Error::other("would block forever"));
                }
                let n = buf.len().min(self.0.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut r = Then(b"{\"type\":\"watermark\",\"at\":1}\n");
        let (_, d) = detect(&mut r).unwrap();
        assert!(matches!(d, Detected::Format(Format::Ndjson)));
        // a live replay log is decided by its magic
        let mut r = Then(b"\x89TMLOG\r\n");
        let (_, d) = detect(&mut r).unwrap();
        assert!(matches!(d, Detected::Format(Format::ReplayLog)));
    }
}
