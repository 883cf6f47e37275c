//! Strategies and each target's verdict (state and witness path).

use std::collections::HashSet;

use differential_dataflow::VecCollection;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use tracemerge_records::{Config, Hop, Resolution, State, Strategy, Time};

use crate::closure::WitnessPath;
use crate::complete::per_artifact_at_complete_times;
use crate::model::{Artifact, Node, Symbol};
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

/// A fact about a target, from the symbol rules and the closures.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Fact {
    /// Its lattice state ([`crate::artifact_rules`]); only targets have one.
    State(State),
    /// Its witness path in the effective graph.
    Path(Vec<Symbol>, Vec<Hop>),
}

/// A target's verdict: its lattice state and witness path.
pub type Verdict = (State, Option<WitnessPath>);

/// The verdict of every target with a state: its lattice state and its
/// witness path, if it has one.
///
/// Each artifact's targets are kept on one worker outside differential
/// ([`per_artifact_at_complete_times`]): paths change with the closures at
/// nearly every round, and a `reduce` replayed each changed target's
/// history of facts at each one.
pub fn verdicts<'s>(facts: Coll<'s, (Node, Fact)>) -> Coll<'s, (Node, Verdict)> {
    let mut artifacts: FxHashMap<Artifact, FxHashMap<Symbol, Vec<(Fact, isize)>>> =
        FxHashMap::default();
    let by_artifact = facts.map(|((artifact, target), fact)| (artifact, (target, fact)));
    per_artifact_at_complete_times(by_artifact, "Verdicts", move |artifact, batch, out| {
        let targets = artifacts.entry(artifact).or_default();
        // The verdicts before, by touched target.
        let mut before: FxHashMap<Symbol, Option<Verdict>> = FxHashMap::default();
        for ((_, (target, fact)), diff) in batch {
            let facts = targets.entry(*target).or_default();
            before.entry(*target).or_insert_with(|| verdict_of(facts));
            match facts.iter_mut().find(|(f, _)| f == fact) {
                Some((_, count)) => *count += diff,
                None => facts.push((fact.clone(), *diff)),
            }
        }
        for (target, before) in before {
            let facts = targets.get_mut(&target).expect("a touched target");
            facts.retain(|(_, count)| *count != 0);
            let after = verdict_of(facts);
            if facts.is_empty() {
                targets.remove(&target);
            }
            if before != after {
                let node = (artifact, target);
                out.extend(before.map(|v| ((node, v), -1)));
                out.extend(after.map(|v| ((node, v), 1)));
            }
        }
        if targets.is_empty() {
            artifacts.remove(&artifact);
        }
    })
}

/// What a target's facts make its verdict: none without a state; of
/// several states or paths (never, in a consistent collection), the least.
fn verdict_of(facts: &[(Fact, isize)]) -> Option<Verdict> {
    let present = || facts.iter().filter(|(_, count)| *count > 0).map(|(f, _)| f);
    let state = present()
        .filter_map(|f| match f {
            Fact::State(state) => Some(*state),
            Fact::Path(..) => None,
        })
        .min()?;
    let path = present()
        .filter_map(|f| match f {
            Fact::Path(path, hops) => Some((path, hops)),
            Fact::State(_) => None,
        })
        .min()
        .map(|(path, hops)| (path.clone(), hops.clone()));
    Some((state, path))
}
