//! Engine configuration (DESIGN.md §4).

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::Time;

/// How a runtime edge missing from the static graph is treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Strategy {
    /// Accepted at once.
    Union,
    /// Never accepted; reported only.
    Static,
    /// Accepted once its live hits reach `hits` and its distinct sources reach `sources`.
    Quorum { hits: u64, sources: u64 },
}

/// A strategy that is not `union`, `static` or `quorum:H:S`: what was given.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad strategy {0:?}: expected union, static or quorum:H:S")]
pub struct StrategyError(pub String);

impl FromStr for Strategy {
    type Err = StrategyError;
    fn from_str(s: &str) -> Result<Self, StrategyError> {
        match s {
            "union" => Ok(Strategy::Union),
            "static" => Ok(Strategy::Static),
            _ => {
                let bad = || StrategyError(s.to_string());
                let rest = s.strip_prefix("quorum:").ok_or_else(bad)?;
                let (h, src) = rest.split_once(':').ok_or_else(bad)?;
                let hits = h.parse().map_err(|_| bad())?;
                let sources = src.parse().map_err(|_| bad())?;
                Ok(Strategy::Quorum { hits, sources })
            }
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Strategy::Union => f.write_str("union"),
            Strategy::Static => f.write_str("static"),
            Strategy::Quorum { hits, sources } => write!(f, "quorum:{hits}:{sources}"),
        }
    }
}

impl Serialize for Strategy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The configuration of one run; printed into every report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Config {
    /// How long an observation stays live (ms).
    pub ttl: Time,
    /// How far behind the watermark a record may arrive (ms).
    pub lateness: Time,
    pub strategy: Strategy,
    /// How long a target must be covered before it counts as unobserved (ms).
    pub min_coverage: Time,
    /// Symbols that are never accepted as runtime edge ends.
    pub quarantine_symbols: BTreeSet<String>,
    /// Edges `(caller, callee)` that are never accepted.
    pub quarantine_edges: BTreeSet<(String, String)>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            ttl: 10 * 60 * 1000,
            lateness: 0,
            strategy: Strategy::Union,
            min_coverage: 60 * 1000,
            quarantine_symbols: BTreeSet::new(),
            quarantine_edges: BTreeSet::new(),
        }
    }
}

impl Config {
    /// Whether the runtime edge `caller → callee` is quarantined.
    pub fn quarantined(&self, caller: &str, callee: &str) -> bool {
        self.quarantine_symbols.contains(caller)
            || self.quarantine_symbols.contains(callee)
            || self
                .quarantine_edges
                .contains(&(caller.to_string(), callee.to_string()))
    }

    /// Reads a quarantine list: one entry per line, `caller -> callee` for
    /// an edge, a bare symbol otherwise; `#` starts a comment. Errors name
    /// the line.
    pub fn add_quarantine(&mut self, text: &str) -> Result<(), QuarantineError> {
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            match line.split_once("->") {
                Some((caller, callee)) => {
                    let (caller, callee) = (caller.trim(), callee.trim());
                    if caller.is_empty() || callee.is_empty() {
                        return Err(QuarantineError::HalfEdge { line: i + 1 });
                    }
                    self.quarantine_edges
                        .insert((caller.to_string(), callee.to_string()));
                }
                None => {
                    self.quarantine_symbols.insert(line.to_string());
                }
            }
        }
        Ok(())
    }
}

/// A quarantine list that cannot be read, with its 1-based line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuarantineError {
    /// An `->` entry with an empty caller or callee.
    #[error("line {line}: edge needs caller -> callee")]
    HalfEdge { line: usize },
}

/// How every duration option is written, for help texts.
pub const DURATION_HELP: &str = "a whole number and a unit: ms, s, m or h (250ms, 10s, 10m, 2h)";

/// A duration option that is not written as [`DURATION_HELP`] says.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("duration {0:?} needs a unit: ms, s, m or h (250ms, 10s, 10m, 2h)")]
    NoUnit(String),
    #[error("bad duration {0:?}: expected a whole number and ms, s, m or h (250ms, 10s, 10m, 2h)")]
    NotANumber(String),
    #[error("bad duration unit in {0:?}: expected ms, s, m or h")]
    BadUnit(String),
    #[error("duration {0:?} is too large")]
    TooLarge(String),
    #[error("duration {0:?} must be more than zero")]
    Zero(String),
}

/// Parses a duration into milliseconds: a whole number and a unit, `ms`,
/// `s`, `m` or `h` (the unit is required). The one duration syntax of every
/// option of the command and of the scenarios' options.
pub fn parse_duration(s: &str) -> Result<Time, DurationError> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| DurationError::NoUnit(s.to_string()))?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| DurationError::NotANumber(s.to_string()))?;
    let scale = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(DurationError::BadUnit(s.to_string())),
    };
    n.checked_mul(scale)
        .filter(|ms| *ms <= crate::MAX_TIME)
        .ok_or_else(|| DurationError::TooLarge(s.to_string()))
}

/// [`parse_duration`] for options where zero means nothing (a window, an
/// interval): zero is an error.
pub fn parse_nonzero_duration(s: &str) -> Result<Time, DurationError> {
    match parse_duration(s)? {
        0 => Err(DurationError::Zero(s.trim().to_string())),
        ms => Ok(ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10m").unwrap(), 600_000);
        assert_eq!(parse_duration("0s").unwrap(), 0);
        assert_eq!(parse_duration("250ms").unwrap(), 250);
        assert_eq!(parse_duration("2h").unwrap(), 7_200_000);
        assert_eq!(parse_duration(" 3s ").unwrap(), 3000);
        for bad in ["", "10", "m", "10x", "-1s", "1.5s", "99999999999999999999h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_duration("10"),
            Err(DurationError::NoUnit("10".into()))
        );
        assert_eq!(
            parse_duration("10d"),
            Err(DurationError::BadUnit("10d".into()))
        );
        assert_eq!(
            parse_duration(&format!("{}ms", crate::MAX_TIME + 1)),
            Err(DurationError::TooLarge(format!(
                "{}ms",
                crate::MAX_TIME + 1
            )))
        );
        assert_eq!(parse_nonzero_duration("1ms").unwrap(), 1);
        assert_eq!(
            parse_nonzero_duration("0s"),
            Err(DurationError::Zero("0s".into()))
        );
        assert!(parse_nonzero_duration("10").is_err());
    }

    #[test]
    fn strategies() {
        for s in ["union", "static", "quorum:3:2"] {
            assert_eq!(s.parse::<Strategy>().unwrap().to_string(), s);
        }
        for bad in ["quorum", "quorum:1", "quorum:a:b", "majority"] {
            assert!(bad.parse::<Strategy>().is_err(), "{bad}");
        }
    }

    #[test]
    fn quarantine_list() {
        let mut c = Config::default();
        c.add_quarantine("# header\nevil\n a -> b  # edge\n\n")
            .unwrap();
        assert!(c.quarantined("evil", "x"));
        assert!(c.quarantined("x", "evil"));
        assert!(c.quarantined("a", "b"));
        assert!(!c.quarantined("b", "a"));
        let err = c.add_quarantine("ok\n -> b").unwrap_err();
        assert_eq!(err, QuarantineError::HalfEdge { line: 2 });
        assert!(err.to_string().starts_with("line 2"));
    }
}
