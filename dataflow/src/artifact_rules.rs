//! The rules of DESIGN.md §4 that look at one symbol or one edge of an
//! artifact at a time: each observed edge's place in the snapshot, the
//! strategy's resolution of a runtime edge the snapshot lacks, each
//! target's lattice state, and every conflict kind.
//!
//! Each rule is a test of memberships: is the symbol a snapshot node,
//! statically reachable, a target, executed, covered; is the edge static,
//! observed, at quorum; does the artifact have a snapshot. The observed,
//! executed and covered sets change with every window; as differential
//! joins, each rule that consults them would keep its own arranged copy of
//! that churn. `ArtifactMemberships` keeps one artifact's memberships in
//! hash maps and applies each time's changes at once; the artifact's
//! operator ([`crate::artifact`]) runs it.

use std::collections::hash_map::Entry;
use std::hash::Hash;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use tracemerge_records::{Resolution, State, Strategy};

use crate::complete::keep_for_next_time;
use crate::model::{ConflictIds, Symbol};
use crate::verdict::{resolve, Quarantine};

/// A membership of a symbol or an edge of an artifact, or of the artifact
/// itself; its diff says whether it comes or goes. Memberships count: a
/// symbol executed in two aggregator shards is executed while either says
/// so.
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
    /// An edge of the snapshot.
    StaticEdge(Symbol, Symbol),
    /// A live observed edge.
    ObservedEdge(Symbol, Symbol),
    /// A live edge that meets `quorum:H:S`.
    QuorumMet(Symbol, Symbol),
    /// An entrypoint of the artifact's snapshot: a root of its closures,
    /// which no rule here reads.
    Entrypoint(Symbol),
}

/// What the rules derive within an artifact.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Derived {
    /// A live observed edge, and whether the snapshot has it.
    Edge(Symbol, Symbol, bool),
    /// The lattice state of a target.
    State(Symbol, State),
    /// A conflict of any kind.
    Conflict(ConflictIds),
}

/// The memberships of one symbol, as counts. Each input is a set, so a
/// count is 0 or 1, but `Executed` and `Covered`, which every aggregator
/// shard that holds the symbol reports: two bytes hold them, and the table
/// entry is 16 bytes with the symbol, where `i32` counts made it 24.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct SymbolCounts([i16; 5]);

const NODE: usize = 0;
const STATIC_REACHABLE: usize = 1;
const TARGET: usize = 2;
const EXECUTED: usize = 3;
const COVERED: usize = 4;

/// The memberships of one edge, as counts. Each input is a set (an edge's
/// sightings live in one aggregator shard), so a count is 0 or 1 and a
/// byte holds it: a 12-byte table entry with the edge, where `i32` counts
/// made it 20, for a table that holds every static and live edge.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct EdgeCounts([i8; 3]);

const STATIC: usize = 0;
const OBSERVED: usize = 1;
const QUORUM: usize = 2;

/// Adds `delta` to `counts`, member by member.
fn add<T: Copy + std::ops::AddAssign, const N: usize>(counts: [T; N], delta: [T; N]) -> [T; N] {
    let mut sum = counts;
    for (count, d) in sum.iter_mut().zip(delta) {
        *count += d;
    }
    sum
}

/// Adds `delta` to `key`'s counts in `table` with one lookup, dropping the
/// entry once its counts are all zero (the default); the counts before and
/// after.
fn add_counts<K: Eq + Hash, C: Copy + Default + PartialEq>(
    table: &mut FxHashMap<K, C>,
    key: K,
    delta: C,
    add: impl Fn(C, C) -> C,
) -> (C, C) {
    match table.entry(key) {
        Entry::Occupied(mut counts) => {
            let old = *counts.get();
            let new = add(old, delta);
            if new == C::default() {
                counts.remove();
            } else {
                *counts.get_mut() = new;
            }
            (old, new)
        }
        Entry::Vacant(slot) => {
            if delta != C::default() {
                slot.insert(delta);
            }
            (C::default(), delta)
        }
    }
}

impl SymbolCounts {
    fn has(&self, membership: usize) -> bool {
        self.0[membership] > 0
    }

    /// What the symbol rules derive, given whether the artifact has a
    /// snapshot.
    fn derive(&self, symbol: Symbol, snapshot: bool, out: &mut Vec<Derived>) {
        let [node, reachable, target, executed, covered] =
            [NODE, STATIC_REACHABLE, TARGET, EXECUTED, COVERED].map(|m| self.has(m));
        let runtime_side = if executed {
            Some(true)
        } else if covered {
            Some(false)
        } else {
            None
        };
        if target {
            let state = State::join(snapshot.then_some(reachable), runtime_side);
            out.push(Derived::State(symbol, state));
        }
        let conflicts = [
            (executed && node && !reachable)
                .then_some(ConflictIds::ExecutedButStaticallyUnreachable(symbol)),
            (executed && snapshot && !node).then_some(ConflictIds::UnknownSymbol(symbol)),
            (target && reachable && covered && !executed)
                .then_some(ConflictIds::ReachableButUnobserved(symbol)),
        ];
        out.extend(conflicts.into_iter().flatten().map(Derived::Conflict));
    }
}

/// How the rules resolve a runtime edge the snapshot lacks.
#[derive(Clone)]
pub struct Resolver {
    pub strategy: Strategy,
    pub quarantine: Quarantine,
}

impl EdgeCounts {
    fn has(&self, membership: usize) -> bool {
        self.0[membership] > 0
    }

    /// Whether [`EdgeCounts::derive`] reads whether the edge's ends are
    /// nodes: only for an observed edge the snapshot lacks.
    fn reads_nodes(&self) -> bool {
        self.has(OBSERVED) && !self.has(STATIC)
    }

    /// How the strategy resolves the edge as a runtime edge the snapshot
    /// lacks (only `quorum:H:S` looks at the quorum flag).
    fn resolution(&self, (caller, callee): (Symbol, Symbol), resolver: &Resolver) -> Resolution {
        let quorum_met = self.has(QUORUM);
        resolve(
            &resolver.strategy,
            &resolver.quarantine,
            caller,
            callee,
            quorum_met,
        )
    }

    /// The roles the edge plays in the closures.
    fn roles(&self, edge: (Symbol, Symbol), resolver: &Resolver) -> EdgeRoles {
        let (static_, observed) = (self.has(STATIC), self.has(OBSERVED));
        let accepted =
            observed && !static_ && self.resolution(edge, resolver) == Resolution::Accepted;
        EdgeRoles {
            static_,
            accepted,
            observed,
        }
    }

    /// What the edge rules derive, given whether its ends are snapshot
    /// nodes. (Called twice an edge on every round: out of line it cost
    /// the worker 2% more instructions.)
    #[inline(always)]
    fn derive(
        &self,
        (caller, callee): (Symbol, Symbol),
        ends_are_nodes: bool,
        resolver: &Resolver,
        out: &mut Vec<Derived>,
    ) {
        if !self.has(OBSERVED) {
            return;
        }
        let in_static = self.has(STATIC);
        out.push(Derived::Edge(caller, callee, in_static));
        if in_static {
            return;
        }
        if ends_are_nodes {
            out.push(Derived::Conflict(ConflictIds::RuntimeEdgeNotInStatic {
                caller,
                callee,
                resolution: self.resolution((caller, callee), resolver),
            }));
        }
    }
}

/// The roles an edge plays in an artifact's closures, as the rules decide
/// them: a static edge and a runtime edge the snapshot lacks that the
/// strategy accepts are effective edges; a live observed edge is a
/// runtime-closure edge, and makes a static hop `both`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EdgeRoles {
    pub static_: bool,
    pub accepted: bool,
    pub observed: bool,
}

/// An edge whose roles changed at a time: the edge, its roles before and
/// after.
pub type RoleChange = ((Symbol, Symbol), EdgeRoles, EdgeRoles);

/// The memberships of one artifact's symbols and edges.
#[derive(Default)]
pub(crate) struct ArtifactMemberships {
    snapshots: isize,
    /// How many symbols are executed.
    executed: usize,
    /// How many symbols are statically reachable: the static closure's size.
    static_reachable: usize,
    symbols: FxHashMap<Symbol, SymbolCounts>,
    edges: FxHashMap<(Symbol, Symbol), EdgeCounts>,
    /// One time's working tables, kept between times with their capacity
    /// (a round's tables otherwise grow from empty, rehashing as they go).
    scratch: Scratch,
}

/// What [`ArtifactMemberships::apply`] works in; empty between times.
#[derive(Default)]
struct Scratch {
    symbol_deltas: FxHashMap<Symbol, SymbolCounts>,
    edge_deltas: FxHashMap<(Symbol, Symbol), EdgeCounts>,
    /// Edges whose counts changed, before and after, and whether their
    /// ends were nodes before (where the rules read it).
    changed_edges: Vec<((Symbol, Symbol), EdgeCounts, EdgeCounts, bool)>,
    before: Vec<Derived>,
    after: Vec<Derived>,
}

impl ArtifactMemberships {
    pub(crate) fn is_empty(&self) -> bool {
        self.snapshots == 0 && self.symbols.is_empty() && self.edges.is_empty()
    }

    /// The entries its tables keep.
    pub(crate) fn entries(&self) -> usize {
        self.symbols.len() + self.edges.len()
    }

    pub(crate) fn has_snapshot(&self) -> bool {
        self.snapshots > 0
    }

    pub(crate) fn has_executed(&self) -> bool {
        self.executed > 0
    }

    /// How many symbols are statically reachable.
    pub(crate) fn static_reachable(&self) -> usize {
        self.static_reachable
    }

    /// The roles `edge` plays in the closures now.
    pub(crate) fn roles_of(&self, edge: (Symbol, Symbol), resolver: &Resolver) -> EdgeRoles {
        let counts = self.edges.get(&edge).copied().unwrap_or_default();
        counts.roles(edge, resolver)
    }

    fn is_node(&self, symbol: Symbol) -> bool {
        self.symbols.get(&symbol).is_some_and(|c| c.has(NODE))
    }

    fn ends_are_nodes(&self, (caller, callee): (Symbol, Symbol)) -> bool {
        self.is_node(caller) && self.is_node(callee)
    }

    /// The artifact-level rule, `no_static_snapshot`, given how many
    /// symbols are executed and the count of snapshots.
    fn derive_artifact((executed, snapshots): (usize, isize), out: &mut Vec<Derived>) {
        if executed > 0 && snapshots <= 0 {
            out.push(Derived::Conflict(ConflictIds::NoStaticSnapshot));
        }
    }

    /// Applies one time's memberships of this artifact and pushes the
    /// changes of what the rules derive onto `out`, and the edges whose
    /// roles in the closures changed onto `roles`.
    pub(crate) fn apply(
        &mut self,
        batch: impl Iterator<Item = (Membership, isize)>,
        resolver: &Resolver,
        out: &mut Vec<(Derived, isize)>,
        roles: &mut Vec<RoleChange>,
    ) {
        let mut snapshots = 0;
        let mut scratch = std::mem::take(&mut self.scratch);
        let Scratch {
            symbol_deltas,
            edge_deltas,
            changed_edges,
            before,
            after,
        } = &mut scratch;
        for (membership, diff) in batch {
            let (symbol, which) = match membership {
                Membership::Snapshot => {
                    snapshots += diff;
                    continue;
                }
                Membership::StaticEdge(u, v) => {
                    edge_deltas.entry((u, v)).or_default().0[STATIC] += diff as i8;
                    continue;
                }
                Membership::ObservedEdge(u, v) => {
                    edge_deltas.entry((u, v)).or_default().0[OBSERVED] += diff as i8;
                    continue;
                }
                Membership::QuorumMet(u, v) => {
                    edge_deltas.entry((u, v)).or_default().0[QUORUM] += diff as i8;
                    continue;
                }
                Membership::Entrypoint(_) => continue,
                Membership::Node(s) => (s, NODE),
                Membership::StaticReachable(s) => (s, STATIC_REACHABLE),
                Membership::Target(s) => (s, TARGET),
                Membership::Executed(s) => (s, EXECUTED),
                Membership::Covered(s) => (s, COVERED),
            };
            symbol_deltas.entry(symbol).or_default().0[which] += diff as i16;
        }
        // Nodes come and go with snapshots: then every observed edge may
        // gain or lose its conflict.
        let nodes_change = symbol_deltas.values().any(|d| d.0[NODE] != 0);
        if nodes_change {
            for (&edge, counts) in &self.edges {
                if counts.has(OBSERVED) {
                    edge_deltas.entry(edge).or_default();
                }
            }
        }
        // When the nodes change, the touched edges' counts are applied
        // before the symbols, so that their ends' node memberships are
        // read before as well as after (else after the symbols, in one
        // pass). Each table is looked up once an edge, and the ends only
        // where the rules read them: a snapshot's load touches a million
        // edges, and each lookup is a cache miss.
        let edges_used = edge_deltas.len();
        if nodes_change {
            for (edge, delta) in edge_deltas.drain() {
                let (old, new) = add_counts(&mut self.edges, edge, delta, |a, b| {
                    EdgeCounts(add(a.0, b.0))
                });
                let nodes = reads_nodes(old, new) && self.ends_are_nodes(edge);
                changed_edges.push((edge, old, new, nodes));
            }
        }

        let artifact_before = (self.executed, self.snapshots);
        let snapshot_before = self.snapshots > 0;
        self.snapshots += snapshots;
        let snapshot_after = self.snapshots > 0;
        // A snapshot that comes or goes changes what every symbol derives.
        if snapshot_before != snapshot_after {
            for &symbol in self.symbols.keys() {
                symbol_deltas.entry(symbol).or_default();
            }
        }
        let symbols_used = symbol_deltas.len();
        for (symbol, delta) in symbol_deltas.drain() {
            let (old, new) = add_counts(&mut self.symbols, symbol, delta, |a, b| {
                SymbolCounts(add(a.0, b.0))
            });
            count_members(&mut self.executed, old.has(EXECUTED), new.has(EXECUTED));
            let reachable = |c: SymbolCounts| c.has(STATIC_REACHABLE);
            count_members(&mut self.static_reachable, reachable(old), reachable(new));
            old.derive(symbol, snapshot_before, before);
            new.derive(symbol, snapshot_after, after);
            difference(before, after, out);
        }
        Self::derive_artifact(artifact_before, before);
        Self::derive_artifact((self.executed, self.snapshots), after);
        difference(before, after, out);

        for (edge, old, new, old_nodes) in changed_edges.drain(..) {
            let nodes = reads_nodes(old, new) && self.ends_are_nodes(edge);
            old.derive(edge, old_nodes, resolver, before);
            new.derive(edge, nodes, resolver, after);
            difference(before, after, out);
            push_role_change(edge, old, new, resolver, roles);
        }
        if !nodes_change {
            // One lookup an edge; its ends' node memberships only where the
            // rules read them (an observed edge the snapshot lacks).
            for (edge, delta) in edge_deltas.drain() {
                let (old, new) = add_counts(&mut self.edges, edge, delta, |a, b| {
                    EdgeCounts(add(a.0, b.0))
                });
                let nodes = reads_nodes(old, new) && self.ends_are_nodes(edge);
                old.derive(edge, nodes, resolver, before);
                new.derive(edge, nodes, resolver, after);
                difference(before, after, out);
                push_role_change(edge, old, new, resolver, roles);
            }
        }
        keep_for_next_time(symbol_deltas, symbols_used);
        keep_for_next_time(edge_deltas, edges_used);
        self.scratch = scratch;
    }
}

/// Whether the rules read an edge's ends' node memberships, given its
/// counts before and after.
fn reads_nodes(old: EdgeCounts, new: EdgeCounts) -> bool {
    old.reads_nodes() || new.reads_nodes()
}

/// Follows a count of members as one key joins (`before` false, `after`
/// true) or leaves.
fn count_members(count: &mut usize, before: bool, after: bool) {
    match (before, after) {
        (false, true) => *count += 1,
        (true, false) => *count -= 1,
        _ => {}
    }
}

/// Pushes `edge` with its roles before and after, if they differ.
fn push_role_change(
    edge: (Symbol, Symbol),
    old: EdgeCounts,
    new: EdgeCounts,
    resolver: &Resolver,
    roles: &mut Vec<RoleChange>,
) {
    let (before, after) = (old.roles(edge, resolver), new.roles(edge, resolver));
    if before != after {
        roles.push((edge, before, after));
    }
}

/// Pushes what `after` has and `before` lacks (diff 1), and the reverse
/// (diff -1), onto `out`; leaves both empty. Both hold what one key (a
/// symbol, an edge, the artifact) derives, a few items, and no two keys
/// derive the same item, so comparing key by key needs no sort.
fn difference(
    before: &mut Vec<Derived>,
    after: &mut Vec<Derived>,
    out: &mut Vec<(Derived, isize)>,
) {
    for item in before.drain(..) {
        match after.iter().position(|a| *a == item) {
            Some(i) => {
                after.swap_remove(i);
            }
            None => out.push((item, -1)),
        }
    }
    out.extend(after.drain(..).map(|item| (item, 1)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn union() -> Resolver {
        Resolver {
            strategy: Strategy::Union,
            quarantine: Quarantine::default(),
        }
    }

    fn apply(
        memberships: &mut ArtifactMemberships,
        resolver: &Resolver,
        batch: &[(Membership, isize)],
    ) -> Vec<(Derived, isize)> {
        let (mut out, mut roles) = (Vec::new(), Vec::new());
        memberships.apply(batch.iter().copied(), resolver, &mut out, &mut roles);
        // Each edge's roles change at most once a time, to what they are.
        for (edge, before, after) in roles {
            assert_ne!(before, after);
            assert_eq!(after, memberships.roles_of(edge, resolver));
        }
        out.sort();
        out
    }

    fn sorted(mut derived: Vec<(Derived, isize)>) -> Vec<(Derived, isize)> {
        derived.sort();
        derived
    }

    #[test]
    fn a_target_moves_through_the_lattice() {
        let (mut m, r) = (ArtifactMemberships::default(), union());
        assert_eq!(
            apply(&mut m, &r, &[(Membership::Target(7), 1)]),
            vec![(Derived::State(7, State::Unknown), 1)]
        );
        let snapshot = [
            (Membership::Snapshot, 1),
            (Membership::Node(7), 1),
            (Membership::StaticReachable(7), 1),
        ];
        assert_eq!(
            apply(&mut m, &r, &snapshot),
            sorted(vec![
                (Derived::State(7, State::Unknown), -1),
                (Derived::State(7, State::StaticReachable), 1)
            ])
        );
        // Covered and never run: the soft conflict, the state stays.
        assert_eq!(
            apply(&mut m, &r, &[(Membership::Covered(7), 1)]),
            vec![(Derived::Conflict(ConflictIds::ReachableButUnobserved(7)), 1)]
        );
        // Executed in two shards: one leaving changes nothing.
        let executed_twice = [(Membership::Executed(7), 1), (Membership::Executed(7), 1)];
        assert_eq!(
            apply(&mut m, &r, &executed_twice),
            sorted(vec![
                (Derived::State(7, State::StaticReachable), -1),
                (Derived::State(7, State::ConfirmedReachable), 1),
                (
                    Derived::Conflict(ConflictIds::ReachableButUnobserved(7)),
                    -1
                ),
            ])
        );
        assert!(m.has_executed());
        assert_eq!(apply(&mut m, &r, &[(Membership::Executed(7), -1)]), vec![]);
        assert!(m.has_executed());
    }

    #[test]
    fn a_snapshot_decides_whether_an_executed_symbol_is_known() {
        let (mut m, r) = (ArtifactMemberships::default(), union());
        assert_eq!(
            apply(&mut m, &r, &[(Membership::Executed(3), 1)]),
            vec![(Derived::Conflict(ConflictIds::NoStaticSnapshot), 1)]
        );
        assert!(m.has_executed() && !m.has_snapshot());
        // The snapshot comes without the symbol: it is unknown.
        assert_eq!(
            apply(&mut m, &r, &[(Membership::Snapshot, 1)]),
            sorted(vec![
                (Derived::Conflict(ConflictIds::UnknownSymbol(3)), 1),
                (Derived::Conflict(ConflictIds::NoStaticSnapshot), -1),
            ])
        );
        // A later snapshot has it, unreachable.
        assert_eq!(
            apply(&mut m, &r, &[(Membership::Node(3), 1)]),
            sorted(vec![
                (
                    Derived::Conflict(ConflictIds::ExecutedButStaticallyUnreachable(3)),
                    1
                ),
                (Derived::Conflict(ConflictIds::UnknownSymbol(3)), -1),
            ])
        );
        // The window moves on: nothing is derived, nor kept.
        assert_eq!(
            apply(&mut m, &r, &[(Membership::Executed(3), -1)]),
            vec![(
                Derived::Conflict(ConflictIds::ExecutedButStaticallyUnreachable(3)),
                -1
            )]
        );
        assert!(!m.has_executed());
        apply(
            &mut m,
            &r,
            &[(Membership::Node(3), -1), (Membership::Snapshot, -1)],
        );
        assert!(m.is_empty());
        assert_eq!(m.executed, 0);
    }

    #[test]
    fn a_runtime_edge_is_resolved_and_in_conflict_once_both_ends_are_nodes() {
        let quorum = Resolver {
            strategy: Strategy::Quorum {
                hits: 2,
                sources: 1,
            },
            quarantine: Quarantine::default(),
        };
        let mut m = ArtifactMemberships::default();
        assert_eq!(
            apply(&mut m, &quorum, &[(Membership::ObservedEdge(1, 2), 1)]),
            vec![(Derived::Edge(1, 2, false), 1)]
        );
        let conflict = |resolution| {
            Derived::Conflict(ConflictIds::RuntimeEdgeNotInStatic {
                caller: 1,
                callee: 2,
                resolution,
            })
        };
        // A snapshot with both ends but not the edge: pending under quorum.
        let snapshot = [
            (Membership::Snapshot, 1),
            (Membership::Node(1), 1),
            (Membership::Node(2), 1),
        ];
        assert_eq!(
            apply(&mut m, &quorum, &snapshot),
            vec![(conflict(Resolution::Pending), 1)]
        );
        assert!(!m.roles_of((1, 2), &quorum).accepted);
        assert_eq!(
            apply(&mut m, &quorum, &[(Membership::QuorumMet(1, 2), 1)]),
            sorted(vec![
                (conflict(Resolution::Pending), -1),
                (conflict(Resolution::Accepted), 1),
            ])
        );
        assert!(m.roles_of((1, 2), &quorum).accepted);
        // The next snapshot has the edge: no longer a runtime-only edge.
        assert_eq!(
            apply(&mut m, &quorum, &[(Membership::StaticEdge(1, 2), 1)]),
            sorted(vec![
                (Derived::Edge(1, 2, false), -1),
                (Derived::Edge(1, 2, true), 1),
                (conflict(Resolution::Accepted), -1),
            ])
        );
        let roles = m.roles_of((1, 2), &quorum);
        assert!(roles.static_ && roles.observed && !roles.accepted);
        // It expires; the static edge stays and derives nothing.
        let expire = [
            (Membership::ObservedEdge(1, 2), -1),
            (Membership::QuorumMet(1, 2), -1),
        ];
        assert_eq!(
            apply(&mut m, &quorum, &expire),
            vec![(Derived::Edge(1, 2, true), -1)]
        );
        assert_eq!(m.edges.len(), 1);
    }

    #[test]
    fn difference_keeps_only_what_changed() {
        let mut out = Vec::new();
        let mut before = vec![
            Derived::State(1, State::Unknown),
            Derived::Edge(1, 2, false),
        ];
        let mut after = vec![Derived::Edge(1, 2, true), Derived::State(1, State::Unknown)];
        difference(&mut before, &mut after, &mut out);
        assert!(before.is_empty() && after.is_empty());
        assert_eq!(
            sorted(out),
            sorted(vec![
                (Derived::Edge(1, 2, false), -1),
                (Derived::Edge(1, 2, true), 1)
            ])
        );
    }
}
