//! The real trace files of ../shared/data/etw give the figures of its README.
//! Skipped (with the reason printed) when the files are absent; with
//! TRACEMERGE_REQUIRE_ALL=1 absence is a failure.

mod common;

use std::sync::OnceLock;

use common::shared_file;
use tracemerge_etl::trace::StackOrigin;
use tracemerge_etl::{inspect, ImportOptions, Trace};
use tracemerge_records::Record;

const PERFVIEW: &str = "perfview-net.4.5.2.x64.etl";

fn perfview() -> Option<&'static (Vec<u8>, Trace)> {
    static T: OnceLock<Option<(Vec<u8>, Trace)>> = OnceLock::new();
    T.get_or_init(|| {
        let path = shared_file(PERFVIEW)?;
        let data = std::fs::read(path).unwrap();
        let trace = Trace::decode(&data).unwrap();
        Some((data, trace))
    })
    .as_ref()
}

fn within(got: u64, want: u64, pct: f64) -> bool {
    (got as f64 - want as f64).abs() <= want as f64 * pct / 100.0
}

#[test]
fn perfview_raw_figures_exactly() {
    let Some((data, trace)) = perfview() else {
        return;
    };
    assert!(tracemerge_etl::is_etl(data));
    assert!(trace.damage.is_empty(), "{:?}", trace.damage);
    let h = &trace.header;
    assert_eq!(h.pointer_size, 8);
    assert_eq!(h.perf_freq, 10_000_000);
    assert_eq!(h.buffers_written, 360);
    assert_eq!(h.number_of_processors, 8);
    assert_eq!(h.log_file_mode & 0x0400_0000, 0x0400_0000);
    let c = &trace.counts;
    assert_eq!(c.buffers, 360);
    assert_eq!(c.buffers_decoded, 360);
    assert_eq!(c.buffers_compressed, 359);
    let k = |g: u8, t: u8| c.kernel.get(&(g, t)).copied().unwrap_or(0);
    assert_eq!(k(0x0f, 46), 79_528);
    assert_eq!(k(0x18, 32), 252);
    assert_eq!((k(0x18, 37), k(0x18, 38)), (2_061, 7_046));
    assert_eq!((k(0x18, 35), k(0x18, 36)), (1_909, 1_012));
    assert_eq!(c.keys_defined, 1_077);
    assert_eq!(c.key_refs_unresolved, 0);
    assert_eq!((k(0x14, 3), k(0x14, 4), k(0x14, 2)), (1_763, 1_766, 32));
    // Image loads under the classic hook 0x030A decode as loads.
    assert_eq!(k(0x03, 10), 35);
    assert_eq!(c.classic_image_loads, 35);
    // Thread events are group 0x05 (0x04 is FileIo).
    assert_eq!(c.thread_events, (1..=4).map(|t| k(0x05, t)).sum::<u64>());
    assert!(c.thread_events > 1_000, "{}", c.thread_events);
    // ... so those images now have a load time inside the trace.
    let loaded_in_trace = trace
        .modules
        .spans()
        .filter(|(_, m)| m.load != i64::MIN)
        .count();
    assert!(loaded_in_trace >= 35, "{loaded_in_trace}");
    assert_eq!(trace.modules.image_pids(), 33);
    assert_eq!(trace.modules.kernel_image_events(), 282);
    assert_eq!(trace.modules.kernel_modules(), 141);
    assert_eq!(c.bad_payloads, 0);
    assert!(
        trace.pdbs.len() > 1_000,
        "DbgID_RSDS decoded: {}",
        trace.pdbs.len()
    );
    // The inspect JSON carries the same figures under the documented keys.
    let s = inspect::summary(trace);
    assert_eq!(s["buffers"], 360);
    assert_eq!(s["pointer_size"], 8);
    assert_eq!(s["events"]["24/32"], 252);
    assert_eq!(s["events"]["15/46"], 79_528);
    assert_eq!(s["lost_events"], 0);
}

/// The README's assembled-stack figures, from TraceEvent's rules: a user
/// fragment completes every kernel fragment waiting on its thread, and keys
/// resolve to the next definition of their own kind.
#[test]
fn perfview_assembled_stacks_match_the_readme() {
    let Some((_, trace)) = perfview() else { return };
    let (stacks, frames, in_image) = trace.frame_stats(StackOrigin::StackWalk);
    assert!(within(stacks, 7_746, 1.0), "stacks {stacks}");
    assert!(within(frames, 209_069, 1.0), "frames {frames}");
    assert!(within(in_image, 178_527, 1.0), "in image {in_image}");
    let pairs = inspect::module_pairs(trace);
    let p = |a: &str, b: &str| {
        pairs
            .get(&(a.to_string(), b.to_string()))
            .copied()
            .unwrap_or(0)
    };
    for (a, b, want) in [
        ("ntdll.dll", "kernel32.dll", 7_270),
        ("mscoree.dll", "mscoreei.dll", 5_337),
        ("mscoreei.dll", "clr.dll", 5_333),
        ("kernel32.dll", "mscoree.dll", 5_259),
        ("ntoskrnl.exe", "fltmgr.sys", 2_460),
        ("ntfs.sys", "ntoskrnl.exe", 2_367),
    ] {
        assert!(
            within(p(a, b), want, 2.0),
            "{a} -> {b}: {} vs {want}",
            p(a, b)
        );
    }
    // The waiting-list rule is what the figures hinge on: without it the
    // shared user fragments would leave hundreds of stacks kernel-only.
    let a = &trace.counts.assembly;
    assert!(a.kernel_fragments_joined_later > 100, "{a:?}");
    assert!(a.kernel_only_at_end < 100, "{a:?}");
}

/// Every stack is matched to its event, and kernel frames come first.
#[test]
fn perfview_stacks_are_consistent() {
    let Some((_, trace)) = perfview() else { return };
    // Kernel part first: a stack with kernel frames starts with one, except
    // WOW64 stacks whose user part holds a kernel excursion (callbacks).
    let kernel_last = trace
        .stacks
        .iter()
        .filter(|s| s.origin == StackOrigin::StackWalk)
        .filter(|s| {
            s.frames.iter().any(|&a| trace.modules.is_kernel_address(a))
                && !trace.modules.is_kernel_address(s.frames[0])
        })
        .count();
    assert!(kernel_last < 20, "{kernel_last}");
    let (inline, _, _) = trace.frame_stats(StackOrigin::Inline);
    assert_eq!(inline, 655);
    let matched = trace.stacks.iter().filter(|s| s.event.is_some()).count();
    assert!(matched > 7_500, "stacks matched to their event: {matched}");
}

#[test]
fn perfview_import_emits_edges_and_a_final_watermark() {
    let Some(path) = shared_file(PERFVIEW) else {
        return;
    };
    let opts = ImportOptions {
        granularity: tracemerge_etl::Granularity::Module,
        ..ImportOptions::default()
    };
    let records = tracemerge_etl::import(&path, &opts).unwrap();
    let Some(Record::Watermark { at: wm }) = records.last() else {
        panic!("no final watermark")
    };
    let mut hits = 0;
    let mut last_at = 0;
    for r in &records[..records.len() - 1] {
        let Record::Edge(e) = r else { panic!("{r:?}") };
        assert!(e.at >= last_at, "records in time order");
        last_at = e.at;
        assert!(e.at <= *wm);
        // 2020-07-29, the day of the recording
        assert!(
            (1_595_980_000_000..1_595_990_000_000).contains(&e.at),
            "{}",
            e.at
        );
        if e.artifact == "Test.x64.exe" && e.caller == "ntdll.dll" && e.callee == "kernel32.dll" {
            hits += e.hits;
        }
        assert_ne!(e.caller, e.callee);
        assert_eq!(e.source, format!("etw:{PERFVIEW}"));
    }
    assert!(hits > 1_000, "ntdll -> kernel32 in Test.x64.exe: {hits}");
}

#[test]
fn windows10_uncompressed_file_decodes() {
    let Some(path) = shared_file("airbus-ShutdownPerfDiagLogger.etl") else {
        return;
    };
    let trace = tracemerge_etl::decode_file(&path).unwrap();
    assert!(trace.damage.is_empty(), "{:?}", trace.damage);
    assert_eq!(trace.header.provider_version, 18362);
    assert_eq!(trace.counts.buffers, 49);
    assert_eq!(trace.counts.buffers_compressed, 0);
    let k = |g: u8, t: u8| trace.counts.kernel.get(&(g, t)).copied().unwrap_or(0);
    assert_eq!(k(0x14, 3), 6_549 + 196);
    assert_eq!(k(0x14, 2), 4_791);
    assert_eq!(trace.counts.bad_payloads, 0);
    // Image v3 names and Process v4/v5 image names decode.
    assert!(trace.modules.spans().any(|(_, m)| m.name == "ntdll.dll"));
    assert!(trace
        .process_names
        .values()
        .any(|n| n.eq_ignore_ascii_case("svchost.exe")));
    assert!(trace.stacks.is_empty());
}

#[test]
fn user_event_only_files_decode() {
    for (name, records) in [
        ("perfview-SelfDescribingSingleEvent.etl", 23),
        ("airbus-lxcore_kernel.etl", 4),
    ] {
        let Some(path) = shared_file(name) else {
            return;
        };
        let trace = tracemerge_etl::decode_file(&path).unwrap();
        assert!(trace.damage.is_empty(), "{name}: {:?}", trace.damage);
        assert_eq!(trace.counts.records, records, "{name}");
        assert!(trace.stacks.is_empty());
    }
}

#[test]
fn truncated_real_file_keeps_the_buffers_before_the_cut() {
    let Some((data, _)) = perfview() else { return };
    let cut = data.len() / 2;
    let t = Trace::decode(&data[..cut]).unwrap();
    assert_eq!(t.damage.len(), 1);
    let msg = t.damage[0].to_string();
    assert!(msg.contains("truncated") && msg.contains("buffer"), "{msg}");
    assert!(
        t.counts.buffers_decoded > 150,
        "{}",
        t.counts.buffers_decoded
    );
    assert!(t.skipped.bytes > 0 && t.skipped.buffers == 1);
}
