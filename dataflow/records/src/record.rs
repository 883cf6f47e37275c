//! Records of the input stream (`tracemerge.stream.v1`, DESIGN.md §3).

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Event time: milliseconds since the Unix epoch.
pub type Time = u64;

/// The largest accepted event time (year 9999). Keeps `at + ttl` far from
/// overflow and rejects nonsense such as nanosecond timestamps.
pub const MAX_TIME: Time = 253_402_300_799_999;

/// A line or record that the stream contract (DESIGN.md §3) rejects.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Not JSON, or JSON that is not a record: serde's message, and the
    /// 1-based line and column in the JSON text (0 when it has none).
    #[error("{}", json_message(what, *line, *column))]
    Json {
        what: String,
        line: usize,
        column: usize,
    },
    /// A graph lists node `node` twice, the second time at `nodes[index]`.
    #[error("nodes[{index}]: duplicate node {node:?}")]
    DuplicateNode { index: usize, node: String },
    /// The `end` (`caller` or `callee`) of `edges[index]` is not a node.
    #[error("edges[{index}]: {end} {symbol:?} is not a node")]
    EdgeEndNotANode {
        index: usize,
        end: &'static str,
        symbol: String,
    },
    /// `entrypoints[index]` is not a node.
    #[error("entrypoints[{index}]: {symbol:?} is not a node")]
    EntrypointNotANode { index: usize, symbol: String },
    /// A coverage statement ends before it starts.
    #[error("coverage interval is reversed: from {from} > to {to}")]
    ReversedCoverage { from: Time, to: Time },
}

/// serde_json's own wording: `what at line L column C`.
fn json_message(what: &str, line: usize, column: usize) -> String {
    if line == 0 {
        what.to_string()
    } else {
        format!("{what} at line {line} column {column}")
    }
}

impl From<serde_json::Error> for RecordError {
    fn from(e: serde_json::Error) -> RecordError {
        let (line, column) = (e.line(), e.column());
        let full = e.to_string();
        let what = match full.strip_suffix(&format!(" at line {line} column {column}")) {
            Some(what) if line > 0 => what.to_string(),
            _ => full,
        };
        RecordError::Json { what, line, column }
    }
}

/// One record of the stream. The JSON form carries the variant in `type`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Record {
    Graph(GraphSnapshot),
    Targets(Targets),
    Edge(EdgeObservation),
    Hit(HitObservation),
    Coverage(Coverage),
    Watermark {
        #[serde(deserialize_with = "de_time")]
        at: Time,
    },
}

/// A static call-graph snapshot of one artifact; replaces the earlier one
/// from `at` on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GraphSnapshot {
    pub artifact: String,
    #[serde(deserialize_with = "de_time")]
    pub at: Time,
    pub nodes: Vec<String>,
    pub edges: Vec<StaticEdge>,
    #[serde(default)]
    pub entrypoints: Vec<String>,
    /// Callers with indirect call sites (calls through function pointers,
    /// virtual or interface calls) and how many, where the analyser marks
    /// them (gcc's `__indirect_call`, LLVM's external node, Go's dynamic
    /// calls). Metadata for `tracemerge eval`; the engine ignores it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub indirect_calls: BTreeMap<String, u64>,
    /// The source file, module or package of a node, where the analyser
    /// says. Metadata for `tracemerge eval`; the engine ignores it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub modules: BTreeMap<String, String>,
}

/// A static edge. Written as `["caller","callee"]` when it carries nothing
/// else, as an object otherwise; both forms are read.
#[derive(Clone, Debug, PartialEq)]
pub struct StaticEdge {
    pub caller: String,
    pub callee: String,
    pub kind: Option<EdgeKind>,
    pub reason: Option<String>,
    pub weight: Option<f64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EdgeKind {
    Static,
    Heuristic,
}

/// The functions of interest of one artifact; replaces the earlier set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Targets {
    pub artifact: String,
    #[serde(deserialize_with = "de_time")]
    pub at: Time,
    pub symbols: Vec<String>,
}

/// A runtime observation of `caller → callee`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EdgeObservation {
    pub artifact: String,
    pub caller: String,
    pub callee: String,
    #[serde(deserialize_with = "de_time")]
    pub at: Time,
    #[serde(default = "one", deserialize_with = "de_hits")]
    pub hits: u64,
    #[serde(default)]
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// `hits` is not an exact count (sampling, or a probe that stopped
    /// counting a hot function for a while).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub estimated: bool,
}

/// A function ran; its caller is unknown.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HitObservation {
    pub artifact: String,
    pub symbol: String,
    #[serde(deserialize_with = "de_time")]
    pub at: Time,
    #[serde(default = "one", deserialize_with = "de_hits")]
    pub hits: u64,
    #[serde(default)]
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// `hits` is not an exact count (sampling, or a probe that stopped
    /// counting a hot function for a while).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub estimated: bool,
}

/// An exact probe watched `symbols` during `[from, to)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Coverage {
    pub artifact: String,
    pub symbols: Vec<String>,
    #[serde(deserialize_with = "de_time")]
    pub from: Time,
    #[serde(deserialize_with = "de_time")]
    pub to: Time,
    #[serde(default)]
    pub source: String,
    /// Events the probe lost in this window. A window with losses proves
    /// nothing about absence, so its record lists no symbols.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost: Option<u64>,
}

/// Total length of the union of half-open intervals `[from, to)`, in any
/// order; empty and reversed intervals count nothing. How long coverage
/// watched a symbol (SEMANTICS.md: `min_coverage`).
pub fn union_length(mut intervals: Vec<(Time, Time)>) -> Time {
    intervals.retain(|(from, to)| from < to);
    intervals.sort_unstable();
    let mut total = 0;
    let mut current: Option<(Time, Time)> = None;
    for (from, to) in intervals {
        match current {
            Some((start, end)) if from <= end => current = Some((start, end.max(to))),
            Some((start, end)) => {
                total += end - start;
                current = Some((from, to));
            }
            None => current = Some((from, to)),
        }
    }
    total + current.map_or(0, |(start, end)| end - start)
}

impl Record {
    /// The event time that orders this record: `at`, or `to` for coverage
    /// (a coverage statement is complete only at its end).
    pub fn time(&self) -> Time {
        match self {
            Record::Graph(g) => g.at,
            Record::Targets(t) => t.at,
            Record::Edge(e) => e.at,
            Record::Hit(h) => h.at,
            Record::Coverage(c) => c.to,
            Record::Watermark { at } => *at,
        }
    }

    /// Checks what serde cannot: edge endpoints and entrypoints are nodes,
    /// node ids are unique, coverage intervals are ordered.
    pub fn validate(&self) -> Result<(), RecordError> {
        match self {
            Record::Graph(g) => g.validate(),
            Record::Coverage(c) if c.from > c.to => Err(RecordError::ReversedCoverage {
                from: c.from,
                to: c.to,
            }),
            _ => Ok(()),
        }
    }

    /// Parses one NDJSON line and validates it.
    pub fn from_json(line: &str) -> Result<Record, RecordError> {
        // Most lines of a stream are edges: read those straight into their
        // struct, without serde's buffering of an internally tagged enum
        // (about twice as fast). Anything else, or any error, takes the
        // general path, which also gives the error messages.
        let record = match EdgeLine::parse(line) {
            Some(e) => Record::Edge(EdgeObservation {
                artifact: e.artifact.into_owned(),
                caller: e.caller.into_owned(),
                callee: e.callee.into_owned(),
                at: e.at,
                hits: e.hits,
                source: e.source.into_owned(),
                event_id: e.event_id,
                estimated: e.estimated,
            }),
            None => return Record::from_json_general(line),
        };
        record.validate()?;
        Ok(record)
    }

    /// [`Record::from_json`] without the `edge` fast path, for a line
    /// already found not to be a valid `edge` line.
    pub(crate) fn from_json_general(line: &str) -> Result<Record, RecordError> {
        // A record's type read first, then the record straight into its
        // struct: serde's internally tagged enum would first copy the whole
        // line into a tree of its own (a large snapshot's parse took twice
        // the time and several times the memory). An error of either step
        // takes serde's way, which words the error.
        let record = match Record::from_json_by_type(line) {
            Some(record) => record,
            None => serde_json::from_str(line)?,
        };
        record.validate()?;
        Ok(record)
    }

    /// The record of `line` read in two passes, its `type` and then its
    /// variant's struct (which ignores `type` as an unknown field); `None`
    /// on any error.
    fn from_json_by_type(line: &str) -> Option<Record> {
        #[derive(Deserialize)]
        #[serde(rename_all = "lowercase")]
        enum Type {
            Graph,
            Targets,
            Edge,
            Hit,
            Coverage,
            Watermark,
        }
        #[derive(Deserialize)]
        struct Tagged {
            r#type: Type,
        }
        #[derive(Deserialize)]
        struct Watermark {
            #[serde(deserialize_with = "de_time")]
            at: Time,
        }
        fn read<'a, T: Deserialize<'a>>(line: &'a str) -> Option<T> {
            serde_json::from_str(line).ok()
        }
        Some(match read::<Tagged>(line)?.r#type {
            Type::Graph => Record::Graph(read(line)?),
            Type::Targets => Record::Targets(read(line)?),
            Type::Edge => Record::Edge(read(line)?),
            Type::Hit => Record::Hit(read(line)?),
            Type::Coverage => Record::Coverage(read(line)?),
            Type::Watermark => Record::Watermark {
                at: read::<Watermark>(line)?.at,
            },
        })
    }

    /// The NDJSON form of this record (no trailing newline).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("records always serialize")
    }
}

impl GraphSnapshot {
    fn validate(&self) -> Result<(), RecordError> {
        // Fx, as the interner hashes the same names: SipHash was a tenth
        // of a large snapshot's parse.
        let mut nodes = rustc_hash::FxHashSet::default();
        nodes.reserve(self.nodes.len());
        for (i, node) in self.nodes.iter().enumerate() {
            if !nodes.insert(node.as_str()) {
                return Err(RecordError::DuplicateNode {
                    index: i,
                    node: node.clone(),
                });
            }
        }
        for (i, edge) in self.edges.iter().enumerate() {
            for (end, symbol) in [("caller", &edge.caller), ("callee", &edge.callee)] {
                if !nodes.contains(symbol.as_str()) {
                    return Err(RecordError::EdgeEndNotANode {
                        index: i,
                        end,
                        symbol: symbol.clone(),
                    });
                }
            }
        }
        for (i, entry) in self.entrypoints.iter().enumerate() {
            if !nodes.contains(entry.as_str()) {
                return Err(RecordError::EntrypointNotANode {
                    index: i,
                    symbol: entry.clone(),
                });
            }
        }
        Ok(())
    }
}

/// An `edge` line, read directly (see [`Record::from_json`]): the fields
/// of [`EdgeObservation`] with the same rules, and the tag. Names are
/// borrowed from the line unless they hold escapes.
#[derive(Deserialize)]
pub(crate) struct EdgeLine<'a> {
    #[serde(rename = "type")]
    _type: EdgeTag,
    #[serde(borrow)]
    pub artifact: Cow<'a, str>,
    #[serde(borrow)]
    pub caller: Cow<'a, str>,
    #[serde(borrow)]
    pub callee: Cow<'a, str>,
    #[serde(deserialize_with = "de_time")]
    pub at: Time,
    #[serde(default = "one", deserialize_with = "de_hits")]
    pub hits: u64,
    #[serde(default, borrow)]
    pub source: Cow<'a, str>,
    #[serde(default)]
    pub event_id: Option<String>,
    #[serde(default)]
    pub estimated: bool,
}

impl<'a> EdgeLine<'a> {
    /// `line` as an `edge` record; `None` if it is anything else or not
    /// valid, which the general path then says why.
    pub(crate) fn parse(line: &'a str) -> Option<Self> {
        serde_json::from_str(line).ok()
    }
}

#[derive(Deserialize)]
enum EdgeTag {
    #[serde(rename = "edge")]
    Edge,
}

fn one() -> u64 {
    1
}

fn de_time<'de, D: Deserializer<'de>>(d: D) -> Result<Time, D::Error> {
    let t = u64::deserialize(d)?;
    if t > MAX_TIME {
        return Err(serde::de::Error::custom(format!(
            "time {t} is out of range (milliseconds since the epoch, at most {MAX_TIME})"
        )));
    }
    Ok(t)
}

fn de_hits<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let hits = u64::deserialize(d)?;
    if hits == 0 || hits > i64::MAX as u64 {
        return Err(serde::de::Error::custom(format!(
            "hits must be between 1 and {}, got {hits}",
            i64::MAX
        )));
    }
    Ok(hits)
}

/// What a malformed static edge is told.
const EDGE_FORMS: &str = "an edge is [\"caller\",\"callee\"] or {\"caller\":…,\"callee\":…}";

/// Reads either form of a static edge as it comes: an untagged enum would
/// copy each edge into serde's buffer first, a million times in a large
/// snapshot.
struct StaticEdgeVisitor;

impl<'de> Visitor<'de> for StaticEdgeVisitor {
    type Value = StaticEdge;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(EDGE_FORMS)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StaticEdge, A::Error> {
        let form = || de::Error::custom(EDGE_FORMS);
        let caller: String = seq.next_element()?.ok_or_else(form)?;
        let callee: String = seq.next_element()?.ok_or_else(form)?;
        if seq.next_element::<de::IgnoredAny>()?.is_some() {
            return Err(form());
        }
        Ok(StaticEdge::new(caller, callee))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StaticEdge, A::Error> {
        #[derive(Deserialize)]
        #[serde(field_identifier, rename_all = "lowercase")]
        enum Field {
            Caller,
            Callee,
            Kind,
            Reason,
            Weight,
            #[serde(other)]
            Other,
        }
        /// Sets `slot` from the map's next value, once.
        fn once<'de, A: MapAccess<'de>, T: Deserialize<'de>>(
            map: &mut A,
            slot: &mut Option<T>,
            name: &'static str,
        ) -> Result<(), A::Error> {
            if slot.is_some() {
                return Err(de::Error::duplicate_field(name));
            }
            *slot = Some(map.next_value()?);
            Ok(())
        }
        let (mut caller, mut callee) = (None, None);
        let (mut kind, mut reason, mut weight) = (None, None, None);
        while let Some(field) = map.next_key()? {
            match field {
                Field::Caller => once(&mut map, &mut caller, "caller")?,
                Field::Callee => once(&mut map, &mut callee, "callee")?,
                Field::Kind => once(&mut map, &mut kind, "kind")?,
                Field::Reason => once(&mut map, &mut reason, "reason")?,
                Field::Weight => once(&mut map, &mut weight, "weight")?,
                Field::Other => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        let (Some(caller), Some(callee)) = (caller, callee) else {
            return Err(de::Error::custom(EDGE_FORMS));
        };
        Ok(StaticEdge {
            caller,
            callee,
            kind: kind.flatten(),
            reason: reason.flatten(),
            weight: weight.flatten(),
        })
    }
}

impl<'de> Deserialize<'de> for StaticEdge {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StaticEdgeVisitor)
    }
}

impl Serialize for StaticEdge {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        if self.kind.is_none() && self.reason.is_none() && self.weight.is_none() {
            return (&self.caller, &self.callee).serialize(s);
        }
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("caller", &self.caller)?;
        map.serialize_entry("callee", &self.callee)?;
        if let Some(kind) = &self.kind {
            map.serialize_entry("kind", kind)?;
        }
        if let Some(reason) = &self.reason {
            map.serialize_entry("reason", reason)?;
        }
        if let Some(weight) = &self.weight {
            map.serialize_entry("weight", weight)?;
        }
        map.end()
    }
}

impl StaticEdge {
    pub fn new(caller: impl Into<String>, callee: impl Into<String>) -> Self {
        StaticEdge {
            caller: caller.into(),
            callee: callee.into(),
            kind: None,
            reason: None,
            weight: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn union_of_intervals() {
        assert_eq!(union_length(vec![]), 0);
        assert_eq!(union_length(vec![(0, 10), (5, 20), (30, 31)]), 21);
        assert_eq!(union_length(vec![(0, 10), (10, 20)]), 20);
        assert_eq!(union_length(vec![(0, 100), (10, 20)]), 100);
        assert_eq!(union_length(vec![(5, 5)]), 0);
        assert_eq!(union_length(vec![(3, 4), (0, 10)]), 10);
        assert_eq!(
            union_length(vec![(0, 10), (5, 15), (20, 25), (25, 30), (7, 7)]),
            25
        );
        assert_eq!(union_length(vec![(9, 3), (0, 2)]), 2);
    }

    #[test]
    fn design_examples_parse_and_round_trip() {
        let lines = [
            r#"{"type":"graph","artifact":"shop@1.4","at":0,"nodes":["main","a","b"],"edges":[["main","a"],["a","b"]],"entrypoints":["main"]}"#,
            r#"{"type":"targets","artifact":"shop@1.4","at":0,"symbols":["b","vuln_fn"]}"#,
            r#"{"type":"edge","artifact":"shop@1.4","caller":"main","callee":"a","at":1000,"hits":3,"source":"ebpf:host-1"}"#,
            r#"{"type":"edge","artifact":"shop@1.4","caller":"main","callee":"a","at":1000,"hits":300,"source":"ebpf:host-1","estimated":true}"#,
            r#"{"type":"hit","artifact":"shop@1.4","symbol":"a","at":1000,"hits":9,"estimated":true}"#,
            r#"{"type":"hit","artifact":"shop@1.4","symbol":"a","at":1000,"hits":1,"source":"etw:host-2"}"#,
            r#"{"type":"coverage","artifact":"shop@1.4","symbols":["a","b"],"from":0,"to":5000,"source":"ebpf:host-1"}"#,
            r#"{"type":"watermark","at":10000}"#,
        ];
        for line in lines {
            let record = Record::from_json(line).unwrap();
            assert_eq!(Record::from_json(&record.to_json()).unwrap(), record);
            // `estimated` is read, and written only when true.
            let estimated = line.contains(r#""estimated":true"#);
            assert_eq!(record.to_json().contains("estimated"), estimated, "{line}");
            if let Record::Edge(e) = &record {
                assert_eq!(e.estimated, estimated);
            }
        }
    }

    #[test]
    fn edge_lines_read_directly_equal_the_general_reading() {
        let general = |line: &str| {
            serde_json::from_str::<Record>(line)
                .map_err(RecordError::from)
                .and_then(|r| r.validate().map(|()| r))
        };
        for line in [
            r#"{"type":"edge","artifact":"x","caller":"a","callee":"b","at":5}"#,
            r#"{"caller":"a","x":{"y":[1]},"type":"edge","artifact":"x","callee":"b","at":5,"hits":3,"source":"s","event_id":"e"}"#,
            r#"{"type":"edge","artifact":"x","caller":"a","callee":"b","at":5,"event_id":null}"#,
            r#"{"type":"edge","type":"edge","artifact":"x","caller":"a","callee":"b","at":5}"#,
            r#"{"type":"edge","artifact":"x","caller":"a","caller":"c","callee":"b","at":5}"#,
            r#"{"type":"edge","artifact":"x","caller":"a","callee":"b","at":5.0}"#,
            r#"{"type":"edge","artifact":"x","caller":"a","callee":"b","at":5,"hits":0}"#,
            r#"{"type":"edge","artifact":"x","caller":"a","callee":"b"}"#,
            r#"{"type":"Edge","artifact":"x","caller":"a","callee":"b","at":5}"#,
            r#"{"type":"hit","artifact":"x","symbol":"a","at":5}"#,
            r#"{"type":"watermark","at":7}"#,
        ] {
            let fast = Record::from_json(line);
            assert_eq!(fast.is_ok(), general(line).is_ok(), "{line}");
            if let (Ok(fast), Ok(general)) = (&fast, general(line)) {
                assert_eq!(*fast, general, "{line}");
            }
        }
    }

    #[test]
    fn defaults_and_unknown_fields() {
        let r = Record::from_json(
            r#"{"type":"edge","artifact":"x","caller":"a","callee":"b","at":5,"extra":[1]}"#,
        )
        .unwrap();
        match r {
            Record::Edge(e) => {
                assert_eq!(e.hits, 1);
                assert_eq!(e.source, "");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rejects_what_it_must() {
        let bad = [
            (r#"{"type":"nope","at":1}"#, "unknown variant"),
            (r#"{"type":"watermark","at":-1}"#, "invalid value"),
            (r#"{"type":"watermark","at":"1"}"#, "invalid type"),
            (r#"{"type":"watermark"}"#, "missing field `at`"),
            (r#"{"type":"watermark","at":1e300}"#, "invalid type"),
            (
                r#"{"type":"watermark","at":99999999999999999999}"#,
                "expected u64",
            ),
            (
                r#"{"type":"watermark","at":253402300800000}"#,
                "out of range",
            ),
            (
                r#"{"type":"edge","artifact":"x","caller":"a","callee":"b","at":5,"hits":0}"#,
                "hits must be",
            ),
            (
                r#"{"type":"graph","artifact":"x","at":0,"nodes":["a"],"edges":[["a","b"]]}"#,
                "edges[0]: callee \"b\" is not a node",
            ),
            (
                r#"{"type":"graph","artifact":"x","at":0,"nodes":["a","a"],"edges":[]}"#,
                "duplicate node",
            ),
            (
                r#"{"type":"graph","artifact":"x","at":0,"nodes":["a"],"edges":[],"entrypoints":["m"]}"#,
                "entrypoints[0]",
            ),
            (
                r#"{"type":"coverage","artifact":"x","symbols":[],"from":5,"to":4}"#,
                "reversed",
            ),
            (
                r#"{"type":"graph","artifact":"x","at":0,"nodes":["a"],"edges":[["a"]]}"#,
                "an edge is",
            ),
            ("", "EOF"),
            ("[1,2]", "invalid type"),
        ];
        for (line, needle) in bad {
            let err = Record::from_json(line).unwrap_err().to_string();
            assert!(err.contains(needle), "{line}: {err}");
        }
    }

    #[test]
    fn json_errors_keep_serde_wording_and_position() {
        for line in ["", "[1,2]", r#"{"type":"nope","at":1}"#, "{\n\"at\":x}"] {
            let serde = serde_json::from_str::<Record>(line).unwrap_err();
            let ours = Record::from_json(line).unwrap_err();
            assert_eq!(ours.to_string(), serde.to_string(), "{line:?}");
            let RecordError::Json {
                line: l, column, ..
            } = ours
            else {
                panic!("{line:?}: {ours:?}")
            };
            assert_eq!((l, column), (serde.line(), serde.column()), "{line:?}");
        }
    }

    #[test]
    fn edge_attributes_round_trip() {
        let line = r#"{"type":"graph","artifact":"x","at":0,"nodes":["a","b"],"edges":[{"caller":"a","callee":"b","kind":"heuristic","reason":"vtable","weight":0.5}]}"#;
        let record = Record::from_json(line).unwrap();
        let Record::Graph(g) = &record else { panic!() };
        assert_eq!(g.edges[0].kind, Some(EdgeKind::Heuristic));
        assert_eq!(Record::from_json(&record.to_json()).unwrap(), record);
    }
}
