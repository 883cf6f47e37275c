//! tracemerge-bench has one job: measure the tracemerge engine against
//! plain-Rust baselines run in the same process on the same records, and
//! write the figures as JSON and as a self-contained HTML report. It is
//! the library behind `tracemerge bench` (see README.md beside this crate
//! for what each suite measures).
//!
//! The engine is driven only through its public API
//! ([`tracemerge_dataflow::run`], [`Options`](tracemerge_dataflow::Options),
//! [`Event`](tracemerge_dataflow::Event)), so the suites keep working while
//! its internals change.

pub mod baseline;
pub mod driver;
pub mod error;
pub mod html;
pub mod machine;
pub mod suites;

use std::path::PathBuf;
use std::time::Instant;

use serde_json::{json, Map, Value};
use tracemerge_records::Time;

pub use error::BenchError;
pub use suites::memory::{child_main, Launcher, CHILD_ENV};

/// Schema name of the results JSON.
pub const SCHEMA: &str = "tracemerge.bench.v1";

/// One benchmark suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Suite {
    Ingest,
    Update,
    Cascade,
    Memory,
    Replay,
    Scale,
    Probe,
    Etl,
    Research,
}

impl Suite {
    pub const ALL: [Suite; 9] = [
        Suite::Ingest,
        Suite::Update,
        Suite::Cascade,
        Suite::Memory,
        Suite::Replay,
        Suite::Scale,
        Suite::Probe,
        Suite::Etl,
        Suite::Research,
    ];

    /// The suite's key in the results JSON and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Suite::Ingest => "ingest",
            Suite::Update => "update",
            Suite::Cascade => "cascade",
            Suite::Memory => "memory",
            Suite::Replay => "replay",
            Suite::Scale => "scale",
            Suite::Probe => "probe",
            Suite::Etl => "etl",
            Suite::Research => "research",
        }
    }
}

impl std::str::FromStr for Suite {
    type Err = String;
    fn from_str(s: &str) -> Result<Suite, String> {
        Suite::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Suite::ALL.iter().map(|x| x.name()).collect();
                format!("unknown suite {s:?}: expected one of {}", names.join(", "))
            })
    }
}

/// `ingest` (and the workload `scale` reuses): a Zipf-skewed stream of
/// edge observations on one worker.
#[derive(Clone, Debug)]
pub struct IngestPlan {
    /// Functions of the (small) static graph the edges are drawn from.
    pub functions: usize,
    /// Records in the stream.
    pub records: usize,
    /// Observation lifetime: short enough that windows expire during the run.
    pub ttl: Time,
    /// Zipf exponent of edge popularity.
    pub skew: f64,
}

/// `update`: latency of small changes on graphs of several sizes.
#[derive(Clone, Debug)]
pub struct UpdatePlan {
    /// Graph sizes in functions (about 4 static edges each).
    pub sizes: Vec<usize>,
    /// Edges per change.
    pub changes: Vec<usize>,
    /// Measured changes of 1 edge per graph; larger changes get fewer
    /// (`repeats / sqrt(edges)`, at least 2).
    pub repeats: usize,
    /// Most recomputations timed per change size (the recompute cost does
    /// not depend on the change).
    pub recompute_repeats: usize,
    /// Runtime records streamed in before the first change (edges, hits,
    /// coverage), so that verdicts have a runtime side.
    pub warmup_records: usize,
    /// Which graph size `update.speedup_vs_recompute` is taken from (the
    /// nearest measured one is used when absent).
    pub headline_functions: usize,
}

/// `cascade`: one runtime edge that flips the reachability of a subtree.
#[derive(Clone, Debug)]
pub struct CascadePlan {
    pub functions: usize,
    /// Subtree sizes as a share of the graph.
    pub fractions: Vec<f64>,
    /// Flips measured per size (each: on, then off by expiry).
    pub repeats: usize,
}

/// `memory`: peak RSS of child processes holding many live edges.
#[derive(Clone, Debug)]
pub struct MemoryPlan {
    /// Live observed edge counts.
    pub edges: Vec<usize>,
    /// How to start a child process of this program in child mode; `None`
    /// skips the suite.
    pub launcher: Option<Launcher>,
    /// Sizes whose estimated run time (from the previous size) exceeds this
    /// are skipped with the estimate.
    pub max_seconds: f64,
}

/// `replay`: a recorded stream read from a file end to end.
#[derive(Clone, Debug)]
pub struct ReplayPlan {
    pub records: usize,
    pub functions: usize,
    pub workers: usize,
}

/// `scale`: the ingest workload on 1, 2, … workers.
#[derive(Clone, Debug)]
pub struct ScalePlan {
    pub records: usize,
    pub functions: usize,
    pub workers: Vec<usize>,
}

/// `probe`: the eBPF collector's own benchmark.
#[derive(Clone, Debug)]
pub struct ProbePlan {
    pub calls: u64,
    pub repeats: usize,
    pub attach_sizes: Vec<usize>,
    /// Size argument of the Lua script (bench/lua/calls.lua) for the native
    /// and `--budget` runs (long enough for the budget to settle).
    pub lua_scale: u32,
    /// The same for the reference run under full exact probing.
    pub lua_reference_scale: u32,
}

/// `etl`: the ETL decoder's speed on the shared traces.
#[derive(Clone, Debug)]
pub struct EtlPlan {
    /// Where the `.etl` files are (`None`: the suite is skipped).
    pub dir: Option<PathBuf>,
    pub runs: u32,
}

/// What to run, at which sizes.
#[derive(Clone, Debug)]
pub struct Plan {
    pub quick: bool,
    pub suites: Vec<Suite>,
    pub seed: u64,
    /// Scratch files (replay streams); removed after use.
    pub work_dir: PathBuf,
    pub ingest: IngestPlan,
    pub update: UpdatePlan,
    pub cascade: CascadePlan,
    pub memory: MemoryPlan,
    pub replay: ReplayPlan,
    pub scale: ScalePlan,
    pub probe: ProbePlan,
    pub etl: EtlPlan,
    pub research: suites::research::ResearchPlan,
}

impl Plan {
    /// Full sizes (hours on a small machine at today's engine speed).
    pub fn full() -> Plan {
        Plan {
            quick: false,
            suites: Suite::ALL.to_vec(),
            seed: 1,
            work_dir: std::env::temp_dir().join(format!("tracemerge-bench-{}", std::process::id())),
            ingest: IngestPlan {
                functions: 5_000,
                records: 1_000_000,
                ttl: 10_000,
                skew: 1.1,
            },
            update: UpdatePlan {
                sizes: vec![10_000, 100_000, 1_000_000],
                changes: vec![1, 10, 100, 1000],
                repeats: 100,
                recompute_repeats: 10,
                warmup_records: 20_000,
                headline_functions: 100_000,
            },
            cascade: CascadePlan {
                functions: 100_000,
                fractions: vec![0.01, 0.1, 0.5],
                repeats: 5,
            },
            memory: MemoryPlan {
                edges: vec![1_000_000, 10_000_000],
                launcher: None,
                max_seconds: 1800.0,
            },
            replay: ReplayPlan {
                records: 100_000_000,
                functions: 10_000,
                workers: 1,
            },
            scale: ScalePlan {
                records: 1_000_000,
                functions: 5_000,
                workers: vec![1, 2],
            },
            probe: ProbePlan {
                calls: 2_000_000,
                repeats: 3,
                attach_sizes: vec![100, 1_000, 10_000],
                lua_scale: 20_000,
                lua_reference_scale: 200,
            },
            etl: EtlPlan {
                dir: suites::external::default_etl_dir(),
                runs: 3,
            },
            research: suites::research::ResearchPlan {
                tracemerge: None,
                lua_size: 20_000,
                zlib_files: None,
                llvm: true,
            },
        }
    }

    /// Every suite at small sizes: under a minute on two cores (release
    /// build), with the headline keys present.
    pub fn quick() -> Plan {
        let full = Plan::full();
        Plan {
            quick: true,
            ingest: IngestPlan {
                records: 40_000,
                ..full.ingest
            },
            update: UpdatePlan {
                sizes: vec![10_000, 100_000],
                changes: vec![1, 10, 100, 1000],
                repeats: 12,
                recompute_repeats: 3,
                warmup_records: 2_000,
                ..full.update
            },
            cascade: CascadePlan {
                functions: 10_000,
                fractions: vec![0.01, 0.1, 0.5],
                repeats: 2,
            },
            memory: MemoryPlan {
                edges: vec![100_000],
                max_seconds: 30.0,
                ..full.memory
            },
            replay: ReplayPlan {
                records: 30_000,
                ..full.replay
            },
            scale: ScalePlan {
                records: 20_000,
                ..full.scale
            },
            probe: ProbePlan {
                calls: 200_000,
                repeats: 1,
                attach_sizes: vec![100],
                lua_scale: 100,
                lua_reference_scale: 100,
            },
            etl: EtlPlan {
                runs: 1,
                ..full.etl
            },
            research: suites::research::ResearchPlan {
                lua_size: 300,
                zlib_files: Some(4),
                ..full.research
            },
            ..full
        }
    }

    /// Tiny sizes for tests: seconds in a debug build.
    pub fn tiny() -> Plan {
        let quick = Plan::quick();
        Plan {
            ingest: IngestPlan {
                functions: 300,
                records: 3_000,
                ..quick.ingest
            },
            update: UpdatePlan {
                sizes: vec![500, 2_000],
                changes: vec![1, 10, 100],
                repeats: 4,
                recompute_repeats: 2,
                warmup_records: 500,
                headline_functions: 2_000,
            },
            cascade: CascadePlan {
                functions: 1_000,
                fractions: vec![0.1, 0.5],
                repeats: 1,
            },
            memory: MemoryPlan {
                edges: vec![2_000],
                max_seconds: 30.0,
                ..quick.memory
            },
            replay: ReplayPlan {
                records: 3_000,
                functions: 300,
                workers: 1,
            },
            scale: ScalePlan {
                records: 3_000,
                functions: 300,
                workers: vec![1, 2],
            },
            probe: ProbePlan {
                calls: 20_000,
                repeats: 1,
                attach_sizes: vec![10],
                lua_scale: 5,
                lua_reference_scale: 5,
            },
            ..quick
        }
    }
}

/// Runs the planned suites in order; `log` hears one line per step. A
/// suite that cannot run here has `{"skipped": reason}`, one that failed
/// `{"error": message}`.
pub fn run(plan: &Plan, log: &mut dyn FnMut(&str)) -> Value {
    let started = Instant::now();
    let mut out = Map::new();
    out.insert("schema".into(), json!(SCHEMA));
    out.insert("quick".into(), json!(plan.quick));
    out.insert("machine".into(), machine::info());
    let mut order = plan.suites.clone();
    order.dedup();
    for suite in order {
        log(&format!("{}: running", suite.name()));
        let t = Instant::now();
        let result = match suite {
            Suite::Ingest => suites::ingest::run(&plan.ingest, plan.seed, log),
            Suite::Update => suites::update::run(&plan.update, plan.seed, log),
            Suite::Cascade => suites::cascade::run(&plan.cascade, plan.seed, log),
            Suite::Memory => suites::memory::run(&plan.memory, plan.seed, log),
            Suite::Replay => suites::replay::run(&plan.replay, plan.seed, &plan.work_dir, log),
            Suite::Scale => suites::scale::run(&plan.scale, &plan.ingest, plan.seed, log),
            Suite::Probe => suites::external::probe(&plan.probe, &plan.work_dir),
            Suite::Etl => suites::external::etl(&plan.etl),
            Suite::Research => suites::research::run(&plan.research, &plan.work_dir, log),
        };
        let mut value = match result {
            Ok(v) => v,
            Err(e) => {
                log(&format!("{}: error: {e}", suite.name()));
                json!({ "error": e.to_string() })
            }
        };
        if let Some(obj) = value.as_object_mut() {
            obj.insert(
                "suite_seconds".into(),
                json!(driver::sig(t.elapsed().as_secs_f64())),
            );
        }
        if let Some(reason) = value.get("skipped").and_then(Value::as_str) {
            log(&format!("{}: skipped: {reason}", suite.name()));
        } else {
            log(&format!(
                "{}: done in {:.1} s",
                suite.name(),
                t.elapsed().as_secs_f64()
            ));
        }
        out.insert(suite.name().into(), value);
    }
    let _ = std::fs::remove_dir_all(&plan.work_dir);
    out.insert(
        "elapsed_seconds".into(),
        json!(driver::sig(started.elapsed().as_secs_f64())),
    );
    Value::Object(out)
}

/// `{"skipped": reason}`, what a suite that cannot run here reports.
pub fn skipped(reason: impl Into<String>) -> Value {
    json!({ "skipped": reason.into() })
}

/// Looks up a dotted key (`update.speedup_vs_recompute`, `memory.sizes.0`)
/// in the results.
pub fn lookup<'a>(results: &'a Value, dotted: &str) -> Option<&'a Value> {
    dotted.split('.').try_fold(results, |v, k| match v {
        Value::Object(o) => o.get(k),
        Value::Array(a) => k.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}
