//! Exact mode: an entry uprobe on every chosen function of one binary, all
//! in a single uprobe_multi link. The kernel counts (process, callee, call
//! site); every window user space drains the counts, names both ends and
//! emits `edge` records, plus a `coverage` record for the functions that
//! were probed during the window.

use crate::error::ProbeError;
use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tracemerge_records::{Coverage, EdgeObservation, Record};

use crate::budget::{
    choose_pauses, choose_visit, estimate, phase_visit, Budget, Candidate, Ledger, Load, VisitPlan,
};
use crate::demangle::{demangle, NameStyle, Namer};
use crate::elf::ElfInfo;
use crate::elf::Symbol;
use crate::kernel::{ExactCounts, Kernel, Losses};
use crate::plan::{plan_entry, EntryKind, EntryPlan, KernelFeatures, PlanSummary};
use crate::symbolize::{file_id, Symbolizer};
use crate::target::now_ms;

/// What to probe.
#[derive(Clone, Debug)]
pub struct Config {
    /// The ELF file whose functions are probed (executable or library).
    pub binary: PathBuf,
    /// Function names to probe; `None`: every function with a symbol.
    pub functions: Option<Vec<String>>,
    /// Artifact id of the records; default `build-id:<hex>` of the binary
    /// (`path:<binary>` when it has no build id).
    pub artifact: Option<String>,
    /// `source` of the records; default `ebpf:<hostname>`.
    pub source: Option<String>,
    /// Only this process (`None`: every process that runs the binary).
    pub pid: Option<u32>,
    /// Which name of a function the records carry (mangled by default).
    pub names: NameStyle,
    /// Keep the slowdown near this budget by pausing hot functions
    /// (`None`: count every call of every function exactly).
    pub budget: Option<Budget>,
    /// Capacity of the kernel count map (distinct (process, callee, call
    /// site) per window); more is counted as loss.
    pub map_entries: u32,
}

impl Config {
    pub fn new(binary: impl Into<PathBuf>) -> Config {
        Config {
            binary: binary.into(),
            functions: None,
            artifact: None,
            source: None,
            pid: None,
            names: NameStyle::Mangled,
            budget: None,
            map_entries: 65536,
        }
    }
}

/// Totals over the whole session.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Edge records emitted (one per distinct edge and window).
    pub edges: u64,
    /// Calls counted in them.
    pub hits: u64,
    /// Windows drained.
    pub windows: u64,
    /// Windows whose coverage was withheld because events were lost.
    pub windows_without_coverage: u64,
    pub losses: Losses,
    /// Budget mode: functions paused, visits made, link rebuilds, edge
    /// records with estimated counts.
    pub budget: Option<Box<BudgetSummary>>,
    /// Functions probed.
    pub functions: usize,
    /// How their entries are probed (nop-optimized, emulated, single-stepped).
    pub plan: PlanSummary,
    /// Creating the maps and loading the program.
    pub load: Duration,
    /// Creating the uprobe_multi link (all probes).
    pub attach: Duration,
    pub detach: Duration,
}

impl Summary {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "mode": "exact",
            "functions": self.functions,
            "entries": self.plan.to_json(),
            "edges": self.edges,
            "hits": self.hits,
            "windows": self.windows,
            "windows_without_coverage": self.windows_without_coverage,
            "losses": self.losses.lost(),
            "loss_detail": self.losses.to_json(),
            "load_ms": self.load.as_secs_f64() * 1e3,
            "attach_ms": self.attach.as_secs_f64() * 1e3,
            "detach_ms": self.detach.as_secs_f64() * 1e3,
            "budget": self.budget.as_deref().map(BudgetSummary::to_json),
        })
    }
}

/// What a budget did over a session.
#[derive(Clone, Debug, Default)]
pub struct BudgetSummary {
    pub percent: f64,
    /// Functions out of the link at the end.
    pub paused: usize,
    /// Their names (sorted).
    pub paused_functions: Vec<String>,
    /// Visits of paused functions (one function, one visit).
    pub visits: u64,
    /// Times the traced thread was stopped at a new edge and every paused
    /// function came back for a visit.
    pub new_edge_stops: u64,
    /// Times the link was rebuilt without newly paused functions.
    pub link_rebuilds: u64,
    /// Edge records whose counts are estimates.
    pub estimated_edges: u64,
    /// The session's ledger: wall time of the windows and the probes'
    /// estimated cost in it (calls × cost of their entry kind).
    pub ledger: Ledger,
    /// The traced process's CPU time (user + system) and its system time,
    /// which is where the probes' cost lands (`None`: no single process).
    pub cpu: Option<Ledger>,
    /// Measured cost ÷ estimated cost (scales the per-call costs).
    pub cost_scale: f64,
}

impl BudgetSummary {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "percent": self.percent,
            "paused": self.paused,
            "paused_functions": self.paused_functions,
            "visits": self.visits,
            "new_edge_stops": self.new_edge_stops,
            "link_rebuilds": self.link_rebuilds,
            "estimated_edges": self.estimated_edges,
            "elapsed_ms": self.ledger.elapsed_ms.round(),
            "probe_cost_ms": self.ledger.spent_ms.round(),
            "process_cpu_ms": self.cpu.map(|c| c.elapsed_ms.round()),
            "process_system_ms": self.cpu.map(|c| c.spent_ms.round()),
            "cost_scale": (self.cost_scale * 1e3).round() / 1e3,
        })
    }
}

/// The calls of one function per caller, measured over `ms`.
#[derive(Clone, Debug, Default)]
struct Rate {
    ms: f64,
    callers: BTreeMap<String, u64>,
}

/// How long `callers`' calls would have taken without the probe: `ms` less
/// the probes' own cost (at least 5% of `ms`). A rate measured while probed
/// is slower than the program's own, since the probe took most of the time.
fn unprobed_ms(ms: f64, callers: &BTreeMap<String, u64>, kind: EntryKind) -> f64 {
    let calls: u64 = callers.values().sum();
    (ms - calls as f64 * kind.cost_ns() / 1e6).max(ms * 0.05)
}

/// CPU time of a process so far, in ms.
#[derive(Clone, Copy, Debug)]
struct CpuTimes {
    user_ms: f64,
    system_ms: f64,
}

/// From /proc/PID/stat (fields 14 and 15, in clock ticks).
fn cpu_times(pid: u32) -> Option<CpuTimes> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // SAFETY: sysconf reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    Some(CpuTimes {
        user_ms: ticks(11)? * 1e3 / hz,
        system_ms: ticks(12)? * 1e3 / hz,
    })
}

/// CPU time of process `pid` so far (all its threads, user and system),
/// in ns, from its CPU clock (`clock_getcpuclockid`): exact, unlike the
/// tick-granular /proc figures. `None` for no process or one that is gone.
fn process_cpu_ns(pid: u32) -> Option<u64> {
    if pid == 0 {
        return None;
    }
    let mut clock: libc::clockid_t = 0;
    // SAFETY: `clock` outlives the call.
    if unsafe { libc::clock_getcpuclockid(pid as libc::pid_t, &mut clock) } != 0 {
        return None;
    }
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` outlives the call.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return None;
    }
    Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

impl BudgetState {
    /// Measured ÷ estimated cost of the probes so far (1 until both are
    /// large enough to compare), within [0.25, 50].
    fn cost_scale(&self) -> f64 {
        match &self.cpu {
            Some((cpu, _)) if self.ledger.spent_ms > 20.0 && cpu.spent_ms > 50.0 => {
                (cpu.spent_ms / self.ledger.spent_ms).clamp(0.25, 50.0)
            }
            _ => 1.0,
        }
    }

    /// The credit left: from the process's CPU times when there is one
    /// process, else from the estimate, less the visits started since.
    fn credit_ms(&self) -> f64 {
        let credit = match &self.cpu {
            Some((cpu, _)) => cpu.credit_ms(self.budget.fraction),
            None => self.ledger.credit_ms(self.budget.fraction),
        };
        credit - self.committed_ms
    }
}

/// Paused functions back in a link of their own for a short while.
struct Visit {
    link: OwnedFd,
    functions: Vec<usize>,
    started: Instant,
    /// The traced process's CPU time when it started (ns; `None`: no
    /// single traced process).
    cpu_started: Option<u64>,
    /// How long it is to last: in the traced process's CPU time when there
    /// is one (time it spends stopped, or waiting for a CPU, does not
    /// count), else in wall time.
    ms: f64,
    /// A visit of every paused function after a new edge.
    all: bool,
}

impl Visit {
    /// Whether the visit has lasted its time (see [`Visit::ms`]) for
    /// process `pid`.
    fn due(&self, pid: u32) -> bool {
        match self.cpu_started {
            // Gone: nothing more to see.
            Some(started) => process_cpu_ns(pid)
                .is_none_or(|now| now.saturating_sub(started) as f64 / 1e6 >= self.ms),
            None => self.started.elapsed().as_secs_f64() * 1e3 >= self.ms,
        }
    }
}

/// Stops of the traced thread at new edges (see [`Session::stop_on_new_edges`]).
#[derive(Clone, Copy, Debug)]
struct NewEdgeStops {
    tid: u32,
    signal: i32,
    /// Whether the kernel holds the one-shot signal.
    armed: bool,
}

/// The state of `--budget`.
struct BudgetState {
    budget: Budget,
    /// Generation of the current links (the high half of their cookies).
    generation: u32,
    paused: Vec<bool>,
    /// Window of each paused function's last visit (or of its pause).
    last_visit: Vec<u64>,
    /// Windows ended so far.
    window: u64,
    /// Callers seen so far, per function.
    known_callers: Vec<std::collections::HashSet<String>>,
    /// Window in which each function last had a new caller.
    new_caller_in: Vec<u64>,
    ledger: Ledger,
    /// The traced process's CPU time as a ledger (spent: its system time,
    /// where the traps and the BPF program run) and the last reading.
    cpu: Option<(Ledger, CpuTimes)>,
    /// The traced process's CPU clock at the last window's end (ns) and
    /// its CPU time in that window (ms): what its probes' cost is weighed
    /// against when functions are paused (`None`: no single process).
    cpu_clock: Option<(u64, Option<f64>)>,
    visit: Option<Visit>,
    /// How long each function was visited in visits that ended since the
    /// last window.
    visited_ms: std::collections::HashMap<usize, f64>,
    /// Calls of paused functions per caller counted since their last rate
    /// (by visits, which may span windows).
    visit_calls: std::collections::HashMap<usize, BTreeMap<String, u64>>,
    /// Estimated cost of the visits started since the ledger's last update.
    committed_ms: f64,
    /// An error attaching a visit between windows, reported at the drain.
    visit_error: Option<ProbeError>,
    rates: std::collections::HashMap<usize, Rate>,
    /// Entry kind of each function (its cost per call).
    kinds: Vec<EntryKind>,
    /// Calls per callee and caller in the last window.
    last_window: BTreeMap<usize, BTreeMap<String, u64>>,
    new_edge_stops: Option<NewEdgeStops>,
}

/// A running exact-mode probe. Dropping it detaches everything.
pub struct Session {
    kernel: Kernel,
    counts: ExactCounts,
    binary: PathBuf,
    /// File offset of each function's probe.
    offsets: Vec<u64>,
    pid: u32,
    budget: Option<Box<BudgetState>>,
    // Field order matters for drop: the link before the program and maps.
    link: Option<OwnedFd>,
    _prog: OwnedFd,
    names: Vec<String>,
    /// The names of the functions in the link, sorted (coverage records).
    sorted_names: Vec<String>,
    skipped: Vec<String>,
    artifact: String,
    source: String,
    symbolizer: Symbolizer,
    window_start: u64,
    detached_at: Option<u64>,
    /// Whether the probes are (or were, until `detached_at`) in place.
    attached: bool,
    losses_reported: Losses,
    summary: Summary,
}

/// The functions of `info` to probe: every probeable one, or those named in
/// `wanted` (first symbol of a name; one probe per address). Also returns the
/// wanted names that the binary does not have.
pub fn choose_functions<'a>(
    info: &'a ElfInfo,
    wanted: Option<&[String]>,
) -> (Vec<&'a Symbol>, Vec<String>) {
    let Some(list) = wanted else {
        return (info.probeable_functions().collect(), Vec::new());
    };
    let mut by_name: std::collections::HashMap<&str, &Symbol> = std::collections::HashMap::new();
    for s in info.probeable_functions() {
        by_name.entry(s.name.as_str()).or_insert(s);
    }
    // Demangled names are accepted too (indexed only when needed).
    let mut demangled: Option<std::collections::HashMap<String, &Symbol>> = None;
    let mut chosen = Vec::new();
    let mut skipped = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for name in list {
        let found = by_name.get(name.as_str()).copied().or_else(|| {
            demangled
                .get_or_insert_with(|| {
                    let mut index = std::collections::HashMap::new();
                    for s in info.probeable_functions() {
                        if let Some(d) = demangle(&s.name) {
                            index.entry(d).or_insert(s);
                        }
                    }
                    index
                })
                .get(name.as_str())
                .copied()
        });
        match found {
            Some(s) if seen.insert(s.addr) => chosen.push(s),
            Some(_) => {}
            None => skipped.push(name.clone()),
        }
    }
    (chosen, skipped)
}

/// The probe plan of `binary` (every function, or those named): where each
/// entry probe goes and how the kernel will handle it. Attaches nothing.
pub fn plan(
    binary: &std::path::Path,
    functions: Option<&[String]>,
) -> Result<(Vec<EntryPlan>, Vec<String>), ProbeError> {
    let info = ElfInfo::read(binary)?;
    let (chosen, skipped) = choose_functions(&info, functions);
    let kernel = KernelFeatures::running();
    Ok((
        chosen
            .iter()
            .map(|s| plan_entry(&info, s, kernel))
            .collect(),
        skipped,
    ))
}

/// The default `source`: `ebpf:<hostname>`.
pub fn default_source() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("ebpf:{}", host.trim())
}

impl Session {
    /// Loads the program and attaches it to the chosen functions.
    pub fn attach(config: &Config) -> Result<Session, ProbeError> {
        let binary = std::fs::canonicalize(&config.binary)
            .map_err(|e| ProbeError::file(&config.binary, e))?;
        let info = ElfInfo::read(&binary)?;
        let (chosen, skipped) = choose_functions(&info, config.functions.as_deref());
        if chosen.is_empty() {
            return Err(ProbeError::NothingToProbe {
                binary,
                missing: skipped,
            });
        }
        let kernel_features = KernelFeatures::running();
        let plans: Vec<EntryPlan> = chosen
            .iter()
            .map(|s| plan_entry(&info, s, kernel_features))
            .collect();
        let offsets: Vec<u64> = plans
            .iter()
            .map(|p| info.file_offset(p.probe_addr).unwrap())
            .collect();
        let cookies: Vec<u64> = (0..chosen.len() as u64).collect();
        let mut namer = Namer::new(config.names);
        let names: Vec<String> = chosen.iter().map(|s| namer.name(&s.name)).collect();

        let started = Instant::now();
        let kernel = Kernel::load(config.map_entries, 1)?;
        let prog = kernel.load_exact_program()?;
        let load = started.elapsed();
        let started = Instant::now();
        let link = crate::sys::uprobe_multi_link(
            &prog,
            &binary,
            &offsets,
            &cookies,
            config.pid.unwrap_or(0),
        )
        .map_err(|e| {
            ProbeError::kernel(
                format!(
                    "attaching {} uprobes to {} (uprobe_multi)",
                    offsets.len(),
                    binary.display()
                ),
                e,
            )
        })?;
        let attach = started.elapsed();

        let artifact = config
            .artifact
            .clone()
            .unwrap_or_else(|| match &info.build_id {
                Some(id) => format!("build-id:{id}"),
                None => format!("path:{}", binary.display()),
            });
        let main = file_id(&binary).ok();
        let summary = Summary {
            functions: names.len(),
            plan: PlanSummary::of(&plans),
            load,
            attach,
            ..Default::default()
        };
        let mut symbolizer = Symbolizer::new(main);
        symbolizer.set_name_style(config.names);
        if let Some(pid) = config.pid {
            // Read its maps now, in case it exits before the first drain.
            symbolizer.refresh(pid);
        }
        let budget = config.budget.map(|budget| {
            Box::new(BudgetState {
                budget,
                generation: 0,
                paused: vec![false; names.len()],
                last_visit: vec![0; names.len()],
                window: 0,
                known_callers: vec![Default::default(); names.len()],
                new_caller_in: vec![0; names.len()],
                ledger: Ledger::default(),
                cpu: config
                    .pid
                    .and_then(cpu_times)
                    .map(|t| (Ledger::default(), t)),
                cpu_clock: config.pid.and_then(process_cpu_ns).map(|ns| (ns, None)),
                visit: None,
                visited_ms: Default::default(),
                visit_calls: Default::default(),
                committed_ms: 0.0,
                visit_error: None,
                rates: Default::default(),
                kinds: plans.iter().map(|p| p.kind).collect(),
                last_window: BTreeMap::new(),
                new_edge_stops: None,
            })
        });
        let mut summary = summary;
        summary.budget = config.budget.map(|b| {
            Box::new(BudgetSummary {
                percent: b.fraction * 100.0,
                ..Default::default()
            })
        });
        Ok(Session {
            kernel,
            counts: ExactCounts::default(),
            binary,
            offsets: offsets.clone(),
            pid: config.pid.unwrap_or(0),
            budget,
            link: Some(link),
            _prog: prog,
            sorted_names: {
                let mut s = names.clone();
                s.sort();
                s
            },
            names,
            skipped,
            artifact,
            source: config.source.clone().unwrap_or_else(default_source),
            symbolizer,
            window_start: now_ms(),
            detached_at: None,
            attached: true,
            losses_reported: Losses::default(),
            summary,
        })
    }

    /// Runs of the kernel program and the time spent in them (counted only
    /// while the sysctl kernel.bpf_stats_enabled is 1).
    pub fn program_stats(&self) -> Option<(u64, u64)> {
        crate::sys::prog_run_stats(&self._prog).ok()
    }

    /// The artifact id the records carry.
    pub fn artifact(&self) -> &str {
        &self.artifact
    }

    /// The probed functions, in attach order.
    pub fn functions(&self) -> &[String] {
        &self.names
    }

    /// Requested functions that the binary does not have.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// Reads the memory maps of `pid` now (for example at its exit stop),
    /// so that its addresses resolve after it is gone.
    pub fn remember_process(&mut self, pid: u32) {
        self.symbolizer.refresh(pid);
    }

    /// Ends one window: the edges counted since the last drain, and the
    /// coverage of the window (withheld if events were lost in it: a lost
    /// call must not pass for a function that did not run).
    pub fn drain(&mut self) -> Result<Vec<Record>, ProbeError> {
        let now = now_ms();
        // A visit goes on across windows until it has lasted its time: cut
        // at a window's end it could be over before the program ran (a
        // new-edge stop's visit starts while the thread is stopped).
        self.end_visit_if_due();
        if let Some(e) = self.budget.as_mut().and_then(|b| b.visit_error.take()) {
            return Err(e);
        }
        let window_ms = now.saturating_sub(self.window_start).max(1) as f64;
        let entries = self.read_counts()?;
        let records = self.window(entries, now)?;
        if self.budget.is_some() {
            self.rebalance(window_ms)?;
            self.start_visit()?;
        }
        Ok(records)
    }

    /// Called often (every few ms) by the collection loop: ends a visit of
    /// paused functions once it has lasted long enough, and starts the next
    /// one if the credit allows.
    pub fn tick(&mut self) {
        if self.budget.is_none() {
            return;
        }
        self.end_visit_if_due();
        if let Err(e) = self.start_visit().and_then(|()| self.arm_new_edge_stop()) {
            if let Some(state) = self.budget.as_mut() {
                state.visit_error = Some(e);
            }
        }
    }

    /// Budget mode with a traced thread that the caller can stop and
    /// resume (a command under ptrace): while functions are paused and the
    /// credit holds a visit of all of them, the kernel sends `signal` to
    /// thread `tid` when it counts an edge it has never seen (once; armed
    /// again after the visit). The thread stops before the new edge's
    /// callee runs; the caller then calls [`Session::new_edge_stop`] and
    /// resumes it without the signal. A new edge is a sign of a new phase
    /// of the program, whose calls of paused functions would be missed
    /// (at the end of a run, before the next visit). Without a budget this
    /// does nothing.
    pub fn stop_on_new_edges(&mut self, tid: u32, signal: i32) {
        if let Some(state) = self.budget.as_mut() {
            state.new_edge_stops = Some(NewEdgeStops {
                tid,
                signal,
                armed: false,
            });
        }
    }

    /// The traced thread stopped at a new edge (the kernel's signal, see
    /// [`Session::stop_on_new_edges`]): every paused function comes back for
    /// a visit before it goes on.
    pub fn new_edge_stop(&mut self) {
        let Some(state) = self.budget.as_mut() else {
            return;
        };
        if let Some(stops) = state.new_edge_stops.as_mut() {
            stops.armed = false;
        }
        if let Some(summary) = self.summary.budget.as_mut() {
            summary.new_edge_stops += 1;
        }
        self.end_visit();
        if let Err(e) = self.start_visit_of_all() {
            if let Some(state) = self.budget.as_mut() {
                state.visit_error = Some(e);
            }
        }
    }

    /// The paused functions that may visit now (all: every paused one),
    /// with their loads.
    fn visit_candidates(&self, all: bool) -> Vec<Candidate> {
        let Some(state) = self.budget.as_ref() else {
            return Vec::new();
        };
        let every = state.budget.revisit_every.max(1);
        let scale = state.cost_scale();
        (0..self.names.len())
            .filter(|&f| state.paused[f] && (all || state.last_visit[f] + every <= state.window))
            .map(|f| {
                let load = state.rates.get(&f).map_or(1e3, |r| {
                    let calls: u64 = r.callers.values().sum();
                    calls as f64 / r.ms.max(1e-3) * state.kinds[f].cost_ns() / 1e6 * scale
                });
                Candidate {
                    function: f,
                    last_visit: state.last_visit[f],
                    load,
                }
            })
            .collect()
    }

    /// The visit of every paused function that a new-edge stop would start
    /// (`None`: nothing paused, or no such stops).
    fn new_edge_visit(&self) -> Option<VisitPlan> {
        let state = self.budget.as_ref()?;
        state.new_edge_stops?;
        phase_visit(
            &self.visit_candidates(true),
            state.budget.revisit_for.as_secs_f64() * 1e3,
        )
    }

    /// Arms the kernel's new-edge signal when the credit holds a visit of
    /// every paused function and none is under way.
    fn arm_new_edge_stop(&mut self) -> Result<(), ProbeError> {
        let Some(plan) = self.new_edge_visit() else {
            return Ok(());
        };
        let attached = self.attached;
        let Some(state) = self.budget.as_mut() else {
            return Ok(());
        };
        let Some(stops) = state.new_edge_stops else {
            return Ok(());
        };
        let busy = state.visit.as_ref().is_some_and(|v| v.all);
        if stops.armed || busy || !attached || state.credit_ms() < plan.cost_ms {
            return Ok(());
        }
        self.kernel
            .arm_new_edge_signal(Some((stops.tid, stops.signal)))?;
        if let Some(s) = state.new_edge_stops.as_mut() {
            s.armed = true;
        }
        Ok(())
    }

    /// Puts every paused function back in a visit link (after a new edge).
    fn start_visit_of_all(&mut self) -> Result<(), ProbeError> {
        if !self.attached {
            return Ok(());
        }
        let Some(plan) = self.new_edge_visit() else {
            return Ok(());
        };
        self.attach_visit(plan, true)
    }

    /// Ends the visit under way if it has lasted its time.
    fn end_visit_if_due(&mut self) {
        let pid = self.pid;
        if self
            .budget
            .as_ref()
            .and_then(|b| b.visit.as_ref())
            .is_some_and(|v| v.due(pid))
        {
            self.end_visit();
        }
    }

    /// Closes the visit link (if open) and notes how long each of its
    /// functions was visited.
    fn end_visit(&mut self) {
        let Some(state) = self.budget.as_mut() else {
            return;
        };
        if let Some(visit) = state.visit.take() {
            drop(visit.link);
            let ms = visit.started.elapsed().as_secs_f64() * 1e3;
            for f in visit.functions {
                *state.visited_ms.entry(f).or_default() += ms;
            }
        }
    }

    /// Budget mode, after a window: pauses the functions whose probes cost
    /// too much (they leave the link, rebuilt without them), once the
    /// warm-up is over.
    fn rebalance(&mut self, window_ms: f64) -> Result<(), ProbeError> {
        let Some(state) = self.budget.as_mut() else {
            return Ok(());
        };
        state.window += 1;
        if state.window < state.budget.warmup_windows {
            return Ok(());
        }
        let last = state.window - 1;
        let loads: Vec<Load> = state
            .last_window
            .iter()
            .filter(|(f, _)| !state.paused[**f])
            .map(|(&f, callers)| Load {
                function: f,
                calls: callers.values().sum(),
                kind: state.kinds[f],
                stable: state.new_caller_in[f] < last,
            })
            .collect();
        // The window as the traced process lived it: its CPU time, when there
        // is one process (on a loaded machine far less than the wall time,
        // which would make its probes look cheap), else the wall time.
        let lived_ms = state
            .cpu_clock
            .and_then(|(_, ms)| ms)
            .filter(|ms| *ms > 0.0)
            .unwrap_or(window_ms);
        let newly = choose_pauses(
            &loads,
            lived_ms * 1e6,
            state.budget.fraction,
            state.cost_scale(),
        );
        if newly.is_empty() {
            return Ok(());
        }
        for &f in &newly {
            state.paused[f] = true;
            state.last_visit[f] = state.window;
            let callers = state.last_window.get(&f).cloned().unwrap_or_default();
            let ms = unprobed_ms(window_ms, &callers, state.kinds[f]);
            state.rates.insert(f, Rate { ms, callers });
        }
        self.rebuild_link()
    }

    /// Replaces the link by one without the paused functions. The new link
    /// goes in before the old one leaves, so a function in both is never
    /// unprobed; the generation switch makes exactly one of them count.
    fn rebuild_link(&mut self) -> Result<(), ProbeError> {
        let Some(state) = self.budget.as_mut() else {
            return Ok(());
        };
        let generation = state.generation + 1;
        let kept: Vec<usize> = (0..self.names.len())
            .filter(|&f| !state.paused[f])
            .collect();
        let new_link = if kept.is_empty() {
            None
        } else {
            let offsets: Vec<u64> = kept.iter().map(|&f| self.offsets[f]).collect();
            let cookies: Vec<u64> = kept
                .iter()
                .map(|&f| ((generation as u64) << 32) | f as u64)
                .collect();
            Some(
                crate::sys::uprobe_multi_link(
                    &self._prog,
                    &self.binary,
                    &offsets,
                    &cookies,
                    self.pid,
                )
                .map_err(|e| ProbeError::kernel("rebuilding the uprobe_multi link", e))?,
            )
        };
        self.kernel.set_exact_generation(generation)?;
        state.generation = generation;
        let old = std::mem::replace(&mut self.link, new_link);
        drop(old);
        let mut names: Vec<String> = kept.iter().map(|&f| self.names[f].clone()).collect();
        names.sort();
        self.sorted_names = names;
        if let Some(summary) = self.summary.budget.as_mut() {
            summary.link_rebuilds += 1;
            summary.paused = state.paused.iter().filter(|&&p| p).count();
            let mut paused: Vec<String> = (0..self.names.len())
                .filter(|&f| state.paused[f])
                .map(|f| self.names[f].clone())
                .collect();
            paused.sort();
            summary.paused_functions = paused;
        }
        Ok(())
    }

    /// Puts the paused functions whose turn it is back in a link of their
    /// own until [`Session::tick`] ends the visit (see
    /// [`crate::budget::choose_visit`]). Each function visits at most once
    /// every `revisit_every` windows.
    fn start_visit(&mut self) -> Result<(), ProbeError> {
        let Some(state) = self.budget.as_mut() else {
            return Ok(());
        };
        if state.visit.is_some() || !self.attached {
            return Ok(());
        }
        // While new-edge stops are possible, a visit of every paused
        // function stays in reserve.
        let reserve = self.new_edge_visit().map_or(0.0, |p| p.cost_ms);
        let Some(state) = self.budget.as_ref() else {
            return Ok(());
        };
        let Some(plan) = choose_visit(
            &self.visit_candidates(false),
            state.budget.revisit_for.as_secs_f64() * 1e3,
            state.credit_ms() - reserve,
            state.budget.revisits_at_once,
        ) else {
            return Ok(());
        };
        self.attach_visit(plan, false)
    }

    /// Attaches the link of a visit and books it.
    fn attach_visit(&mut self, plan: VisitPlan, all: bool) -> Result<(), ProbeError> {
        let Some(state) = self.budget.as_mut() else {
            return Ok(());
        };
        let offsets: Vec<u64> = plan.functions.iter().map(|&f| self.offsets[f]).collect();
        let cookies: Vec<u64> = plan
            .functions
            .iter()
            .map(|&f| ((state.generation as u64) << 32) | f as u64)
            .collect();
        let link =
            crate::sys::uprobe_multi_link(&self._prog, &self.binary, &offsets, &cookies, self.pid)
                .map_err(|e| ProbeError::kernel("attaching a visit of paused functions", e))?;
        for &f in &plan.functions {
            state.last_visit[f] = state.window;
        }
        state.committed_ms += plan.cost_ms;
        if let Some(summary) = self.summary.budget.as_mut() {
            summary.visits += plan.functions.len() as u64;
        }
        state.visit = Some(Visit {
            link,
            functions: plan.functions,
            started: Instant::now(),
            cpu_started: process_cpu_ns(self.pid),
            ms: plan.ms,
            all,
        });
        Ok(())
    }

    /// Calls counted since the last read. Keys of reaped processes are
    /// dropped after their last read (`/proc/TGID` gone: no thread left).
    fn read_counts(&mut self) -> Result<Vec<(crate::kernel::ExactKey, u64)>, ProbeError> {
        self.kernel.exact_deltas(&mut self.counts, |tgid| {
            !std::path::Path::new(&format!("/proc/{tgid}")).exists()
        })
    }

    /// Detaches every probe (one link: a single close) and returns the
    /// records of the last window.
    pub fn finish(&mut self) -> Result<Vec<Record>, ProbeError> {
        self.end_visit();
        self.detach();
        let now = self.detached_at.unwrap_or_else(now_ms);
        // Closing the link waited for programs in flight: this read is final.
        let entries = self.read_counts()?;
        self.window(entries, now)
    }

    /// Removes all probes now (the maps stay readable).
    pub fn detach(&mut self) {
        if self.attached {
            if self
                .budget
                .as_ref()
                .is_some_and(|b| b.new_edge_stops.is_some_and(|s| s.armed))
            {
                let _ = self.kernel.arm_new_edge_signal(None);
            }
            self.end_visit();
            let started = Instant::now();
            drop(self.link.take());
            self.summary.detach = started.elapsed();
            self.detached_at = Some(now_ms());
            self.attached = false;
        }
    }

    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    fn window(
        &mut self,
        entries: Vec<(crate::kernel::ExactKey, u64)>,
        now: u64,
    ) -> Result<Vec<Record>, ProbeError> {
        self.symbolizer.new_round();
        // Calls per callee (function index) and caller.
        let mut measured: BTreeMap<usize, BTreeMap<String, u64>> = BTreeMap::new();
        for (key, hits) in entries {
            let callee = key.cookie as usize;
            if callee >= self.names.len() {
                continue;
            }
            let caller = if key.ret == 0 {
                "[unknown]".to_string()
            } else {
                // ret - 1: the call instruction, inside the caller even when
                // the call is the caller's last instruction.
                self.symbolizer.resolve(key.tgid, key.ret - 1)
            };
            *measured
                .entry(callee)
                .or_default()
                .entry(caller)
                .or_default() += hits;
        }
        let window_ms = now.saturating_sub(self.window_start).max(1) as f64;
        if let Some(state) = self.budget.as_mut() {
            // The ledger: what the calls counted in the window cost.
            state.ledger.elapsed_ms += window_ms;
            for (&f, callers) in &measured {
                let calls: u64 = callers.values().sum();
                state.ledger.spent_ms += calls as f64 * state.kinds[f].cost_ns() / 1e6;
                for caller in callers.keys() {
                    if state.known_callers[f].insert(caller.clone()) {
                        state.new_caller_in[f] = state.window;
                    }
                }
            }
            if let Some((last, window_cpu_ms)) = state.cpu_clock.as_mut() {
                if let Some(now) = process_cpu_ns(self.pid) {
                    *window_cpu_ms = Some(now.saturating_sub(*last) as f64 / 1e6);
                    *last = now;
                }
            }
            if let Some((cpu, last)) = state.cpu.as_mut() {
                if let Some(now) = cpu_times(self.pid) {
                    let system = (now.system_ms - last.system_ms).max(0.0);
                    let user = (now.user_ms - last.user_ms).max(0.0);
                    cpu.elapsed_ms += user + system;
                    cpu.spent_ms += system;
                    *last = now;
                }
            }
            state.committed_ms = 0.0;
            let scale = state.cost_scale();
            if let Some(summary) = self.summary.budget.as_mut() {
                summary.ledger = state.ledger;
                summary.cpu = state.cpu.map(|(c, _)| c);
                summary.cost_scale = scale;
            }
        }
        // (caller, callee) → (hits, estimated)
        let mut edges: BTreeMap<(String, String), (u64, bool)> = BTreeMap::new();
        if let Some(state) = self.budget.as_mut() {
            // A paused function's counts are estimates: its last measured
            // rate per caller over the window, or what a visit measured,
            // scaled to the window. A visit's calls are gathered over the
            // windows it spans; its rate is taken once it has ended.
            for (&f, callers) in &measured {
                if state.paused[f] {
                    let gathered = state.visit_calls.entry(f).or_default();
                    for (caller, &n) in callers {
                        *gathered.entry(caller.clone()).or_default() += n;
                    }
                }
            }
            for (f, rate) in state.rates.iter_mut() {
                if let Some(&ms) = state.visited_ms.get(f).filter(|ms| **ms > 0.0) {
                    let callers = state.visit_calls.remove(f).unwrap_or_default();
                    let ms = unprobed_ms(ms, &callers, state.kinds[*f]);
                    *rate = Rate { ms, callers };
                }
            }
            state.visited_ms.clear();
            // Only the visit under way has calls still to gather.
            let visiting: Vec<usize> = state
                .visit
                .as_ref()
                .map(|v| v.functions.clone())
                .unwrap_or_default();
            state.visit_calls.retain(|f, _| visiting.contains(f));
            for f in (0..self.names.len()).filter(|&f| state.paused[f]) {
                let mut callers: BTreeMap<String, u64> = BTreeMap::new();
                if let Some(rate) = state.rates.get(&f) {
                    for (caller, &n) in &rate.callers {
                        callers.insert(caller.clone(), estimate(n, rate.ms, window_ms));
                    }
                }
                for (caller, &n) in measured.get(&f).into_iter().flatten() {
                    let e = callers.entry(caller.clone()).or_default();
                    *e = (*e).max(n);
                }
                for (caller, n) in callers.into_iter().filter(|(_, n)| *n > 0) {
                    edges.insert((caller, self.names[f].clone()), (n, true));
                }
            }
        }
        for (&f, callers) in &measured {
            if self.budget.as_ref().is_some_and(|b| b.paused[f]) {
                continue;
            }
            for (caller, &n) in callers {
                edges.insert((caller.clone(), self.names[f].clone()), (n, false));
            }
        }
        if let Some(state) = self.budget.as_mut() {
            state.last_window = measured;
        }
        let mut out = Vec::with_capacity(edges.len() + 1);
        for ((caller, callee), (hits, estimated)) in edges {
            self.summary.edges += 1;
            self.summary.hits += hits;
            if estimated {
                if let Some(b) = self.summary.budget.as_mut() {
                    b.estimated_edges += 1;
                }
            }
            out.push(Record::Edge(EdgeObservation {
                artifact: self.artifact.clone(),
                caller,
                callee,
                at: now,
                hits,
                source: self.source.clone(),
                event_id: None,
                estimated,
            }));
        }
        let losses = self.kernel.losses()?;
        let new_losses = losses.since(&self.losses_reported);
        self.losses_reported = losses;
        self.summary.losses = losses;
        self.summary.windows += 1;
        let probed_in_window =
            self.attached || self.detached_at.is_some_and(|t| t > self.window_start);
        let lost = (new_losses.exact_map_full > 0).then(|| new_losses.lost());
        let window = Window {
            artifact: &self.artifact,
            source: &self.source,
            probed: &self.sorted_names,
            from: self.window_start,
            to: now,
        };
        if let Some(coverage) = window.coverage(lost, probed_in_window) {
            self.summary.windows_without_coverage += coverage.lost.is_some() as u64;
            out.push(Record::Coverage(coverage));
        }
        self.window_start = now;
        Ok(out)
    }
}

/// A drain window of an exact collector: `[from, to)` over the functions
/// it probed.
pub(crate) struct Window<'a> {
    pub artifact: &'a str,
    pub source: &'a str,
    pub probed: &'a [String],
    pub from: u64,
    pub to: u64,
}

impl Window<'_> {
    /// The coverage record that closes the window. With `lost` calls, one
    /// that carries the loss and claims no function: the loss goes into
    /// the stream, the coverage it spoils does not. Otherwise the probed
    /// functions, if they were `probed_all_window` and the window is not
    /// empty.
    pub fn coverage(&self, lost: Option<u64>, probed_all_window: bool) -> Option<Coverage> {
        let covered = |symbols: Vec<String>, to, lost| Coverage {
            artifact: self.artifact.to_string(),
            symbols,
            from: self.from,
            to,
            source: self.source.to_string(),
            lost,
        };
        match lost {
            Some(lost) => Some(covered(Vec::new(), self.to.max(self.from), Some(lost))),
            None if probed_all_window && self.to > self.from => {
                Some(covered(self.probed.to_vec(), self.to, None))
            }
            None => None,
        }
    }
}
