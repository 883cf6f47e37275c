//! The `tracemerge` command (DESIGN.md §8).

mod etl;
mod probe;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Merge runtime call edges with static call graphs, incrementally.
#[derive(Parser)]
#[command(name = "tracemerge", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Decode Windows ETW trace files (.etl).
    #[command(subcommand)]
    Etl(etl::EtlCommand),
    /// Collect call edges from running Linux processes with eBPF.
    #[command(subcommand)]
    Probe(probe::ProbeCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Etl(cmd) => etl::run(cmd),
        Command::Probe(cmd) => probe::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("tracemerge: {message}");
            ExitCode::FAILURE
        }
    }
}
