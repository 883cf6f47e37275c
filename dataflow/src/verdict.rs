//! Strategies, the per-target lattice and the conflict sets.

use std::collections::HashSet;

use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};
use tracemerge_records::{Config, Hop, Resolution, State, Strategy, Time};

use crate::model::{Artifact, ArtifactEdge, ConflictIds, Node, Symbol};
use crate::sets::{outside, semijoin, within, KeySet};
use crate::symbols::Interner;

type Coll<'s, D> = VecCollection<'s, Time, D, isize>;

/// The configured quarantine list, interned.
#[derive(Clone, Debug, Default)]
pub struct Quarantine {
    symbols: HashSet<Symbol>,
    edges: HashSet<(Symbol, Symbol)>,
}

impl Quarantine {
    pub fn new(config: &Config, interner: &mut Interner) -> Self {
        Quarantine {
            symbols: (config.quarantine_symbols.iter())
                .map(|s| interner.intern(s))
                .collect(),
            edges: (config.quarantine_edges.iter())
                .map(|(u, v)| (interner.intern(u), interner.intern(v)))
                .collect(),
        }
    }

    /// Whether the runtime edge `caller → callee` is quarantined.
    pub fn contains(&self, caller: Symbol, callee: Symbol) -> bool {
        self.symbols.contains(&caller)
            || self.symbols.contains(&callee)
            || self.edges.contains(&(caller, callee))
    }
}

/// How the configured strategy resolves a runtime edge missing from the
/// static graph; `quorum_met` says whether its live hits and sources reach
/// `quorum:H:S`'s thresholds.
pub fn resolve(
    strategy: &Strategy,
    quarantine: &Quarantine,
    caller: Symbol,
    callee: Symbol,
    quorum_met: bool,
) -> Resolution {
    if quarantine.contains(caller, callee) {
        return Resolution::Quarantined;
    }
    match *strategy {
        Strategy::Union => Resolution::Accepted,
        Strategy::Static => Resolution::Rejected,
        Strategy::Quorum { .. } if quorum_met => Resolution::Accepted,
        Strategy::Quorum { .. } => Resolution::Pending,
    }
}

/// A fact about a target, gathered from the closures and the live window.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Fact {
    Target,
    HasSnapshot,
    StaticReachable,
    Executed,
    Covered,
    Path(Vec<Symbol>, Vec<Hop>),
}

/// A witness path of symbols and the graph of each hop.
pub type WitnessPath = (Vec<Symbol>, Vec<Hop>);

/// The verdict of every target: its lattice state and witness path.
pub fn verdicts<'s>(
    facts: Coll<'s, (Node, Fact)>,
) -> Coll<'s, (Node, (State, Option<WitnessPath>))> {
    facts.reduce(|_target, facts, out| {
        let has = |f: &Fact| facts.iter().any(|(g, _)| *g == f);
        if !has(&Fact::Target) {
            return;
        }
        let static_side = has(&Fact::HasSnapshot).then(|| has(&Fact::StaticReachable));
        let runtime_side = if has(&Fact::Executed) {
            Some(true)
        } else if has(&Fact::Covered) {
            Some(false)
        } else {
            None
        };
        let state = State::join(static_side, runtime_side);
        let path = facts.iter().find_map(|(f, _)| match f {
            Fact::Path(p, h) => Some((p.clone(), h.clone())),
            _ => None,
        });
        out.push(((state, path), 1));
    })
}

/// The inputs every conflict kind is computed from.
pub struct ConflictInputs<'s> {
    pub snapshots: Coll<'s, Artifact>,
    pub nodes: KeySet<'s, Node>,
    pub executed: Coll<'s, Node>,
    pub executed_set: KeySet<'s, Node>,
    /// The artifacts with an executed symbol, distinct.
    pub executed_artifacts: Coll<'s, Artifact>,
    pub reach_static: KeySet<'s, Node>,
    pub targets: Coll<'s, Node>,
    pub covered: KeySet<'s, Node>,
    /// Observed edges missing from the snapshot, with their resolution.
    pub candidates: Coll<'s, (ArtifactEdge, Resolution)>,
}

/// Every place where live runtime evidence contradicts the static snapshot.
pub fn conflicts<'s>(c: ConflictInputs<'s>) -> Coll<'s, (Artifact, ConflictIds)> {
    let snapshot_keys = c.snapshots.clone();

    let no_snapshot = c
        .executed_artifacts
        .map(|a| (a, ()))
        .antijoin(snapshot_keys.clone())
        .map(|(a, ())| (a, ConflictIds::NoStaticSnapshot));

    let edge_conflicts = c
        .candidates
        .map(|((a, (u, v)), resolution)| ((a, u), (v, resolution)));
    let edge_conflicts = semijoin(edge_conflicts, &c.nodes)
        .map(|((a, u), (v, resolution))| ((a, v), (u, resolution)));
    let edge_conflicts =
        semijoin(edge_conflicts, &c.nodes).map(|((artifact, callee), (caller, resolution))| {
            let conflict = ConflictIds::RuntimeEdgeNotInStatic {
                caller,
                callee,
                resolution,
            };
            (artifact, conflict)
        });

    // Executed symbols the snapshot has, from the two arranged sets: the
    // executed symbols change with every window, so each arrangement of
    // them costs a copy of that churn.
    let known =
        (c.executed_set.clone()).join_core(c.nodes.clone(), |symbol, &(), &()| Some(*symbol));
    let unreachable = outside(known.clone(), &c.reach_static)
        .map(|(a, symbol)| (a, ConflictIds::ExecutedButStaticallyUnreachable(symbol)));

    // Nodes exist only while their artifact has a snapshot, so the known
    // symbols are among those of artifacts with one.
    let unknown = (c.executed.semijoin(snapshot_keys))
        .concat(known.negate())
        .map(|(a, symbol)| (a, ConflictIds::UnknownSymbol(symbol)));

    let unobserved = within(c.targets, &c.reach_static);
    let unobserved = outside(within(unobserved, &c.covered), &c.executed_set)
        .map(|(a, symbol)| (a, ConflictIds::ReachableButUnobserved(symbol)));

    no_snapshot
        .concat(edge_conflicts)
        .concat(unreachable)
        .concat(unknown)
        .concat(unobserved)
}
