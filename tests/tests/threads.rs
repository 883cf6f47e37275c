//! A run ends with the CPU time of each of its engine threads: the reader,
//! an aggregator and a worker per worker, and worker 0's sink.

use std::sync::{Arc, Mutex};

use tracemerge_dataflow::threads::Role;
use tracemerge_dataflow::{run, Event, Options};
use tracemerge_records::Config;
use tracemerge_scenarios::workload::Workload;

#[test]
fn a_run_ends_with_every_threads_cpu_time() {
    let workload = Workload {
        functions: 500,
        records: 20_000,
        watermark_every: 200,
        ..Workload::default()
    };
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    run(
        workload.stream().map(Ok::<_, String>),
        &Config::default(),
        Options::threads(2),
        move |event| seen.lock().unwrap().push(event),
    )
    .expect("a valid stream");
    let mut events = std::mem::take(&mut *events.lock().unwrap());
    let Some(Event::Threads(times)) = events.pop() else {
        panic!("the last event is not the threads' times");
    };
    assert!(
        !events.iter().any(|e| matches!(e, Event::Threads(_))),
        "sent once"
    );
    let threads: Vec<(Role, usize)> = times.iter().map(|t| (t.role, t.index)).collect();
    assert_eq!(
        threads,
        [
            (Role::Reader, 0),
            (Role::Aggregator, 0),
            (Role::Aggregator, 1),
            (Role::Worker, 0),
            (Role::Worker, 1),
            (Role::Sink, 0),
        ]
    );
    // Each of them did work: the reader read 20,000 records, and every
    // aggregator and worker had a share of them.
    for t in &times {
        assert!(!t.cpu.is_zero(), "{t:?}");
    }
}
