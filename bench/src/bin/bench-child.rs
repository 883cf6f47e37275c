//! The memory suite's child process for the bench crate's own tests (the
//! `tracemerge` command has the same entry as its hidden `bench-child`
//! subcommand): one measurement, its task in `TRACEMERGE_BENCH_CHILD`.

use std::process::ExitCode;

fn main() -> ExitCode {
    match tracemerge_bench::child_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-child: {e}");
            ExitCode::FAILURE
        }
    }
}
