//! The options of every command that runs the engine (`merge`, `replay`):
//! the inputs, the configuration, static call graphs of other analysers and
//! timely's cluster.

use std::path::PathBuf;

use tracemerge_dataflow::Options;
use tracemerge_records::args::ConfigArgs;
use tracemerge_records::Config;

use crate::error::CliError;

/// Options shared by every command that runs the engine.
#[derive(clap::Args, Clone, Debug)]
pub struct EngineArgs {
    /// Record streams (`-` is stdin), read as one stream in the order given;
    /// the format is detected from the content.
    #[arg(required = true)]
    pub files: Vec<String>,
    #[command(flatten)]
    pub static_graph: StaticGraphArgs,
    #[command(flatten)]
    pub config_args: ConfigArgs,
    /// Count malformed records in stats.invalid and go on, instead of stopping.
    #[arg(long)]
    pub keep_going: bool,
    /// Records per batch handed to the workers.
    #[arg(long, default_value_t = 1024)]
    pub batch: usize,
    /// Print where the dataflow spent its time (busy time per operator),
    /// how many updates its arrangements hold, and each engine thread's
    /// CPU time, on stderr at the end.
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
    pub fn timely_config(&self) -> Result<timely::Config, CliError> {
        let workers = self.workers.max(1);
        let communication = if self.processes > 1 {
            if self.process >= self.processes {
                return Err(CliError::ProcessOutOfRange {
                    process: self.process,
                    processes: self.processes,
                });
            }
            let addresses = match &self.hostfile {
                Some(path) => {
                    let text = std::fs::read_to_string(path).map_err(|e| CliError::io(path, e))?;
                    let hosts: Vec<String> = text
                        .lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(String::from)
                        .collect();
                    if hosts.len() < self.processes {
                        return Err(CliError::TooFewHosts {
                            path: path.clone(),
                            found: hosts.len(),
                            processes: self.processes,
                        });
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
        let mode = self.progress_mode.parse().map_err(CliError::ProgressMode)?;
        let mut config = timely::Config {
            communication,
            worker: timely::WorkerConfig::default().progress_mode(mode),
        };
        tracemerge_dataflow::tune(&mut config);
        Ok(config)
    }
}

/// The engine configuration of `merge`, `replay` and `watch`
/// ([`ConfigArgs::config`], in the records crate; its errors name the
/// quarantine file).
pub fn config(args: &ConfigArgs) -> Result<Config, CliError> {
    Ok(args.config(|path| std::fs::read_to_string(path))?)
}

impl EngineArgs {
    /// The engine configuration.
    pub fn config(&self) -> Result<Config, CliError> {
        config(&self.config_args)
    }

    pub fn options(&self) -> Result<Options, CliError> {
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
            (
                args.config_args.ttl,
                args.config_args.lateness,
                args.config_args.min_coverage
            ),
            (10_000, 0, 250)
        );
        let defaults = parse(&[]).unwrap();
        assert_eq!(
            (
                defaults.config_args.ttl,
                defaults.config_args.lateness,
                defaults.config_args.min_coverage
            ),
            (600_000, 0, 60_000)
        );
        for option in ["--ttl", "--lateness", "--min-coverage"] {
            for bad in ["10", "1.5s", "5d", "-1s"] {
                assert!(parse(&[option, bad]).is_err(), "{option} {bad}");
            }
        }
    }
}
