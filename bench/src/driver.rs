//! The engine as a service: [`tracemerge_dataflow::run`] on a thread of
//! its own, reading records from a channel, so that a suite can hand it a
//! change and time how long the verdicts take to catch up.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Receiver, Sender};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tracemerge_dataflow::threads::ThreadTime;
use tracemerge_dataflow::{run, Event, Ingestible, MergeError, Options};
use tracemerge_records::{Config, Record, Report, Time};

use crate::error::{boxed, BenchError, RecordError};

/// A running engine fed through a channel.
pub struct Driver {
    records: Option<Sender<Record>>,
    progress: Receiver<Option<Time>>,
    frontier: Option<Option<Time>>,
    last: Arc<Mutex<Option<Report>>>,
    engine: Option<JoinHandle<Result<(), MergeError>>>,
}

impl Driver {
    /// Starts the engine (it waits for records).
    pub fn start(config: &Config, options: Options) -> Driver {
        let (tx, rx) = unbounded::<Record>();
        let (progress_tx, progress) = unbounded();
        let last = Arc::new(Mutex::new(None));
        let slot = last.clone();
        let config = config.clone();
        let engine = std::thread::Builder::new()
            .name("tracemerge-engine".into())
            .spawn(move || {
                let on_event = move |event| match event {
                    Event::Progress(t) => {
                        let _ = progress_tx.send(t);
                    }
                    Event::Report { report, last: true } => {
                        *slot.lock().expect("report slot") = Some(report)
                    }
                    _ => {}
                };
                run(
                    rx.into_iter().map(Ok::<_, Infallible>),
                    &config,
                    options,
                    on_event,
                )
                .map(|_| ())
            })
            .expect("spawn the engine thread");
        Driver {
            records: Some(tx),
            progress,
            frontier: None,
            last,
            engine: Some(engine),
        }
    }

    /// Hands one record to the engine.
    pub fn send(&self, record: Record) {
        // A send fails only when the engine stopped; `wait` reports that.
        let _ = self.records.as_ref().expect("open").send(record);
    }

    /// Blocks until all output before `time` is final (the engine's
    /// frontier reached `time`).
    pub fn wait(&mut self, time: Time) -> Result<(), BenchError> {
        loop {
            if let Some(f) = self.frontier {
                if f.is_none_or(|f| f >= time) {
                    return Ok(());
                }
            }
            match self.progress.recv_timeout(Duration::from_secs(3600)) {
                Ok(f) => self.frontier = Some(f),
                Err(_) => return Err(BenchError::EngineStalled { time }),
            }
        }
    }

    /// Sends `records`, a watermark at `watermark` and one a millisecond
    /// later, and returns the time until every output at `watermark` is
    /// final. The second watermark closes the round: records at exactly
    /// `watermark` may still come after the first, so the aggregator
    /// evaluates that round only once event time has passed it.
    pub fn change(
        &mut self,
        records: impl IntoIterator<Item = Record>,
        watermark: Time,
    ) -> Result<Duration, BenchError> {
        let started = Instant::now();
        for r in records {
            self.send(r);
        }
        self.send(Record::Watermark { at: watermark });
        self.send(Record::Watermark { at: watermark + 1 });
        self.wait(watermark + 1)?;
        Ok(started.elapsed())
    }

    /// Ends the input and waits for the engine; the final report.
    pub fn finish(mut self) -> Result<Option<Report>, BenchError> {
        self.records.take();
        let engine = self.engine.take().expect("running");
        engine
            .join()
            .map_err(|_| BenchError::EnginePanicked)?
            .map_err(boxed)?;
        let report = self.last.lock().expect("report slot").take();
        Ok(report)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.records.take();
        if let Some(engine) = self.engine.take() {
            let _ = engine.join();
        }
    }
}

/// Latencies, kept in an HDR histogram (nanoseconds, 3 significant digits).
pub struct Latencies {
    histogram: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies {
            histogram: Histogram::new_with_bounds(1, 3_600_000_000_000, 3)
                .expect("valid histogram bounds"),
        }
    }
}

impl Latencies {
    pub fn record(&mut self, d: Duration) {
        let ns = (d.as_nanos() as u64).clamp(1, 3_600_000_000_000);
        self.histogram.record(ns).expect("in bounds");
    }

    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    /// The `q` quantile in milliseconds (0 when empty).
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.histogram.is_empty() {
            return 0.0;
        }
        self.histogram.value_at_quantile(q) as f64 / 1e6
    }

    pub fn p50_ms(&self) -> f64 {
        self.quantile_ms(0.5)
    }

    pub fn p99_ms(&self) -> f64 {
        self.quantile_ms(0.99)
    }

    pub fn max_ms(&self) -> f64 {
        if self.histogram.is_empty() {
            return 0.0;
        }
        self.histogram.max() as f64 / 1e6
    }

    pub fn mean_ms(&self) -> f64 {
        if self.histogram.is_empty() {
            return 0.0;
        }
        self.histogram.mean() / 1e6
    }

    /// `{count, p50_ms, p99_ms, max_ms, mean_ms}`.
    pub fn summary(&self) -> Value {
        json!({
            "count": self.count(),
            "p50_ms": sig(self.p50_ms()),
            "p99_ms": sig(self.p99_ms()),
            "max_ms": sig(self.max_ms()),
            "mean_ms": sig(self.mean_ms()),
        })
    }
}

/// `x` rounded to 4 significant digits (non-finite values become 0, so
/// the JSON stays valid).
pub fn sig(x: f64) -> f64 {
    if !x.is_finite() || x == 0.0 {
        return 0.0;
    }
    let magnitude = x.abs().log10().floor() as i32;
    let f = 10f64.powi(3 - magnitude);
    (x * f).round() / f
}

/// A ratio that stays finite (0 when the denominator is 0).
pub fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 && a.is_finite() && b.is_finite() {
        a / b
    } else {
        0.0
    }
}

/// Runs the engine over `records` to the end; the final report and the
/// wall time of the whole run (start-up, every record, the final report).
/// A record's error comes back whole in [`BenchError::Run`].
pub fn run_to_end<E: std::fmt::Display + Into<RecordError>, R: Ingestible>(
    records: impl IntoIterator<Item = Result<R, E>>,
    config: &Config,
    options: Options,
) -> Result<(Report, Duration), BenchError> {
    let (report, elapsed, _) = run_timed(records, config, options)?;
    Ok((report, elapsed))
}

/// [`run_to_end`], and the CPU time of each of the engine's threads.
pub fn run_timed<E: std::fmt::Display + Into<RecordError>, R: Ingestible>(
    records: impl IntoIterator<Item = Result<R, E>>,
    config: &Config,
    options: Options,
) -> Result<(Report, Duration, Vec<ThreadTime>), BenchError> {
    let last = Arc::new(Mutex::new(None));
    let threads = Arc::new(Mutex::new(Vec::new()));
    let (slot, times) = (last.clone(), threads.clone());
    let started = Instant::now();
    run(records, config, options, move |event| match event {
        Event::Report { report, last: true } => *slot.lock().expect("report slot") = Some(report),
        Event::Threads(t) => *times.lock().expect("thread times") = t,
        _ => {}
    })
    .map_err(boxed)?;
    let elapsed = started.elapsed();
    let report = last
        .lock()
        .expect("report slot")
        .take()
        .ok_or(BenchError::NoFinalReport)?;
    let threads = std::mem::take(&mut *threads.lock().expect("thread times"));
    Ok((report, elapsed, threads))
}
