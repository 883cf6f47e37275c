//! Where a worker spends its time and memory: busy time per operator and
//! the updates each arrangement holds, from timely's and differential's
//! event logs, and the table entries the per-artifact operators keep
//! (closures, rules), which they note after each time ([`note_kept`]). For
//! diagnosis (`tracemerge merge --profile`); the logs cost a little time
//! per scheduling, so they are off unless asked for.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::rc::Rc;
use std::time::Duration;

use differential_dataflow::logging::{DifferentialEvent, DifferentialEventBuilder};
use rustc_hash::FxHashMap;
use timely::logging::{StartStop, TimelyEvent, TimelyEventBuilder};

use crate::model::Artifact;

thread_local! {
    /// The entries each kind of per-artifact state keeps on this thread's
    /// worker.
    static KEPT: RefCell<BTreeMap<&'static str, Kept>> = RefCell::default();
}

/// The entries one kind of per-artifact state keeps, over its artifacts.
#[derive(Debug, Default, Clone)]
struct Kept {
    by_artifact: FxHashMap<Artifact, usize>,
    now: usize,
    peak: usize,
}

/// Notes that `state` (an operator's per-artifact tables) now keeps
/// `entries` for `artifact`: called after each time it applies, so a
/// profile can show what the state outside the arrangements costs.
pub(crate) fn note_kept(state: &'static str, artifact: Artifact, entries: usize) {
    KEPT.with_borrow_mut(|kept| {
        let kept = kept.entry(state).or_default();
        let before = kept.by_artifact.insert(artifact, entries).unwrap_or(0);
        kept.now = kept.now + entries - before;
        kept.peak = kept.peak.max(kept.now);
        if entries == 0 {
            kept.by_artifact.remove(&artifact);
        }
    });
}

/// What the logs of one worker add up to.
#[derive(Debug, Default)]
pub struct Profile {
    names: HashMap<usize, String>,
    busy: HashMap<usize, Duration>,
    running: HashMap<usize, Duration>,
    held: HashMap<usize, Held>,
    /// Per kind of per-artifact state: its entries at the end, at peak.
    kept: BTreeMap<&'static str, (usize, usize)>,
}

/// The updates one arrangement holds.
#[derive(Debug, Default, Clone, Copy)]
struct Held {
    now: i64,
    peak: i64,
    /// Every update ever inserted. Near `peak`, it means merges cancel
    /// nothing: the arrangement is not compacting.
    inserted: i64,
}

/// Starts recording on `worker`; read the result once the dataflow is built
/// and has run. (Until then the loggers share it, hence the `Rc`.)
pub fn install(worker: &mut timely::worker::Worker) -> Rc<RefCell<Profile>> {
    KEPT.with_borrow_mut(BTreeMap::clear);
    let profile = Rc::new(RefCell::new(Profile::default()));
    let Some(mut registry) = worker.log_register() else {
        return profile;
    };
    let timely_log = profile.clone();
    registry.insert::<TimelyEventBuilder, _>("timely", move |_, data| {
        let Some(data) = data else { return };
        let mut p = timely_log.borrow_mut();
        for (at, event) in data.iter() {
            match event {
                TimelyEvent::Operates(op) => {
                    p.names.insert(op.id, format!("{} {:?}", op.name, op.addr));
                }
                TimelyEvent::Schedule(s) => match s.start_stop {
                    StartStop::Start => {
                        p.running.insert(s.id, *at);
                    }
                    StartStop::Stop => {
                        if let Some(start) = p.running.remove(&s.id) {
                            *p.busy.entry(s.id).or_default() += at.saturating_sub(start);
                        }
                    }
                },
                _ => {}
            }
        }
    });
    let arrange_log = profile.clone();
    registry.insert::<DifferentialEventBuilder, _>("differential/arrange", move |_, data| {
        let Some(data) = data else { return };
        let mut p = arrange_log.borrow_mut();
        for (_, event) in data.iter() {
            let (operator, change) = match event {
                DifferentialEvent::Batch(b) => {
                    p.held.entry(b.operator).or_default().inserted += b.length as i64;
                    (b.operator, b.length as i64)
                }
                DifferentialEvent::Merge(m) => match m.complete {
                    Some(n) => (m.operator, n as i64 - (m.length1 + m.length2) as i64),
                    None => continue,
                },
                DifferentialEvent::Drop(d) => (d.operator, -(d.length as i64)),
                _ => continue,
            };
            let held = p.held.entry(operator).or_default();
            held.now += change;
            held.peak = held.peak.max(held.now);
        }
    });
    profile
}

impl Profile {
    /// Takes in what the per-artifact state of this thread's worker keeps
    /// ([`note_kept`]); at the end of the run.
    pub(crate) fn take_kept(&mut self) {
        self.kept = KEPT
            .with_borrow_mut(std::mem::take)
            .into_iter()
            .map(|(state, kept)| (state, (kept.now, kept.peak)))
            .collect();
    }

    /// The most updates the arrangements held at once and the most entries
    /// the per-artifact state kept, summed over them (each at its own
    /// peak): what the live state costs.
    pub fn held_peak(&self) -> u64 {
        let arranged: u64 = self.held.values().map(|h| h.peak as u64).sum();
        arranged
            + self
                .kept
                .values()
                .map(|&(_, peak)| peak as u64)
                .sum::<u64>()
    }

    /// The `top` busiest operators and the `top` largest arrangements.
    pub fn table(&self, top: usize) -> String {
        let name = |id: &usize| self.names.get(id).map_or("?", |n| n.as_str()).to_string();
        let mut out = String::new();
        let total: Duration = self.busy.values().sum();
        let mut busy: Vec<_> = self.busy.iter().collect();
        busy.sort_by_key(|b| std::cmp::Reverse(*b.1));
        let _ = writeln!(out, "busy time by operator (total {total:.2?}):");
        for (id, time) in busy.into_iter().take(top) {
            let share = 100.0 * time.as_secs_f64() / total.as_secs_f64().max(1e-9);
            let _ = writeln!(out, "  {share:5.1}%  {time:>10.2?}  #{id} {}", name(id));
        }
        let held_now: i64 = self.held.values().map(|h| h.now).sum();
        let mut held: Vec<_> = self.held.iter().collect();
        held.sort_by_key(|(_, h)| std::cmp::Reverse(h.peak));
        let _ = writeln!(
            out,
            "updates held by arrangements: {held_now} now, sum of peaks {}:",
            self.held_peak()
        );
        for (id, h) in held.into_iter().take(top) {
            let _ = writeln!(
                out,
                "  peak {:>10}  now {:>10}  inserted {:>11}  #{id} {}",
                h.peak,
                h.now,
                h.inserted,
                name(id)
            );
        }
        let _ = writeln!(out, "table entries kept by the per-artifact operators:");
        for (state, (now, peak)) in &self.kept {
            let _ = writeln!(out, "  peak {peak:>10}  now {now:>10}  {state}");
        }
        out
    }
}
