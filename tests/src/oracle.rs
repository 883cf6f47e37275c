//! The recompute-from-scratch oracle: a plain, slow, obviously-correct
//! implementation of `dataflow/SEMANTICS.md`, written from the spec alone.
//!
//! Ingest is sequential, in arrival order; the state at `T = as_of` is then
//! recomputed from the applied records with ordinary maps and sets.
//!
//! Readings of SEMANTICS.md where the text leaves room (each is pinned by a
//! unit test in `oracle_tests.rs`):
//! - the tie-break between snapshots compares (nodes, edge pairs,
//!   entrypoints) as sorted sets (edge attributes dropped); target sets as
//!   sorted sets;
//! - `event_id`s form one namespace across edges, hits and artifacts; an id
//!   is remembered with the time of the record that applied it;
//! - a target is unobserved only with live coverage (DESIGN.md: "only
//!   coverage can make a function runtime unobserved"), also when
//!   `min_coverage` is 0;
//! - coverage intervals count whole (not clipped to `[T − ttl, T]`);
//! - `reports_at_watermarks` yields a report per watermark that advances
//!   `W` (SEMANTICS.md, Ingest 6).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use tracemerge_records::{
    union_length, ArtifactReport, Config, Conflict, GraphSnapshot, Hop, ObservedEdge, Reach,
    Record, Report, Resolution, State, Stats, Strategy, Targets, Time, Verdict,
};

/// The report of the whole stream, read in arrival order.
pub fn report(records: &[Record], config: &Config) -> Report {
    let mut ingest = Ingest::new(config);
    for record in records {
        ingest.push(record);
    }
    ingest.report()
}

/// One report per watermark that advances `W` (SEMANTICS.md, Ingest 6):
/// the state at that watermark over every record of the stream applied
/// with `time ≤ W` (also those arriving after it within lateness), with the
/// stats of the stream up to and including the watermark.
pub fn reports_at_watermarks(records: &[Record], config: &Config) -> Vec<Report> {
    let mut ingest = Ingest::new(config);
    let mut marks = Vec::new();
    for record in records {
        let before = ingest.watermark;
        ingest.push(record);
        if ingest.watermark != before {
            marks.push((ingest.w(), ingest.stats));
        }
    }
    marks
        .into_iter()
        .map(|(w, stats)| ingest.report_at(w, stats))
        .collect()
}

/// The sequential ingest of SEMANTICS.md ("Ingest").
pub struct Ingest {
    config: Config,
    stats: Stats,
    /// The largest watermark so far; `None` before any.
    watermark: Option<Time>,
    /// Event ids of applied edges/hits, with the time of the applied record.
    ids: BTreeMap<String, Time>,
    /// Applied non-watermark records, in arrival order.
    applied: Vec<Record>,
}

impl Ingest {
    pub fn new(config: &Config) -> Self {
        Ingest {
            config: config.clone(),
            stats: Stats::default(),
            watermark: None,
            ids: BTreeMap::new(),
            applied: Vec::new(),
        }
    }

    /// The current watermark `W` (0 before any).
    fn w(&self) -> Time {
        self.watermark.unwrap_or(0)
    }

    /// `W − lateness`, saturating at 0.
    fn cutoff(&self) -> Time {
        self.w().saturating_sub(self.config.lateness)
    }

    pub fn push(&mut self, record: &Record) {
        self.stats.records += 1;
        if let Record::Watermark { at } = record {
            self.watermark = Some(self.watermark.map_or(*at, |w| w.max(*at)));
            return;
        }
        let time = record.time();
        if time < self.cutoff() {
            self.stats.late += 1;
            return;
        }
        let event_id = match record {
            Record::Edge(e) => e.event_id.as_ref(),
            Record::Hit(h) => h.event_id.as_ref(),
            _ => None,
        };
        if let Some(id) = event_id {
            // An id is remembered while its applied record's time is not
            // behind the cutoff.
            if let Some(&seen) = self.ids.get(id) {
                if seen >= self.cutoff() {
                    self.stats.duplicate += 1;
                    return;
                }
            }
            self.ids.insert(id.clone(), time);
        }
        self.applied.push(record.clone());
    }

    pub fn as_of(&self) -> Time {
        match self.watermark {
            Some(w) => w,
            None => self.applied.iter().map(Record::time).max().unwrap_or(0),
        }
    }

    pub fn report(&self) -> Report {
        self.report_at(self.as_of(), self.stats)
    }

    /// The state at `t` over every record applied so far, with `stats`.
    pub fn report_at(&self, t: Time, stats: Stats) -> Report {
        let visible: Vec<&Record> = self.applied.iter().filter(|r| r.time() <= t).collect();
        let names: BTreeSet<&str> = visible.iter().filter_map(|r| artifact_of(r)).collect();
        let mut report = Report::new(t, self.config.clone(), stats);
        for name in names {
            let of_a: Vec<&Record> = visible
                .iter()
                .copied()
                .filter(|r| artifact_of(r) == Some(name))
                .collect();
            if let Some(a) = artifact_report(name, &of_a, t, &self.config) {
                report.artifacts.push(a);
            }
        }
        report.seal()
    }
}

fn artifact_of(r: &Record) -> Option<&str> {
    match r {
        Record::Graph(g) => Some(&g.artifact),
        Record::Targets(x) => Some(&x.artifact),
        Record::Edge(e) => Some(&e.artifact),
        Record::Hit(h) => Some(&h.artifact),
        Record::Coverage(c) => Some(&c.artifact),
        Record::Watermark { .. } => None,
    }
}

/// Snapshot contents as (nodes, edge pairs, entrypoints), each a sorted set:
/// of two snapshots with the same `at`, the greater (lexicographically)
/// wins. Edge attributes play no part.
pub type GraphKey = (
    BTreeSet<String>,
    BTreeSet<(String, String)>,
    BTreeSet<String>,
);

/// The tie-break key of a snapshot.
pub fn graph_canonical(g: &GraphSnapshot) -> GraphKey {
    let nodes = g.nodes.iter().cloned().collect();
    let edges = g
        .edges
        .iter()
        .map(|e| (e.caller.clone(), e.callee.clone()))
        .collect();
    let entry = g.entrypoints.iter().cloned().collect();
    (nodes, edges, entry)
}

/// The tie-break key of a target set: its symbols as a sorted set.
pub fn targets_canonical(t: &Targets) -> BTreeSet<String> {
    t.symbols.iter().cloned().collect()
}

/// Aggregate of the live observations of one (caller, callee).
struct Agg {
    hits: u64,
    first: Time,
    last: Time,
    sources: BTreeSet<String>,
    /// A live sighting carried an estimated count.
    estimated: bool,
}

fn live(at: Time, t: Time, ttl: Time) -> bool {
    at <= t && t < at.saturating_add(ttl)
}

/// Breadth-first distances from `roots` over `edges`.
fn bfs(roots: &BTreeSet<String>, edges: &BTreeSet<(String, String)>) -> BTreeMap<String, u64> {
    let mut succ: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (u, v) in edges {
        succ.entry(u.as_str()).or_default().push(v.as_str());
    }
    let mut dist: BTreeMap<String, u64> = BTreeMap::new();
    let mut queue = VecDeque::new();
    for r in roots {
        dist.insert(r.clone(), 0);
        queue.push_back(r.clone());
    }
    while let Some(u) = queue.pop_front() {
        let d = dist[&u];
        for v in succ.get(u.as_str()).into_iter().flatten() {
            if !dist.contains_key(*v) {
                dist.insert(v.to_string(), d + 1);
                queue.push_back(v.to_string());
            }
        }
    }
    dist
}

fn artifact_report(
    name: &str,
    recs: &[&Record],
    t: Time,
    config: &Config,
) -> Option<ArtifactReport> {
    let ttl = config.ttl;

    // Snapshot and targets: largest `at`, ties by the greater canonical form.
    let snapshot: Option<&GraphSnapshot> = recs
        .iter()
        .filter_map(|r| match r {
            Record::Graph(g) => Some(g),
            _ => None,
        })
        .max_by(|x, y| (x.at, graph_canonical(x)).cmp(&(y.at, graph_canonical(y))));
    let targets: BTreeSet<String> = recs
        .iter()
        .filter_map(|r| match r {
            Record::Targets(x) => Some(x),
            _ => None,
        })
        .max_by(|x, y| (x.at, targets_canonical(x)).cmp(&(y.at, targets_canonical(y))))
        .map(|x| x.symbols.iter().cloned().collect())
        .unwrap_or_default();

    let live_edges: Vec<_> = recs
        .iter()
        .filter_map(|r| match r {
            Record::Edge(e) if live(e.at, t, ttl) => Some(e),
            _ => None,
        })
        .collect();
    let live_hits: Vec<_> = recs
        .iter()
        .filter_map(|r| match r {
            Record::Hit(h) if live(h.at, t, ttl) => Some(h),
            _ => None,
        })
        .collect();
    let live_coverage: Vec<_> = recs
        .iter()
        .filter_map(|r| match r {
            Record::Coverage(c) if live(c.to, t, ttl) => Some(c),
            _ => None,
        })
        .collect();

    let has_live_obs = !live_edges.is_empty() || !live_hits.is_empty();
    if snapshot.is_none() && targets.is_empty() && !has_live_obs {
        return None;
    }

    let nodes: BTreeSet<String> = snapshot
        .map(|g| g.nodes.iter().cloned().collect())
        .unwrap_or_default();
    let static_edges: BTreeSet<(String, String)> = snapshot
        .map(|g| {
            g.edges
                .iter()
                .map(|e| (e.caller.clone(), e.callee.clone()))
                .collect()
        })
        .unwrap_or_default();
    let entry: BTreeSet<String> = snapshot
        .map(|g| g.entrypoints.iter().cloned().collect())
        .unwrap_or_default();

    // Observed edges.
    let mut observed: BTreeMap<(String, String), Agg> = BTreeMap::new();
    for e in &live_edges {
        let agg = observed
            .entry((e.caller.clone(), e.callee.clone()))
            .or_insert(Agg {
                hits: 0,
                first: e.at,
                last: e.at,
                sources: BTreeSet::new(),
                estimated: false,
            });
        agg.hits = agg.hits.saturating_add(e.hits);
        agg.first = agg.first.min(e.at);
        agg.last = agg.last.max(e.at);
        agg.sources.insert(e.source.clone());
        agg.estimated |= e.estimated;
    }
    let in_static = |pair: &(String, String)| snapshot.is_some() && static_edges.contains(pair);

    // Executed symbols.
    let mut executed: BTreeSet<String> = BTreeSet::new();
    for e in &live_edges {
        executed.insert(e.caller.clone());
        executed.insert(e.callee.clone());
    }
    for h in &live_hits {
        executed.insert(h.symbol.clone());
    }

    let has_coverage = |s: &str| {
        live_coverage
            .iter()
            .any(|c| c.symbols.iter().any(|x| x == s))
    };
    let covered = |s: &str| -> Time {
        union_length(
            live_coverage
                .iter()
                .filter(|c| c.symbols.iter().any(|x| x == s))
                .map(|c| (c.from, c.to))
                .collect(),
        )
    };

    // Candidates and their resolutions.
    let mut candidates: BTreeMap<(String, String), Resolution> = BTreeMap::new();
    for (pair, agg) in &observed {
        if in_static(pair) {
            continue;
        }
        let resolution = if config.quarantined(&pair.0, &pair.1) {
            Resolution::Quarantined
        } else {
            match config.strategy {
                Strategy::Union => Resolution::Accepted,
                Strategy::Static => Resolution::Rejected,
                Strategy::Quorum { hits, sources } => {
                    if agg.hits >= hits && agg.sources.len() as u64 >= sources {
                        Resolution::Accepted
                    } else {
                        Resolution::Pending
                    }
                }
            }
        };
        candidates.insert(pair.clone(), resolution);
    }
    let accepted: BTreeSet<(String, String)> = candidates
        .iter()
        .filter(|(_, r)| **r == Resolution::Accepted)
        .map(|(p, _)| p.clone())
        .collect();

    // Closures (entry is empty without a snapshot).
    let observed_pairs: BTreeSet<(String, String)> = observed.keys().cloned().collect();
    let effective_edges: BTreeSet<(String, String)> =
        static_edges.union(&accepted).cloned().collect();
    let reach_static = bfs(&entry, &static_edges);
    let reach_runtime = bfs(&entry, &observed_pairs);
    let dist = bfs(&entry, &effective_edges);

    // Verdicts.
    let mut verdicts = Vec::new();
    for target in &targets {
        let static_side = snapshot.map(|_| reach_static.contains_key(target));
        let runtime_side = if executed.contains(target) {
            Some(true)
        } else if has_coverage(target) && covered(target) >= config.min_coverage {
            Some(false)
        } else {
            None
        };
        let state = State::join(static_side, runtime_side);
        let (path, hops) = match dist.get(target) {
            None => (None, None),
            Some(_) => {
                let mut path = vec![target.clone()];
                let mut v = target.clone();
                while dist[&v] > 0 {
                    let dv = dist[&v];
                    let parent = effective_edges
                        .iter()
                        .filter(|(a, b)| *b == v && dist.get(a) == Some(&(dv - 1)))
                        .map(|(a, _)| a.clone())
                        .min()
                        .expect("a BFS-reached node has a parent");
                    path.push(parent.clone());
                    v = parent;
                }
                path.reverse();
                let hops = path
                    .windows(2)
                    .map(|w| {
                        let pair = (w[0].clone(), w[1].clone());
                        if static_edges.contains(&pair) {
                            if observed.contains_key(&pair) {
                                Hop::Both
                            } else {
                                Hop::Static
                            }
                        } else {
                            debug_assert!(accepted.contains(&pair));
                            Hop::Runtime
                        }
                    })
                    .collect();
                (Some(path), Some(hops))
            }
        };
        verdicts.push(Verdict {
            target: target.clone(),
            state,
            vex: state.vex(),
            path,
            hops,
        });
    }

    // Conflicts.
    let mut conflicts = Vec::new();
    if snapshot.is_none() {
        if has_live_obs {
            conflicts.push(Conflict::NoStaticSnapshot {});
        }
    } else {
        for ((caller, callee), resolution) in &candidates {
            if nodes.contains(caller) && nodes.contains(callee) {
                let agg = &observed[&(caller.clone(), callee.clone())];
                conflicts.push(Conflict::RuntimeEdgeNotInStatic {
                    caller: caller.clone(),
                    callee: callee.clone(),
                    resolution: *resolution,
                    hits: agg.hits,
                    sources: agg.sources.len() as u64,
                });
            }
        }
        for s in &executed {
            if !nodes.contains(s) {
                conflicts.push(Conflict::UnknownSymbol { symbol: s.clone() });
            } else if !reach_static.contains_key(s) {
                conflicts.push(Conflict::ExecutedButStaticallyUnreachable { symbol: s.clone() });
            }
        }
        for target in &targets {
            if reach_static.contains_key(target)
                && !executed.contains(target)
                && has_coverage(target)
                && covered(target) >= config.min_coverage
            {
                conflicts.push(Conflict::ReachableButUnobserved {
                    symbol: target.clone(),
                });
            }
        }
    }

    let observed_edges = observed
        .iter()
        .map(|(pair, agg)| ObservedEdge {
            caller: pair.0.clone(),
            callee: pair.1.clone(),
            hits: agg.hits,
            first_seen: agg.first,
            last_seen: agg.last,
            sources: agg.sources.len() as u64,
            in_static: in_static(pair),
            estimated: agg.estimated,
        })
        .collect();

    Some(ArtifactReport {
        artifact: name.to_string(),
        observed_edges,
        reach: Reach {
            static_: reach_static.len() as u64,
            runtime: reach_runtime.len() as u64,
            effective: dist.len() as u64,
        },
        verdicts,
        conflicts,
    })
}
