//! `tracemerge eval`: runs the engine over static call graphs and runtime
//! records, then measures each artifact's static graph against its live
//! runtime edges (crate `tracemerge-eval`); canonical JSON and an HTML page.

use crate::error::CliError;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use tracemerge_eval::{evaluate, Evaluation, RuntimeEdge};
use tracemerge_records::{Config, GraphSnapshot, Record, MAX_TIME};

#[derive(clap::Args)]
pub struct EvalArgs {
    /// Static call graphs (any format `merge` reads, gcc .ci, LLVM, Go
    /// callgraph and PyCG included) and runtime records, read as one
    /// stream in the order given.
    #[arg(required = true)]
    inputs: Vec<String>,
    #[command(flatten)]
    static_graph: crate::args::StaticGraphArgs,
    /// How long a runtime sighting stays live [default: for ever, so every
    /// edge of a recording counts].
    #[arg(long, value_parser = tracemerge_records::parse_duration)]
    ttl: Option<u64>,
    /// Write the evaluation (canonical JSON) here instead of stdout.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Also write the evaluation as an HTML page.
    #[arg(long)]
    html: Option<PathBuf>,
}

pub fn run(args: EvalArgs) -> Result<ExitCode, CliError> {
    let stream = tracemerge_sources::open_all(&args.inputs, &args.static_graph.source_options())?;
    let mut records = Vec::new();
    let mut graphs: BTreeMap<String, GraphSnapshot> = BTreeMap::new();
    let mut targets: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for item in stream {
        let (_, record) = item?;
        match &record {
            Record::Graph(g) => {
                graphs.insert(g.artifact.clone(), g.clone());
            }
            Record::Targets(t) => {
                targets.insert(t.artifact.clone(), t.symbols.clone());
            }
            _ => {}
        }
        records.push(record);
    }
    if graphs.is_empty() {
        return Err(CliError::NoStaticGraph);
    }
    let config = Config {
        ttl: args.ttl.unwrap_or(MAX_TIME),
        ..Config::default()
    };
    let report = tracemerge_dataflow::merge_records(&records, &config, 1)?;
    let mut runtime: BTreeMap<&str, Vec<RuntimeEdge>> = BTreeMap::new();
    for artifact in &report.artifacts {
        let edges = artifact.observed_edges.iter().map(|e| RuntimeEdge {
            caller: e.caller.clone(),
            callee: e.callee.clone(),
            hits: e.hits,
        });
        runtime
            .entry(artifact.artifact.as_str())
            .or_default()
            .extend(edges);
    }
    let mut evaluated = Vec::new();
    for (artifact, graph) in &graphs {
        let edges = runtime
            .get(artifact.as_str())
            .map_or(&[][..], Vec::as_slice);
        let wanted = targets.get(artifact).map_or(&[][..], Vec::as_slice);
        evaluated.push(evaluate(graph, edges, wanted));
    }
    let without: Vec<String> = runtime
        .iter()
        .filter(|(a, edges)| !graphs.contains_key(**a) && !edges.is_empty())
        .map(|(a, _)| a.to_string())
        .collect();
    let eval = Evaluation::new(evaluated, without);
    for a in &eval.artifacts {
        eprintln!(
            "tracemerge eval: {}: {} functions, {} static edges, {} runtime edges ({} between known functions), recall {}",
            a.artifact,
            a.functions,
            a.static_edges,
            a.runtime_edges,
            a.runtime_edges_known,
            a.recall.map_or("n/a".into(), |r| format!("{r:.4}")),
        );
    }
    let mut json = eval.canonical_bytes();
    json.push(b'\n');
    match &args.output {
        Some(path) => std::fs::write(path, &json).map_err(|e| CliError::io(path, e))?,
        None => std::io::stdout()
            .write_all(&json)
            .map_err(|e| CliError::output("<stdout>", e))?,
    }
    if let Some(path) = &args.html {
        std::fs::write(path, tracemerge_eval::html::render(&eval))
            .map_err(|e| CliError::io(path, e))?;
    }
    Ok(ExitCode::SUCCESS)
}
