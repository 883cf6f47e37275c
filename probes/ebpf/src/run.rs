//! The collection loop shared by the CLI and the library users: start or
//! pick the traced process, attach a collector, drain it every window into
//! a sink, stop on exit, SIGINT/SIGTERM or a time limit, and end with a
//! watermark.

use crate::error::ProbeError;
use std::ffi::OsString;
use std::time::{Duration, Instant};

use tracemerge_records::Record;

use crate::target::{self, Event};

/// An attached collector of either mode.
pub enum Collector {
    Exact(crate::exact::Session),
    Sample(crate::sample::Session),
    /// Exact mode with nop entries patched in the process (`--entries
    /// patch`), the other functions under uprobes (if any).
    Patched(Box<Patched>),
}

/// Patched entries and, for the functions without a nop entry, uprobes.
pub struct Patched {
    pub patch: crate::patch::Session,
    pub uprobes: Option<crate::exact::Session>,
}

impl Patched {
    fn both(
        &mut self,
        mut f: impl FnMut(&mut dyn Drained) -> Result<Vec<Record>, ProbeError>,
    ) -> Result<Vec<Record>, ProbeError> {
        let mut out = f(&mut self.patch)?;
        if let Some(u) = self.uprobes.as_mut() {
            out.extend(f(u)?);
        }
        Ok(out)
    }

    fn summary(&self) -> serde_json::Value {
        let p = self.patch.summary();
        let mut s = match &self.uprobes {
            Some(u) => u.summary().to_json(),
            None => {
                serde_json::json!({"mode": "exact", "functions": 0, "edges": 0, "hits": 0, "losses": 0})
            }
        };
        for (key, add) in [
            ("functions", p.functions as u64),
            ("edges", p.edges),
            ("hits", p.hits),
            ("losses", p.lost),
        ] {
            s[key] = (s[key].as_u64().unwrap_or(0) + add).into();
        }
        s["patched"] = p.to_json();
        s
    }
}

/// The two drains of a patched collector's parts.
trait Drained {
    fn drain(&mut self) -> Result<Vec<Record>, ProbeError>;
    fn finish(&mut self) -> Result<Vec<Record>, ProbeError>;
}

impl Drained for crate::patch::Session {
    fn drain(&mut self) -> Result<Vec<Record>, ProbeError> {
        crate::patch::Session::drain(self)
    }
    fn finish(&mut self) -> Result<Vec<Record>, ProbeError> {
        crate::patch::Session::finish(self)
    }
}

impl Drained for crate::exact::Session {
    fn drain(&mut self) -> Result<Vec<Record>, ProbeError> {
        crate::exact::Session::drain(self)
    }
    fn finish(&mut self) -> Result<Vec<Record>, ProbeError> {
        crate::exact::Session::finish(self)
    }
}

impl Collector {
    pub fn drain(&mut self) -> Result<Vec<Record>, ProbeError> {
        match self {
            Collector::Exact(s) => s.drain(),
            Collector::Sample(s) => s.drain(),
            Collector::Patched(p) => p.both(|s| s.drain()),
        }
    }
    pub fn finish(&mut self) -> Result<Vec<Record>, ProbeError> {
        match self {
            Collector::Exact(s) => s.finish(),
            Collector::Sample(s) => s.finish(),
            Collector::Patched(p) => p.both(|s| s.finish()),
        }
    }
    /// Lets the collector act between windows (budget visits).
    pub fn tick(&mut self) {
        match self {
            Collector::Exact(s) => s.tick(),
            Collector::Patched(p) => p.uprobes.iter_mut().for_each(|s| s.tick()),
            Collector::Sample(_) => {}
        }
    }
    /// See [`crate::exact::Session::stop_on_new_edges`].
    pub fn stop_on_new_edges(&mut self, tid: u32, signal: i32) {
        match self {
            Collector::Exact(s) => s.stop_on_new_edges(tid, signal),
            Collector::Patched(p) => p
                .uprobes
                .iter_mut()
                .for_each(|s| s.stop_on_new_edges(tid, signal)),
            Collector::Sample(_) => {}
        }
    }
    /// See [`crate::exact::Session::new_edge_stop`].
    pub fn new_edge_stop(&mut self) {
        match self {
            Collector::Exact(s) => s.new_edge_stop(),
            Collector::Patched(p) => p.uprobes.iter_mut().for_each(|s| s.new_edge_stop()),
            Collector::Sample(_) => {}
        }
    }
    pub fn remember_process(&mut self, pid: u32) {
        match self {
            Collector::Exact(s) => s.remember_process(pid),
            Collector::Sample(s) => s.remember_process(pid),
            Collector::Patched(p) => {
                p.patch.remember_process(pid);
                if let Some(s) = p.uprobes.as_mut() {
                    s.remember_process(pid);
                }
            }
        }
    }
    pub fn summary(&self) -> serde_json::Value {
        match self {
            Collector::Exact(s) => s.summary().to_json(),
            Collector::Sample(s) => s.summary().to_json(),
            Collector::Patched(p) => p.summary(),
        }
    }
}

/// What to trace.
#[derive(Clone, Debug)]
pub enum Target {
    /// Start this command (argv) and trace it until it exits.
    Command(Vec<OsString>),
    /// A process that is already running, until it exits.
    Pid(u32),
    /// Every process (until interrupted or the time limit).
    All,
}

/// How the loop ends windows and itself.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub window: Duration,
    pub duration: Option<Duration>,
    /// Send a started command's standard output to our standard error
    /// (set when the records go to standard output).
    pub command_stdout_to_stderr: bool,
}

impl Options {
    pub fn new(window: Duration) -> Options {
        Options {
            window,
            duration: None,
            command_stdout_to_stderr: false,
        }
    }
}

/// The outcome of [`run`].
#[derive(Debug)]
pub struct Outcome {
    /// Exit code of the traced command (0 for other targets, 130 when
    /// interrupted).
    pub exit_code: i32,
    /// The collector's summary (edges, hits, losses, attach/detach times).
    pub summary: serde_json::Value,
}

/// Runs one collection. `attach` receives the pid to restrict to (`None`:
/// every process) and returns the attached collector; `sink` receives the
/// records of every window, and finally the watermark.
/// Call [`target::catch_interrupts`] first to stop cleanly on SIGINT.
/// `E` is the caller's error: that of its `attach` and `sink`, which the
/// collector's own errors convert into.
pub fn run<E: From<ProbeError>>(
    target: &Target,
    options: Options,
    attach: impl FnOnce(Option<u32>) -> Result<Collector, E>,
    sink: &mut dyn FnMut(&[Record]) -> Result<(), E>,
) -> Result<Outcome, E> {
    // Start the command first, stopped right after its exec, so that it is
    // probed from its first instruction and only it is probed.
    let mut command = match target {
        Target::Command(argv) => Some(target::Command::spawn(
            argv,
            options.command_stdout_to_stderr,
        )?),
        _ => None,
    };
    let pid = match target {
        Target::Command(_) => command.as_ref().map(|c| c.pid),
        Target::Pid(p) => {
            if !target::alive(*p) {
                return Err(ProbeError::NoProcess { pid: *p }.into());
            }
            Some(*p)
        }
        Target::All => None,
    };
    let mut collector = attach(pid)?;
    match command.as_mut() {
        Some(c) => {
            // Under ptrace its main thread can be stopped at a new edge.
            collector.stop_on_new_edges(c.pid, target::NEW_EDGE_SIGNAL);
            c.resume();
        }
        // Read its maps now, in case it exits between two windows.
        None => {
            if let Some(p) = pid {
                collector.remember_process(p);
            }
        }
    }

    let started = Instant::now();
    let mut window_end = started + options.window;
    let mut exit_code = 0;
    let mut interrupted_at: Option<Instant> = None;
    let tick = Duration::from_millis(5).min(options.window);
    loop {
        std::thread::sleep(tick);
        collector.tick();
        if let Some(c) = command.as_mut() {
            match c.poll() {
                Event::Running => {}
                Event::NewEdge => {
                    collector.new_edge_stop();
                    c.resume();
                }
                Event::Exiting => {
                    // Its memory is still intact: read its maps, then let it go.
                    collector.remember_process(c.pid);
                    sink(&collector.finish()?)?;
                    c.resume();
                    loop {
                        match c.poll() {
                            Event::Exited(code) => {
                                exit_code = code;
                                break;
                            }
                            Event::Exiting | Event::NewEdge => c.resume(),
                            Event::Running => std::thread::sleep(Duration::from_millis(1)),
                        }
                    }
                    break;
                }
                Event::Exited(code) => {
                    exit_code = code;
                    sink(&collector.finish()?)?;
                    break;
                }
            }
        } else if let Some(p) = pid {
            if !target::alive(p) {
                sink(&collector.finish()?)?;
                break;
            }
        }
        if target::interrupted() {
            match (command.as_ref(), interrupted_at) {
                // Pass the interrupt on and trace the command to its end,
                // but not for ever.
                (Some(c), None) => {
                    c.signal(libc::SIGINT);
                    interrupted_at = Some(Instant::now());
                }
                (Some(c), Some(t)) if t.elapsed() > Duration::from_secs(2) => {
                    c.signal(libc::SIGKILL)
                }
                (Some(_), Some(_)) => {}
                (None, _) => {
                    sink(&collector.finish()?)?;
                    exit_code = 130;
                    break;
                }
            }
        }
        if options.duration.is_some_and(|d| started.elapsed() >= d) {
            sink(&collector.finish()?)?;
            break;
        }
        if Instant::now() >= window_end {
            sink(&collector.drain()?)?;
            window_end += options.window;
            if window_end < Instant::now() {
                window_end = Instant::now() + options.window;
            }
        }
    }
    drop(command);
    let summary = collector.summary();
    drop(collector);
    sink(&[Record::Watermark {
        at: target::now_ms(),
    }])?;
    Ok(Outcome { exit_code, summary })
}
