//! The rules that look at one symbol at a time: each target's lattice
//! state, and the conflicts about one symbol or one artifact
//! (DESIGN.md §4).
//!
//! Every such rule is a test of set memberships: is the symbol a snapshot
//! node, statically reachable, a target, executed, covered, and does its
//! artifact have a snapshot. The executed and covered sets change with
//! every window; as differential joins, each rule that consults them would
//! keep its own arranged copy of that churn. [`symbol_rules`] keeps the
//! memberships in one hash map per artifact instead and applies each time's
//! changes once the time is complete, as `dynamic_closures` does.

use std::collections::BTreeMap;

use differential_dataflow::{AsCollection, VecCollection};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::CapabilitySet;
use tracemerge_records::{State, Time};

use crate::model::{Artifact, ConflictIds, Symbol};

/// A membership of a symbol of an artifact, or of the artifact itself;
/// its diff says whether it comes or goes. Memberships count: a symbol
/// executed in two aggregator shards is executed while either says so.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Membership {
    /// The artifact has a snapshot.
    Snapshot,
    /// A node of the artifact's snapshot.
    Node(Symbol),
    StaticReachable(Symbol),
    Target(Symbol),
    Executed(Symbol),
    /// Covered for at least `min_coverage`.
    Covered(Symbol),
}

/// What [`symbol_rules`] derives within an artifact.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SymbolRule {
    /// The lattice state of a target.
    State(Symbol, State),
    /// A conflict about one symbol, or `NoStaticSnapshot`.
    Conflict(ConflictIds),
    /// The artifact has an executed symbol.
    Executed,
}

/// The memberships of one symbol, as counts in the order of [`Membership`]'s
/// symbol variants.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counts([isize; 5]);

const NODE: usize = 0;
const STATIC_REACHABLE: usize = 1;
const TARGET: usize = 2;
const EXECUTED: usize = 3;
const COVERED: usize = 4;

impl Counts {
    fn has(&self, membership: usize) -> bool {
        self.0[membership] > 0
    }

    /// What the rules derive from these memberships, given whether the
    /// artifact has a snapshot.
    fn derive(&self, snapshot: bool) -> Derived {
        let [node, reachable, target, executed, covered] =
            [NODE, STATIC_REACHABLE, TARGET, EXECUTED, COVERED].map(|m| self.has(m));
        let runtime_side = if executed {
            Some(true)
        } else if covered {
            Some(false)
        } else {
            None
        };
        Derived {
            state: target.then(|| State::join(snapshot.then_some(reachable), runtime_side)),
            unreachable: executed && node && !reachable,
            unknown: executed && snapshot && !node,
            unobserved: target && reachable && covered && !executed,
        }
    }
}

/// The rules' outcome for one symbol.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Derived {
    /// The lattice state, for a target.
    state: Option<State>,
    /// `executed_but_statically_unreachable`.
    unreachable: bool,
    /// `unknown_symbol`.
    unknown: bool,
    /// `reachable_but_unobserved`.
    unobserved: bool,
}

impl Derived {
    fn rules(&self, symbol: Symbol) -> impl Iterator<Item = SymbolRule> {
        let conflict = |holds: bool, conflict: ConflictIds| holds.then_some(conflict);
        let conflicts = [
            conflict(
                self.unreachable,
                ConflictIds::ExecutedButStaticallyUnreachable(symbol),
            ),
            conflict(self.unknown, ConflictIds::UnknownSymbol(symbol)),
            conflict(
                self.unobserved,
                ConflictIds::ReachableButUnobserved(symbol),
            ),
        ];
        (self.state.map(|state| SymbolRule::State(symbol, state)))
            .into_iter()
            .chain(conflicts.into_iter().flatten().map(SymbolRule::Conflict))
    }
}

/// The memberships of one artifact's symbols.
#[derive(Default)]
struct ArtifactSymbols {
    snapshots: isize,
    /// How many symbols are executed.
    executed: usize,
    symbols: FxHashMap<Symbol, Counts>,
}

impl ArtifactSymbols {
    /// The artifact-level rules: `no_static_snapshot`, and whether it has
    /// an executed symbol.
    fn artifact_rules(&self) -> impl Iterator<Item = SymbolRule> {
        let executed = self.executed > 0;
        let no_snapshot = executed && self.snapshots <= 0;
        (no_snapshot.then_some(SymbolRule::Conflict(ConflictIds::NoStaticSnapshot)))
            .into_iter()
            .chain(executed.then_some(SymbolRule::Executed))
    }

    /// Applies one time's memberships of this artifact and pushes the
    /// changes of what the rules derive onto `out`.
    fn apply(
        &mut self,
        batch: impl Iterator<Item = (Membership, isize)>,
        out: &mut Vec<(SymbolRule, isize)>,
    ) {
        let mut snapshots = 0;
        let mut deltas: FxHashMap<Symbol, Counts> = FxHashMap::default();
        for (membership, diff) in batch {
            let (symbol, which) = match membership {
                Membership::Snapshot => {
                    snapshots += diff;
                    continue;
                }
                Membership::Node(s) => (s, NODE),
                Membership::StaticReachable(s) => (s, STATIC_REACHABLE),
                Membership::Target(s) => (s, TARGET),
                Membership::Executed(s) => (s, EXECUTED),
                Membership::Covered(s) => (s, COVERED),
            };
            deltas.entry(symbol).or_default().0[which] += diff;
        }
        let artifact_before: Vec<SymbolRule> = self.artifact_rules().collect();
        let snapshot_before = self.snapshots > 0;
        self.snapshots += snapshots;
        let snapshot_after = self.snapshots > 0;
        // A snapshot that comes or goes changes what every symbol derives.
        if snapshot_before != snapshot_after {
            for &symbol in self.symbols.keys() {
                deltas.entry(symbol).or_default();
            }
        }
        for (symbol, delta) in deltas {
            let before = self.symbols.get(&symbol).copied().unwrap_or_default();
            let mut after = before;
            for (count, d) in after.0.iter_mut().zip(delta.0) {
                *count += d;
            }
            match (before.has(EXECUTED), after.has(EXECUTED)) {
                (false, true) => self.executed += 1,
                (true, false) => self.executed -= 1,
                _ => {}
            }
            if after == Counts::default() {
                self.symbols.remove(&symbol);
            } else {
                self.symbols.insert(symbol, after);
            }
            let (before, after) = (before.derive(snapshot_before), after.derive(snapshot_after));
            if before != after {
                difference(before.rules(symbol), after.rules(symbol), out);
            }
        }
        difference(artifact_before.into_iter(), self.artifact_rules(), out);
    }
}

/// Pushes what `after` has and `before` lacks (diff 1), and the reverse
/// (diff -1), onto `out`; both are a handful of rules at most.
fn difference(
    before: impl Iterator<Item = SymbolRule>,
    after: impl Iterator<Item = SymbolRule>,
    out: &mut Vec<(SymbolRule, isize)>,
) {
    let before: Vec<SymbolRule> = before.collect();
    let after: Vec<SymbolRule> = after.collect();
    let gone = before.iter().filter(|rule| !after.contains(rule));
    out.extend(gone.map(|rule| (rule.clone(), -1)));
    let new = after.iter().filter(|rule| !before.contains(rule));
    out.extend(new.map(|rule| (rule.clone(), 1)));
}

/// Each target's lattice state, each symbol's conflicts
/// (`executed_but_statically_unreachable`, `unknown_symbol`,
/// `reachable_but_unobserved`), each artifact's `no_static_snapshot`, and
/// which artifacts have an executed symbol, from the memberships of
/// DESIGN.md §4, as changes: a rule that holds before and after a time
/// is not repeated.
///
/// Each artifact's memberships live on one worker (inputs are exchanged by
/// artifact), so the output does not depend on the worker count.
pub fn symbol_rules<'s>(
    memberships: VecCollection<'s, Time, (Artifact, Membership)>,
) -> VecCollection<'s, Time, (Artifact, SymbolRule)> {
    let pact = Exchange::new(|((artifact, _), _, _): &((Artifact, Membership), Time, isize)| {
        *artifact as u64
    });
    memberships
        .inner
        .unary_frontier(pact, "SymbolRules", move |_, _| {
            let mut pending: BTreeMap<Time, Vec<(Artifact, Membership, isize)>> = BTreeMap::new();
            let mut capabilities = CapabilitySet::new();
            let mut artifacts: FxHashMap<Artifact, ArtifactSymbols> = FxHashMap::default();
            move |(input, frontier), output| {
                input.for_each(|capability, data| {
                    if let Some(capability) = capability.retain_least(0) {
                        capabilities.insert(capability);
                    }
                    for ((artifact, membership), time, diff) in data.drain(..) {
                        pending
                            .entry(time)
                            .or_default()
                            .push((artifact, membership, diff));
                    }
                });
                while let Some(entry) = pending.first_entry() {
                    let time = *entry.key();
                    if frontier.frontier().less_equal(&time) {
                        break;
                    }
                    let mut changes = entry.remove();
                    changes.sort_unstable_by_key(|(artifact, _, _)| *artifact);
                    let (mut rules, mut items) = (Vec::new(), Vec::new());
                    for batch in changes.chunk_by(|a, b| a.0 == b.0) {
                        let artifact = batch[0].0;
                        let symbols = artifacts.entry(artifact).or_default();
                        symbols.apply(batch.iter().map(|&(_, m, d)| (m, d)), &mut rules);
                        if symbols.symbols.is_empty() && symbols.snapshots == 0 {
                            artifacts.remove(&artifact);
                        }
                        items.extend(rules.drain(..).map(|(rule, d)| ((artifact, rule), d)));
                    }
                    let capability = capabilities.delayed(&time);
                    let mut session = output.session(&capability);
                    for (item, diff) in items {
                        session.give((item, time, diff));
                    }
                }
                // Hold a capability only for the earliest time still pending.
                capabilities = match pending.first_key_value() {
                    Some((time, _)) => CapabilitySet::from_elem(capabilities.delayed(time)),
                    None => CapabilitySet::new(),
                };
            }
        })
        .as_collection()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(
        symbols: &mut ArtifactSymbols,
        batch: &[(Membership, isize)],
    ) -> Vec<(SymbolRule, isize)> {
        let mut out = Vec::new();
        symbols.apply(batch.iter().copied(), &mut out);
        out.sort();
        out
    }

    fn sorted(mut rules: Vec<(SymbolRule, isize)>) -> Vec<(SymbolRule, isize)> {
        rules.sort();
        rules
    }

    #[test]
    fn a_target_moves_through_the_lattice() {
        let mut symbols = ArtifactSymbols::default();
        assert_eq!(
            apply(&mut symbols, &[(Membership::Target(7), 1)]),
            sorted(vec![(SymbolRule::State(7, State::Unknown), 1)])
        );
        assert_eq!(
            apply(
                &mut symbols,
                &[
                    (Membership::Snapshot, 1),
                    (Membership::Node(7), 1),
                    (Membership::StaticReachable(7), 1)
                ]
            ),
            sorted(vec![
                (SymbolRule::State(7, State::Unknown), -1),
                (SymbolRule::State(7, State::StaticReachable), 1)
            ])
        );
        // Covered and never run: the soft conflict, the state stays.
        assert_eq!(
            apply(&mut symbols, &[(Membership::Covered(7), 1)]),
            sorted(vec![(
                SymbolRule::Conflict(ConflictIds::ReachableButUnobserved(7)),
                1
            )])
        );
        // Executed in two shards: one leaving changes nothing.
        let executed_twice = apply(
            &mut symbols,
            &[(Membership::Executed(7), 1), (Membership::Executed(7), 1)],
        );
        assert_eq!(
            executed_twice,
            sorted(vec![
                (SymbolRule::State(7, State::StaticReachable), -1),
                (SymbolRule::State(7, State::ConfirmedReachable), 1),
                (
                    SymbolRule::Conflict(ConflictIds::ReachableButUnobserved(7)),
                    -1
                ),
                (SymbolRule::Executed, 1),
            ])
        );
        assert_eq!(apply(&mut symbols, &[(Membership::Executed(7), -1)]), vec![]);
    }

    #[test]
    fn a_snapshot_decides_whether_an_executed_symbol_is_known() {
        let mut symbols = ArtifactSymbols::default();
        assert_eq!(
            apply(&mut symbols, &[(Membership::Executed(3), 1)]),
            sorted(vec![
                (SymbolRule::Conflict(ConflictIds::NoStaticSnapshot), 1),
                (SymbolRule::Executed, 1)
            ])
        );
        // The snapshot comes without the symbol: it is unknown.
        assert_eq!(
            apply(&mut symbols, &[(Membership::Snapshot, 1)]),
            sorted(vec![
                (SymbolRule::Conflict(ConflictIds::UnknownSymbol(3)), 1),
                (SymbolRule::Conflict(ConflictIds::NoStaticSnapshot), -1),
            ])
        );
        // A later snapshot has it, unreachable.
        assert_eq!(
            apply(&mut symbols, &[(Membership::Node(3), 1)]),
            sorted(vec![
                (
                    SymbolRule::Conflict(ConflictIds::ExecutedButStaticallyUnreachable(3)),
                    1
                ),
                (SymbolRule::Conflict(ConflictIds::UnknownSymbol(3)), -1),
            ])
        );
        // The window moves on: nothing is left, nor kept.
        assert_eq!(
            apply(&mut symbols, &[(Membership::Executed(3), -1)]),
            sorted(vec![
                (
                    SymbolRule::Conflict(ConflictIds::ExecutedButStaticallyUnreachable(3)),
                    -1
                ),
                (SymbolRule::Executed, -1)
            ])
        );
        apply(
            &mut symbols,
            &[(Membership::Node(3), -1), (Membership::Snapshot, -1)],
        );
        assert!(symbols.symbols.is_empty());
        assert_eq!(symbols.executed, 0);
    }
}
