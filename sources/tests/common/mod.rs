//! Shared by the property tests of the readers: strategies for any valid
//! record, and gzip.

#![allow(dead_code)]

use std::io::Write;

use proptest::prelude::*;
use tracemerge_records::{
    Coverage, EdgeKind, EdgeObservation, GraphSnapshot, HitObservation, Record, StaticEdge,
    Targets, MAX_TIME,
};

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Which edge weights to draw.
#[derive(Clone, Copy, Debug)]
pub enum Weights {
    /// Any finite number: for formats that must keep every bit.
    Any,
    /// Numbers exact in decimal, so that their JSON text parses back to the
    /// same bits (JSON parsing of other floats is not always exact).
    Decimal,
}

impl Weights {
    fn strategy(self) -> BoxedStrategy<f64> {
        let decimal = prop_oneof![
            (0..=100u32).prop_map(|n| f64::from(n) / 100.0),
            (0..=1024u32).prop_map(|n| f64::from(n) / 1024.0),
        ];
        match self {
            Weights::Any => prop_oneof![
                any::<f64>().prop_filter("JSON numbers are finite", |w| w.is_finite()),
                decimal,
            ]
            .boxed(),
            Weights::Decimal => decimal.boxed(),
        }
    }
}

pub fn symbol() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{1,3}",
        "[a-zA-Z0-9_:.<>\\-]{1,40}",
        "\\PC{0,6}",
        Just(String::new()),
        Just("with \"quotes\" and \\ and \n newline".to_string()),
    ]
}

pub fn time() -> impl Strategy<Value = u64> {
    prop_oneof![0..=10_000u64, 0..=MAX_TIME, Just(MAX_TIME)]
}

pub fn hits() -> impl Strategy<Value = u64> {
    prop_oneof![1..=10u64, 1..=i64::MAX as u64]
}

pub fn graph(weights: Weights) -> impl Strategy<Value = Record> {
    (
        symbol(),
        time(),
        proptest::collection::btree_set(symbol(), 0..8),
    )
        .prop_flat_map(move |(artifact, at, nodes)| {
            let nodes: Vec<String> = nodes.into_iter().collect();
            let n = nodes.len().max(1);
            let edges = proptest::collection::vec(
                (
                    0..n,
                    0..n,
                    proptest::option::of(prop_oneof![
                        Just(EdgeKind::Static),
                        Just(EdgeKind::Heuristic)
                    ]),
                    proptest::option::of(symbol()),
                    proptest::option::of(weights.strategy()),
                ),
                0..10,
            );
            let entries = proptest::collection::vec(0..n, 0..3);
            (Just(artifact), Just(at), Just(nodes), edges, entries)
        })
        .prop_map(|(artifact, at, nodes, edges, entries)| {
            let edges = if nodes.is_empty() { Vec::new() } else { edges };
            let entries = if nodes.is_empty() {
                Vec::new()
            } else {
                entries
            };
            Record::Graph(GraphSnapshot {
                edges: edges
                    .into_iter()
                    .map(|(a, b, kind, reason, weight)| StaticEdge {
                        caller: nodes[a].clone(),
                        callee: nodes[b].clone(),
                        kind,
                        reason,
                        weight,
                    })
                    .collect(),
                entrypoints: entries.into_iter().map(|i| nodes[i].clone()).collect(),
                artifact,
                at,
                nodes,
                indirect_calls: Default::default(),
                modules: Default::default(),
            })
        })
}

/// Any valid record, every optional field present or absent.
pub fn record(weights: Weights) -> impl Strategy<Value = Record> {
    prop_oneof![
        graph(weights),
        (symbol(), time(), proptest::collection::vec(symbol(), 0..5)).prop_map(
            |(artifact, at, symbols)| Record::Targets(Targets {
                artifact,
                at,
                symbols
            })
        ),
        (
            (symbol(), symbol(), symbol()),
            time(),
            hits(),
            symbol(),
            proptest::option::of(symbol())
        )
            .prop_map(|((artifact, caller, callee), at, hits, source, event_id)| {
                Record::Edge(EdgeObservation {
                    artifact,
                    caller,
                    callee,
                    at,
                    hits,
                    source,
                    event_id,
                    estimated: false,
                })
            }),
        (
            symbol(),
            symbol(),
            time(),
            hits(),
            symbol(),
            proptest::option::of(symbol())
        )
            .prop_map(|(artifact, symbol, at, hits, source, event_id)| {
                Record::Hit(HitObservation {
                    artifact,
                    symbol,
                    at,
                    hits,
                    source,
                    event_id,
                    estimated: false,
                })
            }),
        (
            symbol(),
            proptest::collection::vec(symbol(), 0..5),
            time(),
            time(),
            symbol(),
            proptest::option::of(any::<u64>())
        )
            .prop_map(|(artifact, symbols, a, b, source, lost)| {
                Record::Coverage(Coverage {
                    artifact,
                    symbols,
                    from: a.min(b),
                    to: a.max(b),
                    source,
                    lost,
                })
            }),
        time().prop_map(|at| Record::Watermark { at }),
    ]
}
