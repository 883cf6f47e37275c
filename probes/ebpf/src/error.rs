//! Why a collector could not start, collect or stop.

use std::path::PathBuf;

/// An error of the eBPF collector, with what it concerns (file, map,
/// program section, CPU, process) as data. `Display` gives the one-line
/// message the command prints.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// A file that cannot be read, or is not an ELF file this reads.
    #[error("{}: {what}", path.display())]
    File { path: PathBuf, what: String },
    /// The binary has no function to probe: none has a symbol, and
    /// `missing` were asked for but not found.
    #[error("{}: no function to probe (none with a symbol{})", binary.display(), not_found(missing))]
    NothingToProbe {
        binary: PathBuf,
        missing: Vec<String>,
    },
    /// A kernel operation failed (creating maps, loading or attaching a
    /// program): what was being done, and the kernel's answer.
    #[error("{doing}: {cause}")]
    Kernel { doing: String, cause: String },
    /// A BPF map is missing from the object, has another type than
    /// expected, or cannot be read or written.
    #[error("{what}")]
    Map { map: &'static str, what: String },
    /// The embedded BPF object is not what this code expects (a build
    /// fault): the section and byte offset where known.
    #[error("{what}")]
    Object {
        section: Option<String>,
        offset: Option<u64>,
        what: String,
    },
    /// No process with this id is running.
    #[error("no process {pid}")]
    NoProcess { pid: u32 },
    /// A process whose executable cannot be read.
    #[error("process {pid}: {cause}")]
    Process { pid: u32, cause: std::io::Error },
    /// Patching a process's entries failed (`patch`): what went wrong.
    #[error("patching process {pid}: {what}")]
    Patch { pid: u32, what: String },
    /// The command to trace could not be started or stopped at its exec.
    #[error("{what}")]
    Command { program: String, what: String },
}

fn not_found(missing: &[String]) -> String {
    if missing.is_empty() {
        String::new()
    } else {
        format!("; not found: {}", missing.join(", "))
    }
}

impl ProbeError {
    pub(crate) fn file(path: &std::path::Path, what: impl std::fmt::Display) -> ProbeError {
        ProbeError::File {
            path: path.to_path_buf(),
            what: what.to_string(),
        }
    }

    pub(crate) fn kernel(doing: impl Into<String>, cause: impl std::fmt::Display) -> ProbeError {
        ProbeError::Kernel {
            doing: doing.into(),
            cause: cause.to_string(),
        }
    }

    pub(crate) fn map(map: &'static str, what: impl std::fmt::Display) -> ProbeError {
        ProbeError::Map {
            map,
            what: what.to_string(),
        }
    }

    pub(crate) fn object(
        section: Option<&str>,
        offset: Option<u64>,
        what: impl std::fmt::Display,
    ) -> ProbeError {
        ProbeError::Object {
            section: section.map(str::to_string),
            offset,
            what: what.to_string(),
        }
    }
}
