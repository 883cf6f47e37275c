//! The sequential front of the engine: turns the record stream, in arrival
//! order, into timestamped updates of the dataflow's static inputs
//! (snapshots, targets) and into sightings for the windowed aggregator
//! ([`crate::aggregate`]), which keeps the live runtime evidence.
//!
//! Everything that depends on arrival order happens here and nowhere else:
//! the watermark, lateness, `event_id` duplicates, the stats, and the order
//! of snapshot versions (a snapshot that arrives out of order, within the
//! lateness bound, is slotted between its neighbours as a diff). Every
//! process runs the same `Ingest` over the same stream, so they all agree.
//!
//! Updates are released to the dataflow at watermark resolution: an update
//! at event time `t` enters at the first watermark `≥ t`, because a report
//! can only be asked for at a watermark and so no output can tell `t` from
//! that watermark. The updates of the interval after the last watermark
//! are released at their own times when the stream ends. Sightings go to
//! the aggregator as they come; it is evaluated at the same rounds.
//!
//! When only the final report is wanted, not every watermark needs a round
//! of the dataflow: with `round_every` N, a watermark starts a round only
//! once N records have arrived since the last one, and the updates in
//! between wait for it. The final report cannot tell: it depends only on
//! the updates at or before its watermark, and those are the same.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use tracemerge_records::{
    Config, GraphSnapshot, IndexedSighting, Input, Record, Sighted, Stats, Time,
};

use crate::aggregate::Sighting;
use crate::model::{Artifact, Timed, Update};
use crate::symbols::{Id, Interner, Names};
use crate::verdict::Quarantine;

/// What one snapshot version contributes, as interned ids, each list
/// sorted by id and without repeats: an edge costs 8 bytes here where its
/// two names cost about a hundred, and versions share it ([`Arc`]).
#[derive(Default, PartialEq, Eq)]
struct Snapshot {
    nodes: Vec<Id>,
    edges: Vec<(Id, Id)>,
    entrypoints: Vec<Id>,
}

impl Snapshot {
    fn new(g: GraphSnapshot, interner: &mut Interner) -> Self {
        let mut ids = |names: Vec<String>| -> Vec<Id> {
            let mut ids: Vec<Id> = names.iter().map(|n| interner.intern(n)).collect();
            ids.sort_unstable();
            ids.dedup();
            ids
        };
        let (nodes, entrypoints) = (ids(g.nodes), ids(g.entrypoints));
        let mut edges: Vec<(Id, Id)> = (g.edges.iter())
            .map(|e| (interner.intern(&e.caller), interner.intern(&e.callee)))
            .collect();
        edges.sort_unstable();
        edges.dedup();
        Snapshot {
            nodes,
            edges,
            entrypoints,
        }
    }

    /// The order of two versions at the same time (the greater wins): as
    /// their sets of names would order, field by field. Ids carry no
    /// order, so the names are sorted here, which only such a tie costs.
    fn compare(&self, other: &Self, interner: &Interner) -> Ordering {
        let name = |id: Id| interner.name(id);
        let names = |ids: &[Id]| {
            let mut names: Vec<&str> = ids.iter().map(|&id| name(id)).collect();
            names.sort_unstable();
            names
        };
        let edges = |edges: &[(Id, Id)]| {
            let mut names: Vec<(&str, &str)> =
                edges.iter().map(|&(u, v)| (name(u), name(v))).collect();
            names.sort_unstable();
            names
        };
        (names(&self.nodes).cmp(&names(&other.nodes)))
            .then_with(|| edges(&self.edges).cmp(&edges(&other.edges)))
            .then_with(|| names(&self.entrypoints).cmp(&names(&other.entrypoints)))
    }
}

/// A snapshot version, or its absence (which orders first).
type SnapshotVersion = Option<Arc<Snapshot>>;

/// The versions of one replaceable thing (snapshots or target sets) of one
/// artifact that may still change: everything at or after the frontier, and
/// the last version before it.
struct Versions<V> {
    by_time: BTreeMap<Time, V>,
}

impl<V: Clone + Default> Versions<V> {
    fn new() -> Self {
        Versions {
            by_time: BTreeMap::new(),
        }
    }

    /// Inserts version `v` at `at`. Returns the diffs as `(time, old, new)`
    /// replacements: the content in force changes from `old` to `new` at `time`.
    /// Of two versions at the same time the greater by `order` wins.
    fn insert(&mut self, at: Time, v: V, order: impl Fn(&V, &V) -> Ordering) -> Vec<(Time, V, V)> {
        let before = |m: &BTreeMap<Time, V>| m.range(..at).next_back().map(|(_, v)| v.clone());
        let previous_at = self.by_time.get(&at).cloned();
        let old = match &previous_at {
            Some(existing) if order(existing, &v).is_ge() => return Vec::new(),
            Some(existing) => existing.clone(),
            None => before(&self.by_time).unwrap_or_default(),
        };
        let mut out = vec![(at, old.clone(), v.clone())];
        if let Some((&next_at, _)) = self.by_time.range(at + 1..).next() {
            // The next version used to replace `old`; now it replaces `v`.
            out.push((next_at, v.clone(), old));
        }
        self.by_time.insert(at, v);
        out
    }

    /// Forgets versions that no longer matter once nothing before `frontier` can arrive.
    fn prune(&mut self, frontier: Time) {
        while self.by_time.range(..frontier).count() > 1 {
            let first = *self.by_time.keys().next().expect("non-empty");
            self.by_time.remove(&first);
        }
    }
}

/// Where an accepted record ended up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    Late,
    Duplicate,
    /// A watermark that advanced the event time to this value, and the
    /// dataflow with it (a round).
    Advanced(Time),
    /// A watermark that advanced the event time but waits for a later one
    /// to start a round (see `round_every`).
    Passed,
    /// A watermark that did not advance.
    Ignored,
    /// Names for the compact sightings that follow: not a record.
    Names,
}

/// What ingest releases: updates of the static inputs at their dataflow
/// times, and sightings for the aggregator at their event times.
#[derive(Debug, Default)]
pub struct Released {
    pub updates: Vec<Timed>,
    pub sightings: Vec<Sighting>,
}

/// What the engine reads: whole [`Record`]s, or [`Input`]s with compact
/// sightings (replay logs, the NDJSON parsers). Records in memory go in as
/// they are, not boxed into an [`Input`].
pub trait Ingestible {
    /// Applies this item to `ingest`, as [`Ingest::push`].
    fn push_to(self, ingest: &mut Ingest, out: &mut Released) -> Outcome;
}

impl Ingestible for Record {
    fn push_to(self, ingest: &mut Ingest, out: &mut Released) -> Outcome {
        ingest.push_record(self, out)
    }
}

impl Ingestible for Input {
    fn push_to(self, ingest: &mut Ingest, out: &mut Released) -> Outcome {
        ingest.push_input(self, out)
    }
}

/// The sequential ingest state.
pub struct Ingest {
    config: Config,
    watermark: Option<Time>,
    max_time: Option<Time>,
    stats: Stats,
    interner: Interner,
    /// The ids of the names the input's compact sightings refer to, by
    /// index ([`Input::Names`]).
    table: Vec<crate::symbols::Id>,
    quarantine: Quarantine,
    snapshots: HashMap<String, Versions<SnapshotVersion>>,
    targets: HashMap<String, Versions<BTreeSet<String>>>,
    /// event_id → time of its record, for duplicate detection.
    event_ids: HashMap<String, Time>,
    /// Sorted lazily: (time, event_id) pairs to forget ids by age.
    event_id_ages: BTreeSet<(Time, String)>,
    /// Updates later than the watermark, by time, until one covers them.
    held: BTreeMap<Time, Vec<Timed>>,
    /// The watermarks a record may still fall before: those ≥ the frontier.
    watermarks: BTreeSet<Time>,
    /// The ids of the last sighting's artifact and source, which the next
    /// one most likely repeats ([`Interner::intern_repeated`]).
    last_artifact: Option<crate::symbols::Id>,
    last_source: Option<crate::symbols::Id>,
    /// How many records make a watermark start a round (1: every one).
    round_every: usize,
    /// Records since the last round, this one included.
    since_round: usize,
}

impl Ingest {
    /// With `round_every` 1, every advancing watermark is a round, as
    /// per-watermark reports and the change feed need.
    pub fn new(config: Config, round_every: usize) -> Self {
        let mut interner = Interner::new();
        let quarantine = Quarantine::new(&config, &mut interner);
        Ingest {
            config,
            watermark: None,
            max_time: None,
            stats: Stats::default(),
            interner,
            table: Vec::new(),
            quarantine,
            snapshots: HashMap::new(),
            targets: HashMap::new(),
            event_ids: HashMap::new(),
            event_id_ages: BTreeSet::new(),
            held: BTreeMap::new(),
            watermarks: BTreeSet::new(),
            last_artifact: None,
            last_source: None,
            round_every: round_every.max(1),
            since_round: 0,
        }
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The names behind the ids of the updates.
    pub fn names(&self) -> Names {
        self.interner.names()
    }

    /// The configured quarantine list in ids.
    pub fn quarantine(&self) -> Quarantine {
        self.quarantine.clone()
    }

    pub fn count_invalid(&mut self) {
        self.stats.invalid += 1;
    }

    /// The earliest event time a record may still have: watermark − lateness.
    pub fn frontier(&self) -> Time {
        self.watermark
            .unwrap_or(0)
            .saturating_sub(self.config.lateness)
    }

    /// The time the report describes: the last watermark, or the largest
    /// time of an applied record when there was none.
    pub fn as_of(&self) -> Time {
        self.watermark.or(self.max_time).unwrap_or(0)
    }

    /// Applies one record, pushing what it releases into `out`: its
    /// sightings, its own updates that an earlier watermark covers, and for
    /// a watermark, every held update up to it.
    pub fn push(&mut self, item: impl Ingestible, out: &mut Released) -> Outcome {
        item.push_to(self, out)
    }

    fn push_input(&mut self, input: Input, out: &mut Released) -> Outcome {
        match input {
            Input::Record(record) => self.push_record(*record, out),
            Input::Names { first, names } => {
                self.table.truncate(first as usize);
                for name in names {
                    self.table.push(self.interner.intern(&name));
                }
                Outcome::Names
            }
            Input::Sighting(sighting) => {
                self.stats.records += 1;
                self.since_round += 1;
                self.sight_indexed(sighting, &mut out.sightings)
            }
        }
    }

    fn push_record(&mut self, record: Record, out: &mut Released) -> Outcome {
        self.stats.records += 1;
        self.since_round += 1;
        if let Record::Watermark { at } = record {
            if self.watermark.is_some_and(|w| w >= at) {
                return Outcome::Ignored;
            }
            self.watermark = Some(at);
            if self.since_round < self.round_every {
                self.forget(self.frontier());
                return Outcome::Passed;
            }
            self.since_round = 0;
            self.watermarks.insert(at);
            let later = self.held.split_off(&(at + 1));
            for (_, mut updates) in std::mem::replace(&mut self.held, later) {
                updates.iter_mut().for_each(|u| u.time = at);
                move_all(&mut updates, &mut out.updates);
            }
            self.forget(self.frontier());
            return Outcome::Advanced(at);
        }
        let mut fresh = Vec::new();
        let outcome = self.apply(record, &mut fresh, &mut out.sightings);
        // A record's updates share its time but where a later snapshot
        // version replaces it: moved as one list (a snapshot's are millions).
        while let Some(time) = fresh.first().map(|u| u.time) {
            let split = fresh.iter().position(|u| u.time != time);
            let rest = split.map_or_else(Vec::new, |i| fresh.split_off(i));
            match self.watermarks.range(time..).next() {
                Some(&covering) => {
                    fresh.iter_mut().for_each(|u| u.time = covering);
                    move_all(&mut fresh, &mut out.updates);
                }
                None => move_all(&mut fresh, self.held.entry(time).or_default()),
            }
            fresh = rest;
        }
        outcome
    }

    /// The stream has ended: releases the held updates up to the last
    /// watermark at it (those a round has not taken yet), and every later
    /// one at its own time. Returns the last watermark.
    pub fn finish(&mut self, out: &mut Released) -> Option<Time> {
        let last = self.watermark;
        for (_, updates) in std::mem::take(&mut self.held) {
            out.updates.extend(updates.into_iter().map(|u| match last {
                Some(w) if u.time <= w => Timed { time: w, ..u },
                _ => u,
            }));
        }
        last
    }

    /// The updates and sightings of one non-watermark record, at their
    /// event times.
    fn apply(
        &mut self,
        record: Record,
        out: &mut Vec<Timed>,
        sightings: &mut Vec<Sighting>,
    ) -> Outcome {
        let time = record.time();
        if time < self.frontier() {
            self.stats.late += 1;
            return Outcome::Late;
        }
        match record {
            Record::Watermark { .. } => unreachable!("handled above"),
            Record::Graph(g) => {
                let artifact = self.interner.intern(&g.artifact);
                let versions = self
                    .snapshots
                    .entry(g.artifact.clone())
                    .or_insert_with(Versions::new);
                let at = g.at;
                let snapshot = Some(Arc::new(Snapshot::new(g, &mut self.interner)));
                let interner = &self.interner;
                let order = |a: &SnapshotVersion, b: &SnapshotVersion| match (a, b) {
                    (Some(a), Some(b)) => a.compare(b, interner),
                    _ => a.is_some().cmp(&b.is_some()),
                };
                for (at, old, new) in versions.insert(at, snapshot, order) {
                    snapshot_diff(artifact, at, old.as_deref(), new.as_deref(), out);
                }
            }
            Record::Targets(t) => {
                let versions = self
                    .targets
                    .entry(t.artifact.clone())
                    .or_insert_with(Versions::new);
                let artifact = self.interner.intern(&t.artifact);
                let symbols = t.symbols.into_iter().collect();
                for (at, old, new) in versions.insert(t.at, symbols, Ord::cmp) {
                    // A set iterates in order.
                    let old: Vec<&String> = old.iter().collect();
                    let new: Vec<&String> = new.iter().collect();
                    sorted_diff(&old, &new, |s, diff| {
                        let s = self.interner.intern(s);
                        out.push(Update::Target(artifact, s).at(at, diff))
                    });
                }
            }
            Record::Edge(e) => {
                if self.is_duplicate(e.event_id.as_ref(), e.at) {
                    return Outcome::Duplicate;
                }
                let i = &mut self.interner;
                sightings.push(Sighting::Edge {
                    edge: (
                        i.intern_repeated(&e.artifact, &mut self.last_artifact),
                        i.intern(&e.caller),
                        i.intern(&e.callee),
                    ),
                    at: e.at,
                    hits: e.hits,
                    source: i.intern_repeated(&e.source, &mut self.last_source),
                    estimated: e.estimated,
                });
            }
            Record::Hit(h) => {
                if self.is_duplicate(h.event_id.as_ref(), h.at) {
                    return Outcome::Duplicate;
                }
                let i = &mut self.interner;
                sightings.push(Sighting::Hit {
                    node: (
                        i.intern_repeated(&h.artifact, &mut self.last_artifact),
                        i.intern(&h.symbol),
                    ),
                    at: h.at,
                });
            }
            Record::Coverage(c) => {
                let symbols: BTreeSet<String> = c.symbols.into_iter().collect();
                let artifact = self.interner.intern(&c.artifact);
                for symbol in symbols {
                    sightings.push(Sighting::Coverage {
                        node: (artifact, self.interner.intern(&symbol)),
                        from: c.from,
                        to: c.to,
                    });
                }
            }
        }
        self.max_time = Some(self.max_time.map_or(time, |m| m.max(time)));
        Outcome::Applied
    }

    /// [`Ingest::apply`] of an `edge` or `hit` record in its compact form:
    /// the same checks and the same sighting, its names looked up by index.
    fn sight_indexed(&mut self, s: IndexedSighting, sightings: &mut Vec<Sighting>) -> Outcome {
        if s.at < self.frontier() {
            self.stats.late += 1;
            return Outcome::Late;
        }
        if self.is_duplicate(s.event_id.as_ref(), s.at) {
            return Outcome::Duplicate;
        }
        // The producer has checked every index against the table it defined.
        let id = |index: u32| self.table[index as usize];
        sightings.push(match s.what {
            Sighted::Edge { caller, callee } => Sighting::Edge {
                edge: (id(s.artifact), id(caller), id(callee)),
                at: s.at,
                hits: s.hits,
                source: id(s.source),
                estimated: s.estimated,
            },
            Sighted::Hit { symbol } => Sighting::Hit {
                node: (id(s.artifact), id(symbol)),
                at: s.at,
            },
        });
        self.max_time = Some(self.max_time.map_or(s.at, |m| m.max(s.at)));
        Outcome::Applied
    }

    fn is_duplicate(&mut self, event_id: Option<&String>, at: Time) -> bool {
        let Some(id) = event_id else { return false };
        if self.event_ids.contains_key(id) {
            self.stats.duplicate += 1;
            return true;
        }
        self.event_ids.insert(id.clone(), at);
        self.event_id_ages.insert((at, id.clone()));
        false
    }

    /// Drops state that no record can touch any more: event ids and
    /// snapshot versions older than the frontier.
    fn forget(&mut self, frontier: Time) {
        while let Some((at, _)) = self.event_id_ages.first() {
            if *at >= frontier {
                break;
            }
            let (_, id) = self.event_id_ages.pop_first().expect("non-empty");
            self.event_ids.remove(&id);
        }
        for v in self.snapshots.values_mut() {
            v.prune(frontier);
        }
        for v in self.targets.values_mut() {
            v.prune(frontier);
        }
        // A record at or after the frontier falls before one of these.
        self.watermarks = self.watermarks.split_off(&frontier);
    }
}

/// Moves the items of `from` to the end of `to`: the whole list when `to`
/// is empty.
pub(crate) fn move_all<T>(from: &mut Vec<T>, to: &mut Vec<T>) {
    if to.is_empty() {
        std::mem::swap(from, to);
    } else {
        to.append(from);
    }
}

/// What leaves (diff -1) and what joins (diff 1) from one sorted list
/// without repeats to another.
fn sorted_diff<T: Ord + Copy>(old: &[T], new: &[T], mut emit: impl FnMut(T, isize)) {
    let (mut i, mut j) = (0, 0);
    while i < old.len() && j < new.len() {
        match old[i].cmp(&new[j]) {
            Ordering::Less => {
                emit(old[i], -1);
                i += 1;
            }
            Ordering::Greater => {
                emit(new[j], 1);
                j += 1;
            }
            Ordering::Equal => (i, j) = (i + 1, j + 1),
        }
    }
    old[i..].iter().for_each(|&x| emit(x, -1));
    new[j..].iter().for_each(|&x| emit(x, 1));
}

fn snapshot_diff(
    artifact: Artifact,
    at: Time,
    old: Option<&Snapshot>,
    new: Option<&Snapshot>,
    out: &mut Vec<Timed>,
) {
    if old.is_some() != new.is_some() {
        let diff = if new.is_some() { 1 } else { -1 };
        out.push(Update::Snapshot(artifact).at(at, diff));
    }
    let empty = Snapshot::default();
    let (old, new) = (old.unwrap_or(&empty), new.unwrap_or(&empty));
    // Counted first, so that a snapshot's millions of updates take the
    // room they need rather than up to twice it (an update is as large as
    // the largest kind, an edge's statistics). An eighth more leaves room
    // for what joins them at their time (a target set), which would
    // otherwise double the list.
    let mut len = 0;
    sorted_diff(&old.nodes, &new.nodes, |_, _| len += 1);
    sorted_diff(&old.edges, &new.edges, |_, _| len += 1);
    sorted_diff(&old.entrypoints, &new.entrypoints, |_, _| len += 1);
    out.reserve_exact(len + len / 8);
    sorted_diff(&old.nodes, &new.nodes, |s, d| {
        out.push(Update::Node(artifact, s).at(at, d))
    });
    sorted_diff(&old.edges, &new.edges, |edge, d| {
        out.push(Update::StaticEdge(artifact, edge).at(at, d))
    });
    sorted_diff(&old.entrypoints, &new.entrypoints, |s, d| {
        out.push(Update::Entrypoint(artifact, s).at(at, d))
    });
}

#[cfg(test)]
mod tests {
    use tracemerge_records::{EdgeObservation, StaticEdge, Targets};

    use super::*;

    fn targets(at: Time) -> Record {
        Record::Targets(Targets {
            artifact: "a".into(),
            at,
            symbols: vec![format!("t{at}")],
        })
    }

    fn edge(at: Time) -> Record {
        Record::Edge(EdgeObservation {
            artifact: "a".into(),
            caller: "x".into(),
            callee: "y".into(),
            at,
            hits: 1,
            source: "s".into(),
            event_id: None,
            estimated: false,
        })
    }

    /// An ingest with a ttl of 100 ms.
    fn ingest(round_every: usize) -> Ingest {
        let config = Config {
            ttl: 100,
            ..Config::default()
        };
        Ingest::new(config, round_every)
    }

    fn times(out: &mut Released) -> Vec<(Time, isize)> {
        let mut times: Vec<_> = out.updates.drain(..).map(|u| (u.time, u.diff)).collect();
        times.sort();
        times
    }

    #[test]
    fn every_watermark_is_a_round_by_default() {
        let (mut ingest, mut out) = (ingest(1), Released::default());
        assert_eq!(ingest.push(targets(5), &mut out), Outcome::Applied);
        assert_eq!(
            ingest.push(Record::Watermark { at: 10 }, &mut out),
            Outcome::Advanced(10)
        );
        assert_eq!(times(&mut out), [(10, 1)]);
        assert_eq!(
            ingest.push(Record::Watermark { at: 20 }, &mut out),
            Outcome::Advanced(20)
        );
        // A record covered by a round enters at it.
        assert_eq!(ingest.push(targets(20), &mut out), Outcome::Applied);
        assert_eq!(times(&mut out), [(20, -1), (20, 1)]);
    }

    #[test]
    fn a_watermark_starts_a_round_once_enough_records_came() {
        let (mut ingest, mut out) = (ingest(3), Released::default());
        assert_eq!(ingest.push(targets(5), &mut out), Outcome::Applied);
        assert_eq!(
            ingest.push(Record::Watermark { at: 10 }, &mut out),
            Outcome::Passed
        );
        assert!(out.updates.is_empty(), "held until a round");
        // Event time moved all the same: 8 is late.
        assert_eq!(ingest.push(targets(8), &mut out), Outcome::Late);
        assert_eq!(ingest.push(targets(12), &mut out), Outcome::Applied);
        assert_eq!(
            ingest.push(Record::Watermark { at: 20 }, &mut out),
            Outcome::Advanced(20)
        );
        // Both versions enter at the round: t5 in, then t5 out and t12 in.
        assert_eq!(times(&mut out), [(20, -1), (20, 1), (20, 1)]);
        assert_eq!(ingest.push(targets(115), &mut out), Outcome::Applied);
        assert_eq!(
            ingest.push(Record::Watermark { at: 110 }, &mut out),
            Outcome::Passed
        );
        // At the end, what the last watermark covers enters at it, the rest
        // at its own time.
        assert_eq!(ingest.finish(&mut out), Some(110));
        assert_eq!(times(&mut out), [(115, -1), (115, 1)]);
    }

    fn graph(at: Time, nodes: &[&str], edges: &[(&str, &str)]) -> Record {
        Record::Graph(GraphSnapshot {
            artifact: "a".into(),
            at,
            nodes: nodes.iter().map(|n| n.to_string()).collect(),
            edges: edges.iter().map(|(u, v)| StaticEdge::new(*u, *v)).collect(),
            entrypoints: nodes[..1].iter().map(|n| n.to_string()).collect(),
            indirect_calls: Default::default(),
            modules: Default::default(),
        })
    }

    /// The static content in force after every update so far: each update
    /// by names, with its summed diff (those that cancel left out).
    fn in_force(ingest: &Ingest, out: &mut Released) -> BTreeMap<String, isize> {
        let names = ingest.names();
        let names = names.read();
        let mut sum = BTreeMap::new();
        for t in out.updates.drain(..) {
            let key = match t.update {
                Update::Snapshot(_) => "snapshot".to_string(),
                Update::Node(_, n) => format!("node {}", names.get(n)),
                Update::Entrypoint(_, n) => format!("entrypoint {}", names.get(n)),
                Update::StaticEdge(_, (u, v)) => format!("edge {}>{}", names.get(u), names.get(v)),
                other => panic!("not a snapshot's update: {other:?}"),
            };
            *sum.entry(key).or_insert(0) += t.diff;
        }
        sum.retain(|_, d| *d != 0);
        sum
    }

    #[test]
    fn a_later_snapshot_enters_as_its_difference() {
        let (mut ingest, mut out) = (ingest(1), Released::default());
        ingest.push(
            graph(5, &["m", "b", "c"], &[("m", "b"), ("b", "c")]),
            &mut out,
        );
        ingest.push(Record::Watermark { at: 10 }, &mut out);
        out.updates.clear();
        // Repeats count once; only what changed enters.
        let next = graph(
            12,
            &["m", "b", "d", "b"],
            &[("m", "b"), ("b", "d"), ("m", "b")],
        );
        ingest.push(next, &mut out);
        ingest.push(Record::Watermark { at: 20 }, &mut out);
        assert!(out.updates.iter().all(|u| u.time == 20));
        let expected = [
            ("edge b>c", -1),
            ("edge b>d", 1),
            ("node c", -1),
            ("node d", 1),
        ];
        let expected = expected.map(|(k, d)| (k.to_string(), d));
        assert_eq!(in_force(&ingest, &mut out), BTreeMap::from(expected));
    }

    #[test]
    fn of_two_snapshots_at_one_time_the_greater_by_names_wins_in_either_order() {
        // By names {"b","c"} > {"a","b"}, whatever ids the names got.
        let greater = graph(5, &["b", "c"], &[("b", "c")]);
        let lesser = graph(5, &["b", "a"], &[("b", "a")]);
        let mut results = Vec::new();
        for pair in [[&greater, &lesser], [&lesser, &greater]] {
            let (mut ingest, mut out) = (ingest(1), Released::default());
            for g in pair {
                ingest.push(g.clone(), &mut out);
            }
            ingest.push(Record::Watermark { at: 10 }, &mut out);
            results.push(in_force(&ingest, &mut out));
        }
        let expected = ["snapshot", "node b", "node c", "entrypoint b", "edge b>c"];
        let expected: BTreeMap<String, isize> =
            expected.iter().map(|k| (k.to_string(), 1)).collect();
        assert_eq!(results, [expected.clone(), expected]);
    }

    #[test]
    fn sightings_go_to_the_aggregator_unless_late_or_duplicate() {
        let (mut ingest, mut out) = (ingest(1), Released::default());
        assert_eq!(ingest.push(edge(5), &mut out), Outcome::Applied);
        ingest.push(Record::Watermark { at: 10 }, &mut out);
        assert_eq!(ingest.push(edge(9), &mut out), Outcome::Late);
        let mut dup = edge(12);
        if let Record::Edge(e) = &mut dup {
            e.event_id = Some("e1".into());
        }
        assert_eq!(ingest.push(dup.clone(), &mut out), Outcome::Applied);
        assert_eq!(ingest.push(dup, &mut out), Outcome::Duplicate);
        let times: Vec<Time> = out.sightings.iter().map(Sighting::time).collect();
        assert_eq!(times, [5, 12]);
        assert!(out.updates.is_empty());
    }
}
