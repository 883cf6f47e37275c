//! The report (`tracemerge.report.v1`) and the change feed (DESIGN.md §5).

use serde::{Deserialize, Serialize};

use crate::{Config, Time};

pub const REPORT_SCHEMA: &str = "tracemerge.report.v1";

/// The state of every artifact as of one event time.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub as_of: Time,
    pub config: Config,
    /// `blake3:<hex>` over the canonical bytes of the report without this field.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub digest: String,
    pub stats: Stats,
    pub artifacts: Vec<ArtifactReport>,
}

/// What happened to the input records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Records read, watermarks included.
    pub records: u64,
    /// Records older than watermark − lateness, counted and not applied.
    pub late: u64,
    /// Records rejected as malformed (only with keep-going; otherwise the run stops).
    pub invalid: u64,
    /// Records whose `event_id` was already seen.
    pub duplicate: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ArtifactReport {
    pub artifact: String,
    pub observed_edges: Vec<ObservedEdge>,
    pub reach: Reach,
    pub verdicts: Vec<Verdict>,
    pub conflicts: Vec<Conflict>,
}

/// A deduplicated live observed edge.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObservedEdge {
    pub caller: String,
    pub callee: String,
    pub hits: u64,
    pub first_seen: Time,
    pub last_seen: Time,
    pub sources: u64,
    pub in_static: bool,
    /// Some live sighting of it carried an estimated count (DESIGN.md §3).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub estimated: bool,
}

/// Sizes of the three closures (reachable symbols, entrypoints included).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Reach {
    #[serde(rename = "static")]
    pub static_: u64,
    pub runtime: u64,
    pub effective: u64,
}

/// The 8-state lattice of DESIGN.md §4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Unknown,
    StaticReachable,
    StaticUnreachable,
    RuntimeObserved,
    RuntimeUnobserved,
    ConfirmedReachable,
    ConfirmedUnreachable,
    Contested,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Vex {
    Affected,
    NotAffected,
    UnderInvestigation,
}

impl State {
    pub const ALL: [State; 8] = [
        State::Unknown,
        State::StaticReachable,
        State::StaticUnreachable,
        State::RuntimeObserved,
        State::RuntimeUnobserved,
        State::ConfirmedReachable,
        State::ConfirmedUnreachable,
        State::Contested,
    ];

    /// Joins the static side (`Some(true)` reachable, `Some(false)`
    /// unreachable, `None` no snapshot) with the runtime side (`Some(true)`
    /// observed, `Some(false)` unobserved, `None` no evidence).
    pub fn join(static_side: Option<bool>, runtime_side: Option<bool>) -> State {
        match (static_side, runtime_side) {
            (Some(true), Some(true)) => State::ConfirmedReachable,
            (Some(false), Some(false)) => State::ConfirmedUnreachable,
            (Some(false), Some(true)) => State::Contested,
            (Some(true), Some(false)) => State::StaticReachable,
            (Some(true), None) => State::StaticReachable,
            (Some(false), None) => State::StaticUnreachable,
            (None, Some(true)) => State::RuntimeObserved,
            (None, Some(false)) => State::RuntimeUnobserved,
            (None, None) => State::Unknown,
        }
    }

    pub fn vex(self) -> Vex {
        match self {
            State::ConfirmedReachable | State::StaticReachable | State::RuntimeObserved => {
                Vex::Affected
            }
            State::ConfirmedUnreachable | State::StaticUnreachable => Vex::NotAffected,
            State::Contested | State::RuntimeUnobserved | State::Unknown => Vex::UnderInvestigation,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            State::Unknown => "unknown",
            State::StaticReachable => "static_reachable",
            State::StaticUnreachable => "static_unreachable",
            State::RuntimeObserved => "runtime_observed",
            State::RuntimeUnobserved => "runtime_unobserved",
            State::ConfirmedReachable => "confirmed_reachable",
            State::ConfirmedUnreachable => "confirmed_unreachable",
            State::Contested => "contested",
        }
    }
}

/// Which graph a witness hop comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Hop {
    Static,
    Runtime,
    Both,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Verdict {
    pub target: String,
    pub state: State,
    pub vex: Vex,
    /// Shortest effective path from an entrypoint; absent when unreachable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hops: Option<Vec<Hop>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resolution {
    Accepted,
    Rejected,
    Pending,
    Quarantined,
}

/// A place where runtime evidence contradicts static analysis.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Conflict {
    /// Both ends are snapshot nodes; the edge is not a snapshot edge.
    /// `hits` and `sources` are the live evidence the strategy weighed.
    RuntimeEdgeNotInStatic {
        caller: String,
        callee: String,
        resolution: Resolution,
        hits: u64,
        sources: u64,
    },
    /// An executed snapshot node outside reach_static.
    ExecutedButStaticallyUnreachable { symbol: String },
    /// An observation names a symbol absent from the snapshot.
    UnknownSymbol { symbol: String },
    /// Live observations for an artifact without a snapshot.
    NoStaticSnapshot {},
    /// A static_reachable target, covered for at least min_coverage, never run.
    ReachableButUnobserved { symbol: String },
}

impl Conflict {
    pub fn kind(&self) -> &'static str {
        match self {
            Conflict::RuntimeEdgeNotInStatic { .. } => "runtime_edge_not_in_static",
            Conflict::ExecutedButStaticallyUnreachable { .. } => {
                "executed_but_statically_unreachable"
            }
            Conflict::UnknownSymbol { .. } => "unknown_symbol",
            Conflict::NoStaticSnapshot {} => "no_static_snapshot",
            Conflict::ReachableButUnobserved { .. } => "reachable_but_unobserved",
        }
    }

    pub const KINDS: [&'static str; 5] = [
        "runtime_edge_not_in_static",
        "executed_but_statically_unreachable",
        "unknown_symbol",
        "no_static_snapshot",
        "reachable_but_unobserved",
    ];
}

/// One line of the change feed: `{at, diff, kind, artifact, ...}`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChangeItem {
    /// A live observed edge (its aggregate changes as hits arrive and expire).
    Edge {
        artifact: String,
        edge: ObservedEdge,
    },
    Verdict {
        artifact: String,
        verdict: Verdict,
    },
    Conflict {
        artifact: String,
        conflict: Conflict,
    },
    Reach {
        artifact: String,
        reach: Reach,
    },
}

/// A change of the output at event time `at`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Change {
    pub at: Time,
    pub diff: i64,
    #[serde(flatten)]
    pub item: ChangeItem,
}

impl Report {
    /// An empty report; fill `artifacts`, then call [`Report::seal`].
    pub fn new(as_of: Time, config: Config, stats: Stats) -> Self {
        Report {
            schema: REPORT_SCHEMA,
            as_of,
            config,
            digest: String::new(),
            stats,
            artifacts: Vec::new(),
        }
    }

    /// Sorts every array into canonical order and sets the digest.
    pub fn seal(mut self) -> Self {
        self.artifacts.sort_by(|a, b| a.artifact.cmp(&b.artifact));
        // Unstable sorts (no scratch buffer of half the list): both orders
        // are total over every field, so equal items are identical.
        for a in &mut self.artifacts {
            a.observed_edges.sort_unstable();
            a.verdicts.sort();
            a.conflicts
                .sort_unstable_by(|x, y| canonical_conflict_key(x).cmp(&canonical_conflict_key(y)));
        }
        self.digest = self.compute_digest();
        self
    }

    /// `blake3:<hex>` over the canonical bytes of the report without its
    /// digest field, hashed as they are written (never held whole).
    fn compute_digest(&self) -> String {
        use std::io::Write;
        let mut hasher = blake3::Hasher::new();
        let mut out = std::io::BufWriter::with_capacity(1 << 16, &mut hasher);
        let canonical = Canonical {
            report: self,
            digest: false,
        };
        serde_json::to_writer(&mut out, &canonical).expect("reports always serialize");
        out.flush().expect("hashing never fails");
        drop(out);
        format!("blake3:{}", hasher.finalize().to_hex())
    }

    /// Canonical JSON: sorted keys, arrays in the order `seal` gives, integer times.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&Canonical {
            report: self,
            digest: true,
        })
        .expect("reports always serialize")
    }

    /// Canonical JSON, pretty-printed (same keys and order) for people.
    pub fn to_pretty_json(&self) -> String {
        serde_json::to_string_pretty(&Canonical {
            report: self,
            digest: true,
        })
        .expect("reports always serialize")
    }

    /// Recomputes the digest and compares.
    pub fn digest_is_valid(&self) -> bool {
        self.digest == self.compute_digest()
    }
}

/// A report serialized with every object's keys sorted: the bytes of
/// `serde_json::to_value` followed by writing the value (serde_json's `Map`
/// is a `BTreeMap`, no `preserve_order`), without building the value of
/// the whole report. Only the small parts become values: the report and
/// each artifact without their arrays, and each array element on its own;
/// the arrays are written element by element. (A value of the whole
/// report took about a kilobyte per observed edge, on top of the report.)
struct Canonical<'a> {
    report: &'a Report,
    /// Whether the digest field is written (when not empty).
    digest: bool,
}

impl Serialize for Canonical<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let r = self.report;
        let shell = Report {
            schema: r.schema,
            as_of: r.as_of,
            config: r.config.clone(),
            digest: if self.digest {
                r.digest.clone()
            } else {
                String::new()
            },
            stats: r.stats,
            artifacts: Vec::new(),
        };
        sorted_object(&shell, &["artifacts"], serializer, |key, out| {
            let artifacts = r.artifacts.iter().map(CanonicalArtifact);
            out.serialize_entry(key, &Seq(std::cell::Cell::new(Some(artifacts))))
        })
    }
}

/// One artifact of a [`Canonical`] report.
struct CanonicalArtifact<'a>(&'a ArtifactReport);

impl Serialize for CanonicalArtifact<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let a = self.0;
        let shell = ArtifactReport {
            artifact: a.artifact.clone(),
            observed_edges: Vec::new(),
            reach: a.reach,
            verdicts: Vec::new(),
            conflicts: Vec::new(),
        };
        let keys = ["observed_edges", "verdicts", "conflicts"];
        sorted_object(&shell, &keys, serializer, |key, out| match key {
            "observed_edges" => out.serialize_entry(key, &values(&a.observed_edges)),
            "verdicts" => out.serialize_entry(key, &values(&a.verdicts)),
            _ => out.serialize_entry(key, &values(&a.conflicts)),
        })
    }
}

/// Writes `shell` as its value would be written (keys sorted), except the
/// fields named in `keys` (arrays left empty in `shell`), which `part`
/// writes.
fn sorted_object<T: Serialize, S: serde::Serializer>(
    shell: &T,
    keys: &[&str],
    serializer: S,
    mut part: impl FnMut(&str, &mut S::SerializeMap) -> Result<(), S::Error>,
) -> Result<S::Ok, S::Error> {
    use serde::ser::{Error, SerializeMap};
    let value = serde_json::to_value(shell).map_err(S::Error::custom)?;
    let serde_json::Value::Object(mut map) = value else {
        return Err(S::Error::custom("not an object"));
    };
    for key in keys {
        map.entry(key.to_string())
            .or_insert(serde_json::Value::Null);
    }
    let mut out = serializer.serialize_map(Some(map.len()))?;
    for (key, value) in &map {
        if keys.contains(&key.as_str()) {
            part(key, &mut out)?;
        } else {
            out.serialize_entry(key, value)?;
        }
    }
    out.end()
}

/// The elements of `items`, each written as its value (keys sorted).
fn values<T: Serialize>(items: &[T]) -> impl Serialize + '_ {
    Seq(std::cell::Cell::new(Some(items.iter().map(AsValue))))
}

/// An array written element by element from an iterator (once).
struct Seq<I>(std::cell::Cell<Option<I>>);

impl<I> Serialize for Seq<I>
where
    I: ExactSizeIterator,
    I::Item: Serialize,
{
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error;
        let items = (self.0.take()).ok_or_else(|| S::Error::custom("written twice"))?;
        serializer.collect_seq(items)
    }
}

/// One element, written as `serde_json::to_value` of it.
struct AsValue<'a, T>(&'a T);

impl<T: Serialize> Serialize for AsValue<'_, T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error;
        (serde_json::to_value(self.0).map_err(S::Error::custom)?).serialize(serializer)
    }
}

/// Conflicts sort by kind name, then by subject, so the order reads well.
fn canonical_conflict_key(c: &Conflict) -> (&'static str, &Conflict) {
    (c.kind(), c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lattice_join_covers_eight_states() {
        let sides = [None, Some(true), Some(false)];
        let mut seen = std::collections::BTreeSet::new();
        for s in sides {
            for r in sides {
                seen.insert(State::join(s, r));
            }
        }
        assert_eq!(seen.len(), 8);
        assert_eq!(State::join(Some(true), Some(false)), State::StaticReachable);
        assert_eq!(State::Contested.vex(), Vex::UnderInvestigation);
        for s in State::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.name());
        }
    }

    #[test]
    fn digest_ignores_its_own_field_and_sees_everything_else() {
        let mut r = Report::new(5, Config::default(), Stats::default());
        r.artifacts.push(ArtifactReport {
            artifact: "a".into(),
            conflicts: vec![Conflict::NoStaticSnapshot {}],
            ..Default::default()
        });
        let sealed = r.clone().seal();
        assert!(sealed.digest.starts_with("blake3:"));
        assert!(sealed.digest_is_valid());
        r.as_of = 6;
        assert_ne!(r.seal().digest, sealed.digest);
        let text = String::from_utf8(sealed.canonical_bytes()).unwrap();
        assert!(text.contains(r#"{"kind":"no_static_snapshot"}"#), "{text}");
        assert!(text.starts_with(r#"{"artifacts":"#), "{text}");
    }

    /// The streamed canonical form is byte for byte what writing the value
    /// of the whole report gives, compact and pretty, with and without a
    /// digest, for every kind of array element and empty arrays.
    #[test]
    fn streamed_canonical_form_equals_the_whole_value() {
        let edge = |caller: &str, estimated| ObservedEdge {
            caller: caller.into(),
            callee: "b\"\u{e9}".into(),
            hits: 3,
            first_seen: 1,
            last_seen: 9,
            sources: 2,
            in_static: true,
            estimated,
        };
        let mut r = Report::new(5, Config::default(), Stats::default());
        r.stats.records = 17;
        r.artifacts.push(ArtifactReport {
            artifact: "z".into(),
            ..Default::default()
        });
        r.artifacts.push(ArtifactReport {
            artifact: "a".into(),
            observed_edges: vec![edge("main", false), edge("x", true)],
            reach: Reach {
                static_: 1,
                runtime: 2,
                effective: 3,
            },
            verdicts: vec![
                Verdict {
                    target: "b".into(),
                    state: State::ConfirmedReachable,
                    vex: Vex::Affected,
                    path: Some(vec!["main".into(), "b".into()]),
                    hops: Some(vec![Hop::Both]),
                },
                Verdict {
                    target: "c".into(),
                    state: State::Unknown,
                    vex: State::Unknown.vex(),
                    path: None,
                    hops: None,
                },
            ],
            conflicts: vec![
                Conflict::NoStaticSnapshot {},
                Conflict::RuntimeEdgeNotInStatic {
                    caller: "x".into(),
                    callee: "y".into(),
                    resolution: Resolution::Accepted,
                    hits: 4,
                    sources: 1,
                },
            ],
        });
        let whole = |r: &Report| serde_json::to_value(r).unwrap();
        for r in [Report::new(0, Config::default(), Stats::default()), r] {
            let sealed = r.clone().seal();
            let unsigned = Report {
                digest: String::new(),
                ..sealed.clone()
            };
            let bytes = serde_json::to_vec(&whole(&unsigned)).unwrap();
            assert_eq!(
                sealed.digest,
                format!("blake3:{}", blake3::hash(&bytes).to_hex())
            );
            assert!(sealed.digest_is_valid());
            for r in [&r, &sealed] {
                assert_eq!(r.canonical_bytes(), serde_json::to_vec(&whole(r)).unwrap());
                assert_eq!(
                    r.to_pretty_json(),
                    serde_json::to_string_pretty(&whole(r)).unwrap()
                );
            }
        }
    }
}
