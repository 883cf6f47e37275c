//! The live collection loop fed a recorded trace's events as a real-time
//! session would deliver them: the records are the file import's.

#[path = "../../../sources/etl/tests/common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::channel;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracemerge_etl::realtime::{LiveEvent, RealtimeDecoder, RealtimeOptions};
use tracemerge_etl::{edges, Granularity, ImportOptions, Trace};
use tracemerge_etw::run_loop;
use tracemerge_records::Record;

#[test]
fn traced_process_replayed_live_until_it_exits() {
    let Some(path) = common::shared_file("perfview-net.4.5.2.x64.etl") else {
        return;
    };
    let data = std::fs::read(path).unwrap();
    let trace = Trace::decode(&data).unwrap();
    let pid = *trace
        .process_names
        .iter()
        .find(|(_, n)| n.as_str() == "Test.x64.exe")
        .expect("the traced program")
        .0;
    let import = ImportOptions {
        granularity: Granularity::Module,
        source: Some("etw:replay".into()),
        ..ImportOptions::default()
    };
    let mut decoder = RealtimeDecoder::new(RealtimeOptions {
        pointer_size: 8,
        clock: trace.clock,
        reorder_ticks: 2 * trace.header.perf_freq,
        patience_ticks: 3 * trace.header.perf_freq,
        pid: Some(pid),
        import: import.clone(),
        start_time: trace.header.start_time,
    });

    // A session delivering the trace's events in buffer order, a chunk at a
    // time, each once the loop has closed a window since the last: however
    // the threads are scheduled, the stream spans many windows.
    let (tx, rx) = channel();
    let stopped = Arc::new(AtomicBool::new(false));
    let closed = Arc::new(AtomicUsize::new(0));
    let events = common::live_events(&data, 8);
    let seen = closed.clone();
    let feeder = std::thread::spawn(move || {
        for chunk in events.chunks(5_000) {
            let before = seen.load(Ordering::SeqCst);
            for ev in chunk {
                tx.send(ev.clone()).unwrap();
            }
            let waiting = Instant::now();
            while seen.load(Ordering::SeqCst) < before + 2
                && waiting.elapsed() < Duration::from_secs(2)
            {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    });
    let mut windows: Vec<Vec<Record>> = Vec::new();
    let mut ended_at = None;
    let stop_flag = stopped.clone();
    let code = run_loop(
        &rx,
        &mut decoder,
        Duration::from_millis(5),
        None,
        Duration::from_secs(60),
        &mut |d| {
            let done = d.process_ended(pid);
            if done {
                ended_at = Some(Instant::now());
            }
            done.then_some(7)
        },
        &mut || stop_flag.store(true, Ordering::SeqCst),
        &mut |records| {
            windows.push(records.to_vec());
            closed.fetch_add(1, Ordering::SeqCst);
            Ok(())
        },
    )
    .unwrap();
    feeder.join().unwrap();
    assert_eq!(code, 7, "stopped when the process ended");
    assert!(ended_at.is_some() && stopped.load(Ordering::SeqCst));

    let records: Vec<Record> = windows.concat();
    let early: usize = windows[..windows.len() - 1]
        .iter()
        .flatten()
        .filter(|r| matches!(r, Record::Edge(_)))
        .count();
    assert!(early > 0, "edges came out window by window");
    let mut watermark = 0;
    for r in &records {
        match r {
            Record::Watermark { at } => {
                assert!(*at >= watermark);
                watermark = *at;
            }
            Record::Edge(e) => {
                assert!(
                    e.at >= watermark,
                    "edge at {} after watermark {watermark}",
                    e.at
                );
                assert_eq!(e.artifact, "Test.x64.exe");
                assert_eq!(e.source, "etw:replay");
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(matches!(records.last(), Some(Record::Watermark { .. })));

    // Exactly the file import's edges of that process.
    let file = edges::edges(trace, "x.etl", &import, None);
    let mut want = common::hits(&file.records);
    want.retain(|k, _| k.0 == "Test.x64.exe");
    assert!(want.values().sum::<u64>() > 10_000);
    assert_eq!(common::hits(&records), want);
    let summary = tracemerge_etw::summary(&decoder);
    assert_eq!(summary["stack_key_refs_unresolved"], 0);
}

#[test]
fn deadline_ends_an_idle_collection_with_a_watermark() {
    let (_tx, rx) = channel::<LiveEvent>();
    let clock = tracemerge_etl::file::Clock::qpc(10_000_000, common::FT_2024, 0);
    let mut decoder = RealtimeDecoder::new(RealtimeOptions {
        pointer_size: 8,
        clock,
        reorder_ticks: 20_000_000,
        patience_ticks: 30_000_000,
        pid: None,
        import: ImportOptions::default(),
        start_time: common::FT_2024,
    });
    let started = Instant::now();
    let mut out = Vec::new();
    let code = run_loop(
        &rx,
        &mut decoder,
        Duration::from_millis(10),
        Some(Instant::now() + Duration::from_millis(50)),
        Duration::from_millis(10),
        &mut |_| None,
        &mut || {},
        &mut |r| {
            out.extend_from_slice(r);
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(code, 0);
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert_eq!(out, vec![Record::Watermark { at: 0 }]);
}
