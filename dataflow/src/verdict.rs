//! Strategies and each target's verdict (state and witness path).

use std::collections::HashSet;

use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};
use tracemerge_records::{Config, Hop, Resolution, State, Strategy, Time};

use crate::closure::WitnessPath;
use crate::model::{Node, Symbol};
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

/// The verdict of every target: its lattice state and witness path.
pub fn verdicts<'s>(
    facts: Coll<'s, (Node, Fact)>,
) -> Coll<'s, (Node, (State, Option<WitnessPath>))> {
    facts.reduce(|_target, facts, out| {
        let Some(state) = facts.iter().find_map(|(f, _)| match f {
            Fact::State(state) => Some(*state),
            Fact::Path(..) => None,
        }) else {
            return;
        };
        let path = facts.iter().find_map(|(f, _)| match f {
            Fact::Path(p, h) => Some((p.clone(), h.clone())),
            Fact::State(_) => None,
        });
        out.push(((state, path), 1));
    })
}
