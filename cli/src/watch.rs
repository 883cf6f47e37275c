//! `tracemerge watch`: probe and merge continuously.

use std::io::Write;
use std::process::ExitCode;

use tracemerge_dataflow::{run, Event, Options};
use tracemerge_records::{Config, Input, Record};

use crate::error::CliError;
use crate::merge::inputs;

/// `tracemerge watch`: the probe feeds the engine window by window; each
/// window ends with a watermark just past its records, so the verdicts and
/// conflicts it changes are printed at once.
pub fn watch(
    graphs: Vec<String>,
    config: Config,
    probe: crate::probe::ProbeCommand,
) -> Result<ExitCode, CliError> {
    let mut static_inputs = Vec::new();
    if !graphs.is_empty() {
        for item in inputs(&graphs, &tracemerge_sources::Options::default())? {
            static_inputs.push(item?);
        }
    }
    let (tx, rx) = std::sync::mpsc::channel::<Record>();
    let engine = std::thread::spawn(move || {
        let mut options = Options::threads(1);
        options.changes = true;
        options.batch = 1;
        let stream = static_inputs
            .into_iter()
            .chain(rx.into_iter().map(Input::from))
            .map(Ok::<_, std::convert::Infallible>);
        let mut out = std::io::stdout();
        run(stream, &config, options, move |event| {
            if let Event::Change(change) = event {
                if matches!(
                    change.item,
                    tracemerge_records::ChangeItem::Verdict { .. }
                        | tracemerge_records::ChangeItem::Conflict { .. }
                ) {
                    let line = serde_json::to_string(&change).expect("changes serialize");
                    let _ = writeln!(out, "{line}").and_then(|_| out.flush());
                }
            }
        })
    });
    let mut last = 0;
    let code = crate::probe::collect(probe, &mut |window| {
        for record in window {
            last = last.max(record.time());
            tx.send(record.clone())
                .map_err(|_| CliError::EngineStopped)?;
        }
        tx.send(Record::Watermark { at: last + 1 })
            .map_err(|_| CliError::EngineStopped)
    });
    drop(tx);
    let engine = engine.join().map_err(|_| CliError::EngineFailed)?;
    engine?;
    code
}
