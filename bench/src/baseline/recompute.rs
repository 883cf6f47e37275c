//! [`Recompute`]: the live window and, on demand, closures, verdicts and
//! conflicts recomputed from scratch.

use tracemerge_records::{
    ArtifactReport, Config, Conflict, Hop, ObservedEdge, Reach, Record, Resolution, State,
    Strategy, Time, Verdict,
};

use super::graph::UNREACHED;
use super::{bfs, reach, Csr, EdgeAgg, FxSet, Interner, Window};

#[inline]
fn pack(u: u32, v: u32) -> u64 {
    ((u as u64) << 32) | v as u64
}

/// The static snapshot of the followed artifact, as integer adjacency.
struct Snapshot {
    at: Time,
    /// Whether a symbol id is a snapshot node (ids past the end are not).
    nodes: Vec<bool>,
    out: Csr,
    rev: Csr,
    edges: FxSet<u64>,
    entrypoints: Vec<u32>,
}

impl Snapshot {
    fn is_node(&self, s: u32) -> bool {
        self.nodes.get(s as usize).copied().unwrap_or(false)
    }
}

/// One verdict, in ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdVerdict {
    pub target: u32,
    pub state: State,
    pub path: Option<Vec<u32>>,
    pub hops: Option<Vec<Hop>>,
}

/// One conflict, in ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdConflict {
    EdgeNotInStatic {
        caller: u32,
        callee: u32,
        resolution: Resolution,
        hits: u64,
        sources: u64,
    },
    ExecutedButStaticallyUnreachable(u32),
    UnknownSymbol(u32),
    NoStaticSnapshot,
    ReachableButUnobserved(u32),
}

/// Everything [`Recompute::recompute`] derives.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub reach: Reach,
    pub verdicts: Vec<IdVerdict>,
    pub conflicts: Vec<IdConflict>,
}

/// Ingest one artifact's stream in order, keep its live window, and
/// recompute closures, verdicts and conflicts from scratch on demand.
pub struct Recompute {
    config: Config,
    artifact: String,
    watermark: Option<Time>,
    max_time: Option<Time>,
    symbols: Interner,
    sources: Interner,
    window: Window,
    snapshot: Option<Snapshot>,
    targets: Vec<u32>,
    targets_at: Option<Time>,
}

impl Recompute {
    /// Follows `artifact`; records of other artifacts are ignored.
    pub fn new(config: &Config, artifact: &str) -> Self {
        Recompute {
            config: config.clone(),
            artifact: artifact.to_string(),
            watermark: None,
            max_time: None,
            symbols: Interner::default(),
            sources: Interner::default(),
            window: Window::new(config.ttl),
            snapshot: None,
            targets: Vec::new(),
            targets_at: None,
        }
    }

    /// The time the state describes: the last watermark, else the largest
    /// applied time.
    pub fn as_of(&self) -> Time {
        self.watermark.or(self.max_time).unwrap_or(0)
    }

    /// Live observed edges now.
    pub fn live_edges(&self) -> usize {
        self.window.edge_count()
    }

    /// Applies one record (in arrival order).
    pub fn push(&mut self, record: &Record) {
        if let Record::Watermark { at } = record {
            if self.watermark.is_none_or(|w| *at > w) {
                self.watermark = Some(*at);
                self.window.expire(*at);
            }
            return;
        }
        let time = record.time();
        if time
            < self
                .watermark
                .unwrap_or(0)
                .saturating_sub(self.config.lateness)
        {
            return;
        }
        let artifact = match record {
            Record::Graph(g) => &g.artifact,
            Record::Targets(t) => &t.artifact,
            Record::Edge(e) => &e.artifact,
            Record::Hit(h) => &h.artifact,
            Record::Coverage(c) => &c.artifact,
            Record::Watermark { .. } => unreachable!("handled above"),
        };
        if *artifact != self.artifact {
            return;
        }
        self.max_time = Some(self.max_time.map_or(time, |m| m.max(time)));
        match record {
            Record::Graph(g) => {
                if self.snapshot.as_ref().is_some_and(|s| s.at > g.at) {
                    return;
                }
                let ids: Vec<u32> = g.nodes.iter().map(|s| self.symbols.intern(s)).collect();
                let n = self.symbols.len();
                let mut nodes = vec![false; n];
                for &id in &ids {
                    nodes[id as usize] = true;
                }
                let mut pairs: Vec<(u32, u32)> = g
                    .edges
                    .iter()
                    .map(|e| {
                        (
                            self.symbols.intern(&e.caller),
                            self.symbols.intern(&e.callee),
                        )
                    })
                    .collect();
                pairs.sort_unstable();
                pairs.dedup();
                let reversed: Vec<(u32, u32)> = pairs.iter().map(|&(u, v)| (v, u)).collect();
                let mut entrypoints: Vec<u32> = g
                    .entrypoints
                    .iter()
                    .map(|s| self.symbols.intern(s))
                    .collect();
                entrypoints.sort_unstable();
                entrypoints.dedup();
                self.snapshot = Some(Snapshot {
                    at: g.at,
                    nodes,
                    out: Csr::build(n, &pairs),
                    rev: Csr::build(n, &reversed),
                    edges: pairs.iter().map(|&(u, v)| pack(u, v)).collect(),
                    entrypoints,
                });
            }
            Record::Targets(t) => {
                if self.targets_at.is_some_and(|at| at > t.at) {
                    return;
                }
                self.targets_at = Some(t.at);
                let mut ids: Vec<u32> = t.symbols.iter().map(|s| self.symbols.intern(s)).collect();
                ids.sort_unstable();
                ids.dedup();
                self.targets = ids;
            }
            Record::Edge(e) => {
                let key = (
                    0,
                    self.symbols.intern(&e.caller),
                    self.symbols.intern(&e.callee),
                );
                let source = self.sources.intern(&e.source);
                self.window.edge(key, e.at, e.hits, source);
            }
            Record::Hit(h) => {
                let key = (0, self.symbols.intern(&h.symbol));
                self.window.hit(key, h.at);
            }
            Record::Coverage(c) => {
                for s in &c.symbols {
                    let key = (0, self.symbols.intern(s));
                    self.window.coverage(key, c.from, c.to);
                }
            }
            Record::Watermark { .. } => unreachable!("handled above"),
        }
    }

    fn resolve(&self, u: u32, v: u32, agg: &EdgeAgg) -> Resolution {
        let c = &self.config;
        if (!c.quarantine_symbols.is_empty() || !c.quarantine_edges.is_empty())
            && c.quarantined(self.symbols.name(u), self.symbols.name(v))
        {
            return Resolution::Quarantined;
        }
        match c.strategy {
            Strategy::Union => Resolution::Accepted,
            Strategy::Static => Resolution::Rejected,
            Strategy::Quorum { hits, sources } => {
                if agg.hits >= hits && agg.sources() >= sources {
                    Resolution::Accepted
                } else {
                    Resolution::Pending
                }
            }
        }
    }

    /// Recomputes, from the static graph and the live window, the three
    /// closures, every verdict with its witness path, and every conflict.
    pub fn recompute(&self) -> Outcome {
        let n = self.symbols.len();
        let snapshot = self.snapshot.as_ref();
        let empty = Csr::default();
        let (static_out, static_rev) = snapshot.map_or((&empty, &empty), |s| (&s.out, &s.rev));
        let roots: &[u32] = snapshot.map_or(&[], |s| &s.entrypoints);
        let is_static = |u: u32, v: u32| snapshot.is_some_and(|s| s.edges.contains(&pack(u, v)));

        // Observed edges, candidates and the accepted ones; executed symbols.
        let mut observed = Vec::with_capacity(self.window.edge_count());
        let mut accepted = Vec::new();
        let mut candidates = Vec::new();
        let mut executed = vec![false; n];
        for agg in self.window.edges() {
            let (_, u, v) = agg.key;
            observed.push((u, v));
            executed[u as usize] = true;
            executed[v as usize] = true;
            if !is_static(u, v) {
                let resolution = self.resolve(u, v, agg);
                if resolution == Resolution::Accepted {
                    accepted.push((u, v));
                }
                candidates.push((u, v, resolution, agg.hits, agg.sources()));
            }
        }
        for &(_, s) in self.window.hit_symbols() {
            executed[s as usize] = true;
        }

        // The three closures.
        let (reach_static, static_reached) = reach(n, roots, &[static_out]);
        let observed_out = Csr::build(n, &observed);
        let (_, runtime_reached) = reach(n, roots, &[&observed_out]);
        let accepted_out = Csr::build(n, &accepted);
        let (dist, effective_reached) = bfs(n, roots, &[static_out, &accepted_out]);
        let reversed: Vec<(u32, u32)> = accepted.iter().map(|&(u, v)| (v, u)).collect();
        let accepted_rev = Csr::build(n, &reversed);

        let covered_enough = |t: u32| {
            self.window
                .covered((0, t))
                .is_some_and(|c| c >= self.config.min_coverage)
        };

        // Verdicts with witness paths.
        let mut verdicts = Vec::with_capacity(self.targets.len());
        for &t in &self.targets {
            let ti = t as usize;
            let static_side = snapshot.map(|_| reach_static.contains(t));
            let runtime_side = if executed[ti] {
                Some(true)
            } else if covered_enough(t) {
                Some(false)
            } else {
                None
            };
            let state = State::join(static_side, runtime_side);
            let (path, hops) = if dist[ti] == UNREACHED {
                (None, None)
            } else {
                let mut path = vec![t];
                let mut hops = Vec::new();
                let mut v = t;
                while dist[v as usize] > 0 {
                    let want = dist[v as usize] - 1;
                    let parent = static_rev
                        .out(v)
                        .iter()
                        .chain(accepted_rev.out(v))
                        .copied()
                        .filter(|&u| dist[u as usize] == want)
                        .min_by(|&a, &b| self.symbols.name(a).cmp(self.symbols.name(b)))
                        .expect("a reached node has a parent one step closer");
                    hops.push(if is_static(parent, v) {
                        if self.window.has_edge((0, parent, v)) {
                            Hop::Both
                        } else {
                            Hop::Static
                        }
                    } else {
                        Hop::Runtime
                    });
                    path.push(parent);
                    v = parent;
                }
                path.reverse();
                hops.reverse();
                (Some(path), Some(hops))
            };
            verdicts.push(IdVerdict {
                target: t,
                state,
                path,
                hops,
            });
        }

        // Conflicts.
        let mut conflicts = Vec::new();
        match snapshot {
            None => {
                if self.window.edge_count() > 0 || self.window.hit_symbols().next().is_some() {
                    conflicts.push(IdConflict::NoStaticSnapshot);
                }
            }
            Some(s) => {
                for &(caller, callee, resolution, hits, sources) in &candidates {
                    if s.is_node(caller) && s.is_node(callee) {
                        conflicts.push(IdConflict::EdgeNotInStatic {
                            caller,
                            callee,
                            resolution,
                            hits,
                            sources,
                        });
                    }
                }
                for (id, _) in executed.iter().enumerate().filter(|(_, e)| **e) {
                    let id32 = id as u32;
                    if !s.is_node(id32) {
                        conflicts.push(IdConflict::UnknownSymbol(id32));
                    } else if !reach_static.contains(id32) {
                        conflicts.push(IdConflict::ExecutedButStaticallyUnreachable(id32));
                    }
                }
                for &t in &self.targets {
                    let ti = t as usize;
                    if reach_static.contains(t) && !executed[ti] && covered_enough(t) {
                        conflicts.push(IdConflict::ReachableButUnobserved(t));
                    }
                }
            }
        }

        Outcome {
            reach: Reach {
                static_: static_reached,
                runtime: runtime_reached,
                effective: effective_reached,
            },
            verdicts,
            conflicts,
        }
    }

    /// The outcome in the report's terms (names, sorted as the engine's
    /// report sorts them), with the live observed edges.
    pub fn artifact_report(&self, outcome: &Outcome) -> ArtifactReport {
        let name = |id: u32| self.symbols.name(id).to_string();
        let mut observed_edges: Vec<ObservedEdge> = self
            .window
            .edges()
            .map(|agg| {
                let (_, u, v) = agg.key;
                ObservedEdge {
                    caller: name(u),
                    callee: name(v),
                    hits: agg.hits,
                    first_seen: agg.first,
                    last_seen: agg.last,
                    sources: agg.sources(),
                    in_static: self
                        .snapshot
                        .as_ref()
                        .is_some_and(|s| s.edges.contains(&pack(u, v))),
                    // The bench workloads carry no estimated counts.
                    estimated: false,
                }
            })
            .collect();
        observed_edges.sort();
        let mut verdicts: Vec<Verdict> = outcome
            .verdicts
            .iter()
            .map(|v| Verdict {
                target: name(v.target),
                state: v.state,
                vex: v.state.vex(),
                path: v
                    .path
                    .as_ref()
                    .map(|p| p.iter().map(|&s| name(s)).collect()),
                hops: v.hops.clone(),
            })
            .collect();
        verdicts.sort();
        let mut conflicts: Vec<Conflict> = outcome
            .conflicts
            .iter()
            .map(|c| match *c {
                IdConflict::EdgeNotInStatic {
                    caller,
                    callee,
                    resolution,
                    hits,
                    sources,
                } => Conflict::RuntimeEdgeNotInStatic {
                    caller: name(caller),
                    callee: name(callee),
                    resolution,
                    hits,
                    sources,
                },
                IdConflict::ExecutedButStaticallyUnreachable(s) => {
                    Conflict::ExecutedButStaticallyUnreachable { symbol: name(s) }
                }
                IdConflict::UnknownSymbol(s) => Conflict::UnknownSymbol { symbol: name(s) },
                IdConflict::NoStaticSnapshot => Conflict::NoStaticSnapshot {},
                IdConflict::ReachableButUnobserved(s) => {
                    Conflict::ReachableButUnobserved { symbol: name(s) }
                }
            })
            .collect();
        conflicts.sort_by(|x, y| (x.kind(), x).cmp(&(y.kind(), y)));
        ArtifactReport {
            artifact: self.artifact.clone(),
            observed_edges,
            reach: outcome.reach,
            verdicts,
            conflicts,
        }
    }

    /// Nodes reached statically from the entrypoints (for choosing change
    /// edges that alter reachability).
    pub fn statically_unreachable(&self) -> Vec<u32> {
        let Some(s) = self.snapshot.as_ref() else {
            return Vec::new();
        };
        let n = self.symbols.len();
        let (reached, _) = reach(n, &s.entrypoints, &[&s.out]);
        (0..n as u32)
            .filter(|&i| s.is_node(i) && !reached.contains(i))
            .collect()
    }

    /// The name of a symbol id.
    pub fn symbol(&self, id: u32) -> &str {
        self.symbols.name(id)
    }

    /// Static edges of the snapshot.
    pub fn static_edge_count(&self) -> usize {
        self.snapshot.as_ref().map_or(0, |s| s.out.edge_count())
    }
}
