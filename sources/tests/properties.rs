//! Property tests: readers of outside data never panic, and round trip.

use std::collections::BTreeMap;

use proptest::prelude::*;
use tracemerge_records::Record;
use tracemerge_sources::{from_reader, Options};

mod common;
use common::{gzip, record, Weights};

/// Reads everything; checks what must hold for any input.
fn drain(input: Vec<u8>, options: &Options) {
    let lines = input.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
    let len = input.len() as u64;
    let compressed = input.starts_with(&[0x1f, 0x8b]);
    if let Ok(stream) = from_reader("fuzz", std::io::Cursor::new(input), options) {
        let mut fatal_seen = false;
        for item in stream.take(100_000) {
            if let Err(e) = &item {
                assert!(!e.message.is_empty());
                if !compressed {
                    assert!(e.location.line <= lines, "{e}");
                    assert!(e.location.offset <= len, "{e}");
                }
                fatal_seen |= e.fatal;
            } else {
                assert!(!fatal_seen, "records after a fatal error");
            }
            if let Ok((_, record)) = &item {
                assert!(record.validate().is_ok());
            }
        }
    }
}

#[derive(Clone, Debug)]
enum Mutation {
    Set(usize, u8),
    Delete(usize),
    Insert(usize, u8),
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    let byte = prop_oneof![
        any::<u8>(),
        prop::sample::select(b"{}[]\",:\n\\-0123456789eE. \xff\x00".to_vec())
    ];
    proptest::collection::vec(
        prop_oneof![
            (any::<usize>(), byte.clone()).prop_map(|(i, b)| Mutation::Set(i, b)),
            any::<usize>().prop_map(Mutation::Delete),
            (any::<usize>(), byte).prop_map(|(i, b)| Mutation::Insert(i, b)),
        ],
        1..8,
    )
}

fn mutate(mut bytes: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    for m in muts {
        let n = bytes.len();
        match *m {
            Mutation::Set(i, b) if n > 0 => bytes[i % n] = b,
            Mutation::Delete(i) if n > 0 => {
                bytes.remove(i % n);
            }
            Mutation::Insert(i, b) => bytes.insert(i % (n + 1), b),
            _ => {}
        }
    }
    bytes
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

proptest! {

    #[test]
    fn round_trip(records in proptest::collection::vec(record(Weights::Decimal), 1..12),
                  blank in proptest::collection::vec(any::<bool>(), 12),
                  crlf in any::<bool>()) {
        let mut text = String::new();
        let mut expected = Vec::new();
        let mut line = 1u64;
        let eol = if crlf { "\r\n" } else { "\n" };
        for (i, r) in records.iter().enumerate() {
            if blank[i] {
                text.push_str(eol);
                line += 1;
            }
            expected.push((line, text.len() as u64, r.clone()));
            text.push_str(&r.to_json());
            text.push_str(eol);
            line += 1;
        }
        let got: Vec<_> = from_reader("rt", std::io::Cursor::new(text.clone().into_bytes()), &Options::default())
            .unwrap()
            .map(|i| i.map(|(l, r)| (l.line, l.offset, r)).unwrap())
            .collect();
        prop_assert_eq!(&got, &expected);
        // and the same through gzip
        let got: Vec<_> = from_reader("rt.gz", std::io::Cursor::new(gzip(text.as_bytes())), &Options::default())
            .unwrap()
            .map(|i| i.map(|(l, r)| (l.line, l.offset, r)).unwrap())
            .collect();
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        drain(bytes.clone(), &Options::default());
        drain(gzip(&bytes), &Options::default());
        let mut gz_head = vec![0x1f, 0x8b];
        gz_head.extend(&bytes);
        drain(gz_head, &Options::default());
    }

    #[test]
    fn json_like_bytes_never_panic(prefix in prop::sample::select(vec![
            &b"{\"type\":"[..], b"{\"symbolId\":", b"{\"schema\":\"stella.callgraph.v1\",",
            b"{\"callgraphId\":\"c\",\"events\":", b"{\"nodes\":[],\"edges\":", b"\xEF\xBB\xBF\n {"]),
        body in "[\\[\\]{}\",:0-9a-zA-Z \\n\\\\.-]{0,200}",
        max_line in prop_oneof![Just(tracemerge_sources::MAX_LINE), 1usize..64]) {
        let mut bytes = prefix.to_vec();
        bytes.extend(body.as_bytes());
        drain(bytes, &Options { max_line, ..Options::default() });
    }

    #[test]
    fn mutated_fixtures_never_panic(
        name in prop::sample::select(vec![
            "stream.ndjson", "stream_bad.ndjson", "callgraph.json", "callgraph_legacy.json",
            "runtime_facts.ndjson", "runtime_facts_bad.ndjson", "runtime_facts_document.json"]),
        muts in mutations(),
        compress in any::<bool>()) {
        let bytes = mutate(fixture(name), &muts);
        let bytes = if compress { gzip(&bytes) } else { bytes };
        drain(bytes, &Options { at: Some(5), ..Options::default() });
    }

    #[test]
    fn mutated_valid_lines_fail_alone(records in proptest::collection::vec(record(Weights::Decimal), 2..8),
                                      which in any::<usize>(),
                                      muts in mutations()) {
        // Mutate one line (without adding or removing newlines): every other
        // line still comes through, at its own line number.
        let which = which % records.len();
        let mut lines: Vec<Vec<u8>> = records.iter().map(|r| r.to_json().into_bytes()).collect();
        let mutated: Vec<u8> = mutate(lines[which].clone(), &muts)
            .into_iter()
            .map(|b| if b == b'\n' { b' ' } else { b })
            .collect();
        lines[which] = mutated;
        let mut text = Vec::new();
        for l in &lines {
            text.extend(l);
            text.push(b'\n');
        }
        let Ok(stream) = from_reader("m", std::io::Cursor::new(text), &Options::default()) else {
            // only the first line can make the input unrecognisable
            prop_assert_eq!(which, 0);
            return Ok(());
        };
        let items: Vec<_> = stream.collect();
        for (i, r) in records.iter().enumerate() {
            if i == which {
                continue;
            }
            let found = items.iter().any(|item| matches!(item, Ok((l, got)) if l.line == i as u64 + 1 && got == r));
            prop_assert!(found, "line {} lost", i + 1);
        }
        prop_assert!(items.len() <= records.len());
    }

    /// Reading a record by its type first accepts exactly the lines that
    /// serde's own reading of the tagged enum accepts, as the same record,
    /// whatever the order of the fields, unknown fields, or damage.
    #[test]
    fn records_read_as_serde_reads_them(record in record(Weights::Decimal),
                                        type_last in any::<bool>(),
                                        muts in proptest::option::of(mutations())) {
        // `to_json` writes `type` first; a JSON object of serde_json's
        // sorts its keys, which puts it after most.
        let mut line = record.to_json();
        if type_last {
            line = serde_json::from_str::<serde_json::Value>(&line).unwrap().to_string();
        }
        line.insert_str(line.len() - 1, r#","unknown":[1,{"type":"edge"}]"#);
        let mut line = line.into_bytes();
        if let Some(muts) = &muts {
            line = mutate(line, muts);
        }
        let Ok(line) = String::from_utf8(line) else { return Ok(()) };
        let serde = serde_json::from_str::<Record>(&line)
            .map_err(|e| e.to_string())
            .and_then(|r| r.validate().map(|()| r).map_err(|e| e.to_string()));
        let ours = Record::from_json(&line);
        prop_assert_eq!(ours.as_ref().ok(), serde.as_ref().ok(), "{}", line);
        if muts.is_none() {
            prop_assert_eq!(ours.as_ref().ok(), Some(&record), "{}", line);
        }
    }

    #[test]
    fn runtime_fact_hits_are_summed(events in proptest::collection::vec(
            (0..4usize, 1..1000u64, 0..3u64, 0..2usize, proptest::option::of(0..3u64)), 1..40)) {
        let symbols = ["a", "b", "c\"q", "ü"];
        let containers = ["c1", "c2"];
        let mut text = String::new();
        let mut expected: BTreeMap<(String, u64, String), u64> = BTreeMap::new();
        for (s, hits, at, c, pid) in &events {
            let mut ev = serde_json::json!({
                "symbolId": symbols[*s], "hitCount": hits, "observedAt": at * 1000,
                "buildId": "b", "containerId": containers[*c]});
            if let Some(pid) = pid {
                ev["processId"] = serde_json::json!(pid);
            }
            text.push_str(&ev.to_string());
            text.push('\n');
            *expected
                .entry((symbols[*s].to_string(), at * 1000, format!("stella:container:{}", containers[*c])))
                .or_default() += hits;
        }
        let mut got: BTreeMap<(String, u64, String), u64> = BTreeMap::new();
        for item in from_reader("f", std::io::Cursor::new(text.into_bytes()), &Options::default()).unwrap() {
            let (_, r) = item.unwrap();
            let Record::Hit(h) = r else { panic!() };
            prop_assert_eq!(h.artifact.as_str(), "b");
            let prev = got.insert((h.symbol, h.at, h.source), h.hits);
            prop_assert!(prev.is_none(), "one record per key");
        }
        prop_assert_eq!(got, expected);
    }
}
