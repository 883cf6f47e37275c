//! The engine's state is bounded by the live window, not by the length of
//! the stream: with expiry driven by watermarks, arrangements compact,
//! retractions cancel and the per-artifact tables (closures, rules) drop
//! what expired, so three times the stream holds about the same number of
//! updates and entries at its peak.
//!
//! The stream includes runtime edges missing from the snapshot, accepted
//! and expiring again and again, so the BFS distances and witness paths
//! keep changing. That state stays bounded only while the dataflow keeps
//! up with the input: a join compacts one input only as far as the other
//! input's frontier, so a dataflow left lagging behind the reader keeps the
//! whole history (`Options::rounds_in_flight`).

use std::sync::{Arc, Mutex};

use tracemerge_dataflow::{run, Event, Options};
use tracemerge_records::Config;
use tracemerge_scenarios::workload::Workload;

/// The most updates the arrangements of worker 0 held at once, plus the
/// most entries its per-artifact tables kept.
fn held_peak(records: usize) -> u64 {
    let workload = Workload {
        functions: 1_000,
        records,
        watermark_every: 100,
        conflict_rate: 0.02,
        ..Workload::default()
    };
    let config = Config {
        ttl: 2_000, // 2,000 records live at a time (one per ms)
        ..Config::default()
    };
    let mut options = Options::threads(1);
    options.profile = true;
    let peak = Arc::new(Mutex::new(None));
    let slot = peak.clone();
    run(
        workload.stream().map(Ok::<_, String>),
        &config,
        options,
        move |event| {
            if let Event::Profile(profile) = event {
                *slot.lock().unwrap() = Some(profile.held_peak());
            }
        },
    )
    .expect("a valid stream");
    let peak = peak.lock().unwrap().expect("a profile at the end");
    peak
}

#[test]
fn state_stays_bounded_as_windows_expire() {
    let short = held_peak(20_000);
    let long = held_peak(60_000);
    eprintln!("held at peak: {short} updates at 20k records, {long} at 60k");
    assert!(short > 2_000, "the window holds state: {short}");
    assert!(
        // (Without removing an expired edge from the closures' table, the
        // longer stream kept 7% more: the conflict edges it had seen.)
        (long as f64) < 1.05 * short as f64,
        "state grew with the stream: {short} updates at 20k records, {long} at 60k"
    );
}
