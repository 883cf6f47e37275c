//! `tracemerge generate`: a seeded synthetic workload as a record stream.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use tracemerge_records::Record;

use crate::error::CliError;

/// `tracemerge generate`.
pub fn generate(
    records: impl Iterator<Item = Record>,
    output: Option<PathBuf>,
) -> Result<ExitCode, CliError> {
    let (mut out, name): (Box<dyn Write>, String) = match &output {
        Some(path) => (
            Box::new(std::fs::File::create(path).map_err(|e| CliError::io(path, e))?),
            path.display().to_string(),
        ),
        None => (Box::new(std::io::stdout()), "stdout".into()),
    };
    let mut out = std::io::BufWriter::with_capacity(1 << 20, &mut out);
    for record in records {
        let line = record.to_json();
        match out
            .write_all(line.as_bytes())
            .and_then(|_| out.write_all(b"\n"))
        {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
            Err(e) => return Err(CliError::output(name, e)),
            Ok(()) => {}
        }
    }
    out.flush().map_err(|e| CliError::output(name, e))?;
    Ok(ExitCode::SUCCESS)
}
