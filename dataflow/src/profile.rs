//! Where a worker spends its time and memory: busy time per operator and
//! the updates each arrangement holds, from timely's and differential's
//! event logs. For diagnosis (`tracemerge merge --profile`); it costs a
//! little time per scheduling, so it is off unless asked for.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write;
use std::rc::Rc;
use std::time::Duration;

use differential_dataflow::logging::{DifferentialEvent, DifferentialEventBuilder};
use timely::logging::{StartStop, TimelyEvent, TimelyEventBuilder};

/// What the logs of one worker add up to.
#[derive(Debug, Default)]
pub struct Profile {
    names: HashMap<usize, String>,
    busy: HashMap<usize, Duration>,
    running: HashMap<usize, Duration>,
    held: HashMap<usize, Held>,
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
    /// The most updates the arrangements held at once, summed over them
    /// (each at its own peak): what the live state costs.
    pub fn held_peak(&self) -> u64 {
        self.held.values().map(|h| h.peak as u64).sum()
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
        out
    }
}
