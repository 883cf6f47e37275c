//! `tracemerge convert` end to end: exact NDJSON ↔ tmlog round trips, the
//! same report from either form, output format choice, and damaged or
//! unknown logs refused with their block named.

use std::io::Read;
use std::path::Path;
use std::process::Output;

use tracemerge_records::{EdgeKind, Input, Record};
use tracemerge_scenarios::random::{self, StreamParams};
use tracemerge_sources::tmlog::{HEADER_LEN, MAGIC};

mod common;
use common::{ok, scratch, tracemerge, tracemerge_with_stdin, write_ndjson};

fn failed(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn digest(file: &Path) -> String {
    let out = tracemerge(&["merge", path(file), "--lateness", "2s"]);
    let report: serde_json::Value = serde_json::from_slice(&ok(&out).stdout).unwrap();
    report["digest"].as_str().unwrap().to_string()
}

/// A random stream with every optional field in use (weights chosen exact
/// in decimal so that the NDJSON text itself round-trips).
fn stream(seed: u64) -> Vec<Record> {
    let mut records = random::stream(seed, &StreamParams::dense());
    for (i, r) in records.iter_mut().enumerate() {
        match r {
            Record::Graph(g) => {
                for (j, e) in g.edges.iter_mut().enumerate() {
                    if j % 2 == 0 {
                        e.weight = Some(j as f64 / 8.0);
                        e.kind = Some(EdgeKind::Heuristic);
                        e.reason = Some("vtable".into());
                    }
                }
            }
            Record::Hit(h) if i % 3 == 0 => h.event_id = Some(format!("hit-{i}")),
            Record::Coverage(c) if i % 2 == 0 => c.lost = Some(i as u64),
            _ => {}
        }
    }
    records
}

/// Block start offsets of a log, the end marker included.
fn block_starts(log: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut pos = HEADER_LEN;
    while pos < log.len() {
        starts.push(pos);
        pos += 8 + u32::from_le_bytes(log[pos..pos + 4].try_into().unwrap()) as usize;
    }
    starts
}

#[test]
fn ndjson_to_tmlog_and_back_is_exact() {
    let dir = scratch("round-trip");
    let (ndjson, log, back) = (
        dir.join("in.ndjson"),
        dir.join("s.tmlog"),
        dir.join("back.ndjson"),
    );
    let text = write_ndjson(&ndjson, &stream(21));
    ok(&tracemerge(&["convert", path(&ndjson), "-o", path(&log)]));
    assert!(std::fs::read(&log).unwrap().starts_with(&MAGIC));
    ok(&tracemerge(&["convert", path(&log), "-o", path(&back)]));
    assert_eq!(std::fs::read_to_string(&back).unwrap(), text);
    // stdout, format from --to
    let out = tracemerge(&["convert", path(&log), "-o", "-", "--to", "ndjson"]);
    assert_eq!(String::from_utf8(ok(&out).stdout.clone()).unwrap(), text);
    // and from stdin to stdout as a log
    let out = tracemerge_with_stdin(
        &["convert", "-", "-o", "-", "--to", "tmlog"],
        text.as_bytes(),
    );
    assert_eq!(ok(&out).stdout, std::fs::read(&log).unwrap());
}

#[test]
fn merge_gives_the_same_digest_on_a_log_and_its_ndjson() {
    let dir = scratch("digest");
    let ndjson = dir.join("in.ndjson");
    write_ndjson(&ndjson, &stream(7));
    let log = dir.join("s.tmlog");
    let gz = dir.join("s.tmlog.gz");
    let back = dir.join("back.ndjson");
    ok(&tracemerge(&["convert", path(&ndjson), "-o", path(&log)]));
    ok(&tracemerge(&["convert", path(&ndjson), "-o", path(&gz)]));
    ok(&tracemerge(&["convert", path(&log), "-o", path(&back)]));
    let mut magic = [0u8; 2];
    std::fs::File::open(&gz)
        .unwrap()
        .read_exact(&mut magic)
        .unwrap();
    assert_eq!(magic, [0x1f, 0x8b], ".gz output is compressed");
    let base = digest(&ndjson);
    assert_eq!(digest(&log), base, "ndjson → tmlog");
    assert_eq!(digest(&gz), base, "ndjson → tmlog.gz");
    assert_eq!(digest(&back), base, "tmlog → ndjson");
}

#[test]
fn several_inputs_are_one_stream() {
    let dir = scratch("several");
    let (a, b) = (stream(1), stream(2));
    let a_path = dir.join("a.ndjson");
    write_ndjson(&a_path, &a);
    let b_ndjson = dir.join("b.ndjson");
    write_ndjson(&b_ndjson, &b);
    let b_log = dir.join("b.tmlog");
    ok(&tracemerge(&[
        "convert",
        path(&b_ndjson),
        "-o",
        path(&b_log),
    ]));
    let all = dir.join("all.ndjson.gz");
    ok(&tracemerge(&[
        "convert",
        path(&a_path),
        path(&b_log),
        "-o",
        path(&all),
    ]));
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&all).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let expected: String = a.iter().chain(&b).map(|r| r.to_json() + "\n").collect();
    assert_eq!(text, expected);
}

#[test]
fn a_damaged_log_is_refused_at_its_block_after_the_blocks_before() {
    let dir = scratch("damaged");
    let records = stream(5);
    // Small blocks, so that there are several: through the library, which
    // is what the command uses.
    let mut writer = tracemerge_sources::tmlog::Writer::with_block_size(Vec::new(), 200).unwrap();
    for r in &records {
        writer.write(r).unwrap();
    }
    let mut bytes = writer.finish().unwrap();
    let starts = block_starts(&bytes);
    assert!(starts.len() > 3);
    bytes[starts[1] + 12] ^= 0x01;
    let bad = dir.join("bad.tmlog");
    std::fs::write(&bad, &bytes).unwrap();
    // Records: a block's new names come first, as an item of their own.
    let in_block_1 = tracemerge_sources::tmlog::Reader::new("x", &bytes[..])
        .unwrap()
        .take_while(Result::is_ok)
        .filter(|item| !matches!(item, Ok(Input::Names { .. })))
        .count();
    assert!(in_block_1 > 0 && in_block_1 < records.len());

    let located = format!("bad.tmlog: block 2 (byte {}): checksum mismatch", starts[1]);
    for cmd in ["merge", "replay"] {
        let stderr = failed(&tracemerge(&[cmd, path(&bad)]));
        assert!(stderr.contains(&located), "{cmd}: {stderr}");
    }
    let out = dir.join("salvaged.ndjson");
    let stderr = failed(&tracemerge(&["convert", path(&bad), "-o", path(&out)]));
    assert!(stderr.contains(&located), "{stderr}");
    assert!(
        stderr.contains(&format!("holds the {in_block_1} records before it")),
        "{stderr}"
    );
    let salvaged: String = records[..in_block_1]
        .iter()
        .map(|r| r.to_json() + "\n")
        .collect();
    assert_eq!(std::fs::read_to_string(&out).unwrap(), salvaged);

    // cut short: the end marker is missing
    let cut = dir.join("cut.tmlog");
    std::fs::write(&cut, &bytes[..starts[1]]).unwrap();
    let stderr = failed(&tracemerge(&["merge", path(&cut)]));
    assert!(
        stderr.contains(&format!(
            "cut.tmlog: block 2 (byte {}): the log ends",
            starts[1]
        )),
        "{stderr}"
    );
}

#[test]
fn an_unknown_version_is_refused_clearly() {
    let dir = scratch("version");
    let ndjson = dir.join("in.ndjson");
    write_ndjson(&ndjson, &stream(3));
    let log = dir.join("s.tmlog");
    ok(&tracemerge(&["convert", path(&ndjson), "-o", path(&log)]));
    let mut bytes = std::fs::read(&log).unwrap();
    bytes[8..12].copy_from_slice(&9u32.to_le_bytes());
    let future = dir.join("future.tmlog");
    std::fs::write(&future, &bytes).unwrap();
    for args in [
        vec!["merge", path(&future)],
        vec!["convert", path(&future), "-o", "-", "--to", "ndjson"],
    ] {
        let stderr = failed(&tracemerge(&args));
        assert!(
            stderr.contains("future.tmlog: header: unsupported replay log format version 9"),
            "{stderr}"
        );
    }
}

#[test]
fn output_format_needs_to_or_a_known_name() {
    let dir = scratch("format");
    let ndjson = dir.join("in.ndjson");
    write_ndjson(&ndjson, &stream(4));
    let txt = dir.join("out.txt");
    let stderr = failed(&tracemerge(&["convert", path(&ndjson), "-o", path(&txt)]));
    assert!(stderr.contains("--to"), "{stderr}");
    assert!(!txt.exists(), "nothing written");
    let stderr = failed(&tracemerge(&["convert", path(&ndjson), "-o", "-"]));
    assert!(stderr.contains("--to"), "{stderr}");
    // --to overrides the name
    ok(&tracemerge(&[
        "convert",
        path(&ndjson),
        "-o",
        path(&txt),
        "--to",
        "tmlog",
    ]));
    assert!(std::fs::read(&txt).unwrap().starts_with(&MAGIC));
    // an output that is an input is refused before it is emptied
    let before = std::fs::read(&ndjson).unwrap();
    let stderr = failed(&tracemerge(&[
        "convert",
        path(&ndjson),
        "-o",
        path(&ndjson),
    ]));
    assert!(stderr.contains("also an input"), "{stderr}");
    assert_eq!(std::fs::read(&ndjson).unwrap(), before);
}

#[test]
fn bad_ndjson_input_names_file_and_line() {
    let dir = scratch("bad-input");
    let ndjson = dir.join("bad.ndjson");
    std::fs::write(
        &ndjson,
        "{\"type\":\"watermark\",\"at\":1}\n{\"type\":\"edge\",\n{\"type\":\"watermark\",\"at\":2}\n",
    )
    .unwrap();
    let out = dir.join("out.tmlog");
    let stderr = failed(&tracemerge(&["convert", path(&ndjson), "-o", path(&out)]));
    assert!(stderr.contains("bad.ndjson:2 (byte 28)"), "{stderr}");
    assert!(stderr.contains("holds the 1 records before it"), "{stderr}");
    // the output is a complete log of what came before
    let records: Vec<Record> = tracemerge_sources::open(path(&out))
        .unwrap()
        .map(|item| item.unwrap().1)
        .collect();
    assert_eq!(records, vec![Record::Watermark { at: 1 }]);
    let missing = dir.join("missing.ndjson");
    let stderr = failed(&tracemerge(&["convert", path(&missing), "-o", path(&out)]));
    assert!(stderr.contains("missing.ndjson"), "{stderr}");
}

/// Every report (one per advancing watermark, and the final one) of the
/// engine over `inputs`, with a lateness that lets some disorder in and
/// drops the rest as late.
fn reports_over<R: tracemerge_dataflow::Ingestible, E: std::fmt::Display + std::fmt::Debug>(
    inputs: impl Iterator<Item = Result<R, E>>,
) -> Vec<tracemerge_records::Report> {
    let reports = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = reports.clone();
    let config = tracemerge_records::Config {
        lateness: 40,
        ttl: 300,
        ..Default::default()
    };
    let mut options = tracemerge_dataflow::Options::threads(1);
    options.watermark_reports = true;
    tracemerge_dataflow::run(inputs, &config, options, move |event| {
        if let tracemerge_dataflow::Event::Report { report, .. } = event {
            sink.lock().unwrap().push(report);
        }
    })
    .unwrap();
    let reports = std::mem::take(&mut *reports.lock().unwrap());
    reports
}

/// The engine reads a replay log's sightings in their compact form (names
/// as indices into the log's table): over logs of many small blocks, two
/// logs concatenated in one file, and logs chained with NDJSON between
/// them (each a table of its own), every report equals the report over the
/// same records read whole. The random streams carry duplicates (same and
/// divergent), late records, event ids, hits, coverage and snapshots.
#[test]
fn the_engine_reads_compact_sightings_as_it_reads_records() {
    let dir = scratch("compact");
    let log = |records: &[Record], block_bytes: usize| {
        let mut w =
            tracemerge_sources::tmlog::Writer::with_block_size(Vec::new(), block_bytes).unwrap();
        for r in records {
            w.write(r).unwrap();
        }
        w.finish().unwrap()
    };
    for (name, params) in StreamParams::presets() {
        for seed in 0..4 {
            let records = random::stream(seed, &params);
            let n = records.len();
            let (a, rest) = records.split_at(n / 3);
            let (b, c) = rest.split_at(n / 3);
            let (a1, a2) = a.split_at(a.len() / 2);
            // Two logs in one file, the first of tiny blocks.
            let mut first = log(a1, 120);
            first.extend(log(a2, 400));
            let paths = [
                dir.join(format!("{name}-{seed}-a.tmlog")),
                dir.join(format!("{name}-{seed}-b.ndjson")),
                dir.join(format!("{name}-{seed}-c.tmlog")),
            ];
            std::fs::write(&paths[0], first).unwrap();
            write_ndjson(&paths[1], b);
            std::fs::write(&paths[2], log(c, 300)).unwrap();
            let paths: Vec<String> = paths.iter().map(|p| path(p).to_string()).collect();
            let inputs = tracemerge_sources::open_all_inputs(&paths, &Default::default())
                .unwrap()
                .map(|item| item.map(|(_, input)| input));
            let compact = reports_over(inputs);
            let whole = reports_over(records.iter().cloned().map(Ok::<_, String>));
            assert!(compact.len() > 1, "{name} {seed}: several watermarks");
            assert_eq!(compact, whole, "{name} {seed}");
        }
    }
}
