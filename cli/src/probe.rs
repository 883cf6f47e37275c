//! `tracemerge probe …`: the eBPF collectors (crate `tracemerge-ebpf`) and
//! the ETW collector (crate `tracemerge-etw`, Windows only).
//!
//! Writes the record stream (DESIGN.md §3) to stdout or `-o FILE`, one
//! window at a time, then a final watermark; a one-line summary (edges,
//! hits, losses, attach/detach time) goes to stderr. With `-- COMMAND` the
//! command runs under the probe and its exit code becomes ours.

use crate::error::CliError;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use tracemerge_ebpf::run::{self, Collector, Options, Target};
use tracemerge_ebpf::target;
use tracemerge_records::Record;

#[derive(clap::Subcommand)]
pub enum ProbeCommand {
    /// Exact mode: an entry uprobe on every chosen function of a binary;
    /// caller → callee counts per window, and coverage of the probed functions.
    Exact {
        /// The ELF executable or library whose functions are probed.
        #[arg(long)]
        binary: PathBuf,
        /// Probe only these functions (one name per line, `#` comments);
        /// default: every function with a symbol.
        #[arg(long)]
        functions: Option<PathBuf>,
        /// Keep the traced program's slowdown near PCT (`10%`): hot functions
        /// whose callers are known leave the probes for a while, come back
        /// briefly every few windows, and their counts are marked
        /// `"estimated"`; coverage claims only functions probed all window.
        #[arg(long, value_name = "PCT", value_parser = parse_budget)]
        budget: Option<tracemerge_ebpf::budget::Budget>,
        /// How entries are counted. `uprobe` (default): kernel probes, the
        /// traced program is not changed. `patch`: functions whose entry is a
        /// 5-byte nop (gcc -fpatchable-function-entry=5, -mfentry
        /// -mnop-mcount) are counted by a stub the collector injects into
        /// the traced process, their nops rewritten into calls of it (no
        /// kernel on the call path, ~0.03 µs per call instead of ~0.4 µs);
        /// this WRITES INTO THE TRACED PROCESS's memory (under ptrace; the
        /// nops are put back at the end with --pid). Needs --pid or a
        /// command; the other functions get uprobes; --budget never pauses
        /// patched functions.
        #[arg(long, value_enum, default_value_t = EntriesArg::Uprobe)]
        entries: EntriesArg,
        #[command(flatten)]
        common: Common,
    },
    /// Before attaching: per function, where its entry probe goes and how
    /// the kernel will run it (nop-optimized, emulated or single-stepped),
    /// with the expected cost class per call, and a summary. Needs no root.
    Plan {
        /// The ELF executable or library whose functions would be probed.
        #[arg(long)]
        binary: PathBuf,
        /// Only these functions (one name per line, `#` comments).
        #[arg(long)]
        functions: Option<PathBuf>,
        /// One JSON object instead of the table.
        #[arg(long)]
        json: bool,
        /// As `probe exact --entries`: with `patch`, the functions whose
        /// nop entry would be patched are shown as `patched`.
        #[arg(long, value_enum, default_value_t = EntriesArg::Uprobe)]
        entries: EntriesArg,
    },
    /// Sampling mode: perf-event CPU samples with user stacks (frame
    /// pointers); edges from adjacent frames, hits for leaf frames.
    Sample {
        /// Samples per second on each CPU.
        #[arg(long, default_value_t = 99)]
        frequency: u64,
        #[command(flatten)]
        common: Common,
    },
    /// ETW (Windows): a real-time kernel session with stack walks on CPU
    /// samples and image loads; edges from adjacent frames, assembled by the
    /// ETL decoder's rules (see probes/etw/README.md).
    Etw(EtwArgs),
}

/// `--entries`: how `probe exact` counts function entries.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntriesArg {
    /// Entry uprobes (the kernel's; the program is not changed).
    Uprobe,
    /// Nop entries patched into calls of a counter in the process.
    Patch,
}

#[derive(clap::Args)]
pub struct EtwArgs {
    /// User-mode provider (GUID) whose events are recorded with stacks; repeatable.
    #[arg(long = "provider", value_name = "GUID", value_parser = tracemerge_etw::parse_guid)]
    providers: Vec<u128>,
    /// Edge endpoints: functions (`module!function` / `module!+0xRVA`) or modules.
    #[arg(long, value_enum, default_value_t = crate::etl::GranularityArg::Function)]
    granularity: crate::etl::GranularityArg,
    /// Symbol directory (symbol-server layout) searched for PDBs.
    #[arg(long, value_name = "DIR")]
    symbols: Option<PathBuf>,
    /// Process image name → artifact (as for `etl import`).
    #[arg(long, value_name = "FILE")]
    artifact_map: Option<PathBuf>,
    /// `source` of the records (default: `etw:<computer name>`).
    #[arg(long)]
    source: Option<String>,
    #[command(flatten)]
    session: Session,
}

/// The options of the eBPF collectors (`probe exact`, `probe sample`).
#[derive(clap::Args)]
pub struct Common {
    /// Artifact id of the records (default: `build-id:<hex>` of the binary).
    #[arg(long)]
    artifact: Option<String>,
    /// `source` of the records (default: `ebpf:<hostname>`).
    #[arg(long)]
    source: Option<String>,
    /// Capacity of the kernel count map per window (more is counted as loss).
    #[arg(long)]
    map_size: Option<u32>,
    /// Which name of a C++ or Rust function the records carry: the symbol
    /// (`mangled`, as most static call graphs name it) or `demangled`.
    #[arg(long, default_value = "mangled")]
    names: tracemerge_ebpf::demangle::NameStyle,
    #[command(flatten)]
    session: Session,
}

/// What every collector (eBPF and ETW) takes: what to trace, for how long,
/// how often it drains, and where the records go.
#[derive(clap::Args)]
pub struct Session {
    /// Drain interval and aggregation window: a duration, a whole number and
    /// ms, s, m or h (250ms, 10s, 10m, 2h), more than zero.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    window: Duration,
    /// Stop after this long (default: when the command or process exits, or
    /// on SIGINT/SIGTERM, Ctrl-C on Windows): a duration, as for `--window`.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Write the records here instead of stdout.
    #[arg(short = 'o', long = "output")]
    output: Option<PathBuf>,
    /// Trace this running process.
    #[arg(long, conflicts_with = "command")]
    pid: Option<u32>,
    /// Start this command and trace it until it exits.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<OsString>,
}

fn parse_budget(s: &str) -> Result<tracemerge_ebpf::budget::Budget, String> {
    tracemerge_ebpf::budget::Budget::parse(s).map_err(|e| e.to_string())
}

/// A probe's `--window` or `--duration`: the one duration syntax
/// ([`tracemerge_records::parse_duration`]), more than zero.
fn parse_duration(s: &str) -> Result<Duration, tracemerge_records::DurationError> {
    tracemerge_records::parse_nonzero_duration(s).map(Duration::from_millis)
}

struct Output {
    out: Box<dyn Write>,
}

impl Output {
    fn open(path: &Option<PathBuf>) -> Result<Output, CliError> {
        let out: Box<dyn Write> = match path {
            Some(p) => Box::new(std::io::BufWriter::new(
                std::fs::File::create(p).map_err(|e| CliError::io(p, e))?,
            )),
            None => Box::new(std::io::BufWriter::new(std::io::stdout())),
        };
        Ok(Output { out })
    }
    fn write(&mut self, records: &[Record]) -> Result<(), CliError> {
        let error = |e| CliError::output("writing records", e);
        for r in records {
            writeln!(self.out, "{}", r.to_json()).map_err(error)?;
        }
        self.out.flush().map_err(error)
    }
}

fn read_functions(path: &PathBuf) -> Result<Vec<String>, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| CliError::io(path, e))?;
    Ok(text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

pub fn run(cmd: ProbeCommand) -> Result<ExitCode, CliError> {
    if let ProbeCommand::Plan {
        binary,
        functions,
        json,
        entries,
    } = &cmd
    {
        return plan(binary, functions.as_ref(), *json, *entries);
    }
    if output_path(&cmd).is_some() {
        // collect_to writes them there; the command may have our stdout.
        return collect_to(cmd, &mut |_| Ok(()), true);
    }
    let mut output = Output::open(&None)?;
    collect_to(cmd, &mut |records| output.write(records), false)
}

/// The options of a collector (none for `plan`, which attaches nothing).
fn session(cmd: &ProbeCommand) -> Option<&Session> {
    match cmd {
        ProbeCommand::Exact { common, .. } | ProbeCommand::Sample { common, .. } => {
            Some(&common.session)
        }
        ProbeCommand::Etw(args) => Some(&args.session),
        ProbeCommand::Plan { .. } => None,
    }
}

fn output_path(cmd: &ProbeCommand) -> Option<PathBuf> {
    session(cmd).and_then(|session| session.output.clone())
}

/// Runs a probe; every window's records go to `sink`, and to the `-o`
/// file if one is given (under `watch`, which takes the records, that file
/// keeps them).
/// The caller keeps our standard output: a started command's goes to
/// standard error.
pub fn collect(
    cmd: ProbeCommand,
    sink: &mut dyn FnMut(&[Record]) -> Result<(), CliError>,
) -> Result<ExitCode, CliError> {
    collect_to(cmd, sink, false)
}

/// [`collect`]; `stdout_free`: a started command may write to our standard
/// output (the records go elsewhere).
fn collect_to(
    cmd: ProbeCommand,
    sink: &mut dyn FnMut(&[Record]) -> Result<(), CliError>,
    stdout_free: bool,
) -> Result<ExitCode, CliError> {
    let mut file = match output_path(&cmd) {
        Some(path) => Some(Output::open(&Some(path))?),
        None => None,
    };
    let sink = &mut |records: &[Record]| -> Result<(), CliError> {
        if let Some(file) = file.as_mut() {
            file.write(records)?;
        }
        sink(records)
    };
    let common = match &cmd {
        ProbeCommand::Exact { common, .. } | ProbeCommand::Sample { common, .. } => common,
        ProbeCommand::Etw(args) => return etw(args, sink),
        ProbeCommand::Plan { .. } => {
            return Err(CliError::ProbeUnsupported(
                "plan attaches nothing: use probe exact or probe sample".into(),
            ))
        }
    };
    if let Some(why) = tracemerge_ebpf::unsupported() {
        return Err(CliError::ProbeUnsupported(why.to_string()));
    }
    let target = match (&common.session.pid, common.session.command.is_empty()) {
        (Some(pid), _) => Target::Pid(*pid),
        (None, false) => Target::Command(common.session.command.clone()),
        (None, true) => Target::All,
    };
    let functions = match &cmd {
        ProbeCommand::Exact {
            functions: Some(f), ..
        } => Some(read_functions(f)?),
        _ => None,
    };
    target::catch_interrupts();
    let options = Options {
        window: common.session.window,
        duration: common.session.duration,
        // Keep the record stream clean when it is our standard output.
        command_stdout_to_stderr: !stdout_free,
    };
    // A process traced by --pid goes on running: its nops go back.
    let restore_at_end = matches!(target, Target::Pid(_));
    // The exact collector's configuration, whichever entries it uses.
    let exact_config = |binary: &std::path::Path, budget: &Option<_>, pid: Option<u32>| {
        let mut config = tracemerge_ebpf::exact::Config::new(binary);
        config.budget = *budget;
        config.artifact = common.artifact.clone();
        config.source = common.source.clone();
        config.pid = pid;
        config.names = common.names;
        if let Some(n) = common.map_size {
            config.map_entries = n;
        }
        config
    };
    let attach = |pid: Option<u32>| -> Result<Collector, CliError> {
        match &cmd {
            ProbeCommand::Exact {
                binary,
                budget,
                entries: EntriesArg::Patch,
                ..
            } => {
                let config = exact_config(binary, budget, pid);
                patched(config, functions.clone(), restore_at_end)
            }
            ProbeCommand::Exact { binary, budget, .. } => {
                let mut config = exact_config(binary, budget, pid);
                config.functions = functions.clone();
                let session = tracemerge_ebpf::exact::Session::attach(&config)?;
                let s = session.summary();
                eprintln!("tracemerge probe: entries: {}", s.plan);
                eprintln!(
                    "tracemerge probe: attached {} functions of {} in {:.1} ms (artifact {})",
                    s.functions,
                    binary.display(),
                    (s.load + s.attach).as_secs_f64() * 1e3,
                    session.artifact()
                );
                if !session.skipped().is_empty() {
                    eprintln!(
                        "tracemerge probe: not in {}: {}",
                        binary.display(),
                        session.skipped().join(", ")
                    );
                }
                Ok(Collector::Exact(session))
            }
            ProbeCommand::Etw(_) | ProbeCommand::Plan { .. } => {
                Err(CliError::ProbeUnsupported("not an eBPF collector".into()))
            }
            ProbeCommand::Sample { frequency, .. } => {
                let config = tracemerge_ebpf::sample::Config {
                    frequency: *frequency,
                    pid,
                    artifact: common.artifact.clone(),
                    source: common.source.clone(),
                    map_entries: common.map_size.unwrap_or(16384),
                    names: common.names,
                };
                let session = tracemerge_ebpf::sample::Session::attach(&config)?;
                let s = session.summary();
                eprintln!(
                    "tracemerge probe: sampling {} CPUs at {} Hz",
                    s.cpus, frequency
                );
                Ok(Collector::Sample(session))
            }
        }
    };
    let outcome = run::run(&target, options, attach, sink)?;
    eprintln!("tracemerge probe: summary {}", outcome.summary);
    Ok(ExitCode::from(outcome.exit_code.clamp(0, 255) as u8))
}

/// `probe exact --entries patch`: the chosen functions with a nop entry are
/// patched in the process, the others (if any) get uprobes.
fn patched(
    mut config: tracemerge_ebpf::exact::Config,
    functions: Option<Vec<String>>,
    restore_at_end: bool,
) -> Result<Collector, CliError> {
    let binary = config.binary.clone();
    let (plans, skipped) = tracemerge_ebpf::exact::plan(&binary, functions.as_deref())?;
    if plans.is_empty() {
        return Err(CliError::NothingToProbe { binary });
    }
    let patchable = tracemerge_ebpf::patch::patchable(&binary)?;
    let (nop, rest): (Vec<_>, Vec<_>) = plans.iter().partition(|p| patchable.contains(&p.name));
    let nop: Vec<String> = nop.iter().map(|p| p.name.clone()).collect();
    let rest: Vec<String> = rest.iter().map(|p| p.name.clone()).collect();
    if nop.is_empty() {
        return Err(CliError::ProbeUnsupported(format!(
            "--entries patch: no chosen function of {} starts with a 5-byte nop",
            binary.display()
        )));
    }
    let patch = tracemerge_ebpf::patch::Session::attach(&config, &nop, restore_at_end)?;
    eprintln!(
        "tracemerge probe: patched {} nop entries of {} in {:.1} ms (process {}{})",
        nop.len(),
        binary.display(),
        patch.summary().attach.as_secs_f64() * 1e3,
        config.pid.unwrap_or(0),
        if restore_at_end {
            "; the nops go back at the end"
        } else {
            ""
        }
    );
    let uprobes = if rest.is_empty() {
        None
    } else {
        config.functions = Some(rest);
        let session = tracemerge_ebpf::exact::Session::attach(&config)?;
        eprintln!(
            "tracemerge probe: entries under uprobes: {}",
            session.summary().plan
        );
        Some(session)
    };
    if !skipped.is_empty() {
        eprintln!(
            "tracemerge probe: not in {}: {}",
            binary.display(),
            skipped.join(", ")
        );
    }
    Ok(Collector::Patched(Box::new(run::Patched {
        patch,
        uprobes,
    })))
}

/// `probe plan`: the entry plan of a binary's functions.
fn plan(
    binary: &Path,
    functions: Option<&PathBuf>,
    json: bool,
    entries: EntriesArg,
) -> Result<ExitCode, CliError> {
    let wanted = functions.map(read_functions).transpose()?;
    let (plans, skipped) = tracemerge_ebpf::exact::plan(binary, wanted.as_deref())?;
    if plans.is_empty() {
        return Err(CliError::NothingToProbe {
            binary: binary.to_path_buf(),
        });
    }
    let patchable = match entries {
        EntriesArg::Patch => tracemerge_ebpf::patch::patchable(binary)?,
        EntriesArg::Uprobe => Default::default(),
    };
    let patched = |p: &tracemerge_ebpf::plan::EntryPlan| patchable.contains(&p.name);
    // What each entry becomes: patched, or the kernel's way with a uprobe.
    let entry = |p: &tracemerge_ebpf::plan::EntryPlan| -> (&'static str, &'static str) {
        if patched(p) {
            ("patched", PATCHED_COST)
        } else {
            (p.kind.name(), p.kind.cost_class())
        }
    };
    let n_patched = plans.iter().filter(|p| patched(p)).count();
    let summary = tracemerge_ebpf::plan::PlanSummary::of(plans.iter().filter(|p| !patched(p)));
    let hex = |bytes: &[u8]| {
        bytes
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut out = std::io::BufWriter::new(std::io::stdout());
    let write_err = |e| CliError::output("writing the plan", e);
    if json {
        let functions: Vec<serde_json::Value> = plans
            .iter()
            .map(|p| {
                serde_json::json!({
                    "function": p.name,
                    "addr": format!("0x{:x}", p.addr),
                    "probe_offset": p.probe_addr - p.addr,
                    "entry": entry(p).0,
                    "cost": entry(p).1,
                    "first_bytes": hex(&p.first_bytes),
                })
            })
            .collect();
        let mut summary_json = summary.to_json();
        if entries == EntriesArg::Patch {
            summary_json["patched"] = n_patched.into();
            summary_json["functions"] = plans.len().into();
        }
        let doc = serde_json::json!({
            "binary": binary.display().to_string(),
            "summary": summary_json,
            "functions": functions,
            "not_found": skipped,
        });
        writeln!(out, "{doc}").map_err(write_err)?;
    } else {
        let width = plans.iter().map(|p| p.name.len()).max().unwrap_or(8).max(8);
        writeln!(
            out,
            "{:width$}  {:14}  {:8}  {:>6}  first bytes",
            "function", "entry", "per call", "offset"
        )
        .map_err(write_err)?;
        for p in &plans {
            writeln!(
                out,
                "{:width$}  {:14}  {:8}  {:>6}  {}",
                p.name,
                entry(p).0,
                entry(p).1,
                format!("+{}", p.probe_addr - p.addr),
                hex(&p.first_bytes)
            )
            .map_err(write_err)?;
        }
        if entries == EntriesArg::Patch {
            writeln!(
                out,
                "summary: {} functions: {n_patched} patched ({PATCHED_COST} per call, in the process); under uprobes: {summary}",
                plans.len()
            )
            .map_err(write_err)?;
        } else {
            writeln!(out, "summary: {summary}").map_err(write_err)?;
        }
        if !skipped.is_empty() {
            writeln!(out, "not found: {}", skipped.join(", ")).map_err(write_err)?;
        }
    }
    out.flush().map_err(write_err)?;
    Ok(ExitCode::SUCCESS)
}

/// The added cost of a patched entry's call (bench: `patched_nop5`).
const PATCHED_COST: &str = "~0.03 µs";

/// `probe etw`: the live ETW collector (Windows only).
fn etw(
    args: &EtwArgs,
    sink: &mut dyn FnMut(&[Record]) -> Result<(), CliError>,
) -> Result<ExitCode, CliError> {
    let artifact_map = match &args.artifact_map {
        Some(path) => tracemerge_etl::ArtifactMap::load(path).map_err(CliError::EtlSide)?,
        None => Default::default(),
    };
    let source = args.source.clone().unwrap_or_else(|| {
        let host = std::env::var("COMPUTERNAME").or_else(|_| std::env::var("HOSTNAME"));
        format!("etw:{}", host.as_deref().unwrap_or("live"))
    });
    let target = match (args.session.pid, args.session.command.is_empty()) {
        (Some(pid), _) => tracemerge_etw::Target::Pid(pid),
        (None, false) => tracemerge_etw::Target::Command(args.session.command.clone()),
        (None, true) => tracemerge_etw::Target::All,
    };
    let config = tracemerge_etw::CollectorConfig {
        duration: args.session.duration,
        window: args.session.window,
        target,
        providers: args.providers.clone(),
        import: tracemerge_etl::ImportOptions {
            symbols: args.symbols.clone(),
            artifact_map,
            granularity: match args.granularity {
                crate::etl::GranularityArg::Function => tracemerge_etl::Granularity::Function,
                crate::etl::GranularityArg::Module => tracemerge_etl::Granularity::Module,
            },
            window_ms: args.session.window.as_millis().max(1) as u64,
            source: Some(source),
            ..Default::default()
        },
        command_stdout_to_stderr: args.session.output.is_none(),
    };
    let outcome = tracemerge_etw::collect(&config, sink).map_err(CliError::Etw)?;
    eprintln!("tracemerge probe: summary {}", outcome.summary);
    Ok(ExitCode::from(outcome.exit_code.clamp(0, 255) as u8))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    /// `--window` and `--duration` take the one duration syntax (the unit is
    /// required), and more than zero.
    #[test]
    fn durations() {
        assert_eq!(
            super::parse_duration("250ms"),
            Ok(Duration::from_millis(250))
        );
        assert_eq!(super::parse_duration("2m"), Ok(Duration::from_secs(120)));
        for bad in ["0s", "10", "1.5s", "5d"] {
            assert!(super::parse_duration(bad).is_err(), "{bad}");
        }
    }
}
