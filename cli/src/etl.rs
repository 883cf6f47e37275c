//! `tracemerge etl …`: inspect and import Windows ETW trace files (.etl).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tracemerge_etl::{ArtifactMap, DecodeOptions, Granularity, ImportOptions, Trace};

#[derive(clap::Subcommand)]
pub enum EtlCommand {
    /// Print what a trace file holds, as JSON (exit status 2 when the file is damaged).
    Inspect { file: PathBuf },
    /// Emit the record stream (call edges, then a watermark) as NDJSON.
    Import {
        file: PathBuf,
        /// Symbol directory (symbol-server layout: NAME.pdb/GUIDAGE/NAME.pdb).
        #[arg(long, value_name = "DIR")]
        symbols: Option<PathBuf>,
        /// Process image name → artifact: JSON object or `name.exe = artifact` lines
        /// (`*` = default, artifact `-` = drop the process).
        #[arg(long, value_name = "FILE")]
        artifact_map: Option<PathBuf>,
        /// Edge endpoints: functions (`module!function` / `module!+0xRVA`) or modules.
        #[arg(long, value_enum, default_value_t = GranularityArg::Function)]
        granularity: GranularityArg,
        /// Aggregation window for one edge (ms, s, m, h).
        #[arg(long, default_value = "1s")]
        window: String,
        /// `source` of the records (default `etw:FILE-NAME`).
        #[arg(long)]
        source: Option<String>,
        /// Import what decodes from a damaged file (the damage is reported on stderr).
        #[arg(long)]
        lenient: bool,
        /// Output file (stdout without it).
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Decode speed (MB/s, events/s) against reading the file, as JSON.
    Bench {
        file: PathBuf,
        #[arg(long, default_value_t = 3)]
        runs: u32,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum GranularityArg {
    Function,
    Module,
}

fn parse_duration_ms(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (expected e.g. 500ms, 1s, 5m)"))?;
    let k = match unit {
        "ms" => 1,
        "s" | "" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(format!("invalid duration unit in {s:?} (ms, s, m, h)")),
    };
    n.checked_mul(k)
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("invalid duration {s:?}"))
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

pub fn run(cmd: EtlCommand) -> Result<ExitCode, String> {
    match cmd {
        EtlCommand::Inspect { file } => {
            let data = read(&file)?;
            let trace = Trace::decode(&data).map_err(|e| format!("{}: {e}", file.display()))?;
            let mut summary = tracemerge_etl::inspect::summary(&trace);
            summary["file"] = file.display().to_string().into();
            summary["bytes"] = data.len().into();
            let text = serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?;
            write_stdout(&(text + "\n"))?;
            Ok(report_damage(&file, &trace.damage))
        }
        EtlCommand::Import {
            file,
            symbols,
            artifact_map,
            granularity,
            window,
            source,
            lenient,
            output,
        } => {
            let artifact_map = match artifact_map {
                Some(p) => ArtifactMap::load(&p).map_err(|e| e.to_string())?,
                None => ArtifactMap::default(),
            };
            if let Some(dir) = &symbols {
                if !dir.is_dir() {
                    return Err(format!("--symbols {}: not a directory", dir.display()));
                }
            }
            let options = ImportOptions {
                symbols,
                artifact_map,
                granularity: match granularity {
                    GranularityArg::Function => Granularity::Function,
                    GranularityArg::Module => Granularity::Module,
                },
                window_ms: parse_duration_ms(&window).map_err(|e| format!("--window: {e}"))?,
                source,
                lenient,
                decode: DecodeOptions::default(),
            };
            let imp = tracemerge_etl::import_report(&file, &options)
                .map_err(|e| format!("{}: {e}", file.display()))?;
            if !imp.damage.is_empty() && !lenient {
                for e in &imp.damage {
                    eprintln!("tracemerge: {}: {e}", file.display());
                }
                return Err(format!(
                    "{}: the file is damaged ({} problem(s)); --lenient imports the {} edge record(s) that decode",
                    file.display(),
                    imp.damage.len(),
                    imp.stats.edge_records
                ));
            }
            let mut text = String::new();
            for r in &imp.records {
                text.push_str(&r.to_json());
                text.push('\n');
            }
            match &output {
                Some(p) => std::fs::write(p, text).map_err(|e| format!("{}: {e}", p.display()))?,
                None => write_stdout(&text)?,
            }
            eprintln!(
                "tracemerge: {}: {} edge records from {} stacks ({} observations; {} pairs outside known images)",
                file.display(),
                imp.stats.edge_records,
                imp.stats.stacks,
                imp.stats.observations,
                imp.stats.pairs_unresolved
            );
            for p in &imp.stats.symbol_problems {
                eprintln!("tracemerge: warning: {p}");
            }
            report_damage(&file, &imp.damage);
            Ok(ExitCode::SUCCESS)
        }
        EtlCommand::Bench { file, runs } => {
            let v = tracemerge_etl::bench::decode_speed_runs(&file, runs)
                .map_err(|e| format!("{}: {e}", file.display()))?;
            write_stdout(&(serde_json::to_string_pretty(&v).map_err(|e| e.to_string())? + "\n"))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Writes to stdout; a closed pipe (`| head`) is not an error.
fn write_stdout(text: &str) -> Result<(), String> {
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(format!("stdout: {e}")),
        _ => Ok(()),
    }
}

fn report_damage(file: &Path, damage: &[tracemerge_etl::EtlError]) -> ExitCode {
    for e in damage {
        eprintln!("tracemerge: {}: {e}", file.display());
    }
    if damage.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_duration_ms;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("250ms"), Ok(250));
        assert_eq!(parse_duration_ms("2s"), Ok(2000));
        assert_eq!(parse_duration_ms("1m"), Ok(60_000));
        assert!(parse_duration_ms("0s").is_err());
        assert!(parse_duration_ms("x").is_err());
        assert!(parse_duration_ms("5d").is_err());
    }
}
