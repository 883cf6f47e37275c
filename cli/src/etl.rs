//! `tracemerge etl …`: inspect and import Windows ETW trace files (.etl).

use crate::error::CliError;
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
        /// Aggregation window for one edge: a duration, a whole number and ms,
        /// s, m or h (250ms, 10s, 10m, 2h), more than zero.
        #[arg(long, default_value = "1s", value_parser = tracemerge_records::parse_nonzero_duration)]
        window: u64,
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

fn read(path: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|e| CliError::io(path, e))
}

pub fn run(cmd: EtlCommand) -> Result<ExitCode, CliError> {
    match cmd {
        EtlCommand::Inspect { file } => {
            let data = read(&file)?;
            let trace = Trace::decode(&data).map_err(|source| CliError::Etl {
                file: file.clone(),
                source,
            })?;
            let mut summary = tracemerge_etl::inspect::summary(&trace);
            summary["file"] = file.display().to_string().into();
            summary["bytes"] = data.len().into();
            let text = serde_json::to_string_pretty(&summary).map_err(CliError::Json)?;
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
                Some(p) => ArtifactMap::load(&p).map_err(CliError::EtlSide)?,
                None => ArtifactMap::default(),
            };
            if let Some(dir) = &symbols {
                if !dir.is_dir() {
                    return Err(CliError::NotADirectory {
                        option: "--symbols",
                        path: dir.clone(),
                    });
                }
            }
            let options = ImportOptions {
                symbols,
                artifact_map,
                granularity: match granularity {
                    GranularityArg::Function => Granularity::Function,
                    GranularityArg::Module => Granularity::Module,
                },
                window_ms: window,
                source,
                lenient,
                decode: DecodeOptions::default(),
            };
            let imp =
                tracemerge_etl::import_report(&file, &options).map_err(|source| CliError::Etl {
                    file: file.clone(),
                    source,
                })?;
            if !imp.damage.is_empty() && !lenient {
                for e in &imp.damage {
                    eprintln!("tracemerge: {}: {e}", file.display());
                }
                return Err(CliError::EtlDamaged {
                    file,
                    problems: imp.damage.len(),
                    edge_records: imp.stats.edge_records,
                });
            }
            let mut text = String::new();
            for r in &imp.records {
                text.push_str(&r.to_json());
                text.push('\n');
            }
            match &output {
                Some(p) => std::fs::write(p, text).map_err(|e| CliError::io(p, e))?,
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
            let v = tracemerge_etl::bench::decode_speed_runs(&file, runs).map_err(|source| {
                CliError::Etl {
                    file: file.clone(),
                    source,
                }
            })?;
            write_stdout(&(serde_json::to_string_pretty(&v).map_err(CliError::Json)? + "\n"))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Writes to stdout; a closed pipe (`| head`) is not an error.
fn write_stdout(text: &str) -> Result<(), CliError> {
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(CliError::output("stdout", e)),
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
    use super::EtlCommand;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        etl: EtlCommand,
    }

    fn window(value: &str) -> Result<u64, clap::Error> {
        let cli = Cli::try_parse_from(["etl", "import", "x.etl", "--window", value])?;
        match cli.etl {
            EtlCommand::Import { window, .. } => Ok(window),
            _ => unreachable!(),
        }
    }

    /// `--window` takes the one duration syntax (the unit is required), and
    /// more than zero.
    #[test]
    fn window_durations() {
        assert_eq!(window("250ms").unwrap(), 250);
        assert_eq!(window("2s").unwrap(), 2000);
        assert_eq!(window("1m").unwrap(), 60_000);
        for bad in ["0s", "0ms", "10", "x", "5d", "1.5s"] {
            assert!(window(bad).is_err(), "{bad}");
        }
        let message = window("10").unwrap_err().to_string();
        assert!(message.contains("needs a unit"), "{message}");
    }
}
