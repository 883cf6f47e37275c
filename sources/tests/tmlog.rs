//! The replay log end to end: exact round trips from NDJSON, detection by
//! content (plain and gzip, mixed with NDJSON), and damage of every kind
//! located at its block with everything before it kept.

use proptest::prelude::*;
use tracemerge_records::{EdgeKind, Expander, Input, Record};
use tracemerge_scenarios::random::{self, StreamParams};
use tracemerge_sources::tmlog::{self, Reader, Writer, HEADER_LEN, MAGIC, VERSION};
use tracemerge_sources::{from_reader, open, open_all, Options, SourceError};

mod common;
use common::{gzip, record, Weights};

fn ndjson(records: &[Record]) -> String {
    records.iter().map(|r| r.to_json() + "\n").collect()
}

fn encode(records: &[Record], block_bytes: usize) -> Vec<u8> {
    let mut w = Writer::with_block_size(Vec::new(), block_bytes).unwrap();
    for r in records {
        w.write(r).unwrap();
    }
    w.finish().unwrap()
}

/// Records read by content detection (the path `merge` takes).
fn read_detected(name: &str, bytes: Vec<u8>) -> Vec<Record> {
    from_reader(name, std::io::Cursor::new(bytes), &Options::default())
        .unwrap()
        .map(|item| item.unwrap().1)
        .collect()
}

/// The records read before the error, and the error; nothing may follow it.
fn read_all(bytes: &[u8]) -> (Vec<Record>, Option<SourceError>) {
    let mut reader = match Reader::new("t.tmlog", bytes) {
        Ok(r) => r,
        Err(e) => return (Vec::new(), Some(e)),
    };
    let mut records = Vec::new();
    let mut expander = Expander::new();
    for item in reader.by_ref() {
        match item {
            Ok(input) => records.extend(expander.expand(input)),
            Err(e) => {
                assert!(reader.next().is_none(), "{e}: items after a fatal error");
                return (records, Some(e));
            }
        }
    }
    (records, None)
}

/// NDJSON → records → tmlog → records (by content detection, plain and
/// gzip): the same records and the same NDJSON text. Also records → tmlog
/// → records without JSON in between, which must keep every bit (JSON
/// parsing of floats is not always exact, the log must be).
fn assert_exact_round_trip(records: &[Record], block_bytes: usize) -> Result<(), TestCaseError> {
    let parsed = read_detected("in.ndjson", ndjson(records).into_bytes());
    prop_assert_eq!(parsed.len(), records.len());
    let text = ndjson(&parsed);
    let log = encode(&parsed, block_bytes);
    for (name, bytes) in [("out.tmlog", log.clone()), ("out.tmlog.gz", gzip(&log))] {
        let back = read_detected(name, bytes);
        prop_assert_eq!(&back, &parsed, "{}", name);
        prop_assert_eq!(ndjson(&back), text.clone(), "{}", name);
    }
    let direct = read_detected("direct.tmlog", encode(records, block_bytes));
    prop_assert_eq!(&direct, records);
    prop_assert_eq!(ndjson(&direct), ndjson(records));
    Ok(())
}

/// A small deterministic generator for decorating records.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        // xorshift64*: enough to vary optional fields.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn one_in(&mut self, n: u64) -> bool {
        self.next().is_multiple_of(n)
    }
}

/// Adds the optional fields the random streams leave out: weights, reasons
/// and kinds on static edges, ids on hits, coverage losses, big hit counts.
fn decorate(records: &mut [Record], seed: u64) {
    let mut dice = Dice(seed | 1);
    let weights = [
        0.0,
        -0.0,
        0.5,
        1.0,
        1e-300,
        f64::MIN_POSITIVE / 4.0,
        0.1 + 0.2,
    ];
    for r in records.iter_mut() {
        match r {
            Record::Graph(g) => {
                for e in &mut g.edges {
                    if dice.one_in(3) {
                        e.weight = Some(weights[dice.next() as usize % weights.len()]);
                    }
                    if dice.one_in(3) {
                        e.reason = Some(
                            ["vtable", "reflection", "", "ü\"\n"][dice.next() as usize % 4].into(),
                        );
                    }
                    if dice.one_in(3) {
                        e.kind = Some(if dice.one_in(2) {
                            EdgeKind::Static
                        } else {
                            EdgeKind::Heuristic
                        });
                    }
                }
            }
            Record::Hit(h) if h.event_id.is_none() && dice.one_in(2) => {
                h.event_id = Some(format!("hit-{}", dice.next()));
            }
            Record::Edge(e) if dice.one_in(5) => e.hits = i64::MAX as u64,
            Record::Coverage(c) if dice.one_in(2) => {
                c.lost = Some(if dice.one_in(2) { 0 } else { dice.next() });
            }
            _ => {}
        }
    }
}

fn block_size() -> impl Strategy<Value = usize> {
    prop_oneof![Just(1usize), 2..200usize, Just(tmlog::BLOCK_BYTES)]
}

/// A valid log of a random stream, cut into several blocks, with where each
/// block starts and how many records it holds (the end marker is the last
/// block, with none).
struct Blocks {
    records: Vec<Record>,
    log: Vec<u8>,
    starts: Vec<usize>,
    counts: Vec<usize>,
}

fn blocks(seed: u64, block_bytes: usize) -> Blocks {
    let mut records = random::stream(seed, &StreamParams::tiny());
    decorate(&mut records, seed);
    let log = encode(&records, block_bytes);
    let mut starts = Vec::new();
    let mut pos = HEADER_LEN;
    while pos < log.len() {
        starts.push(pos);
        let len = u32::from_le_bytes(log[pos..pos + 4].try_into().unwrap()) as usize;
        pos += 8 + len;
    }
    assert_eq!(pos, log.len());
    let mut counts = vec![0; starts.len()];
    let mut reader = Reader::new("t.tmlog", &log[..]).unwrap();
    while let Some(item) = reader.next() {
        // Records only: a block's new names come first, as an item.
        if !matches!(item.unwrap(), Input::Names { .. }) {
            counts[reader.location().block as usize - 1] += 1;
        }
    }
    assert_eq!(counts.iter().sum::<usize>(), records.len());
    assert_eq!(counts.last(), Some(&0), "the end marker holds no records");
    Blocks {
        records,
        log,
        starts,
        counts,
    }
}

impl Blocks {
    /// The block (1-based) that holds byte `pos`; 0 for the header.
    fn block_of(&self, pos: usize) -> usize {
        self.starts.iter().take_while(|&&s| s <= pos).count()
    }

    /// The records of the blocks before block `k` (1-based).
    fn before(&self, k: usize) -> &[Record] {
        &self.records[..self.counts[..k - 1].iter().sum::<usize>()]
    }
}

/// What damage at byte `pos` must give: the header refused, or the records
/// of the blocks before the damaged one and then an error naming it.
fn assert_damage_located(b: &Blocks, damaged: &[u8], pos: usize) -> Result<(), TestCaseError> {
    let (got, error) = read_all(damaged);
    let error = error.expect("damage is always found");
    prop_assert!(error.fatal);
    let k = b.block_of(pos);
    if k == 0 {
        prop_assert!(got.is_empty());
        prop_assert_eq!(error.location.path.as_deref(), Some("header"), "{}", error);
        return Ok(());
    }
    prop_assert_eq!(error.location.block, k as u64, "{}", error);
    prop_assert_eq!(error.location.offset, b.starts[k - 1] as u64, "{}", error);
    prop_assert!(
        error
            .to_string()
            .starts_with(&format!("t.tmlog: block {k} (byte {}): ", b.starts[k - 1])),
        "{}",
        error
    );
    prop_assert_eq!(got.as_slice(), b.before(k));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn random_streams_round_trip_exactly(
        seed in any::<u64>(),
        preset in 0..StreamParams::presets().len(),
        block_bytes in block_size(),
    ) {
        let (_, params) = &StreamParams::presets()[preset];
        let mut records = random::stream(seed, params);
        decorate(&mut records, seed);
        assert_exact_round_trip(&records, block_bytes)?;
    }

    #[test]
    fn any_records_round_trip_exactly(
        records in proptest::collection::vec(record(Weights::Any), 1..40),
        block_bytes in block_size(),
    ) {
        assert_exact_round_trip(&records, block_bytes)?;
    }

    #[test]
    fn a_damaged_byte_is_found_in_its_block(
        seed in any::<u64>(),
        block_bytes in 16..400usize,
        at in any::<prop::sample::Index>(),
        flip in 1..=255u8,
    ) {
        let b = blocks(seed, block_bytes);
        let pos = at.index(b.log.len());
        let mut damaged = b.log.clone();
        damaged[pos] ^= flip;
        assert_damage_located(&b, &damaged, pos)?;
    }

    #[test]
    fn a_cut_short_log_keeps_the_blocks_before_the_cut(
        seed in any::<u64>(),
        block_bytes in 16..400usize,
        at in any::<prop::sample::Index>(),
    ) {
        let b = blocks(seed, block_bytes);
        let cut = at.index(b.log.len());
        assert_damage_located(&b, &b.log[..cut], cut)?;
    }

    #[test]
    fn a_bad_record_drops_its_whole_block(
        seed in any::<u64>(),
        block_bytes in 16..400usize,
        which in any::<prop::sample::Index>(),
        bad in 0..4usize,
    ) {
        // Block k stays well framed (good checksum) but ends with a record
        // the decoder refuses: none of block k's records may come out.
        let b = blocks(seed, block_bytes);
        let k = which.index(b.starts.len() - 1) + 1;
        let (bad_record, needle): (&[u8], &str) = [
            (&[6, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f][..], "bad varint"),
            (&[2, 0xff, 0xff, 0x03, 0, 0][..], "string index 65535 is not defined"),
            (&[0x09, 0][..], "unknown record tag 0x09"),
            (&[6, 0, 0][..], "1 unread bytes"),
        ][bad];
        let (start, end) = (b.starts[k - 1], b.starts[k]);
        let payload = &b.log[start + 8..end];
        let (count, count_len) = varint(payload);
        let mut body = Vec::new();
        put_varint(&mut body, count + 1);
        body.extend_from_slice(&payload[count_len..]);
        put_varint(&mut body, bad_record.len() as u64);
        body.extend_from_slice(bad_record);
        let mut damaged = b.log[..start].to_vec();
        damaged.extend(frame(&body));
        damaged.extend_from_slice(&b.log[end..]);
        let (got, error) = read_all(&damaged);
        let error = error.expect("the bad record is found");
        prop_assert_eq!(got.as_slice(), b.before(k));
        prop_assert_eq!(error.location.block, k as u64, "{}", error);
        prop_assert_eq!(error.location.offset, start as u64, "{}", error);
        prop_assert!(error.message.contains(needle), "{}", error);
        prop_assert!(error.message.contains(&format!("record {} of {}", count + 1, count + 1)), "{}", error);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..3000),
                                   with_header in any::<bool>()) {
        let mut input = Vec::new();
        if with_header {
            input.extend_from_slice(&MAGIC);
            input.extend_from_slice(&VERSION.to_le_bytes());
        }
        input.extend(bytes);
        assert_decodes_or_names_a_block(&input)?;
    }

    #[test]
    fn arbitrary_payloads_with_good_checksums_never_panic(
        payload in proptest::collection::vec(
            prop_oneof![any::<u8>(), 0..8u8, Just(0x80u8), Just(0x16u8)], 0..600),
        head in proptest::collection::vec(0..4u8, 2),
    ) {
        // A well-framed block gets past the checksum, so the decoder itself
        // meets the garbage: few records, few strings, then random bytes.
        let mut body = head.clone();
        body.extend(payload);
        let mut input = MAGIC.to_vec();
        input.extend_from_slice(&VERSION.to_le_bytes());
        input.extend(frame(&body));
        input.extend(frame(&[]));
        assert_decodes_or_names_a_block(&input)?;
    }
}

/// Any input: no panic; records only before an error; every error is
/// located at the header or a block; through `from_reader` every record
/// passes validation.
fn assert_decodes_or_names_a_block(input: &[u8]) -> Result<(), TestCaseError> {
    let (_, error) = read_all(input);
    if let Some(e) = error {
        prop_assert!(e.fatal);
        let at_header = e
            .location
            .path
            .as_deref()
            .is_some_and(|p| p.starts_with("header"));
        prop_assert!(at_header || e.location.block >= 1, "{}", e);
    }
    if let Ok(stream) = from_reader(
        "fuzz",
        std::io::Cursor::new(input.to_vec()),
        &Options::default(),
    ) {
        let mut failed = false;
        for item in stream.take(10_000) {
            match item {
                Ok((_, record)) => {
                    prop_assert!(!failed, "a record after a fatal error");
                    prop_assert!(record.validate().is_ok());
                }
                Err(e) => failed |= e.fatal,
            }
        }
    }
    Ok(())
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A varint at the start of `bytes` and its length.
fn varint(bytes: &[u8]) -> (u64, usize) {
    let mut value = 0;
    for (i, b) in bytes.iter().enumerate() {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return (value, i + 1);
        }
    }
    panic!("unterminated varint in a valid log");
}

/// A block frame around `payload`, checksum included.
fn frame(payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u32).to_le_bytes();
    let mut out = len.to_vec();
    out.extend_from_slice(&crc32c::crc32c_append(crc32c::crc32c(&len), payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

fn temp(name: &str, bytes: &[u8]) -> String {
    let dir = std::env::temp_dir().join(format!("tracemerge-tmlog-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn open_reads_a_log_by_content_with_block_locations() {
    let records = random::stream(3, &StreamParams::dense());
    let log = encode(&records, 256);
    // a misleading extension: content decides
    let path = temp("looks-like.ndjson", &log);
    let items: Vec<_> = open(&path).unwrap().map(Result::unwrap).collect();
    let got: Vec<Record> = items.iter().map(|(_, r)| r.clone()).collect();
    assert_eq!(got, records);
    let first = &items[0].0;
    assert_eq!((first.block, first.offset), (1, HEADER_LEN as u64));
    assert_eq!(first.to_string(), format!("{path}: block 1 (byte 12)"));
    let last = &items.last().unwrap().0;
    assert!(last.block > 2, "several blocks: {last}");
}

#[test]
fn gzip_logs_and_mixed_inputs_are_one_stream() {
    let first = random::stream(1, &StreamParams::tiny());
    let second = random::stream(2, &StreamParams::tiny());
    let paths = vec![
        temp("a.tmlog.gz", &gzip(&encode(&first, 128))),
        temp("b.ndjson", ndjson(&second).as_bytes()),
        temp("c.tmlog", &encode(&first, tmlog::BLOCK_BYTES)),
    ];
    let got: Vec<Record> = open_all(&paths, &Options::default())
        .unwrap()
        .map(|item| item.unwrap().1)
        .collect();
    assert_eq!(got, [first.clone(), second, first].concat());
}

#[test]
fn damage_inside_gzip_is_located_in_decompressed_bytes() {
    let b = blocks(9, 64);
    assert!(b.starts.len() > 3);
    let k = 3;
    let mut damaged = b.log.clone();
    damaged[b.starts[k - 1] + 10] ^= 0x40;
    let items: Vec<_> = from_reader(
        "d.tmlog.gz",
        std::io::Cursor::new(gzip(&damaged)),
        &Options::default(),
    )
    .unwrap()
    .collect();
    let (last, good) = items.split_last().unwrap();
    let good: Vec<Record> = good.iter().map(|i| i.as_ref().unwrap().1.clone()).collect();
    assert_eq!(good, b.before(k));
    let error = last.as_ref().unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "d.tmlog.gz: block 3 (byte {}): {}",
            b.starts[k - 1],
            error.message
        )
    );
    assert!(error.message.starts_with("checksum mismatch"), "{error}");
}

#[test]
fn an_unknown_version_is_refused_by_open() {
    let mut log = encode(&random::stream(1, &StreamParams::tiny()), 64);
    log[8..12].copy_from_slice(&2u32.to_le_bytes());
    let path = temp("future.tmlog", &log);
    let error = open(&path).err().expect("refused");
    assert!(error.fatal);
    assert_eq!(
        error.to_string(),
        format!(
            "{path}: header: unsupported replay log format version 2; this tracemerge reads \
             version 1 (a newer tracemerge may read it)"
        )
    );
}

#[test]
fn a_log_is_much_smaller_than_its_ndjson() {
    let workload = tracemerge_scenarios::workload::Workload {
        functions: 2000,
        records: 20_000,
        ..Default::default()
    };
    let records: Vec<Record> = workload.stream().collect();
    let text = ndjson(&records);
    let log = encode(&records, tmlog::BLOCK_BYTES);
    assert!(
        log.len() * 4 < text.len(),
        "tmlog {} bytes vs NDJSON {} bytes",
        log.len(),
        text.len()
    );
    assert_eq!(read_detected("w.tmlog", log), records);
}
