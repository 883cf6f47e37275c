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
//! keys that hash to it ([`shard`]), so the work spreads over the workers:
//! one aggregator per worker, on a thread beside it (see `engine.rs`).

use std::collections::hash_map::Entry;
use std::collections::VecDeque;
use std::hash::{Hash, Hasher};

use rustc_hash::{FxHashMap, FxHasher};
use tracemerge_records::{union_length, Config, Strategy, Time};

#[cfg(test)]
use crate::model::Symbol;
use crate::model::{EdgeKey, Node, Source, Timed, Update};
use crate::slab::{Keyed, Slab};
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

/// A few items in arrival order: none or one inline (most observed edges
/// have one sighting time and one source in their window), more on the
/// heap. 24 bytes for the items the windows keep.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
enum Few<T> {
    #[default]
    Empty,
    One(T),
    // Boxed on purpose: 8 bytes inline instead of a 32-byte header, for
    // the few windows that need it.
    #[allow(clippy::box_collection)]
    Many(Box<VecDeque<T>>),
}

impl<T> Few<T> {
    fn is_empty(&self) -> bool {
        matches!(self, Few::Empty)
    }

    fn front(&self) -> Option<&T> {
        match self {
            Few::Empty => None,
            Few::One(item) => Some(item),
            Few::Many(items) => items.front(),
        }
    }

    fn back(&self) -> Option<&T> {
        match self {
            Few::Empty => None,
            Few::One(item) => Some(item),
            Few::Many(items) => items.back(),
        }
    }

    fn back_mut(&mut self) -> Option<&mut T> {
        match self {
            Few::Empty => None,
            Few::One(item) => Some(item),
            Few::Many(items) => items.back_mut(),
        }
    }

    fn push_back(&mut self, item: T) {
        match std::mem::take(self) {
            Few::Empty => *self = Few::One(item),
            Few::One(first) => {
                let mut items = VecDeque::with_capacity(2);
                items.push_back(first);
                items.push_back(item);
                *self = Few::Many(Box::new(items));
            }
            Few::Many(mut items) => {
                items.push_back(item);
                *self = Few::Many(items);
            }
        }
    }

    /// Takes the oldest item; a single item left goes back inline.
    fn pop_front(&mut self) -> Option<T> {
        match std::mem::take(self) {
            Few::Empty => None,
            Few::One(item) => Some(item),
            Few::Many(mut items) => {
                let first = items.pop_front();
                *self = match items.len() {
                    0 => Few::Empty,
                    1 => Few::One(items.pop_front().expect("one item")),
                    _ => Few::Many(items),
                };
                first
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        match self {
            Few::Empty => 0,
            Few::One(_) => 1,
            Few::Many(items) => items.len(),
        }
    }
}

/// The live sightings of one observed edge, in a slot of the
/// aggregator's slab (64 bytes; see [`Slab`]).
#[derive(Clone, Debug, Default)]
struct EdgeWindow {
    /// The edge; its slot is free while `sightings` is empty.
    key: EdgeKey,
    /// The only source of the live sightings while `sources` is `None`.
    source: Source,
    /// The sum of `sightings`' hits.
    hits: u64,
    /// Hits per distinct sighting time, oldest first, and whether a
    /// sighting at that time was an estimate.
    sightings: Few<(Time, u64, bool)>,
    /// With two sources or more, their last sightings. With one
    /// (`source`), its last sighting is the newest of `sightings`, which
    /// it made all of. (Boxed: 8 bytes in the slot.)
    sources: Option<Box<Sources>>,
    /// How many of `sightings` are estimates.
    estimated: u32,
    /// Whether the quorum was met at the last evaluation.
    quorum: bool,
    /// Whether the current evaluation has already taken its state before.
    touched: bool,
}

impl EdgeWindow {
    fn new(key: EdgeKey) -> Self {
        EdgeWindow {
            key,
            ..EdgeWindow::default()
        }
    }

    /// The number of distinct live sources.
    fn sources(&self) -> u64 {
        match (&self.sources, self.sightings.is_empty()) {
            (Some(sources), _) => sources.last.len() as u64,
            (None, true) => 0,
            (None, false) => 1,
        }
    }

    fn stats(&self) -> Option<EdgeStats> {
        let (&(first_seen, _, _), &(last_seen, _, _)) =
            (self.sightings.front()?, self.sightings.back()?);
        Some(EdgeStats {
            hits: self.hits,
            first_seen,
            last_seen,
            sources: self.sources(),
            estimated: self.estimated > 0,
        })
    }

    /// What an evaluation compares before and after; the statistics only
    /// if `with_stats` (they cost a look at both ends of `sightings`).
    fn state(&self, with_stats: bool) -> EdgeState {
        EdgeState {
            live: !self.sightings.is_empty(),
            quorum: self.quorum,
            stats: if with_stats { self.stats() } else { None },
        }
    }

    /// Adds a sighting no earlier than every one before; whether it is at
    /// a new time (a new entry, which will expire on its own).
    fn add(&mut self, at: Time, hits: u64, source: Source, estimated: bool) -> bool {
        // The last sighting before this one: the only source's last.
        let newest = self.sightings.back().map(|&(t, _, _)| t);
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
                self.estimated += u32::from(estimated);
                true
            }
        };
        self.hits = self.hits.saturating_add(hits);
        match (&mut self.sources, newest) {
            (Some(sources), _) => match sources.last.binary_search_by_key(&source, |(s, _)| *s) {
                Ok(i) => sources.last[i].1 = sources.last[i].1.max(at),
                Err(i) => sources.last.insert(i, (source, at)),
            },
            (None, None) => self.source = source,
            (None, Some(_)) if self.source == source => {}
            (None, Some(newest)) => {
                let mut last = vec![(self.source, newest), (source, at)];
                last.sort_unstable_by_key(|(s, _)| *s);
                self.sources = Some(Box::new(Sources {
                    last,
                    oldest: newest.min(at),
                }));
            }
        }
        new_time
    }

    /// Drops the oldest sighting time, which has expired.
    fn expire_oldest(&mut self) {
        if let Some((_, hits, estimated)) = self.sightings.pop_front() {
            self.hits -= hits;
            self.estimated -= u32::from(estimated);
        }
    }

    /// Forgets the sources whose last sighting expired by `now`; one
    /// source left goes back inline.
    fn expire_sources(&mut self, now: Time, ttl: Time) {
        let Some(sources) = self.sources.as_mut() else {
            return;
        };
        if sources.oldest.saturating_add(ttl) > now {
            return;
        }
        sources.last.retain(|(_, at)| at.saturating_add(ttl) > now);
        sources.oldest = sources.last.iter().map(|(_, at)| *at).min().unwrap_or(now);
        match sources.last.len() {
            0 => self.sources = None,
            1 => {
                self.source = sources.last[0].0;
                self.sources = None;
            }
            _ => {}
        }
    }
}

/// The last sighting time of each of an edge's sources, by source.
#[derive(Clone, Debug, Default)]
struct Sources {
    last: Vec<(Source, Time)>,
    /// No later than the oldest of `last`. Sightings come in time order, so
    /// a source's last sighting only moves later and a new source comes
    /// last: this goes stale only on the early side, and the list needs a
    /// look for expired sources only once this has expired.
    oldest: Time,
}

/// What an evaluation compares of an edge before and after it.
struct EdgeState {
    live: bool,
    quorum: bool,
    /// Its statistics, when the evaluation reports their changes.
    stats: Option<EdgeStats>,
}

impl Keyed for EdgeWindow {
    type Key = EdgeKey;
    fn key(&self) -> EdgeKey {
        self.key
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

/// What one evaluation touches, in the order it takes them; empty between
/// evaluations, kept with its capacity (grown anew each time, most of an
/// evaluation's allocations).
#[derive(Default)]
struct Scratch {
    /// The edges touched, by id, with their state before.
    edges: Vec<(u32, EdgeState)>,
    newly_hit: Vec<Node>,
    /// The symbols whose coverage changed, with whether they were covered.
    coverage: Vec<(Node, bool)>,
    /// The edges that became live (1) or expired (-1).
    liveness: Vec<(EdgeKey, isize)>,
}

/// What a scheduled check looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    /// An edge, by its id in the slab.
    Edge(u32),
    Hit(Node),
    Coverage(Node),
}

/// The aggregator of one worker: the keys of its shard.
pub struct Aggregator {
    ttl: Time,
    min_coverage: Time,
    /// `quorum:H:S`'s thresholds; `None` under other strategies.
    quorum: Option<(u64, u64)>,
    /// The windows of the observed edges, by a dense id.
    edges: Slab<EdgeWindow>,
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
    /// Whether evaluations say how edges' statistics change; without, only
    /// [`Aggregator::snapshot`] and [`Aggregator::edge_stats`] give them.
    running_stats: bool,
    scratch: Scratch,
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
            edges: Slab::default(),
            hits: FxHashMap::default(),
            coverage: FxHashMap::default(),
            executed: FxHashMap::default(),
            pending: Vec::new(),
            pending_sorted: true,
            due: VecDeque::new(),
            evaluated: None,
            epoch: 0,
            running_stats: true,
            scratch: Scratch::default(),
        }
    }

    /// Evaluations no longer say how edges' statistics change, for a run
    /// that wants them only at its end ([`Aggregator::edge_stats`]): at a
    /// busy edge, most of an evaluation's work and most of its updates.
    pub fn without_running_stats(mut self) -> Self {
        self.running_stats = false;
        self
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
        let mut scratch = std::mem::take(&mut self.scratch);
        let Scratch {
            edges,
            newly_hit,
            coverage,
            liveness,
        } = &mut scratch;

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
                    let id = self.edges.id_or_insert(edge, || EdgeWindow::new(edge));
                    let window = self.edges.get_mut(id);
                    if !window.touched {
                        window.touched = true;
                        edges.push((id, window.state(self.running_stats)));
                    }
                    if window.add(at, hits, source, estimated) {
                        self.due.push_back((at.saturating_add(ttl), Due::Edge(id)));
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
        for node in newly_hit.drain(..) {
            self.count_executed(node, 1, now, out);
        }
        // …then every key with a sighting expiring by now.
        while let Some(&(time, due)) = self.due.front() {
            if time > now {
                break;
            }
            self.due.pop_front();
            match due {
                Due::Edge(id) => {
                    // (A due edge's slot is kept: it has a sighting left.)
                    let window = self.edges.get_mut(id);
                    if !window.touched {
                        window.touched = true;
                        edges.push((id, window.state(self.running_stats)));
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

        for (id, before) in edges.drain(..) {
            let window = self.edges.get_mut(id);
            window.touched = false;
            window.expire_sources(now, ttl);
            let edge = window.key;
            window.quorum = !window.sightings.is_empty()
                && self
                    .quorum
                    .is_some_and(|(h, s)| window.hits >= h && window.sources() >= s);
            let after = window.state(self.running_stats);
            if before.live != after.live {
                let diff = if after.live { 1 } else { -1 };
                out.push(Update::LiveEdge(edge).at(now, diff));
                liveness.push((edge, diff));
            }
            if before.quorum != after.quorum {
                let diff = if after.quorum { 1 } else { -1 };
                out.push(Update::QuorumMet(edge).at(now, diff));
            }
            if before.stats != after.stats {
                if let Some(stats) = before.stats {
                    out.push(Update::EdgeStats(edge, stats).at(now, -1));
                }
                if let Some(stats) = after.stats {
                    out.push(Update::EdgeStats(edge, stats).at(now, 1));
                }
            }
            if !after.live {
                self.edges.remove(id);
            }
        }
        for ((a, u, v), diff) in liveness.drain(..) {
            self.count_executed((a, u), diff, now, out);
            self.count_executed((a, v), diff, now, out);
        }

        for (node, before) in coverage.drain(..) {
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
        self.scratch = scratch;
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

    /// The statistics of every live edge as of the last evaluation: what
    /// a sink that was told none of their changes needs (see
    /// [`Aggregator::without_running_stats`]).
    pub fn edge_stats(&self) -> impl Iterator<Item = (EdgeKey, EdgeStats)> + '_ {
        (self.edges.iter()).filter_map(|window| Some((window.key, window.stats()?)))
    }

    /// How many observed edges are live, at most (the keys held).
    pub fn live_edges(&self) -> usize {
        self.edges.len()
    }

    /// Everything live as of the last evaluation, as updates at `at`: what
    /// a dataflow that was told nothing yet needs (see
    /// `Options::final_only`).
    pub fn snapshot(&self, at: Time, out: &mut Vec<Timed>) {
        for window in self.edges.iter() {
            if window.sightings.is_empty() {
                continue;
            }
            out.push(Update::LiveEdge(window.key).at(at, 1));
            if window.quorum {
                out.push(Update::QuorumMet(window.key).at(at, 1));
            }
        }
        out.extend(
            (self.edge_stats()).map(|(edge, stats)| Update::EdgeStats(edge, stats).at(at, 1)),
        );
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

    #[test]
    fn a_window_fits_in_64_bytes() {
        assert_eq!(std::mem::size_of::<Few<(Time, u64, bool)>>(), 24);
        assert!(std::mem::size_of::<EdgeWindow>() <= 64);
    }

    #[test]
    fn few_keeps_arrival_order_and_goes_back_inline() {
        let mut few = Few::default();
        assert_eq!(few.pop_front(), None);
        few.push_back(1);
        assert_eq!(few, Few::One(1));
        few.push_back(2);
        few.push_back(3);
        assert_eq!(
            (few.front(), few.back(), few.len()),
            (Some(&1), Some(&3), 3)
        );
        *few.back_mut().unwrap() = 4;
        assert_eq!(few.pop_front(), Some(1));
        assert_eq!(few.pop_front(), Some(2));
        assert_eq!(few, Few::One(4));
        assert_eq!(few.pop_front(), Some(4));
        assert!(few.is_empty());
    }

    /// A hot edge's window, over a long run of evaluations, holds only its
    /// live sighting times, and its slot is freed when they expire.
    #[test]
    fn a_key_with_many_sightings_keeps_only_its_window() {
        let mut a = Aggregator::new(&config(1000));
        let key = (0, 1, 2);
        for at in 1..=20_000u64 {
            for _ in 0..50 {
                a.add(edge(at, 1, (at % 7) as Source));
            }
            if at % 100 == 0 {
                run(&mut a, at);
                let window = a.edges.get_mut(0);
                assert_eq!(window.sightings.len() as u64, at.min(1000));
                assert_eq!(window.hits, 50 * at.min(1000));
                assert_eq!(window.sources(), 7);
            }
        }
        run(&mut a, 21_000);
        assert!(a.edges.is_empty());
        assert_eq!(a.edges.slots(), 1);
        a.add(edge(21_001, 1, 3));
        let got = run(&mut a, 21_001);
        assert!(got.contains(&(Update::EdgeStats(key, stats(1, 21_001, 21_001, 1)), 1)));
    }

    mod oracle {
        use super::*;
        use proptest::prelude::*;
        use std::collections::BTreeMap;

        /// What a window's statistics must be at `now`, from every
        /// sighting taken so far (`at ≤ now`): those with `at + ttl > now`.
        fn expected(
            sightings: &[(EdgeKey, Time, u64, Source, bool)],
            now: Time,
            ttl: Time,
        ) -> BTreeMap<EdgeKey, EdgeStats> {
            let mut out: BTreeMap<EdgeKey, (EdgeStats, Vec<Source>)> = BTreeMap::new();
            for &(key, at, hits, source, estimated) in sightings {
                if at > now || at + ttl <= now {
                    continue;
                }
                let (s, sources) = out.entry(key).or_insert((
                    EdgeStats {
                        hits: 0,
                        first_seen: at,
                        last_seen: at,
                        sources: 0,
                        estimated: false,
                    },
                    Vec::new(),
                ));
                s.hits += hits;
                s.first_seen = s.first_seen.min(at);
                s.last_seen = s.last_seen.max(at);
                s.estimated |= estimated;
                if !sources.contains(&source) {
                    sources.push(source);
                }
                s.sources = sources.len() as u64;
            }
            out.into_iter().map(|(k, (s, _))| (k, s)).collect()
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(200))]
            /// At every evaluation, the statistics the aggregator has said
            /// (the sum of its `EdgeStats` updates) and its live edges are
            /// those of the sightings in the window; slots are reused. One
            /// without running statistics says the same but for them, and
            /// gives them whole when asked.
            #[test]
            fn statistics_equal_the_oracle_at_every_evaluation(
                ttl in 1u64..30,
                quorum in any::<bool>(),
                steps in proptest::collection::vec(
                    (1u64..8, proptest::collection::vec((0u32..6, 0u64..8, 1u64..5, 0u32..4, any::<bool>()), 0..12)),
                    1..25,
                ),
            ) {
                let config = Config {
                    ttl,
                    strategy: if quorum {
                        tracemerge_records::Strategy::Quorum { hits: 4, sources: 2 }
                    } else {
                        tracemerge_records::Strategy::Union
                    },
                    ..Config::default()
                };
                let mut a = Aggregator::new(&config);
                let mut quiet = Aggregator::new(&config).without_running_stats();
                let mut taken = Vec::new();
                let mut said: BTreeMap<EdgeKey, EdgeStats> = BTreeMap::new();
                let mut live: BTreeMap<EdgeKey, isize> = BTreeMap::new();
                let mut now = 0;
                for (advance, batch) in steps {
                    // Sightings after the last evaluation, in any order.
                    for (k, dt, hits, source, estimated) in batch {
                        let key = (k % 2, k, k + 1);
                        let at = now + 1 + dt;
                        a.add(Sighting::Edge { edge: key, at, hits, source, estimated });
                        quiet.add(Sighting::Edge { edge: key, at, hits, source, estimated });
                        taken.push((key, at, hits, source, estimated));
                    }
                    now += advance;
                    // Only what has been evaluated may count: later
                    // sightings wait for their time.
                    let mut out = Vec::new();
                    a.evaluate(now, &mut out);
                    let mut quiet_out = Vec::new();
                    quiet.evaluate(now, &mut quiet_out);
                    let others = |out: &[Timed]| {
                        let mut others: Vec<_> = out
                            .iter()
                            .filter(|t| !matches!(t.update, Update::EdgeStats(..)))
                            .map(|t| (t.update.clone(), t.time, t.diff))
                            .collect();
                        others.sort();
                        others
                    };
                    prop_assert!(quiet_out.iter().all(|t| !matches!(t.update, Update::EdgeStats(..))));
                    prop_assert_eq!(others(&quiet_out), others(&out));
                    let whole: BTreeMap<EdgeKey, EdgeStats> = quiet.edge_stats().collect();
                    prop_assert_eq!(whole.len(), quiet.edge_stats().count());
                    prop_assert_eq!(&whole, &expected(&taken, now, ttl));
                    for t in out {
                        match t.update {
                            Update::EdgeStats(key, s) if t.diff > 0 => {
                                prop_assert!(said.insert(key, s).is_none());
                            }
                            Update::EdgeStats(key, s) => {
                                prop_assert_eq!(said.remove(&key), Some(s));
                            }
                            Update::LiveEdge(key) => {
                                *live.entry(key).or_default() += t.diff;
                            }
                            _ => {}
                        }
                    }
                    live.retain(|_, d| *d != 0);
                    let want = expected(&taken, now, ttl);
                    prop_assert_eq!(&said, &want);
                    prop_assert!(live.values().all(|d| *d == 1));
                    prop_assert_eq!(live.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>());
                    prop_assert_eq!(a.edges.len(), want.len());
                    prop_assert!(a.edges.slots() <= 6, "slots are reused");
                }
            }
        }
    }
}
