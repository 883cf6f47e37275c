//! The data of the dataflow's collections.

use serde::{Deserialize, Serialize};
use tracemerge_records::{
    Change, ChangeItem, Conflict, Hop, ObservedEdge, Reach, Resolution, State, Time, Verdict,
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

/// An update of one input collection, before it gets its time and diff.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Update {
    /// The artifact has a snapshot.
    Snapshot(Artifact),
    Node(Artifact, Symbol),
    StaticEdge(Artifact, (Symbol, Symbol)),
    Entrypoint(Artifact, Symbol),
    Target(Artifact, Symbol),
    /// The runtime side, from the aggregator ([`crate::aggregate`]):
    /// a live observed edge.
    LiveEdge(EdgeKey),
    /// A live observed edge that meets the `quorum:H:S` thresholds.
    QuorumMet(EdgeKey),
    /// The statistics of a live observed edge.
    EdgeStats(EdgeKey, EdgeStats),
    /// A symbol executed in one aggregator shard (an end of a live edge or
    /// a symbol with a live `hit`); shards may repeat it.
    Executed(Node),
    /// A symbol covered for at least `min_coverage`.
    Covered(Node),
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
/// becomes an [`ChangeItem`] with strings at worker 0. Plain serde data, so it
/// crosses processes as bincode.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Output {
    /// A live observed edge and whether the snapshot has it.
    Edge {
        artifact: Artifact,
        caller: Symbol,
        callee: Symbol,
        in_static: bool,
    },
    /// The statistics of a live observed edge, passed through from the
    /// aggregator; the report puts them on the edge and on its conflict.
    EdgeStats {
        artifact: Artifact,
        caller: Symbol,
        callee: Symbol,
        stats: EdgeStats,
    },
    Reach {
        artifact: Artifact,
        reach: Reach,
    },
    Verdict {
        artifact: Artifact,
        target: Symbol,
        state: State,
        /// Boxed: inline, the path would make every output (most are
        /// edges and their statistics) 72 bytes instead of 56.
        path: Option<Box<(Vec<Symbol>, Vec<Hop>)>>,
    },
    Conflict {
        artifact: Artifact,
        conflict: ConflictIds,
    },
}

/// A conflict of DESIGN.md §4 with interned names.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ConflictIds {
    /// Its hits and sources are the edge's statistics ([`Output::EdgeStats`]).
    RuntimeEdgeNotInStatic {
        caller: Symbol,
        callee: Symbol,
        resolution: Resolution,
    },
    ExecutedButStaticallyUnreachable(Symbol),
    UnknownSymbol(Symbol),
    NoStaticSnapshot,
    ReachableButUnobserved(Symbol),
}

impl Output {
    /// The statistics of the observed edge `key`.
    pub fn edge_stats((artifact, caller, callee): EdgeKey, stats: EdgeStats) -> Self {
        Output::EdgeStats {
            artifact,
            caller,
            callee,
            stats,
        }
    }

    /// The observed edge this output is a part of: its liveness and
    /// place in the snapshot, its statistics, or its conflict.
    pub fn edge_part(&self) -> Option<EdgeKey> {
        match self {
            Output::Edge {
                artifact,
                caller,
                callee,
                ..
            }
            | Output::EdgeStats {
                artifact,
                caller,
                callee,
                ..
            } => Some((*artifact, *caller, *callee)),
            Output::Conflict {
                artifact,
                conflict: ConflictIds::RuntimeEdgeNotInStatic { caller, callee, .. },
            } => Some((*artifact, *caller, *callee)),
            _ => None,
        }
    }

    /// The report item of an output that is not an edge part (those make
    /// items together, see [`EdgeParts`]).
    pub fn to_item(&self, names: &NamesGuard) -> Option<ChangeItem> {
        let name = |id: &Id| names.get(*id).to_string();
        Some(match self {
            Output::Edge { .. } | Output::EdgeStats { .. } => return None,
            Output::Reach { artifact, reach } => ChangeItem::Reach {
                artifact: name(artifact),
                reach: *reach,
            },
            Output::Verdict {
                artifact,
                target,
                state,
                path,
            } => ChangeItem::Verdict {
                artifact: name(artifact),
                verdict: Verdict {
                    target: name(target),
                    state: *state,
                    vex: state.vex(),
                    path: path.as_ref().map(|p| p.0.iter().map(name).collect()),
                    hops: path.as_ref().map(|p| p.1.clone()),
                },
            },
            Output::Conflict { artifact, conflict } => ChangeItem::Conflict {
                artifact: name(artifact),
                conflict: match conflict {
                    ConflictIds::RuntimeEdgeNotInStatic { .. } => return None,
                    ConflictIds::ExecutedButStaticallyUnreachable(s) => {
                        Conflict::ExecutedButStaticallyUnreachable { symbol: name(s) }
                    }
                    ConflictIds::UnknownSymbol(s) => Conflict::UnknownSymbol { symbol: name(s) },
                    ConflictIds::NoStaticSnapshot => Conflict::NoStaticSnapshot {},
                    ConflictIds::ReachableButUnobserved(s) => {
                        Conflict::ReachableButUnobserved { symbol: name(s) }
                    }
                },
            },
        })
    }
}

/// One part of an observed edge ([`EdgeParts`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EdgePart {
    /// Whether the static snapshot has the edge.
    InStatic(bool),
    /// The aggregator's statistics of the edge.
    Stats(EdgeStats),
    /// How its conflict with the static graph is resolved.
    Resolution(Resolution),
}

/// An edge part that [`EdgeParts::apply`] cannot apply: an engine fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EdgePartError {
    /// A part added while one is held, or removed while absent or
    /// different: the part, its diff and what the edge held.
    #[error("{part:?} with diff {diff} where the edge holds {held:?}")]
    Unbalanced {
        part: EdgePart,
        diff: i64,
        held: Option<EdgePart>,
    },
    /// An output that is not a part of an observed edge.
    #[error("{0:?} is not an edge part")]
    NotAPart(Output),
}

/// The parts of one observed edge that the report shows together: the
/// dataflow says whether it is live and in the snapshot, and how its
/// conflict is resolved; the aggregator gives its statistics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EdgeParts {
    pub in_static: Option<bool>,
    pub stats: Option<EdgeStats>,
    pub resolution: Option<Resolution>,
}

impl EdgeParts {
    /// Adds (`diff` 1) or removes (-1) one part. Anything else (a part
    /// added twice, or removed while absent) is an engine fault.
    pub fn apply(&mut self, part: &Output, diff: i64) -> Result<(), EdgePartError> {
        fn set<T: Clone + PartialEq>(
            slot: &mut Option<T>,
            value: &T,
            diff: i64,
            wrap: fn(T) -> EdgePart,
        ) -> Result<(), EdgePartError> {
            match (diff, slot.as_ref()) {
                (1, None) => *slot = Some(value.clone()),
                (-1, Some(v)) if v == value => *slot = None,
                _ => {
                    return Err(EdgePartError::Unbalanced {
                        part: wrap(value.clone()),
                        diff,
                        held: slot.clone().map(wrap),
                    })
                }
            }
            Ok(())
        }
        match part {
            Output::Edge { in_static, .. } => {
                set(&mut self.in_static, in_static, diff, EdgePart::InStatic)
            }
            Output::EdgeStats { stats, .. } => set(&mut self.stats, stats, diff, EdgePart::Stats),
            Output::Conflict {
                conflict: ConflictIds::RuntimeEdgeNotInStatic { resolution, .. },
                ..
            } => set(&mut self.resolution, resolution, diff, EdgePart::Resolution),
            other => Err(EdgePartError::NotAPart(other.clone())),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == EdgeParts::default()
    }

    /// The observed edge, once it has its statistics and its place in the
    /// snapshot.
    pub fn observed_edge(
        &self,
        (_, caller, callee): EdgeKey,
        names: &NamesGuard,
    ) -> Option<ObservedEdge> {
        let (stats, in_static) = (self.stats.as_ref()?, self.in_static?);
        Some(ObservedEdge {
            caller: names.get(caller).to_string(),
            callee: names.get(callee).to_string(),
            hits: stats.hits,
            first_seen: stats.first_seen,
            last_seen: stats.last_seen,
            sources: stats.sources,
            in_static,
            estimated: stats.estimated,
        })
    }

    /// Its conflict with the static graph, once it has its statistics and
    /// a resolution.
    pub fn conflict(&self, (_, caller, callee): EdgeKey, names: &NamesGuard) -> Option<Conflict> {
        let (stats, resolution) = (self.stats.as_ref()?, self.resolution?);
        Some(Conflict::RuntimeEdgeNotInStatic {
            caller: names.get(caller).to_string(),
            callee: names.get(callee).to_string(),
            resolution,
            hits: stats.hits,
            sources: stats.sources,
        })
    }

    /// What the edge's report item depends on: equal views, equal items.
    pub fn edge_view(&self) -> Option<(&EdgeStats, bool)> {
        Some((self.stats.as_ref()?, self.in_static?))
    }

    /// What its conflict's report item depends on.
    pub fn conflict_view(&self) -> Option<(u64, u64, Resolution)> {
        let stats = self.stats.as_ref()?;
        Some((stats.hits, stats.sources, self.resolution?))
    }

    /// The change lines that take the edge's report items from what
    /// `before` showed to what these parts show: for each item that
    /// differs, the old one retracted and the new one added. The edge's
    /// lines go to `edges` in the feed's order (by item, then diff), its
    /// conflicts to `conflicts`. Names are looked up only for the lines
    /// made.
    pub fn changes_since(
        &self,
        before: &EdgeParts,
        key: EdgeKey,
        at: Time,
        names: &NamesGuard,
        edges: &mut Vec<Change>,
        conflicts: &mut Vec<Change>,
    ) {
        let artifact = || names.get(key.0).to_string();
        if before.edge_view() != self.edge_view() {
            let old = before.observed_edge(key, names);
            let new = self.observed_edge(key, names);
            let mut lines = [(old, -1), (new, 1)];
            if lines[1].0 < lines[0].0 {
                lines.swap(0, 1);
            }
            for (edge, diff) in lines {
                if let Some(edge) = edge {
                    let item = ChangeItem::Edge {
                        artifact: artifact(),
                        edge,
                    };
                    edges.push(Change { at, diff, item });
                }
            }
        }
        if before.conflict_view() != self.conflict_view() {
            for (parts, diff) in [(before, -1), (self, 1)] {
                if let Some(conflict) = parts.conflict(key, names) {
                    let item = ChangeItem::Conflict {
                        artifact: artifact(),
                        conflict,
                    };
                    conflicts.push(Change { at, diff, item });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_output_is_56_bytes() {
        assert!(std::mem::size_of::<Output>() <= 56);
    }

    #[test]
    fn edge_parts_report_what_they_cannot_apply() {
        let edge = Output::Edge {
            artifact: 0,
            caller: 1,
            callee: 2,
            in_static: false,
        };
        let mut parts = EdgeParts::default();
        assert_eq!(parts.apply(&edge, 1), Ok(()));
        let err = parts.apply(&edge, 1).unwrap_err();
        assert_eq!(
            err,
            EdgePartError::Unbalanced {
                part: EdgePart::InStatic(false),
                diff: 1,
                held: Some(EdgePart::InStatic(false)),
            }
        );
        assert_eq!(
            err.to_string(),
            "InStatic(false) with diff 1 where the edge holds Some(InStatic(false))"
        );
        assert_eq!(parts.apply(&edge, -1), Ok(()));
        assert!(parts.is_empty());
        let reach = Output::Reach {
            artifact: 0,
            reach: Reach {
                static_: 1,
                runtime: 1,
                effective: 1,
            },
        };
        assert_eq!(
            parts.apply(&reach, 1),
            Err(EdgePartError::NotAPart(reach.clone()))
        );
    }
}
