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

use crate::artifact_rules::{EdgeRoles, RoleChange};
use crate::complete::per_artifact_at_complete_times;
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

/// A change of an `ArtifactGraph`'s roots or targets; its diff says
/// whether it comes or goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphChange {
    Entrypoint(Symbol),
    Target(Symbol),
}

/// A witness path: its symbols from an entrypoint, and the label of each hop.
pub type WitnessPath = (Vec<Symbol>, Vec<Hop>);

/// One artifact's runtime closure (over observed edges) and effective
/// closure (over static and accepted edges), from its entrypoints, and
/// each target's witness path in the effective graph (DESIGN.md §4: a
/// shortest path whose parents are the smallest symbols by name, each hop
/// labelled static, runtime or both). The edges' roles are the rules'
/// ([`EdgeRoles`]), which keep the one table of the artifact's edges.
pub(crate) struct ArtifactGraph {
    entrypoints: FxHashMap<Symbol, isize>,
    targets: FxHashMap<Symbol, isize>,
    runtime: ShortestPaths<Symbol>,
    effective: ShortestPaths<Symbol>,
    /// The witness paths last reported.
    paths: Paths,
}

/// Whether an edge with these roles is effective, and its hop label.
fn effective_label(roles: EdgeRoles) -> Option<Hop> {
    let EdgeRoles {
        static_,
        accepted,
        observed,
    } = roles;
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
    /// The entries its tables keep: entrypoints, targets and paths.
    pub(crate) fn entries(&self) -> usize {
        self.entrypoints.len() + self.targets.len() + self.paths.len()
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
            entrypoints: FxHashMap::default(),
            targets: FxHashMap::default(),
            runtime: ShortestPaths::new(),
            effective: ShortestPaths::new(),
            paths: Paths::default(),
        }
    }

    /// Applies one time's changes of this artifact (the edges whose roles
    /// changed, and its roots and targets) and pushes the changes of its
    /// targets' witness paths onto `paths`. `roles_of` gives an edge's
    /// roles after the time, for the labels of the paths' hops.
    pub(crate) fn apply(
        &mut self,
        role_changes: &[RoleChange],
        batch: impl Iterator<Item = (GraphChange, isize)>,
        roles_of: impl Fn((Symbol, Symbol)) -> EdgeRoles,
        names: &Names,
        paths: &mut Vec<(Symbol, WitnessPath, isize)>,
    ) {
        // Net change per entrypoint and target.
        let mut entrypoints: FxHashMap<Symbol, isize> = FxHashMap::default();
        let mut targets: FxHashMap<Symbol, isize> = FxHashMap::default();
        for (change, diff) in batch {
            match change {
                GraphChange::Entrypoint(s) => *entrypoints.entry(s).or_default() += diff,
                GraphChange::Target(s) => *targets.entry(s).or_default() += diff,
            }
        }

        let (mut effective_added, mut effective_removed) = (Vec::new(), Vec::new());
        let (mut runtime_added, mut runtime_removed) = (Vec::new(), Vec::new());
        let mut relabelled = Vec::new();
        for &(edge, before, after) in role_changes {
            match (effective_label(before), effective_label(after)) {
                (None, Some(_)) => effective_added.push(edge),
                (Some(_), None) => effective_removed.push(edge),
                (Some(a), Some(b)) if a != b => relabelled.push(edge),
                _ => {}
            }
            match (before.observed, after.observed) {
                (false, true) => runtime_added.push(edge),
                (true, false) => runtime_removed.push(edge),
                _ => {}
            }
        }
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
        let label = |path: Vec<Symbol>| -> WitnessPath {
            let hops = (path.windows(2))
                .map(|hop| {
                    effective_label(roles_of((hop[0], hop[1]))).expect("a path edge is effective")
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
