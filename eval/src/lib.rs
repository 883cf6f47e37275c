//! Research mode (`tracemerge eval`): measures a static call graph against
//! the call edges that really ran: recall, every missed edge classified,
//! functions executed but statically unreachable, static edges of executed
//! callers that never ran, and the missed edges that change a target's
//! verdict. The result is canonical JSON (`tracemerge.eval.v1`, sorted
//! keys and arrays, BLAKE3 digest) so that it can be diffed and cited;
//! [`html`] renders it as a page.

pub mod html;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::Serialize;
use tracemerge_records::GraphSnapshot;

pub const EVAL_SCHEMA: &str = "tracemerge.eval.v1";

/// One live runtime edge (the ground truth), as the engine reports it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RuntimeEdge {
    pub caller: String,
    pub callee: String,
    pub hits: u64,
}

/// Why the static graph lacks a runtime edge, checked in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MissClass {
    /// An end is a plain name that several static functions share
    /// (static functions of one name in several translation units).
    AmbiguousName,
    /// The caller is not a node of the static graph (another module, a
    /// function the analyser did not see).
    CallerNotInStatic,
    /// The callee is not a node of the static graph.
    CalleeNotInStatic,
    /// Both ends are nodes and the caller has indirect call sites: the
    /// likely path of the call.
    IndirectCall,
    /// Both ends are nodes, the caller has no indirect call site.
    Other,
}

impl MissClass {
    pub const ALL: [MissClass; 5] = [
        MissClass::AmbiguousName,
        MissClass::CallerNotInStatic,
        MissClass::CalleeNotInStatic,
        MissClass::IndirectCall,
        MissClass::Other,
    ];

    pub fn name(self) -> &'static str {
        match self {
            MissClass::AmbiguousName => "ambiguous_name",
            MissClass::CallerNotInStatic => "caller_not_in_static",
            MissClass::CalleeNotInStatic => "callee_not_in_static",
            MissClass::IndirectCall => "indirect_call",
            MissClass::Other => "other",
        }
    }
}

/// A runtime edge the static graph does not have.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct MissedEdge {
    pub caller: String,
    pub callee: String,
    pub hits: u64,
    pub class: MissClass,
}

/// Recall of the runtime edges whose caller lies in one module (file,
/// package) of the static graph.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModuleRecall {
    pub module: String,
    pub runtime_edges: u64,
    pub matched: u64,
    pub recall: Option<f64>,
}

/// A target that static analysis alone calls unreachable but that the
/// runtime edges reach, with the effective witness path and the missed
/// edges on it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct VerdictChange {
    pub target: String,
    pub path: Vec<String>,
    pub missed_edges: Vec<[String; 2]>,
}

/// The evaluation of one artifact.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ArtifactEval {
    pub artifact: String,
    pub entrypoints: Vec<String>,
    /// Nodes of the static graph.
    pub functions: u64,
    pub static_edges: u64,
    /// Distinct runtime edges after name matching, clone edges left out.
    pub runtime_edges: u64,
    /// Runtime edges whose two ends are static nodes: recall's denominator.
    pub runtime_edges_known: u64,
    /// Runtime edges between known functions that the static graph has.
    pub matched: u64,
    /// `matched / runtime_edges_known`; null when there is none.
    pub recall: Option<f64>,
    pub misses_by_class: BTreeMap<MissClass, u64>,
    pub missed: Vec<MissedEdge>,
    /// Runtime edges between a function and its own compiler clone
    /// (`f` → `f.part.0`): not calls of the source program.
    pub clone_edges: u64,
    /// Static nodes that are an end of some runtime edge.
    pub executed_functions: u64,
    pub executed_statically_unreachable: Vec<String>,
    /// Static edges whose caller ran but which never ran: an upper bound
    /// on the graph's imprecision among the code exercised.
    pub unexercised_static_edges: u64,
    pub unexercised_static_edge_list: Vec<[String; 2]>,
    pub static_reachable: u64,
    pub indirect_call_sites: u64,
    pub ambiguous_names: Vec<String>,
    pub verdict_changes: Vec<VerdictChange>,
    pub modules: Vec<ModuleRecall>,
}

/// The whole evaluation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Evaluation {
    pub schema: &'static str,
    pub digest: String,
    pub artifacts: Vec<ArtifactEval>,
    /// Artifacts with runtime edges and no static graph.
    pub without_static_graph: Vec<String>,
}

impl Evaluation {
    pub fn new(mut artifacts: Vec<ArtifactEval>, mut without_static_graph: Vec<String>) -> Self {
        artifacts.sort_by(|a, b| a.artifact.cmp(&b.artifact));
        without_static_graph.sort();
        let mut eval = Evaluation {
            schema: EVAL_SCHEMA,
            digest: String::new(),
            artifacts,
            without_static_graph,
        };
        eval.digest = format!("blake3:{}", blake3::hash(&eval.canonical_bytes()).to_hex());
        eval
    }

    /// Canonical JSON: sorted keys (serde_json's map is ordered), arrays
    /// sorted by [`evaluate`].
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let value = serde_json::to_value(self).expect("evaluations serialize");
        serde_json::to_vec(&value).expect("values serialize")
    }

    pub fn to_pretty_json(&self) -> String {
        let value = serde_json::to_value(self).expect("evaluations serialize");
        serde_json::to_string_pretty(&value).expect("values serialize")
    }
}

/// Suffixes gcc gives the clones of a function (`f.part.0`,
/// `f.constprop.0.isra.0`, `f.cold`): the symbol the probe reports for code
/// that is `f` in the source.
const CLONE_SUFFIXES: [&str; 6] = [
    ".part.",
    ".isra.",
    ".constprop.",
    ".lto_priv.",
    ".cold",
    ".localalias",
];

/// The static node a runtime name stands for: itself if it is a node,
/// else the name without gcc clone suffixes if that is a node, else itself.
pub fn static_name<'a>(name: &'a str, nodes: &BTreeSet<&str>) -> &'a str {
    if nodes.contains(name) {
        return name;
    }
    let cut = CLONE_SUFFIXES
        .iter()
        .filter_map(|s| name.find(s))
        .filter(|&i| i > 0)
        .min();
    match cut {
        Some(i) if nodes.contains(&name[..i]) => &name[..i],
        _ => name,
    }
}

/// Breadth-first distances from `roots` over `succ`.
fn distances<'a>(
    roots: impl IntoIterator<Item = &'a str>,
    succ: &BTreeMap<&'a str, BTreeSet<&'a str>>,
) -> BTreeMap<&'a str, usize> {
    let mut dist = BTreeMap::new();
    let mut queue = VecDeque::new();
    for r in roots {
        if dist.insert(r, 0).is_none() {
            queue.push_back(r);
        }
    }
    while let Some(v) = queue.pop_front() {
        let d = dist[v];
        for &w in succ.get(v).into_iter().flatten() {
            if !dist.contains_key(w) {
                dist.insert(w, d + 1);
                queue.push_back(w);
            }
        }
    }
    dist
}

/// Evaluates one artifact's static graph against its runtime edges;
/// `targets` are the functions of interest whose verdicts are checked.
pub fn evaluate(
    graph: &GraphSnapshot,
    runtime: &[RuntimeEdge],
    targets: &[String],
) -> ArtifactEval {
    let nodes: BTreeSet<&str> = graph.nodes.iter().map(String::as_str).collect();
    let static_edges: BTreeSet<(&str, &str)> = graph
        .edges
        .iter()
        .map(|e| (e.caller.as_str(), e.callee.as_str()))
        .collect();
    // Plain names shared by several qualified nodes (`a.c:f`, `b.c:f`).
    let mut qualified: BTreeMap<&str, u64> = BTreeMap::new();
    for n in &nodes {
        if let Some((_, plain)) = n.rsplit_once(':') {
            if !plain.is_empty() {
                *qualified.entry(plain).or_default() += 1;
            }
        }
    }
    let ambiguous: BTreeSet<&str> = qualified
        .into_iter()
        .filter(|(plain, n)| *n > 1 && !nodes.contains(plain))
        .map(|(plain, _)| plain)
        .collect();

    let mut edges: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    let mut clone_edges = BTreeSet::new();
    for e in runtime {
        let (a, b) = (
            static_name(&e.caller, &nodes),
            static_name(&e.callee, &nodes),
        );
        if a == b && e.caller != e.callee {
            clone_edges.insert((e.caller.as_str(), e.callee.as_str()));
            continue;
        }
        *edges.entry((a, b)).or_default() += e.hits;
    }

    let mut missed = Vec::new();
    let mut matched = 0u64;
    let mut known = 0u64;
    let mut per_module: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for (&(a, b), &hits) in &edges {
        let is_known = nodes.contains(a) && nodes.contains(b);
        let hit = static_edges.contains(&(a, b));
        if is_known {
            known += 1;
            matched += u64::from(hit);
            let module = graph.modules.get(a).map_or("-", String::as_str);
            let m = per_module.entry(module).or_default();
            m.0 += 1;
            m.1 += u64::from(hit);
        }
        if hit {
            continue;
        }
        let class = if ambiguous.contains(a) || ambiguous.contains(b) {
            MissClass::AmbiguousName
        } else if !nodes.contains(a) {
            MissClass::CallerNotInStatic
        } else if !nodes.contains(b) {
            MissClass::CalleeNotInStatic
        } else if graph.indirect_calls.get(a).is_some_and(|&n| n > 0) {
            MissClass::IndirectCall
        } else {
            MissClass::Other
        };
        missed.push(MissedEdge {
            caller: a.to_string(),
            callee: b.to_string(),
            hits,
            class,
        });
    }
    let mut misses_by_class: BTreeMap<MissClass, u64> =
        MissClass::ALL.iter().map(|&c| (c, 0)).collect();
    for m in &missed {
        *misses_by_class.entry(m.class).or_default() += 1;
    }

    let executed: BTreeSet<&str> = edges
        .keys()
        .flat_map(|&(a, b)| [a, b])
        .filter(|n| nodes.contains(n))
        .collect();
    let mut static_succ: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for &(a, b) in &static_edges {
        static_succ.entry(a).or_default().insert(b);
    }
    let entrypoints: Vec<&str> = graph.entrypoints.iter().map(String::as_str).collect();
    let reach_static = distances(entrypoints.iter().copied(), &static_succ);
    let executed_statically_unreachable: Vec<String> = executed
        .iter()
        .filter(|n| !reach_static.contains_key(*n))
        .map(|n| n.to_string())
        .collect();
    let unexercised: Vec<[String; 2]> = static_edges
        .iter()
        .filter(|(a, _)| executed.contains(a))
        .filter(|e| !edges.contains_key(e))
        .map(|(a, b)| [a.to_string(), b.to_string()])
        .collect();

    // Verdicts: a target statically unreachable but reachable once the
    // runtime edges are added; the witness path follows DESIGN.md §4
    // (parent = smallest predecessor one step closer).
    let mut effective_succ = static_succ.clone();
    let mut effective_pred: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for &(a, b) in edges.keys() {
        effective_succ.entry(a).or_default().insert(b);
    }
    for (&a, bs) in &effective_succ {
        for &b in bs {
            effective_pred.entry(b).or_default().insert(a);
        }
    }
    let reach_effective = distances(entrypoints.iter().copied(), &effective_succ);
    let mut verdict_changes = Vec::new();
    for target in targets {
        let t = target.as_str();
        if reach_static.contains_key(t) {
            continue;
        }
        let Some(&d) = reach_effective.get(t) else {
            continue;
        };
        let mut path = vec![t];
        let mut v = t;
        for step in (0..d).rev() {
            let parent = effective_pred[v]
                .iter()
                .copied()
                .find(|u| reach_effective.get(u) == Some(&step))
                .expect("a node at distance d has a parent at d - 1");
            path.push(parent);
            v = parent;
        }
        path.reverse();
        let missed_edges = path
            .windows(2)
            .filter(|w| !static_edges.contains(&(w[0], w[1])))
            .map(|w| [w[0].to_string(), w[1].to_string()])
            .collect();
        verdict_changes.push(VerdictChange {
            target: target.clone(),
            path: path.into_iter().map(String::from).collect(),
            missed_edges,
        });
    }
    verdict_changes.sort();
    verdict_changes.dedup();

    let ratio = |num: u64, den: u64| (den > 0).then(|| num as f64 / den as f64);
    ArtifactEval {
        artifact: graph.artifact.clone(),
        entrypoints: graph.entrypoints.clone(),
        functions: nodes.len() as u64,
        static_edges: static_edges.len() as u64,
        runtime_edges: edges.len() as u64,
        runtime_edges_known: known,
        matched,
        recall: ratio(matched, known),
        misses_by_class,
        missed,
        clone_edges: clone_edges.len() as u64,
        executed_functions: executed.len() as u64,
        executed_statically_unreachable,
        unexercised_static_edges: unexercised.len() as u64,
        unexercised_static_edge_list: unexercised,
        static_reachable: reach_static.len() as u64,
        indirect_call_sites: graph.indirect_calls.values().sum(),
        ambiguous_names: ambiguous.iter().map(|s| s.to_string()).collect(),
        verdict_changes,
        modules: per_module
            .into_iter()
            .map(|(module, (runtime_edges, matched))| ModuleRecall {
                module: module.to_string(),
                runtime_edges,
                matched,
                recall: ratio(matched, runtime_edges),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracemerge_records::StaticEdge;

    fn graph(nodes: &[&str], edges: &[(&str, &str)], entry: &[&str]) -> GraphSnapshot {
        GraphSnapshot {
            artifact: "p".into(),
            at: 0,
            nodes: nodes.iter().map(|s| s.to_string()).collect(),
            edges: edges.iter().map(|(a, b)| StaticEdge::new(*a, *b)).collect(),
            entrypoints: entry.iter().map(|s| s.to_string()).collect(),
            indirect_calls: Default::default(),
            modules: Default::default(),
        }
    }

    fn rt(edges: &[(&str, &str)]) -> Vec<RuntimeEdge> {
        edges
            .iter()
            .map(|(a, b)| RuntimeEdge {
                caller: a.to_string(),
                callee: b.to_string(),
                hits: 1,
            })
            .collect()
    }

    #[test]
    fn classifies_and_counts() {
        let mut g = graph(
            &["main", "a", "b", "cb", "x.c:h", "y.c:h", "lonely"],
            &[("main", "a"), ("a", "b"), ("main", "lonely")],
            &["main"],
        );
        g.indirect_calls.insert("a".into(), 1);
        let runtime = rt(&[
            ("main", "a"),
            ("a", "cb"),            // indirect
            ("b", "lonely"),        // other
            ("libc!start", "main"), // caller unknown
            ("a", "memcpy"),        // callee unknown
            ("a", "h"),             // ambiguous
            ("a", "b.part.0"),      // clone of b: a → b matched
            ("b", "b.cold"),        // clone edge
        ]);
        let e = evaluate(&g, &runtime, &["cb".into(), "b".into()]);
        assert_eq!(e.runtime_edges, 7);
        assert_eq!(e.runtime_edges_known, 4);
        assert_eq!(e.matched, 2);
        assert_eq!(e.recall, Some(0.5));
        assert_eq!(e.clone_edges, 1);
        let class = |c| e.misses_by_class[&c];
        assert_eq!(class(MissClass::IndirectCall), 1);
        assert_eq!(class(MissClass::Other), 1);
        assert_eq!(class(MissClass::CallerNotInStatic), 1);
        assert_eq!(class(MissClass::CalleeNotInStatic), 1);
        assert_eq!(class(MissClass::AmbiguousName), 1);
        assert_eq!(e.executed_statically_unreachable, ["cb"]);
        assert_eq!(e.unexercised_static_edges, 1); // main → lonely
        assert_eq!(e.verdict_changes.len(), 1);
        assert_eq!(e.verdict_changes[0].path, ["main", "a", "cb"]);
        assert_eq!(
            e.verdict_changes[0].missed_edges,
            [["a".to_string(), "cb".to_string()]]
        );
        assert_eq!(e.ambiguous_names, ["h"]);
    }
}
