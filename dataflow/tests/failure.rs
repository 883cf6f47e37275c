//! A worker that dies ends the run with an error instead of leaving its
//! peers waiting for it.

use std::sync::mpsc;
use std::time::Duration;

use tracemerge_dataflow::{run, Event, Options, RunError};
use tracemerge_records::{Config, Record};

fn stream() -> Vec<Record> {
    let mut lines = vec![
        r#"{"type":"graph","artifact":"app","at":0,"nodes":["main","a","b"],"edges":[["main","a"],["a","b"]],"entrypoints":["main"]}"#.to_string(),
    ];
    for i in 1..200 {
        lines.push(format!(
            r#"{{"type":"edge","artifact":"app","caller":"main","callee":"f{i}","at":{},"hits":1,"source":"s"}}"#,
            i * 10
        ));
        lines.push(format!(r#"{{"type":"watermark","at":{}}}"#, i * 10 + 1));
    }
    lines
        .iter()
        .map(|l| Record::from_json(l).unwrap())
        .collect()
}

/// The caller's callback panics on worker 0 at the first change; with two
/// workers, worker 1 would wait for worker 0's progress forever.
#[test]
fn a_panicking_worker_fails_the_run() {
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut options = Options::threads(2);
        options.changes = true;
        let records = stream().into_iter().map(Ok::<_, String>);
        let result = run(records, &Config::default(), options, |event| {
            if let Event::Change(_) = event {
                panic!("the caller's sink failed");
            }
        });
        let _ = done_tx.send(result.map(|_| ()));
    });
    let result = done_rx
        .recv_timeout(Duration::from_secs(120))
        .expect("the run ended instead of hanging");
    match result {
        Err(RunError::Engine(message)) => assert!(
            message.contains("a worker failed"),
            "unexpected message: {message}"
        ),
        other => panic!("expected an engine error, got {other:?}"),
    }
}
