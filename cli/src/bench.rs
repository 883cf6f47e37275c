//! `tracemerge bench`: the benchmark suites of `tracemerge-bench`, results
//! as JSON (stdout or `-o`) and optionally a self-contained HTML report.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use tracemerge_bench::{Launcher, Plan, Suite};

use crate::error::CliError;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Suites to run (default: all): ingest, update, cascade, memory,
    /// replay, scale, probe, etl, research.
    pub suites: Vec<Suite>,
    /// Every suite at small sizes (under a minute in a release build).
    #[arg(long)]
    pub quick: bool,
    /// Write the results JSON here instead of stdout.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Also write a self-contained HTML report here.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Graph sizes of `update`, in functions (e.g. 10k,100k,1M).
    #[arg(long, value_delimiter = ',', value_parser = parse_count)]
    pub sizes: Option<Vec<usize>>,
    /// Edges per change in `update` (e.g. 1,10,100,1000).
    #[arg(long, value_delimiter = ',', value_parser = parse_count)]
    pub changes: Option<Vec<usize>>,
    /// Measured 1-edge changes per graph in `update` (larger changes get fewer).
    #[arg(long)]
    pub repeats: Option<usize>,
    /// Graph size of `cascade`, in functions.
    #[arg(long, value_parser = parse_count)]
    pub cascade_functions: Option<usize>,
    /// Live edge counts of `memory` (e.g. 1M,10M).
    #[arg(long, value_delimiter = ',', value_parser = parse_count)]
    pub memory_edges: Option<Vec<usize>>,
    /// Records of the `ingest` stream.
    #[arg(long, value_parser = parse_count)]
    pub ingest_records: Option<usize>,
    /// Records of the `replay` file.
    #[arg(long, value_parser = parse_count)]
    pub replay_records: Option<usize>,
    /// Records of the `scale` stream.
    #[arg(long, value_parser = parse_count)]
    pub scale_records: Option<usize>,
    /// Worker counts of `scale` (e.g. 1,2).
    #[arg(long, value_delimiter = ',', value_parser = parse_count)]
    pub workers: Option<Vec<usize>>,
    /// Where the `.etl` traces of the `etl` suite are (default ../shared/data/etw).
    #[arg(long)]
    pub etl_dir: Option<PathBuf>,
    /// Seed of every generated workload.
    #[arg(long)]
    pub seed: Option<u64>,
}

/// `10k`, `1M`, `1.5M`, `2G` or a plain number.
fn parse_count(s: &str) -> Result<usize, String> {
    let (number, factor) = match s.chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 1e3),
        Some('m' | 'M') => (&s[..s.len() - 1], 1e6),
        Some('g' | 'G') => (&s[..s.len() - 1], 1e9),
        _ => (s, 1.0),
    };
    number
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|v| (v * factor).round() as usize)
        .ok_or_else(|| format!("bad count {s:?}: expected a number such as 100, 10k or 1M"))
}

fn plan(args: &BenchArgs) -> Result<Plan, CliError> {
    let mut plan = if args.quick {
        Plan::quick()
    } else {
        Plan::full()
    };
    if !args.suites.is_empty() {
        plan.suites = args.suites.clone();
    }
    plan.memory.launcher = Some(Launcher::current_exe(&["bench-child"]).map_err(CliError::Bench)?);
    plan.research.tracemerge = std::env::current_exe().ok();
    if let Some(v) = &args.sizes {
        plan.update.sizes = v.clone();
    }
    if let Some(v) = &args.changes {
        plan.update.changes = v.clone();
    }
    if let Some(v) = args.repeats {
        plan.update.repeats = v;
    }
    if let Some(v) = args.cascade_functions {
        plan.cascade.functions = v;
    }
    if let Some(v) = &args.memory_edges {
        plan.memory.edges = v.clone();
    }
    if let Some(v) = args.ingest_records {
        plan.ingest.records = v;
    }
    if let Some(v) = args.replay_records {
        plan.replay.records = v;
    }
    if let Some(v) = args.scale_records {
        plan.scale.records = v;
    }
    if let Some(v) = &args.workers {
        plan.scale.workers = v.clone();
    }
    if let Some(v) = &args.etl_dir {
        plan.etl.dir = Some(v.clone());
    }
    if let Some(v) = args.seed {
        plan.seed = v;
    }
    Ok(plan)
}

/// `tracemerge bench`.
pub fn run(args: BenchArgs) -> Result<ExitCode, CliError> {
    let plan = plan(&args)?;
    let started = Instant::now();
    let mut log = |line: &str| {
        eprintln!("[{:6.1}s] {line}", started.elapsed().as_secs_f64());
    };
    let results = tracemerge_bench::run(&plan, &mut log);
    let mut text = serde_json::to_string_pretty(&results).expect("results serialize");
    text.push('\n');
    match &args.output {
        Some(path) => {
            std::fs::write(path, &text).map_err(|e| CliError::io(path, e))?;
            eprintln!("results: {}", path.display());
        }
        None => print!("{text}"),
    }
    if let Some(path) = &args.html {
        std::fs::write(path, tracemerge_bench::html::report(&results))
            .map_err(|e| CliError::io(path, e))?;
        eprintln!("report: {}", path.display());
    }
    let failed: Vec<String> = Suite::ALL
        .iter()
        .filter(|s| results[s.name()].get("error").is_some())
        .map(|s| s.name().to_string())
        .collect();
    if failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(CliError::SuitesFailed(failed))
    }
}

/// The hidden `bench-child` command: one memory measurement.
pub fn child() -> Result<ExitCode, CliError> {
    tracemerge_bench::child_main()
        .map(|()| ExitCode::SUCCESS)
        .map_err(CliError::Bench)
}

#[cfg(test)]
mod tests {
    use super::parse_count;

    #[test]
    fn counts() {
        assert_eq!(parse_count("100"), Ok(100));
        assert_eq!(parse_count("10k"), Ok(10_000));
        assert_eq!(parse_count("1M"), Ok(1_000_000));
        assert_eq!(parse_count("1.5M"), Ok(1_500_000));
        assert!(parse_count("x").is_err());
        assert!(parse_count("-1").is_err());
    }
}
