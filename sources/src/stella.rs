//! Stella Ops inputs: `stella.callgraph.v1` documents and runtime facts
//! (NDJSON of `RuntimeFactEvent`, or the `{subject, callgraphId, events[]}`
//! document). The mapping is documented on the crate.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, Read};

use serde_json::{Map, Value};
use tracemerge_records::{
    EdgeKind, EdgeObservation, GraphSnapshot, HitObservation, Record, StaticEdge,
};

use crate::lines::{Line, LineReader};
use crate::time::parse_json_time;
use crate::{clean_json_message, json_type, Item, Location, Options, SourceError};

pub(crate) const CALLGRAPH_SCHEMA: &str = "stella.callgraph.v1";

/// Source of `edge` records made from runtime-kind callgraph edges.
pub(crate) const CALLGRAPH_SOURCE: &str = "stella:callgraph";

/// Largest JSON document read (documents are parsed whole, unlike NDJSON).
pub(crate) const MAX_DOCUMENT: usize = 4 << 30;

/// Pending distinct sums before runtime facts are flushed.
const MAX_PENDING: usize = 65_536;

/// An error at a JSON path.
#[derive(Debug)]
struct PathError {
    path: String,
    message: String,
}

type PResult<T> = Result<T, PathError>;

fn at(path: impl Into<String>, message: impl Into<String>) -> PathError {
    PathError {
        path: path.into(),
        message: message.into(),
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// A present, non-null field, under the first of `names` that is there.
fn field<'a>(
    o: &'a Map<String, Value>,
    names: &[&'static str],
) -> Option<(&'static str, &'a Value)> {
    names
        .iter()
        .find_map(|n| o.get(*n).filter(|v| !v.is_null()).map(|v| (*n, v)))
}

fn as_object<'a>(v: &'a Value, path: &str) -> PResult<&'a Map<String, Value>> {
    v.as_object().ok_or_else(|| {
        at(
            if path.is_empty() { "$" } else { path },
            format!("expected an object, got {}", json_type(v)),
        )
    })
}

fn as_array<'a>(v: &'a Value, path: &str) -> PResult<&'a Vec<Value>> {
    v.as_array()
        .ok_or_else(|| at(path, format!("expected an array, got {}", json_type(v))))
}

fn as_str<'a>(v: &'a Value, path: &str) -> PResult<&'a str> {
    v.as_str()
        .ok_or_else(|| at(path, format!("expected a string, got {}", json_type(v))))
}

fn non_empty<'a>(v: &'a Value, path: &str) -> PResult<&'a str> {
    let s = as_str(v, path)?;
    if s.is_empty() {
        return Err(at(path, "must not be empty"));
    }
    Ok(s)
}

/// Reads a whole document; I/O and syntax errors become one fatal error.
fn read_document(
    name: &str,
    mut reader: Box<dyn Read + Send>,
    start_line: u64,
    start_offset: u64,
) -> Result<Value, SourceError> {
    let mut bytes = Vec::new();
    if let Err(e) = (&mut reader)
        .take(MAX_DOCUMENT as u64 + 1)
        .read_to_end(&mut bytes)
    {
        return Err(SourceError::fatal(
            Location::file(name),
            format!(
                "read error after {} bytes: {e}",
                start_offset + bytes.len() as u64
            ),
        ));
    }
    if bytes.len() > MAX_DOCUMENT {
        return Err(SourceError::fatal(
            Location::file(name),
            format!("JSON document larger than {MAX_DOCUMENT} bytes; not read"),
        ));
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        let line = e.line().max(1);
        // Byte index of the start of line `line` of `bytes`.
        let line_start = if line == 1 {
            0
        } else {
            memchr::memchr_iter(b'\n', &bytes)
                .nth(line - 2)
                .map_or(bytes.len(), |i| i + 1)
        };
        let message = e.to_string();
        let message = match message.rfind(" at line ") {
            Some(i) => format!("{} (column {})", &message[..i], e.column()),
            None => message,
        };
        SourceError::fatal(
            Location::line(
                name,
                start_line + line as u64 - 1,
                start_offset + line_start as u64,
            ),
            format!("invalid JSON: {message}"),
        )
    })
}

/// Reads a `stella.callgraph.v1` document into a `graph` record (and `edge`
/// records for runtime-kind edges).
pub(crate) fn read_callgraph(
    name: &str,
    reader: Box<dyn Read + Send>,
    options: &Options,
    start_line: u64,
    start_offset: u64,
) -> Vec<Item> {
    let doc = match read_document(name, reader, start_line, start_offset) {
        Ok(doc) => doc,
        Err(e) => return vec![Err(e)],
    };
    match map_callgraph(&doc, options) {
        Ok((graph, runtime)) => {
            let record = Record::Graph(graph);
            if let Err(message) = record.validate() {
                // map_callgraph checks all of this with paths; kept as a guard.
                return vec![Err(SourceError::fatal(
                    Location::file(name),
                    message.to_string(),
                ))];
            }
            let mut out = vec![Ok((Location::file(name), record))];
            out.extend(runtime.into_iter().map(|(path, edge)| {
                Ok((Location::file(name).with_path(path), Record::Edge(edge)))
            }));
            out
        }
        Err(e) => vec![Err(SourceError::fatal(
            Location::file(name).with_path(e.path),
            e.message,
        ))],
    }
}

fn map_callgraph(
    doc: &Value,
    options: &Options,
) -> PResult<(GraphSnapshot, Vec<(String, EdgeObservation)>)> {
    let root = as_object(doc, "")?;
    if let Some((_, schema)) = field(root, &["schema"]) {
        let schema = as_str(schema, "schema")?;
        if schema != CALLGRAPH_SCHEMA {
            return Err(at(
                "schema",
                format!("unsupported schema {schema:?}, expected {CALLGRAPH_SCHEMA:?}"),
            ));
        }
    }
    let artifact =
        match &options.artifact {
            Some(a) => a.clone(),
            None => match field(root, &["id", "graphHash"]) {
                Some((key, v)) => non_empty(v, key)?.to_string(),
                None => return Err(at(
                    "id",
                    "missing: the callgraph has no `id` (or `graphHash`) to name its artifact; \
                     give an artifact explicitly",
                )),
            },
        };
    let at_time = options.at.unwrap_or(0);

    let nodes_v = field(root, &["nodes"])
        .ok_or_else(|| at("nodes", "missing"))?
        .1;
    let mut nodes = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, node) in as_array(nodes_v, "nodes")?.iter().enumerate() {
        let path = format!("nodes[{i}]");
        let o = as_object(node, &path)?;
        let id_path = join(&path, "id");
        let id = non_empty(
            field(o, &["id"]).ok_or_else(|| at(&id_path, "missing"))?.1,
            &id_path,
        )?;
        if let Some(first) = index.insert(id, i) {
            return Err(at(
                id_path,
                format!("duplicate node id {id:?} (first at nodes[{first}])"),
            ));
        }
        nodes.push(id.to_string());
    }

    let edges_v = field(root, &["edges"])
        .ok_or_else(|| at("edges", "missing"))?
        .1;
    let mut edges = Vec::new();
    let mut runtime = Vec::new();
    for (i, edge) in as_array(edges_v, "edges")?.iter().enumerate() {
        let path = format!("edges[{i}]");
        let o = as_object(edge, &path)?;
        let end = |key: &'static str| -> PResult<String> {
            let p = join(&path, key);
            let v = field(o, &[key]).ok_or_else(|| at(&p, "missing"))?.1;
            let id = as_str(v, &p)?;
            if !index.contains_key(id) {
                return Err(at(p, format!("unknown node {id:?} (not in nodes)")));
            }
            Ok(id.to_string())
        };
        let caller = end("sourceId")?;
        let callee = end("targetId")?;
        let mut is_runtime = false;
        let kind = match field(o, &["kind"]) {
            None => None,
            Some((_, v)) => {
                let p = join(&path, "kind");
                let k = as_str(v, &p)?;
                match k.to_ascii_lowercase().as_str() {
                    "static" => Some(EdgeKind::Static),
                    "heuristic" => Some(EdgeKind::Heuristic),
                    "runtime" => {
                        is_runtime = true;
                        None
                    }
                    _ => {
                        return Err(at(
                            p,
                            format!(
                                "unknown edge kind {k:?} (expected static, heuristic or runtime)"
                            ),
                        ))
                    }
                }
            }
        };
        let reason = match field(o, &["reason"]) {
            None => None,
            Some((_, v)) => Some(as_str(v, &join(&path, "reason"))?.to_string()),
        };
        let weight = match field(o, &["weight"]) {
            None => None,
            Some((_, v)) => {
                let p = join(&path, "weight");
                let w = v
                    .as_f64()
                    .ok_or_else(|| at(&p, format!("expected a number, got {}", json_type(v))))?;
                if !(0.0..=1.0).contains(&w) {
                    return Err(at(p, format!("weight {w} is outside 0.0..=1.0")));
                }
                Some(w)
            }
        };
        if is_runtime {
            runtime.push((
                path,
                EdgeObservation {
                    artifact: artifact.clone(),
                    caller,
                    callee,
                    at: at_time,
                    hits: 1,
                    source: CALLGRAPH_SOURCE.to_string(),
                    event_id: None,
                    estimated: false,
                },
            ));
        } else {
            edges.push(StaticEdge {
                caller,
                callee,
                kind,
                reason,
                weight,
            });
        }
    }

    let mut entrypoints = Vec::new();
    for list in ["entrypoints", "roots"] {
        let Some((_, v)) = field(root, &[list]) else {
            continue;
        };
        for (i, entry) in as_array(v, list)?.iter().enumerate() {
            let path = format!("{list}[{i}]");
            let (p, id) = match entry {
                Value::String(s) => (path, s.as_str()),
                Value::Object(o) => {
                    let (key, v) = field(o, &["nodeId", "id"])
                        .ok_or_else(|| at(join(&path, "nodeId"), "missing"))?;
                    let p = join(&path, key);
                    let id = as_str(v, &p)?;
                    (p, id)
                }
                other => {
                    return Err(at(
                        path,
                        format!("expected an object or a string, got {}", json_type(other)),
                    ))
                }
            };
            if !index.contains_key(id) {
                return Err(at(p, format!("unknown node {id:?} (not in nodes)")));
            }
            entrypoints.push(id.to_string());
        }
    }

    Ok((
        GraphSnapshot {
            artifact,
            at: at_time,
            nodes,
            edges,
            entrypoints,
            indirect_calls: Default::default(),
            modules: Default::default(),
        },
        runtime,
    ))
}

/// One runtime fact, mapped.
#[derive(Debug)]
struct Fact {
    artifact: String,
    symbol: String,
    at: u64,
    hits: u64,
    source: String,
}

/// Maps one `RuntimeFactEvent`; paths are relative to `base`.
fn map_event(
    event: &Value,
    base: &str,
    document_artifact: Option<&str>,
    options: &Options,
) -> PResult<Fact> {
    let o = as_object(event, base)?;
    let (key, v) = field(o, &["symbolId", "symbol_id"])
        .ok_or_else(|| at(join(base, "symbolId"), "missing"))?;
    let symbol = non_empty(v, &join(base, key))?.to_string();

    let hits = match field(o, &["hitCount", "hit_count"]) {
        None => 1,
        Some((key, v)) => {
            let p = join(base, key);
            match v {
                Value::Number(n) => match (n.as_u64(), n.as_i64()) {
                    (Some(0), _) => return Err(at(p, "must be at least 1, got 0")),
                    (Some(h), _) if h <= i64::MAX as u64 => h,
                    (Some(h), _) => return Err(at(p, format!("{h} is larger than {}", i64::MAX))),
                    (None, Some(h)) => return Err(at(p, format!("must be at least 1, got {h}"))),
                    _ if n.as_f64().is_some_and(|f| f.fract() == 0.0 && f > 0.0) => {
                        return Err(at(p, format!("{n} is larger than {}", i64::MAX)))
                    }
                    _ => return Err(at(p, format!("{n} is not an integer"))),
                },
                other => {
                    return Err(at(
                        p,
                        format!("expected an integer, got {}", json_type(other)),
                    ))
                }
            }
        }
    };

    let at_time = match field(o, &["observedAt", "observed_at"]) {
        Some((key, v)) => parse_json_time(v).map_err(|e| at(join(base, key), e.to_string()))?,
        None => options.at.ok_or_else(|| {
            at(
                join(base, "observedAt"),
                "missing: a hit needs a time; give a default time for events without observedAt",
            )
        })?,
    };

    let artifact = match &options.artifact {
        Some(a) => a.clone(),
        None => {
            let from_event = |names: &[&'static str]| -> PResult<Option<String>> {
                match field(o, names) {
                    Some((key, v)) => Ok(Some(non_empty(v, &join(base, key))?.to_string())),
                    None => Ok(None),
                }
            };
            if let Some(a) = from_event(&["callgraphId", "callgraph_id"])? {
                a
            } else if let Some(a) = document_artifact {
                a.to_string()
            } else if let Some(a) = from_event(&["buildId", "build_id"])? {
                a
            } else if let Some(a) = from_event(&["imageDigest", "image_digest"])? {
                a
            } else {
                return Err(at(
                    join(base, "buildId"),
                    "missing: no callgraphId, buildId or imageDigest names the artifact; \
                     give an artifact explicitly (the callgraph id)",
                ));
            }
        }
    };

    let metadata = o.get("metadata").and_then(Value::as_object);
    let text = |names: &[&'static str]| -> Option<String> {
        let pick = |m: &Map<String, Value>| {
            field(m, names).and_then(|(_, v)| match v {
                Value::String(s) if !s.is_empty() => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
        };
        pick(o).or_else(|| metadata.and_then(pick))
    };
    let mut parts = Vec::new();
    if let Some(host) = text(&["host", "hostname", "nodeName"]) {
        parts.push(host);
    }
    if let Some(container) = text(&["containerId", "container_id"]) {
        parts.push(format!("container:{container}"));
    }
    if parts.is_empty() {
        if let Some(pid) = text(&["processId", "process_id"]) {
            parts.push(format!("pid:{pid}"));
        }
    }
    let source = if parts.is_empty() {
        "stella".to_string()
    } else {
        format!("stella:{}", parts.join("/"))
    };

    Ok(Fact {
        artifact,
        symbol,
        at: at_time,
        hits,
        source,
    })
}

type Key = (String, String, String, u64);

/// Sums hits per (artifact, symbol, source, at), in order of first appearance.
#[derive(Default)]
struct Aggregator {
    entries: Vec<(Location, HitObservation)>,
    index: HashMap<Key, usize>,
}

impl Aggregator {
    fn add(&mut self, location: Location, fact: Fact, out: &mut VecDeque<Item>) {
        let key = (
            fact.artifact.clone(),
            fact.symbol.clone(),
            fact.source.clone(),
            fact.at,
        );
        if let Some(&i) = self.index.get(&key) {
            let entry = &mut self.entries[i];
            match entry.1.hits.checked_add(fact.hits) {
                Some(sum) if sum <= i64::MAX as u64 => entry.1.hits = sum,
                _ => {
                    // Split: emit what is summed so far, start again here.
                    let full = std::mem::replace(
                        entry,
                        (
                            location,
                            HitObservation {
                                hits: fact.hits,
                                ..entry.1.clone()
                            },
                        ),
                    );
                    out.push_back(Ok((full.0, Record::Hit(full.1))));
                }
            }
            return;
        }
        if self.entries.len() >= MAX_PENDING {
            self.flush(out);
        }
        self.index.insert(key, self.entries.len());
        self.entries.push((
            location,
            HitObservation {
                artifact: fact.artifact,
                symbol: fact.symbol,
                at: fact.at,
                hits: fact.hits,
                source: fact.source,
                event_id: None,
                estimated: false,
            },
        ));
    }

    fn flush(&mut self, out: &mut VecDeque<Item>) {
        self.index.clear();
        out.extend(
            self.entries
                .drain(..)
                .map(|(location, hit)| Ok((location, Record::Hit(hit)))),
        );
    }
}

/// Runtime facts NDJSON, one `RuntimeFactEvent` per line.
pub(crate) struct RuntimeFactsReader {
    name: std::sync::Arc<str>,
    lines: LineReader<Box<dyn BufRead + Send>>,
    options: Options,
    aggregator: Aggregator,
    out: VecDeque<Item>,
    finished: bool,
}

impl RuntimeFactsReader {
    pub(crate) fn new(
        name: &str,
        reader: Box<dyn BufRead + Send>,
        options: &Options,
        first_line: u64,
        first_offset: u64,
    ) -> Self {
        RuntimeFactsReader {
            name: name.into(),
            lines: LineReader::new(reader, options.max_line, first_line, first_offset),
            options: options.clone(),
            aggregator: Aggregator::default(),
            out: VecDeque::new(),
            finished: false,
        }
    }

    /// Records summed so far go out before an error, so that a caller that
    /// stops at the error has everything read before it.
    fn fail(&mut self, error: SourceError) {
        self.aggregator.flush(&mut self.out);
        if error.fatal {
            self.finished = true;
        }
        self.out.push_back(Err(error));
    }
}

impl Iterator for RuntimeFactsReader {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        loop {
            if let Some(item) = self.out.pop_front() {
                return Some(item);
            }
            if self.finished {
                return None;
            }
            let max_line = self.options.max_line;
            let error = match self.lines.next_line() {
                None => {
                    self.aggregator.flush(&mut self.out);
                    self.finished = true;
                    continue;
                }
                Some(Line::Text {
                    line,
                    offset,
                    bytes,
                }) => {
                    let location = Location::line(self.name.clone(), line, offset);
                    match serde_json::from_slice::<Value>(bytes) {
                        Err(e) => SourceError::new(
                            location,
                            format!("invalid JSON: {}", clean_json_message(&e.to_string())),
                        ),
                        Ok(event) => match map_event(&event, "", None, &self.options) {
                            Ok(fact) => {
                                self.aggregator.add(location, fact, &mut self.out);
                                continue;
                            }
                            Err(e) => SourceError::new(location.with_path(e.path), e.message),
                        },
                    }
                }
                Some(Line::TooLong { line, offset, len }) => SourceError::new(
                    Location::line(self.name.clone(), line, offset),
                    format!(
                        "line is {len} bytes long, longer than the limit of {max_line} bytes; skipped"
                    ),
                ),
                Some(Line::Failed {
                    line,
                    offset,
                    error,
                }) => SourceError::fatal(
                    Location::line(self.name.clone(), line, offset),
                    format!("read error: {error}"),
                ),
            };
            self.fail(error);
        }
    }
}

/// The structured runtime-facts document `{subject, callgraphId, events[]}`.
/// A bad event is one (non-fatal) error; the other events still count.
pub(crate) fn read_runtime_facts_document(
    name: &str,
    reader: Box<dyn Read + Send>,
    options: &Options,
    start_line: u64,
    start_offset: u64,
) -> Vec<Item> {
    let doc = match read_document(name, reader, start_line, start_offset) {
        Ok(doc) => doc,
        Err(e) => return vec![Err(e)],
    };
    let fatal = |e: PathError| {
        vec![Err(SourceError::fatal(
            Location::file(name).with_path(e.path),
            e.message,
        ))]
    };
    let root = match as_object(&doc, "") {
        Ok(o) => o,
        Err(e) => return fatal(e),
    };
    let mut document_artifact = None;
    if let Some((key, v)) = field(root, &["callgraphId"]) {
        match non_empty(v, key) {
            Ok(s) => document_artifact = Some(s.to_string()),
            Err(e) => return fatal(e),
        }
    } else if let Some(digest) = root
        .get("subject")
        .and_then(Value::as_object)
        .and_then(|s| field(s, &["imageDigest"]))
    {
        match non_empty(digest.1, "subject.imageDigest") {
            Ok(s) => document_artifact = Some(s.to_string()),
            Err(e) => return fatal(e),
        }
    }
    let events = match field(root, &["events"])
        .ok_or_else(|| at("events", "missing"))
        .and_then(|(_, v)| as_array(v, "events"))
    {
        Ok(events) => events,
        Err(e) => return fatal(e),
    };
    if events.is_empty() {
        return fatal(at("events", "no events (an empty runtime-facts document)"));
    }
    let mut aggregator = Aggregator::default();
    let mut out = VecDeque::new();
    let mut errors = Vec::new();
    for (i, event) in events.iter().enumerate() {
        let path = format!("events[{i}]");
        match map_event(event, &path, document_artifact.as_deref(), options) {
            Ok(fact) => aggregator.add(Location::file(name).with_path(path), fact, &mut out),
            Err(e) => errors.push(Err(SourceError::new(
                Location::file(name).with_path(e.path),
                e.message,
            ))),
        }
    }
    aggregator.flush(&mut out);
    out.into_iter().chain(errors).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn graph(doc: Value) -> PResult<(GraphSnapshot, Vec<(String, EdgeObservation)>)> {
        map_callgraph(&doc, &Options::default())
    }

    fn err_of(r: PResult<impl std::fmt::Debug>) -> (String, String) {
        let e = r.unwrap_err();
        (e.path, e.message)
    }

    #[test]
    fn callgraph_maps_fields() {
        let (g, runtime) = graph(json!({
            "schema": "stella.callgraph.v1", "id": "cg-1", "ingestedAt": "2025-01-01T00:00:00Z",
            "nodes": [{"id": "main"}, {"id": "a", "name": "A"}, {"id": "b"}],
            "edges": [
                {"sourceId": "main", "targetId": "a", "kind": "Static", "reason": "directCall", "weight": 1.0},
                {"sourceId": "a", "targetId": "b", "kind": "heuristic", "weight": 0.25, "isResolved": false},
                {"sourceId": "b", "targetId": "a", "kind": "runtime", "reason": "runtimeMinted"}
            ],
            "entrypoints": [{"nodeId": "main", "kind": "http", "route": "/"}],
            "roots": [{"id": "b"}]
        }))
        .unwrap();
        assert_eq!(g.artifact, "cg-1");
        assert_eq!(g.at, 0);
        assert_eq!(g.nodes, ["main", "a", "b"]);
        assert_eq!(g.edges.len(), 2);
        assert_eq!(g.edges[0].kind, Some(EdgeKind::Static));
        assert_eq!(g.edges[0].reason.as_deref(), Some("directCall"));
        assert_eq!(g.edges[1].kind, Some(EdgeKind::Heuristic));
        assert_eq!(g.edges[1].weight, Some(0.25));
        assert_eq!(g.entrypoints, ["main", "b"]);
        assert_eq!(runtime.len(), 1);
        assert_eq!(runtime[0].0, "edges[2]");
        assert_eq!(
            (runtime[0].1.caller.as_str(), runtime[0].1.callee.as_str()),
            ("b", "a")
        );
        assert_eq!(runtime[0].1.source, CALLGRAPH_SOURCE);
    }

    #[test]
    fn callgraph_options_override() {
        let options = Options {
            artifact: Some("shop@1.4".into()),
            at: Some(5000),
            ..Options::default()
        };
        let (g, _) =
            map_callgraph(&json!({"id": "cg", "nodes": [], "edges": []}), &options).unwrap();
        assert_eq!((g.artifact.as_str(), g.at), ("shop@1.4", 5000));
        // graphHash when there is no id
        let (g, _) = graph(json!({"graphHash": "sha256:ab", "nodes": [], "edges": []})).unwrap();
        assert_eq!(g.artifact, "sha256:ab");
    }

    #[test]
    fn callgraph_errors_have_paths() {
        let n = json!([{"id": "a"}, {"id": "b"}]);
        let cases = [
            (json!([1]), "$", "expected an object"),
            (
                json!({"schema": "stella.callgraph.v2", "id": "x", "nodes": [], "edges": []}),
                "schema",
                "unsupported",
            ),
            (json!({"nodes": [], "edges": []}), "id", "missing"),
            (
                json!({"id": 7, "nodes": [], "edges": []}),
                "id",
                "expected a string",
            ),
            (json!({"id": "x", "edges": []}), "nodes", "missing"),
            (
                json!({"id": "x", "nodes": {}, "edges": []}),
                "nodes",
                "expected an array",
            ),
            (
                json!({"id": "x", "nodes": [{"id": "a"}, {"name": "b"}], "edges": []}),
                "nodes[1].id",
                "missing",
            ),
            (
                json!({"id": "x", "nodes": [{"id": "a"}, {"id": "a"}], "edges": []}),
                "nodes[1].id",
                "duplicate node id \"a\" (first at nodes[0])",
            ),
            (
                json!({"id": "x", "nodes": [{"id": ""}], "edges": []}),
                "nodes[0].id",
                "empty",
            ),
            (json!({"id": "x", "nodes": n}), "edges", "missing"),
            (
                json!({"id": "x", "nodes": n, "edges": [{"sourceId": "a", "targetId": "zz"}]}),
                "edges[0].targetId",
                "unknown node \"zz\"",
            ),
            (
                json!({"id": "x", "nodes": n, "edges": [{"targetId": "a"}]}),
                "edges[0].sourceId",
                "missing",
            ),
            (
                json!({"id": "x", "nodes": n, "edges": [{"sourceId": 1, "targetId": "a"}]}),
                "edges[0].sourceId",
                "expected a string",
            ),
            (
                json!({"id": "x", "nodes": n, "edges": [{"sourceId": "a", "targetId": "b", "kind": "dynamic"}]}),
                "edges[0].kind",
                "unknown edge kind",
            ),
            (
                json!({"id": "x", "nodes": n, "edges": [{"sourceId": "a", "targetId": "b", "weight": 1.5}]}),
                "edges[0].weight",
                "outside",
            ),
            (
                json!({"id": "x", "nodes": n, "edges": [{"sourceId": "a", "targetId": "b", "weight": "high"}]}),
                "edges[0].weight",
                "expected a number",
            ),
            (
                json!({"id": "x", "nodes": n, "edges": [{"sourceId": "a", "targetId": "b", "reason": 3}]}),
                "edges[0].reason",
                "expected a string",
            ),
            (
                json!({"id": "x", "nodes": n, "edges": [], "entrypoints": [{"nodeId": "m"}]}),
                "entrypoints[0].nodeId",
                "unknown node \"m\"",
            ),
            (
                json!({"id": "x", "nodes": n, "edges": [], "entrypoints": [{"kind": "http"}]}),
                "entrypoints[0].nodeId",
                "missing",
            ),
            (
                json!({"id": "x", "nodes": n, "edges": [], "entrypoints": [5]}),
                "entrypoints[0]",
                "expected an object or a string",
            ),
            (
                json!({"id": "x", "nodes": n, "edges": [], "roots": [{"id": "q"}]}),
                "roots[0].id",
                "unknown node",
            ),
        ];
        for (doc, path, needle) in cases {
            let (p, m) = err_of(graph(doc.clone()));
            assert_eq!(p, path, "{doc}");
            assert!(m.contains(needle), "{doc}: {m}");
        }
    }

    fn fact(v: Value) -> PResult<Fact> {
        map_event(&v, "", None, &Options::default())
    }

    #[test]
    fn runtime_fact_fields() {
        let f = fact(
            json!({"symbolId": "s", "hitCount": 3, "observedAt": "1970-01-01T00:00:01Z",
                            "buildId": "b1", "processId": 42, "containerId": "c9"}),
        )
        .unwrap();
        assert_eq!(
            (
                f.artifact.as_str(),
                f.symbol.as_str(),
                f.at,
                f.hits,
                f.source.as_str()
            ),
            ("b1", "s", 1000, 3, "stella:container:c9")
        );
        let f = fact(
            json!({"symbol_id": "s", "observed_at": 7, "callgraphId": "cg",
                            "buildId": "b1", "processId": "42"}),
        )
        .unwrap();
        assert_eq!(
            (f.artifact.as_str(), f.hits, f.at, f.source.as_str()),
            ("cg", 1, 7, "stella:pid:42")
        );
        let f = fact(
            json!({"symbolId": "s", "observedAt": 7, "imageDigest": "sha256:1",
                            "metadata": {"host": "h1"}, "containerId": "c"}),
        )
        .unwrap();
        assert_eq!(
            (f.artifact.as_str(), f.source.as_str()),
            ("sha256:1", "stella:h1/container:c")
        );
        let f = fact(json!({"symbolId": "s", "observedAt": 7, "buildId": "b"})).unwrap();
        assert_eq!(f.source, "stella");
        // options: artifact overrides, at fills in
        let options = Options {
            artifact: Some("A".into()),
            at: Some(99),
            ..Options::default()
        };
        let f = map_event(
            &json!({"symbolId": "s", "buildId": "b"}),
            "",
            None,
            &options,
        )
        .unwrap();
        assert_eq!((f.artifact.as_str(), f.at), ("A", 99));
        let f = map_event(
            &json!({"symbolId": "s", "observedAt": 5}),
            "",
            None,
            &options,
        )
        .unwrap();
        assert_eq!(f.at, 5);
    }

    #[test]
    fn runtime_fact_errors() {
        let cases = [
            (
                json!({"hitCount": 1, "observedAt": 1, "buildId": "b"}),
                "symbolId",
                "missing",
            ),
            (
                json!({"symbolId": "", "observedAt": 1, "buildId": "b"}),
                "symbolId",
                "empty",
            ),
            (
                json!({"symbolId": 5, "observedAt": 1, "buildId": "b"}),
                "symbolId",
                "expected a string",
            ),
            (
                json!({"symbolId": "s", "hitCount": 0, "observedAt": 1, "buildId": "b"}),
                "hitCount",
                "at least 1",
            ),
            (
                json!({"symbolId": "s", "hitCount": -3, "observedAt": 1, "buildId": "b"}),
                "hitCount",
                "at least 1, got -3",
            ),
            (
                json!({"symbolId": "s", "hitCount": 2.5, "observedAt": 1, "buildId": "b"}),
                "hitCount",
                "not an integer",
            ),
            (
                json!({"symbolId": "s", "hitCount": "2", "observedAt": 1, "buildId": "b"}),
                "hitCount",
                "expected an integer",
            ),
            (
                json!({"symbolId": "s", "hitCount": u64::MAX, "observedAt": 1, "buildId": "b"}),
                "hitCount",
                "larger than",
            ),
            (
                json!({"symbolId": "s", "buildId": "b"}),
                "observedAt",
                "missing",
            ),
            (
                json!({"symbolId": "s", "observedAt": "yesterday", "buildId": "b"}),
                "observedAt",
                "RFC 3339",
            ),
            (
                json!({"symbolId": "s", "observedAt": -5, "buildId": "b"}),
                "observedAt",
                "non-negative",
            ),
            (
                json!({"symbolId": "s", "observedAt": 1}),
                "buildId",
                "missing",
            ),
            (
                json!({"symbolId": "s", "observedAt": 1, "buildId": ""}),
                "buildId",
                "empty",
            ),
            (json!("just a string"), "$", "expected an object"),
        ];
        for (v, path, needle) in cases {
            let (p, m) = err_of(fact(v.clone()));
            assert_eq!(p, path, "{v}");
            assert!(m.contains(needle), "{v}: {m}");
        }
    }

    #[test]
    fn aggregation_sums_and_splits() {
        let mut agg = Aggregator::default();
        let mut out = VecDeque::new();
        let loc = |l| Location::line("f", l, 0);
        let f = |sym: &str, at, hits| Fact {
            artifact: "a".into(),
            symbol: sym.into(),
            at,
            hits,
            source: "s".into(),
        };
        agg.add(loc(1), f("x", 1, 2), &mut out);
        agg.add(loc(2), f("y", 1, 1), &mut out);
        agg.add(loc(3), f("x", 1, 5), &mut out);
        agg.add(loc(4), f("x", 2, 1), &mut out);
        agg.add(loc(5), f("y", 1, i64::MAX as u64), &mut out);
        assert_eq!(out.len(), 1, "the overflowing sum was split");
        agg.flush(&mut out);
        let got: Vec<(u64, String, u64, u64)> = out
            .into_iter()
            .map(|i| {
                let (l, r) = i.unwrap();
                let Record::Hit(h) = r else { panic!() };
                (l.line, h.symbol, h.at, h.hits)
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (2, "y".into(), 1, 1),
                (1, "x".into(), 1, 7),
                (5, "y".into(), 1, i64::MAX as u64),
                (4, "x".into(), 2, 1),
            ]
        );
    }
}
