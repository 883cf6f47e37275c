//! The windowed aggregator's statistics (hits, first/last seen, sources,
//! live hits, coverage) against the recompute-from-scratch oracle at every
//! watermark, on streams made to hit its edges: one key sighted a million
//! times, sightings that expire exactly at a watermark, late
//! records and duplicate event ids.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tracemerge_dataflow::{collect_reports, reports_at_watermarks, Options};
use tracemerge_records::{
    Config, Coverage, EdgeObservation, GraphSnapshot, HitObservation, Record, StaticEdge, Strategy,
    Targets, Time,
};
use tracemerge_tests::oracle;

const TTL: Time = 100;

fn edge(caller: &str, callee: &str, at: Time, hits: u64, source: &str) -> EdgeObservation {
    EdgeObservation {
        artifact: "app".into(),
        caller: caller.into(),
        callee: callee.into(),
        at,
        hits,
        source: source.into(),
        event_id: None,
        estimated: false,
    }
}

/// A stream of `windows` watermark windows of 50 ms; `hot` sightings of one
/// edge spread over them; random edges, hits and coverage; a sighting in
/// every window that expires exactly at a later watermark; late records
/// and repeated event ids.
fn stream(seed: u64, windows: u64, hot: usize, lateness: Time) -> Vec<Record> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let names = ["main", "a", "b", "c", "d", "e"];
    let mut records = vec![
        Record::Graph(GraphSnapshot {
            artifact: "app".into(),
            at: 0,
            nodes: names[..5].iter().map(|s| s.to_string()).collect(),
            edges: vec![
                StaticEdge::new("main", "a"),
                StaticEdge::new("a", "b"),
                StaticEdge::new("b", "c"),
            ],
            entrypoints: vec!["main".into()],
            indirect_calls: Default::default(),
            modules: Default::default(),
        }),
        Record::Targets(Targets {
            artifact: "app".into(),
            at: 0,
            symbols: vec!["c".into(), "d".into(), "e".into()],
        }),
    ];
    let hot_per_window = hot / windows as usize;
    let mut event = 0u64;
    for w in 0..windows {
        let start = w * 50;
        for i in 0..hot_per_window {
            let at = start + (i as Time % 50);
            records.push(Record::Edge(edge("main", "a", at, 1, "hot")));
        }
        for _ in 0..rng.gen_range(1..20) {
            let at = start + rng.gen_range(0..50);
            let (u, v) = (
                names[rng.gen_range(0..names.len())],
                names[rng.gen_range(0..names.len())],
            );
            let source = ["s1", "s2", "s3", ""][rng.gen_range(0..4)];
            let mut e = edge(u, v, at, rng.gen_range(1..5), source);
            if rng.gen_bool(0.3) {
                // Some ids repeat: at-least-once delivery.
                e.event_id = Some(format!("ev{}", event.saturating_sub(rng.gen_range(0..3))));
                event += 1;
            }
            records.push(Record::Edge(e));
        }
        // Expires exactly at the watermark two windows on (start + 50 + 100).
        records.push(Record::Edge(edge("b", "c", start + 50, 2, "exact")));
        records.push(Record::Hit(HitObservation {
            artifact: "app".into(),
            symbol: names[rng.gen_range(1..names.len())].into(),
            at: start + rng.gen_range(0..50),
            hits: 1,
            source: "s1".into(),
            event_id: None,
            estimated: false,
        }));
        if rng.gen_bool(0.5) {
            let to = start + rng.gen_range(0..50);
            records.push(Record::Coverage(Coverage {
                artifact: "app".into(),
                symbols: vec!["d".into(), "e".into(), "c".into()],
                from: to.saturating_sub(rng.gen_range(0..80)),
                to,
                source: "s2".into(),
                lost: None,
            }));
        }
        // Late: behind the watermark by more than the lateness.
        if w > 2 {
            let late = start.saturating_sub(lateness + 1 + rng.gen_range(0..20));
            records.push(Record::Edge(edge("c", "d", late, 1, "late")));
        }
        records.push(Record::Watermark { at: start + 50 });
    }
    records
}

fn config(strategy: Strategy, lateness: Time) -> Config {
    Config {
        ttl: TTL,
        lateness,
        strategy,
        min_coverage: 30,
        ..Config::default()
    }
}

#[test]
fn statistics_equal_the_oracle_at_every_watermark() {
    for seed in 0..6 {
        let lateness = [0, 10, 60][seed as usize % 3];
        let strategy = if seed % 2 == 0 {
            Strategy::Union
        } else {
            Strategy::Quorum {
                hits: 3,
                sources: 2,
            }
        };
        let config = config(strategy, lateness);
        let records = stream(seed, 24, 2_400, lateness);
        let expected = oracle::reports_at_watermarks(&records, &config);
        assert!(expected.iter().any(|r| r.stats.late > 0));
        assert!(expected.iter().any(|r| r.stats.duplicate > 0));
        for workers in [1, 2] {
            let got = reports_at_watermarks(&records, &config, workers).unwrap();
            assert_eq!(got.len(), expected.len(), "seed {seed}, {workers} workers");
            for (g, e) in got.iter().zip(&expected) {
                assert_eq!(g, e, "seed {seed}, {workers} workers, as of {}", e.as_of);
            }
        }
        // Sparse rounds: many sightings of one key expire in one evaluation.
        // (One worker: a failing worker then fails the run instead of
        // leaving its peer waiting.)
        for final_only in [false, true] {
            let mut options = Options::threads(1);
            options.round_every = 150;
            options.final_only = final_only;
            let (last, _) = collect_reports(&records, &config, options)
                .unwrap()
                .pop()
                .expect("a final report");
            assert_eq!(&last, expected.last().expect("reports"), "seed {seed}");
        }
    }
}

#[test]
fn a_key_with_a_million_sightings() {
    let config = config(Strategy::Union, 0);
    let records = stream(7, 8, 1_000_000, 0);
    let expected = oracle::reports_at_watermarks(&records, &config);
    let hot = |r: &tracemerge_records::Report| {
        r.artifacts[0]
            .observed_edges
            .iter()
            .find(|e| (e.caller.as_str(), e.callee.as_str()) == ("main", "a"))
            .map(|e| e.hits)
    };
    // A window of 100 ms holds two windows of 125,000 sightings.
    assert!(expected.iter().any(|r| hot(r) >= Some(200_000)));
    let got = reports_at_watermarks(&records, &config, 2).unwrap();
    assert_eq!(got, expected);
    // As `merge` runs it too: the evidence enters once, at the end.
    let mut options = Options::threads(2);
    options.final_only = true;
    options.round_every = 1000;
    let (last, _) = collect_reports(&records, &config, options)
        .unwrap()
        .pop()
        .expect("a final report");
    assert_eq!(&last, expected.last().expect("reports"));
}

#[test]
fn an_edge_is_estimated_while_an_estimated_sighting_of_it_is_live() {
    let config = config(Strategy::Union, 0);
    let estimated = |at: Time, hits: u64| {
        let mut e = edge("main", "a", at, hits, "ebpf:h1");
        e.estimated = true;
        Record::Edge(e)
    };
    let mut records = vec![
        estimated(10, 500),
        Record::Edge(edge("main", "a", 20, 3, "ebpf:h1")),
        Record::Edge(edge("main", "b", 20, 1, "ebpf:h1")),
        Record::Watermark { at: 50 },
        // The estimated sighting (10) expires at 110; the exact one (20) at 120.
        Record::Watermark { at: 109 },
        Record::Watermark { at: 110 },
        Record::Watermark { at: 115 },
    ];
    records.push(estimated(130, 7));
    records.push(Record::Watermark { at: 140 });
    let marked = |r: &tracemerge_records::Report| -> Vec<(String, bool)> {
        r.artifacts
            .iter()
            .flat_map(|a| a.observed_edges.iter())
            .map(|e| (e.callee.clone(), e.estimated))
            .collect()
    };
    let expected = oracle::reports_at_watermarks(&records, &config);
    let got = reports_at_watermarks(&records, &config, 2).unwrap();
    assert_eq!(got, expected);
    let states: Vec<_> = got.iter().map(marked).collect();
    let a = |i: usize| states[i].iter().find(|(c, _)| c == "a").map(|(_, e)| *e);
    let b = |i: usize| states[i].iter().find(|(c, _)| c == "b").map(|(_, e)| *e);
    assert_eq!((a(0), b(0)), (Some(true), Some(false)));
    assert_eq!(a(1), Some(true));
    // At 110 only the exact sighting is live.
    assert_eq!(a(2), Some(false));
    assert_eq!(a(3), Some(false));
    // Estimated again from 130 on.
    assert_eq!(a(4), Some(true));
    // Written only when true.
    let json = String::from_utf8(got[0].canonical_bytes()).unwrap();
    assert_eq!(json.matches("\"estimated\":true").count(), 1, "{json}");
    assert!(!json.contains("\"estimated\":false"), "{json}");
}
