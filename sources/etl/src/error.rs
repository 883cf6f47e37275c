//! Typed errors. Every variant that concerns the file's content names the
//! buffer and the byte offset where decoding stopped.

use std::path::PathBuf;

/// What went wrong while reading an ETL file.
#[derive(Debug, thiserror::Error)]
pub enum EtlError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The bytes do not start like an ETL file (no log-file header buffer).
    #[error("not an ETL file: {reason} (byte offset {offset:#x})")]
    NotEtl { offset: u64, reason: String },
    /// The file ends inside a buffer.
    #[error("buffer {buffer} at byte offset {offset:#x}: file truncated, buffer needs {needed} bytes but only {available} remain")]
    Truncated {
        buffer: u32,
        offset: u64,
        needed: u64,
        available: u64,
    },
    /// A buffer header carries an impossible size or offset.
    #[error("buffer {buffer} at byte offset {offset:#x}: corrupted buffer header: {reason}")]
    BadBuffer {
        buffer: u32,
        offset: u64,
        reason: String,
    },
    /// The compressed payload of a buffer does not inflate.
    #[error("buffer {buffer} at byte offset {offset:#x}: bad compressed data at payload byte {position:#x}: {reason}")]
    Decompress {
        buffer: u32,
        offset: u64,
        position: usize,
        reason: String,
    },
    /// A record inside a buffer is malformed; the rest of that buffer is skipped.
    #[error("buffer {buffer} at byte offset {offset:#x}: bad record at buffer offset {position:#x}: {reason}")]
    BadRecord {
        buffer: u32,
        offset: u64,
        position: usize,
        reason: String,
    },
    /// A symbol file could not be used.
    #[error("symbols {path}: {reason}")]
    Symbols { path: PathBuf, reason: String },
    /// A command-line input other than the trace (for example the artifact map) is invalid.
    #[error("{path}: {reason}")]
    Input { path: PathBuf, reason: String },
}

impl EtlError {
    /// True for damage inside the trace (decoding went on after it),
    /// false for errors that stop everything.
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            EtlError::Truncated { .. }
                | EtlError::BadBuffer { .. }
                | EtlError::Decompress { .. }
                | EtlError::BadRecord { .. }
        )
    }
}
