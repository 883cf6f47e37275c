//! `tracemerge merge` and `tracemerge replay`: run the engine over record
//! streams read from files.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracemerge_dataflow::{run, Event, Options, RunError};
use tracemerge_records::{parse_duration, Config, Record, Report, Strategy, Time};

/// Options shared by every command that runs the engine.
#[derive(clap::Args, Clone, Debug)]
pub struct EngineArgs {
    /// Record streams (`-` is stdin), read as one stream in the order given;
    /// the format is detected from the content.
    #[arg(required = true)]
    pub files: Vec<String>,
    #[command(flatten)]
    pub static_graph: StaticGraphArgs,
    /// How long an observation stays live. A duration: a whole number and ms, s, m or h (250ms, 10s, 10m, 2h).
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub ttl: Time,
    /// How far behind the watermark a record may arrive. A duration: a whole number and ms, s, m or h (250ms, 10s, 10m, 2h).
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub lateness: Time,
    /// union, static or quorum:HITS:SOURCES.
    #[arg(long, default_value = "union")]
    pub strategy: Strategy,
    /// Symbols (one per line) or edges (`caller -> callee`) never accepted.
    #[arg(long)]
    pub quarantine: Option<PathBuf>,
    /// How long a target must be covered before it counts as unobserved. A duration: a whole number and ms, s, m or h (250ms, 10s, 10m, 2h).
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    pub min_coverage: Time,
    /// Count malformed records in stats.invalid and go on, instead of stopping.
    #[arg(long)]
    pub keep_going: bool,
    /// Records per batch handed to the workers.
    #[arg(long, default_value_t = 1024)]
    pub batch: usize,
    /// Print where the dataflow spent its time (busy time per operator) and
    /// how many updates its arrangements hold, on stderr at the end.
    #[arg(long)]
    pub profile: bool,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// How static call graphs of other analysers (gcc `.ci`, LLVM dot or
/// text, Go `callgraph`, PyCG) become `graph` records.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct StaticGraphArgs {
    /// Artifact of static call graphs of other analysers (and of Stella
    /// inputs): the artifact the runtime records name.
    #[arg(long)]
    pub artifact: Option<String>,
    /// Entrypoints of those call graphs, comma-separated [default: main
    /// or main.main if present, else the functions nothing calls].
    #[arg(long, value_delimiter = ',')]
    pub entrypoints: Option<Vec<String>>,
}

impl StaticGraphArgs {
    pub fn source_options(&self) -> tracemerge_sources::Options {
        tracemerge_sources::Options {
            artifact: self.artifact.clone(),
            entrypoints: self.entrypoints.clone(),
            ..Default::default()
        }
    }
}

/// Timely's execution options, passed through.
#[derive(clap::Args, Clone, Debug)]
pub struct ClusterArgs {
    /// Worker threads per process.
    #[arg(short = 'w', long = "workers", default_value_t = 1)]
    pub workers: usize,
    /// Number of processes (timely cluster mode).
    #[arg(short = 'n', long = "processes", default_value_t = 1)]
    pub processes: usize,
    /// This process's index, 0..n.
    #[arg(short = 'p', long = "process", default_value_t = 0)]
    pub process: usize,
    /// File of `host:port` lines, one per process (default localhost:2101+i).
    #[arg(short = 'h', long = "hostfile")]
    pub hostfile: Option<PathBuf>,
    /// Timely progress mode: eager (lower latency over TCP) or demand.
    #[arg(long, default_value = "demand")]
    pub progress_mode: String,
}

impl ClusterArgs {
    pub fn timely_config(&self) -> Result<timely::Config, String> {
        let workers = self.workers.max(1);
        let communication = if self.processes > 1 {
            if self.process >= self.processes {
                return Err(format!(
                    "--process {} is out of range for {} processes",
                    self.process, self.processes
                ));
            }
            let addresses = match &self.hostfile {
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                    let hosts: Vec<String> = text
                        .lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(String::from)
                        .collect();
                    if hosts.len() < self.processes {
                        return Err(format!(
                            "{}: {} addresses for {} processes",
                            path.display(),
                            hosts.len(),
                            self.processes
                        ));
                    }
                    hosts[..self.processes].to_vec()
                }
                None => (0..self.processes)
                    .map(|i| format!("localhost:{}", 2101 + i))
                    .collect(),
            };
            timely::CommunicationConfig::Cluster {
                threads: workers,
                process: self.process,
                addresses,
                report: false,
                zerocopy: false,
            }
        } else {
            timely::CommunicationConfig::Process(workers)
        };
        let mode = self
            .progress_mode
            .parse()
            .map_err(|e| format!("--progress-mode: {e}"))?;
        let mut config = timely::Config {
            communication,
            worker: timely::WorkerConfig::default().progress_mode(mode),
        };
        tracemerge_dataflow::tune(&mut config);
        Ok(config)
    }
}

impl EngineArgs {
    pub fn config(&self) -> Result<Config, String> {
        let mut config = Config {
            ttl: self.ttl,
            lateness: self.lateness,
            strategy: self.strategy,
            min_coverage: self.min_coverage,
            ..Config::default()
        };
        if let Some(path) = &self.quarantine {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            config
                .add_quarantine(&text)
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Ok(config)
    }

    fn options(&self) -> Result<Options, String> {
        let mut options = Options::threads(self.cluster.workers);
        options.timely = self.cluster.timely_config()?;
        options.batch = self.batch;
        options.keep_going = self.keep_going;
        options.profile = self.profile;
        // `merge` wants the final report only: a dataflow round per 1,000
        // records at most, however dense the watermarks (a round costs about
        // what 50 records do). `replay` sets the change feed, which needs
        // every watermark; the engine then ignores this.
        options.round_every = 1_000;
        // Nor does it need the dataflow to work through every edge that came
        // and went: the live evidence enters once, at the end.
        options.final_only = true;
        Ok(options)
    }
}

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

/// The record stream of all files, in order, with errors that name file and line.
fn records(
    files: &[String],
    options: &tracemerge_sources::Options,
) -> Result<impl Iterator<Item = Result<Record, String>>, String> {
    let stream = tracemerge_sources::open_all(files, options).map_err(|e| e.to_string())?;
    Ok(stream.map(|item| item.map(|(_, record)| record).map_err(|e| e.to_string())))
}

/// Counts records and shows records/s on stderr when it is a terminal.
fn with_progress<I: Iterator<Item = Result<Record, String>>>(
    inner: I,
) -> impl Iterator<Item = Result<Record, String>> {
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
                Some(_) => bar.inc(1),
                None => bar.finish_and_clear(),
            }
        }
        next
    })
}

/// Paces records so that event time advances `factor` times faster than wall time.
fn paced<I: Iterator<Item = Result<Record, String>>>(
    inner: I,
    speed: Speed,
) -> impl Iterator<Item = Result<Record, String>> {
    let mut start: Option<(Instant, Time)> = None;
    inner.inspect(move |item| {
        let (Speed::Factor(factor), Ok(record)) = (speed, item) else {
            return;
        };
        let t = record.time();
        let (wall, first) = *start.get_or_insert((Instant::now(), t));
        let due = Duration::from_secs_f64(t.saturating_sub(first) as f64 / 1000.0 / factor);
        if let Some(wait) = due.checked_sub(wall.elapsed()) {
            std::thread::sleep(wait);
        }
    })
}

/// Runs the engine; returns the final report (on process 0) and the input
/// error, if the stream stopped at a bad record.
fn execute(
    args: &EngineArgs,
    mut options: Options,
    speed: Option<Speed>,
    mut on_change: impl FnMut(&tracemerge_records::Change) + Send + 'static,
) -> Result<(Option<Report>, Option<String>), String> {
    let config = args.config()?;
    options.changes = speed.is_some();
    let report = Arc::new(Mutex::new(None));
    let slot = report.clone();
    let stream = with_progress(paced(
        records(&args.files, &args.static_graph.source_options())?,
        speed.unwrap_or(Speed::Max),
    ));
    let result = run(stream, &config, options, move |event| match event {
        Event::Change(change) => on_change(&change),
        Event::Report { report, last: true } => *slot.lock().expect("report") = Some(report),
        Event::Report { .. } => {}
        Event::Invalid(message) => eprintln!("tracemerge: skipped: {message}"),
        Event::Profile(profile) => eprintln!("{}", profile.table(25)),
        Event::Progress(_) => {}
    });
    let report = report.lock().expect("report").take();
    match result {
        Ok(_) => Ok((report, None)),
        Err(RunError::Record(e)) => Ok((report, Some(e))),
        Err(RunError::Engine(e)) => Err(e),
        Err(RunError::Fault(fault)) => Err(fault.to_string()),
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
pub fn merge(args: EngineArgs, output: Option<PathBuf>) -> Result<ExitCode, String> {
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
pub fn replay(args: EngineArgs, speed: Speed, report: Option<PathBuf>) -> Result<ExitCode, String> {
    let options = args.options()?;
    let stdout = Arc::new(Mutex::new(std::io::BufWriter::new(output_stream(
        &args.cluster,
    ))));
    let out = stdout.clone();
    let (final_report, error) = execute(&args, options, Some(speed), move |change| {
        let mut out = out.lock().expect("stdout");
        let line = serde_json::to_string(change).expect("changes serialize");
        // A closed pipe (`| head`) is not an error worth a panic.
        let _ = writeln!(out, "{line}");
    })?;
    let _ = stdout.lock().expect("stdout").flush();
    if let (Some(r), Some(path)) = (final_report, report.as_ref()) {
        write_report(&r, Some(path))?;
    }
    finish(error)
}

fn finish(error: Option<String>) -> Result<ExitCode, String> {
    match error {
        None => Ok(ExitCode::SUCCESS),
        // The report of everything before the bad record was written.
        Some(e) => Err(e),
    }
}

pub fn write_report(report: &Report, output: Option<&PathBuf>) -> Result<(), String> {
    match output {
        Some(path) => {
            let mut text = report.to_pretty_json();
            text.push('\n');
            std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
        }
        None => write_json(report, &mut std::io::stdout()),
    }
}

fn write_json(report: &Report, out: &mut dyn Write) -> Result<(), String> {
    let mut text = report.to_pretty_json();
    text.push('\n');
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        // A reader that stopped early (`| head`) is not an error.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(format!("stdout: {e}")),
        _ => Ok(()),
    }
}

/// `tracemerge generate`.
pub fn generate(
    records: impl Iterator<Item = Record>,
    output: Option<PathBuf>,
) -> Result<ExitCode, String> {
    let (mut out, name): (Box<dyn Write>, String) = match &output {
        Some(path) => (
            Box::new(std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?),
            path.display().to_string(),
        ),
        None => (Box::new(std::io::stdout()), "stdout".into()),
    };
    let mut out = std::io::BufWriter::with_capacity(1 << 20, &mut out);
    for record in records {
        let line = record.to_json();
        match out
            .write_all(line.as_bytes())
            .and_then(|_| out.write_all(b"\n"))
        {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
            Err(e) => return Err(format!("{name}: {e}")),
            Ok(()) => {}
        }
    }
    out.flush().map_err(|e| format!("{name}: {e}"))?;
    Ok(ExitCode::SUCCESS)
}

/// `tracemerge watch`: the probe feeds the engine window by window; each
/// window ends with a watermark just past its records, so the verdicts and
/// conflicts it changes are printed at once.
pub fn watch(
    graphs: Vec<String>,
    config: Config,
    probe: crate::probe::ProbeCommand,
) -> Result<ExitCode, String> {
    let mut static_records = Vec::new();
    if !graphs.is_empty() {
        for item in records(&graphs, &tracemerge_sources::Options::default())? {
            static_records.push(item?);
        }
    }
    let (tx, rx) = std::sync::mpsc::channel::<Record>();
    let engine = std::thread::spawn(move || {
        let mut options = Options::threads(1);
        options.changes = true;
        options.batch = 1;
        let stream = static_records.into_iter().chain(rx).map(Ok::<_, String>);
        let mut out = std::io::stdout();
        run(stream, &config, options, move |event| {
            if let Event::Change(change) = event {
                if matches!(
                    change.item,
                    tracemerge_records::Item::Verdict { .. }
                        | tracemerge_records::Item::Conflict { .. }
                ) {
                    let line = serde_json::to_string(&change).expect("changes serialize");
                    let _ = writeln!(out, "{line}").and_then(|_| out.flush());
                }
            }
        })
        .map_err(|e| e.to_string())
    });
    let mut last = 0;
    let code = crate::probe::collect(probe, &mut |window| {
        for record in window {
            last = last.max(record.time());
            tx.send(record.clone())
                .map_err(|_| "the engine stopped".to_string())?;
        }
        tx.send(Record::Watermark { at: last + 1 })
            .map_err(|_| "the engine stopped".to_string())
    })
    .map_err(|e| e.to_string());
    drop(tx);
    let engine = engine.join().map_err(|_| "the engine failed".to_string())?;
    engine?;
    code
}

#[cfg(test)]
mod tests {
    use super::EngineArgs;
    use clap::Parser;

    /// `-h` is `--hostfile`, as in `tracemerge merge`.
    #[derive(Parser)]
    #[command(disable_help_flag = true)]
    struct Cli {
        #[command(flatten)]
        engine: EngineArgs,
    }

    fn parse(args: &[&str]) -> Result<EngineArgs, clap::Error> {
        let words = ["merge", "x.ndjson"].iter().chain(args);
        Cli::try_parse_from(words).map(|cli| cli.engine)
    }

    /// The duration options take the one duration syntax: a whole number
    /// and a unit, which is required; zero is a duration.
    #[test]
    fn durations() {
        let args = parse(&[
            "--ttl",
            "10s",
            "--lateness",
            "0s",
            "--min-coverage",
            "250ms",
        ])
        .unwrap();
        assert_eq!(
            (args.ttl, args.lateness, args.min_coverage),
            (10_000, 0, 250)
        );
        let defaults = parse(&[]).unwrap();
        assert_eq!(
            (defaults.ttl, defaults.lateness, defaults.min_coverage),
            (600_000, 0, 60_000)
        );
        for option in ["--ttl", "--lateness", "--min-coverage"] {
            for bad in ["10", "1.5s", "5d", "-1s"] {
                assert!(parse(&[option, bad]).is_err(), "{option} {bad}");
            }
        }
    }
}
