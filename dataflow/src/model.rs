//! The data of the dataflow's collections.

use serde::{Deserialize, Serialize};
use tracemerge_records::{
    Conflict, Hop, Item, ObservedEdge, Reach, Resolution, State, Time, Verdict,
};

use crate::symbols::{Id, NamesGuard};
use crate::window::EdgeStats;

/// Artifacts, symbols and sources are interned names ([`crate::symbols`]).
pub type Artifact = Id;
pub type Symbol = Id;
/// A symbol within its artifact: the node type of every closure.
pub type Node = (Artifact, Symbol);
/// Where an observation came from (agent/host).
pub type Source = Id;
/// A runtime edge of one artifact: (artifact, caller, callee).
pub type EdgeKey = (Artifact, Symbol, Symbol);
/// One sighting of an observation: its time and source.
pub type Sighting = (Time, Source);
/// A static or runtime edge of one artifact: (artifact, (caller, callee)).
pub type ArtifactEdge = (Artifact, (Symbol, Symbol));

/// An update of one input collection, before it gets its time and diff.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Update {
    /// The artifact has a snapshot.
    Snapshot(Artifact),
    Node(Artifact, Symbol),
    StaticEdge(Artifact, (Symbol, Symbol)),
    Entrypoint(Artifact, Symbol),
    Target(Artifact, Symbol),
    /// `(artifact, caller, callee), (at, source)`; the diff carries the hits.
    EdgeObservation((Artifact, Symbol, Symbol), (Time, Source)),
    /// `(artifact, symbol), (at, source)`; the diff carries the hits.
    HitObservation((Artifact, Symbol), (Time, Source)),
    /// `(artifact, symbol), (from, to)`.
    Coverage((Artifact, Symbol), (Time, Time)),
}

/// An update with its event time and multiplicity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timed {
    pub update: Update,
    pub time: Time,
    pub diff: isize,
}

impl Update {
    pub fn at(self, time: Time, diff: isize) -> Timed {
        Timed {
            update: self,
            time,
            diff,
        }
    }
}

/// A report item with interned names, as the dataflow produces it; it
/// becomes an [`Item`] with strings at worker 0. Plain serde data, so it
/// crosses processes as bincode.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Output {
    Edge {
        artifact: Artifact,
        caller: Symbol,
        callee: Symbol,
        stats: EdgeStats,
        in_static: bool,
    },
    Reach {
        artifact: Artifact,
        reach: (u64, u64, u64),
    },
    Verdict {
        artifact: Artifact,
        target: Symbol,
        state: State,
        path: Option<(Vec<Symbol>, Vec<Hop>)>,
    },
    Conflict {
        artifact: Artifact,
        conflict: ConflictAt,
    },
}

/// A conflict of DESIGN.md §4 with interned names.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ConflictAt {
    RuntimeEdgeNotInStatic {
        caller: Symbol,
        callee: Symbol,
        resolution: Resolution,
        hits: u64,
        sources: u64,
    },
    ExecutedButStaticallyUnreachable(Symbol),
    UnknownSymbol(Symbol),
    NoStaticSnapshot,
    ReachableButUnobserved(Symbol),
}

impl Output {
    /// The report item, with names looked up.
    pub fn to_item(&self, names: &NamesGuard) -> Item {
        let name = |id: &Id| names.get(*id).to_string();
        match self {
            Output::Edge {
                artifact,
                caller,
                callee,
                stats,
                in_static,
            } => Item::Edge {
                artifact: name(artifact),
                edge: ObservedEdge {
                    caller: name(caller),
                    callee: name(callee),
                    hits: stats.hits,
                    first_seen: stats.first_seen,
                    last_seen: stats.last_seen,
                    sources: stats.sources,
                    in_static: *in_static,
                },
            },
            Output::Reach { artifact, reach } => Item::Reach {
                artifact: name(artifact),
                reach: Reach {
                    static_: reach.0,
                    runtime: reach.1,
                    effective: reach.2,
                },
            },
            Output::Verdict {
                artifact,
                target,
                state,
                path,
            } => Item::Verdict {
                artifact: name(artifact),
                verdict: Verdict {
                    target: name(target),
                    state: *state,
                    vex: state.vex(),
                    path: path.as_ref().map(|(p, _)| p.iter().map(name).collect()),
                    hops: path.as_ref().map(|(_, h)| h.clone()),
                },
            },
            Output::Conflict { artifact, conflict } => Item::Conflict {
                artifact: name(artifact),
                conflict: match conflict {
                    ConflictAt::RuntimeEdgeNotInStatic {
                        caller,
                        callee,
                        resolution,
                        hits,
                        sources,
                    } => Conflict::RuntimeEdgeNotInStatic {
                        caller: name(caller),
                        callee: name(callee),
                        resolution: *resolution,
                        hits: *hits,
                        sources: *sources,
                    },
                    ConflictAt::ExecutedButStaticallyUnreachable(s) => {
                        Conflict::ExecutedButStaticallyUnreachable { symbol: name(s) }
                    }
                    ConflictAt::UnknownSymbol(s) => Conflict::UnknownSymbol { symbol: name(s) },
                    ConflictAt::NoStaticSnapshot => Conflict::NoStaticSnapshot {},
                    ConflictAt::ReachableButUnobserved(s) => {
                        Conflict::ReachableButUnobserved { symbol: name(s) }
                    }
                },
            },
        }
    }
}
