//! Strategies and each target's verdict (state and witness path).

use std::collections::HashSet;

use rustc_hash::FxHashMap;
use tracemerge_records::{Config, Hop, Resolution, State, Strategy};

use crate::closure::WitnessPath;
use crate::model::Symbol;
use crate::symbols::Interner;

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
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fact {
    /// Its lattice state ([`crate::artifact_rules`]); only targets have one.
    State(State),
    /// Its witness path in the effective graph.
    Path(Vec<Symbol>, Vec<Hop>),
}

/// A target's verdict: its lattice state and witness path.
pub type Verdict = (State, Option<WitnessPath>);

/// The verdicts of one artifact's targets, from their facts: each target
/// with a state has one, its lattice state and its witness path, if it has
/// one.
///
/// Kept outside differential in the artifact's operator
/// ([`crate::artifact`]): paths change with the closures at nearly every
/// round, and a `reduce` replayed each changed target's history of facts
/// at each one.
#[derive(Default)]
pub(crate) struct Verdicts {
    targets: FxHashMap<Symbol, Vec<(Fact, isize)>>,
}

impl Verdicts {
    pub(crate) fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Applies one time's changes of facts and pushes the changes of the
    /// verdicts onto `out`.
    pub(crate) fn apply(
        &mut self,
        facts: impl Iterator<Item = (Symbol, Fact, isize)>,
        out: &mut Vec<(Symbol, Verdict, isize)>,
    ) {
        // The verdicts before, by touched target.
        let mut before: FxHashMap<Symbol, Option<Verdict>> = FxHashMap::default();
        for (target, fact, diff) in facts {
            let facts = self.targets.entry(target).or_default();
            before.entry(target).or_insert_with(|| verdict_of(facts));
            match facts.iter_mut().find(|(f, _)| *f == fact) {
                Some((_, count)) => *count += diff,
                None => facts.push((fact, diff)),
            }
        }
        for (target, before) in before {
            let facts = self.targets.get_mut(&target).expect("a touched target");
            facts.retain(|(_, count)| *count != 0);
            let after = verdict_of(facts);
            if facts.is_empty() {
                self.targets.remove(&target);
            }
            if before != after {
                out.extend(before.map(|v| (target, v, -1)));
                out.extend(after.map(|v| (target, v, 1)));
            }
        }
    }
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
