//! Seeded random record streams that exercise every rule of
//! `dataflow/SEMANTICS.md`: snapshot replacement (out of order, equal `at`),
//! targets outside the graph, observations outside the snapshot, several
//! sources, duplicated event ids, coverage, irregular (sometimes regressing)
//! watermarks, ttl expiry, late records and disorder within the lateness.
//!
//! Same seed and parameters, same stream.

use std::collections::{BTreeMap, BTreeSet};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tracemerge_records::{
    Coverage, EdgeObservation, GraphSnapshot, HitObservation, Record, StaticEdge, Targets, Time,
};

/// Shape of a random stream. Times are small integers (milliseconds), so a
/// test config with a `ttl` of a few hundred expires observations often.
#[derive(Clone, Debug)]
pub struct StreamParams {
    /// Artifacts per stream: 1..=max_artifacts.
    pub max_artifacts: usize,
    /// Symbols per artifact universe (small: collisions, cycles, self loops).
    pub symbols: usize,
    /// Non-watermark records to generate (before duplicates and late copies).
    pub records: usize,
    /// Mean event-time step between consecutive generated events.
    pub mean_step: Time,
    /// Probability that a step is a long quiet gap (ttl expiry without data).
    pub gap_prob: f64,
    /// Length of a quiet gap.
    pub gap: Time,
    /// Arrival disorder: a record arrives up to this much event time after
    /// later-stamped ones. Watermarks trail the arrival clock by up to this.
    pub disorder: Time,
    /// Probability that an artifact never gets a snapshot.
    pub no_snapshot_prob: f64,
    /// Probability of a graph record at each event (per artifact choice).
    pub graph_prob: f64,
    pub targets_prob: f64,
    pub hit_prob: f64,
    pub coverage_prob: f64,
    /// Probability that an observation names a symbol outside the universe.
    pub foreign_prob: f64,
    /// Probability that an edge/hit carries an event id.
    pub event_id_prob: f64,
    /// Probability that an edge/hit with an id is delivered again (identical copy).
    pub duplicate_prob: f64,
    /// Probability that such a copy differs from the original (same id,
    /// other hits and time).
    pub divergent_duplicate_prob: f64,
    /// Probability of injecting a deliberately late record (older than the
    /// current watermark minus `disorder`).
    pub late_prob: f64,
    /// Probability of a watermark after each record.
    pub watermark_prob: f64,
    /// Whether the stream ends with a watermark past every record.
    pub final_watermark: bool,
}

impl Default for StreamParams {
    fn default() -> Self {
        StreamParams {
            max_artifacts: 3,
            symbols: 6,
            records: 60,
            mean_step: 20,
            gap_prob: 0.04,
            gap: 600,
            disorder: 60,
            no_snapshot_prob: 0.2,
            graph_prob: 0.08,
            targets_prob: 0.06,
            hit_prob: 0.2,
            coverage_prob: 0.12,
            foreign_prob: 0.1,
            event_id_prob: 0.5,
            duplicate_prob: 0.25,
            divergent_duplicate_prob: 0.1,
            late_prob: 0.05,
            watermark_prob: 0.2,
            final_watermark: true,
        }
    }
}

impl StreamParams {
    /// A handful of records: readable counterexamples.
    pub fn tiny() -> Self {
        StreamParams {
            max_artifacts: 2,
            symbols: 4,
            records: 15,
            watermark_prob: 0.3,
            graph_prob: 0.15,
            targets_prob: 0.12,
            ..Self::default()
        }
    }

    /// Many observations over very few symbols: heavy aggregation, quorum
    /// thresholds crossed and uncrossed, long cycles of replacement.
    pub fn dense() -> Self {
        StreamParams {
            max_artifacts: 2,
            symbols: 4,
            records: 200,
            mean_step: 5,
            graph_prob: 0.04,
            targets_prob: 0.03,
            ..Self::default()
        }
    }

    /// Sparse events with long gaps: ttl expiry, late records and regressing
    /// watermarks dominate.
    pub fn churn() -> Self {
        StreamParams {
            records: 80,
            mean_step: 60,
            gap_prob: 0.12,
            disorder: 150,
            late_prob: 0.12,
            watermark_prob: 0.35,
            graph_prob: 0.12,
            ..Self::default()
        }
    }

    /// Wider graphs (more symbols) so witness paths get long and ties occur.
    pub fn wide() -> Self {
        StreamParams {
            max_artifacts: 1,
            symbols: 12,
            records: 120,
            graph_prob: 0.05,
            foreign_prob: 0.05,
            ..Self::default()
        }
    }

    /// The named presets, for loops over all of them.
    pub fn presets() -> Vec<(&'static str, StreamParams)> {
        vec![
            ("default", Self::default()),
            ("tiny", Self::tiny()),
            ("dense", Self::dense()),
            ("churn", Self::churn()),
            ("wide", Self::wide()),
        ]
    }
}

const ARTIFACT_NAMES: [&str; 3] = ["app@1", "lib@2", "svc@3"];
const SOURCES: [&str; 4] = ["ebpf:h1", "ebpf:h2", "etw:w1", ""];
const FOREIGN: [&str; 3] = ["plugin_x", "jit_stub", "ghost"];

/// The symbol universe of one artifact: `main` plus short names; shared
/// across artifacts so that per-artifact separation is exercised.
pub fn universe(n: usize) -> Vec<String> {
    let mut u = vec!["main".to_string()];
    for i in 1..n.max(2) {
        u.push(((b'a' + (i as u8 - 1) % 26) as char).to_string() + &"_".repeat((i - 1) / 26));
    }
    u
}

struct Gen<'p> {
    rng: ChaCha8Rng,
    p: &'p StreamParams,
    artifacts: Vec<String>,
    universe: Vec<String>,
    with_snapshot: BTreeSet<String>,
    /// The last generated snapshot of each artifact (mutated into the next).
    last_graph: BTreeMap<String, GraphSnapshot>,
    next_id: u64,
}

impl Gen<'_> {
    fn pick<'a>(&mut self, v: &'a [String]) -> &'a String {
        v.choose(&mut self.rng).expect("non-empty")
    }

    fn symbol(&mut self, a: &str) -> String {
        if self.rng.gen_bool(self.p.foreign_prob) {
            return FOREIGN.choose(&mut self.rng).unwrap().to_string();
        }
        // Prefer the current snapshot's nodes so that observations mostly
        // line up with static edges.
        if let Some(g) = self.last_graph.get(a) {
            if self.rng.gen_bool(0.7) && !g.nodes.is_empty() {
                let nodes = g.nodes.clone();
                return self.pick(&nodes).clone();
            }
        }
        let u = self.universe.clone();
        self.pick(&u).clone()
    }

    fn random_graph(&mut self, artifact: &str, at: Time) -> GraphSnapshot {
        let n = self.universe.len();
        let mut nodes: Vec<String> = self
            .universe
            .iter()
            .filter(|_| self.rng.gen_bool(0.75))
            .cloned()
            .collect();
        if nodes.is_empty() {
            nodes.push("main".into());
        }
        nodes.shuffle(&mut self.rng);
        let mut pairs = BTreeSet::new();
        let edges = self.rng.gen_range(0..=n + 3);
        for _ in 0..edges {
            let c = self.pick(&nodes).clone();
            let e = self.pick(&nodes).clone();
            pairs.insert((c, e));
        }
        let mut entrypoints = Vec::new();
        if nodes.contains(&"main".to_string()) && self.rng.gen_bool(0.85) {
            entrypoints.push("main".to_string());
        }
        if self.rng.gen_bool(0.3) {
            let extra = self.pick(&nodes).clone();
            if !entrypoints.contains(&extra) {
                entrypoints.push(extra);
            }
        }
        self.graph_from(artifact, at, nodes, pairs, entrypoints)
    }

    fn graph_from(
        &mut self,
        artifact: &str,
        at: Time,
        nodes: Vec<String>,
        pairs: BTreeSet<(String, String)>,
        entrypoints: Vec<String>,
    ) -> GraphSnapshot {
        let mut edges: Vec<StaticEdge> = pairs
            .into_iter()
            .map(|(c, e)| {
                let mut edge = StaticEdge::new(c, e);
                if self.rng.gen_bool(0.1) {
                    edge.kind = Some(tracemerge_records::EdgeKind::Heuristic);
                    edge.reason = Some("vtable".into());
                }
                edge
            })
            .collect();
        if !edges.is_empty() && self.rng.gen_bool(0.08) {
            // A pair listed twice (say, once per call site).
            let mut again = edges[self.rng.gen_range(0..edges.len())].clone();
            again.kind = Some(tracemerge_records::EdgeKind::Static);
            edges.push(again);
        }
        edges.shuffle(&mut self.rng);
        let mut entrypoints = entrypoints;
        if !entrypoints.is_empty() && self.rng.gen_bool(0.05) {
            entrypoints.push(entrypoints[0].clone());
        }
        GraphSnapshot {
            artifact: artifact.to_string(),
            at,
            nodes,
            edges,
            entrypoints,
            indirect_calls: Default::default(),
            modules: Default::default(),
        }
    }

    /// A snapshot derived from the previous one: a few nodes/edges added or removed.
    fn mutated_graph(&mut self, prev: &GraphSnapshot, at: Time) -> GraphSnapshot {
        let mut nodes: Vec<String> = prev.nodes.clone();
        let mut pairs: BTreeSet<(String, String)> = prev
            .edges
            .iter()
            .map(|e| (e.caller.clone(), e.callee.clone()))
            .collect();
        for _ in 0..self.rng.gen_range(1..=3) {
            match self.rng.gen_range(0..4) {
                0 => {
                    let u = self.universe.clone();
                    let s = self.pick(&u).clone();
                    if !nodes.contains(&s) {
                        nodes.push(s);
                    }
                }
                1 if nodes.len() > 1 => {
                    let i = self.rng.gen_range(0..nodes.len());
                    let gone = nodes.remove(i);
                    pairs.retain(|(c, e)| *c != gone && *e != gone);
                }
                2 => {
                    let c = self.pick(&nodes).clone();
                    let e = self.pick(&nodes).clone();
                    pairs.insert((c, e));
                }
                _ => {
                    if let Some(p) = pairs.iter().nth(self.rng.gen_range(0..pairs.len().max(1))) {
                        let p = p.clone();
                        pairs.remove(&p);
                    }
                }
            }
        }
        let entrypoints: Vec<String> = prev
            .entrypoints
            .iter()
            .filter(|e| nodes.contains(e))
            .cloned()
            .collect();
        let artifact = prev.artifact.clone();
        self.graph_from(&artifact, at, nodes, pairs, entrypoints)
    }

    fn event_id(&mut self) -> Option<String> {
        if self.rng.gen_bool(self.p.event_id_prob) {
            self.next_id += 1;
            Some(format!("ev{}", self.next_id))
        } else {
            None
        }
    }

    fn source(&mut self) -> String {
        // Skewed: the first source is the most common.
        let i = [0, 0, 0, 1, 1, 2, 3][self.rng.gen_range(0..7)];
        SOURCES[i].to_string()
    }

    fn hits(&mut self) -> u64 {
        [1, 1, 1, 2, 3, 5][self.rng.gen_range(0..6)]
    }

    /// One non-watermark record at event time `t`.
    fn event(&mut self, t: Time) -> Record {
        let a = self.artifacts.choose(&mut self.rng).unwrap().clone();
        let roll: f64 = self.rng.gen();
        let p = self.p;
        let mut acc = 0.0;
        let mut next = |x: f64| {
            acc += x;
            roll < acc
        };
        if next(p.graph_prob) && self.with_snapshot.contains(&a) {
            let g = match self.last_graph.get(&a).cloned() {
                Some(prev) if self.rng.gen_bool(0.6) => self.mutated_graph(&prev, t),
                Some(prev) if self.rng.gen_bool(0.3) => {
                    // Same content again, or another snapshot with the same `at`.
                    let mut g = if self.rng.gen_bool(0.5) {
                        prev.clone()
                    } else {
                        self.random_graph(&a, prev.at)
                    };
                    if self.rng.gen_bool(0.5) {
                        g.at = t;
                    }
                    g
                }
                _ => self.random_graph(&a, t),
            };
            if g.at >= self.last_graph.get(&a).map_or(0, |x| x.at) {
                self.last_graph.insert(a.clone(), g.clone());
            }
            return Record::Graph(g);
        }
        if next(p.targets_prob) {
            let k = self.rng.gen_range(0..=4);
            let mut symbols = Vec::new();
            for _ in 0..k {
                let s = if self.rng.gen_bool(0.15) {
                    "vuln_fn".to_string()
                } else {
                    let u = self.universe.clone();
                    self.pick(&u).clone()
                };
                symbols.push(s);
            }
            let at = if self.rng.gen_bool(0.2) { t / 2 } else { t };
            return Record::Targets(Targets {
                artifact: a,
                at,
                symbols,
            });
        }
        if next(p.coverage_prob) {
            let k = self.rng.gen_range(1..=3);
            let symbols = (0..k).map(|_| self.symbol(&a)).collect();
            let len = self.rng.gen_range(0..=4 * p.mean_step.max(1) + 100);
            return Record::Coverage(Coverage {
                artifact: a,
                symbols,
                from: t.saturating_sub(len),
                to: t,
                source: self.source(),
                lost: None,
            });
        }
        if next(p.hit_prob) {
            return Record::Hit(HitObservation {
                symbol: self.symbol(&a),
                artifact: a,
                at: t,
                hits: self.hits(),
                source: self.source(),
                event_id: self.event_id(),
                estimated: false,
            });
        }
        // An edge: often a static edge of the current snapshot.
        let static_pair = self.last_graph.get(&a).and_then(|g| {
            if g.edges.is_empty() {
                None
            } else {
                let e = &g.edges[self.rng.gen_range(0..g.edges.len())];
                Some((e.caller.clone(), e.callee.clone()))
            }
        });
        let (caller, callee) = match static_pair {
            Some(pair) if self.rng.gen_bool(0.45) => pair,
            _ => (self.symbol(&a), self.symbol(&a)),
        };
        Record::Edge(EdgeObservation {
            artifact: a,
            caller,
            callee,
            at: t,
            hits: self.hits(),
            source: self.source(),
            event_id: self.event_id(),
            estimated: false,
        })
    }
}

fn set_time(record: &mut Record, t: Time) {
    match record {
        Record::Graph(g) => g.at = t,
        Record::Targets(x) => x.at = t,
        Record::Edge(e) => e.at = t,
        Record::Hit(h) => h.at = t,
        Record::Coverage(c) => {
            let len = c.to - c.from;
            c.to = t;
            c.from = t.saturating_sub(len);
        }
        Record::Watermark { at } => *at = t,
    }
}

/// A random record stream for `seed`, in arrival order.
pub fn stream(seed: u64, params: &StreamParams) -> Vec<Record> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let count = rng.gen_range(1..=params.max_artifacts.clamp(1, ARTIFACT_NAMES.len()));
    let mut names: Vec<&str> = ARTIFACT_NAMES.to_vec();
    names.shuffle(&mut rng);
    let artifacts: Vec<String> = names[..count].iter().map(|s| s.to_string()).collect();
    let mut with_snapshot = BTreeSet::new();
    for a in &artifacts {
        if !rng.gen_bool(params.no_snapshot_prob) {
            with_snapshot.insert(a.clone());
        }
    }
    let mut g = Gen {
        rng,
        p: params,
        artifacts: artifacts.clone(),
        universe: universe(params.symbols),
        with_snapshot: with_snapshot.clone(),
        last_graph: BTreeMap::new(),
        next_id: 0,
    };

    // Event times: an irregular walk; each artifact with a snapshot starts
    // with one (sometimes only after a few observations), and one target set.
    let mut events: Vec<Record> = Vec::new();
    let mut t: Time = g.rng.gen_range(0..50);
    for a in &artifacts {
        if with_snapshot.contains(a) {
            let at = if g.rng.gen_bool(0.8) {
                0
            } else {
                t + g.rng.gen_range(0..200)
            };
            let graph = g.random_graph(a, at);
            g.last_graph.insert(a.clone(), graph.clone());
            events.push(Record::Graph(graph));
        }
        if g.rng.gen_bool(0.8) {
            let u = g.universe.clone();
            let mut symbols: Vec<String> =
                u.iter().filter(|_| g.rng.gen_bool(0.4)).cloned().collect();
            if g.rng.gen_bool(0.3) {
                symbols.push("vuln_fn".into());
            }
            events.push(Record::Targets(Targets {
                artifact: a.clone(),
                at: 0,
                symbols,
            }));
        }
    }
    for _ in 0..params.records {
        t += if g.rng.gen_bool(params.gap_prob) {
            params.gap + g.rng.gen_range(0..params.gap.max(1))
        } else {
            g.rng.gen_range(0..=2 * params.mean_step)
        };
        events.push(g.event(t));
    }

    // Arrival: sort by event time plus jitter in [0, disorder].
    let mut keyed: Vec<(Time, u64, Record)> = events
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let jitter = if params.disorder == 0 {
                0
            } else {
                g.rng.gen_range(0..=params.disorder)
            };
            (r.time() + jitter, i as u64, r)
        })
        .collect();
    keyed.sort_by_key(|(k, i, _)| (*k, *i));

    // Interleave watermarks trailing the arrival clock, duplicate copies and
    // late injections.
    let mut out: Vec<Record> = Vec::new();
    let mut w: Time = 0;
    let mut pending_dups: Vec<(usize, Record)> = Vec::new();
    for (n, (key, _, record)) in keyed.into_iter().enumerate() {
        // Deliver duplicate copies scheduled for now.
        let (now, later): (Vec<_>, Vec<_>) = pending_dups.into_iter().partition(|(at, _)| *at <= n);
        pending_dups = later;
        out.extend(now.into_iter().map(|(_, r)| r));

        let has_id = matches!(&record, Record::Edge(e) if e.event_id.is_some())
            || matches!(&record, Record::Hit(h) if h.event_id.is_some());
        if has_id && g.rng.gen_bool(params.duplicate_prob) {
            // An identical copy, delivered a little later (possibly after
            // the watermark passed it: then it is late, not a duplicate).
            let delay = g.rng.gen_range(0..6);
            let mut copy = record.clone();
            if g.rng.gen_bool(params.divergent_duplicate_prob) {
                // A buggy producer: same id, different content. Which copy
                // applies, and whether the id is still remembered, matter.
                // Ids are global: the copy may even be another kind of
                // record or name another artifact.
                let shift = g.rng.gen_range(0..=params.disorder);
                let other = g.artifacts.choose(&mut g.rng).unwrap().clone();
                let (retype, reart) = (g.rng.gen_bool(0.3), g.rng.gen_bool(0.3));
                match &mut copy {
                    Record::Edge(e) => {
                        e.hits += 1;
                        e.at += shift;
                        if reart {
                            e.artifact = other;
                        }
                        if retype {
                            copy = Record::Hit(HitObservation {
                                artifact: e.artifact.clone(),
                                symbol: e.callee.clone(),
                                at: e.at,
                                hits: e.hits,
                                source: e.source.clone(),
                                event_id: e.event_id.clone(),
                                estimated: false,
                            });
                        }
                    }
                    Record::Hit(h) => {
                        h.hits += 1;
                        h.at += shift;
                        if reart {
                            h.artifact = other;
                        }
                    }
                    _ => {}
                }
            }
            pending_dups.push((n + delay, copy));
        }
        out.push(record);

        if g.rng.gen_bool(params.late_prob) && w > params.disorder + 1 {
            // A record stamped before the current watermark minus the disorder.
            // (A late snapshot must not become the base of later mutations.)
            let saved = g.last_graph.clone();
            let mut late = g.event(0);
            g.last_graph = saved;
            let back = g
                .rng
                .gen_range(params.disorder + 1..=w.min(params.disorder * 3 + 50));
            set_time(&mut late, w - back);
            out.push(late);
        }
        if g.rng.gen_bool(params.watermark_prob) {
            let lag = g.rng.gen_range(0..=params.disorder);
            let mark = key.saturating_sub(lag);
            // Mostly advancing, sometimes repeating or regressing.
            out.push(Record::Watermark { at: mark });
            w = w.max(mark);
        }
    }
    out.extend(pending_dups.into_iter().map(|(_, r)| r));
    if params.final_watermark {
        let last = out.iter().map(Record::time).max().unwrap_or(0);
        let extra = if g.rng.gen_bool(0.3) {
            g.rng.gen_range(0..2000)
        } else {
            0
        };
        out.push(Record::Watermark { at: last + extra });
    }
    out
}

fn event_id(r: &Record) -> Option<&str> {
    match r {
        Record::Edge(e) => e.event_id.as_deref(),
        Record::Hit(h) => h.event_id.as_deref(),
        _ => None,
    }
}

/// Another arrival order of `records` that is equivalent under the
/// semantics with the given `lateness`:
///
/// - watermarks keep their relative order;
/// - every other record moves to a new gap between watermarks where it is
///   late exactly when it was late before (its time against the running
///   maximum watermark of that gap), and records after the last watermark
///   stay after it (so the last per-watermark report sees the same records);
/// - records sharing an `event_id` whose copies are not all identical keep
///   their gap and their relative order (which copy comes first, and when the
///   id is forgotten, then matters); identical copies move freely, since
///   only one of them can ever apply.
pub fn shuffle_within_lateness(records: &[Record], lateness: Time, seed: u64) -> Vec<Record> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5EED_5EED_5EED_5EED);
    // Gap j holds the records after the j-th watermark (gap 0: before any).
    let watermarks: Vec<&Record> = records
        .iter()
        .filter(|r| matches!(r, Record::Watermark { .. }))
        .collect();
    let k = watermarks.len();
    // Running maximum watermark in gap j (W is 0 before any watermark).
    let mut cutoff = vec![0; k + 1];
    let mut w = 0;
    for (j, m) in watermarks.iter().enumerate() {
        w = w.max(m.time());
        cutoff[j + 1] = w.saturating_sub(lateness);
    }
    let is_late = |time: Time, gap: usize| time < cutoff[gap];

    let mut groups: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
    for r in records {
        if let Some(id) = event_id(r) {
            groups.entry(id).or_default().push(r);
        }
    }
    let divergent: BTreeSet<&str> = groups
        .iter()
        .filter(|(_, copies)| copies.iter().any(|c| *c != copies[0]))
        .map(|(id, _)| *id)
        .collect();

    // Assign every non-watermark record a gap and a random key.
    let mut slots: Vec<Vec<(u64, usize)>> = vec![Vec::new(); k + 1];
    let mut gap = 0;
    for (i, r) in records.iter().enumerate() {
        if matches!(r, Record::Watermark { .. }) {
            gap += 1;
            continue;
        }
        let pinned = event_id(r).is_some_and(|id| divergent.contains(id));
        let target = if pinned || gap == k {
            gap
        } else {
            let late = is_late(r.time(), gap);
            let allowed: Vec<usize> = (0..k).filter(|&j| is_late(r.time(), j) == late).collect();
            // Prefer nearby gaps so the stream stays plausible.
            let near: Vec<usize> = allowed
                .iter()
                .copied()
                .filter(|&j| j + 3 >= gap && j <= gap + 3)
                .collect();
            *near.choose(&mut rng).unwrap_or(&gap)
        };
        slots[target].push((rng.gen(), i));
    }
    for slot in &mut slots {
        slot.sort();
        // Pinned groups: restore their original relative order in place.
        for id in &divergent {
            let positions: Vec<usize> = slot
                .iter()
                .enumerate()
                .filter(|(_, (_, i))| event_id(&records[*i]) == Some(*id))
                .map(|(p, _)| p)
                .collect();
            let mut originals: Vec<usize> = positions.iter().map(|&p| slot[p].1).collect();
            originals.sort();
            for (p, i) in positions.into_iter().zip(originals) {
                slot[p].1 = i;
            }
        }
    }
    let mut out = Vec::with_capacity(records.len());
    for (j, slot) in slots.into_iter().enumerate() {
        out.extend(slot.into_iter().map(|(_, i)| records[i].clone()));
        if j < k {
            out.push(watermarks[j].clone());
        }
    }
    out
}

/// Stream statistics, handy to check that a generator exercises what it should.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Census {
    pub graphs: usize,
    pub targets: usize,
    pub edges: usize,
    pub hits: usize,
    pub coverage: usize,
    pub watermarks: usize,
    pub regressing_watermarks: usize,
    pub with_event_id: usize,
    pub repeated_event_ids: usize,
    pub self_loops: usize,
}

pub fn census(records: &[Record]) -> Census {
    let mut c = Census::default();
    let mut ids = BTreeSet::new();
    let mut w = None::<Time>;
    for r in records {
        match r {
            Record::Graph(_) => c.graphs += 1,
            Record::Targets(_) => c.targets += 1,
            Record::Edge(e) => {
                c.edges += 1;
                if e.caller == e.callee {
                    c.self_loops += 1;
                }
            }
            Record::Hit(_) => c.hits += 1,
            Record::Coverage(_) => c.coverage += 1,
            Record::Watermark { at } => {
                c.watermarks += 1;
                if w.is_some_and(|w| *at < w) {
                    c.regressing_watermarks += 1;
                }
                w = Some(w.map_or(*at, |w| w.max(*at)));
            }
        }
        if let Some(id) = event_id(r) {
            c.with_event_id += 1;
            if !ids.insert(id.to_string()) {
                c.repeated_event_ids += 1;
            }
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_valid() {
        for (name, p) in StreamParams::presets() {
            for seed in 0..20 {
                let a = stream(seed, &p);
                assert_eq!(a, stream(seed, &p), "{name} {seed}");
                for r in &a {
                    r.validate()
                        .unwrap_or_else(|e| panic!("{name} {seed}: {e}: {r:?}"));
                    assert_eq!(&Record::from_json(&r.to_json()).unwrap(), r);
                }
            }
        }
        assert_ne!(
            stream(1, &StreamParams::default()),
            stream(2, &StreamParams::default())
        );
    }

    #[test]
    fn exercises_everything() {
        let mut total = Census::default();
        let mut artifact_counts = BTreeSet::new();
        for seed in 0..50 {
            let s = stream(seed, &StreamParams::default());
            let c = census(&s);
            total.graphs += c.graphs;
            total.targets += c.targets;
            total.edges += c.edges;
            total.hits += c.hits;
            total.coverage += c.coverage;
            total.regressing_watermarks += c.regressing_watermarks;
            total.repeated_event_ids += c.repeated_event_ids;
            total.self_loops += c.self_loops;
            let names: BTreeSet<_> = s
                .iter()
                .filter_map(|r| match r {
                    Record::Edge(e) => Some(e.artifact.clone()),
                    Record::Hit(h) => Some(h.artifact.clone()),
                    _ => None,
                })
                .collect();
            artifact_counts.insert(names.len());
        }
        assert!(total.graphs > 100, "{total:?}");
        assert!(total.regressing_watermarks > 10, "{total:?}");
        assert!(total.repeated_event_ids > 50, "{total:?}");
        assert!(total.self_loops > 10, "{total:?}");
        assert!(total.coverage > 100 && total.hits > 100, "{total:?}");
        assert!(artifact_counts.contains(&1) && artifact_counts.contains(&3));
    }

    #[test]
    fn shuffle_is_a_permutation_keeping_watermark_order() {
        for seed in 0..30 {
            let s = stream(seed, &StreamParams::churn());
            for lateness in [0, 30, 150, 1000] {
                let t = shuffle_within_lateness(&s, lateness, seed);
                let key = |v: &[Record]| {
                    let mut j: Vec<String> = v.iter().map(Record::to_json).collect();
                    j.sort();
                    j
                };
                assert_eq!(key(&s), key(&t));
                let wm = |v: &[Record]| {
                    v.iter()
                        .filter(|r| matches!(r, Record::Watermark { .. }))
                        .cloned()
                        .collect::<Vec<_>>()
                };
                assert_eq!(wm(&s), wm(&t));
                assert_eq!(s.last(), t.last());
            }
        }
    }
}
