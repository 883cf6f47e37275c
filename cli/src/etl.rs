//! `tracemerge etl …`: inspect and import Windows ETW trace files.

use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum EtlCommand {
    /// Print what a trace file holds, as JSON.
    Inspect { file: std::path::PathBuf },
}

pub fn run(cmd: EtlCommand) -> Result<ExitCode, String> {
    match cmd {
        EtlCommand::Inspect { file } => Err(format!("{}: not implemented yet", file.display())),
    }
}
