//! The hand-written cases of `scenarios/cases/`: the oracle and the engine
//! both produce exactly `expected.json`, and together the cases cover every
//! state, conflict kind, resolution and strategy.
//!
//! `TRACEMERGE_BLESS=1` rewrites `expected.json` from the oracle (then check
//! the diff by hand against the case's README before committing).

use std::collections::BTreeSet;

use tracemerge_records::{Conflict, Record, Report, State, Strategy};
use tracemerge_scenarios::{cases, Case};
use tracemerge_tests::{diff, oracle};

fn oracle_report(case: &Case) -> Report {
    let records = case.records().unwrap();
    let config = case.config().unwrap();
    oracle::report(&records, &config)
}

#[test]
fn oracle_reproduces_expected_reports() {
    let bless = std::env::var_os("TRACEMERGE_BLESS").is_some();
    for case in cases() {
        let got = oracle_report(&case).to_pretty_json() + "\n";
        if bless {
            let path = format!(
                "{}/../scenarios/cases/{}/expected.json",
                env!("CARGO_MANIFEST_DIR"),
                case.name
            );
            std::fs::write(&path, &got).unwrap();
            continue;
        }
        assert!(
            got.trim_end() == case.expected.trim_end(),
            "case {}: - expected.json + oracle:\n{}",
            case.name,
            diff(case.expected, &got)
        );
    }
}

#[test]
fn engine_reproduces_expected_reports() {
    for case in cases() {
        let records = case.records().unwrap();
        let config = case.config().unwrap();
        assert!(
            matches!(records.last(), Some(Record::Watermark { .. })),
            "{}: cases end with a watermark",
            case.name
        );
        for workers in [1, 3] {
            let reports =
                tracemerge_dataflow::reports_at_watermarks(&records, &config, workers).unwrap();
            let last = reports.last().expect("a report per watermark");
            let got = last.to_pretty_json();
            assert!(
                got.trim_end() == case.expected.trim_end(),
                "case {} with {workers} workers: - expected.json + engine:\n{}",
                case.name,
                diff(case.expected, &got)
            );
        }
    }
}

/// Every intermediate report too (one per watermark record, over the prefix
/// of the stream up to it).
#[test]
fn engine_matches_oracle_at_every_watermark_of_the_cases() {
    for case in cases() {
        let records = case.records().unwrap();
        let config = case.config().unwrap();
        let expected = oracle::reports_at_watermarks(&records, &config);
        let got = tracemerge_dataflow::reports_at_watermarks(&records, &config, 2).unwrap();
        let as_of = |v: &[Report]| {
            v.iter()
                .map(|r| (r.as_of, r.stats.records))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            as_of(&got),
            as_of(&expected),
            "case {}: (as_of, records) of each report, engine vs oracle",
            case.name
        );
        for (k, (g, e)) in got.iter().zip(&expected).enumerate() {
            let (g, e) = (g.to_pretty_json(), e.to_pretty_json());
            assert!(
                g == e,
                "case {}: report {k} (after watermark record {}), - oracle + engine:\n{}",
                case.name,
                k + 1,
                diff(&e, &g)
            );
        }
    }
}

#[test]
fn cases_are_well_formed() {
    let all = cases();
    assert!(all.len() >= 3);
    assert_eq!(all[0].name, "shop", "the demo case comes first");
    for case in &all {
        assert!(!case.readme.trim().is_empty(), "{}", case.name);
        assert_eq!(
            case.args.trim().lines().count(),
            1,
            "{}: args is one line",
            case.name
        );
        let report: serde_json::Value = serde_json::from_str(case.expected).unwrap();
        assert_eq!(report["schema"], "tracemerge.report.v1");
        let sealed = oracle_report(case);
        assert!(sealed.digest_is_valid());
        assert_eq!(report["digest"], sealed.digest.as_str(), "{}", case.name);
    }
}

/// Together the cases show every state, every conflict kind, every
/// resolution, every strategy, ttl expiry, snapshot replacement, duplicate
/// ids and late records; `shop` alone shows every state and conflict kind.
#[test]
fn cases_cover_the_semantics() {
    let mut states = BTreeSet::new();
    let mut kinds = BTreeSet::new();
    let mut resolutions = BTreeSet::new();
    let mut strategies = BTreeSet::new();
    let (mut late, mut duplicate, mut expired, mut replaced) = (0, 0, 0, 0);
    for case in cases() {
        let report = oracle_report(&case);
        let config = case.config().unwrap();
        strategies.insert(match config.strategy {
            Strategy::Union => "union",
            Strategy::Static => "static",
            Strategy::Quorum { .. } => "quorum",
        });
        late += report.stats.late;
        duplicate += report.stats.duplicate;
        let mut case_states = BTreeSet::new();
        let mut case_kinds = BTreeSet::new();
        for a in &report.artifacts {
            for v in &a.verdicts {
                case_states.insert(v.state);
            }
            for c in &a.conflicts {
                case_kinds.insert(c.kind());
                if let Conflict::RuntimeEdgeNotInStatic { resolution, .. } = c {
                    resolutions.insert(*resolution);
                }
            }
        }
        if case.name == "shop" {
            assert_eq!(
                case_states.len(),
                8,
                "shop shows every state: {case_states:?}"
            );
            assert_eq!(
                case_kinds.len(),
                5,
                "shop shows every conflict kind: {case_kinds:?}"
            );
        }
        states.extend(case_states);
        kinds.extend(case_kinds);

        // ttl expiry: some applied edge or hit at or before as_of is not live.
        let records = case.records().unwrap();
        expired += records
            .iter()
            .filter(|r| match r {
                Record::Edge(e) => e.at + config.ttl <= report.as_of,
                Record::Hit(h) => h.at + config.ttl <= report.as_of,
                _ => false,
            })
            .count();
        // Snapshot replacement: several graphs of one artifact.
        let mut graphs = BTreeSet::new();
        replaced += records
            .iter()
            .filter(|r| match r {
                Record::Graph(g) => !graphs.insert(g.artifact.clone()),
                _ => false,
            })
            .count();
    }
    assert!(expired >= 2, "ttl expiry shown");
    assert!(replaced >= 2, "snapshot replacement shown");
    assert_eq!(states.len(), State::ALL.len());
    assert_eq!(kinds.len(), Conflict::KINDS.len());
    assert_eq!(resolutions.len(), 4, "{resolutions:?}");
    assert_eq!(strategies.len(), 3);
    assert!(
        late >= 2 && duplicate >= 2,
        "late {late}, duplicate {duplicate}"
    );
}
