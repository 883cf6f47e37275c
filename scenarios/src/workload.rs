//! Seeded, realistic workloads at scale: a call graph with power-law
//! fan-out, and a runtime stream whose edges are Zipf-skewed (a few hot
//! edges carry most observations), from many sources, with a share of edges
//! the static graph lacks, coverage windows and regular watermarks.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tracemerge_records::{
    Coverage, EdgeObservation, GraphSnapshot, HitObservation, Record, StaticEdge, Targets, Time,
};

/// The shape of a workload.
#[derive(Clone, Debug)]
pub struct Workload {
    pub seed: u64,
    pub artifact: String,
    /// Functions in the call graph.
    pub functions: usize,
    /// Mean static out-degree (fan-out is power-law around it).
    pub mean_fanout: f64,
    /// Runtime records after the graph (edges, hits, coverage).
    pub records: usize,
    /// Distinct agents/hosts.
    pub sources: usize,
    /// Zipf exponent of edge popularity (0 = uniform).
    pub skew: f64,
    /// Share of observed edges missing from the static graph.
    pub conflict_rate: f64,
    /// Event time between consecutive records (ms).
    pub step: Time,
    /// A watermark every this many records.
    pub watermark_every: usize,
    /// Vulnerable targets chosen among the functions.
    pub targets: usize,
    /// Share of runtime records that are `hit`s (the rest after coverage
    /// are edges).
    pub hit_share: f64,
    /// Share of runtime records that are `coverage` windows.
    pub coverage_share: f64,
    /// Share of the functions (the last ones) that form a subtree no static
    /// edge from the rest of the graph enters: statically unreachable,
    /// all reachable from its root [`Workload::detached_root`]. 0 = none.
    pub detached: f64,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            seed: 1,
            artifact: "app@1".into(),
            functions: 10_000,
            mean_fanout: 4.0,
            records: 100_000,
            sources: 16,
            skew: 1.1,
            conflict_rate: 0.02,
            step: 1,
            watermark_every: 1000,
            targets: 50,
            hit_share: 0.04,
            coverage_share: 0.01,
            detached: 0.0,
        }
    }
}

fn name(i: usize) -> String {
    format!("f{i}")
}

impl Workload {
    /// The static snapshot: `f0` is the entrypoint; each function calls a
    /// power-law number of functions after it (so depth is realistic and
    /// most of the graph is reachable), with a few calls back.
    ///
    /// With [`Workload::detached`] > 0, the last functions form a region
    /// that only its own functions call (calls from the rest into it are
    /// folded back into the rest), and every function of the region is
    /// reachable from its first one: one runtime edge into that root
    /// ([`Workload::cascade_edge`]) flips the whole region to reachable.
    pub fn graph(&self) -> GraphSnapshot {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let n = self.functions.max(2);
        let boundary = self.detached_boundary();
        let span = (n / 20).max(8);
        let mut edges = Vec::with_capacity((n as f64 * self.mean_fanout) as usize);
        for i in 0..n {
            // Pareto-distributed fan-out with the requested mean (alpha 2).
            let u: f64 = rng.gen_range(0.0001..1.0);
            let fanout = ((self.mean_fanout / 2.0) / u.sqrt()).min(n as f64 / 4.0) as usize;
            for _ in 0..fanout {
                let mut callee = if i + 1 < n && rng.gen_bool(0.95) {
                    rng.gen_range(i + 1..(i + 1 + span).min(n))
                } else {
                    rng.gen_range(0..n)
                };
                if i < boundary && callee >= boundary {
                    callee %= boundary;
                }
                edges.push(StaticEdge::new(name(i), name(callee)));
            }
        }
        if boundary < n {
            // A spanning tree of the region from its root, so that all of it
            // hangs off the root.
            let mut tree = ChaCha8Rng::seed_from_u64(self.seed ^ 0xde7a_c4ed);
            for i in boundary + 1..n {
                let parent = tree.gen_range(i.saturating_sub(span).max(boundary)..i);
                edges.push(StaticEdge::new(name(parent), name(i)));
            }
        }
        edges.sort_by(|a, b| (&a.caller, &a.callee).cmp(&(&b.caller, &b.callee)));
        edges.dedup_by(|a, b| a.caller == b.caller && a.callee == b.callee);
        GraphSnapshot {
            artifact: self.artifact.clone(),
            at: 0,
            nodes: (0..n).map(name).collect(),
            edges,
            entrypoints: vec![name(0)],
            indirect_calls: Default::default(),
            modules: Default::default(),
        }
    }

    /// The first function of the detached region (`n` when there is none).
    fn detached_boundary(&self) -> usize {
        let n = self.functions.max(2);
        if self.detached <= 0.0 {
            return n;
        }
        let size = ((n as f64 * self.detached).round() as usize).clamp(1, n - 1);
        n - size
    }

    /// The root of the detached region and the region's size, if any.
    pub fn detached_root(&self) -> Option<(String, usize)> {
        let n = self.functions.max(2);
        let boundary = self.detached_boundary();
        (boundary < n).then(|| (name(boundary), n - boundary))
    }

    /// A runtime edge from the entrypoint into the detached region's root:
    /// under the `union` strategy it makes the whole region reachable.
    pub fn cascade_edge(&self) -> Option<(String, String)> {
        self.detached_root().map(|(root, _)| (name(0), root))
    }

    /// The name of function `i` (`f{i}`).
    pub fn function(i: usize) -> String {
        name(i)
    }

    /// Graph, targets, then `edges` observations of distinct static edges
    /// (each once, fewer if the graph has fewer edges), a watermark every
    /// [`Workload::watermark_every`] records and a final one. With
    /// `edges` = 0, the graph and targets only (and the final watermark):
    /// the baseline against which the memory of live edges is measured.
    /// Times advance 1 ms per 1,000 records, so nothing expires under the
    /// default ttl. The static edges are kept as integer pairs (8 bytes
    /// each) whatever `edges` is, so that two runs differ only in the
    /// records they emit.
    pub fn live_edges(&self, edges: usize) -> impl Iterator<Item = Record> {
        let graph = self.graph();
        let index = |s: &str| s[1..].parse::<u32>().expect("generated names are f<i>");
        let pairs: Vec<(u32, u32)> = graph
            .edges
            .iter()
            .map(|e| (index(&e.caller), index(&e.callee)))
            .collect();
        let targets = Targets {
            artifact: self.artifact.clone(),
            at: 0,
            symbols: (0..self.targets.min(self.functions))
                .map(|i| name(i * 7919 % self.functions.max(1)))
                .collect(),
        };
        let w = self.clone();
        let count = edges.min(pairs.len());
        let every = w.watermark_every.max(1);
        let mut i = 0usize;
        let mut emitted = 0usize;
        let body = std::iter::from_fn(move || {
            if emitted >= count {
                return None;
            }
            i += 1;
            let at = 1 + (i / 1000) as Time;
            if i.is_multiple_of(every) {
                return Some(Record::Watermark { at });
            }
            let (u, v) = pairs[emitted];
            emitted += 1;
            Some(Record::Edge(EdgeObservation {
                artifact: w.artifact.clone(),
                caller: name(u as usize),
                callee: name(v as usize),
                at,
                hits: 1,
                source: format!("ebpf:host-{}", emitted % w.sources.max(1)),
                event_id: None,
                estimated: false,
            }))
        });
        let end = 2 + (edges.saturating_mul(2) / 1000) as Time;
        [Record::Graph(graph), Record::Targets(targets)]
            .into_iter()
            .chain(body)
            .chain(std::iter::once(Record::Watermark { at: end }))
    }

    /// [`Workload::targets`] functions drawn at random, at time 0.
    fn random_targets(&self, rng: &mut ChaCha8Rng) -> Targets {
        let n = self.functions.max(2);
        Targets {
            artifact: self.artifact.clone(),
            at: 0,
            symbols: (0..self.targets)
                .map(|_| name(rng.gen_range(0..n)))
                .collect(),
        }
    }

    /// The fleet deployment of the benches: 1,000 sources, 50,000
    /// functions, 10% of the observed edges missing from the snapshot,
    /// Zipf-skewed, as [`Workload::fleet_stream`] sends them.
    pub fn fleet(seed: u64, records: usize) -> Workload {
        Workload {
            seed,
            artifact: "fleet@1".into(),
            functions: 50_000,
            records,
            sources: 1000,
            conflict_rate: 0.1,
            watermark_every: 0,
            ..Workload::default()
        }
    }

    /// Calls each source samples per 1-s window in [`Workload::fleet_stream`].
    pub const FLEET_CALLS_PER_WINDOW: usize = 32;

    /// A stream shaped like a real deployment of the eBPF collector: in
    /// every 1-s window each source sends one `edge` record per distinct
    /// edge it saw in that window (hits: how often), then a watermark closes
    /// the window. Edges are drawn from a Zipf-skewed universe of the
    /// static edges plus `conflict_rate` missing from the snapshot (a fixed
    /// set, so they recur like real plugin calls); each source samples
    /// [`Workload::FLEET_CALLS_PER_WINDOW`] calls per window. Stops after
    /// [`Workload::records`] edge records (and the last window's watermark).
    pub fn fleet_stream(&self) -> impl Iterator<Item = Record> {
        let graph = self.graph();
        let n = self.functions.max(2);
        let index = |s: &str| s[1..].parse::<u32>().expect("generated names are f<i>");
        let statics: std::collections::HashSet<(u32, u32)> = graph
            .edges
            .iter()
            .map(|e| (index(&e.caller), index(&e.callee)))
            .collect();
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ 0xf1ee7);
        let mut universe: Vec<(u32, u32)> = statics.iter().copied().collect();
        universe.sort_unstable();
        let share = self.conflict_rate.clamp(0.0, 0.99);
        let missing = (universe.len() as f64 * share / (1.0 - share)).round() as usize;
        while universe.len() < statics.len() + missing {
            let pair = (rng.gen_range(0..n) as u32, rng.gen_range(0..n) as u32);
            if !statics.contains(&pair) {
                universe.push(pair);
            }
        }
        // Popularity is independent of being static or not.
        universe.shuffle(&mut rng);
        let targets = self.random_targets(&mut rng);
        let zipf = Zipf::new(universe.len().max(1), self.skew);
        let w = self.clone();
        let mut emitted = 0usize;
        let mut window: Time = 0;
        let mut queue: std::collections::VecDeque<Record> = Default::default();
        let body = std::iter::from_fn(move || loop {
            if let Some(r) = queue.pop_front() {
                return Some(r);
            }
            if emitted >= w.records {
                return None;
            }
            window += 1;
            let at = window * 1000 - 1;
            'sources: for source in 0..w.sources.max(1) {
                let mut seen: Vec<u32> = (0..Self::FLEET_CALLS_PER_WINDOW)
                    .map(|_| zipf.sample(&mut rng) as u32)
                    .collect();
                seen.sort_unstable();
                for run in seen.chunk_by(|a, b| a == b) {
                    if emitted >= w.records {
                        break 'sources;
                    }
                    emitted += 1;
                    let (u, v) = universe[run[0] as usize];
                    queue.push_back(Record::Edge(EdgeObservation {
                        artifact: w.artifact.clone(),
                        caller: name(u as usize),
                        callee: name(v as usize),
                        at,
                        hits: run.len() as u64,
                        source: format!("ebpf:host-{source}"),
                        event_id: None,
                        estimated: false,
                    }));
                }
            }
            queue.push_back(Record::Watermark { at: window * 1000 });
        });
        [Record::Graph(graph), Record::Targets(targets)]
            .into_iter()
            .chain(body)
    }

    /// The whole stream: graph, targets, then runtime records and watermarks.
    pub fn stream(&self) -> impl Iterator<Item = Record> {
        let graph = self.graph();
        let pairs: Vec<(String, String)> = graph
            .edges
            .iter()
            .map(|e| (e.caller.clone(), e.callee.clone()))
            .collect();
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ 0x5eed);
        let n = self.functions.max(2);
        let targets = self.random_targets(&mut rng);
        let zipf = Zipf::new(pairs.len().max(1), self.skew);
        let w = self.clone();
        let head = [Record::Graph(graph), Record::Targets(targets)];
        let mut i = 0usize;
        let body = std::iter::from_fn(move || {
            if i >= w.records {
                return None;
            }
            i += 1;
            let at = i as Time * w.step;
            if i.is_multiple_of(w.watermark_every.max(1)) {
                return Some(Record::Watermark { at });
            }
            let source = format!("ebpf:host-{}", rng.gen_range(0..w.sources.max(1)));
            let roll: f64 = rng.gen();
            Some(if roll < w.coverage_share {
                Record::Coverage(Coverage {
                    artifact: w.artifact.clone(),
                    symbols: (0..8).map(|_| name(rng.gen_range(0..n))).collect(),
                    from: at.saturating_sub(1000),
                    to: at,
                    source,
                    lost: None,
                })
            } else if roll < w.coverage_share + w.hit_share {
                Record::Hit(HitObservation {
                    artifact: w.artifact.clone(),
                    symbol: name(rng.gen_range(0..n)),
                    at,
                    hits: 1,
                    source,
                    event_id: None,
                    estimated: false,
                })
            } else {
                let (caller, callee) = if rng.gen_bool(w.conflict_rate) {
                    (name(rng.gen_range(0..n)), name(rng.gen_range(0..n)))
                } else {
                    pairs[zipf.sample(&mut rng)].clone()
                };
                Record::Edge(EdgeObservation {
                    artifact: w.artifact.clone(),
                    caller,
                    callee,
                    at,
                    hits: rng.gen_range(1..4),
                    source,
                    event_id: None,
                    estimated: false,
                })
            })
        });
        let end = self.records as Time * self.step + 1;
        head.into_iter()
            .chain(body)
            .chain(std::iter::once(Record::Watermark { at: end }))
    }
}

/// Ranks 0..n with probability ∝ 1/(rank+1)^s, sampled by inverse CDF.
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    pub fn new(n: usize, s: f64) -> Self {
        let mut cdf = Vec::with_capacity(n);
        let mut total = 0.0;
        for k in 0..n {
            total += 1.0 / ((k + 1) as f64).powf(s);
            cdf.push(total);
        }
        for c in &mut cdf {
            *c /= total;
        }
        Zipf { cdf }
    }

    pub fn sample(&self, rng: &mut impl Rng) -> usize {
        let u: f64 = rng.gen();
        self.cdf.partition_point(|c| *c < u).min(self.cdf.len() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_valid_records() {
        let w = Workload {
            functions: 500,
            records: 2000,
            ..Workload::default()
        };
        let a: Vec<Record> = w.stream().collect();
        let b: Vec<Record> = w.stream().collect();
        assert_eq!(a, b);
        for r in &a {
            r.validate().unwrap();
        }
        let Record::Graph(g) = &a[0] else { panic!() };
        let mean = g.edges.len() as f64 / g.nodes.len() as f64;
        assert!((2.0..8.0).contains(&mean), "mean fan-out {mean}");
    }

    fn reached(g: &GraphSnapshot, roots: &[&str]) -> std::collections::HashSet<String> {
        let mut out: std::collections::HashMap<&str, Vec<&str>> = Default::default();
        for e in &g.edges {
            out.entry(&e.caller).or_default().push(&e.callee);
        }
        let mut seen: std::collections::HashSet<String> =
            roots.iter().map(|s| s.to_string()).collect();
        let mut stack: Vec<String> = seen.iter().cloned().collect();
        while let Some(u) = stack.pop() {
            for v in out.get(u.as_str()).into_iter().flatten() {
                if seen.insert(v.to_string()) {
                    stack.push(v.to_string());
                }
            }
        }
        seen
    }

    #[test]
    fn detached_region_is_unreachable_and_hangs_off_its_root() {
        let w = Workload {
            functions: 2000,
            detached: 0.1,
            ..Workload::default()
        };
        let g = w.graph();
        Record::Graph(g.clone()).validate().unwrap();
        let (root, size) = w.detached_root().unwrap();
        assert_eq!((root.as_str(), size), ("f1800", 200));
        let from_entry = reached(&g, &["f0"]);
        assert!((1800..2000).all(|i| !from_entry.contains(&format!("f{i}"))));
        let from_root = reached(&g, &[&root]);
        assert!((1800..2000).all(|i| from_root.contains(&format!("f{i}"))));
        assert_eq!(w.cascade_edge(), Some(("f0".into(), root)));
        assert_eq!(Workload::default().cascade_edge(), None);
    }

    /// The (caller, callee) pairs of the graph snapshot a stream opens with.
    fn static_edges(records: &[Record]) -> std::collections::HashSet<(&str, &str)> {
        let Record::Graph(g) = &records[0] else {
            panic!("the stream opens with {:?}", records[0])
        };
        g.edges
            .iter()
            .map(|e| (e.caller.as_str(), e.callee.as_str()))
            .collect()
    }

    #[test]
    fn live_edges_are_distinct_observations_of_static_edges() {
        let w = Workload {
            functions: 1000,
            watermark_every: 100,
            ..Workload::default()
        };
        let records: Vec<Record> = w.live_edges(2000).collect();
        let statics = static_edges(&records);
        let mut seen = std::collections::HashSet::new();
        let mut watermark = 0;
        for r in &records[2..] {
            match r {
                Record::Edge(e) => {
                    assert!(e.at >= watermark, "late edge");
                    assert!(statics.contains(&(e.caller.as_str(), e.callee.as_str())));
                    assert!(seen.insert((e.caller.clone(), e.callee.clone())));
                }
                Record::Watermark { at } => watermark = *at,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(seen.len(), 2000.min(statics.len()));
        assert!(matches!(records.last(), Some(Record::Watermark { .. })));
        assert_eq!(w.live_edges(0).count(), 3);
    }

    #[test]
    fn fleet_sends_one_record_per_distinct_edge_per_source_and_window() {
        let w = Workload {
            functions: 2000,
            sources: 50,
            ..Workload::fleet(4, 5000)
        };
        let records: Vec<Record> = w.fleet_stream().collect();
        let statics = static_edges(&records);
        let mut per_window = std::collections::HashSet::new();
        let (mut edges, mut missing, mut watermark) = (0, 0, 0);
        let mut sources = std::collections::HashSet::new();
        for r in &records[2..] {
            match r {
                Record::Edge(e) => {
                    edges += 1;
                    assert!(e.at > watermark && e.at < watermark + 1000);
                    assert!(e.hits >= 1);
                    let key = (e.at, e.source.clone(), e.caller.clone(), e.callee.clone());
                    assert!(
                        per_window.insert(key),
                        "one record per edge, source, window"
                    );
                    missing += !statics.contains(&(e.caller.as_str(), e.callee.as_str())) as usize;
                    sources.insert(e.source.clone());
                }
                Record::Watermark { at } => watermark = *at,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(edges, 5000);
        assert_eq!(sources.len(), 50);
        let share = missing as f64 / edges as f64;
        assert!(
            (0.03..0.3).contains(&share),
            "{share} of the records miss the snapshot"
        );
        assert!(matches!(records.last(), Some(Record::Watermark { .. })));
    }

    #[test]
    fn zipf_is_skewed() {
        let z = Zipf::new(1000, 1.1);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let top = (0..10_000).filter(|_| z.sample(&mut rng) < 10).count();
        assert!(top > 3000, "the 10 hottest of 1000 carry {top} of 10000");
    }
}
