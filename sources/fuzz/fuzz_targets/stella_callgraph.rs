//! Fuzz target: a Stella Ops `stella.callgraph.v1` document (and its legacy
//! form) through the callgraph reader, then the same bytes through format
//! detection (`from_reader`) and whatever reader it picks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracemerge_sources::{from_reader, from_reader_as, Format, Options};

fuzz_target!(|data: &[u8]| {
    let options = Options::default();
    let input = std::io::Cursor::new(data.to_vec());
    if let Ok(stream) = from_reader_as("fuzz.json", input, Format::StellaCallgraph, &options) {
        for (_, record) in stream.flatten() {
            record.validate().expect("records read are valid");
        }
    }
    let input = std::io::Cursor::new(data.to_vec());
    if let Ok(stream) = from_reader("fuzz", input, &options) {
        for (_, record) in stream.flatten() {
            record.validate().expect("records read are valid");
        }
    }
});
