//! Fuzz target: the tracemerge NDJSON stream (`tracemerge.stream.v1`):
//! each line through `Record::from_json` and through the parsers' compact
//! form (`Compactor::compact_json`, which must agree), and the whole input through the
//! NDJSON reader (line splitting, over-long lines, locations) with a line
//! limit set by the input's length. (Format detection is fuzzed by the
//! `stella_callgraph` target: the NDJSON reader's threads make this target
//! slow enough already.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracemerge_records::{Compactor, Expander, Record};
use tracemerge_sources::{from_reader_as, Format, Options};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        for line in text.lines() {
            let mut compactor = Compactor::new();
            let compact = compactor.compact_json(line);
            let mut expander = Expander::new();
            expander.expand(compactor.names());
            match (compact, Record::from_json(line)) {
                (Ok(input), Ok(record)) => assert_eq!(expander.expand(input), Some(record)),
                (Err(a), Err(b)) => assert_eq!(a, b),
                (a, b) => panic!("the compact form gives {a:?} where the record gives {b:?}"),
            }
            if let Ok(record) = Record::from_json(line) {
                // What is accepted is valid, and survives its own JSON.
                record.validate().expect("accepted records are valid");
                let again = Record::from_json(&record.to_json()).expect("own JSON parses");
                assert_eq!(again, record);
            }
        }
    }
    let options = Options {
        max_line: 64 + data.len() % 1024,
        ..Options::default()
    };
    let input = std::io::Cursor::new(data.to_vec());
    if let Ok(stream) = from_reader_as("fuzz.ndjson", input, Format::Ndjson, &options) {
        for (_, record) in stream.flatten() {
            record.validate().expect("records read are valid");
        }
    }
});
