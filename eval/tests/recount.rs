//! `evaluate` against a plain recount on random graphs and runtime edges.

use std::collections::BTreeSet;

use proptest::prelude::*;
use tracemerge_eval::{evaluate, MissClass, RuntimeEdge};
use tracemerge_records::{GraphSnapshot, StaticEdge};

/// Nodes `f0…`; runtime ends may also be `ext0`, `ext1` (not in the graph).
fn name(i: usize, nodes: usize) -> String {
    if i < nodes {
        format!("f{i}")
    } else {
        format!("ext{}", i - nodes)
    }
}

/// Fixpoint reachability, the slow obvious way.
fn reachable(entry: &[String], edges: &BTreeSet<(String, String)>) -> BTreeSet<String> {
    let mut seen: BTreeSet<String> = entry.iter().cloned().collect();
    loop {
        let more: Vec<String> = edges
            .iter()
            .filter(|(a, b)| seen.contains(a) && !seen.contains(b))
            .map(|(_, b)| b.clone())
            .collect();
        if more.is_empty() {
            return seen;
        }
        seen.extend(more);
    }
}

/// Shortest distance by repeated relaxation.
fn distance(entry: &[String], edges: &BTreeSet<(String, String)>, t: &str) -> Option<usize> {
    let mut frontier: BTreeSet<String> = entry.iter().cloned().collect();
    let mut seen = frontier.clone();
    for d in 0..=edges.len() + 1 {
        if frontier.contains(t) {
            return Some(d);
        }
        frontier = edges
            .iter()
            .filter(|(a, b)| frontier.contains(a) && !seen.contains(b))
            .map(|(_, b)| b.clone())
            .collect();
        seen.extend(frontier.iter().cloned());
    }
    None
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn matches_a_plain_recount(
        nodes in 1usize..10,
        static_pairs in proptest::collection::vec((0usize..10, 0usize..10), 0..30),
        runtime_pairs in proptest::collection::vec((0usize..12, 0usize..12, 1u64..5), 0..30),
        indirect in proptest::collection::vec(0usize..10, 0..4),
        targets in proptest::collection::vec(0usize..12, 0..4),
    ) {
        let static_set: BTreeSet<(String, String)> = static_pairs
            .iter()
            .filter(|(a, b)| *a < nodes && *b < nodes)
            .map(|&(a, b)| (name(a, nodes), name(b, nodes)))
            .collect();
        let node_names: Vec<String> = (0..nodes).map(|i| name(i, nodes)).collect();
        let entry = vec![name(0, nodes)];
        let graph = GraphSnapshot {
            artifact: "p".into(),
            at: 0,
            nodes: node_names.clone(),
            edges: static_set
                .iter()
                .map(|(a, b)| StaticEdge { caller: a.clone(), callee: b.clone(), kind: None, reason: None, weight: None })
                .collect(),
            entrypoints: entry.clone(),
            indirect_calls: indirect.iter().filter(|&&i| i < nodes).map(|&i| (name(i, nodes), 1)).collect(),
            modules: Default::default(),
        };
        let runtime: Vec<RuntimeEdge> = runtime_pairs
            .iter()
            .map(|&(a, b, hits)| RuntimeEdge { caller: name(a.min(nodes + 1), nodes), callee: name(b.min(nodes + 1), nodes), hits })
            .collect();
        let targets: Vec<String> = targets.iter().map(|&t| name(t.min(nodes + 1), nodes)).collect();
        let e = evaluate(&graph, &runtime, &targets);

        let is_node = |s: &String| node_names.contains(s);
        let distinct: BTreeSet<(String, String)> =
            runtime.iter().map(|r| (r.caller.clone(), r.callee.clone())).collect();
        let known: Vec<&(String, String)> = distinct.iter().filter(|(a, b)| is_node(a) && is_node(b)).collect();
        let matched = known.iter().filter(|e| static_set.contains(e)).count() as u64;
        prop_assert_eq!(e.runtime_edges, distinct.len() as u64);
        prop_assert_eq!(e.runtime_edges_known, known.len() as u64);
        prop_assert_eq!(e.matched, matched);
        if known.is_empty() {
            prop_assert_eq!(e.recall, None);
        } else {
            prop_assert_eq!(e.recall, Some(matched as f64 / known.len() as f64));
        }
        let missed: Vec<&(String, String)> = distinct.iter().filter(|e| !static_set.contains(e)).collect();
        prop_assert_eq!(e.missed.len(), missed.len());
        prop_assert_eq!(e.misses_by_class.values().sum::<u64>(), missed.len() as u64);
        for m in &e.missed {
            let want = if !is_node(&m.caller) {
                MissClass::CallerNotInStatic
            } else if !is_node(&m.callee) {
                MissClass::CalleeNotInStatic
            } else if graph.indirect_calls.contains_key(&m.caller) {
                MissClass::IndirectCall
            } else {
                MissClass::Other
            };
            prop_assert_eq!(m.class, want);
            let hits: u64 = runtime.iter().filter(|r| r.caller == m.caller && r.callee == m.callee).map(|r| r.hits).sum();
            prop_assert_eq!(m.hits, hits);
        }
        let executed: BTreeSet<String> = distinct.iter().flat_map(|(a, b)| [a.clone(), b.clone()]).filter(is_node).collect();
        prop_assert_eq!(e.executed_functions, executed.len() as u64);
        let reach = reachable(&entry, &static_set);
        let unreachable: Vec<String> = executed.iter().filter(|n| !reach.contains(*n)).cloned().collect();
        prop_assert_eq!(&e.executed_statically_unreachable, &unreachable);
        let unexercised = static_set.iter().filter(|(a, _)| executed.contains(a)).filter(|e| !distinct.contains(e)).count();
        prop_assert_eq!(e.unexercised_static_edges, unexercised as u64);

        let effective: BTreeSet<(String, String)> = static_set.union(&distinct).cloned().collect();
        let reach_effective = reachable(&entry, &effective);
        let changed: BTreeSet<String> = targets.iter().filter(|t| !reach.contains(*t) && reach_effective.contains(*t)).cloned().collect();
        let reported: BTreeSet<String> = e.verdict_changes.iter().map(|v| v.target.clone()).collect();
        prop_assert_eq!(&reported, &changed);
        for v in &e.verdict_changes {
            prop_assert_eq!(&v.path[0], &entry[0]);
            prop_assert_eq!(v.path.last(), Some(&v.target));
            prop_assert_eq!(Some(v.path.len() - 1), distance(&entry, &effective, &v.target));
            let hops: Vec<(String, String)> = v.path.windows(2).map(|w| (w[0].clone(), w[1].clone())).collect();
            prop_assert!(hops.iter().all(|h| effective.contains(h)));
            let missed_hops: Vec<[String; 2]> = hops.iter().filter(|h| !static_set.contains(*h)).map(|(a, b)| [a.clone(), b.clone()]).collect();
            prop_assert!(!missed_hops.is_empty());
            prop_assert_eq!(&v.missed_edges, &missed_hops);
        }
    }
}
