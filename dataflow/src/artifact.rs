//! Everything DESIGN.md §4 derives within one artifact, kept by one
//! operator: the rules (`ArtifactMemberships`), the runtime and effective
//! closures with the targets' witness paths (`ArtifactGraph`), the
//! targets' verdicts (`Verdicts`) and the artifact's reach sizes.
//!
//! One operator because each part reads what the one before derives at
//! the same time: the closures follow the edges' roles as the rules decide
//! them (static, accepted, observed; the rules keep the artifact's one
//! table of edges), a verdict joins a target's state with its path, the
//! reach sizes count the closures. As separate operators, every change
//! crossed an exchange and a time's buffer for each part, a live edge
//! entered twice (as a membership and as a closure edge) and was kept in
//! two tables, and every derived item passed through a split and a map on
//! its way to the next part.

use differential_dataflow::VecCollection;
use rustc_hash::FxHashMap;
use tracemerge_records::{Reach, Time};

use crate::artifact_rules::{ArtifactMemberships, Derived, Membership, Resolver};
use crate::closure::{ArtifactGraph, GraphChange};
use crate::complete::per_artifact_at_complete_times;
use crate::model::{Artifact, Output};
use crate::profile::note_kept;
use crate::symbols::Names;
use crate::verdict::{Fact, Verdicts};

/// The report items of every artifact (observed edges, conflicts, verdicts,
/// reach sizes) from its memberships, as changes.
///
/// Each artifact lives on one worker ([`per_artifact_at_complete_times`]).
pub fn artifact_reports<'s>(
    memberships: VecCollection<'s, Time, (Artifact, Membership)>,
    resolver: Resolver,
    names: Names,
) -> VecCollection<'s, Time, Output> {
    let mut artifacts: FxHashMap<Artifact, ArtifactState> = FxHashMap::default();
    per_artifact_at_complete_times(memberships, "Artifact", move |artifact, batch, out| {
        let state = artifacts.entry(artifact).or_insert_with(ArtifactState::new);
        let batch = batch.iter().map(|&((_, m), diff)| (m, diff));
        state.apply(artifact, batch, &resolver, &names, out);
        note_kept("ArtifactRules", artifact, state.rules.entries());
        note_kept("DynamicClosures", artifact, state.graph.entries());
        if state.is_empty() {
            artifacts.remove(&artifact);
        }
    })
}

/// One artifact's state.
struct ArtifactState {
    rules: ArtifactMemberships,
    graph: ArtifactGraph,
    verdicts: Verdicts,
    /// The reach sizes last reported.
    reach: Option<Reach>,
}

impl ArtifactState {
    fn new() -> Self {
        ArtifactState {
            rules: ArtifactMemberships::default(),
            graph: ArtifactGraph::new(),
            verdicts: Verdicts::default(),
            reach: None,
        }
    }

    fn is_empty(&self) -> bool {
        self.rules.is_empty()
            && self.graph.entries() == 0
            && self.verdicts.is_empty()
            && self.reach.is_none()
    }

    /// Applies one time's membership changes and pushes the changes of the
    /// artifact's report items onto `out`.
    fn apply(
        &mut self,
        artifact: Artifact,
        batch: impl Iterator<Item = (Membership, isize)> + Clone,
        resolver: &Resolver,
        names: &Names,
        out: &mut Vec<(Output, isize)>,
    ) {
        // About one derived item a change: grown from empty, the list
        // was copied a dozen times a round. (Not a snapshot's millions of
        // changes, which derive few items.)
        let mut derived = Vec::with_capacity(batch.size_hint().0.min(1 << 12));
        let mut roles = Vec::new();
        self.rules
            .apply(batch.clone(), resolver, &mut derived, &mut roles);

        let changes = batch.filter_map(|(m, diff)| match m {
            Membership::Entrypoint(s) => Some((GraphChange::Entrypoint(s), diff)),
            Membership::Target(s) => Some((GraphChange::Target(s), diff)),
            _ => None,
        });
        let rules = &self.rules;
        let roles_of = |edge| rules.roles_of(edge, resolver);
        let mut paths = Vec::new();
        (self.graph).apply(&roles, changes, roles_of, names, &mut paths);

        let mut facts = Vec::new();
        for (d, diff) in derived {
            match d {
                Derived::Edge(caller, callee, in_static) => out.push((
                    Output::Edge {
                        artifact,
                        caller,
                        callee,
                        in_static,
                    },
                    diff,
                )),
                Derived::Conflict(conflict) => {
                    out.push((Output::Conflict { artifact, conflict }, diff))
                }
                Derived::State(target, state) => facts.push((target, Fact::State(state), diff)),
            }
        }
        let paths = paths.into_iter();
        facts.extend(
            paths.map(|(target, (path, hops), diff)| (target, Fact::Path(path, hops), diff)),
        );
        let mut verdicts = Vec::new();
        self.verdicts.apply(facts.into_iter(), &mut verdicts);
        out.extend(verdicts.into_iter().map(|(target, (state, path), diff)| {
            let verdict = Output::Verdict {
                artifact,
                target,
                state,
                path: path.map(Box::new),
            };
            (verdict, diff)
        }));

        let reach = self.reach_sizes();
        if reach != self.reach {
            let item = |reach| Output::Reach { artifact, reach };
            out.extend(self.reach.map(|r| (item(r), -1)));
            out.extend(reach.map(|r| (item(r), 1)));
            self.reach = reach;
        }
    }

    /// The sizes of the artifact's closures, if it is listed (it has a
    /// snapshot, a target or an executed symbol).
    fn reach_sizes(&self) -> Option<Reach> {
        let listed =
            self.rules.has_snapshot() || self.graph.has_targets() || self.rules.has_executed();
        let (runtime, effective) = self.graph.sizes();
        listed.then(|| Reach {
            static_: self.rules.static_reachable() as u64,
            runtime: runtime as u64,
            effective: effective as u64,
        })
    }
}
