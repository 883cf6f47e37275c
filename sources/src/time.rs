//! Timestamps of outside formats: RFC 3339 strings and epoch milliseconds.

use tracemerge_records::{Time, MAX_TIME};

/// A timestamp that cannot be read. The caller places it (file, line, key):
/// see [`crate::SourceError`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// Not an RFC 3339 timestamp; `why` says what is wrong with it.
    #[error("invalid RFC 3339 timestamp {text:?}: {why}")]
    Rfc3339 { text: String, why: String },
    /// Epoch milliseconds past [`MAX_TIME`].
    #[error("time {value} is out of range (milliseconds since the epoch, at most {MAX_TIME})")]
    OutOfRange { value: String },
    /// A JSON number that is not a non-negative integer.
    #[error("time {value} is not a non-negative integer (milliseconds since the epoch)")]
    NotAnInteger { value: String },
    /// A JSON value that is neither a string nor a number (`found`: its type).
    #[error("expected an RFC 3339 string or epoch milliseconds, got {found}")]
    WrongType { found: &'static str },
}

/// Parses an RFC 3339 timestamp (`2025-11-26T07:47:08.123Z`,
/// `2025-11-26 09:47:08+02:00`) into milliseconds since the Unix epoch.
///
/// Accepted beyond the strict grammar: `t`/`z` in lower case, a space instead
/// of `T`, any number of fraction digits (truncated to milliseconds), and a
/// missing offset, read as UTC (Stella Ops writes UTC). A leap second (`:60`)
/// counts as the first instant of the next minute. Times before 1970 or after
/// year 9999 are errors.
///
/// The grammar above is read here; the calendar is `jiff`'s. (jiff's own
/// parser reads a wider grammar, RFC 9557 with annotations and basic
/// formats, and clamps a leap second to `:59`: not the rules of this format.)
pub fn parse_rfc3339(s: &str) -> Result<Time, TimeError> {
    let err = |why: &str| TimeError::Rfc3339 {
        text: s.to_string(),
        why: why.to_string(),
    };
    let b = s.as_bytes();
    let num = |range: std::ops::Range<usize>, what: &str| -> Result<i64, TimeError> {
        let part = b
            .get(range)
            .ok_or_else(|| err(&format!("{what} is missing")))?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return Err(err(&format!("{what} is not a number")));
        }
        Ok(part.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let expect = |i: usize, set: &[u8], what: &str| -> Result<(), TimeError> {
        match b.get(i) {
            Some(c) if set.contains(c) => Ok(()),
            _ => Err(err(&format!("expected {what} at character {}", i + 1))),
        }
    };
    let year = num(0..4, "year")?;
    expect(4, b"-", "'-'")?;
    let month = num(5..7, "month")?;
    expect(7, b"-", "'-'")?;
    let day = num(8..10, "day")?;
    expect(10, b"Tt ", "'T'")?;
    let hour = num(11..13, "hour")?;
    expect(13, b":", "':'")?;
    let minute = num(14..16, "minute")?;
    expect(16, b":", "':'")?;
    let second = num(17..19, "second")?;
    let mut i = 19;
    let mut millis = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            if i - start < 3 {
                millis = millis * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return Err(err("fraction has no digits"));
        }
        for _ in (i - start)..3 {
            millis *= 10;
        }
    }
    let offset_minutes = match b.get(i) {
        None => 0,
        Some(b'Z' | b'z') => {
            i += 1;
            0
        }
        Some(&sign @ (b'+' | b'-')) => {
            let oh = num(i + 1..i + 3, "offset hour")?;
            expect(i + 3, b":", "':' in the offset")?;
            let om = num(i + 4..i + 6, "offset minute")?;
            if oh > 23 || om > 59 {
                return Err(err("offset out of range"));
            }
            i += 6;
            let m = oh * 60 + om;
            if sign == b'+' {
                m
            } else {
                -m
            }
        }
        Some(_) => return Err(err(&format!("unexpected character at {}", i + 1))),
    };
    if i != b.len() {
        return Err(err("trailing characters"));
    }
    if !(1..=12).contains(&month) {
        return Err(err("month out of range"));
    }
    // The calendar (days in a month, leap years, days since the epoch) is
    // jiff's; a leap second is the next minute's first second.
    let date = jiff::civil::Date::new(year as i16, month as i8, day as i8)
        .map_err(|_| err("day out of range"))?;
    if hour > 23 || minute > 59 || second > 60 {
        return Err(err("time of day out of range"));
    }
    let datetime = date.at(hour as i8, minute as i8, second.min(59) as i8, 0);
    let since_epoch =
        datetime.duration_since(jiff::civil::DateTime::constant(1970, 1, 1, 0, 0, 0, 0));
    let seconds = since_epoch.as_secs() + i64::from(second == 60) - offset_minutes * 60;
    let ms = seconds * 1000 + millis;
    if ms < 0 {
        return Err(err("before 1970-01-01T00:00:00Z"));
    }
    let ms = ms as u64;
    if ms > MAX_TIME {
        return Err(err("after year 9999"));
    }
    Ok(ms)
}

/// A JSON timestamp: an RFC 3339 string, a string of digits, or an integer,
/// the last two read as milliseconds since the epoch.
pub fn parse_json_time(v: &serde_json::Value) -> Result<Time, TimeError> {
    match v {
        serde_json::Value::String(s) if !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()) => {
            match s.parse::<u64>() {
                Ok(ms) if ms <= MAX_TIME => Ok(ms),
                _ => Err(TimeError::OutOfRange {
                    value: s.to_string(),
                }),
            }
        }
        serde_json::Value::String(s) => parse_rfc3339(s),
        serde_json::Value::Number(n) => match n.as_u64() {
            Some(ms) if ms <= MAX_TIME => Ok(ms),
            Some(ms) => Err(TimeError::OutOfRange {
                value: ms.to_string(),
            }),
            None => Err(TimeError::NotAnInteger {
                value: n.to_string(),
            }),
        },
        other => Err(TimeError::WrongType {
            found: crate::json_type(other),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_instants() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(
            parse_rfc3339("2025-11-26T07:47:08Z").unwrap(),
            1_764_143_228_000
        );
        assert_eq!(
            parse_rfc3339("2025-11-26T09:47:08.5+02:00").unwrap(),
            1_764_143_228_500
        );
        assert_eq!(
            parse_rfc3339("2025-11-26 07:47:08.1234567z").unwrap(),
            1_764_143_228_123
        );
        assert_eq!(
            parse_rfc3339("2025-11-26T07:47:08").unwrap(),
            1_764_143_228_000
        );
        assert_eq!(
            parse_rfc3339("2000-02-29T00:00:00-00:30").unwrap(),
            951_784_200_000
        );
        assert_eq!(parse_rfc3339("9999-12-31T23:59:59.999Z").unwrap(), MAX_TIME);
        // leap second rolls over
        assert_eq!(
            parse_rfc3339("2016-12-31T23:59:60Z").unwrap(),
            parse_rfc3339("2017-01-01T00:00:00Z").unwrap()
        );
    }

    #[test]
    fn rejects() {
        for bad in [
            "",
            "2025",
            "2025-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "2025-01-01T24:00:00Z",
            "2025-01-01T00:60:00Z",
            "2025-01-01T00:00:61Z",
            "2025-01-01T00:00:00.Z",
            "2025-01-01T00:00:00+25:00",
            "2025-01-01T00:00:00+0100",
            "2025-01-01T00:00:00Zjunk",
            "1969-12-31T23:59:59Z",
            "2025-1-01T00:00:00Z",
            "+2025-01-01T00:00:00Z",
            "2025-01-01X00:00:00Z",
            "２025-01-01T00:00:00Z",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad:?} accepted");
        }
    }

    /// The messages are those of the readers' errors: unchanged by typing.
    #[test]
    fn error_messages() {
        use serde_json::json;
        assert_eq!(
            parse_rfc3339("2025").unwrap_err().to_string(),
            "invalid RFC 3339 timestamp \"2025\": expected '-' at character 5"
        );
        assert_eq!(
            parse_json_time(&json!(-1)).unwrap_err().to_string(),
            "time -1 is not a non-negative integer (milliseconds since the epoch)"
        );
        assert_eq!(
            parse_json_time(&json!(MAX_TIME + 1))
                .unwrap_err()
                .to_string(),
            format!(
                "time {} is out of range (milliseconds since the epoch, at most {MAX_TIME})",
                MAX_TIME + 1
            )
        );
        assert_eq!(
            parse_json_time(&json!(null)).unwrap_err().to_string(),
            "expected an RFC 3339 string or epoch milliseconds, got null"
        );
    }

    #[test]
    fn json_times() {
        use serde_json::json;
        assert_eq!(parse_json_time(&json!(1000)).unwrap(), 1000);
        assert_eq!(parse_json_time(&json!("1000")).unwrap(), 1000);
        assert_eq!(
            parse_json_time(&json!("1970-01-01T00:00:01Z")).unwrap(),
            1000
        );
        assert!(parse_json_time(&json!(-1)).is_err());
        assert!(parse_json_time(&json!(1.5)).is_err());
        assert!(parse_json_time(&json!(MAX_TIME + 1)).is_err());
        assert!(parse_json_time(&json!("99999999999999999999999")).is_err());
        assert!(parse_json_time(&json!(null)).is_err());
        assert!(parse_json_time(&json!([1])).is_err());
    }

    fn is_leap(y: i64) -> bool {
        (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
    }

    fn days_in_month(y: i64, m: i64) -> i64 {
        match m {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            _ if is_leap(y) => 29,
            _ => 28,
        }
    }

    /// Independent reference: count days one by one from 1970.
    fn slow_days(y: i64, m: i64, d: i64) -> i64 {
        let mut days = 0;
        for year in 1970..y {
            days += if is_leap(year) { 366 } else { 365 };
        }
        for month in 1..m {
            days += days_in_month(y, month);
        }
        days + d - 1
    }

    proptest! {
        #[test]
        fn matches_day_counting(y in 1970i64..2400, m in 1i64..=12, d in 1i64..=31,
                                h in 0i64..24, mi in 0i64..60, s in 0i64..60, ms in 0i64..1000) {
            prop_assume!(d <= days_in_month(y, m));
            let text = format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z");
            let expected = ((slow_days(y, m, d) * 86_400 + h * 3600 + mi * 60 + s) * 1000 + ms) as u64;
            prop_assert_eq!(parse_rfc3339(&text).unwrap(), expected);
        }

        #[test]
        fn never_panics(s in ".{0,40}") {
            let _ = parse_rfc3339(&s);
        }

        #[test]
        fn never_panics_near_valid(s in "[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,12})?([Zz]|[+-][0-9]{2}:[0-9]{2})?") {
            let _ = parse_rfc3339(&s);
        }
    }
}
