//! The whole merge as one dataflow: input collections in, report items out.

use differential_dataflow::input::{Input, InputSession};
use differential_dataflow::VecCollection;
use timely::dataflow::Scope;
use tracemerge_records::{Config, Time};

use crate::artifact::artifact_reports;
use crate::artifact_rules::{Membership, Resolver};
use crate::closure::{static_closure, StaticChange};
use crate::model::{Artifact, EdgeKey, Node, Output, Symbol, Timed, Update};
use crate::symbols::Names;
use crate::verdict::Quarantine;
use crate::window::EdgeStats;

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

    fn sessions(&mut self) -> [&mut dyn AnySession; 7] {
        [
            &mut self.snapshots,
            &mut self.nodes,
            &mut self.static_edges,
            &mut self.entrypoints,
            &mut self.targets,
            &mut self.runtime_memberships,
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
    let (edge_stats_in, edge_stats) = scope.new_collection();
    let inputs = Inputs {
        snapshots: snapshots_in,
        nodes: nodes_in,
        static_edges: static_edges_in,
        entrypoints: entrypoints_in,
        targets: targets_in,
        runtime_memberships: runtime_memberships_in,
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
/// in the form the artifacts' operator takes. These are the busiest inputs
/// (an edge appears or expires at nearly every round), so [`Inputs::apply`]
/// writes each update in its final form and none passes through a `map`
/// operator on its way in.
pub struct Evidence<'s> {
    /// Per artifact: live edges ([`Membership::ObservedEdge`]), live edges
    /// that meet the quorum ([`Membership::QuorumMet`], under `quorum:H:S`
    /// only), executed symbols ([`Membership::Executed`], once per
    /// aggregator shard that holds them), and symbols covered for at least
    /// `min_coverage` ([`Membership::Covered`]).
    pub memberships: Coll<'s, (Artifact, Membership)>,
    /// The statistics of each live edge, passed on to the report.
    pub edge_stats: Coll<'s, (EdgeKey, EdgeStats)>,
}

/// The configuration, with what it needs of the interned names.
pub struct Rules {
    pub config: Config,
    pub names: Names,
    pub quarantine: Quarantine,
}

/// Everything DESIGN.md §4 asks for, as report items: the static closure
/// of each artifact, and from it and every other membership, the
/// artifact's report items ([`artifact_reports`]).
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
    let symbol = |m: fn(Symbol) -> Membership| move |(a, s): Node| (a, m(s));
    let memberships = (graph.snapshots.map(|a| (a, Membership::Snapshot)))
        .concat(graph.nodes.map(symbol(Membership::Node)))
        .concat(reach_static.map(symbol(Membership::StaticReachable)))
        .concat(graph.targets.map(symbol(Membership::Target)))
        .concat(graph.entrypoints.map(symbol(Membership::Entrypoint)))
        .concat(evidence.memberships)
        .concat((graph.static_edges).map(|(a, (u, v))| (a, Membership::StaticEdge(u, v))));
    let resolver = Resolver {
        strategy: config.strategy,
        quarantine,
    };
    let stats = evidence
        .edge_stats
        .map(|(edge, stats)| Output::edge_stats(edge, stats));
    artifact_reports(memberships, resolver, names).concat(stats)
}
