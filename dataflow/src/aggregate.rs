//! The windowed aggregator in front of the dataflow: everything that
//! changes with each sighting, in plain Rust.
//!
//! Per observed edge it keeps the live sightings (hits per distinct time,
//! the last sighting of each source); per symbol the last live `hit` and
//! the live coverage intervals. It is evaluated at the times the dataflow
//! works at (watermark rounds, and at the end the times after the last
//! watermark), always at increasing times and only once nothing at or
//! before that time can arrive any more, so it never has to take back what
//! it said. An evaluation touches only the keys that changed since the
//! last one (a new sighting, or a sighting expiring) and turns them into
//! the few updates the dataflow needs:
//!
//! - [`Update::LiveEdge`]: an edge becomes live or expires;
//! - [`Update::QuorumMet`]: under `quorum:H:S`, a live edge reaches or
//!   loses its quorum;
//! - [`Update::EdgeStats`]: a live edge's statistics (hits within the
//!   window, first/last seen, distinct sources), one update per changed
//!   edge per evaluation; the dataflow only passes them on to the report;
//! - [`Update::Executed`]: a symbol starts or stops being executed in this
//!   shard (an end of a live edge, or a live `hit`);
//! - [`Update::Covered`]: a symbol's covered time crosses `min_coverage`.
//!
//! A hot edge sighted a million times between two evaluations costs the
//! dataflow one statistics update and nothing else. Each worker owns the
//! keys that hash to it ([`shard`]), so the work spreads over the workers.

use std::collections::hash_map::Entry;
use std::collections::VecDeque;
use std::hash::{Hash, Hasher};

use rustc_hash::{FxHashMap, FxHasher};
use tracemerge_records::{union_length, Config, Strategy, Time};

#[cfg(test)]
use crate::model::Symbol;
use crate::model::{EdgeKey, Node, Source, Timed, Update};
use crate::window::EdgeStats;

/// One runtime observation, as ingest hands it to the aggregator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sighting {
    Edge {
        edge: EdgeKey,
        at: Time,
        hits: u64,
        source: Source,
        /// `hits` is an estimate.
        estimated: bool,
    },
    Hit {
        node: Node,
        at: Time,
    },
    /// A coverage interval `[from, to)` of one symbol; evidence from `to`.
    Coverage {
        node: Node,
        from: Time,
        to: Time,
    },
}

impl Sighting {
    /// The event time from which it counts.
    pub fn time(&self) -> Time {
        match self {
            Sighting::Edge { at, .. } | Sighting::Hit { at, .. } => *at,
            Sighting::Coverage { to, .. } => *to,
        }
    }

    /// Which of `peers` workers owns this sighting's key. The same on every
    /// process: ids are the same everywhere, and the hash is fixed.
    pub fn shard(&self, peers: usize) -> usize {
        match self {
            Sighting::Edge { edge, .. } => shard(edge, peers),
            Sighting::Hit { node, .. } | Sighting::Coverage { node, .. } => shard(node, peers),
        }
    }
}

/// The worker of `peers` that owns `key`. Fx hashing has no per-process
/// seed, so every process of a cluster agrees.
pub fn shard(key: &impl Hash, peers: usize) -> usize {
    let mut hasher = FxHasher::default();
    key.hash(&mut hasher);
    (hasher.finish() % peers.max(1) as u64) as usize
}

/// The live sightings of one observed edge.
struct EdgeWindow {
    /// Hits per distinct sighting time, oldest first, and whether a
    /// sighting at that time was an estimate.
    sightings: VecDeque<(Time, u64, bool)>,
    /// How many of `sightings` are estimates.
    estimated: u64,
    /// The last sighting time of each source, by source.
    sources: Vec<(Source, Time)>,
    /// The sum of `sightings`' hits.
    hits: u64,
    /// Whether the quorum was met at the last evaluation.
    quorum: bool,
    /// The evaluation that last touched this edge.
    epoch: u64,
}

impl EdgeWindow {
    /// An empty window with room for one sighting time and one source:
    /// most edges have no more, and an empty `VecDeque` or `Vec` grows to
    /// room for four at its first push (96 and 64 bytes per edge, instead
    /// of 24 and 16).
    fn new() -> Self {
        EdgeWindow {
            sightings: VecDeque::with_capacity(1),
            estimated: 0,
            sources: Vec::with_capacity(1),
            hits: 0,
            quorum: false,
            epoch: 0,
        }
    }

    fn stats(&self) -> Option<EdgeStats> {
        let (&(first_seen, _, _), &(last_seen, _, _)) =
            (self.sightings.front()?, self.sightings.back()?);
        Some(EdgeStats {
            hits: self.hits,
            first_seen,
            last_seen,
            sources: self.sources.len() as u64,
            estimated: self.estimated > 0,
        })
    }

    /// Adds a sighting no earlier than every one before; whether it is at
    /// a new time (a new entry, which will expire on its own).
    fn add(&mut self, at: Time, hits: u64, source: Source, estimated: bool) -> bool {
        let new_time = match self.sightings.back_mut() {
            Some((last, h, e)) if *last == at => {
                *h = h.saturating_add(hits);
                if estimated && !*e {
                    *e = true;
                    self.estimated += 1;
                }
                false
            }
            _ => {
                self.sightings.push_back((at, hits, estimated));
                self.estimated += u64::from(estimated);
                true
            }
        };
        self.hits = self.hits.saturating_add(hits);
        match self.sources.binary_search_by_key(&source, |(s, _)| *s) {
            Ok(i) => self.sources[i].1 = self.sources[i].1.max(at),
            Err(i) => self.sources.insert(i, (source, at)),
        }
        new_time
    }

    /// Drops the oldest sighting time, which has expired.
    fn expire_oldest(&mut self) {
        if let Some((_, hits, estimated)) = self.sightings.pop_front() {
            self.hits -= hits;
            self.estimated -= u64::from(estimated);
        }
    }
}

/// The live coverage intervals of one symbol.
#[derive(Default)]
struct CoverageWindow {
    /// `(to, from)`, in the order they became evidence (by `to`).
    intervals: VecDeque<(Time, Time)>,
    /// Whether the covered time reached `min_coverage` at the last evaluation.
    covered: bool,
    epoch: u64,
}

impl CoverageWindow {
    fn covered(&self, min_coverage: Time) -> bool {
        if self.intervals.is_empty() {
            return false;
        }
        let by_start = self.intervals.iter().map(|&(to, from)| (from, to));
        union_length(by_start.collect()) >= min_coverage
    }
}

/// What a scheduled check looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    Edge(EdgeKey),
    Hit(Node),
    Coverage(Node),
}

/// The aggregator of one worker: the keys of its shard.
pub struct Aggregator {
    ttl: Time,
    min_coverage: Time,
    /// `quorum:H:S`'s thresholds; `None` under other strategies.
    quorum: Option<(u64, u64)>,
    edges: FxHashMap<EdgeKey, EdgeWindow>,
    /// The last live hit of each symbol.
    hits: FxHashMap<Node, Time>,
    coverage: FxHashMap<Node, CoverageWindow>,
    /// Per symbol, the live edges it is an end of plus one for a live hit:
    /// it is executed (in this shard) while this is positive.
    executed: FxHashMap<Node, u32>,
    /// Sightings not yet evaluated, in arrival order; sorted by the time
    /// they count from when `pending_sorted` (they mostly come in order).
    pending: Vec<Sighting>,
    pending_sorted: bool,
    /// When each sighting expires, oldest first: one entry per distinct
    /// sighting time of an edge, per newer last hit of a symbol (older
    /// ones are found stale), per coverage interval. Sightings are taken
    /// in time order and the ttl is one, so appending keeps it sorted.
    due: VecDeque<(Time, Due)>,
    /// The last evaluation's time; nothing may arrive at or before it.
    evaluated: Option<Time>,
    epoch: u64,
}

impl Aggregator {
    pub fn new(config: &Config) -> Self {
        Aggregator {
            ttl: config.ttl,
            min_coverage: config.min_coverage,
            quorum: match config.strategy {
                Strategy::Quorum { hits, sources } => Some((hits, sources)),
                Strategy::Union | Strategy::Static => None,
            },
            edges: FxHashMap::default(),
            hits: FxHashMap::default(),
            coverage: FxHashMap::default(),
            executed: FxHashMap::default(),
            pending: Vec::new(),
            pending_sorted: true,
            due: VecDeque::new(),
            evaluated: None,
            epoch: 0,
        }
    }

    /// Takes a sighting; it counts from the first evaluation at or after
    /// its time, which must be later than every evaluation so far.
    pub fn add(&mut self, sighting: Sighting) {
        let time = sighting.time();
        debug_assert!(
            self.evaluated.is_none_or(|e| time > e),
            "a sighting at {time} after the evaluation at {:?}",
            self.evaluated
        );
        if self.pending.last().is_some_and(|last| last.time() > time) {
            self.pending_sorted = false;
        }
        self.pending.push(sighting);
    }

    /// Puts the pending sightings in time order.
    fn sort_pending(&mut self) {
        if !self.pending_sorted {
            self.pending.sort_by_key(Sighting::time);
            self.pending_sorted = true;
        }
    }

    /// The last evaluation's time.
    pub fn evaluated(&self) -> Option<Time> {
        self.evaluated
    }

    /// The earliest time after the last evaluation at which an evaluation
    /// would change something: a pending sighting or an expiry.
    pub fn next_change(&mut self) -> Option<Time> {
        self.sort_pending();
        let pending = self.pending.first().map(Sighting::time);
        let due = self.due.front().map(|(t, _)| *t);
        match (pending, due) {
            (Some(p), Some(d)) => Some(p.min(d)),
            (p, d) => p.or(d),
        }
    }

    /// The state at `now` (later than the last evaluation): pushes the
    /// changes since the last evaluation into `out`, at time `now`.
    pub fn evaluate(&mut self, now: Time, out: &mut Vec<Timed>) {
        debug_assert!(self.evaluated.is_none_or(|e| now > e));
        self.evaluated = Some(now);
        self.epoch += 1;
        let epoch = self.epoch;
        let mut edges: Vec<(EdgeKey, Option<EdgeStats>, bool)> = Vec::new();
        let mut newly_hit: Vec<Node> = Vec::new();
        let mut coverage: Vec<(Node, bool)> = Vec::new();

        // Everything touched, with its state before: new sightings first…
        self.sort_pending();
        let due_now = self.pending.partition_point(|s| s.time() <= now);
        let mut pending = std::mem::take(&mut self.pending);
        let ttl = self.ttl;
        for sighting in pending.drain(..due_now) {
            match sighting {
                Sighting::Edge {
                    edge,
                    at,
                    hits,
                    source,
                    estimated,
                } => {
                    let window = self.edges.entry(edge).or_insert_with(EdgeWindow::new);
                    if window.epoch != epoch {
                        window.epoch = epoch;
                        edges.push((edge, window.stats(), window.quorum));
                    }
                    if window.add(at, hits, source, estimated) {
                        self.due
                            .push_back((at.saturating_add(ttl), Due::Edge(edge)));
                    }
                }
                Sighting::Hit { node, at } => {
                    match self.hits.entry(node) {
                        Entry::Occupied(last) if *last.get() == at => continue,
                        Entry::Occupied(mut last) => *last.get_mut() = at,
                        Entry::Vacant(slot) => {
                            slot.insert(at);
                            newly_hit.push(node);
                        }
                    }
                    self.due.push_back((at.saturating_add(ttl), Due::Hit(node)));
                }
                Sighting::Coverage { node, from, to } => {
                    let window = self.coverage.entry(node).or_default();
                    if window.epoch != epoch {
                        window.epoch = epoch;
                        coverage.push((node, window.covered));
                    }
                    window.intervals.push_back((to, from));
                    self.due
                        .push_back((to.saturating_add(ttl), Due::Coverage(node)));
                }
            }
        }
        self.pending = pending;
        // (Before expiries: a hit may expire in the evaluation that takes it.)
        for node in newly_hit {
            self.count_executed(node, 1, now, out);
        }
        // …then every key with a sighting expiring by now.
        while let Some(&(time, due)) = self.due.front() {
            if time > now {
                break;
            }
            self.due.pop_front();
            match due {
                Due::Edge(edge) => {
                    let window = self.edges.get_mut(&edge).expect("a due edge is kept");
                    if window.epoch != epoch {
                        window.epoch = epoch;
                        edges.push((edge, window.stats(), window.quorum));
                    }
                    window.expire_oldest();
                }
                Due::Hit(node) => {
                    // Stale when a later hit came since (or its symbol
                    // already expired in this evaluation).
                    if (self.hits.get(&node)).is_some_and(|last| last.saturating_add(ttl) <= now) {
                        self.hits.remove(&node);
                        self.count_executed(node, -1, now, out);
                    }
                }
                Due::Coverage(node) => {
                    let window = self.coverage.get_mut(&node).expect("a due symbol is kept");
                    if window.epoch != epoch {
                        window.epoch = epoch;
                        coverage.push((node, window.covered));
                    }
                    window.intervals.pop_front();
                }
            }
        }

        let mut liveness = Vec::new();
        for (edge, before, quorum_before) in edges {
            let window = self.edges.get_mut(&edge).expect("touched edges are kept");
            window
                .sources
                .retain(|(_, at)| at.saturating_add(ttl) > now);
            let after = window.stats();
            window.quorum = match (self.quorum, &after) {
                (Some((h, s)), Some(stats)) => stats.hits >= h && stats.sources >= s,
                _ => false,
            };
            if before.is_some() != after.is_some() {
                let diff = if after.is_some() { 1 } else { -1 };
                out.push(Update::LiveEdge(edge).at(now, diff));
                liveness.push((edge, diff));
            }
            if window.quorum != quorum_before {
                let diff = if window.quorum { 1 } else { -1 };
                out.push(Update::QuorumMet(edge).at(now, diff));
            }
            if before != after {
                if let Some(stats) = before {
                    out.push(Update::EdgeStats(edge, stats).at(now, -1));
                }
                if let Some(stats) = after {
                    out.push(Update::EdgeStats(edge, stats).at(now, 1));
                }
            }
            if after.is_none() {
                self.edges.remove(&edge);
            }
        }
        for ((a, u, v), diff) in liveness {
            self.count_executed((a, u), diff, now, out);
            self.count_executed((a, v), diff, now, out);
        }

        for (node, before) in coverage {
            let window = self
                .coverage
                .get_mut(&node)
                .expect("touched symbols are kept");
            window.covered = window.covered(self.min_coverage);
            if window.covered != before {
                let diff = if window.covered { 1 } else { -1 };
                out.push(Update::Covered(node).at(now, diff));
            }
            if window.intervals.is_empty() {
                self.coverage.remove(&node);
            }
        }
    }
}

impl Aggregator {
    /// Counts one more (`diff` 1) or one less (-1) reason for `node` to be
    /// executed, and says so when it starts or stops being.
    fn count_executed(&mut self, node: Node, diff: isize, now: Time, out: &mut Vec<Timed>) {
        let count = self.executed.entry(node).or_default();
        let before = *count > 0;
        *count = count
            .checked_add_signed(diff as i32)
            .expect("executed counts stay positive");
        let after = *count > 0;
        if after != before {
            out.push(Update::Executed(node).at(now, diff));
        }
        if !after {
            self.executed.remove(&node);
        }
    }

    /// Everything live as of the last evaluation, as updates at `at`: what
    /// a dataflow that was told nothing yet needs (see
    /// `Options::final_only`).
    pub fn snapshot(&self, at: Time, out: &mut Vec<Timed>) {
        for (&edge, window) in &self.edges {
            let Some(stats) = window.stats() else {
                continue;
            };
            out.push(Update::LiveEdge(edge).at(at, 1));
            out.push(Update::EdgeStats(edge, stats).at(at, 1));
            if window.quorum {
                out.push(Update::QuorumMet(edge).at(at, 1));
            }
        }
        for &node in self.executed.keys() {
            out.push(Update::Executed(node).at(at, 1));
        }
        for (&node, window) in &self.coverage {
            if window.covered {
                out.push(Update::Covered(node).at(at, 1));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(ttl: Time) -> Config {
        Config {
            ttl,
            ..Config::default()
        }
    }

    fn edge(at: Time, hits: u64, source: Source) -> Sighting {
        Sighting::Edge {
            edge: (0, 1, 2),
            at,
            hits,
            source,
            estimated: false,
        }
    }

    fn run(aggregator: &mut Aggregator, now: Time) -> Vec<(Update, isize)> {
        let mut out = Vec::new();
        aggregator.evaluate(now, &mut out);
        let mut got: Vec<_> = out
            .into_iter()
            .map(|t| {
                assert_eq!(t.time, now);
                (t.update, t.diff)
            })
            .collect();
        got.sort();
        got
    }

    fn stats(hits: u64, first_seen: Time, last_seen: Time, sources: u64) -> EdgeStats {
        EdgeStats {
            hits,
            first_seen,
            last_seen,
            sources,
            estimated: false,
        }
    }

    /// A hit older than a ttl before the evaluation that takes it comes
    /// and goes within that evaluation: net nothing, and no count below 0.
    #[test]
    fn a_hit_may_expire_in_the_evaluation_that_takes_it() {
        let mut a = Aggregator::new(&config(10));
        a.add(Sighting::Hit {
            node: (0, 1),
            at: 5,
        });
        let net: isize = run(&mut a, 100).iter().map(|(_, diff)| diff).sum();
        assert_eq!(net, 0);
        assert!(a.executed.is_empty());
    }

    #[test]
    fn a_hot_edge_costs_one_update_per_evaluation() {
        let mut a = Aggregator::new(&config(100));
        // A thousand sightings at 1..=10, and a hundred at 11.
        for i in 0..1100 {
            a.add(edge(i / 100 + 1, 1, (i % 3) as Source));
        }
        let got = run(&mut a, 10);
        let key = (0, 1, 2);
        assert_eq!(
            got,
            [
                (Update::LiveEdge(key), 1),
                (Update::EdgeStats(key, stats(1000, 1, 10, 3)), 1),
                (Update::Executed((0, 1)), 1),
                (Update::Executed((0, 2)), 1),
            ]
        );
        // The sightings at 11 count; nothing expires before 101.
        assert_eq!(
            run(&mut a, 100),
            [
                (Update::EdgeStats(key, stats(1000, 1, 10, 3)), -1),
                (Update::EdgeStats(key, stats(1100, 1, 11, 3)), 1)
            ]
        );
        assert_eq!(a.next_change(), Some(101));
        // Sightings expire exactly at at + ttl.
        assert_eq!(
            run(&mut a, 110),
            [
                (Update::EdgeStats(key, stats(100, 11, 11, 3)), 1),
                (Update::EdgeStats(key, stats(1100, 1, 11, 3)), -1)
            ]
        );
        assert_eq!(
            run(&mut a, 111),
            [
                (Update::LiveEdge(key), -1),
                (Update::EdgeStats(key, stats(100, 11, 11, 3)), -1),
                (Update::Executed((0, 1)), -1),
                (Update::Executed((0, 2)), -1),
            ]
        );
        assert_eq!(a.next_change(), None);
        assert!(a.edges.is_empty(), "nothing kept for an expired edge");
    }

    #[test]
    fn a_snapshot_is_the_sum_of_every_evaluation() {
        let mut incremental = Aggregator::new(&config(10));
        let mut quiet = Aggregator::new(&config(10));
        let mut sum: Vec<(Update, isize)> = Vec::new();
        for now in [3, 8, 12, 20] {
            for a in [&mut incremental, &mut quiet] {
                a.add(edge(now - 1, 1, now as Source % 2));
                a.add(Sighting::Hit {
                    node: (0, now as Symbol % 3),
                    at: now - 2,
                });
            }
            sum.extend(run(&mut incremental, now));
            run(&mut quiet, now);
        }
        let mut snapshot = Vec::new();
        quiet.snapshot(20, &mut snapshot);
        let mut expected: std::collections::BTreeMap<Update, isize> = Default::default();
        for (u, d) in sum {
            *expected.entry(u).or_default() += d;
        }
        expected.retain(|_, d| *d != 0);
        let mut got: Vec<(Update, isize)> =
            snapshot.into_iter().map(|t| (t.update, t.diff)).collect();
        got.sort();
        assert_eq!(got, expected.into_iter().collect::<Vec<_>>());
    }

    #[test]
    fn sources_expire_with_their_last_sighting() {
        let mut a = Aggregator::new(&config(10));
        a.add(edge(1, 1, 7));
        a.add(edge(5, 1, 8));
        run(&mut a, 5);
        a.add(edge(9, 1, 7));
        let got = run(&mut a, 12);
        let key = (0, 1, 2);
        // At 12 the sighting at 1 is gone; source 7 lives on through 9.
        assert!(got.contains(&(Update::EdgeStats(key, stats(2, 5, 9, 2)), 1)));
        let got = run(&mut a, 15);
        assert!(got.contains(&(Update::EdgeStats(key, stats(1, 9, 9, 1)), 1)));
    }

    #[test]
    fn quorum_is_reached_and_lost() {
        let mut a = Aggregator::new(&Config {
            ttl: 10,
            strategy: Strategy::Quorum {
                hits: 3,
                sources: 2,
            },
            ..Config::default()
        });
        let key = (0, 1, 2);
        a.add(edge(1, 2, 1));
        assert!(!run(&mut a, 1).contains(&(Update::QuorumMet(key), 1)));
        a.add(edge(2, 1, 2));
        assert!(run(&mut a, 2).contains(&(Update::QuorumMet(key), 1)));
        assert!(run(&mut a, 11).contains(&(Update::QuorumMet(key), -1)));
    }

    #[test]
    fn hits_and_coverage() {
        let mut a = Aggregator::new(&Config {
            ttl: 100,
            min_coverage: 30,
            ..Config::default()
        });
        let node = (0, 5);
        a.add(Sighting::Hit { node, at: 3 });
        a.add(Sighting::Hit { node, at: 50 });
        a.add(Sighting::Coverage {
            node,
            from: 0,
            to: 20,
        });
        a.add(Sighting::Coverage {
            node,
            from: 10,
            to: 40,
        });
        assert_eq!(run(&mut a, 10), [(Update::Executed(node), 1)]);
        // Covered from 40 on: [0, 40) is 40 ms; the hit at 50 keeps it live.
        assert_eq!(run(&mut a, 103), [(Update::Covered(node), 1)]);
        // At 120 the interval [0, 20) expired: [10, 40) is 30 ms, still enough.
        assert_eq!(run(&mut a, 120), []);
        assert_eq!(
            run(&mut a, 150),
            [(Update::Executed(node), -1), (Update::Covered(node), -1)]
        );
        assert_eq!(a.next_change(), None);
    }
}
