//! CPU time of the engine's threads: where a run's work went. A run's wall
//! time cannot fall below its busiest thread's CPU time however many cores
//! it gets, so these say how far more cores (and more workers) could take
//! a run, on a machine that has too few to show it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What an engine thread does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// The calling thread: ingest (interning, watermarks, lateness) and
    /// dealing the records out.
    Reader,
    /// A worker's aggregator.
    Aggregator,
    /// A timely worker: the dataflow.
    Worker,
    /// Worker 0's sink: the reports and the change feed.
    Sink,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Aggregator => "aggregator",
            Role::Worker => "worker",
            Role::Sink => "sink",
        }
    }
}

/// One engine thread's CPU time over a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadTime {
    pub role: Role,
    /// Which one of its role: the worker's index (an aggregator's is its
    /// worker's).
    pub index: usize,
    pub cpu: Duration,
}

/// A table of `times`, busiest first, with their sum: what `--profile`
/// prints.
pub fn table(times: &[ThreadTime]) -> String {
    use std::fmt::Write;
    let total: Duration = times.iter().map(|t| t.cpu).sum();
    let mut busiest: Vec<&ThreadTime> = times.iter().collect();
    busiest.sort_by_key(|t| std::cmp::Reverse(t.cpu));
    let mut out = format!("CPU time by thread (total {total:.2?}):\n");
    for t in busiest {
        let share = 100.0 * t.cpu.as_secs_f64() / total.as_secs_f64().max(1e-9);
        let name = format!("{} {}", t.role.name(), t.index);
        let _ = writeln!(out, "  {share:5.1}%  {:>10.2?}  {name}", t.cpu);
    }
    out
}

/// The calling thread's CPU time so far, where the platform tells it.
pub fn thread_cpu() -> Option<Duration> {
    #[cfg(unix)]
    {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `now` is a valid timespec for the call to fill in.
        let ok = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) } == 0;
        ok.then(|| Duration::new(now.tv_sec as u64, now.tv_nsec as u32))
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The threads' times as they end, gathered for the run's end.
#[derive(Clone, Default)]
pub(crate) struct ThreadTimes(Arc<Mutex<Vec<ThreadTime>>>);

impl ThreadTimes {
    /// Records the calling thread's CPU time since `start` (its start:
    /// zero) as `role`'s `index`.
    pub(crate) fn record(&self, role: Role, index: usize, start: Duration) {
        if let Some(now) = thread_cpu() {
            let cpu = now.saturating_sub(start);
            (self.0.lock().expect("thread times")).push(ThreadTime { role, index, cpu });
        }
    }

    /// Every time recorded, by role and index.
    pub(crate) fn take(&self) -> Vec<ThreadTime> {
        let mut times = std::mem::take(&mut *self.0.lock().expect("thread times"));
        times.sort_by_key(|t| (t.role, t.index));
        times
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_busy_thread_counts_its_own_time_only() {
        let times = ThreadTimes::default();
        let spin = |until: Duration| {
            let start = thread_cpu().expect("thread CPU time");
            let mut x = 0u64;
            while thread_cpu().expect("thread CPU time") - start < until {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        };
        let busy = {
            let times = times.clone();
            std::thread::spawn(move || {
                spin(Duration::from_millis(30));
                times.record(Role::Worker, 1, Duration::ZERO);
            })
        };
        let idle = {
            let times = times.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(60));
                times.record(Role::Worker, 0, Duration::ZERO);
            })
        };
        busy.join().expect("busy thread");
        idle.join().expect("idle thread");
        let times = times.take();
        assert_eq!(times.iter().map(|t| t.index).collect::<Vec<_>>(), [0, 1]);
        // A sleeping thread's wall time is not CPU time; a spinning one's is.
        assert!(times[0].cpu < Duration::from_millis(20), "{times:?}");
        assert!(times[1].cpu >= Duration::from_millis(30), "{times:?}");
    }
}
