//! Fuzz target: arbitrary bytes through the whole decoder (buffers,
//! XPRESS, records, typed events, stack assembly, inspect, edges).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = tracemerge_etl::is_etl(data);
    if let Ok(trace) = tracemerge_etl::Trace::decode(data) {
        let _ = tracemerge_etl::inspect::summary(&trace);
        let _ = tracemerge_etl::edges::edges(trace, "fuzz.etl", &Default::default(), None);
    }
    // The decompressor alone, with the expected size from the first bytes.
    if data.len() > 2 {
        let expected = usize::from(u16::from_le_bytes([data[0], data[1]]));
        let mut out = Vec::new();
        let _ = tracemerge_etl::xpress::decompress(&data[2..], expected, &mut out);
    }
});
