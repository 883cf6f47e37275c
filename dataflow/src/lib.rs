//! The tracemerge engine: a timely/differential dataflow that merges static
//! call-graph snapshots with runtime edge observations over event time and
//! keeps the report of DESIGN.md §5 current as traces arrive and expire.
//!
//! Per-sighting work (hits, first/last seen, distinct sources, expiry,
//! live hits, coverage intervals) happens in plain Rust in [`aggregate`],
//! sharded by key across the workers; the dataflow sees only what can
//! change a closure, a verdict or a conflict. The dataflow is short: the
//! static closure of each artifact ([`closure::static_closure`]), then one
//! operator per artifact ([`artifact`]) that keeps everything else §4
//! derives, from the rules ([`artifact_rules`]: observed edges in or out of
//! the snapshot, the strategy's resolutions, each target's lattice state,
//! the conflicts) to the runtime and effective closures with their witness
//! paths ([`closure`]) and the verdicts ([`verdict`]); [`merge`] puts them
//! together, and [`complete`] runs the per-artifact operators at complete
//! times. [`window`] holds the edge statistics. [`ingest`] is the
//! sequential front that turns the record stream into timestamped input
//! updates, and [`engine`] runs it all on
//! timely workers. `SEMANTICS.md` beside this crate pins down every rule.

pub mod aggregate;
pub mod artifact;
pub mod artifact_rules;
pub mod closure;
pub mod complete;
pub mod engine;
pub mod ingest;
pub mod merge;
pub mod model;
pub mod profile;
pub mod shortest_paths;
mod sink;
mod slab;
pub mod symbols;
pub mod threads;
pub mod verdict;
pub mod window;

pub use engine::{
    collect_reports, merge_records, reports_at_watermarks, run, tune, Event, Fault, MergeError,
    Options, RunError,
};
pub use ingest::Ingestible;
