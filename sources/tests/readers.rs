//! Readers against the hand-written fixtures in tests/data.

use std::io::Write;

use tracemerge_records::{EdgeKind, Record};
use tracemerge_sources::{
    from_reader, from_reader_as, open, open_all, open_with, Format, Location, Options, SourceError,
    MAX_LINE,
};

fn data(name: &str) -> String {
    format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn all(path: &str) -> Vec<Result<(Location, Record), SourceError>> {
    open(path).unwrap().collect()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn temp(name: &str, bytes: &[u8]) -> String {
    let dir = std::env::temp_dir().join(format!("tracemerge-sources-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn ndjson_records_with_lines_and_offsets() {
    let path = data("stream.ndjson");
    let text = std::fs::read_to_string(&path).unwrap();
    let items = all(&path);
    // expected: every non-blank line, with its number and start offset
    let mut expected = Vec::new();
    let mut offset = 0u64;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if !line.trim().is_empty() {
            expected.push((
                i as u64 + 1,
                offset,
                Record::from_json(line.trim()).unwrap(),
            ));
        }
        offset += line.len() as u64;
    }
    assert_eq!(expected.len(), 6);
    let got: Vec<_> = items
        .into_iter()
        .map(|i| {
            let (l, r) = i.unwrap();
            assert_eq!(*l.file, *path);
            (l.line, l.offset, r)
        })
        .collect();
    assert_eq!(got, expected);
    assert_eq!(got[2].0, 4, "the blank line 3 is counted");
}

#[test]
fn bad_ndjson_lines_are_reported_and_reading_continues() {
    let path = data("stream_bad.ndjson");
    let items = all(&path);
    assert_eq!(items.len(), 10);
    let expect = [
        (1, None),
        (2, Some("EOF while parsing")),
        (3, Some("invalid type: string \"3\"")),
        (4, Some("missing field `callee`")),
        (5, Some("unknown variant `teleport`")),
        (6, Some("invalid value: integer `-6`")),
        (7, Some("expected u64")),
        (8, Some("edges[0]: callee \"ghost\" is not a node")),
        (9, Some("expected ident")),
        (10, None),
    ];
    let text = std::fs::read_to_string(&path).unwrap();
    let starts: Vec<u64> = std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i as u64 + 1))
        .collect();
    for (item, (line, needle)) in items.iter().zip(expect) {
        match (item, needle) {
            (Ok((l, _)), None) => assert_eq!(l.line, line),
            (Err(e), Some(needle)) => {
                assert_eq!(e.location.line, line, "{e}");
                assert_eq!(e.location.offset, starts[line as usize - 1], "{e}");
                assert!(!e.fatal, "{e}");
                assert!(e.message.contains(needle), "line {line}: {e}");
                let shown = e.to_string();
                assert!(
                    shown.starts_with(&format!(
                        "{path}:{line} (byte {})",
                        starts[line as usize - 1]
                    )),
                    "{shown}"
                );
                assert!(!shown.contains("at line 1 column"), "{shown}");
            }
            (item, needle) => panic!("line {line}: {item:?}, expected error {needle:?}"),
        }
    }
}

#[test]
fn gzip_is_detected_by_content_and_offsets_are_decompressed() {
    let plain = std::fs::read(data("stream.ndjson")).unwrap();
    // no .gz extension: detection is by content
    let path = temp("stream-compressed.ndjson", &gzip(&plain));
    let a: Vec<_> = all(&data("stream.ndjson"))
        .into_iter()
        .map(|i| i.map(|(l, r)| (l.line, l.offset, r)).unwrap())
        .collect();
    let b: Vec<_> = all(&path)
        .into_iter()
        .map(|i| i.map(|(l, r)| (l.line, l.offset, r)).unwrap())
        .collect();
    assert_eq!(a, b);

    // two concatenated gzip members are one stream
    let half = plain.len() / 2;
    let cut = plain[..half].iter().rposition(|&b| b == b'\n').unwrap() + 1;
    let mut two = gzip(&plain[..cut]);
    two.extend(gzip(&plain[cut..]));
    let c: Vec<_> = from_reader("two", std::io::Cursor::new(two), &Options::default())
        .unwrap()
        .map(|i| i.map(|(l, r)| (l.line, l.offset, r)).unwrap())
        .collect();
    assert_eq!(a, c);

    // gzip of gzip, and gzip of a Stella callgraph
    let double = gzip(&gzip(&plain));
    assert_eq!(
        from_reader("gz2", std::io::Cursor::new(double), &Options::default())
            .unwrap()
            .count(),
        6
    );
    let cg = gzip(&std::fs::read(data("callgraph.json")).unwrap());
    let items: Vec<_> = from_reader("cg.gz", std::io::Cursor::new(cg), &Options::default())
        .unwrap()
        .collect();
    assert!(matches!(&items[0], Ok((_, Record::Graph(_)))));
}

#[test]
fn truncated_gzip_is_a_fatal_error_after_the_good_records() {
    let mut lines = String::new();
    for i in 0..2000 {
        lines.push_str(&format!("{{\"type\":\"watermark\",\"at\":{i}}}\n"));
    }
    let full = gzip(lines.as_bytes());
    let cut = full[..full.len() * 2 / 3].to_vec();
    let items: Vec<_> = from_reader("cut.gz", std::io::Cursor::new(cut), &Options::default())
        .unwrap()
        .collect();
    let last = items.last().unwrap();
    let err = last.as_ref().unwrap_err();
    assert!(err.fatal);
    assert!(err.message.contains("read error"), "{err}");
    assert!(items[..items.len() - 1].iter().all(Result::is_ok));
    assert!(items.len() > 10);
    // records before the failure are in order
    for (i, item) in items[..items.len() - 1].iter().enumerate() {
        let (l, r) = item.as_ref().unwrap();
        assert_eq!(l.line, i as u64 + 1);
        assert_eq!(r, &Record::Watermark { at: i as u64 });
    }
}

#[test]
fn empty_inputs_are_errors_naming_the_file() {
    for name in ["empty.ndjson", "blank.ndjson"] {
        let path = data(name);
        let err = open(&path).err().expect("empty input accepted");
        assert!(err.fatal);
        assert!(err.message.contains("empty input"), "{err}");
        assert_eq!(*err.location.file, *path);
        assert!(err.to_string().starts_with(&path));
    }
    let err = from_reader("e.gz", std::io::Cursor::new(gzip(b"")), &Options::default())
        .err()
        .unwrap();
    assert!(err.message.contains("empty input"), "{err}");
}

#[test]
fn unknown_content_and_missing_files() {
    let err = open(&data("unknown.txt")).err().unwrap();
    assert!(err.message.contains("unrecognised input format"), "{err}");
    assert_eq!(err.location.line, 1);
    let err = open(&data("no-such-file.ndjson")).err().unwrap();
    assert!(err.message.contains("cannot open"), "{err}");
    assert!(err.to_string().contains("no-such-file.ndjson"));
    let err = open(&data("")).err().unwrap();
    assert!(err.message.contains("directory"), "{err}");
    let err = from_reader(
        "arr",
        &b"[{\"type\":\"watermark\",\"at\":1}]"[..],
        &Options::default(),
    )
    .err()
    .unwrap();
    assert!(err.message.contains("JSON array"), "{err}");
}

#[test]
fn over_long_lines_are_skipped_without_stopping() {
    let input = b"{\"type\":\"watermark\",\"at\":1}\n{\"type\":\"watermark\",\"at\":2,\"pad\":\"xxxxxxxxxxxxxxxxxxxx\"}\n{\"type\":\"watermark\",\"at\":3}\n";
    let options = Options {
        max_line: 40,
        ..Options::default()
    };
    let items: Vec<_> = from_reader("long", &input[..], &options).unwrap().collect();
    assert_eq!(items.len(), 3);
    let err = items[1].as_ref().unwrap_err();
    assert_eq!((err.location.line, err.location.offset), (2, 28));
    assert!(err.message.contains("longer than the limit of 40"), "{err}");
    assert!(!err.fatal);
    assert_eq!(items[2].as_ref().unwrap().1, Record::Watermark { at: 3 });
}

/// A reader producing `{"type":"edge","pad":"aaaa…` of `n` bytes, then
/// a newline and a good record, without ever holding it in memory.
struct HugeLine {
    head: &'static [u8],
    pad: u64,
    tail: &'static [u8],
    pos: u64,
}

impl std::io::Read for HugeLine {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let head = self.head.len() as u64;
        let total = head + self.pad + self.tail.len() as u64;
        let mut n = 0;
        while n < buf.len() && self.pos < total {
            let p = self.pos;
            buf[n] = if p < head {
                self.head[p as usize]
            } else if p < head + self.pad {
                b'a'
            } else {
                self.tail[(p - head - self.pad) as usize]
            };
            n += 1;
            self.pos += 1;
        }
        Ok(n)
    }
}

#[test]
fn a_line_over_256_mib_is_an_error_and_the_next_line_is_read() {
    let reader = HugeLine {
        head: b"{\"type\":\"edge\",\"pad\":\"",
        pad: MAX_LINE as u64 + 10,
        tail: b"\"}\n{\"type\":\"watermark\",\"at\":7}\n",
        pos: 0,
    };
    let items: Vec<_> = from_reader("huge", reader, &Options::default())
        .unwrap()
        .collect();
    assert_eq!(items.len(), 2);
    let err = items[0].as_ref().unwrap_err();
    assert_eq!(err.location.line, 1);
    assert!(err.message.contains("longer than the limit"), "{err}");
    let (loc, rec) = items[1].as_ref().unwrap();
    assert_eq!(loc.line, 2);
    assert_eq!(loc.offset, 22 + MAX_LINE as u64 + 10 + 3);
    assert_eq!(rec, &Record::Watermark { at: 7 });
}

#[test]
fn a_100_mb_bad_line_is_one_clear_error() {
    let reader = HugeLine {
        head: b"{\"type\":\"edge\",\"pad\":[",
        pad: 100 << 20,
        tail: b"\n{\"type\":\"watermark\",\"at\":7}\n",
        pos: 0,
    };
    let items: Vec<_> = from_reader("100mb", reader, &Options::default())
        .unwrap()
        .collect();
    assert_eq!(items.len(), 2);
    let err = items[0].as_ref().unwrap_err();
    assert_eq!(err.location.line, 1);
    assert!(!err.fatal);
    assert!(items[1].is_ok());
}

#[test]
fn stella_callgraph() {
    let items = all(&data("callgraph.json"));
    assert_eq!(items.len(), 2);
    let (loc, Record::Graph(g)) = items[0].as_ref().unwrap() else {
        panic!("{:?}", items[0])
    };
    assert_eq!(loc.line, 0);
    assert_eq!(g.artifact, "cg-shop-1.4");
    assert_eq!(g.at, 0);
    assert_eq!(g.nodes.len(), 5);
    assert_eq!(g.entrypoints, ["Shop.Program::Main"]);
    let edges: Vec<_> = g
        .edges
        .iter()
        .map(|e| {
            (
                e.caller.as_str(),
                e.callee.as_str(),
                e.kind,
                e.reason.as_deref(),
                e.weight,
            )
        })
        .collect();
    assert_eq!(
        edges,
        [
            (
                "Shop.Program::Main",
                "Shop.Cart::Add",
                Some(EdgeKind::Static),
                Some("directCall"),
                Some(1.0)
            ),
            (
                "Shop.Cart::Add",
                "Shop.Pay::Charge",
                Some(EdgeKind::Heuristic),
                Some("virtualCall"),
                Some(0.6)
            ),
            (
                "Shop.Pay::Charge",
                "Json.Parser::Parse",
                Some(EdgeKind::Static),
                Some("directCall"),
                None
            ),
        ]
    );
    let (loc, Record::Edge(e)) = items[1].as_ref().unwrap() else {
        panic!("{:?}", items[1])
    };
    assert_eq!(loc.path.as_deref(), Some("edges[3]"));
    assert_eq!(
        (e.caller.as_str(), e.callee.as_str()),
        ("Shop.Program::Main", "Shop.Plugins::Load")
    );
    assert_eq!((e.artifact.as_str(), e.at, e.hits), ("cg-shop-1.4", 0, 1));
    // the record survives the NDJSON round trip
    let Ok((_, graph)) = &items[0] else { panic!() };
    assert_eq!(&Record::from_json(&graph.to_json()).unwrap(), graph);

    let options = Options {
        artifact: Some("shop@1.4".into()),
        at: Some(1000),
        ..Options::default()
    };
    let items: Vec<_> = open_with(&data("callgraph.json"), &options)
        .unwrap()
        .collect();
    let Ok((_, Record::Graph(g))) = &items[0] else {
        panic!()
    };
    assert_eq!((g.artifact.as_str(), g.at), ("shop@1.4", 1000));
    let Ok((_, Record::Edge(e))) = &items[1] else {
        panic!()
    };
    assert_eq!((e.artifact.as_str(), e.at), ("shop@1.4", 1000));

    let items = all(&data("callgraph_legacy.json"));
    let Ok((_, Record::Graph(g))) = &items[0] else {
        panic!("{items:?}")
    };
    assert_eq!(
        (g.artifact.as_str(), g.entrypoints.clone()),
        ("legacy-1", vec!["m".to_string()])
    );
}

#[test]
fn stella_callgraph_errors() {
    let path = data("callgraph_bad_edge.json");
    let items = all(&path);
    assert_eq!(items.len(), 1);
    let err = items[0].as_ref().unwrap_err();
    assert!(err.fatal);
    assert_eq!(
        err.to_string(),
        format!("{path}: edges[1].targetId: unknown node \"vuln_fn\" (not in nodes)")
    );

    let path = data("callgraph_syntax.json");
    let items = all(&path);
    let err = items[0].as_ref().unwrap_err();
    assert_eq!(err.location.line, 5, "{err}");
    let text = std::fs::read_to_string(&path).unwrap();
    let line5 = text.match_indices('\n').nth(3).unwrap().0 as u64 + 1;
    assert_eq!(err.location.offset, line5);
    assert!(err.message.contains("invalid JSON"), "{err}");
    assert!(err.message.contains("column"), "{err}");
}

fn hit(item: &Result<(Location, Record), SourceError>) -> (u64, String, String, u64, u64, String) {
    let (l, r) = item.as_ref().unwrap();
    let Record::Hit(h) = r else { panic!("{r:?}") };
    (
        l.line,
        h.artifact.clone(),
        h.symbol.clone(),
        h.at,
        h.hits,
        h.source.clone(),
    )
}

#[test]
fn stella_runtime_facts() {
    const T: u64 = 1_764_143_228_000;
    let items = all(&data("runtime_facts.ndjson"));
    let got: Vec<_> = items.iter().map(hit).collect();
    let cg = "cg-shop-1.4".to_string();
    let c1 = "stella:container:c-1".to_string();
    assert_eq!(
        got,
        vec![
            (1, cg.clone(), "Shop.Cart::Add".into(), T, 3 + 4, c1.clone()),
            (2, cg.clone(), "Shop.Pay::Charge".into(), T, 1, c1.clone()),
            (
                4,
                cg.clone(),
                "Shop.Cart::Add".into(),
                T,
                2,
                "stella:container:c-2".into()
            ),
            (
                5,
                cg.clone(),
                "Shop.Cart::Add".into(),
                T + 1000,
                5,
                c1.clone()
            ),
            (
                6,
                cg.clone(),
                "Shop.Plugins::Load".into(),
                T + 1000,
                1,
                "stella".into()
            ),
        ]
    );
    for item in &items {
        let (_, r) = item.as_ref().unwrap();
        assert_eq!(&Record::from_json(&r.to_json()).unwrap(), r);
    }
}

#[test]
fn stella_runtime_facts_errors_keep_earlier_hits() {
    let path = data("runtime_facts_bad.ndjson");
    let items = all(&path);
    assert_eq!(items.len(), 6, "{items:?}");
    assert_eq!(hit(&items[0]).4, 1);
    let errors: Vec<(u64, Option<String>, String)> = items[1..5]
        .iter()
        .map(|i| {
            let e = i.as_ref().unwrap_err();
            assert!(!e.fatal);
            (e.location.line, e.location.path.clone(), e.message.clone())
        })
        .collect();
    assert_eq!(errors[0].0, 2);
    assert_eq!(errors[0].1.as_deref(), Some("hitCount"));
    assert!(errors[0].2.contains("at least 1, got -1"));
    assert_eq!((errors[1].0, errors[1].1.as_deref()), (3, Some("symbolId")));
    assert_eq!(
        (errors[2].0, errors[2].1.as_deref()),
        (4, Some("observedAt"))
    );
    assert_eq!((errors[3].0, errors[3].1.as_deref()), (5, None));
    assert!(errors[3].2.contains("invalid JSON"));
    let shown = items[1].as_ref().unwrap_err().to_string();
    assert!(
        shown.starts_with(&format!("{path}:2 (byte 62): hitCount: ")),
        "{shown}"
    );
    assert_eq!(
        hit(&items[5]),
        (6, "b".into(), "a".into(), 1000, 2, "stella".into())
    );
}

#[test]
fn stella_runtime_facts_document() {
    let path = data("runtime_facts_document.json");
    let items = all(&path);
    assert_eq!(items.len(), 2, "{items:?}");
    let (loc, Record::Hit(h)) = items[0].as_ref().unwrap() else {
        panic!()
    };
    assert_eq!(loc.path.as_deref(), Some("events[0]"));
    assert_eq!(
        (h.artifact.as_str(), h.hits, h.source.as_str()),
        ("cg-shop-1.4", 5, "stella:container:c-1")
    );
    let err = items[1].as_ref().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{path}: events[2].hitCount: must be at least 1, got 0")
    );
}

#[test]
fn open_all_chains_in_order() {
    let paths = vec![
        data("callgraph.json"),
        data("runtime_facts.ndjson"),
        data("stream.ndjson"),
    ];
    let items: Vec<_> = open_all(&paths, &Options::default()).unwrap().collect();
    assert_eq!(items.len(), 2 + 5 + 6);
    assert!(items.iter().all(Result::is_ok));
    let files: Vec<&str> = items
        .iter()
        .map(|i| i.as_ref().unwrap().0.file.as_ref())
        .collect();
    assert!(files[..2].iter().all(|f| f.ends_with("callgraph.json")));
    assert!(files[2..7]
        .iter()
        .all(|f| f.ends_with("runtime_facts.ndjson")));
    assert!(files[7..].iter().all(|f| f.ends_with("stream.ndjson")));

    // a missing file is reported before anything is read
    let err = open_all(
        &[data("stream.ndjson"), data("missing.ndjson")],
        &Options::default(),
    )
    .err()
    .unwrap();
    assert!(err.location.file.ends_with("missing.ndjson"));
    // a later empty file is one fatal item; the chain goes on
    let items: Vec<_> = open_all(
        &[
            data("stream.ndjson"),
            data("empty.ndjson"),
            data("stream.ndjson"),
        ],
        &Options::default(),
    )
    .unwrap()
    .collect();
    assert_eq!(items.len(), 13);
    assert!(items[6]
        .as_ref()
        .unwrap_err()
        .message
        .contains("empty input"));
}

#[test]
fn lines_parsed_in_parallel_chunks_come_out_in_input_order() {
    // Enough lines for many chunks of the file reader, with bad lines,
    // blank lines and a long line spread through them.
    let mut text = String::new();
    let mut expected = Vec::new();
    let mut offset = 0u64;
    for i in 0..10_000u64 {
        let line = match i % 997 {
            0 => "{not json".to_string(),
            1 => String::new(),
            2 => format!("{{\"type\":\"watermark\",\"at\":{i},\"pad\":\"{}\"}}", "x".repeat(3000)),
            _ => format!(
                "{{\"type\":\"edge\",\"artifact\":\"a\",\"caller\":\"f{i}\",\"callee\":\"g\",\"at\":{i}}}"
            ),
        };
        if !line.is_empty() {
            expected.push((i + 1, offset, Record::from_json(&line).ok()));
        }
        offset += line.len() as u64 + 1;
        text.push_str(&line);
        text.push('\n');
    }
    let summary = |items: Vec<Result<(Location, Record), SourceError>>| -> Vec<_> {
        items
            .into_iter()
            .map(|item| match item {
                Ok((l, r)) => (l.line, l.offset, Some(r)),
                Err(e) => (e.location.line, e.location.offset, None),
            })
            .collect()
    };
    let path = temp("parallel.ndjson", text.as_bytes());
    assert_eq!(summary(all(&path)), expected, "a file, in chunks");
    let live = from_reader(
        "pipe",
        std::io::Cursor::new(text.into_bytes()),
        &Options::default(),
    );
    assert_eq!(
        summary(live.unwrap().collect()),
        expected,
        "a live reader, line by line"
    );
}

#[test]
fn a_given_format_is_read_as_that_format() {
    let read = |name: &str, format: Option<Format>| {
        let bytes = std::fs::read(data(name)).unwrap();
        let input = std::io::Cursor::new(bytes);
        let options = Options::default();
        let stream = match format {
            Some(format) => from_reader_as(name, input, format, &options),
            None => from_reader(name, input, &options),
        };
        stream.map(|s| s.collect::<Vec<_>>())
    };
    // The same records as detection finds, for each format.
    for (name, format) in [
        ("stream.ndjson", Format::Ndjson),
        ("callgraph.json", Format::StellaCallgraph),
        ("runtime_facts.ndjson", Format::StellaRuntimeFacts),
        (
            "runtime_facts_document.json",
            Format::StellaRuntimeFactsDocument,
        ),
    ] {
        let given = read(name, Some(format)).unwrap();
        assert!(given.iter().any(Result::is_ok), "{name}: {given:?}");
        assert_eq!(given, read(name, None).unwrap(), "{name}");
    }
    // No detection: runtime facts read as tracemerge NDJSON are bad lines,
    // and a callgraph read as runtime facts gives no hit.
    let items = read("runtime_facts.ndjson", Some(Format::Ndjson)).unwrap();
    assert!(!items.is_empty() && items.iter().all(Result::is_err));
    let items = read("callgraph.json", Some(Format::StellaRuntimeFacts));
    assert!(items.map_or(true, |items| items.iter().all(Result::is_err)));
}
