//! `tracemerge convert`: rewrite record streams (any input the sources crate
//! reads, detected by content, static call graphs of other analysers
//! included) as NDJSON or as a binary replay log (.tmlog).

use crate::error::CliError;
use std::fs::File;
use std::io::{self, BufWriter, ErrorKind, Write};
use std::path::Path;
use std::process::ExitCode;

use flate2::write::GzEncoder;
use tracemerge_records::Record;
use tracemerge_sources::tmlog;

/// What `convert` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// `tracemerge.stream.v1` NDJSON, one record per line.
    Ndjson,
    /// The binary replay log.
    Tmlog,
}

/// The output format and whether to gzip it: `--to` if given, else the
/// name (`.ndjson`/`.jsonl`/`.tmlog`, each optionally `.gz`).
fn output_format(output: &str, to: Option<OutputFormat>) -> Result<(OutputFormat, bool), CliError> {
    let lower = output.to_ascii_lowercase();
    let (stem, gzip) = match lower.strip_suffix(".gz") {
        Some(stem) => (stem, true),
        None => (lower.as_str(), false),
    };
    let by_name = if stem.ends_with(".tmlog") {
        Some(OutputFormat::Tmlog)
    } else if stem.ends_with(".ndjson") || stem.ends_with(".jsonl") {
        Some(OutputFormat::Ndjson)
    } else {
        None
    };
    match (to.or(by_name), output) {
        (Some(format), _) => Ok((format, gzip)),
        (None, "-") => Err(CliError::StdoutNeedsFormat),
        (None, _) => Err(CliError::UnknownOutputFormat {
            output: output.to_string(),
        }),
    }
}

/// The output file or stdout, buffered, optionally gzip-compressed.
enum Sink {
    Plain(BufWriter<Box<dyn Write>>),
    Gzip(GzEncoder<BufWriter<Box<dyn Write>>>),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Plain(w) => w.write(buf),
            Sink::Gzip(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Plain(w) => w.flush(),
            Sink::Gzip(w) => w.flush(),
        }
    }
}

impl Sink {
    /// Writes the gzip trailer, if any, and flushes.
    fn finish(self) -> io::Result<()> {
        match self {
            Sink::Plain(mut w) => w.flush(),
            Sink::Gzip(w) => w.finish()?.flush(),
        }
    }
}

/// Writes records in the chosen format.
enum RecordWriter {
    Ndjson(Sink),
    Tmlog(tmlog::Writer<Sink>),
}

impl RecordWriter {
    fn write(&mut self, record: &Record) -> io::Result<()> {
        match self {
            RecordWriter::Ndjson(out) => {
                out.write_all(record.to_json().as_bytes())?;
                out.write_all(b"\n")
            }
            RecordWriter::Tmlog(log) => log.write(record),
        }
    }

    fn finish(self) -> io::Result<()> {
        match self {
            RecordWriter::Ndjson(out) => out.finish(),
            RecordWriter::Tmlog(log) => log.finish()?.finish(),
        }
    }
}

/// Refuses an output that is one of the inputs: creating it would empty the
/// input before it is read.
fn check_not_an_input(output: &str, inputs: &[String]) -> Result<(), CliError> {
    let Ok(out) = Path::new(output).canonicalize() else {
        return Ok(()); // does not exist yet
    };
    for input in inputs.iter().filter(|i| *i != "-") {
        if Path::new(input).canonicalize().is_ok_and(|i| i == out) {
            return Err(CliError::OutputIsInput {
                output: output.to_string(),
            });
        }
    }
    Ok(())
}

/// `tracemerge convert`.
pub fn run(
    inputs: Vec<String>,
    output: String,
    to: Option<OutputFormat>,
    static_graph: crate::args::StaticGraphArgs,
) -> Result<ExitCode, CliError> {
    let (format, gzip) = output_format(&output, to)?;
    if output != "-" {
        check_not_an_input(&output, &inputs)?;
    }
    // Inputs first: a missing or unreadable input leaves no output behind.
    let stream = tracemerge_sources::open_all(&inputs, &static_graph.source_options())?;
    let out_name = if output == "-" {
        "<stdout>".to_string()
    } else {
        output.clone()
    };
    let raw: Box<dyn Write> = if output == "-" {
        Box::new(io::stdout())
    } else {
        Box::new(File::create(&output).map_err(|e| CliError::io(&output, e))?)
    };
    let buffered = BufWriter::with_capacity(1 << 20, raw);
    let sink = if gzip {
        Sink::Gzip(GzEncoder::new(buffered, flate2::Compression::default()))
    } else {
        Sink::Plain(buffered)
    };
    let out_error = |e: io::Error| CliError::output(out_name.as_str(), e);
    let mut writer = match format {
        OutputFormat::Ndjson => RecordWriter::Ndjson(sink),
        OutputFormat::Tmlog => RecordWriter::Tmlog(tmlog::Writer::new(sink).map_err(out_error)?),
    };
    let mut written: u64 = 0;
    let mut input_error = None;
    for item in stream {
        let (location, record) = match item {
            Ok(item) => item,
            Err(e) => {
                input_error = Some(CliError::from(e));
                break;
            }
        };
        match writer.write(&record) {
            Ok(()) => written += 1,
            // A reader that stopped early (`| head`) is not an error.
            Err(e) if e.kind() == ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
            // The log refuses a record no reader would accept.
            Err(e) if e.kind() == ErrorKind::InvalidInput => {
                input_error = Some(CliError::BadRecord {
                    location: location.to_string(),
                    source: e,
                });
                break;
            }
            Err(e) => return Err(out_error(e)),
        }
    }
    // What came before a bad record is kept, as a complete file.
    match writer.finish() {
        Err(e) if e.kind() == ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
        result => result.map_err(out_error)?,
    }
    match input_error {
        None => Ok(ExitCode::SUCCESS),
        Some(e) => Err(CliError::Stopped {
            source: Box::new(e),
            output: out_name,
            written,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_from_to_or_name() {
        use OutputFormat::*;
        assert_eq!(output_format("a.tmlog", None).ok(), Some((Tmlog, false)));
        assert_eq!(output_format("a.TMLOG.gz", None).ok(), Some((Tmlog, true)));
        assert_eq!(output_format("a.ndjson", None).ok(), Some((Ndjson, false)));
        assert_eq!(
            output_format("a.ndjson.gz", None).ok(),
            Some((Ndjson, true))
        );
        assert_eq!(output_format("a.jsonl", None).ok(), Some((Ndjson, false)));
        assert_eq!(
            output_format("a.tmlog", Some(Ndjson)).ok(),
            Some((Ndjson, false))
        );
        assert_eq!(output_format("-", Some(Tmlog)).ok(), Some((Tmlog, false)));
        assert!(output_format("-", None)
            .unwrap_err()
            .to_string()
            .contains("--to"));
        assert!(output_format("a.txt", None)
            .unwrap_err()
            .to_string()
            .contains("a.txt"));
        assert!(output_format("a.gz", None).is_err());
    }
}
