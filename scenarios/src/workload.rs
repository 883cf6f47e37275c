//! Seeded, realistic workloads at scale: a call graph with power-law
//! fan-out, and a runtime stream whose edges are Zipf-skewed (a few hot
//! edges carry most observations), from many sources, with a share of edges
//! the static graph lacks, coverage windows and regular watermarks.

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
    pub fn graph(&self) -> GraphSnapshot {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let n = self.functions.max(2);
        let mut edges = Vec::with_capacity((n as f64 * self.mean_fanout) as usize);
        for i in 0..n {
            // Pareto-distributed fan-out with the requested mean (alpha 2).
            let u: f64 = rng.gen_range(0.0001..1.0);
            let fanout = ((self.mean_fanout / 2.0) / u.sqrt()).min(n as f64 / 4.0) as usize;
            for _ in 0..fanout {
                let callee = if i + 1 < n && rng.gen_bool(0.95) {
                    let span = (n / 20).max(8);
                    rng.gen_range(i + 1..(i + 1 + span).min(n))
                } else {
                    rng.gen_range(0..n)
                };
                edges.push(StaticEdge::new(name(i), name(callee)));
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
        }
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
        let targets = Targets {
            artifact: self.artifact.clone(),
            at: 0,
            symbols: (0..self.targets)
                .map(|_| name(rng.gen_range(0..n)))
                .collect(),
        };
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
            Some(if roll < 0.01 {
                Record::Coverage(Coverage {
                    artifact: w.artifact.clone(),
                    symbols: (0..8).map(|_| name(rng.gen_range(0..n))).collect(),
                    from: at.saturating_sub(1000),
                    to: at,
                    source,
                    lost: None,
                })
            } else if roll < 0.05 {
                Record::Hit(HitObservation {
                    artifact: w.artifact.clone(),
                    symbol: name(rng.gen_range(0..n)),
                    at,
                    hits: 1,
                    source,
                    event_id: None,
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

    #[test]
    fn zipf_is_skewed() {
        let z = Zipf::new(1000, 1.1);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let top = (0..10_000).filter(|_| z.sample(&mut rng) < 10).count();
        assert!(top > 3000, "the 10 hottest of 1000 carry {top} of 10000");
    }
}
