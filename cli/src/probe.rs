//! `tracemerge probe …`: eBPF collectors.

use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum ProbeCommand {
    /// Exact mode: entry uprobes on chosen functions.
    Exact {
        #[arg(long)]
        binary: std::path::PathBuf,
    },
}

pub fn run(cmd: ProbeCommand) -> Result<ExitCode, String> {
    match cmd {
        ProbeCommand::Exact { binary } => Err(format!("{}: not implemented yet", binary.display())),
    }
}
