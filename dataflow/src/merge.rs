//! The whole merge as one dataflow: input collections in, report items out.

use differential_dataflow::input::{Input, InputSession};
use differential_dataflow::operators::ThresholdTotal;
use differential_dataflow::AsCollection;
use differential_dataflow::VecCollection;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::Scope;
use timely::progress::operate::FrontierInterest;
use tracemerge_records::{Config, Reach, Time};

use crate::artifact_rules::{artifact_rules, Derived, Membership, Resolver};
use crate::closure::{
    dynamic_closures, static_closure, ClosureItem, DynamicClosure, EdgeRole, GraphChange,
    StaticChange,
};
use crate::complete::per_artifact_at_complete_times;
use crate::model::{Artifact, EdgeKey, Node, Output, Symbol, Timed, Update};
use crate::symbols::Names;
use crate::verdict::{verdicts, Fact, Quarantine};
use crate::window::{count_per_artifact, EdgeStats};

type Coll<'s, D> = VecCollection<'s, Time, D, isize>;
type Session<D> = InputSession<Time, D, isize>;

/// The input handles of one worker's dataflow.
pub struct Inputs {
    snapshots: Session<Artifact>,
    nodes: Session<Node>,
    static_edges: Session<(Artifact, (Symbol, Symbol))>,
    entrypoints: Session<Node>,
    targets: Session<Node>,
    runtime_memberships: Session<(Artifact, Membership)>,
    observed_graph: Session<(Artifact, GraphChange)>,
    edge_stats: Session<(EdgeKey, EdgeStats)>,
}

impl Inputs {
    pub fn apply(&mut self, t: Timed) {
        let (time, diff) = (t.time, t.diff);
        match t.update {
            Update::Snapshot(a) => self.snapshots.update_at(a, time, diff),
            Update::Node(a, s) => self.nodes.update_at((a, s), time, diff),
            Update::StaticEdge(a, e) => self.static_edges.update_at((a, e), time, diff),
            Update::Entrypoint(a, s) => self.entrypoints.update_at((a, s), time, diff),
            Update::Target(a, s) => self.targets.update_at((a, s), time, diff),
            Update::LiveEdge((a, u, v)) => {
                let observed = (a, Membership::ObservedEdge(u, v));
                self.runtime_memberships.update_at(observed, time, diff);
                let edge = (a, GraphChange::Edge(EdgeRole::Observed, u, v));
                self.observed_graph.update_at(edge, time, diff);
            }
            Update::QuorumMet((a, u, v)) => {
                let met = (a, Membership::QuorumMet(u, v));
                self.runtime_memberships.update_at(met, time, diff);
            }
            Update::EdgeStats(e, s) => self.edge_stats.update_at((e, s), time, diff),
            Update::Executed((a, s)) => {
                let executed = (a, Membership::Executed(s));
                self.runtime_memberships.update_at(executed, time, diff);
            }
            Update::Covered((a, s)) => {
                let covered = (a, Membership::Covered(s));
                self.runtime_memberships.update_at(covered, time, diff);
            }
        }
    }

    /// Promises that no update before `time` will come; lets windows expire
    /// and traces compact.
    pub fn advance_to(&mut self, time: Time) {
        for session in self.sessions() {
            session.advance_to(time);
        }
    }

    pub fn flush(&mut self) {
        for session in self.sessions() {
            session.flush();
        }
    }

    fn sessions(&mut self) -> [&mut dyn AnySession; 8] {
        [
            &mut self.snapshots,
            &mut self.nodes,
            &mut self.static_edges,
            &mut self.entrypoints,
            &mut self.targets,
            &mut self.runtime_memberships,
            &mut self.observed_graph,
            &mut self.edge_stats,
        ]
    }
}

/// What [`Inputs`] does with each of its sessions, whatever their data.
trait AnySession {
    /// Advances to `time` (if it is later) and flushes.
    fn advance_to(&mut self, time: Time);
    fn flush(&mut self);
}

impl<D: differential_dataflow::Data> AnySession for Session<D> {
    fn advance_to(&mut self, time: Time) {
        if *self.time() < time {
            InputSession::advance_to(self, time);
        }
        InputSession::flush(self);
    }

    fn flush(&mut self) {
        InputSession::flush(self);
    }
}

/// Builds the merge dataflow in `scope`; returns its inputs and the stream
/// of report items (observed edges, reach sizes, verdicts, conflicts).
/// `names` resolves interned ids where a rule orders by name.
pub fn build<'s>(
    scope: Scope<'s, Time>,
    config: &Config,
    names: Names,
    quarantine: Quarantine,
) -> (Inputs, Coll<'s, Output>) {
    let (snapshots_in, snapshots) = scope.new_collection();
    let (nodes_in, nodes) = scope.new_collection();
    let (static_edges_in, static_edges) = scope.new_collection();
    let (entrypoints_in, entrypoints) = scope.new_collection();
    let (targets_in, targets) = scope.new_collection();
    let (runtime_memberships_in, memberships) = scope.new_collection();
    let (observed_graph_in, observed) = scope.new_collection();
    let (edge_stats_in, edge_stats) = scope.new_collection();
    let inputs = Inputs {
        snapshots: snapshots_in,
        nodes: nodes_in,
        static_edges: static_edges_in,
        entrypoints: entrypoints_in,
        targets: targets_in,
        runtime_memberships: runtime_memberships_in,
        observed_graph: observed_graph_in,
        edge_stats: edge_stats_in,
    };
    let items = merge(
        Graph {
            snapshots,
            nodes,
            static_edges,
            entrypoints,
            targets,
        },
        Evidence {
            memberships,
            observed,
            edge_stats,
        },
        Rules {
            config: config.clone(),
            names,
            quarantine,
        },
    );
    (inputs, items)
}

/// The static side: snapshots (as diffs) and target sets.
pub struct Graph<'s> {
    pub snapshots: Coll<'s, Artifact>,
    pub nodes: Coll<'s, Node>,
    pub static_edges: Coll<'s, (Artifact, (Symbol, Symbol))>,
    pub entrypoints: Coll<'s, Node>,
    pub targets: Coll<'s, Node>,
}

/// The runtime side, as the aggregator keeps it: what is live now, already
/// in the forms the rules and the closures take. These are the busiest
/// inputs (an edge appears or expires at nearly every round), so
/// [`Inputs::apply`] writes each update in its final form and none passes
/// through a `map` operator on its way in.
pub struct Evidence<'s> {
    /// Per artifact: live edges ([`Membership::ObservedEdge`]), live edges
    /// that meet the quorum ([`Membership::QuorumMet`], under `quorum:H:S`
    /// only), executed symbols ([`Membership::Executed`], once per
    /// aggregator shard that holds them), and symbols covered for at least
    /// `min_coverage` ([`Membership::Covered`]).
    pub memberships: Coll<'s, (Artifact, Membership)>,
    /// Live edges as runtime-closure edges (`GraphChange::Edge` with
    /// [`EdgeRole::Observed`]).
    pub observed: Coll<'s, (Artifact, GraphChange)>,
    /// The statistics of each live edge, passed on to the report.
    pub edge_stats: Coll<'s, (EdgeKey, EdgeStats)>,
}

/// The configuration, with what it needs of the interned names.
pub struct Rules {
    pub config: Config,
    pub names: Names,
    pub quarantine: Quarantine,
}

/// Everything DESIGN.md §4 asks for, as report items.
pub fn merge<'s>(graph: Graph<'s>, evidence: Evidence<'s>, rules: Rules) -> Coll<'s, Output> {
    let Rules {
        config,
        names,
        quarantine,
    } = rules;
    let reach_static = static_closure(
        (graph.static_edges.clone())
            .map(|(a, (u, v))| (a, StaticChange::Edge(u, v)))
            .concat(
                graph
                    .entrypoints
                    .clone()
                    .map(|(a, s)| (a, StaticChange::Entrypoint(s))),
            ),
    );
    // Everything that looks at one symbol or one edge at a time: observed
    // edges in or out of the snapshot, resolutions, target states,
    // conflicts. The live edge set changes only when an edge appears or
    // expires, not with every sighting.
    let symbol = |m: fn(Symbol) -> Membership| move |(a, s): Node| (a, m(s));
    let edge = |m: fn(Symbol, Symbol) -> Membership| {
        move |(a, (u, v)): (Artifact, (Symbol, Symbol))| (a, m(u, v))
    };
    let memberships = (graph.snapshots.clone().map(|a| (a, Membership::Snapshot)))
        .concat(graph.nodes.map(symbol(Membership::Node)))
        .concat(
            reach_static
                .clone()
                .map(symbol(Membership::StaticReachable)),
        )
        .concat(graph.targets.clone().map(symbol(Membership::Target)))
        .concat(evidence.memberships)
        .concat(graph.static_edges.clone().map(edge(Membership::StaticEdge)));
    let derived = artifact_rules(
        memberships,
        Resolver {
            strategy: config.strategy,
            quarantine,
        },
    );
    // Each derived item goes to the one rule that reads it, in one pass.
    let [accepted, states, executed, items] = split(derived, |(_, d)| match d {
        Derived::Accepted(..) => 0,
        Derived::State(..) => 1,
        Derived::Executed => 2,
        Derived::Edge(..) | Derived::Conflict(..) => 3,
    });
    let accepted = accepted.flat_map(|(a, d)| match d {
        Derived::Accepted(u, v) => Some((a, (u, v))),
        _ => None,
    });

    // The runtime and effective closures follow every edge that appears or
    // expires: one dynamic BFS per artifact keeps them. Effective edges are
    // static edges and accepted runtime edges (which the snapshot lacks, so
    // the two never overlap); observed edges label hops `both`.
    let role = |role: EdgeRole| {
        move |(a, (u, v)): (Artifact, (Symbol, Symbol))| (a, GraphChange::Edge(role, u, v))
    };
    let graph_changes = (graph.static_edges.map(role(EdgeRole::Static)))
        .concat(accepted.map(role(EdgeRole::Accepted)))
        .concat(evidence.observed)
        .concat(
            graph
                .entrypoints
                .clone()
                .map(|(a, s)| (a, GraphChange::Entrypoint(s))),
        )
        .concat(
            graph
                .targets
                .clone()
                .map(|(a, s)| (a, GraphChange::Target(s))),
        );
    let closures = dynamic_closures(graph_changes, names);
    let [sizes, paths] = split(closures, |item| match item {
        ClosureItem::Size(..) => 0,
        ClosureItem::Path(..) => 1,
    });
    let dynamic_sizes = sizes.flat_map(|item| match item {
        ClosureItem::Size(artifact, closure, size) => Some((artifact, (closure, size))),
        ClosureItem::Path(..) => None,
    });
    let paths = paths.flat_map(|item| match item {
        ClosureItem::Path(target, path) => Some((target, path)),
        ClosureItem::Size(..) => None,
    });
    let facts = states
        .flat_map(|(a, d)| match d {
            Derived::State(target, state) => Some(((a, target), Fact::State(state))),
            _ => None,
        })
        .concat(paths.map(|(target, (path, hops))| (target, Fact::Path(path, hops))));
    let verdicts = verdicts(facts);
    let executed_artifacts = executed.flat_map(|(a, d)| match d {
        Derived::Executed => Some(a),
        _ => None,
    });

    let reach = reach_sizes(
        graph
            .snapshots
            .concat(graph.targets.map(|(a, _)| a))
            .concat(executed_artifacts)
            .distinct_total(),
        reach_static,
        dynamic_sizes,
    );

    // Observed edges and conflicts are report items as they are.
    let items = items.flat_map(|(artifact, d)| match d {
        Derived::Edge(caller, callee, in_static) => Some(Output::Edge {
            artifact,
            caller,
            callee,
            in_static,
        }),
        Derived::Conflict(conflict) => Some(Output::Conflict { artifact, conflict }),
        Derived::Accepted(..) | Derived::State(..) | Derived::Executed => None,
    });
    let stats = evidence
        .edge_stats
        .map(|(edge, stats)| Output::edge_stats(edge, stats));
    items
        .concat(stats)
        .concat(reach)
        .concat(
            verdicts.map(|((artifact, target), (state, path))| Output::Verdict {
                artifact,
                target,
                state,
                path: path.map(Box::new),
            }),
        )
}

/// Splits `collection` into `N` by `route`: each update goes to the
/// collection its route names, moved, not cloned to `N` filters. Each
/// message's updates are sorted into one list per part, shipped whole
/// (timely's `partition` looks up a map per update and moves it twice).
fn split<'s, D: differential_dataflow::Data, const N: usize>(
    collection: Coll<'s, D>,
    route: impl Fn(&D) -> usize + 'static,
) -> [Coll<'s, D>; N] {
    let mut builder = OperatorBuilder::new("Split".to_owned(), collection.inner.scope());
    let mut input = builder.new_input(collection.inner, Pipeline);
    builder.set_notify_for(0, FrontierInterest::Never);
    let (mut outputs, parts): (Vec<_>, Vec<_>) = (0..N)
        .map(|_| builder.new_output::<Vec<(D, Time, isize)>>())
        .unzip();
    builder.build(move |_| {
        let mut lists: Vec<Vec<(D, Time, isize)>> = (0..N).map(|_| Vec::new()).collect();
        move |_frontiers| {
            let mut outputs: Vec<_> = outputs.iter_mut().map(|o| o.activate()).collect();
            input.for_each(|capability, data| {
                for update in data.drain(..) {
                    lists[route(&update.0)].push(update);
                }
                for (output, list) in outputs.iter_mut().zip(&mut lists) {
                    output.give(&capability, list);
                    list.clear();
                }
            });
        }
    });
    let parts: Vec<Coll<'s, D>> = parts.into_iter().map(|p| p.as_collection()).collect();
    parts
        .try_into()
        .unwrap_or_else(|_| unreachable!("one stream per part"))
}

/// What a row of [`reach_sizes`] says about an artifact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
enum SizeOf {
    /// The artifact is listed (it has a snapshot, targets or executions).
    Listed,
    Static,
    Runtime,
    Effective,
}

/// A row of [`reach_sizes`] with its count.
type SizeRow = ((SizeOf, u64), isize);

/// The sizes of the static, runtime and effective closures of every listed
/// artifact (a missing size is 0).
///
/// Kept per artifact outside differential ([`per_artifact_at_complete_times`]):
/// the runtime and effective sizes change at nearly every round, and a
/// `reduce` keyed by the artifact replayed the key's history of sizes at
/// each one (a twentieth of a streaming run's instructions).
fn reach_sizes<'s>(
    listed: Coll<'s, Artifact>,
    reach_static: Coll<'s, Node>,
    dynamic_sizes: Coll<'s, (Artifact, (DynamicClosure, u64))>,
) -> Coll<'s, Output> {
    let static_sizes = count_per_artifact(reach_static).map(|(a, n)| (a, (SizeOf::Static, n)));
    let dynamic_sizes = dynamic_sizes.map(|(a, (closure, n))| {
        let of = match closure {
            DynamicClosure::Runtime => SizeOf::Runtime,
            DynamicClosure::Effective => SizeOf::Effective,
        };
        (a, (of, n))
    });
    let rows = (listed.map(|a| (a, (SizeOf::Listed, 0u64))))
        .concat(static_sizes)
        .concat(dynamic_sizes);
    let mut artifacts: FxHashMap<Artifact, Vec<SizeRow>> = FxHashMap::default();
    per_artifact_at_complete_times(rows, "ReachSizes", move |artifact, batch, out| {
        let rows = artifacts.entry(artifact).or_default();
        let before = reach_of(rows);
        for &((_, row), diff) in batch {
            match rows.iter_mut().find(|(r, _)| *r == row) {
                Some((_, count)) => *count += diff,
                None => rows.push((row, diff)),
            }
        }
        rows.retain(|(_, count)| *count != 0);
        let after = reach_of(rows);
        if rows.is_empty() {
            artifacts.remove(&artifact);
        }
        if before != after {
            let reach = |reach| Output::Reach { artifact, reach };
            out.extend(before.map(|r| (reach(r), -1)));
            out.extend(after.map(|r| (reach(r), 1)));
        }
    })
}

/// What an artifact's rows say: its closure sizes if it is listed (a
/// missing size is 0; of several, the least counts).
fn reach_of(rows: &[SizeRow]) -> Option<Reach> {
    let present = || {
        rows.iter()
            .filter(|(_, count)| *count > 0)
            .map(|(row, _)| *row)
    };
    present().find(|(of, _)| *of == SizeOf::Listed)?;
    let size = |of: SizeOf| {
        (present().filter(|(o, _)| *o == of))
            .map(|(_, n)| n)
            .min()
            .unwrap_or(0)
    };
    Some(Reach {
        static_: size(SizeOf::Static),
        runtime: size(SizeOf::Runtime),
        effective: size(SizeOf::Effective),
    })
}
