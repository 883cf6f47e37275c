//! The plain-Rust baselines the engine is measured against, written to be
//! fast (interned integer ids, `Vec` adjacency, the Fx hash of
//! `rustc-hash`) so that the comparisons are honest:
//!
//! - [`HashDedup`]: the ingest ceiling. Deduplicates edge observations per
//!   (artifact, caller, callee) into hits, first/last seen and distinct
//!   sources, with ttl expiry: what the engine's live-edge window computes,
//!   and nothing else.
//! - [`Recompute`]: keeps the live window the same way, and on demand
//!   recomputes from scratch, from the static graph and the live
//!   observations, the three closures, the verdicts (with witness paths) and
//!   the conflicts of `dataflow/SEMANTICS.md`.
//!
//! Both are exact for streams whose records arrive in event-time order
//! (every workload of the harness): expiry is first in, first out. They
//! follow one artifact each where the semantics are per artifact
//! ([`Recompute`] ignores the records of other artifacts).
//!
//! One file per job: [`window`] the live window both keep, [`dedup`] and
//! [`recompute`] the two baselines, [`graph`] the integer graphs and
//! traversals of `recompute`; string ids come from the one interner,
//! [`Interner`] (`tracemerge_records::intern`).

pub mod dedup;
pub mod graph;
pub mod recompute;
pub mod window;

pub use dedup::{DedupSummary, HashDedup};
pub use graph::{bfs, reach, Bits, Csr};
pub use recompute::{IdConflict, IdVerdict, Outcome, Recompute};
pub use rustc_hash::{FxHashMap as FxMap, FxHashSet as FxSet};
pub use tracemerge_records::intern::Interner;
pub use window::{EdgeAgg, EdgeKey, SymbolKey, Window};
