//! A line reader with a bounded buffer: it never holds more than `max_line`
//! bytes of one line, skips the rest of an over-long line without storing it,
//! and reports every line with its 1-based number and the byte offset of its
//! start.

use std::io::{BufRead, ErrorKind};

/// One step of [`LineReader::next_line`].
#[derive(Debug)]
pub(crate) enum Line<'a> {
    /// A non-blank line (without its `\n` or `\r\n`).
    Text {
        line: u64,
        offset: u64,
        bytes: &'a [u8],
    },
    /// A line longer than the limit; its bytes were skipped, not stored.
    TooLong { line: u64, offset: u64, len: u64 },
    /// The underlying reader failed (gzip corruption, I/O error). Fatal.
    Failed {
        line: u64,
        offset: u64,
        error: std::io::Error,
    },
}

/// Capacity kept between lines; a larger buffer (left by a long line) is
/// shrunk back so that memory stays constant over the stream.
const KEEP_CAPACITY: usize = 1 << 20;

pub(crate) struct LineReader<R> {
    reader: R,
    max_line: usize,
    buf: Vec<u8>,
    /// Number of the next line to read (1-based).
    next_line: u64,
    /// Byte offset of the next line's start.
    next_offset: u64,
    done: bool,
}

impl<R: BufRead> LineReader<R> {
    /// `first_line`/`first_offset`: where `reader` starts in the stream
    /// (when a caller has already consumed leading bytes).
    pub(crate) fn new(reader: R, max_line: usize, first_line: u64, first_offset: u64) -> Self {
        LineReader {
            reader,
            max_line,
            buf: Vec::new(),
            next_line: first_line,
            next_offset: first_offset,
            done: false,
        }
    }

    /// The next non-blank line, `None` at the end of the input (and after a
    /// `Failed`).
    pub(crate) fn next_line(&mut self) -> Option<Line<'_>> {
        loop {
            if self.done {
                return None;
            }
            if self.buf.capacity() > KEEP_CAPACITY {
                self.buf = Vec::new();
            }
            self.buf.clear();
            let line = self.next_line;
            let offset = self.next_offset;
            // Total bytes of this line including the newline.
            let mut len: u64 = 0;
            let mut too_long = false;
            let mut saw_newline = false;
            loop {
                let available = match self.reader.fill_buf() {
                    Ok(b) => b,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(error) => {
                        self.done = true;
                        return Some(Line::Failed {
                            line,
                            offset,
                            error,
                        });
                    }
                };
                if available.is_empty() {
                    self.done = true;
                    break;
                }
                let (take, found) = match memchr::memchr(b'\n', available) {
                    Some(i) => (i + 1, true),
                    None => (available.len(), false),
                };
                let content = if found {
                    &available[..take - 1]
                } else {
                    available
                };
                if !too_long {
                    if self.buf.len() + content.len() > self.max_line {
                        too_long = true;
                        self.buf.clear();
                    } else {
                        self.buf.extend_from_slice(content);
                    }
                }
                self.reader.consume(take);
                len += take as u64;
                if found {
                    saw_newline = true;
                    break;
                }
            }
            if len == 0 {
                return None;
            }
            self.next_line += 1;
            self.next_offset += len;
            if too_long {
                let content_len = len - u64::from(saw_newline);
                return Some(Line::TooLong {
                    line,
                    offset,
                    len: content_len,
                });
            }
            if self.buf.last() == Some(&b'\r') {
                self.buf.pop();
            }
            let mut start = 0;
            if line == 1 && self.buf.starts_with(b"\xEF\xBB\xBF") {
                start = 3;
            }
            if self.buf[start..].iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            return Some(Line::Text {
                line,
                offset,
                bytes: &self.buf[start..],
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(input: &[u8], max: usize) -> Vec<String> {
        let mut r = LineReader::new(input, max, 1, 0);
        let mut out = Vec::new();
        while let Some(l) = r.next_line() {
            out.push(match l {
                Line::Text {
                    line,
                    offset,
                    bytes,
                } => format!("{line}@{offset}:{}", String::from_utf8_lossy(bytes)),
                Line::TooLong { line, offset, len } => format!("{line}@{offset}:long {len}"),
                Line::Failed { line, .. } => format!("{line}:failed"),
            });
        }
        out
    }

    #[test]
    fn numbers_offsets_blank_lines_and_crlf() {
        let got = collect(b"ab\r\n\n  \ncd\nef", 100);
        assert_eq!(got, ["1@0:ab", "4@8:cd", "5@11:ef"]);
    }

    #[test]
    fn long_lines_are_skipped_and_reading_continues() {
        let got = collect(b"abc\n0123456789\nxy\n", 5);
        assert_eq!(got, ["1@0:abc", "2@4:long 10", "3@15:xy"]);
        // exactly at the limit is fine
        assert_eq!(collect(b"12345\n", 5), ["1@0:12345"]);
        assert_eq!(collect(b"123456", 5), ["1@0:long 6"]);
    }

    #[test]
    fn bom_is_stripped_on_the_first_line_only() {
        let got = collect(b"\xEF\xBB\xBFab\n\xEF\xBB\xBFcd\n", 100);
        assert_eq!(got[0], "1@0:ab");
        assert_ne!(got[1], "2@6:cd");
    }

    #[test]
    fn small_reads_across_buffer_boundaries() {
        let data = b"first line\nsecond\n\nthird line here\n".to_vec();
        let reader = std::io::BufReader::with_capacity(3, &data[..]);
        let mut r = LineReader::new(reader, 1000, 1, 0);
        let mut got = Vec::new();
        while let Some(Line::Text {
            line,
            offset,
            bytes,
        }) = r.next_line()
        {
            got.push((line, offset, bytes.to_vec()));
        }
        assert_eq!(
            got,
            vec![
                (1, 0, b"first line".to_vec()),
                (2, 11, b"second".to_vec()),
                (4, 19, b"third line here".to_vec())
            ]
        );
    }
}
