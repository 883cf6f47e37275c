//! `tracemerge merge` and `tracemerge replay`: run the engine over record
//! streams read from files.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracemerge_dataflow::{run, threads, Event, Options, RunError};
use tracemerge_records::{Change, Input, Report, Time};
use tracemerge_sources::SourceError;

use crate::args::{ClusterArgs, EngineArgs};
use crate::error::CliError;

/// How fast `replay` feeds records: as fast as possible, or paced by event time.
#[derive(Clone, Copy, Debug)]
pub enum Speed {
    Max,
    Factor(f64),
}

impl std::str::FromStr for Speed {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "max" {
            return Ok(Speed::Max);
        }
        s.strip_suffix('x')
            .and_then(|f| f.parse::<f64>().ok())
            .filter(|f| *f > 0.0 && f.is_finite())
            .map(Speed::Factor)
            .ok_or_else(|| format!("bad speed {s:?}: expected max or a factor such as 1x, 10x"))
    }
}

/// The input stream of all files, in order, with errors that name file
/// and line; sightings in their compact form ([`Input`]).
pub fn inputs(
    files: &[String],
    options: &tracemerge_sources::Options,
) -> Result<impl Iterator<Item = Result<Input, SourceError>>, SourceError> {
    let stream = tracemerge_sources::open_all_inputs(files, options)?;
    Ok(stream.map(|item| item.map(|(_, input)| input)))
}

/// The CPU time of the whole process so far, where the platform tells it.
fn process_cpu() -> Option<Duration> {
    #[cfg(unix)]
    {
        // SAFETY: `usage` is a valid rusage for the call to fill in.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
            return None;
        }
        let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
        Some(time(usage.ru_utime) + time(usage.ru_stime))
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Counts records and shows records/s on stderr when it is a terminal.
fn with_progress<I: Iterator<Item = Result<Input, SourceError>>>(
    inner: I,
) -> impl Iterator<Item = Result<Input, SourceError>> {
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {pos} records ({per_sec}) {elapsed}",
            )
            .expect("valid template"),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    });
    let mut inner = inner;
    std::iter::from_fn(move || {
        let next = inner.next();
        if let Some(bar) = &bar {
            match next {
                Some(Ok(Input::Names { .. })) => {}
                Some(_) => bar.inc(1),
                None => bar.finish_and_clear(),
            }
        }
        next
    })
}

/// Paces records so that event time advances `factor` times faster than wall time.
fn paced<I: Iterator<Item = Result<Input, SourceError>>>(
    inner: I,
    speed: Speed,
) -> impl Iterator<Item = Result<Input, SourceError>> {
    let mut start: Option<(Instant, Time)> = None;
    inner.inspect(move |item| {
        let (Speed::Factor(factor), Ok(Some(t))) = (speed, item.as_ref().map(Input::time)) else {
            return;
        };
        let (wall, first) = *start.get_or_insert((Instant::now(), t));
        let due = Duration::from_secs_f64(t.saturating_sub(first) as f64 / 1000.0 / factor);
        if let Some(wait) = due.checked_sub(wall.elapsed()) {
            std::thread::sleep(wait);
        }
    })
}

/// What the change feed's writer is handed.
enum Feed {
    Change(Change),
    /// The feed has caught up with event time: a reader watching it live
    /// should see the lines so far now.
    CaughtUp,
}

/// Runs the engine; returns the final report (on process 0) and the input
/// error, if the stream stopped at a bad record.
fn execute(
    args: &EngineArgs,
    mut options: Options,
    speed: Option<Speed>,
    mut on_feed: impl FnMut(Feed) + Send + 'static,
) -> Result<(Option<Report>, Option<SourceError>), CliError> {
    let config = args.config()?;
    options.changes = speed.is_some();
    let profile = options.profile;
    let report = Arc::new(Mutex::new(None));
    let slot = report.clone();
    let stream = with_progress(paced(
        inputs(&args.files, &args.static_graph.source_options())?,
        speed.unwrap_or(Speed::Max),
    ));
    let result = run(stream, &config, options, move |event| match event {
        Event::Change(change) => on_feed(Feed::Change(change)),
        Event::Report { report, last: true } => *slot.lock().expect("report") = Some(report),
        Event::Report { .. } => {}
        Event::Invalid(message) => eprintln!("tracemerge: skipped: {message}"),
        Event::Profile(profile) => eprintln!("{}", profile.table(25)),
        Event::Progress(_) => on_feed(Feed::CaughtUp),
        Event::Threads(times) if profile => {
            eprint!("{}", threads::table(&times));
            if let Some(cpu) = process_cpu() {
                let engine: Duration = times.iter().map(|t| t.cpu).sum();
                let rest = cpu.saturating_sub(engine);
                eprintln!("  the process: {cpu:.2?}, {rest:.2?} of it outside the engine's threads (reading and parsing the input, writing the feed)");
            }
        }
        Event::Threads(_) => {}
    });
    let report = report.lock().expect("report").take();
    match result {
        Ok(_) => Ok((report, None)),
        Err(RunError::Record(e)) => Ok((report, Some(e))),
        Err(RunError::Engine(e)) => Err(CliError::Engine(e)),
        Err(RunError::Fault(fault)) => Err(CliError::Fault(fault)),
    }
}

/// Where the command's own output goes. Timely prints connection progress
/// on stdout in cluster mode, so there stdout is moved aside first: the
/// library's lines land on stderr and ours stay clean.
fn output_stream(cluster: &ClusterArgs) -> Box<dyn Write + Send> {
    #[cfg(unix)]
    if cluster.processes > 1 {
        use std::os::fd::FromRawFd;
        // SAFETY: fd 1 and 2 are open for the life of the process; `dup`
        // returns a fresh descriptor that the File takes ownership of.
        unsafe {
            let ours = libc::dup(1);
            if ours >= 0 && libc::dup2(2, 1) >= 0 {
                return Box::new(std::fs::File::from_raw_fd(ours));
            }
        }
    }
    let _ = cluster;
    Box::new(std::io::stdout())
}

/// `tracemerge merge`.
pub fn merge(args: EngineArgs, output: Option<PathBuf>) -> Result<ExitCode, CliError> {
    let options = args.options()?;
    let mut out = output_stream(&args.cluster);
    let (report, error) = execute(&args, options, None, |_| {})?;
    if let Some(report) = report {
        match output {
            Some(path) => write_report(&report, Some(&path))?,
            None => write_json(&report, &mut out)?,
        }
    }
    finish(error)
}

/// `tracemerge replay`: the change feed on stdout.
pub fn replay(
    args: EngineArgs,
    speed: Speed,
    report: Option<PathBuf>,
) -> Result<ExitCode, CliError> {
    let options = args.options()?;
    // The lines are serialized and written on a thread of their own, beside
    // the engine; the engine's sink hands them over in batches.
    let (to_writer, batches) = crossbeam_channel::bounded::<Vec<Change>>(16);
    // Written batches go back to be emptied and filled again, with the
    // room they grew: the lines' names are freed by the thread that made
    // them, which costs it less than another thread's freeing costs both.
    let (written, refill) = crossbeam_channel::bounded::<Vec<Change>>(4);
    let mut out = std::io::BufWriter::with_capacity(1 << 16, output_stream(&args.cluster));
    let writer = std::thread::Builder::new()
        .name("tracemerge-feed".into())
        .spawn(move || {
            for batch in batches {
                for change in &batch {
                    // Straight into the buffer, no line string. A change
                    // always serializes, so an error here is the pipe's: a
                    // closed one (`| head`) is not worth a panic.
                    if serde_json::to_writer(&mut out, change).is_ok() {
                        let _ = out.write_all(b"\n");
                    }
                }
                let _ = out.flush();
                let _ = written.try_send(batch);
            }
        })
        .map_err(|e| CliError::output("stdout", e))?;
    let mut lines = FeedBatches {
        batch: Vec::new(),
        to_writer,
        refill,
    };
    let (final_report, error) = execute(&args, options, Some(speed), move |feed| match feed {
        Feed::Change(change) => lines.push(change),
        Feed::CaughtUp => lines.hand_over(),
    })?;
    // The engine has dropped its callback, and with it the last batch.
    let _ = writer.join();
    if let (Some(r), Some(path)) = (final_report, report.as_ref()) {
        write_report(&r, Some(path))?;
    }
    finish(error)
}

/// Change lines on their way to the feed's writer thread: handed over when
/// the feed catches up with event time (so a live reader is never kept
/// waiting) or a batch is full, and when dropped.
struct FeedBatches {
    batch: Vec<Change>,
    to_writer: crossbeam_channel::Sender<Vec<Change>>,
    /// Batches the writer has written: emptied and filled again instead of
    /// grown anew (by doubling, a copy of every line each time).
    refill: crossbeam_channel::Receiver<Vec<Change>>,
}

impl FeedBatches {
    const FULL: usize = 4096;

    fn push(&mut self, change: Change) {
        self.batch.push(change);
        if self.batch.len() >= Self::FULL {
            self.hand_over();
        }
    }

    fn hand_over(&mut self) {
        if !self.batch.is_empty() {
            // An error: the writer is gone, which only its panic does.
            let mut empty = self.refill.try_recv().unwrap_or_default();
            empty.clear();
            let _ = (self.to_writer).send(std::mem::replace(&mut self.batch, empty));
        }
    }
}

impl Drop for FeedBatches {
    fn drop(&mut self) {
        self.hand_over();
    }
}

fn finish(error: Option<SourceError>) -> Result<ExitCode, CliError> {
    match error {
        None => Ok(ExitCode::SUCCESS),
        // The report of everything before the bad record was written.
        Some(e) => Err(e.into()),
    }
}

pub fn write_report(report: &Report, output: Option<&PathBuf>) -> Result<(), CliError> {
    match output {
        Some(path) => {
            let mut text = report.to_pretty_json();
            text.push('\n');
            std::fs::write(path, text).map_err(|e| CliError::io(path, e))
        }
        None => write_json(report, &mut std::io::stdout()),
    }
}

fn write_json(report: &Report, out: &mut dyn Write) -> Result<(), CliError> {
    let mut text = report.to_pretty_json();
    text.push('\n');
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        // A reader that stopped early (`| head`) is not an error.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(CliError::output("stdout", e)),
        _ => Ok(()),
    }
}
