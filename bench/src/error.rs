//! Why a suite (or the memory suite's child) failed. A suite's error goes
//! into the results as `{"error": message}`; `tracemerge bench` formats
//! the setup's errors once, at the edge.

use std::num::ParseIntError;
use std::path::PathBuf;
use std::process::ExitStatus;

use tracemerge_dataflow::RunError;
use tracemerge_records::Time;

/// The error of a record the engine was fed, kept whole: the suites feed
/// generated records (which cannot fail), or a replay file's
/// ([`tracemerge_sources::SourceError`]).
pub type RecordError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The engine stopped early: a bad record (with its location), a
    /// worker that failed, or a fault.
    #[error(transparent)]
    Run(#[from] RunError<RecordError>),
    /// The engine ended without a final report.
    #[error("the engine gave no final report")]
    NoFinalReport,
    /// The engine's frontier did not reach `time` within the hour.
    #[error("the engine stopped or took over an hour to reach {time}")]
    EngineStalled { time: Time },
    /// The engine's thread panicked.
    #[error("the engine thread panicked")]
    EnginePanicked,
    /// A generated workload without the detached region `cascade` flips.
    #[error("no detached region")]
    NoDetachedRegion,
    /// A file or directory that cannot be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// An operating-system call that failed: what it was (`wait4`, `BPF
    /// lock`, `child stdout`, ...).
    #[error("{what}: {source}")]
    Os {
        what: &'static str,
        source: std::io::Error,
    },
    /// A program that could not be started.
    #[error("{program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    /// A program that failed: its command line, exit status and the last
    /// lines of its standard error.
    #[error("{command} failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: ExitStatus,
        stderr: String,
    },
    /// An LLVM tool that failed on one input.
    #[error("{tool} on {input} failed")]
    ToolFailed { tool: String, input: String },
    /// The Lua host failed on the script (its standard error).
    #[error("{} {}: {stderr}", exe.display(), script.display())]
    ScriptFailed {
        exe: PathBuf,
        script: PathBuf,
        stderr: String,
    },
    /// A probed program that exited with an error.
    #[error("{} exited with {code}", exe.display())]
    Exited { exe: PathBuf, code: i32 },
    /// JSON that cannot be read: what it was (a file, `cargo metadata`, the
    /// child's task or result).
    #[error("{what}: {source}")]
    Json {
        what: String,
        source: serde_json::Error,
    },
    /// `cargo metadata` without a crate the research suite vendors.
    #[error("cargo metadata does not list {name}")]
    MissingCrate { name: &'static str },
    /// A line of `nm` output with a bad address or size.
    #[error("nm: {line}: {source}")]
    NmLine { line: String, source: ParseIntError },
    /// The ground-truth tracer's table overflowed.
    #[error("{}: the tracer's table overflowed ({dropped} calls dropped)", path.display())]
    TracerOverflow { path: PathBuf, dropped: String },
    /// A tracer dump line with a bad address (1-based line).
    #[error("{}:{line}: {source}", path.display())]
    TracerNumber {
        path: PathBuf,
        line: usize,
        source: ParseIntError,
    },
    /// A tracer dump line that is not one (1-based line).
    #[error("{}:{line}: not a tracer line", path.display())]
    TracerLine { path: PathBuf, line: usize },
    /// The memory child's task variable is not set.
    #[error("{} is not set", crate::CHILD_ENV)]
    NoChildTask,
    /// The memory child's task lacks a number.
    #[error("{}: no {key}", crate::CHILD_ENV)]
    ChildTaskKey { key: &'static str },
    /// A memory child that failed: its wait status and the last lines of
    /// its standard error.
    #[error("memory child failed (wait status {status}): {}", if stderr.is_empty() { "no output" } else { stderr })]
    ChildFailed { status: i32, stderr: String },
    /// The eBPF collector failed.
    #[error(transparent)]
    Probe(#[from] tracemerge_ebpf::ProbeError),
    /// The eBPF collector's own benchmark failed.
    #[error(transparent)]
    ProbeBench(#[from] tracemerge_ebpf::bench::BenchError),
    /// An ETL file the decoder benchmark cannot read.
    #[error("{}: {source}", path.display())]
    Etl {
        path: PathBuf,
        source: tracemerge_etl::EtlError,
    },
    /// A record stream that cannot be opened.
    #[error(transparent)]
    Source(#[from] tracemerge_sources::SourceError),
    /// A failure within one program of the research suite.
    #[error("{name}: {source}")]
    Program {
        name: String,
        source: Box<BenchError>,
    },
}

impl BenchError {
    /// An I/O error on the file or directory at `path`.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> BenchError {
        let path = path.into();
        move |source| BenchError::Io { path, source }
    }

    /// An error of the operating-system call `what`.
    pub fn os(what: &'static str) -> impl FnOnce(std::io::Error) -> BenchError {
        move |source| BenchError::Os { what, source }
    }
}

/// A run's error with its record error boxed (the suites' streams carry
/// different record error types).
pub fn boxed<E: Into<RecordError>>(e: RunError<E>) -> BenchError {
    BenchError::Run(match e {
        RunError::Record(e) => RunError::Record(e.into()),
        RunError::Engine(message) => RunError::Engine(message),
        RunError::Fault(fault) => RunError::Fault(fault),
    })
}

#[cfg(test)]
mod tests {
    use tracemerge_dataflow::Options;
    use tracemerge_records::{Config, Record};

    use super::*;
    use crate::driver::run_to_end;

    /// A bad record of the stream stops the run; its error comes back
    /// whole (here an I/O error), not as text.
    #[test]
    fn a_record_error_comes_back_whole() {
        let records = vec![
            Ok(Record::Watermark { at: 1 }),
            Err(std::io::Error::other("line 2: cut short")),
        ];
        let err = run_to_end(records, &Config::default(), Options::threads(1)).unwrap_err();
        let BenchError::Run(RunError::Record(source)) = &err else {
            panic!("{err:?}")
        };
        assert!(source.downcast_ref::<std::io::Error>().is_some(), "{err:?}");
        assert_eq!(err.to_string(), "line 2: cut short");
    }

    #[test]
    fn io_errors_name_the_path() {
        let err = BenchError::io("/no/such/dir")(std::io::Error::other("gone"));
        assert!(
            matches!(&err, BenchError::Io { path, .. } if path == std::path::Path::new("/no/such/dir"))
        );
        assert_eq!(err.to_string(), "/no/such/dir: gone");
        let err = BenchError::ChildFailed {
            status: 256,
            stderr: String::new(),
        };
        assert_eq!(
            err.to_string(),
            "memory child failed (wait status 256): no output"
        );
    }
}
