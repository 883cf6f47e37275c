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
    /// An ETL side file (artifact map) that cannot be read; it names itself.
    #[error(transparent)]
    EtlSide(tracemerge_etl::EtlError),
    /// The engine failed.
    #[error(transparent)]
    Merge(#[from] tracemerge_dataflow::MergeError),
    /// What the command itself finds wrong: arguments, outputs, and the
    /// errors of commands not yet typed (merge, replay, watch, bench).
    #[error("{0}")]
    Message(String),
}

impl From<String> for CliError {
    fn from(message: String) -> CliError {
        CliError::Message(message)
    }
}

impl From<&str> for CliError {
    fn from(message: &str) -> CliError {
        CliError::Message(message.to_string())
    }
}
