//! Microsoft's LZ77 "plain" XPRESS (MS-XCA §2.3–2.4), the compression of
//! ETL buffers written with `EVENT_TRACE_COMPRESSED_MODE`.
//!
//! The stream is a sequence of 32-bit flag words (read MSB first): a 0 bit
//! is one literal byte, a 1 bit a 16-bit match token (length in the low
//! 3 bits, offset − 1 in the high 13), with the length extended by a shared
//! half byte, then a byte, then a 16-bit or 32-bit count.

use std::fmt;

/// Why a compressed stream could not be inflated, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XpressError {
    /// Byte position in the compressed input.
    pub position: usize,
    pub reason: String,
}

impl fmt::Display for XpressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (input byte {:#x})", self.reason, self.position)
    }
}

impl std::error::Error for XpressError {}

fn err(position: usize, reason: impl Into<String>) -> XpressError {
    XpressError {
        position,
        reason: reason.into(),
    }
}

/// Inflates `input` into `out` (cleared first), which must come to exactly
/// `expected` bytes. Trailing flag bits after the last byte are ignored.
pub fn decompress(input: &[u8], expected: usize, out: &mut Vec<u8>) -> Result<(), XpressError> {
    out.clear();
    out.reserve(expected);
    let mut pos = 0usize;
    let mut flags: u32 = 0;
    let mut flag_count = 0u32;
    let mut half_byte: Option<usize> = None;
    let u8_at = |p: usize| -> Result<u8, XpressError> {
        input
            .get(p)
            .copied()
            .ok_or_else(|| err(p, format!("compressed data ends early (need byte {p:#x})")))
    };
    let u16_at = |p: usize| -> Result<u16, XpressError> {
        match input.get(p..p + 2) {
            Some(b) => Ok(u16::from_le_bytes([b[0], b[1]])),
            None => Err(err(p, "compressed data ends inside a match token")),
        }
    };
    while out.len() < expected {
        if flag_count == 0 {
            let Some(b) = input.get(pos..pos + 4) else {
                return Err(err(
                    pos,
                    format!(
                        "compressed data ends after {} of {} output bytes",
                        out.len(),
                        expected
                    ),
                ));
            };
            flags = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            pos += 4;
            flag_count = 32;
        }
        flag_count -= 1;
        if flags & (1 << flag_count) == 0 {
            out.push(u8_at(pos)?);
            pos += 1;
            continue;
        }
        let token_pos = pos;
        let token = u16_at(pos)?;
        pos += 2;
        let offset = (token as usize >> 3) + 1;
        let mut length = (token & 7) as usize;
        if length == 7 {
            length = match half_byte.take() {
                None => {
                    let v = (u8_at(pos)? & 0x0f) as usize;
                    half_byte = Some(pos);
                    pos += 1;
                    v
                }
                Some(p) => (input[p] >> 4) as usize,
            };
            if length == 15 {
                length = u8_at(pos)? as usize;
                pos += 1;
                if length == 255 {
                    length = u16_at(pos)? as usize;
                    pos += 2;
                    if length == 0 {
                        let Some(b) = input.get(pos..pos + 4) else {
                            return Err(err(pos, "compressed data ends inside a match length"));
                        };
                        length = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
                        pos += 4;
                    }
                    if length < 15 + 7 {
                        return Err(err(token_pos, format!("invalid match length {length}")));
                    }
                    length -= 15 + 7;
                }
                length += 15;
            }
            length += 7;
        }
        length += 3;
        if offset > out.len() {
            return Err(err(
                token_pos,
                format!(
                    "match offset {offset} reaches before the start of the output ({} bytes so far)",
                    out.len()
                ),
            ));
        }
        if out.len() + length > expected {
            return Err(err(
                token_pos,
                format!(
                    "match of {length} bytes overruns the expected size {expected} (at output byte {})",
                    out.len()
                ),
            ));
        }
        let start = out.len() - offset;
        if offset >= length {
            out.extend_from_within(start..start + length);
        } else {
            for i in 0..length {
                let b = out[start + i];
                out.push(b);
            }
        }
    }
    Ok(())
}

/// A simple greedy compressor producing streams that [`decompress`] (and
/// Windows) accept. Used by the tests' synthetic ETL writer.
pub fn compress(input: &[u8]) -> Vec<u8> {
    const MAX_OFFSET: usize = 8192;
    struct Flags {
        pos: usize,
        bits: u32,
        count: u32,
    }
    impl Flags {
        fn push(&mut self, out: &mut Vec<u8>, bit: bool) {
            if self.count == 32 {
                out[self.pos..self.pos + 4].copy_from_slice(&self.bits.to_le_bytes());
                self.pos = out.len();
                out.extend_from_slice(&[0; 4]);
                self.bits = 0;
                self.count = 0;
            }
            self.bits = (self.bits << 1) | u32::from(bit);
            self.count += 1;
        }
    }
    let mut out = Vec::with_capacity(input.len() + input.len() / 8 + 8);
    out.extend_from_slice(&[0; 4]);
    let mut flags = Flags {
        pos: 0,
        bits: 0,
        count: 0,
    };
    let mut half_byte: Option<usize> = None;
    let mut table = vec![usize::MAX; 1 << 14];
    let hash = |p: usize| -> usize {
        let v =
            u32::from(input[p]) | (u32::from(input[p + 1]) << 8) | (u32::from(input[p + 2]) << 16);
        (v.wrapping_mul(2_654_435_761) >> 18) as usize
    };
    let mut i = 0;
    while i < input.len() {
        let mut best_len = 0;
        let mut best_off = 0;
        if i + 3 <= input.len() {
            let h = hash(i);
            let cand = table[h];
            table[h] = i;
            if cand != usize::MAX && i - cand <= MAX_OFFSET {
                let mut l = 0;
                while i + l < input.len() && input[cand + l] == input[i + l] && l < 65_000 {
                    l += 1;
                }
                if l >= 3 {
                    best_len = l;
                    best_off = i - cand;
                }
            }
        }
        if best_len == 0 {
            flags.push(&mut out, false);
            out.push(input[i]);
            i += 1;
            continue;
        }
        flags.push(&mut out, true);
        let l = best_len - 3;
        let token = (((best_off - 1) << 3) as u16) | (l.min(7) as u16);
        out.extend_from_slice(&token.to_le_bytes());
        if l >= 7 {
            let l1 = l - 7;
            let nib = l1.min(15) as u8;
            match half_byte.take() {
                None => {
                    half_byte = Some(out.len());
                    out.push(nib);
                }
                Some(p) => out[p] |= nib << 4,
            }
            if l1 >= 15 {
                let l2 = l1 - 15;
                if l2 < 255 {
                    out.push(l2 as u8);
                } else {
                    out.push(255);
                    out.extend_from_slice(&(l as u16).to_le_bytes());
                }
            }
        }
        i += best_len;
    }
    // Pad the last flag word with 1 bits (matches that are never read).
    let remaining = 32 - flags.count;
    let last = if remaining == 32 {
        u32::MAX
    } else {
        (flags.bits << remaining) | ((1u32 << remaining) - 1)
    };
    out[flags.pos..flags.pos + 4].copy_from_slice(&last.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_only_stream() {
        // Flag word 0 = 32 literals.
        let mut input = vec![0, 0, 0, 0];
        input.extend_from_slice(b"hello");
        let mut out = Vec::new();
        decompress(&input, 5, &mut out).unwrap();
        assert_eq!(out, b"hello");
    }

    #[test]
    fn overlapping_match_repeats_a_byte() {
        // 'a' then a match of offset 1, length 10 (7 + nibble 0 + 3).
        let flags: u32 = 0b01 << 30;
        let mut input = flags.to_le_bytes().to_vec();
        input.push(b'a');
        input.extend_from_slice(&7u16.to_le_bytes()); // offset 1, length escape
        input.push(0); // half byte: 0 -> length 7 + 3 = 10
        let mut out = Vec::new();
        decompress(&input, 11, &mut out).unwrap();
        assert_eq!(out, b"aaaaaaaaaaa");
    }

    #[test]
    fn shared_half_byte_and_long_lengths() {
        // Two escaped matches share one half byte (low then high nibble),
        // then a 16-bit and a 32-bit length.
        let flags: u32 = 0b01111 << 27;
        let mut input = flags.to_le_bytes().to_vec();
        input.push(b'x');
        input.extend_from_slice(&7u16.to_le_bytes());
        input.push(0x21); // low nibble 1 -> 11 bytes; high nibble 2 -> 12 bytes
        input.extend_from_slice(&7u16.to_le_bytes());
        input.extend_from_slice(&7u16.to_le_bytes()); // needs a new half byte
        input.push(0x0f); // 15 -> read a byte
        input.push(255); // -> read u16
        input.extend_from_slice(&300u16.to_le_bytes()); // length 300 + 3
        input.extend_from_slice(&7u16.to_le_bytes()); // high nibble of 0x0f = 0 -> 10
        let mut out = Vec::new();
        let total = 1 + 11 + 12 + 303 + 10;
        decompress(&input, total, &mut out).unwrap();
        assert_eq!(out.len(), total);
        assert!(out.iter().all(|&b| b == b'x'));
        // The 32-bit form: u16 zero then u32 count.
        let flags: u32 = 0b01 << 30;
        let mut input = flags.to_le_bytes().to_vec();
        input.push(b'y');
        input.extend_from_slice(&7u16.to_le_bytes());
        input.push(0x0f);
        input.push(255);
        input.extend_from_slice(&0u16.to_le_bytes());
        input.extend_from_slice(&70_000u32.to_le_bytes());
        decompress(&input, 70_004, &mut out).unwrap();
        assert_eq!(out.len(), 70_004);
    }

    #[test]
    fn bad_streams_are_errors_not_panics() {
        let mut out = Vec::new();
        // offset before start
        let flags: u32 = 1 << 31;
        let mut input = flags.to_le_bytes().to_vec();
        input.extend_from_slice(&(5u16 << 3).to_le_bytes());
        let e = decompress(&input, 10, &mut out).unwrap_err();
        assert_eq!(e.position, 4);
        assert!(e.reason.contains("before the start"), "{e}");
        // ends early
        let e = decompress(&[0, 0, 0, 0, 1, 2], 10, &mut out).unwrap_err();
        assert!(e.reason.contains("ends early"), "{e}");
        // overrun
        let flags: u32 = 0b01 << 30;
        let mut input = flags.to_le_bytes().to_vec();
        input.push(1);
        input.extend_from_slice(&6u16.to_le_bytes());
        let e = decompress(&input, 5, &mut out).unwrap_err();
        assert!(e.reason.contains("overruns"), "{e}");
        // invalid long length
        let flags: u32 = 0b01 << 30;
        let mut input = flags.to_le_bytes().to_vec();
        input.push(1);
        input.extend_from_slice(&7u16.to_le_bytes());
        input.extend_from_slice(&[0x0f, 255, 3, 0]);
        let e = decompress(&input, 500, &mut out).unwrap_err();
        assert!(e.reason.contains("invalid match length"), "{e}");
    }

    #[test]
    fn round_trip() {
        let mut data = Vec::new();
        for i in 0..20_000u32 {
            data.extend_from_slice(&(i % 97).to_le_bytes());
            if i % 13 == 0 {
                data.extend_from_slice(&[0u8; 400]);
            }
        }
        let c = compress(&data);
        assert!(c.len() < data.len() / 2);
        let mut out = Vec::new();
        decompress(&c, data.len(), &mut out).unwrap();
        assert_eq!(out, data);
    }
}
