//! Reachability closures and witness paths.
//!
//! Each closure is kept by one dynamic BFS per artifact ([`ShortestPaths`]),
//! where differential would re-derive a BFS with its history: the static
//! closure ([`static_closure`], its own operator) changes only with
//! snapshots; the runtime and effective closures (`ArtifactGraph`, in the
//! artifact's operator, [`crate::artifact`]) change with every edge that
//! appears or expires.

use std::hash::Hash;

use differential_dataflow::VecCollection;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use tracemerge_records::{Hop, Time};

use crate::complete::{keep_for_next_time, per_artifact_at_complete_times};
use crate::model::{Artifact, Node, Symbol};
use crate::profile::note_kept;
use crate::shortest_paths::ShortestPaths;
use crate::symbols::{name_prefix, Names};

/// An input of [`static_closure`] within one artifact; its diff says
/// whether it comes or goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum StaticChange {
    Edge(Symbol, Symbol),
    Entrypoint(Symbol),
}

/// The nodes reachable from each artifact's entrypoints along its static
/// edges, entrypoints included.
///
/// One dynamic BFS per artifact ([`ShortestPaths`], on the artifact's
/// worker), as for the runtime and effective closures: a differential
/// fixpoint held every static edge and every reached node several times
/// over in its arrangements (2.5 million updates for a snapshot of 1.2
/// million edges) and scheduled its iterative scope at every round, though
/// snapshots change seldom.
pub fn static_closure<'s>(
    changes: VecCollection<'s, Time, (Artifact, StaticChange)>,
) -> VecCollection<'s, Time, Node> {
    let mut graphs: FxHashMap<Artifact, StaticGraph> = FxHashMap::default();
    per_artifact_at_complete_times(changes, "StaticClosure", move |artifact, batch, out| {
        let graph = graphs.entry(artifact).or_insert_with(StaticGraph::new);
        graph.apply(batch.iter().map(|&((_, change), diff)| (change, diff)));
        note_kept(
            "StaticClosure",
            artifact,
            graph.edges.len() + graph.entrypoints.len(),
        );
        (graph.paths.reach_changes())
            .for_each(|(node, reached)| out.push(((artifact, node), if reached { 1 } else { -1 })));
        if graph.edges.is_empty() && graph.entrypoints.is_empty() {
            graphs.remove(&artifact);
        }
    })
}

/// One artifact's static graph as [`static_closure`] sees it.
struct StaticGraph {
    /// How many times each edge and entrypoint is present (a set's 0 or 1).
    edges: FxHashMap<(Symbol, Symbol), isize>,
    entrypoints: FxHashMap<Symbol, isize>,
    paths: ShortestPaths<Symbol>,
}

impl StaticGraph {
    fn new() -> Self {
        StaticGraph {
            edges: FxHashMap::default(),
            entrypoints: FxHashMap::default(),
            paths: ShortestPaths::new(),
        }
    }

    /// Applies one time's changes of the artifact's edges and entrypoints.
    fn apply(&mut self, batch: impl Iterator<Item = (StaticChange, isize)>) {
        let mut edges: FxHashMap<(Symbol, Symbol), isize> = FxHashMap::default();
        let mut entrypoints: FxHashMap<Symbol, isize> = FxHashMap::default();
        for (change, diff) in batch {
            match change {
                StaticChange::Edge(u, v) => *edges.entry((u, v)).or_default() += diff,
                StaticChange::Entrypoint(s) => *entrypoints.entry(s).or_default() += diff,
            }
        }
        let (added, removed) = count_members(&mut self.edges, edges);
        let (roots_added, roots_removed) = count_members(&mut self.entrypoints, entrypoints);
        (self.paths).apply(&added, &removed, &roots_added, &roots_removed, |s| s as u64);
    }
}

/// How an edge takes part in the dynamic closures; one edge may hold
/// several roles at once (a static edge that ran is `Static` and `Observed`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EdgeRole {
    /// In the snapshot: an effective edge.
    Static,
    /// A runtime edge the snapshot lacks, accepted by the strategy: an
    /// effective edge.
    Accepted,
    /// A live observed edge: a runtime-closure edge, and what makes a
    /// static hop `both`.
    Observed,
}

/// A change of an `ArtifactGraph`; its diff says whether it comes or goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphChange {
    Edge(EdgeRole, Symbol, Symbol),
    Entrypoint(Symbol),
    Target(Symbol),
}

/// A witness path: its symbols from an entrypoint, and the label of each hop.
pub type WitnessPath = (Vec<Symbol>, Vec<Hop>);

/// How many of each [`EdgeRole`] an edge holds, by role. Each role's input
/// is a set, so a count is 0 or 1 and a byte holds it; three bytes and the
/// two symbols make a 12-byte table entry, the size that bits would take
/// too (the symbols' alignment), where `isize` counts took 32.
type RoleCounts = [i8; 3];

/// One artifact's runtime closure (over `Observed` edges) and effective
/// closure (over `Static` and `Accepted` edges), from its entrypoints, and
/// each target's witness path in the effective graph (DESIGN.md §4: a
/// shortest path whose parents are the smallest symbols by name, each hop
/// labelled static, runtime or both).
pub(crate) struct ArtifactGraph {
    /// Per edge, how many of each [`EdgeRole`] it holds.
    roles: FxHashMap<(Symbol, Symbol), RoleCounts>,
    entrypoints: FxHashMap<Symbol, isize>,
    targets: FxHashMap<Symbol, isize>,
    runtime: ShortestPaths<Symbol>,
    effective: ShortestPaths<Symbol>,
    /// The witness paths last reported.
    paths: Paths,
    /// One time's net change per edge, kept between times with its
    /// capacity.
    edge_deltas: FxHashMap<(Symbol, Symbol), RoleCounts>,
}

/// Whether an edge with these role counts is effective, and its hop label.
fn effective_label(roles: &RoleCounts) -> Option<Hop> {
    let [static_, accepted, observed] = roles.map(|n| n > 0);
    match (static_, accepted, observed) {
        (true, _, true) => Some(Hop::Both),
        (true, _, false) => Some(Hop::Static),
        (false, true, _) => Some(Hop::Runtime),
        (false, false, _) => None,
    }
}

/// Adds `deltas` to the member counts of a set; returns the members that
/// joined it and those that left.
fn count_members<M: Copy + Eq + Hash>(
    counts: &mut FxHashMap<M, isize>,
    deltas: FxHashMap<M, isize>,
) -> (Vec<M>, Vec<M>) {
    let (mut joined, mut left) = (Vec::new(), Vec::new());
    for (member, delta) in deltas {
        let count = counts.entry(member).or_default();
        match presence_change(*count, *count + delta) {
            Some(true) => joined.push(member),
            Some(false) => left.push(member),
            None => {}
        }
        *count += delta;
        if *count == 0 {
            counts.remove(&member);
        }
    }
    (joined, left)
}

/// Whether a count became positive (`Some(true)`) or stopped being so.
fn presence_change(before: isize, after: isize) -> Option<bool> {
    match (before > 0, after > 0) {
        (false, true) => Some(true),
        (true, false) => Some(false),
        _ => None,
    }
}

impl ArtifactGraph {
    /// The entries its tables keep: edges, entrypoints, targets and paths.
    pub(crate) fn entries(&self) -> usize {
        self.roles.len() + self.entrypoints.len() + self.targets.len() + self.paths.len()
    }

    /// Whether it has a target.
    pub(crate) fn has_targets(&self) -> bool {
        !self.targets.is_empty()
    }

    /// The sizes of the runtime and effective closures.
    pub(crate) fn sizes(&self) -> (usize, usize) {
        (self.runtime.reached(), self.effective.reached())
    }

    pub(crate) fn new() -> Self {
        ArtifactGraph {
            roles: FxHashMap::default(),
            entrypoints: FxHashMap::default(),
            targets: FxHashMap::default(),
            runtime: ShortestPaths::new(),
            effective: ShortestPaths::new(),
            paths: Paths::default(),
            edge_deltas: FxHashMap::default(),
        }
    }

    /// Applies one time's changes of this artifact and pushes the changes
    /// of its targets' witness paths onto `paths`.
    pub(crate) fn apply(
        &mut self,
        batch: impl Iterator<Item = (GraphChange, isize)>,
        names: &Names,
        paths: &mut Vec<(Symbol, WitnessPath, isize)>,
    ) {
        // Net change per edge role, entrypoint and target.
        let mut edges = std::mem::take(&mut self.edge_deltas);
        let mut entrypoints: FxHashMap<Symbol, isize> = FxHashMap::default();
        let mut targets: FxHashMap<Symbol, isize> = FxHashMap::default();
        for (change, diff) in batch {
            match change {
                GraphChange::Edge(role, u, v) => {
                    edges.entry((u, v)).or_default()[role as usize] += diff as i8
                }
                GraphChange::Entrypoint(s) => *entrypoints.entry(s).or_default() += diff,
                GraphChange::Target(s) => *targets.entry(s).or_default() += diff,
            }
        }

        let (mut effective_added, mut effective_removed) = (Vec::new(), Vec::new());
        let (mut runtime_added, mut runtime_removed) = (Vec::new(), Vec::new());
        let mut relabelled = Vec::new();
        let edges_used = edges.len();
        for (edge, delta) in edges.drain() {
            let entry = self.roles.entry(edge).or_default();
            let before = *entry;
            for (count, d) in entry.iter_mut().zip(delta) {
                *count += d;
            }
            let after = *entry;
            if after == [0; 3] {
                self.roles.remove(&edge);
            }
            match (effective_label(&before), effective_label(&after)) {
                (None, Some(_)) => effective_added.push(edge),
                (Some(_), None) => effective_removed.push(edge),
                (Some(a), Some(b)) if a != b => relabelled.push(edge),
                _ => {}
            }
            match presence_change(
                before[EdgeRole::Observed as usize] as isize,
                after[EdgeRole::Observed as usize] as isize,
            ) {
                Some(true) => runtime_added.push(edge),
                Some(false) => runtime_removed.push(edge),
                None => {}
            }
        }
        keep_for_next_time(&mut edges, edges_used);
        self.edge_deltas = edges;
        let (roots_added, roots_removed) = count_members(&mut self.entrypoints, entrypoints);
        let (targets_added, targets_removed) = count_members(&mut self.targets, targets);

        let key = |s: Symbol| s as u64;
        (self.runtime).apply(
            &runtime_added,
            &runtime_removed,
            &roots_added,
            &roots_removed,
            key,
        );
        let names = names.read();
        let key = |s: Symbol| name_prefix(names.get(s));
        let order = |a: Symbol, b: Symbol| names.get(a).cmp(names.get(b));
        let effective_changed = !(effective_added.is_empty()
            && effective_removed.is_empty()
            && roots_added.is_empty()
            && roots_removed.is_empty());
        (self.effective).apply(
            &effective_added,
            &effective_removed,
            &roots_added,
            &roots_removed,
            key,
        );

        // Witness paths: of new targets, and of targets whose path may have
        // changed; a hop whose label changed only relabels the paths that
        // take it.
        for target in targets_removed {
            if let Some(path) = self.paths.set(target, None) {
                paths.push((target, path, -1));
            }
        }
        let mut recheck: Vec<Symbol> = targets_added;
        if effective_changed {
            recheck.extend(self.targets.keys().filter(|&&t| match self.paths.get(t) {
                Some((path, _)) => self.effective.path_may_have_changed(path),
                None => self.effective.moved(t),
            }));
        }
        recheck.sort_unstable();
        recheck.dedup();
        let mut relabel: Vec<Symbol> = (relabelled.iter())
            .flat_map(|&hop| self.paths.taking(hop))
            .filter(|t| recheck.binary_search(t).is_err())
            .copied()
            .collect();
        relabel.sort_unstable();
        relabel.dedup();
        let roles = &self.roles;
        let label = |path: Vec<Symbol>| -> WitnessPath {
            let hops = (path.windows(2))
                .map(|hop| {
                    effective_label(&roles[&(hop[0], hop[1])]).expect("a path edge is effective")
                })
                .collect();
            (path, hops)
        };
        let walked = (recheck.into_iter())
            .map(|target| (target, self.effective.path_to(target, order).map(label)));
        let relabelled = relabel.into_iter().map(|target| {
            let (path, _) = self.paths.get(target).expect("a path to relabel");
            (target, Some(label(path.clone())))
        });
        let changed: Vec<(Symbol, Option<WitnessPath>)> = walked
            .chain(relabelled)
            .filter(|(target, path)| self.paths.get(*target) != path.as_ref())
            .collect();
        for (target, path) in changed {
            if let Some(path) = &path {
                paths.push((target, path.clone(), 1));
            }
            if let Some(old) = self.paths.set(target, path) {
                paths.push((target, old, -1));
            }
        }
    }
}

/// The witness paths last reported, by target, and which targets' paths
/// take each hop: a hop whose label changes relabels those paths without
/// walking them again.
#[derive(Default)]
struct Paths {
    by_target: FxHashMap<Symbol, WitnessPath>,
    /// The targets whose path takes each hop.
    hops: FxHashMap<(Symbol, Symbol), Vec<Symbol>>,
}

impl Paths {
    fn get(&self, target: Symbol) -> Option<&WitnessPath> {
        self.by_target.get(&target)
    }

    fn len(&self) -> usize {
        self.by_target.len()
    }

    /// Sets or clears `target`'s path; the path it had.
    fn set(&mut self, target: Symbol, path: Option<WitnessPath>) -> Option<WitnessPath> {
        let old = match path {
            Some(path) => {
                for hop in path.0.windows(2) {
                    self.hops.entry((hop[0], hop[1])).or_default().push(target);
                }
                self.by_target.insert(target, path)
            }
            None => self.by_target.remove(&target),
        };
        for hop in old.iter().flat_map(|(path, _)| path.windows(2)) {
            let hop = (hop[0], hop[1]);
            let targets = self.hops.get_mut(&hop).expect("a path's hop is indexed");
            let at = targets.iter().position(|&t| t == target);
            targets.swap_remove(at.expect("a path's target is indexed"));
            if targets.is_empty() {
                self.hops.remove(&hop);
            }
        }
        old
    }

    /// The targets whose path takes the hop `u → v`.
    fn taking(&self, hop: (Symbol, Symbol)) -> &[Symbol] {
        self.hops.get(&hop).map_or(&[], Vec::as_slice)
    }
}
