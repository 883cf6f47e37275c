//! The real-time path: a file's buffers fed to the live decoder one event
//! at a time, as a real-time session would deliver them, give the stacks
//! and edges of the file decoder, window by window with watermarks.

mod common;

use common::*;
use tracemerge_etl::realtime::{LiveEvent, RealtimeDecoder, RealtimeOptions};
use tracemerge_etl::{edges, Granularity, ImportOptions, Trace};
use tracemerge_records::Record;

fn options(trace: &Trace, import: ImportOptions) -> RealtimeOptions {
    RealtimeOptions {
        pointer_size: trace.header.pointer_size,
        clock: trace.clock,
        // Two seconds: real-time buffers are flushed at least every second.
        reorder_ticks: 2 * trace.header.perf_freq.max(1),
        patience_ticks: 3 * trace.header.perf_freq.max(1),
        pid: None,
        import,
        start_time: trace.header.start_time,
    }
}

/// Feeds `events`, draining every `every` events; returns all records and
/// how many edge records came out before the end.
fn replay(
    decoder: &mut RealtimeDecoder,
    events: &[LiveEvent],
    every: usize,
) -> (Vec<Record>, usize) {
    let mut records = Vec::new();
    for chunk in events.chunks(every) {
        for ev in chunk {
            decoder.push(ev);
        }
        records.extend(decoder.drain());
    }
    let early = records
        .iter()
        .filter(|r| matches!(r, Record::Edge(_)))
        .count();
    records.extend(decoder.finish());
    (records, early)
}

/// Watermarks never go back and no record comes after a watermark past it.
fn check_watermarks(records: &[Record]) {
    let mut watermark = 0;
    for r in records {
        match r {
            Record::Watermark { at } => {
                assert!(*at >= watermark, "watermark went back: {at} < {watermark}");
                watermark = *at;
            }
            other => assert!(
                other.time() >= watermark,
                "record at {} after watermark {watermark}",
                other.time()
            ),
        }
    }
    assert!(matches!(records.last(), Some(Record::Watermark { .. })));
}

#[test]
fn shipped_trace_replayed_live_gives_the_file_figures() {
    let Some(path) = shared_file("perfview-net.4.5.2.x64.etl") else {
        return;
    };
    let data = std::fs::read(path).unwrap();
    let trace = Trace::decode(&data).unwrap();
    let import = ImportOptions {
        granularity: Granularity::Module,
        ..ImportOptions::default()
    };
    let mut decoder = RealtimeDecoder::new(options(&trace, import.clone()));
    let events = live_events(&data, 8);
    let (records, early) = replay(&mut decoder, &events, 5_000);
    check_watermarks(&records);

    // The same stacks: assembly is the file decoder's, in the same order.
    assert_eq!(decoder.stats().stacks, trace.stacks.len() as u64);
    assert_eq!(decoder.counts.assembly, trace.counts.assembly);
    assert_eq!(decoder.counts.key_refs_unresolved, 0);
    let file = edges::edges(trace, "x.etl", &import, None);
    assert_eq!(decoder.stats().pairs, file.stats.pairs);
    // Edges come out while the session runs, not only at its end.
    assert!(early > 100, "edge records before the end: {early}");

    // Every edge with the same hits: stacks are named once the images
    // logged before them have arrived (the reorder horizon).
    let (live, file) = (hits(&records), hits(&file.records));
    assert_eq!(live, file);
    let key = (
        "Test.x64.exe".to_string(),
        "ntdll.dll".to_string(),
        "kernel32.dll".to_string(),
    );
    assert!(
        live.get(&key).copied().unwrap_or(0) > 1_000,
        "{:?}",
        live.get(&key)
    );
}

/// Fragments of one event on two processors, delivered processor by
/// processor (the later one first): the reorder horizon puts them back in
/// logged order, so the waiting-list rule sees what the file decoder sees.
#[test]
fn out_of_order_delivery_is_put_back_in_order() {
    let k = 0xffff_f800_0000_0000u64;
    let (u, t) = (0x40_0000u64, QPC_START);
    let mut w = EtlWriter::new(8);
    w.buffer(1);
    let r = w.key_ref(t + 400, false, t + 100, 100, 7, 0x50);
    w.push(r);
    w.buffer(0);
    let recs = vec![
        w.process(3, t + 1, 100, "shop.exe"),
        w.image(3, t + 2, u, 0x1_0000, 100, "shop.exe"),
        w.image(3, t + 3, k, 0x10_0000, 0, "ntoskrnl.exe"),
        w.sample(t + 100, k + 0xa0, 7),
        w.key_ref(t + 101, true, t + 100, 100, 7, 0x51),
        w.sample(t + 200, k + 0xb0, 7),
        w.stack(t + 201, t + 200, 100, 7, &[k + 0xb0]),
        w.key_def(t + 500, 35, 0x51, &[k + 0xa0]),
        w.key_def(t + 510, 35, 0x50, &[u + 0x10, u + 0x20]),
    ];
    for r in recs {
        w.push(r);
    }
    let data = w.bytes();
    let trace = Trace::decode(&data).unwrap();
    assert_eq!(trace.counts.assembly.kernel_fragments_joined_later, 1);
    let mut decoder = RealtimeDecoder::new(options(&trace, ImportOptions::default()));
    let (records, _) = replay(&mut decoder, &live_events(&data, 8), 1);
    check_watermarks(&records);
    assert_eq!(decoder.counts.assembly, trace.counts.assembly);
    let file = edges::edges(trace, "x.etl", &ImportOptions::default(), None);
    assert_eq!(hits(&records), hits(&file.records));
    assert_eq!(decoder.stats().stacks, 2);
}
