//! Report assembly: worker 0 gathers the dataflow's output by time
//! ([`Pending`]) and hands each time over, once it is final, to the sink
//! thread ([`SinkThread`]), which keeps the accumulated state and turns it
//! into the change feed and the reports ([`Sink`]). On its own thread the
//! sink's work (applying each time's changes, building the change lines and
//! reports, and the caller's writing of them) runs beside the dataflow
//! instead of after it, on the worker that every output goes to.

use std::cell::RefCell;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, VecDeque};
use std::hash::BuildHasher;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{bounded, Sender};
use rustc_hash::{FxBuildHasher, FxHashMap, FxHashSet};
use tracemerge_records::{ArtifactReport, Change, ChangeItem, Config, Report, Stats, Time};

use crate::engine::{Event, Events, Fault};
use crate::model::{Artifact, EdgeKey, EdgeParts, Output, Timed, Update};
use crate::slab::{Keyed, Slab};
use crate::symbols::{name_prefix, Names, NamesGuard};
use crate::threads::{Role, ThreadTimes};
use crate::window::EdgeStats;

/// Output updates by time.
pub(crate) type ByTime = BTreeMap<Time, Vec<(Output, i64)>>;

/// Output updates not yet final, by time.
pub(crate) type Pending = Rc<RefCell<ByTime>>;

/// The observed edges' statistics on their way from every local worker's
/// aggregator to the sink, by time, past the dataflow (one process only:
/// in a cluster they cross processes in the dataflow). A worker puts a
/// round's statistics here before its inputs advance past the round, so
/// they are all here once the dataflow's frontier has passed it.
#[derive(Clone, Default)]
pub(crate) struct StatsToSink(Arc<Mutex<ByTime>>);

impl StatsToSink {
    /// Moves the statistics updates out of `updates` into the hand-over.
    /// They need no consolidation there: an aggregator says at most one
    /// retraction and one addition, never equal, per edge and time, and
    /// each edge is one aggregator's.
    pub(crate) fn take_from(&self, updates: &mut Vec<Timed>) {
        let mut by_time = self.0.lock().expect("statistics");
        // Updates come in runs of one time (an evaluation's).
        let mut run: Option<(Time, Vec<(Output, i64)>)> = None;
        let mut hand_over = |run: Option<(Time, Vec<(Output, i64)>)>| {
            if let Some((time, stats)) = run {
                append_at(&mut by_time, time, stats);
            }
        };
        updates.retain(|t| {
            let Update::EdgeStats(edge, stats) = t.update else {
                return true;
            };
            let stats = Output::edge_stats(edge, stats);
            if run.as_ref().is_none_or(|(time, _)| *time != t.time) {
                hand_over(run.replace((t.time, Vec::new())));
            }
            let (_, at_time) = run.as_mut().expect("a run");
            at_time.push((stats, t.diff as i64));
            false
        });
        hand_over(run);
    }

    /// Adds the statistics of edges that had none, at `time`; `len` is
    /// how many there are at most.
    pub(crate) fn put(
        &self,
        time: Time,
        len: usize,
        stats: impl Iterator<Item = (EdgeKey, EdgeStats)>,
    ) {
        let mut items = Vec::with_capacity(len);
        items.extend(stats.map(|(edge, stats)| (Output::edge_stats(edge, stats), 1)));
        append_at(&mut self.0.lock().expect("statistics"), time, items);
    }

    /// Takes the statistics of times before `frontier` (all: `None`).
    fn take_final(&self, frontier: Option<Time>) -> ByTime {
        take_before(&mut self.0.lock().expect("statistics"), frontier)
    }
}

/// Adds `items` to those of `time` (taking the vector itself if the time
/// has none yet).
fn append_at(by_time: &mut ByTime, time: Time, mut items: Vec<(Output, i64)>) {
    let at_time = by_time.entry(time).or_default();
    if at_time.is_empty() {
        *at_time = items;
    } else {
        at_time.append(&mut items);
    }
}

/// Takes the times before `frontier` (all of them: `None`) out of `by_time`.
fn take_before(by_time: &mut ByTime, frontier: Option<Time>) -> ByTime {
    let later = match frontier {
        Some(f) => by_time.split_off(&f),
        None => BTreeMap::new(),
    };
    std::mem::replace(by_time, later)
}

/// What worker 0 hands the sink thread, in its own order.
pub(crate) enum SinkMsg {
    /// A report as of `as_of` is due once every output before it is in.
    Report {
        as_of: Time,
        stats: Stats,
        last: bool,
    },
    /// The output of these times, all final: every output before
    /// `frontier` is in (`None`: all of it). The edges' statistics come
    /// apart from the dataflow's output, in one process.
    Final {
        times: ByTime,
        stats: ByTime,
        frontier: Option<Time>,
    },
}

/// Worker 0's end of the sink thread: hands it each time's output once the
/// dataflow's frontier has passed that time.
pub(crate) struct SinkThread {
    pending: Pending,
    stats: StatsToSink,
    /// The frontier last handed over (`None` before the first).
    handed: Option<Option<Time>>,
    to_sink: Option<Sender<SinkMsg>>,
    thread: Option<JoinHandle<()>>,
}

/// Hand-overs the sink thread may be behind before worker 0 waits for it:
/// enough to even out uneven rounds, few enough that the output waiting in
/// the channel stays a few rounds' worth.
const SINK_BACKLOG: usize = 8;

impl SinkThread {
    /// Starts `sink` on a thread of its own, fed from `pending`.
    /// A panic there (the caller's event callback runs there) is put in
    /// `panicked` and fails the run, as a worker's panic does.
    pub(crate) fn spawn(
        mut sink: Sink,
        pending: Pending,
        stats: StatsToSink,
        panicked: Arc<Mutex<Option<String>>>,
        times: ThreadTimes,
    ) -> std::io::Result<Self> {
        let (to_sink, from_worker) = bounded::<SinkMsg>(SINK_BACKLOG);
        let thread = std::thread::Builder::new()
            .name("tracemerge-sink".into())
            .spawn(move || {
                let failed = sink.failed.clone();
                let run = std::panic::AssertUnwindSafe(|| {
                    for msg in from_worker {
                        // After a fault the run stops; the rest is only
                        // drained, so that worker 0 never waits on a full
                        // channel.
                        if !sink.failed.load(Ordering::Relaxed) {
                            sink.take(msg);
                        }
                    }
                });
                if let Err(payload) = std::panic::catch_unwind(run) {
                    *panicked.lock().expect("panic slot") = Some(panic_message(&*payload));
                    failed.store(true, Ordering::Relaxed);
                }
                times.record(Role::Sink, 0, Duration::ZERO);
            })?;
        Ok(SinkThread {
            pending,
            stats,
            handed: None,
            to_sink: Some(to_sink),
            thread: Some(thread),
        })
    }

    pub(crate) fn report(&mut self, as_of: Time, stats: Stats, last: bool) {
        self.send(SinkMsg::Report { as_of, stats, last });
    }

    /// Hands over every output before `frontier` (all of it: `None`), if
    /// the frontier moved since the last hand-over.
    pub(crate) fn poll(&mut self, frontier: Option<Time>) {
        if self.handed == Some(frontier) {
            return;
        }
        self.handed = Some(frontier);
        let times = take_before(&mut self.pending.borrow_mut(), frontier);
        let stats = self.stats.take_final(frontier);
        self.send(SinkMsg::Final {
            times,
            stats,
            frontier,
        });
    }

    fn send(&mut self, msg: SinkMsg) {
        if let Some(to_sink) = &self.to_sink {
            // An error: the sink thread is gone, which only a panic there
            // does, and that has already failed the run.
            let _ = to_sink.send(msg);
        }
    }
}

impl Drop for SinkThread {
    /// Waits until the sink has delivered everything it was handed.
    fn drop(&mut self) {
        drop(self.to_sink.take());
        if let Some(thread) = self.thread.take() {
            // A panic there raised the run's failure flag already.
            let _ = thread.join();
        }
    }
}

/// The accumulated output, everything final so far, on the sink thread.
pub(crate) struct Sink {
    /// The frontier of the last hand-over (`None` before the first):
    /// reports before it are due.
    pub(crate) frontier: Option<Option<Time>>,
    /// Every output but the edge parts, with its multiplicity.
    pub(crate) state: FxHashMap<Output, i64>,
    /// The parts of each observed edge ([`EdgeParts`]), in a slab: a
    /// 64-byte slot and a 4-byte table entry per edge.
    pub(crate) edges: Slab<SinkEdge>,
    pub(crate) reports: VecDeque<(Time, Stats, bool)>,
    pub(crate) changes: bool,
    pub(crate) config: Config,
    pub(crate) names: Names,
    pub(crate) events: Events,
    /// Raised with a fault: the run stops.
    pub(crate) failed: Arc<AtomicBool>,
    /// Where a fault goes; once it holds one, the sink emits nothing more.
    pub(crate) fault: Arc<Mutex<Option<Fault>>>,
}

/// An observed edge's parts, in the sink's slab.
#[derive(Default)]
pub(crate) struct SinkEdge {
    key: EdgeKey,
    parts: EdgeParts,
}

impl Keyed for SinkEdge {
    type Key = EdgeKey;
    fn key(&self) -> EdgeKey {
        self.key
    }
}

/// Sums the diffs of equal outputs among the updates of one time, dropping
/// those that cancel out; the order of what is left carries no meaning.
///
/// A time's outputs are nearly always distinct (each comes from the one
/// rule that derives it, once per time): one look at their hashes shows
/// it, and only a time with a repeated hash is sorted, which was most of
/// the sink's work when every time was.
pub(crate) fn consolidate(items: &mut Vec<(Output, i64)>) {
    let mut hashes = FxHashSet::with_capacity_and_hasher(items.len(), Default::default());
    let distinct = (items.iter()).all(|(output, _)| hashes.insert(FxBuildHasher.hash_one(output)));
    if !distinct {
        items.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        items.dedup_by(|next, kept| {
            if next.0 == kept.0 {
                kept.1 += next.1;
                true
            } else {
                false
            }
        });
    }
    items.retain(|(_, diff)| *diff != 0);
}

/// `changes` in the feed's order within a time: by item, then diff. Sorts
/// their positions, not the changes: a change line is over a hundred bytes,
/// which the sort would otherwise move about at every step. Positions sort
/// by [`order_key`] first, so that most comparisons are of integers, not
/// of names.
fn sorted(changes: Vec<Change>) -> Vec<Change> {
    let mut order: Vec<(OrderKey, u32)> = (changes.iter().enumerate())
        .map(|(i, c)| (order_key(&c.item), i as u32))
        .collect();
    order.sort_unstable_by(|(ka, a), (kb, b)| {
        ka.cmp(kb).then_with(|| {
            let (a, b) = (&changes[*a as usize], &changes[*b as usize]);
            (&a.item, a.diff).cmp(&(&b.item, b.diff))
        })
    });
    let mut slots: Vec<Option<Change>> = changes.into_iter().map(Some).collect();
    (order.into_iter())
        .map(|(_, at)| slots[at as usize].take().expect("each position once"))
        .collect()
}

/// The kind of a change item, then its leading names as [`name_key`]s.
type OrderKey = (u8, [u128; 3]);

/// A key that never contradicts the order of change items: the kind (in
/// the order `ChangeItem` declares them), the artifact and, for an edge,
/// the caller and the callee; each name counts only while the names before
/// it are whole in their keys. Items with equal keys are compared whole.
fn order_key(item: &ChangeItem) -> OrderKey {
    let (kind, names) = match item {
        ChangeItem::Edge { artifact, edge } => (0, [artifact, &edge.caller, &edge.callee]),
        ChangeItem::Verdict { artifact, .. } => (1, [artifact, &EMPTY, &EMPTY]),
        ChangeItem::Conflict { artifact, .. } => (2, [artifact, &EMPTY, &EMPTY]),
        ChangeItem::Reach { artifact, .. } => (3, [artifact, &EMPTY, &EMPTY]),
    };
    let mut keys = [0u128; 3];
    for (key, name) in keys.iter_mut().zip(names) {
        let (k, whole) = name_key(name);
        *key = k;
        if !whole {
            break;
        }
    }
    (kind, keys)
}

const EMPTY: String = String::new();

/// `edges` in the order of their lines in the feed: by artifact, caller
/// and callee name, as [`ChangeItem`]'s order has it.
///
/// Sorted by keys that never contradict that order: the artifact's rank
/// among the few artifacts of a time (artifact names are often long, and
/// share their first bytes), then the caller's and callee's [`name_key`]s,
/// the callee's only if the caller's is whole. Edges with equal keys are
/// compared by name.
fn in_feed_order(names: &NamesGuard, edges: impl Iterator<Item = EdgeKey>) -> Vec<EdgeKey> {
    let edges: Vec<EdgeKey> = edges.collect();
    let mut artifacts: Vec<Artifact> = edges.iter().map(|e| e.0).collect();
    artifacts.sort_unstable();
    artifacts.dedup();
    artifacts.sort_by(|a, b| names.get(*a).cmp(names.get(*b)));
    let rank: FxHashMap<Artifact, u32> = (artifacts.iter().enumerate())
        .map(|(rank, &artifact)| (artifact, rank as u32))
        .collect();
    let mut keyed: Vec<(u32, u128, u128, EdgeKey)> = (edges.into_iter())
        .map(|edge| {
            let (caller, whole) = name_key(names.get(edge.1));
            let callee = if whole {
                name_key(names.get(edge.2)).0
            } else {
                0
            };
            (rank[&edge.0], caller, callee, edge)
        })
        .collect();
    keyed.sort_unstable_by(|a, b| {
        (a.0, a.1, a.2)
            .cmp(&(b.0, b.1, b.2))
            .then_with(|| edge_order(names, a.3, b.3))
    });
    keyed.into_iter().map(|(_, _, _, edge)| edge).collect()
}

/// The order of two edges' lines in the feed: by artifact, caller and
/// callee name, as [`ChangeItem`]'s order has it.
fn edge_order(names: &NamesGuard, a: EdgeKey, b: EdgeKey) -> std::cmp::Ordering {
    for (x, y) in [(a.0, b.0), (a.1, b.1), (a.2, b.2)] {
        if x == y {
            continue;
        }
        let (x, y) = (names.get(x), names.get(y));
        // Distinct ids are distinct names; their keys mostly tell.
        return name_key(x).0.cmp(&name_key(y).0).then_with(|| x.cmp(y));
    }
    std::cmp::Ordering::Equal
}

/// A name's first eight bytes and its length (saturated past eight): equal
/// keys mean equal names if the name is `whole` (eight bytes or fewer), and
/// unequal keys order as the names do.
fn name_key(name: &str) -> (u128, bool) {
    let whole = name.len() <= 8;
    let len = if whole {
        name.len() as u128
    } else {
        u128::from(u64::MAX)
    };
    ((u128::from(name_prefix(name)) << 64) | len, whole)
}

impl Sink {
    /// Keeps the first fault and stops the run.
    fn fail(&self, fault: Fault) {
        self.fault.lock().expect("fault").get_or_insert(fault);
        self.failed.store(true, Ordering::Relaxed);
    }

    /// Takes in what worker 0 handed over: emits the changes of each final
    /// time and the reports that became due, in event-time order.
    pub(crate) fn take(&mut self, msg: SinkMsg) {
        let shared_events = self.events.clone();
        let mut events = shared_events.lock().expect("events");
        let (mut times, mut stats) = match msg {
            SinkMsg::Report { as_of, stats, last } => {
                self.reports.push_back((as_of, stats, last));
                (BTreeMap::new(), BTreeMap::new())
            }
            SinkMsg::Final {
                times,
                stats,
                frontier,
            } => {
                self.frontier = Some(frontier);
                (times, stats)
            }
        };
        let mut at = times
            .keys()
            .chain(stats.keys())
            .copied()
            .collect::<Vec<_>>();
        at.sort_unstable();
        at.dedup();
        for time in at {
            let mut at_time = times.remove(&time).unwrap_or_default();
            consolidate(&mut at_time);
            let stats = stats.remove(&time).unwrap_or_default();
            if at_time.is_empty() && stats.is_empty() {
                continue;
            }
            if let Err(fault) = self.emit_reports(|as_of| as_of < time, &mut *events) {
                return self.fail(fault);
            }
            let changes = match self.apply(time, [&at_time, &stats]) {
                Ok(changes) => changes,
                Err(fault) => return self.fail(fault),
            };
            for change in changes {
                events(Event::Change(change));
            }
        }
        let Some(frontier) = self.frontier else {
            return;
        };
        let before = |t: Time| frontier.is_none_or(|f| t < f);
        if let Err(fault) = self.emit_reports(before, &mut *events) {
            return self.fail(fault);
        }
        events(Event::Progress(frontier));
    }

    /// Emits the due reports as of times that `due` accepts, oldest first.
    fn emit_reports(
        &mut self,
        due: impl Fn(Time) -> bool,
        events: &mut dyn FnMut(Event),
    ) -> Result<(), Fault> {
        while let Some(&(as_of, stats, last)) = self.reports.front() {
            if !due(as_of) {
                break;
            }
            let report = self.report(as_of, stats)?;
            events(Event::Report { report, last });
            self.reports.pop_front();
        }
        Ok(())
    }

    /// Takes in the output updates of one time; returns the change lines
    /// they make (none unless the change feed is on), sorted by name, so
    /// the feed's order within a time does not depend on the order ids
    /// were given in.
    fn apply(&mut self, at: Time, parts: [&[(Output, i64)]; 2]) -> Result<Vec<Change>, Fault> {
        let at_time = || parts.iter().flat_map(|part| part.iter());
        let names = self.names.read();
        let mut changes = Vec::new();
        // The edges touched, with the parts they had before.
        let mut touched: FxHashMap<EdgeKey, EdgeParts> = FxHashMap::default();
        // Removals first: a part that changes is retracted, then added anew.
        let removals = at_time().filter(|(_, diff)| *diff < 0);
        let additions = at_time().filter(|(_, diff)| *diff >= 0);
        for (output, diff) in removals.chain(additions) {
            if let Some(key) = output.edge_part() {
                let id = self.edges.id_or_insert(key, || SinkEdge {
                    key,
                    parts: EdgeParts::default(),
                });
                let parts = &mut self.edges.get_mut(id).parts;
                if self.changes {
                    touched.entry(key).or_insert_with(|| parts.clone());
                }
                if let Err(source) = parts.apply(output, *diff) {
                    return Err(Fault::EdgePart { at, source });
                }
                if parts.is_empty() {
                    self.edges.remove(id);
                }
                continue;
            }
            if self.changes {
                if let Some(item) = output.to_item(&names) {
                    changes.push(Change {
                        at,
                        diff: *diff,
                        item,
                    });
                }
            }
            match self.state.entry(output.clone()) {
                Entry::Occupied(mut e) => {
                    *e.get_mut() += diff;
                    if *e.get() == 0 {
                        e.remove();
                    }
                }
                Entry::Vacant(e) => {
                    e.insert(*diff);
                }
            }
        }
        // Edge lines come first in a time (their kind is the first), by
        // edge: the touched edges are sorted by name, which is most of
        // the order (each makes at most two edge lines), and no longer the
        // lines themselves.
        let edges = in_feed_order(&names, touched.keys().copied());
        let mut edge_lines = Vec::with_capacity(2 * edges.len() + changes.len());
        for key in edges {
            let before = touched.remove(&key).expect("a touched edge");
            let after = match self.edges.find(key) {
                Some(id) => &self.edges.get(id).parts,
                None => &EdgeParts::default(),
            };
            after.changes_since(&before, key, at, &names, &mut edge_lines, &mut changes);
        }
        edge_lines.extend(sorted(changes));
        Ok(edge_lines)
    }

    fn report(&self, as_of: Time, stats: Stats) -> Result<Report, Fault> {
        let names = self.names.read();
        let mut artifacts: BTreeMap<String, ArtifactReport> = BTreeMap::new();
        if let Some((output, count)) = self.state.iter().find(|(_, count)| **count != 1) {
            return Err(Fault::Multiplicity {
                as_of,
                output: output.clone(),
                count: *count,
            });
        }
        // The observed edges (and their conflicts) straight from their
        // parts, each artifact's list reserved at its size: one edge at a
        // time, no growth by doubling.
        let mut sizes: FxHashMap<Artifact, usize> = FxHashMap::default();
        for SinkEdge { key, parts } in self.edges.iter() {
            if parts.in_static.is_some() && parts.stats.is_some() {
                *sizes.entry(key.0).or_default() += 1;
            }
        }
        let mut by_id: FxHashMap<Artifact, ArtifactReport> = FxHashMap::default();
        for (artifact, size) in sizes {
            let report = by_id.entry(artifact).or_default();
            report.observed_edges.reserve_exact(size);
        }
        for &SinkEdge { key, ref parts } in self.edges.iter() {
            if let Some(edge) = parts.observed_edge(key, &names) {
                let report = by_id.entry(key.0).or_default();
                report.observed_edges.push(edge);
            }
            if let Some(conflict) = parts.conflict(key, &names) {
                by_id.entry(key.0).or_default().conflicts.push(conflict);
            }
        }
        for (artifact, report) in by_id {
            artifacts.insert(names.get(artifact).to_string(), report);
        }
        let items = (self.state.keys()).filter_map(|output| output.to_item(&names));
        for item in items {
            match item {
                ChangeItem::Edge { artifact, edge } => artifacts
                    .entry(artifact)
                    .or_default()
                    .observed_edges
                    .push(edge),
                ChangeItem::Reach { artifact, reach } => {
                    artifacts.entry(artifact).or_default().reach = reach
                }
                ChangeItem::Verdict { artifact, verdict } => artifacts
                    .entry(artifact)
                    .or_default()
                    .verdicts
                    .push(verdict),
                ChangeItem::Conflict { artifact, conflict } => artifacts
                    .entry(artifact)
                    .or_default()
                    .conflicts
                    .push(conflict),
            }
        }
        let mut report = Report::new(as_of, self.config.clone(), stats);
        report.artifacts = artifacts
            .into_iter()
            .map(|(name, mut a)| {
                a.artifact = name;
                a
            })
            .collect();
        Ok(report.seal())
    }
}

/// What a thread panicked with, from the payload `join` or
/// `catch_unwind` gives.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    (payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_string())
}

#[cfg(test)]
mod tests {
    use tracemerge_records::Reach;

    use super::*;
    use crate::model::{EdgePart, EdgePartError};
    use crate::symbols::{Id, Interner};

    /// An empty sink that makes the change feed.
    fn feed_sink(names: Names, events: Events) -> Sink {
        Sink {
            frontier: None,
            state: FxHashMap::default(),
            edges: Slab::default(),
            reports: VecDeque::new(),
            changes: true,
            config: Config::default(),
            names,
            events,
            failed: Arc::new(AtomicBool::new(false)),
            fault: Arc::new(Mutex::new(None)),
        }
    }

    /// A sink over `outputs` (at time 1) with a report due as of 2; returns
    /// the fault it found and the reports it emitted.
    fn poll(outputs: Vec<(Output, i64)>) -> (Option<Fault>, usize) {
        let mut interner = Interner::new();
        interner.intern("app");
        let names = interner.names();
        let reports = Arc::new(Mutex::new(0));
        let seen = reports.clone();
        let events: Events = Arc::new(Mutex::new(Box::new(move |event| {
            if let Event::Report { .. } = event {
                *seen.lock().unwrap() += 1;
            }
        })));
        let mut sink = feed_sink(names, events);
        let fault = sink.fault.clone();
        sink.take(SinkMsg::Report {
            as_of: 2,
            stats: Stats::default(),
            last: true,
        });
        sink.take(SinkMsg::Final {
            times: BTreeMap::from([(1, outputs)]),
            stats: BTreeMap::new(),
            frontier: None,
        });
        assert_eq!(
            sink.failed.load(Ordering::Relaxed),
            fault.lock().unwrap().is_some()
        );
        let found = fault.lock().unwrap().take();
        let emitted = *reports.lock().unwrap();
        (found, emitted)
    }

    fn reach(effective: u64) -> Output {
        Output::Reach {
            artifact: 0,
            reach: Reach {
                static_: 1,
                runtime: 0,
                effective,
            },
        }
    }

    #[test]
    fn consolidation_sums_equal_outputs_and_drops_what_cancels() {
        let edge = |in_static| Output::Edge {
            artifact: 0,
            caller: 1,
            callee: 2,
            in_static,
        };
        let mut items = vec![
            (reach(3), 1),
            (edge(false), 1),
            (edge(true), 1),
            (reach(1), 1),
            (edge(false), -1),
            (reach(3), 1),
        ];
        consolidate(&mut items);
        items.sort();
        assert_eq!(items, [(edge(true), 1), (reach(1), 1), (reach(3), 2)]);

        // Distinct outputs stay as they are, but for a zero diff.
        let mut items = vec![(reach(3), 1), (edge(false), 0), (edge(true), -1)];
        consolidate(&mut items);
        items.sort();
        assert_eq!(items, [(edge(true), -1), (reach(3), 1)]);
    }

    #[test]
    fn changes_are_ordered_by_item_then_diff() {
        let reach = |artifact: &str, effective| ChangeItem::Reach {
            artifact: artifact.to_string(),
            reach: Reach {
                static_: 1,
                runtime: 0,
                effective,
            },
        };
        let change = |diff, item| Change { at: 5, diff, item };
        let expected = vec![
            change(-1, reach("a", 1)),
            change(1, reach("a", 1)),
            change(1, reach("a", 2)),
            change(-1, reach("b", 0)),
            change(1, reach("b", 3)),
        ];
        for order in [[3, 0, 4, 2, 1], [4, 3, 2, 1, 0], [0, 1, 2, 3, 4]] {
            let shuffled = order.map(|i| expected[i].clone()).to_vec();
            assert_eq!(sorted(shuffled), expected);
        }
    }

    proptest::proptest! {
        /// The keyed sort gives the order of a plain sort by item and diff,
        /// with names that share long prefixes, differ only in trailing
        /// zero bytes, or run past the keys' eight bytes.
        #[test]
        fn keyed_order_is_the_items_order(
            items in proptest::collection::vec(
                (0u8..3, "[ab\\x00]{0,3}", "[ab\\x00]{0,10}", "[ab\\x00]{0,10}", 0u64..3, -1i64..=1),
                0..40,
            )
        ) {
            let changes: Vec<Change> = (items.into_iter())
                .map(|(kind, artifact, caller, callee, n, diff)| {
                    let artifact = format!("{artifact}{}", if kind == 2 { "-long-artifact" } else { "" });
                    let item = match kind {
                        0 | 2 => ChangeItem::Edge {
                            artifact,
                            edge: tracemerge_records::ObservedEdge {
                                caller,
                                callee,
                                hits: n,
                                first_seen: 0,
                                last_seen: 0,
                                sources: 1,
                                in_static: false,
                                estimated: false,
                            },
                        },
                        _ => ChangeItem::Reach {
                            artifact,
                            reach: Reach { static_: n, runtime: 0, effective: 0 },
                        },
                    };
                    Change { at: 1, diff, item }
                })
                .collect();
            let mut expected = changes.clone();
            expected.sort_by(|a, b| (&a.item, a.diff).cmp(&(&b.item, b.diff)));
            proptest::prop_assert_eq!(sorted(changes), expected);
        }
    }

    /// The change lines a sink makes of `times`, by time.
    fn lines(names: Names, times: BTreeMap<Time, Vec<(Output, i64)>>) -> Vec<Vec<Change>> {
        let changes = Arc::new(Mutex::new(Vec::new()));
        let seen = changes.clone();
        let events: Events = Arc::new(Mutex::new(Box::new(move |event| {
            if let Event::Change(change) = event {
                seen.lock().unwrap().push(change);
            }
        })));
        let mut sink = feed_sink(names, events);
        sink.take(SinkMsg::Final {
            times,
            stats: BTreeMap::new(),
            frontier: None,
        });
        assert!(!sink.failed.load(Ordering::Relaxed));
        let changes = std::mem::take(&mut *changes.lock().unwrap());
        let mut by_time: BTreeMap<Time, Vec<Change>> = BTreeMap::new();
        for change in changes {
            by_time.entry(change.at).or_default().push(change);
        }
        by_time.into_values().collect()
    }

    proptest::proptest! {
        /// A sink's lines come in the feed's order, by item and then diff,
        /// within each time: the edges' lines, sorted by edge name and each
        /// edge's own pair by item, ahead of the others. Names share long
        /// prefixes, differ only in trailing zero bytes, or run past the
        /// keys' eight bytes.
        #[test]
        fn a_sinks_lines_are_in_the_feeds_order(
            pool in proptest::collection::vec((0usize..3, "[ab\\x00]{0,4}"), 1..8),
            edges in proptest::collection::btree_map((0usize..8, 0usize..8, 0usize..8), (0u64..4, 0u64..4, 0u8..3), 0..30),
        ) {
            let mut interner = Interner::new();
            // Many names share their first eight bytes, or more.
            let prefixes = ["", "_ZN4core", "ababab"];
            let ids: Vec<Id> = (pool.iter())
                .map(|(p, rest)| interner.intern(&format!("{}{rest}", prefixes[*p])))
                .collect();
            let id = |i: usize| ids[i % ids.len()];
            let stats = |hits| EdgeStats { hits, first_seen: 0, last_seen: hits, sources: 1, estimated: false };
            let mut times: BTreeMap<Time, Vec<(Output, i64)>> = BTreeMap::new();
            let mut keys = std::collections::BTreeSet::new();
            for ((a, u, v), (first, then, what)) in edges {
                let (artifact, caller, callee) = (id(a), id(u), id(v));
                if !keys.insert((artifact, caller, callee)) {
                    continue;
                }
                let edge = Output::Edge { artifact, caller, callee, in_static: first > 1 };
                let at = |hits| Output::EdgeStats { artifact, caller, callee, stats: stats(hits) };
                times.entry(1).or_default().extend([(edge.clone(), 1), (at(first), 1)]);
                let later = times.entry(2).or_default();
                match what {
                    // The statistics change (or stay, which makes no line).
                    0 => later.extend([(at(first), -1), (at(then), 1)]),
                    // The edge expires.
                    1 => later.extend([(edge, -1), (at(first), -1)]),
                    _ => {}
                }
            }
            times.entry(2).or_default().push((reach(1), 1));
            let made = lines(interner.names(), times);
            for lines in made {
                let mut expected = lines.clone();
                expected.sort_by(|a, b| (&a.item, a.diff).cmp(&(&b.item, b.diff)));
                proptest::prop_assert_eq!(lines, expected);
            }
        }
    }

    #[test]
    fn a_sound_output_makes_a_report() {
        assert_eq!(poll(vec![(reach(1), 1)]), (None, 1));
    }

    /// In every build, not only with debug assertions: a report item held
    /// twice stops the run with a fault instead of a wrong report.
    #[test]
    fn an_item_held_twice_is_a_fault_and_no_report() {
        let (fault, reports) = poll(vec![(reach(1), 2)]);
        assert!(matches!(
            fault,
            Some(Fault::Multiplicity {
                count: 2,
                as_of: 2,
                ..
            })
        ));
        assert_eq!(reports, 0);
    }

    #[test]
    fn an_edge_part_removed_while_absent_is_a_fault() {
        let edge = Output::Edge {
            artifact: 0,
            caller: 0,
            callee: 0,
            in_static: true,
        };
        let (fault, reports) = poll(vec![(edge, -1)]);
        assert!(matches!(
            fault,
            Some(Fault::EdgePart {
                at: 1,
                source: EdgePartError::Unbalanced {
                    part: EdgePart::InStatic(true),
                    diff: -1,
                    held: None,
                },
            })
        ));
        assert_eq!(reports, 0);
    }
}
