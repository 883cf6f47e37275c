//! `tracemerge demo`: the embedded `shop` scenario, as a table.

use crate::error::CliError;
use std::path::PathBuf;
use std::process::ExitCode;

use tracemerge_records::{Conflict, Report};

pub fn run(output: Option<PathBuf>) -> Result<ExitCode, CliError> {
    let case =
        tracemerge_scenarios::cases::case("shop").ok_or(CliError::NoScenario { name: "shop" })?;
    let records = case.records()?;
    let config = case.config()?;
    let report = tracemerge_dataflow::merge_records(&records, &config, 1)?;
    print!(
        "{}",
        summary(&report, records.len(), &config.strategy.to_string())
    );
    let path = output.unwrap_or_else(|| std::env::temp_dir().join("tracemerge-demo-report.json"));
    crate::merge::write_report(&report, Some(&path))?;
    println!("\nfull report: {}  ({})", path.display(), report.digest);
    Ok(ExitCode::SUCCESS)
}

/// The readable summary: one table of verdicts, one of conflicts.
pub fn summary(report: &Report, records: usize, strategy: &str) -> String {
    let mut out = format!(
        "tracemerge demo: scenario \"shop\", {records} records, strategy {strategy}, as of {} ms\n\n",
        report.as_of
    );
    let mut rows = vec![[
        "ARTIFACT".to_string(),
        "TARGET".into(),
        "STATE".into(),
        "VEX".into(),
        "WITNESS PATH".into(),
    ]];
    for a in &report.artifacts {
        for v in &a.verdicts {
            let path = match (&v.path, &v.hops) {
                (Some(path), Some(hops)) => {
                    let mut s = path[0].clone();
                    for (sym, hop) in path[1..].iter().zip(hops) {
                        let hop = serde_json::to_value(hop)
                            .expect("hop")
                            .as_str()
                            .unwrap_or("")
                            .to_string();
                        s.push_str(&format!(" -{hop}-> {sym}"));
                    }
                    s
                }
                _ => "-".into(),
            };
            let state = serde_json::to_value(v.state).expect("state");
            let vex = serde_json::to_value(v.vex).expect("vex");
            rows.push([
                a.artifact.clone(),
                v.target.clone(),
                state.as_str().unwrap_or("").into(),
                vex.as_str().unwrap_or("").into(),
                path,
            ]);
        }
    }
    out.push_str(&table(&rows));
    out.push('\n');
    let mut rows = vec![[
        "ARTIFACT".to_string(),
        "CONFLICT".into(),
        "SUBJECT".into(),
        "RESOLUTION".into(),
    ]];
    for a in &report.artifacts {
        for c in &a.conflicts {
            let (subject, resolution) = match c {
                Conflict::RuntimeEdgeNotInStatic {
                    caller,
                    callee,
                    resolution,
                    hits,
                    sources,
                } => (
                    format!("{caller} -> {callee} ({hits} hits, {sources} sources)"),
                    serde_json::to_value(resolution)
                        .expect("resolution")
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                ),
                Conflict::ExecutedButStaticallyUnreachable { symbol }
                | Conflict::UnknownSymbol { symbol }
                | Conflict::ReachableButUnobserved { symbol } => (symbol.clone(), "-".into()),
                Conflict::NoStaticSnapshot {} => ("-".into(), "-".into()),
            };
            rows.push([a.artifact.clone(), c.kind().into(), subject, resolution]);
        }
    }
    out.push_str(&table(&rows));
    out
}

fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}
