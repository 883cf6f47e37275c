//! Fuzz target: the replay log reader (`.tmlog`).
//!
//! Checksums would stop almost every mutation at the first block, so the
//! harness repairs them before reading (the reader's checksum test itself
//! is a plain comparison). Two inputs per run:
//! - the bytes as given, if they start with the magic (frames re-checksummed);
//! - otherwise the bytes as NDJSON: the records that parse are written as a
//!   log (small blocks), which must read back as exactly those records; then
//!   one byte of that log, chosen and set by the input, is changed, the
//!   checksums repaired, and the damaged log read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracemerge_records::{Expander, Record};
use tracemerge_sources::tmlog::{Reader, Writer, HEADER_LEN, MAGIC};

/// Recomputes the CRC32C of every block frame that lies whole in `log`.
fn repair_checksums(log: &mut [u8]) {
    let mut at = HEADER_LEN;
    while at + 8 <= log.len() {
        let len_bytes = [log[at], log[at + 1], log[at + 2], log[at + 3]];
        let len = u32::from_le_bytes(len_bytes) as usize;
        let Some(end) = (at + 8).checked_add(len).filter(|&end| end <= log.len()) else {
            return;
        };
        let crc = crc32c::crc32c_append(crc32c::crc32c(&len_bytes), &log[at + 8..end]);
        log[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
        at = end;
        // A concatenated log: skip its header.
        if len == 0 && log[at..].starts_with(&MAGIC) {
            at += HEADER_LEN;
        }
    }
}

/// Every record of `log` (stopping at the first error), and whether it
/// ended in an error. Sightings come with their names as table indices;
/// expanding them panics on an index the reader let through undefined.
fn read(log: Vec<u8>) -> (Vec<Record>, bool) {
    let Ok(reader) = Reader::new("fuzz.tmlog", std::io::Cursor::new(log)) else {
        return (Vec::new(), true);
    };
    let mut records = Vec::new();
    let mut expander = Expander::new();
    for item in reader {
        match item {
            Ok(input) => {
                if let Some(record) = expander.expand(input) {
                    record.validate().expect("records read are valid");
                    records.push(record);
                }
            }
            Err(_) => return (records, true),
        }
    }
    (records, false)
}

fuzz_target!(|data: &[u8]| {
    if data.starts_with(&MAGIC) {
        let mut log = data.to_vec();
        repair_checksums(&mut log);
        read(log);
        return;
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let records: Vec<Record> = text
        .lines()
        .filter_map(|line| Record::from_json(line).ok())
        .collect();
    let block = 64 + data.len() % 512;
    let mut writer = Writer::with_block_size(Vec::new(), block).expect("in memory");
    for record in &records {
        writer.write(record).expect("in memory");
    }
    let log = writer.finish().expect("in memory");
    let (back, damaged) = read(log.clone());
    assert!(!damaged, "a log just written reads without error");
    assert_eq!(back, records, "a log reads back as written");
    // One byte changed, checksums repaired.
    let seed = data
        .iter()
        .fold(0u64, |h, &b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    let mut damaged_log = log;
    let i = HEADER_LEN + (seed as usize) % (damaged_log.len() - HEADER_LEN);
    damaged_log[i] = (seed >> 32) as u8;
    repair_checksums(&mut damaged_log);
    read(damaged_log);
});
