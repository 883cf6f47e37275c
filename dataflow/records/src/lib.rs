//! The contracts of tracemerge: the record stream that enters the engine
//! (`tracemerge.stream.v1`, DESIGN.md §3) and the report that leaves it
//! (`tracemerge.report.v1`, DESIGN.md §5).
//!
//! Sources, probes, the dataflow and the CLI all speak these types, so this
//! crate stays small: serde, serde_json for the canonical form, blake3 for the
//! digest, thiserror for its error types, rustc-hash for the one string
//! interner ([`intern`]), nothing else; with the feature
//! `clap`, also the command-line options of a [`Config`] (module `args`).

#[cfg(feature = "clap")]
pub mod args;
pub mod config;
pub mod input;
pub mod intern;
pub mod record;
pub mod report;

pub use config::{
    parse_duration, parse_nonzero_duration, Config, DurationError, QuarantineError, Strategy,
    StrategyError, DURATION_HELP,
};
pub use input::{Compactor, Expander, IndexedSighting, Input, NameIndex, Sighted};
pub use record::{
    union_length, Coverage, EdgeKind, EdgeObservation, GraphSnapshot, HitObservation, Record,
    RecordError, StaticEdge, Targets, Time, MAX_TIME,
};
pub use report::{
    ArtifactReport, Change, ChangeItem, Conflict, Hop, ObservedEdge, Reach, Report, Resolution,
    State, Stats, Verdict, Vex, REPORT_SCHEMA,
};
