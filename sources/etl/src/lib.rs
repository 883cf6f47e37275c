//! Decodes Windows ETW trace files (.etl) into tracemerge call-edge records,
//! in pure Rust, on every platform.
//!
//! Layers, outermost first: [`file`] (buffers, XPRESS-compressed or plain,
//! and the log-file header), [`events`] (every record header type),
//! [`kernel`] (typed Image, Process, Thread, StackWalk, PerfInfo and
//! ImageID/DbgID_RSDS events), [`stacks`] (stack assembly: TraceEvent's
//! rules), [`trace`] (module map over time, stacks matched to events),
//! [`edges`], [`realtime`] (live events through the same rules) (caller → callee
//! records of DESIGN.md §3), [`symbols`] (PDB lookup) and [`inspect`].
//!
//! Damage never panics: each error names the buffer and byte offset, and the
//! buffers before (and where possible after) it still decode.
#![recursion_limit = "256"]

#[cfg(feature = "bench")]
pub mod bench;
pub mod edges;
pub mod error;
pub mod events;
pub mod file;
pub mod inspect;
pub mod kernel;
pub mod realtime;
pub mod stacks;
pub mod symbols;
pub mod trace;
pub mod xpress;

pub use edges::{import, import_report, ArtifactMap, Granularity, Import, ImportOptions};
pub use error::EtlError;
pub use trace::{is_etl, DecodeOptions, Trace};

/// Reads and decodes a file.
pub fn decode_file(path: &std::path::Path) -> Result<Trace, EtlError> {
    let data = std::fs::read(path).map_err(|e| EtlError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    Trace::decode(&data)
}
