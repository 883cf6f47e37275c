//! Fuzz target: Stella Ops runtime facts, both forms (NDJSON of
//! `RuntimeFactEvent`, and the `{subject, callgraphId, events[]}`
//! document), and the RFC 3339 timestamps they carry.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracemerge_sources::{from_reader_as, time, Format, Options};

fuzz_target!(|data: &[u8]| {
    let options = Options::default();
    for format in [
        Format::StellaRuntimeFacts,
        Format::StellaRuntimeFactsDocument,
    ] {
        let input = std::io::Cursor::new(data.to_vec());
        if let Ok(stream) = from_reader_as("fuzz.facts", input, format, &options) {
            for (_, record) in stream.flatten() {
                record.validate().expect("records read are valid");
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(ms) = time::parse_rfc3339(text.trim()) {
            assert!(ms <= tracemerge_records::MAX_TIME);
        }
    }
});
