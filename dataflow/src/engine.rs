//! Runs the merge dataflow on timely workers and turns its output into
//! reports and a change feed.
//!
//! The calling thread reads the record stream and runs [`Ingest`]; updates
//! of the static side are dealt round-robin to the workers, sightings go to
//! the [`Aggregator`] of the worker that owns their key (only the local
//! ones are kept; every process reads the same stream), watermarks advance
//! every worker's inputs. Each local worker's aggregator runs on a thread
//! of its own between the reader and the worker: it evaluates at a round
//! once the frontier has passed it (nothing at or before it can arrive any
//! more), so it never has to take back what it said, and sends the worker
//! the few updates that come of it.
//! All output is exchanged to worker 0, which hands each time's output,
//! once the dataflow's frontier has passed it, to a sink thread of its own
//! that keeps the accumulated state and builds the change feed and the
//! reports (`sink.rs`). A worker stops taking input while the
//! dataflow is more than [`Options::rounds_in_flight`] watermarks behind; the
//! bounded channels then hold back the reader, so the lag, and with it the
//! state, stays bounded however fast the records come.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, Sender, TryRecvError};
use differential_dataflow::trace::ExertionLogic;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange as ExchangePact;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Probe;
use timely::dataflow::ProbeHandle;
use tracemerge_records::{Change, Config, Record, Report, Stats, Time};

use crate::aggregate::{Aggregator, Sighting};
use crate::complete::keep_list;
use crate::ingest::{move_all, Ingest, Ingestible, Outcome, Released};
use crate::merge::{build, Inputs};
use crate::model::{Output, Timed, Update};
use crate::sink::{consolidate, panic_message, Pending, Sink, SinkThread, StatsToSink};
use crate::symbols::Names;
use crate::threads::{thread_cpu, Role, ThreadTime, ThreadTimes};
use crate::verdict::Quarantine;

/// What the engine tells its caller.
#[derive(Debug)]
pub enum Event {
    /// A change of the output, in event-time order, once it is final.
    Change(Change),
    /// A report: one per advancing watermark if asked for, and a final one.
    Report { report: Report, last: bool },
    /// A record rejected under `keep_going`.
    Invalid(String),
    /// Worker 0's operator profile, at the end of a run with `profile` set.
    Profile(crate::profile::Profile),
    /// Every output before this event time is final and has been delivered
    /// (`None`: the run is over). Sent whenever the dataflow's frontier moves,
    /// so a caller can tell when the verdicts have caught up with its input.
    Progress(Option<Time>),
    /// The CPU time of each of the engine's threads in this process, once
    /// they have all ended (on a platform that tells it): the last event
    /// of a run whose engine did not fail (a run stopped by a bad record
    /// sends it too).
    Threads(Vec<ThreadTime>),
}

/// How to run the engine.
pub struct Options {
    /// Timely's configuration: threads, processes, progress mode.
    pub timely: timely::Config,
    /// Records per batch handed to the workers.
    pub batch: usize,
    /// Build a report at every watermark that advances event time.
    pub watermark_reports: bool,
    /// Emit the change feed.
    pub changes: bool,
    /// Count bad records in `stats.invalid` and go on, instead of stopping.
    pub keep_going: bool,
    /// How many watermark rounds the dataflow may lag behind the input
    /// before a worker stops taking input and catches up. A few rounds in
    /// flight let consecutive rounds share work; an unbounded lag would hold
    /// back compaction (joins may only compact to the frontier of their other
    /// input), so state and the cost of every join would grow with the
    /// stream instead of the window.
    pub rounds_in_flight: usize,
    /// With neither per-watermark reports nor the change feed, a watermark
    /// starts a round of the dataflow only once this many records have come
    /// since the last round (1: every watermark). The final report is the
    /// same either way; a stream with a watermark every few records no
    /// longer pays a round (about a millisecond) for each. Progress events
    /// then come at rounds only.
    pub round_every: usize,
    /// Record worker 0's busy time per operator and arrangement sizes, and
    /// send them as [`Event::Profile`] at the end.
    pub profile: bool,
    /// Only the final report is wanted (no per-watermark reports, no change
    /// feed): the live evidence enters the dataflow once, at the end, as
    /// the aggregator has it then, so the dataflow never works through the
    /// edges that came and went before. The aggregator still expires
    /// sightings at every round, so memory follows the window. Ignored
    /// when reports or changes are asked for.
    pub final_only: bool,
}

impl Options {
    /// `workers` threads in this process; final report only.
    pub fn threads(workers: usize) -> Self {
        let mut timely = timely::Config::process(workers.max(1));
        tune(&mut timely);
        Options {
            timely,
            batch: 1024,
            watermark_reports: false,
            changes: false,
            keep_going: false,
            rounds_in_flight: 4,
            round_every: 1,
            profile: false,
            final_only: false,
        }
    }
}

/// Merge effort an idle arrangement spends per scheduling, in updates.
const IDLE_MERGE_EFFORT: usize = 1000;

thread_local! {
    /// Whether this worker has input to take or a round in flight. Then an
    /// arrangement merges only as fast as updates come into it
    /// (differential's amortised merging); otherwise it also merges on its
    /// own, toward one batch. Forcing that merge while rounds run made every
    /// round copy part of the largest batches (a static graph of millions of
    /// edges) again: after a load, most of a one-edge update's time.
    static BUSY: Cell<bool> = const { Cell::new(false) };
}

/// Applies the differential settings every run needs: idle merging, so
/// traces compact while the stream is quiet, and only then.
pub fn tune(config: &mut timely::Config) {
    differential_dataflow::configure(
        &mut config.worker,
        &differential_dataflow::Config::default()
            .idle_merge_effort(Some(IDLE_MERGE_EFFORT as isize)),
    );
    let logic: ExertionLogic = Arc::new(|batches: &[(usize, usize, usize)]| {
        let merging = batches.iter().any(|&(_, count, _)| count > 1);
        let non_empty = batches.iter().filter(|&&(_, _, len)| len > 0).count();
        if !merging && non_empty <= 1 {
            return None;
        }
        // While busy, the least effort that keeps the operator scheduled,
        // so that it goes on merging as soon as the worker is idle.
        Some(if BUSY.get() { 1 } else { IDLE_MERGE_EFFORT })
    });
    config
        .worker
        .set::<ExertionLogic>("differential/default_exert_logic".to_string(), logic);
}

/// Why a run stopped early.
#[derive(Debug, thiserror::Error)]
pub enum RunError<E> {
    /// A bad record; everything before it was merged and reported.
    #[error("{0}")]
    Record(E),
    /// The workers could not start or failed (for example, a cluster peer
    /// was unreachable).
    #[error("engine: {0}")]
    Engine(String),
    /// The engine's output broke one of its own invariants: a bug, reported
    /// instead of a wrong report.
    #[error(transparent)]
    Fault(#[from] Fault),
}

/// An invariant of the engine's output that did not hold, checked in every
/// build: each report item is held once or not at all.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    /// A report item (other than an edge part) held `count` times when the
    /// report as of `as_of` was built.
    #[error("engine fault: {output:?} has multiplicity {count} (report as of {as_of})")]
    Multiplicity {
        as_of: Time,
        output: Output,
        count: i64,
    },
    /// A part of an observed edge added twice or removed while absent, at
    /// event time `at`.
    #[error("engine fault at {at}: {source}")]
    EdgePart {
        at: Time,
        source: crate::model::EdgePartError,
    },
}

/// The caller's event callback, shared with worker 0.
pub(crate) type Events = Arc<Mutex<Box<dyn FnMut(Event) + Send>>>;

enum Msg {
    Updates(Vec<Timed>),
    /// The inputs advance to `frontier`, after the aggregator's updates of
    /// the rounds before it.
    Advance {
        evaluated: Vec<Timed>,
        frontier: Time,
    },
    Report {
        as_of: Time,
        stats: Stats,
        last: bool,
    },
    /// The stream has ended: the aggregator's last updates.
    Finish {
        evaluated: Vec<Timed>,
    },
}

/// What the reader sends the aggregator of a local worker's shard.
enum ToAggregator {
    Sightings(Vec<Sighting>),
    /// A watermark round at `round`; the worker's inputs advance to
    /// `frontier`.
    Advance {
        round: Time,
        frontier: Time,
    },
    /// The stream has ended at the `last` watermark; the aggregator is
    /// evaluated at every later time up to `until` (all of them: `None`).
    /// The final report describes `as_of`.
    Finish {
        last: Option<Time>,
        until: Option<Time>,
        as_of: Time,
    },
}

/// What the reader gathers for one local worker until the next flush.
#[derive(Default)]
struct Outbox {
    updates: Vec<Timed>,
    sightings: Vec<Sighting>,
}

/// Runs the aggregator of local worker `local`'s shard, on a thread of its
/// own between the reader and the worker: takes the sightings the reader
/// deals it, evaluates at each round once the frontier has passed it
/// (nothing at or before the round can arrive any more, so the aggregator
/// never has to take back what it said), hands the edges' statistics to
/// the sink and sends the worker the rest.
///
/// On its own thread because neither neighbour has room for it: the
/// worker that feeds the sink (worker 0) is the busiest thread of a
/// streaming run, and the reader the busiest of a `merge` run, where the
/// dataflow waits for the end.
fn run_aggregator(
    from_reader: Receiver<ToAggregator>,
    emptied: Sender<Vec<Sighting>>,
    to_worker: Sender<Msg>,
    wake: impl Fn(),
    shared: &Shared,
    local: usize,
) {
    let _guard = FailOnPanic(shared.failed.clone());
    let mut aggregator = Aggregator::new(&shared.config);
    if !shared.watched {
        aggregator = aggregator.without_running_stats();
    }
    // Watermark rounds whose aggregates are not final yet.
    let mut rounds: VecDeque<Time> = VecDeque::new();
    // The size of the last round's updates: the next round's, most likely
    // (the list goes to the worker, so it cannot be kept).
    let mut last_round = 0;
    for msg in from_reader {
        let mut evaluated = Vec::new();
        let msg = match msg {
            ToAggregator::Sightings(mut batch) => {
                for sighting in batch.drain(..) {
                    aggregator.add(sighting);
                }
                // Back to the reader to fill again (or dropped, if it has
                // enough): a batch grown anew each time faults in fresh
                // pages, which the kernel zeroes.
                let _ = emptied.try_send(batch);
                continue;
            }
            ToAggregator::Advance { round, frontier } => {
                evaluated.reserve(last_round);
                rounds.push_back(round);
                while rounds.front().is_some_and(|r| *r < frontier) {
                    let round = rounds.pop_front().expect("a round");
                    aggregator.evaluate(round, &mut evaluated);
                }
                if shared.final_only {
                    evaluated.clear();
                }
                last_round = evaluated.len();
                hand_over(&mut evaluated, shared);
                Msg::Advance {
                    evaluated,
                    frontier,
                }
            }
            ToAggregator::Finish { last, until, as_of } => {
                for time in rounds.drain(..).chain(last) {
                    if aggregator.evaluated().is_none_or(|e| time > e) {
                        aggregator.evaluate(time, &mut evaluated);
                    }
                }
                while let Some(time) = aggregator.next_change() {
                    if until.is_some_and(|u| time > u) {
                        break;
                    }
                    aggregator.evaluate(time, &mut evaluated);
                }
                if shared.final_only {
                    evaluated.clear();
                    aggregator.snapshot(as_of, &mut evaluated);
                } else if !shared.watched {
                    let stats = aggregator.edge_stats();
                    match &shared.stats_to_sink {
                        // In one process, straight to the sink in its own
                        // form: no list of updates to convert (at a million
                        // live edges, two copies of ~70 MB each).
                        Some(sink) => sink.put(as_of, aggregator.live_edges(), stats),
                        None => evaluated
                            .extend(stats.map(|(edge, s)| Update::EdgeStats(edge, s).at(as_of, 1))),
                    }
                }
                hand_over(&mut evaluated, shared);
                Msg::Finish { evaluated }
            }
        };
        // An error: the worker is gone, and has failed the run.
        let _ = to_worker.send(msg);
        wake();
    }
    // (A thread of its own: its CPU time since it started.)
    shared
        .thread_times
        .record(Role::Aggregator, local, Duration::ZERO);
}

/// Moves the edges' statistics out of an aggregator's updates to the sink,
/// which takes them past the dataflow (in one process).
fn hand_over(evaluated: &mut Vec<Timed>, shared: &Shared) {
    if let Some(stats) = &shared.stats_to_sink {
        stats.take_from(evaluated);
    }
}

/// Runs the engine over `records` (whole [`Record`]s, or
/// [`tracemerge_records::Input`]s with compact sightings). Events reach `on_event` from worker 0's
/// sink thread, in event-time order. On the first bad record (without
/// `keep_going`) the records accepted so far are still merged and
/// reported, then the error returns.
pub fn run<E, R, I, F>(
    records: I,
    config: &Config,
    options: Options,
    on_event: F,
) -> Result<Stats, RunError<E>>
where
    E: std::fmt::Display,
    R: Ingestible,
    I: IntoIterator<Item = Result<R, E>>,
    F: FnMut(Event) + Send + 'static,
{
    // The calling thread's CPU time before the run, which is not the run's.
    let start = thread_cpu().unwrap_or_default();
    let (threads, process) = match &options.timely.communication {
        timely::CommunicationConfig::Cluster {
            threads, process, ..
        } => (*threads, *process),
        timely::CommunicationConfig::Process(n) | timely::CommunicationConfig::ProcessBinary(n) => {
            (*n, 0)
        }
        timely::CommunicationConfig::Thread => (1, 0),
    };
    let processes = match &options.timely.communication {
        timely::CommunicationConfig::Cluster { addresses, .. } => addresses.len(),
        _ => 1,
    };
    let peers = threads * processes;
    let first_local = process * threads;

    let mut senders: Vec<Sender<Msg>> = Vec::with_capacity(threads);
    let mut receivers = HashMap::new();
    for local in 0..threads {
        let (tx, rx) = bounded(64);
        senders.push(tx);
        receivers.insert(first_local + local, rx);
    }
    let receivers = Arc::new(Mutex::new(receivers));
    let wake = Wake::new(threads);
    let on_event: Events = Arc::new(Mutex::new(Box::new(on_event)));
    let round_every = if options.watermark_reports || options.changes {
        1
    } else {
        options.round_every
    };
    let mut ingest = Ingest::new(config.clone(), round_every);
    let shared = Shared {
        config: config.clone(),
        names: ingest.names(),
        quarantine: ingest.quarantine(),
        changes: options.changes,
        rounds_in_flight: options.rounds_in_flight.max(1),
        profile: options.profile,
        final_only: options.final_only && !options.watermark_reports && !options.changes,
        watched: options.watermark_reports || options.changes,
        events: on_event.clone(),
        failed: Arc::new(AtomicBool::new(false)),
        fault: Arc::new(Mutex::new(None)),
        sink_panicked: Arc::new(Mutex::new(None)),
        stats_to_sink: (processes == 1).then(StatsToSink::default),
        thread_times: ThreadTimes::default(),
    };
    let failed = shared.failed.clone();
    let fault = shared.fault.clone();
    let sink_panicked = shared.sink_panicked.clone();
    let thread_times = shared.thread_times.clone();
    let for_aggregators = shared.clone();
    let workers = wake.clone();
    let guards = timely::execute(options.timely, move |worker| {
        let rx = receivers
            .lock()
            .expect("receivers")
            .remove(&worker.index())
            .expect("one receiver per local worker");
        workers.register(worker.index() - first_local);
        run_worker(worker, rx, shared.clone());
    })
    .map_err(RunError::Engine)?;

    let mut to_aggregators: Vec<Sender<ToAggregator>> = Vec::with_capacity(threads);
    let (emptied, refill) = bounded::<Vec<Sighting>>(4 * threads);
    let mut aggregators = Vec::with_capacity(threads);
    for (local, to_worker) in senders.iter().enumerate() {
        let (tx, rx) = bounded(64);
        to_aggregators.push(tx);
        let (to_worker, wake, shared) = (to_worker.clone(), wake.clone(), for_aggregators.clone());
        let emptied = emptied.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("tracemerge-aggregator-{local}"))
            .spawn(move || {
                run_aggregator(
                    rx,
                    emptied,
                    to_worker,
                    || wake.worker(local),
                    &shared,
                    local,
                )
            });
        match spawned {
            Ok(handle) => aggregators.push(handle),
            Err(e) => {
                failed.store(true, Ordering::Relaxed);
                return Err(RunError::Engine(format!("a thread for an aggregator: {e}")));
            }
        }
    }
    drop(for_aggregators);

    let mut outboxes: Vec<Outbox> = (0..threads).map(|_| Outbox::default()).collect();
    let mut released = Released::default();
    let mut dealt = 0usize;
    let is_local = |worker: usize| worker >= first_local && worker < first_local + threads;
    // Static updates round-robin over all workers of the cluster, sightings
    // to the aggregator of the worker that owns their key; this process
    // keeps its own.
    let mut deal = |released: &mut Released, outboxes: &mut Vec<Outbox>| {
        if peers == 1 {
            // One worker and one shard: the lists move whole.
            move_all(&mut released.updates, &mut outboxes[0].updates);
            move_all(&mut released.sightings, &mut outboxes[0].sightings);
            return;
        }
        for t in released.updates.drain(..) {
            let worker = dealt % peers;
            dealt += 1;
            if is_local(worker) {
                outboxes[worker - first_local].updates.push(t);
            }
        }
        keep_list(&mut released.updates);
        for s in released.sightings.drain(..) {
            let worker = s.shard(peers);
            if is_local(worker) {
                outboxes[worker - first_local].sightings.push(s);
            }
        }
    };
    let mut in_batch = 0usize;
    let batch = options.batch.max(1);
    let flush = |outboxes: &mut Vec<Outbox>| {
        for (local, outbox) in outboxes.iter_mut().enumerate() {
            if !outbox.updates.is_empty() {
                let _ = senders[local].send(Msg::Updates(std::mem::take(&mut outbox.updates)));
                wake.worker(local);
            }
            if !outbox.sightings.is_empty() {
                let empty = (refill.try_recv()).unwrap_or_else(|_| Vec::with_capacity(batch));
                let sightings = std::mem::replace(&mut outbox.sightings, empty);
                let _ = to_aggregators[local].send(ToAggregator::Sightings(sightings));
            }
        }
    };
    let broadcast = |msg: &dyn Fn() -> Msg| {
        for (local, tx) in senders.iter().enumerate() {
            let _ = tx.send(msg());
            wake.worker(local);
        }
    };
    let mut failure = None;
    for record in records {
        // A worker died: its peers stop, so stop reading.
        if failed.load(Ordering::Relaxed) {
            break;
        }
        let record = match record {
            Ok(record) => record,
            Err(e) if options.keep_going => {
                ingest.count_invalid();
                (on_event.lock().expect("events"))(Event::Invalid(e.to_string()));
                continue;
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        let outcome = ingest.push(record, &mut released);
        deal(&mut released, &mut outboxes);
        match outcome {
            Outcome::Applied => {
                in_batch += 1;
                if in_batch >= batch {
                    flush(&mut outboxes);
                    in_batch = 0;
                }
            }
            Outcome::Advanced(at) => {
                flush(&mut outboxes);
                in_batch = 0;
                if options.watermark_reports {
                    let stats = ingest.stats();
                    broadcast(&|| Msg::Report {
                        as_of: at,
                        stats,
                        last: false,
                    });
                }
                // (Through the aggregators, which send the workers their
                // updates before the advance.)
                let frontier = ingest.frontier();
                for tx in &to_aggregators {
                    let _ = tx.send(ToAggregator::Advance {
                        round: at,
                        frontier,
                    });
                }
            }
            Outcome::Late
            | Outcome::Duplicate
            | Outcome::Passed
            | Outcome::Ignored
            | Outcome::Names => {}
        }
    }
    let last = ingest.finish(&mut released);
    deal(&mut released, &mut outboxes);
    flush(&mut outboxes);
    let (as_of, stats) = (ingest.as_of(), ingest.stats());
    // Only the change feed shows what happens after the final report's time.
    let until = (!options.changes).then_some(as_of);
    for tx in &to_aggregators {
        let _ = tx.send(ToAggregator::Finish { last, until, as_of });
    }
    broadcast(&|| Msg::Report {
        as_of,
        stats,
        last: true,
    });
    drop(to_aggregators);
    drop(senders);
    // The workers' input ends once their aggregators are done too.
    let mut aggregator_failed = None;
    for handle in aggregators {
        if let Err(panic) = handle.join() {
            aggregator_failed.get_or_insert(panic_message(&*panic));
        }
    }
    for result in guards.join() {
        result.map_err(|e| RunError::Engine(format!("a worker failed: {e}")))?;
    }
    if let Some(message) = aggregator_failed {
        return Err(RunError::Engine(format!(
            "a worker failed: its aggregator: {message}"
        )));
    }
    if let Some(message) = sink_panicked.lock().expect("panic slot").take() {
        return Err(RunError::Engine(format!(
            "a worker failed: worker 0's sink: {message}"
        )));
    }
    if let Some(fault) = fault.lock().expect("fault").take() {
        return Err(RunError::Fault(fault));
    }
    thread_times.record(Role::Reader, process, start);
    (on_event.lock().expect("events"))(Event::Threads(thread_times.take()));
    match failure {
        Some(e) => Err(RunError::Record(e)),
        None => Ok(stats),
    }
}

/// The local workers' threads, so that the reader can wake one that waits
/// for input: a parked worker otherwise sleeps out its park timeout before
/// it looks at its channel again, and a round would wait for that.
#[derive(Clone)]
struct Wake(Arc<Mutex<Vec<Option<std::thread::Thread>>>>);

impl Wake {
    fn new(threads: usize) -> Self {
        Wake(Arc::new(Mutex::new(vec![None; threads])))
    }

    /// Called on the worker's own thread before it takes input.
    fn register(&self, local: usize) {
        self.0.lock().expect("workers")[local] = Some(std::thread::current());
    }

    /// Unparks a worker (or makes its next park return at once).
    fn worker(&self, local: usize) {
        if let Some(thread) = &self.0.lock().expect("workers")[local] {
            thread.unpark();
        }
    }
}

/// What every worker is given.
#[derive(Clone)]
struct Shared {
    config: Config,
    names: Names,
    quarantine: Quarantine,
    changes: bool,
    rounds_in_flight: usize,
    profile: bool,
    final_only: bool,
    /// Whether the edges' statistics are seen as they change: in
    /// per-watermark reports or the change feed. If not, the aggregators
    /// give them once, at the end.
    watched: bool,
    events: Events,
    /// Set when a worker panics. Its peers would otherwise wait forever for
    /// its progress; they stop instead, and the run fails.
    failed: Arc<AtomicBool>,
    /// The fault worker 0's sink found; it raises `failed` too.
    fault: Arc<Mutex<Option<Fault>>>,
    /// What the sink thread panicked with (it runs the caller's event
    /// callback); it raises `failed` too.
    sink_panicked: Arc<Mutex<Option<String>>>,
    /// Where the aggregators put the edges' statistics for the sink, past
    /// the dataflow; `None` in a cluster, where they go through it.
    stats_to_sink: Option<StatsToSink>,
    /// Where each thread puts its CPU time as it ends.
    thread_times: ThreadTimes,
}

/// Raises [`Shared::failed`] if its worker unwinds.
struct FailOnPanic(Arc<AtomicBool>);

impl Drop for FailOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::Relaxed);
        }
    }
}

fn run_worker(worker: &mut timely::worker::Worker, rx: Receiver<Msg>, shared: Shared) {
    let _guard = FailOnPanic(shared.failed.clone());
    let failed = || shared.failed.load(Ordering::Relaxed);
    let profile = (shared.profile && worker.index() == 0).then(|| crate::profile::install(worker));
    let pending: Pending = Rc::new(RefCell::new(BTreeMap::new()));
    let (mut inputs, probe): (Inputs, ProbeHandle<Time>) = worker.dataflow(|scope| {
        let (inputs, items) = build(
            scope,
            &shared.config,
            shared.names.clone(),
            shared.quarantine.clone(),
        );
        let sink = pending.clone();
        // Worker 0 takes the items over (no copy); the probe after this
        // operator passes a time only once its items are in `pending`.
        let (probe, _) = items
            .inner
            .unary::<CapacityContainerBuilder<Vec<()>>, _, _, _>(
                ExchangePact::new(|_| 0),
                "Pending",
                |initial, _| {
                    drop(initial);
                    move |input, _| {
                        let mut sink = sink.borrow_mut();
                        input.for_each(|_, batch| {
                            let push = |items: &mut Vec<(Output, i64)>, item, diff: isize| {
                                if items.len() == items.capacity() && items.len() >= 1024 {
                                    // Before it doubles: drop what cancels
                                    // out and merge repeats.
                                    consolidate(items);
                                }
                                items.push((item, diff as i64));
                            };
                            // Items come in runs of one time: one lookup a run.
                            let mut batch = batch.drain(..).peekable();
                            while let Some((item, time, diff)) = batch.next() {
                                // (Sized for a round, up to where it is
                                // consolidated, so it does not regrow.)
                                let items =
                                    (sink.entry(time)).or_insert_with(|| Vec::with_capacity(1024));
                                push(items, item, diff);
                                while let Some((item, _, diff)) =
                                    batch.next_if(|(_, t, _)| *t == time)
                                {
                                    push(items, item, diff);
                                }
                            }
                        });
                    }
                },
            )
            .probe();
        (inputs, probe)
    });
    let mut sink = match worker.index() {
        0 => {
            let sink = Sink {
                frontier: None,
                state: Default::default(),
                edges: Default::default(),
                reports: VecDeque::new(),
                changes: shared.changes,
                config: shared.config.clone(),
                names: shared.names.clone(),
                events: shared.events.clone(),
                failed: shared.failed.clone(),
                fault: shared.fault.clone(),
            };
            let panicked = shared.sink_panicked.clone();
            let stats = shared.stats_to_sink.clone().unwrap_or_default();
            let times = shared.thread_times.clone();
            let sink = SinkThread::spawn(sink, pending, stats, panicked, times);
            Some(sink.expect("a thread for the sink"))
        }
        _ => None,
    };

    // Watermarks whose round the dataflow has not finished yet.
    let mut in_flight: VecDeque<Time> = VecDeque::new();
    let mut open = true;
    while open {
        if failed() {
            return abandon(worker);
        }
        let mut received = 0;
        loop {
            match rx.try_recv() {
                Ok(Msg::Updates(batch)) => {
                    for t in batch {
                        inputs.apply(t);
                    }
                    inputs.flush();
                    received += 1;
                }
                Ok(Msg::Advance {
                    evaluated,
                    frontier,
                }) => {
                    for t in evaluated {
                        inputs.apply(t);
                    }
                    inputs.advance_to(frontier);
                    in_flight.push_back(frontier);
                }
                Ok(Msg::Finish { evaluated }) => {
                    for t in evaluated {
                        inputs.apply(t);
                    }
                    inputs.flush();
                }
                Ok(Msg::Report { as_of, stats, last }) => {
                    if let Some(sink) = sink.as_mut() {
                        sink.report(as_of, stats, last);
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
            if received >= 4 {
                break;
            }
        }
        BUSY.set(received > 0 || !in_flight.is_empty());
        if received == 0 && open {
            worker.step_or_park(Some(Duration::from_micros(500)));
        } else {
            worker.step();
        }
        // Too far behind: catch up before taking more input (the channel
        // then fills and holds back the reader, so the lag stays bounded).
        loop {
            if let Some(sink) = sink.as_mut() {
                sink.poll(probe.with_frontier(|f| f.first().copied()));
            }
            while in_flight.front().is_some_and(|t| !probe.less_than(t)) {
                in_flight.pop_front();
            }
            if in_flight.len() <= shared.rounds_in_flight || failed() {
                break;
            }
            // Parks while another worker finishes the round (its progress
            // messages wake this one): spinning here took a core from it.
            worker.step_or_park(Some(Duration::from_millis(1)));
        }
    }
    drop(inputs);
    // What is left is the last rounds: no merging for its own sake.
    BUSY.set(true);
    while worker.step() {
        if failed() {
            return abandon(worker);
        }
        if let Some(sink) = sink.as_mut() {
            sink.poll(probe.with_frontier(|f| f.first().copied()));
        }
    }
    if let Some(mut sink) = sink.take() {
        sink.poll(None);
        // Every change and report delivered before the profile and the
        // run's end.
        drop(sink);
    }
    if let Some(profile) = profile {
        if let Some(mut registry) = worker.log_register() {
            registry.flush();
        }
        let mut profile = std::mem::take(&mut *profile.borrow_mut());
        profile.take_kept();
        (shared.events.lock().expect("events"))(Event::Profile(profile));
    }
    (shared.thread_times).record(Role::Worker, worker.index(), Duration::ZERO);
}

/// Drops this worker's dataflows, which can no longer complete: timely
/// would otherwise run them until they do once the worker returns.
fn abandon(worker: &mut timely::worker::Worker) {
    for dataflow in worker.installed_dataflows() {
        worker.drop_dataflow(dataflow);
    }
}

/// Runs the whole stream in this process on `workers` threads and returns
/// one report per advancing watermark (the state as of that watermark, with
/// the stats of the stream up to it).
pub fn reports_at_watermarks(
    records: &[Record],
    config: &Config,
    workers: usize,
) -> Result<Vec<Report>, MergeError> {
    let mut options = Options::threads(workers);
    options.watermark_reports = true;
    Ok(collect_reports(records, config, options)?
        .into_iter()
        .filter(|(_, last)| !last)
        .map(|(r, _)| r)
        .collect())
}

/// Runs the whole stream in this process on `workers` threads; the final report.
pub fn merge_records(
    records: &[Record],
    config: &Config,
    workers: usize,
) -> Result<Report, MergeError> {
    Ok(collect_reports(records, config, Options::threads(workers))?
        .pop()
        .expect("a run ends with its final report")
        .0)
}

/// Why a merge of records already read failed: records in memory are
/// never bad, so only the engine can fail.
pub type MergeError = RunError<std::convert::Infallible>;

/// Runs with explicit options and returns every report, the final one last.
pub fn collect_reports(
    records: &[Record],
    config: &Config,
    options: Options,
) -> Result<Vec<(Report, bool)>, MergeError> {
    let out = Arc::new(Mutex::new(Vec::new()));
    let sink = out.clone();
    let stream = records.iter().cloned().map(Ok);
    run(stream, config, options, move |event| {
        if let Event::Report { report, last } = event {
            sink.lock().expect("reports").push((report, last));
        }
    })?;
    let reports = std::mem::take(&mut *out.lock().expect("reports"));
    Ok(reports)
}
