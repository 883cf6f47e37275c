//! Damaged and foreign input: a clear error naming the buffer and byte
//! offset, no panic, and the buffers before the damage still decode.

mod common;

use common::*;
use proptest::prelude::*;
use tracemerge_etl::{is_etl, EtlError, Trace};

/// Header buffer + 4 data buffers, each with one sample and one full stack.
fn file(compressed: bool) -> (Vec<u8>, Vec<usize>) {
    let mut w = EtlWriter::new(8);
    w.compressed = compressed;
    for i in 0..4i64 {
        let t = QPC_START + 100 * (i + 1);
        let recs = vec![
            w.sample(t, 0x40_1000, 7),
            w.stack(t + 1, t, 100, 7, &[0x40_1000, 0x40_2000, 0x40_3000]),
        ];
        w.buffer(0);
        for r in recs {
            w.push(r);
        }
    }
    w.build()
}

fn samples(t: &Trace) -> u64 {
    t.counts.kernel.get(&(0x0f, 46)).copied().unwrap_or(0)
}

#[test]
fn intact_files_decode_cleanly() {
    for compressed in [false, true] {
        let (data, _) = file(compressed);
        let t = Trace::decode(&data).unwrap();
        assert!(t.damage.is_empty());
        assert_eq!(samples(&t), 4);
        assert_eq!(t.stacks.len(), 4);
    }
}

#[test]
fn truncated_file() {
    for compressed in [false, true] {
        let (data, offs) = file(compressed);
        let cut = offs[3] + 0x30;
        let t = Trace::decode(&data[..cut]).unwrap();
        assert_eq!(t.damage.len(), 1);
        match &t.damage[0] {
            EtlError::Truncated { buffer, offset, .. } => {
                assert_eq!((*buffer, *offset), (3, offs[3] as u64));
            }
            e => panic!("{e}"),
        }
        let msg = t.damage[0].to_string();
        assert!(
            msg.contains("buffer 3") && msg.contains(&format!("{:#x}", offs[3])),
            "{msg}"
        );
        assert_eq!(samples(&t), 2, "buffers 1 and 2 still decode");
        assert_eq!((t.skipped.buffers, t.skipped.bytes), (1, 0x30));
    }
}

#[test]
fn corrupted_buffer_size() {
    // Plain buffers sit at multiples of the buffer size: decoding resumes after the damage.
    let (mut data, offs) = file(false);
    data[offs[2]..offs[2] + 4].copy_from_slice(&0x10u32.to_le_bytes());
    let t = Trace::decode(&data).unwrap();
    assert_eq!(t.damage.len(), 1);
    let msg = t.damage[0].to_string();
    assert!(
        matches!(t.damage[0], EtlError::BadBuffer { buffer: 2, .. }),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("{:#x}", offs[2])) && msg.contains("buffer size 16"),
        "{msg}"
    );
    assert_eq!(samples(&t), 3);
    assert_eq!(t.skipped.buffers, 1);
    // Compressed buffers have no fixed layout: everything after the damage is skipped and counted.
    let (mut data, offs) = file(true);
    data[offs[2]..offs[2] + 4].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
    let t = Trace::decode(&data).unwrap();
    assert!(
        matches!(t.damage[0], EtlError::BadBuffer { buffer: 2, .. }),
        "{}",
        t.damage[0]
    );
    assert_eq!(samples(&t), 1);
    assert_eq!(t.skipped.bytes, (data.len() - offs[2]) as u64);
    // A size that runs past the end of the file reads as truncation.
    let (mut data, offs) = file(true);
    data[offs[4]..offs[4] + 4].copy_from_slice(&0x1000u32.to_le_bytes());
    let t = Trace::decode(&data).unwrap();
    assert!(
        matches!(t.damage[0], EtlError::Truncated { buffer: 4, .. }),
        "{}",
        t.damage[0]
    );
    assert_eq!(samples(&t), 3);
}

#[test]
fn bad_compressed_data() {
    let (mut data, offs) = file(true);
    // The first token of buffer 2 becomes a match reaching before the output.
    let body = offs[2] + 0x48;
    data[body..body + 4].copy_from_slice(&0xffff_ffffu32.to_le_bytes());
    data[body + 4..body + 6].copy_from_slice(&0xfff8u16.to_le_bytes());
    let t = Trace::decode(&data).unwrap();
    assert_eq!(t.damage.len(), 1);
    let msg = t.damage[0].to_string();
    match &t.damage[0] {
        EtlError::Decompress {
            buffer,
            offset,
            position,
            ..
        } => {
            assert_eq!((*buffer, *offset, *position), (2, offs[2] as u64, 4));
        }
        e => panic!("{e}"),
    }
    assert!(msg.contains("bad compressed data"), "{msg}");
    assert_eq!(samples(&t), 3, "the other buffers decode");
    assert_eq!(t.skipped.buffers, 1);
}

#[test]
fn zero_size_record() {
    let (mut data, offs) = file(false);
    // The second record of buffer 1 (the stack) gets size 0.
    let rec = offs[1] + 0x48 + 0x20; // sample record: 0x10 header + 16 bytes payload
    assert_eq!(data[rec + 7], 0x18, "a StackWalk record");
    data[rec + 4..rec + 6].copy_from_slice(&0u16.to_le_bytes());
    let t = Trace::decode(&data).unwrap();
    assert_eq!(t.damage.len(), 1);
    let msg = t.damage[0].to_string();
    assert!(
        matches!(
            t.damage[0],
            EtlError::BadRecord {
                buffer: 1,
                position: 0x68,
                ..
            }
        ),
        "{msg}"
    );
    assert!(
        msg.contains("zero-size record") && msg.contains("0x68"),
        "{msg}"
    );
    assert_eq!(
        samples(&t),
        4,
        "the record before the damage and later buffers decode"
    );
    assert_eq!(t.stacks.len(), 3);
    assert!(t.counts.skipped_record_bytes > 0);
}

#[test]
fn oversized_record_and_bad_extended_data() {
    let (mut data, offs) = file(false);
    let rec = offs[1] + 0x48;
    data[rec + 4..rec + 6].copy_from_slice(&0x7000u16.to_le_bytes());
    let t = Trace::decode(&data).unwrap();
    assert!(
        t.damage[0].to_string().contains("overruns the buffer end"),
        "{}",
        t.damage[0]
    );
    // An EVENT_HEADER whose extended item claims more than the record holds.
    let mut w = EtlWriter::new(8);
    let mut r = w.user_event_with_stack(QPC_START + 9, 1, 1, &[1, 2]);
    r[0x50..0x52].copy_from_slice(&0x4000u16.to_le_bytes());
    w.buffer(0).push(r);
    let t = Trace::decode(&w.bytes()).unwrap();
    assert!(
        t.damage[0].to_string().contains("extended data item"),
        "{}",
        t.damage[0]
    );
}

#[test]
fn not_etl() {
    let cases: [&[u8]; 4] = [
        b"",
        b"{\"type\":\"watermark\",\"at\":1}\n",
        &[
            0x89, b'P', b'N', b'G', 13, 10, 26, 10, 0, 0, 0, 13, b'I', b'H', b'D', b'R',
        ],
        &[0u8; 4096],
    ];
    for c in cases {
        assert!(!is_etl(c));
        let e = Trace::decode(c).unwrap_err();
        assert!(matches!(e, EtlError::NotEtl { .. }), "{e}");
        assert!(e.to_string().starts_with("not an ETL file"), "{e}");
    }
    let (data, _) = file(true);
    assert!(is_etl(&data[..tracemerge_etl::trace::ETL_PREFIX_LEN]));
    // A damaged header buffer makes the file unreadable as ETL.
    let mut bad = data.clone();
    bad[0x48 + 4..0x48 + 6].copy_from_slice(&0u16.to_le_bytes());
    assert!(matches!(Trace::decode(&bad), Err(EtlError::NotEtl { .. })));
}

#[test]
fn import_is_strict_unless_lenient() {
    let (data, offs) = file(true);
    let dir = std::env::temp_dir().join(format!("tracemerge-etl-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("cut.etl");
    std::fs::write(&path, &data[..offs[4] + 10]).unwrap();
    let mut opts = tracemerge_etl::ImportOptions::default();
    let e = tracemerge_etl::import(&path, &opts).unwrap_err();
    assert!(matches!(e, EtlError::Truncated { buffer: 4, .. }), "{e}");
    opts.lenient = true;
    let records = tracemerge_etl::import(&path, &opts).unwrap();
    assert!(matches!(
        records.last(),
        Some(tracemerge_records::Record::Watermark { .. })
    ));
    let missing = tracemerge_etl::import(&dir.join("absent.etl"), &opts).unwrap_err();
    assert!(matches!(missing, EtlError::Io { .. }));
    std::fs::remove_dir_all(&dir).ok();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    /// Fuzzing in the normal test suite: random bytes never panic.
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = is_etl(&bytes);
        let _ = Trace::decode(&bytes);
    }

    /// Mutated valid files (byte flips, truncation) never panic, and damage
    /// always names a buffer that exists.
    #[test]
    fn mutated_files_never_panic(
        compressed in any::<bool>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let (mut data, offs) = file(compressed);
        for (i, b) in flips {
            let i = i.index(data.len());
            data[i] ^= b | 1;
        }
        if truncate {
            data.truncate(cut.index(data.len()));
        }
        if let Ok(t) = Trace::decode(&data) {
            for d in &t.damage {
                let s = d.to_string();
                prop_assert!(s.contains("buffer"), "{}", s);
                if let EtlError::BadBuffer { buffer, .. } | EtlError::Truncated { buffer, .. }
                    | EtlError::Decompress { buffer, .. } | EtlError::BadRecord { buffer, .. } = d {
                    prop_assert!((*buffer as usize) < offs.len() + 16);
                }
            }
            let _ = tracemerge_etl::inspect::summary(&t);
            let _ = tracemerge_etl::edges::edges(t, "m.etl", &Default::default(), None);
        }
    }

    /// The XPRESS decompressor never panics on arbitrary input.
    #[test]
    fn xpress_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048), expected in 0usize..8192) {
        let mut out = Vec::new();
        let _ = tracemerge_etl::xpress::decompress(&bytes, expected, &mut out);
        prop_assert!(out.len() <= expected);
    }

    /// compress ∘ decompress is the identity.
    #[test]
    fn xpress_round_trip(bytes in proptest::collection::vec(prop_oneof![Just(0u8), Just(7u8), any::<u8>()], 0..6000)) {
        let c = tracemerge_etl::xpress::compress(&bytes);
        let mut out = Vec::new();
        tracemerge_etl::xpress::decompress(&c, bytes.len(), &mut out).unwrap();
        prop_assert_eq!(out, bytes);
    }
}
