//! Why a command failed. The libraries' typed errors travel up unchanged;
//! `main` formats the error once, as `tracemerge: <message>`.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// An input that cannot be read (file, line or block, byte offset).
    #[error(transparent)]
    Source(#[from] tracemerge_sources::SourceError),
    /// The eBPF collector failed.
    #[error(transparent)]
    Probe(#[from] tracemerge_ebpf::ProbeError),
    /// An ETL file, or a file it needs, that cannot be read.
    #[error("{}: {source}", file.display())]
    Etl {
        file: PathBuf,
        source: tracemerge_etl::EtlError,
    },
    /// An ETL file that decodes only in part, imported without
    /// `--lenient`: how many problems, and how many edge records decode.
    #[error(
        "{}: the file is damaged ({problems} problem(s)); --lenient imports the \
         {edge_records} edge record(s) that decode",
        file.display()
    )]
    EtlDamaged {
        file: PathBuf,
        problems: usize,
        edge_records: u64,
    },
    /// An ETL side file (artifact map) that cannot be read; it names itself.
    #[error(transparent)]
    EtlSide(tracemerge_etl::EtlError),
    /// An embedded scenario that is not there.
    #[error("the {name} scenario is missing")]
    NoScenario { name: &'static str },
    /// An embedded scenario that cannot be read (it names the case).
    #[error(transparent)]
    Case(#[from] tracemerge_scenarios::cases::CaseError),
    /// The engine failed.
    #[error(transparent)]
    Merge(#[from] tracemerge_dataflow::MergeError),
    /// The engine's workers could not start or failed (the message of
    /// [`tracemerge_dataflow::RunError::Engine`], shown without its prefix).
    #[error("{0}")]
    Engine(String),
    /// The engine broke one of its own invariants.
    #[error(transparent)]
    Fault(#[from] tracemerge_dataflow::Fault),
    /// A file that cannot be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Writing to an output that is not a named file (`stdout`,
    /// `<stdout>`, "writing records", ...): `what` names it.
    #[error("{what}: {source}")]
    Output {
        what: String,
        source: std::io::Error,
    },
    /// `--process` not below `--processes`.
    #[error("--process {process} is out of range for {processes} processes")]
    ProcessOutOfRange { process: usize, processes: usize },
    /// A hostfile with fewer addresses than processes.
    #[error("{}: {found} addresses for {processes} processes", path.display())]
    TooFewHosts {
        path: PathBuf,
        found: usize,
        processes: usize,
    },
    /// An engine configuration (`--quarantine` file and the like) that
    /// cannot be read or is wrong; it names the file.
    #[error(transparent)]
    Config(#[from] tracemerge_records::args::ConfigError),
    /// An option naming a directory that is not one.
    #[error("{option} {}: not a directory", path.display())]
    NotADirectory { option: &'static str, path: PathBuf },
    /// A JSON document that cannot be written.
    #[error("JSON: {0}")]
    Json(serde_json::Error),
    /// A `--progress-mode` timely does not know.
    #[error("--progress-mode: {0}")]
    ProgressMode(String),
    /// `convert -o -` without `--to`.
    #[error("writing to stdout (-o -) needs --to ndjson or --to tmlog")]
    StdoutNeedsFormat,
    /// `convert -o NAME` whose format the name does not tell.
    #[error(
        "{output}: cannot tell the output format from the name; give --to ndjson or \
         --to tmlog, or name it .ndjson, .tmlog (either may end in .gz)"
    )]
    UnknownOutputFormat { output: String },
    /// `convert` output that is one of its inputs.
    #[error("{output}: the output is also an input; write to another file")]
    OutputIsInput { output: String },
    /// `convert` stopped at a bad input record; what came before was written.
    #[error("{source} (stopped there: {output} holds the {written} records before it)")]
    Stopped {
        source: Box<CliError>,
        output: String,
        written: u64,
    },
    /// A record the replay log refuses (`location`: where it was read).
    #[error("{location}: {source}")]
    BadRecord {
        location: String,
        source: std::io::Error,
    },
    /// `eval` inputs without a static call graph.
    #[error("no static call graph among the inputs: nothing to evaluate")]
    NoStaticGraph,
    /// The engine thread of `watch` stopped taking records.
    #[error("the engine stopped")]
    EngineStopped,
    /// The engine thread of `watch` panicked.
    #[error("the engine failed")]
    EngineFailed,
    /// `bench`: suites that reported an error.
    #[error("suites failed: {}", .0.join(", "))]
    SuitesFailed(Vec<String>),
    /// `bench` setup or its child process failed.
    #[error(transparent)]
    Bench(#[from] tracemerge_bench::BenchError),
    /// The probe cannot run here, or was asked for nothing to attach.
    #[error("probe: {0}")]
    ProbeUnsupported(String),
    /// `probe plan` of a binary with no function to probe.
    #[error("{}: no function to probe", binary.display())]
    NothingToProbe { binary: PathBuf },
    /// The live ETW collector failed.
    #[error("probe etw: {0}")]
    Etw(tracemerge_etw::CollectError),
}

impl CliError {
    /// An I/O error on the file at `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> CliError {
        CliError::Io {
            path: path.into(),
            source,
        }
    }

    /// An I/O error writing to `what`.
    pub fn output(what: impl Into<String>, source: std::io::Error) -> CliError {
        CliError::Output {
            what: what.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use tracemerge_records::args::ConfigError;

    use super::CliError;

    fn engine(words: &[&str]) -> crate::args::EngineArgs {
        let argv = ["tracemerge", "merge", "x.ndjson"].iter().chain(words);
        match crate::Cli::try_parse_from(argv).map(|cli| cli.command) {
            Ok(crate::Command::Merge { engine, .. }) => engine,
            _ => panic!("merge parses"),
        }
    }

    /// A bad `--quarantine` file is a typed configuration error that names
    /// the file (and the line, when the file was read).
    #[test]
    fn a_bad_quarantine_file_is_a_config_error_naming_it() {
        let dir =
            std::env::temp_dir().join(format!("tracemerge-cli-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bad = dir.join("quarantine.txt");
        std::fs::write(&bad, "ok\n -> callee\n").unwrap();
        let err = engine(&["--quarantine", bad.to_str().unwrap()])
            .config()
            .unwrap_err();
        assert!(
            matches!(&err, CliError::Config(ConfigError::Quarantine { path, .. }) if *path == bad),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!("{}: line 2: edge needs caller -> callee", bad.display())
        );
        let missing = dir.join("missing.txt");
        let err = engine(&["--quarantine", missing.to_str().unwrap()])
            .config()
            .unwrap_err();
        assert!(
            matches!(&err, CliError::Config(ConfigError::Read { path, .. }) if *path == missing),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .starts_with(&format!("{}: ", missing.display())),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
