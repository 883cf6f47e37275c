//! The `tracemerge` command (DESIGN.md §8).

mod args;
mod bench;
mod convert;
mod demo;
mod error;
mod etl;
mod eval;
mod generate;
mod merge;
mod probe;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

// The dataflow allocates and frees small keys at a high rate; mimalloc
// handles that pattern markedly better than the system allocator. Built
// without transparent huge pages (`no_thp`): mimalloc would ask for them,
// and then a page it had handed back and took again cost the kernel 2 MiB
// of zeroing instead of 4 KiB (bench/README, session 15). Version 2
// (feature `v2`), not the crate's default 3: at the same speed, 3 held
// about twice the memory at its peaks (`bench memory` at 1M live edges:
// 920-990 MiB against 600-615; `merge` of a 1M-function snapshot:
// 2.3 GB against 1.4).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Merge runtime call edges with static call graphs, incrementally.
#[derive(Parser)]
#[command(name = "tracemerge", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the embedded scenario and print its verdicts and conflicts.
    Demo {
        /// Where to write the full report (default: in the temp directory).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Merge record streams and write the report.
    #[command(disable_help_flag = true)]
    Merge {
        #[command(flatten)]
        engine: args::EngineArgs,
        /// Write the report here instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
        #[arg(long, action = clap::ArgAction::Help)]
        help: Option<bool>,
    },
    /// Replay record streams and print the change feed (NDJSON) on stdout.
    #[command(disable_help_flag = true)]
    Replay {
        #[command(flatten)]
        engine: args::EngineArgs,
        /// max, or a factor of event time to wall time such as 1x or 10x.
        #[arg(long, default_value = "max")]
        speed: merge::Speed,
        /// Also write the final report here.
        #[arg(long)]
        report: Option<PathBuf>,
        #[arg(long, action = clap::ArgAction::Help)]
        help: Option<bool>,
    },
    /// Write a seeded synthetic workload (power-law call graph, Zipf-skewed
    /// runtime edges) as a record stream.
    Generate {
        #[arg(long, default_value_t = 10_000)]
        functions: usize,
        /// Runtime records after the graph.
        #[arg(long, default_value_t = 100_000)]
        records: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Distinct agents/hosts.
        #[arg(long, default_value_t = 16)]
        sources: usize,
        /// Zipf exponent of edge popularity (0 = uniform).
        #[arg(long, default_value_t = 1.1)]
        skew: f64,
        /// Share of observed edges missing from the static graph.
        #[arg(long, default_value_t = 0.02)]
        conflict_rate: f64,
        /// Event time between records (ms).
        #[arg(long, default_value_t = 1)]
        step: u64,
        /// The fleet deployment instead: 1,000 sources and 50,000 functions,
        /// each source sending one edge record per distinct edge per 1-s
        /// window, 10% of the edges missing from the snapshot (only
        /// --records and --seed apply).
        #[arg(long)]
        fleet: bool,
        /// Write here instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Rewrite record streams (any supported input, detected by content) as
    /// NDJSON or as a binary replay log (.tmlog). Static call graphs of other
    /// analysers (gcc .ci, LLVM dot/text, Go callgraph, PyCG) become one
    /// `graph` record per run of consecutive call-graph files.
    Convert {
        /// Inputs (`-` is stdin), read as one stream in the order given.
        #[arg(required = true)]
        inputs: Vec<String>,
        /// Output file (`-` is stdout); a name ending in .gz is compressed.
        #[arg(short, long)]
        output: String,
        /// Output format [default: from the output's name: .ndjson, .tmlog,
        /// either followed by .gz].
        #[arg(long, value_enum)]
        to: Option<convert::OutputFormat>,
        #[command(flatten)]
        static_graph: args::StaticGraphArgs,
    },
    /// Research mode: how much of what ran did the static call graph
    /// contain (recall, missed edges by class, verdicts they change).
    Eval(eval::EvalArgs),
    /// Decode Windows ETW trace files (.etl).
    #[command(subcommand)]
    Etl(etl::EtlCommand),
    /// Collect call edges from running processes: eBPF (Linux) or ETW (Windows).
    #[command(subcommand)]
    Probe(probe::ProbeCommand),
    /// Probe and merge continuously: print verdict and conflict changes
    /// (NDJSON change lines) as they happen.
    Watch {
        /// Static graphs and targets to merge with (any supported format).
        #[arg(long = "graph")]
        graphs: Vec<String>,
        // The engine's options (--ttl, --lateness, --strategy, --quarantine,
        // --min-coverage), as `merge` and `replay` take them.
        #[command(flatten)]
        config_args: tracemerge_records::args::ConfigArgs,
        #[command(subcommand)]
        probe: probe::ProbeCommand,
    },
    /// Run the benchmark suites: the engine against plain-Rust baselines
    /// (results JSON, optional HTML report; see bench/README.md).
    Bench(bench::BenchArgs),
    /// One measurement of the memory suite, in a child process.
    #[command(name = "bench-child", hide = true)]
    BenchChild,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: Result<ExitCode, error::CliError> = match cli.command {
        Command::Demo { output } => demo::run(output),
        Command::Merge { engine, output, .. } => merge::merge(engine, output),
        Command::Replay {
            engine,
            speed,
            report,
            ..
        } => merge::replay(engine, speed, report),
        Command::Generate {
            functions,
            records,
            seed,
            sources,
            skew,
            conflict_rate,
            step,
            fleet,
            output,
        } => {
            use tracemerge_scenarios::workload::Workload;
            if fleet {
                generate::generate(Workload::fleet(seed, records).fleet_stream(), output)
            } else {
                let workload = Workload {
                    seed,
                    functions,
                    records,
                    sources,
                    skew,
                    conflict_rate,
                    step,
                    ..Default::default()
                };
                generate::generate(workload.stream(), output)
            }
        }
        Command::Convert {
            inputs,
            output,
            to,
            static_graph,
        } => convert::run(inputs, output, to, static_graph),
        Command::Eval(args) => eval::run(args),
        Command::Etl(cmd) => etl::run(cmd),
        Command::Probe(cmd) => probe::run(cmd),
        Command::Watch {
            graphs,
            config_args,
            probe,
        } => args::config(&config_args).and_then(|config| watch::watch(graphs, config, probe)),
        Command::Bench(args) => bench::run(args),
        Command::BenchChild => bench::child(),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("tracemerge: {error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    /// The `AnonHugePages` of the mapping of this process that holds
    /// `address`, in KiB.
    fn huge_pages_kib_at(address: usize) -> Option<u64> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        let mut inside = false;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ') {
                if let Some((start, end)) = range.split_once('-') {
                    if let (Ok(start), Ok(end)) = (
                        usize::from_str_radix(start, 16),
                        usize::from_str_radix(end, 16),
                    ) {
                        inside = (start..end).contains(&address);
                        continue;
                    }
                }
            }
            if inside {
                if let Some(kib) = line.strip_prefix("AnonHugePages:") {
                    return kib.trim().trim_end_matches("kB").trim().parse().ok();
                }
            }
        }
        None
    }

    /// Where the kernel gives transparent huge pages only on request, the
    /// heap asks for none (mimalloc's `no_thp`).
    #[test]
    fn the_heap_takes_no_huge_pages() {
        let test = "the_heap_takes_no_huge_pages";
        let mode = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled");
        if !mode.as_deref().is_ok_and(|m| m.contains("[madvise]")) {
            return tracemerge_skip::skip(test, "transparent huge pages are not in madvise mode");
        }
        // Whole 2 MiB pages, touched so that they are backed.
        let heap = vec![1u8; 64 << 20];
        let kib = huge_pages_kib_at(heap.as_ptr() as usize).expect("the heap's mapping");
        assert_eq!(kib, 0, "{kib} KiB of the heap in huge pages");
        drop(std::hint::black_box(heap));
    }
}
