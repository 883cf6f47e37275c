//! The tracemerge NDJSON record stream (`tracemerge.stream.v1`).

use std::io::BufRead;

use crate::lines::{Line, LineReader};
use crate::{clean_json_message, Item, Location, SourceError};
use tracemerge_records::Record;

pub(crate) struct NdjsonReader {
    name: String,
    lines: LineReader<Box<dyn BufRead + Send>>,
    max_line: usize,
}

impl NdjsonReader {
    pub(crate) fn new(
        name: &str,
        reader: Box<dyn BufRead + Send>,
        max_line: usize,
        first_line: u64,
        first_offset: u64,
    ) -> Self {
        NdjsonReader {
            name: name.to_string(),
            lines: LineReader::new(reader, max_line, first_line, first_offset),
            max_line,
        }
    }
}

/// Parses one line; `Err` carries the message.
pub(crate) fn parse_line(bytes: &[u8]) -> Result<Record, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        format!(
            "line is not valid UTF-8 (byte {} of the line)",
            e.valid_up_to()
        )
    })?;
    Record::from_json(text).map_err(|m| clean_json_message(&m))
}

impl Iterator for NdjsonReader {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        let max_line = self.max_line;
        Some(match self.lines.next_line()? {
            Line::Text {
                line,
                offset,
                bytes,
            } => {
                let location = Location::line(&self.name, line, offset);
                match parse_line(bytes) {
                    Ok(record) => Ok((location, record)),
                    Err(message) => Err(SourceError::new(location, message)),
                }
            }
            Line::TooLong { line, offset, len } => Err(SourceError::new(
                Location::line(&self.name, line, offset),
                format!(
                    "line is {len} bytes long, longer than the limit of {max_line} bytes; skipped"
                ),
            )),
            Line::Failed {
                line,
                offset,
                error,
            } => Err(SourceError::fatal(
                Location::line(&self.name, line, offset),
                format!("read error: {error}"),
            )),
        })
    }
}
