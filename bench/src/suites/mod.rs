//! The suites of `tracemerge bench`, one module each.

pub mod cascade;
pub mod external;
pub mod ingest;
pub mod memory;
pub mod probe_lua;
pub mod replay;
pub mod research;
pub mod scale;
pub mod update;
