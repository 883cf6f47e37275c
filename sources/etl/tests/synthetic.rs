//! Corner cases on synthetic files built by the tests' ETL writer.

mod common;

use common::*;
use tracemerge_etl::trace::StackOrigin;
use tracemerge_etl::{edges, inspect, Granularity, ImportOptions, Trace};
use tracemerge_records::Record;

const U: u64 = 0x40_0000;
const L: u64 = 0x1000_0000;

fn kbase(ps: usize) -> u64 {
    if ps == 4 {
        0x8040_0000
    } else {
        0xffff_f800_0000_0000
    }
}

/// One sampled event whose stack is split over three buffers: the kernel
/// half as a key reference (CPU 0), the user half as a full stack (CPU 1),
/// and the key's definition in a later buffer.
fn scenario(ps: usize, compressed: bool) -> EtlWriter {
    let k = kbase(ps);
    let t = QPC_START;
    let mut w = EtlWriter::new(ps);
    w.compressed = compressed;
    w.buffer(0);
    let recs = vec![
        w.process(3, t + 10, 100, "shop.exe"),
        w.image(
            3,
            t + 11,
            U,
            0x1_0000,
            100,
            r"\Device\HarddiskVolume2\app\shop.exe",
        ),
        w.image(3, t + 12, L, 0x1_0000, 100, r"C:\app\Lib.DLL"),
        w.image(
            3,
            t + 13,
            k,
            0x10_0000,
            0,
            r"\SystemRoot\system32\ntoskrnl.exe",
        ),
        w.sample(t + 1000, k + 0x10, 7),
        w.key_ref(t + 1001, true, t + 1000, 100, 7, 0x1111),
    ];
    for r in recs {
        w.push(r);
    }
    w.buffer(1);
    let r = w.stack(t + 1500, t + 1000, 100, 7, &[L + 0x21, U + 0x106]);
    w.push(r);
    w.buffer(0);
    let r = w.key_def(t + 2000, 35, 0x1111, &[k + 0x10, k + 0x501]);
    w.push(r);
    w
}

fn edges_of(records: &[Record]) -> Vec<(String, String, String, u64, u64)> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Edge(e) => Some((
                e.artifact.clone(),
                e.caller.clone(),
                e.callee.clone(),
                e.at,
                e.hits,
            )),
            _ => None,
        })
        .collect()
}

fn check_scenario(ps: usize, compressed: bool) {
    let w = scenario(ps, compressed);
    let trace = Trace::decode(&w.bytes()).unwrap();
    assert!(trace.damage.is_empty(), "{:?}", trace.damage);
    assert_eq!(trace.header.pointer_size, ps as u32);
    assert_eq!(trace.counts.buffers, 4);
    assert_eq!(
        trace.counts.buffers_compressed,
        if compressed { 3 } else { 0 }
    );
    let k = kbase(ps);
    assert_eq!(trace.stacks.len(), 1, "kernel and user halves joined");
    let s = &trace.stacks[0];
    assert_eq!(s.frames, vec![k + 0x10, k + 0x501, L + 0x21, U + 0x106]);
    assert_eq!((s.pid, s.tid, s.timestamp), (100, 7, QPC_START + 1000));
    assert_eq!(s.event, Some((0x0f, 46)), "matched to its sample");
    assert_eq!(trace.frame_stats(StackOrigin::StackWalk), (1, 4, 4));

    let imp = edges::edges(trace, "x.etl", &ImportOptions::default(), None);
    let at = ms(QPC_START + 1000);
    assert_eq!(
        edges_of(&imp.records),
        vec![
            (
                "shop.exe".into(),
                "lib.dll!+0x20".into(),
                "ntoskrnl.exe!+0x500".into(),
                at,
                1
            ),
            (
                "shop.exe".into(),
                "ntoskrnl.exe!+0x500".into(),
                "ntoskrnl.exe!+0x10".into(),
                at,
                1
            ),
            (
                "shop.exe".into(),
                "shop.exe!+0x105".into(),
                "lib.dll!+0x20".into(),
                at,
                1
            ),
        ]
    );
    match imp.records.last() {
        Some(Record::Watermark { at: wm }) => assert!(*wm >= at),
        other => panic!("no final watermark: {other:?}"),
    }
    // Every record is valid for the engine and round-trips through JSON.
    for r in &imp.records {
        assert_eq!(&Record::from_json(&r.to_json()).unwrap(), r);
    }
}

#[test]
fn stack_split_across_buffers_64_bit() {
    check_scenario(8, false);
}

#[test]
fn thirty_two_bit_pointers() {
    check_scenario(4, false);
}

#[test]
fn compressed_buffers_decode_like_plain_ones() {
    check_scenario(8, true);
    check_scenario(4, true);
    let plain = scenario(8, false).bytes();
    let packed = scenario(8, true).bytes();
    assert!(packed.len() < plain.len() / 2);
}

#[test]
fn module_granularity_drops_intra_module_pairs_and_aggregates() {
    let mut w = scenario(8, false);
    // A second sample in the same window with the same user stack.
    let t = QPC_START;
    let k = kbase(8);
    let recs = vec![
        w.sample(t + 3000, k + 0x10, 7),
        w.stack(t + 3001, t + 3000, 100, 7, &[k + 0x10, L + 0x21, U + 0x106]),
    ];
    w.buffer(1);
    for r in recs {
        w.push(r);
    }
    let trace = Trace::decode(&w.bytes()).unwrap();
    let opts = ImportOptions {
        granularity: Granularity::Module,
        ..ImportOptions::default()
    };
    let imp = edges::edges(trace, "x.etl", &opts, None);
    let e = edges_of(&imp.records);
    assert_eq!(
        e,
        vec![
            (
                "shop.exe".into(),
                "lib.dll".into(),
                "ntoskrnl.exe".into(),
                ms(t + 1000),
                2
            ),
            (
                "shop.exe".into(),
                "shop.exe".into(),
                "lib.dll".into(),
                ms(t + 1000),
                2
            ),
        ]
    );
    assert_eq!(imp.stats.pairs_same_module, 1);
}

#[test]
fn artifact_map_renames_and_drops_processes() {
    let w = scenario(8, false);
    let mut opts = ImportOptions {
        artifact_map: tracemerge_etl::ArtifactMap::parse("# map\nSHOP.EXE = shop@1.4\n").unwrap(),
        ..ImportOptions::default()
    };
    let imp = edges::edges(Trace::decode(&w.bytes()).unwrap(), "x.etl", &opts, None);
    assert!(edges_of(&imp.records).iter().all(|e| e.0 == "shop@1.4"));
    opts.artifact_map = tracemerge_etl::ArtifactMap::parse(r#"{"*": "-"}"#).unwrap();
    let imp = edges::edges(Trace::decode(&w.bytes()).unwrap(), "x.etl", &opts, None);
    assert!(edges_of(&imp.records).is_empty());
    assert_eq!(imp.stats.pairs_dropped_process, 3);
    assert!(tracemerge_etl::ArtifactMap::parse("no equals sign").is_err());
}

#[test]
fn stack_keys_redefined_resolve_to_the_definition_live_at_the_reference() {
    let k = kbase(8);
    let t = QPC_START;
    let mut w = EtlWriter::new(8);
    w.buffer(0);
    let a = [k + 0xa0, k + 0xa1];
    let b = [k + 0xb0, k + 0xb1, k + 0xb2];
    let c = [k + 0xc0];
    let recs = vec![
        w.image(3, t + 1, k, 0x1000, 0, "ntoskrnl.exe"),
        w.key_ref(t + 5, true, t + 5, 9, 1, 0x42),
        w.key_def(t + 10, 35, 0x42, &a), // evicted: defines the stack of t+5
        w.key_ref(t + 15, true, t + 15, 9, 1, 0x42), // the key is reused
        w.key_def(t + 20, 35, 0x42, &b),
        w.key_ref(t + 25, true, t + 25, 9, 1, 0x42),
        w.key_def(t + 30, 36, 0x42, &c), // rundown at the end
    ];
    for r in recs {
        w.push(r);
    }
    let trace = Trace::decode(&w.bytes()).unwrap();
    assert_eq!(trace.counts.keys_defined, 1);
    assert_eq!(trace.counts.key_refs_unresolved, 0);
    let got: Vec<Vec<u64>> = trace.stacks.iter().map(|s| s.frames.clone()).collect();
    assert_eq!(got, vec![a.to_vec(), b.to_vec(), c.to_vec()]);
}

/// Windows logs a thread's user stack once, on its return to user mode:
/// three samples taken during one system call each get a kernel fragment,
/// one user fragment follows (with the first sample's timestamp) and must
/// complete all three. The user key equals a live kernel key: the two are
/// separate tables.
#[test]
fn one_user_fragment_completes_every_waiting_kernel_fragment() {
    let k = kbase(8);
    let t = QPC_START;
    let mut w = EtlWriter::new(8);
    w.buffer(0);
    let kernel_a = [k + 0xa0, k + 0xa1];
    let kernel_b = [k + 0xb0];
    let kernel_c = [k + 0xc0, k + 0xc1, k + 0xc2];
    let user = [L + 0x21, U + 0x106];
    let shared_key = 0x42;
    let recs = vec![
        w.process(3, t + 1, 100, "shop.exe"),
        w.image(3, t + 2, U, 0x1_0000, 100, "shop.exe"),
        w.image(3, t + 3, L, 0x1_0000, 100, "lib.dll"),
        w.image(3, t + 4, k, 0x10_0000, 0, "ntoskrnl.exe"),
        w.sample(t + 100, k + 0xa0, 7),
        w.key_ref(t + 101, true, t + 100, 100, 7, shared_key),
        w.sample(t + 200, k + 0xb0, 7),
        w.key_ref(t + 201, true, t + 200, 100, 7, 0x43),
        w.sample(t + 300, k + 0xc0, 7),
        w.stack(t + 301, t + 300, 100, 7, &kernel_c),
        // Back in user mode: the user part, stamped with the first sample.
        w.key_ref(t + 400, false, t + 100, 100, 7, shared_key),
        // Another thread of the process is not completed by it.
        w.sample(t + 450, k + 0xd0, 8),
        w.key_ref(t + 451, true, t + 450, 100, 8, 0x44),
        // The System process never waits for a user part.
        w.sample(t + 460, k + 0xe0, 9),
        w.stack(t + 461, t + 460, 4, 9, &[k + 0xe0, k + 0xe1]),
        // Definitions: the same key for a kernel and a user stack.
        w.key_def(t + 500, 35, shared_key, &kernel_a),
        w.key_def(t + 510, 35, 0x43, &kernel_b),
        w.key_def(t + 520, 35, shared_key, &user),
        w.key_def(t + 530, 36, 0x44, &[k + 0xd0]),
    ];
    for r in recs {
        w.push(r);
    }
    let trace = Trace::decode(&w.bytes()).unwrap();
    assert_eq!(trace.counts.key_refs_unresolved, 0);
    let got: Vec<(i64, u32, Vec<u64>)> = trace
        .stacks
        .iter()
        .map(|s| (s.timestamp - t, s.tid, s.frames.clone()))
        .collect();
    let joined = |kernel: &[u64]| [kernel, &user[..]].concat();
    assert_eq!(
        got,
        vec![
            (100, 7, joined(&kernel_a)),
            (200, 7, joined(&kernel_b)),
            (300, 7, joined(&kernel_c)),
            (450, 8, vec![k + 0xd0]),
            (460, 9, vec![k + 0xe0, k + 0xe1]),
        ]
    );
    assert!(trace.stacks.iter().all(|s| s.event == Some((0x0f, 46))));
    let a = trace.counts.assembly;
    assert_eq!(a.kernel_fragments_joined_later, 2);
    assert_eq!(a.user_fragments_shared, 1);
    assert_eq!(
        a.kernel_only_at_end, 1,
        "thread 8 never returned to user mode"
    );
    // Every frame is in an image: none of them resolved to the other table.
    assert_eq!(trace.frame_stats(StackOrigin::StackWalk), (5, 15, 15));
}

/// A full user stack logged on the return to user mode completes the
/// waiting kernel fragments the same way a user key does.
#[test]
fn full_user_stack_completes_waiting_kernel_fragments() {
    let k = kbase(4);
    let t = QPC_START;
    let mut w = EtlWriter::new(4);
    w.buffer(0);
    let recs = vec![
        w.stack(t + 10, t + 10, 100, 7, &[k + 1, k + 2]),
        w.stack(t + 20, t + 20, 100, 7, &[k + 3]),
        w.stack(t + 30, t + 10, 100, 7, &[U + 1, U + 2]),
        // A later kernel fragment waits again, and stays kernel-only.
        w.stack(t + 40, t + 40, 100, 7, &[k + 4]),
    ];
    for r in recs {
        w.push(r);
    }
    let trace = Trace::decode(&w.bytes()).unwrap();
    let got: Vec<Vec<u64>> = trace.stacks.iter().map(|s| s.frames.clone()).collect();
    assert_eq!(
        got,
        vec![
            vec![k + 1, k + 2, U + 1, U + 2],
            vec![k + 3, U + 1, U + 2],
            vec![k + 4],
        ]
    );
}

/// Thread events are group 0x05; group 0x04 is FileIo and is not a thread.
#[test]
fn thread_events_are_group_five() {
    let t = QPC_START;
    let mut w = EtlWriter::new(8);
    w.buffer(0);
    let mut payload = Vec::new();
    payload.extend_from_slice(&100u32.to_le_bytes());
    payload.extend_from_slice(&7u32.to_le_bytes());
    payload.extend_from_slice(&[0; 40]);
    let recs = vec![
        w.system(0x05, 1, 3, 7, 100, t + 1, &payload),
        w.system(0x05, 3, 3, 8, 100, t + 2, &payload),
        w.system(0x04, 1, 3, 7, 100, t + 3, &payload),
    ];
    for r in recs {
        w.push(r);
    }
    let trace = Trace::decode(&w.bytes()).unwrap();
    assert_eq!(trace.counts.thread_events, 2);
    assert_eq!(trace.counts.bad_payloads, 0);
}

/// Image Load under the classic hook 0x030A (group 3, type 10) is a load.
#[test]
fn image_load_under_the_process_hook_is_a_load() {
    let t = QPC_START;
    let mut w = EtlWriter::new(8);
    w.buffer(0);
    let mut load = w.image(10, t + 100, L, 0x1000, 5, "plugin.dll");
    load[7] = 0x03; // group byte of the hook id
    let recs = vec![
        load,
        w.stack(t + 50, t + 50, 5, 1, &[L + 1, L + 2]),
        w.stack(t + 150, t + 150, 5, 1, &[L + 1, L + 2]),
    ];
    for r in recs {
        w.push(r);
    }
    let trace = Trace::decode(&w.bytes()).unwrap();
    assert_eq!(trace.counts.classic_image_loads, 1);
    let spans: Vec<_> = trace.modules.spans().collect();
    assert_eq!(spans.len(), 1);
    assert_eq!(
        (spans[0].1.load, spans[0].1.name.as_str()),
        (t + 100, "plugin.dll")
    );
    // Before its load the image does not resolve; after, it does.
    assert_eq!(trace.frame_stats(StackOrigin::StackWalk), (2, 4, 2));
}

#[test]
fn reference_to_an_undefined_key_is_counted() {
    let mut w = EtlWriter::new(8);
    let r = w.key_ref(QPC_START + 5, false, QPC_START + 5, 9, 1, 0x77);
    w.buffer(0).push(r);
    let trace = Trace::decode(&w.bytes()).unwrap();
    assert_eq!(trace.counts.key_refs_unresolved, 1);
    assert!(trace.stacks.is_empty());
}

#[test]
fn lost_events_and_buffers_are_reported() {
    let mut w = scenario(8, true);
    w.events_lost = 17;
    w.buffers_lost = 2;
    w.buffer(1).flag_current(0x0002);
    let r = w.sample(QPC_START + 4000, 0x1234, 8);
    w.push(r);
    let trace = Trace::decode(&w.bytes()).unwrap();
    let s = inspect::summary(&trace);
    assert_eq!(s["lost_events"], 17);
    assert_eq!(s["lost_buffers"], 2);
    assert_eq!(s["buffers_flagged_lost"], 1);
    assert_eq!(s["buffers"], 5);
    assert_eq!(s["events"]["15/46"], 2);
    assert_eq!(s["events"]["24/32"], 1);
}

#[test]
fn inline_stacks_from_extended_data() {
    let mut w = scenario(8, false);
    let r = w.user_event_with_stack(QPC_START + 5000, 100, 7, &[L + 0x31, U + 0x201]);
    w.buffer(0).push(r);
    let trace = Trace::decode(&w.bytes()).unwrap();
    let inline: Vec<_> = trace
        .stacks
        .iter()
        .filter(|s| s.origin == StackOrigin::Inline)
        .collect();
    assert_eq!(inline.len(), 1);
    assert_eq!(inline[0].frames, vec![L + 0x31, U + 0x201]);
    let provider = tracemerge_etl::events::Guid([0x11; 16]);
    assert_eq!(trace.counts.providers.get(&provider), Some(&1));
    assert_eq!(provider.to_string(), "11111111-1111-1111-1111-111111111111");
    let imp = edges::edges(trace, "x.etl", &ImportOptions::default(), None);
    assert!(edges_of(&imp.records)
        .iter()
        .any(|e| e.1 == "shop.exe!+0x200" && e.2 == "lib.dll!+0x31"));
}

#[test]
fn module_unloaded_mid_trace_no_longer_resolves() {
    let t = QPC_START;
    let mut w = EtlWriter::new(8);
    w.buffer(0);
    let recs = vec![
        w.image(10, t + 100, L, 0x1000, 5, "plugin.dll"),
        w.image(2, t + 200, L, 0x1000, 5, "plugin.dll"),
        w.stack(t + 150, t + 150, 5, 1, &[L + 1, L + 2]),
        w.stack(t + 250, t + 250, 5, 1, &[L + 1, L + 2]),
        w.stack(t + 50, t + 50, 5, 1, &[L + 1, L + 2]),
    ];
    for r in recs {
        w.push(r);
    }
    let trace = Trace::decode(&w.bytes()).unwrap();
    assert_eq!(trace.frame_stats(StackOrigin::StackWalk), (3, 6, 2));
}
