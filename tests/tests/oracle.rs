//! The differential engine against the recompute-from-scratch oracle, on
//! seeded random streams and configurations, report by report.
//!
//! Environment knobs (all optional):
//! - `TRACEMERGE_ORACLE_SEEDS=N`: streams per preset (default 10);
//! - `TRACEMERGE_ORACLE_SEED=S`: run only seed S (every preset);
//! - `TRACEMERGE_ORACLE_PRESET=name`: run only that preset.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tracemerge_dataflow::{collect_reports, Options};
use tracemerge_records::{Config, Record, Report, Strategy};
use tracemerge_scenarios::random::{self, StreamParams};
use tracemerge_tests::{diff, oracle};

/// A random configuration suited to `params` (ttl, lateness and
/// min_coverage on the scale of its event times).
fn random_config(rng: &mut ChaCha8Rng, params: &StreamParams) -> Config {
    let d = params.disorder;
    let step = params.mean_step.max(1);
    let ttl = *[0, 1, 3 * step, 10 * step, 30 * step, 100 * step, 600_000]
        .choose(rng)
        .unwrap();
    let lateness = *[0, 0, d / 2, d, d, 3 * d].choose(rng).unwrap();
    let min_coverage = *[0, 1, 2 * step, 5 * step, 20 * step].choose(rng).unwrap();
    let strategy = match rng.gen_range(0..4) {
        0 => Strategy::Union,
        1 => Strategy::Static,
        _ => Strategy::Quorum {
            hits: rng.gen_range(0..=6),
            sources: rng.gen_range(0..=3),
        },
    };
    let mut config = Config {
        ttl,
        lateness,
        strategy,
        min_coverage,
        ..Config::default()
    };
    let mut symbols = random::universe(params.symbols);
    symbols.extend(["plugin_x", "ghost"].map(String::from));
    if rng.gen_bool(0.4) {
        for _ in 0..rng.gen_range(1..=2) {
            config
                .quarantine_symbols
                .insert(symbols.choose(rng).unwrap().clone());
        }
    }
    if rng.gen_bool(0.4) {
        for _ in 0..rng.gen_range(1..=3) {
            let caller = symbols.choose(rng).unwrap().clone();
            let callee = symbols.choose(rng).unwrap().clone();
            config.quarantine_edges.insert((caller, callee));
        }
    }
    config
}

fn ndjson(records: &[Record]) -> String {
    records.iter().map(|r| r.to_json() + "\n").collect()
}

/// Fails with everything needed to reproduce and read the difference.
fn compare(what: &str, records: &[Record], config: &Config, engine: &[Report], oracle: &[Report]) {
    let engine_json: Vec<String> = engine.iter().map(Report::to_pretty_json).collect();
    let oracle_json: Vec<String> = oracle.iter().map(Report::to_pretty_json).collect();
    if engine_json == oracle_json {
        return;
    }
    let config_json = serde_json::to_string(config).unwrap();
    let mut msg = format!(
        "{what}: engine and oracle disagree\nconfig: {config_json}\nrecords ({}):\n{}",
        records.len(),
        ndjson(records)
    );
    if engine.len() != oracle.len() {
        msg += &format!(
            "engine gave {} reports, oracle {}\n",
            engine.len(),
            oracle.len()
        );
    }
    if let Some(k) = (0..engine.len().min(oracle.len())).find(|&k| engine_json[k] != oracle_json[k])
    {
        msg += &format!(
            "first difference in report {k} (as_of {}), - oracle + engine:\n{}",
            oracle[k].as_of,
            diff(&oracle_json[k], &engine_json[k])
        );
    }
    panic!("{msg}");
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| v.parse().expect(name))
}

fn presets() -> Vec<(&'static str, StreamParams)> {
    let only = std::env::var("TRACEMERGE_ORACLE_PRESET").ok();
    StreamParams::presets()
        .into_iter()
        .filter(|(name, _)| only.as_deref().is_none_or(|o| o == *name))
        .collect()
}

fn seeds() -> Vec<u64> {
    match env_u64("TRACEMERGE_ORACLE_SEED") {
        Some(s) => vec![s],
        None => (0..env_u64("TRACEMERGE_ORACLE_SEEDS").unwrap_or(10)).collect(),
    }
}

#[test]
fn engine_matches_oracle_at_every_watermark() {
    for (name, params) in presets() {
        for seed in seeds() {
            let records = random::stream(seed, &params);
            let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let config = random_config(&mut rng, &params);
            let workers = [1, 2, 3][rng.gen_range(0..3)];
            let expected = oracle::reports_at_watermarks(&records, &config);
            let got =
                tracemerge_dataflow::reports_at_watermarks(&records, &config, workers).unwrap();
            compare(
                &format!("preset {name}, seed {seed}, workers {workers}"),
                &records,
                &config,
                &got,
                &expected,
            );
        }
    }
}

/// The state semantics alone, apart from when reports are taken: the stream
/// plus a final watermark past every record, last report only.
#[test]
fn engine_matches_oracle_after_a_final_watermark() {
    for (name, params) in presets() {
        for seed in seeds() {
            let mut records = random::stream(seed, &params);
            let end = records.iter().map(Record::time).max().unwrap_or(0) + 1;
            records.push(Record::Watermark { at: end });
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xF1A1);
            let config = random_config(&mut rng, &params);
            let workers = [1, 2, 3][rng.gen_range(0..3)];
            let expected = oracle::report(&records, &config);
            let got =
                tracemerge_dataflow::reports_at_watermarks(&records, &config, workers).unwrap();
            compare(
                &format!("preset {name}, seed {seed}, workers {workers}, final watermark {end}"),
                &records,
                &config,
                &got[got.len().saturating_sub(1)..],
                std::slice::from_ref(&expected),
            );
        }
    }
}

/// Another arrival order within the lateness bound, another worker count,
/// dataflow rounds at every watermark or only at some, the live evidence
/// entering at every round or only at the end (`final_only`): the final
/// report (stats of the whole stream) is the oracle's for the original
/// order, digest included.
#[test]
fn engine_is_deterministic_under_reordering() {
    for (name, params) in presets() {
        for seed in seeds() {
            let records = random::stream(seed, &params);
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xD1CE);
            let config = random_config(&mut rng, &params);
            let shuffled = random::shuffle_within_lateness(&records, config.lateness, seed);
            let workers = [1, 2, 4][rng.gen_range(0..3)];
            // Final report only: rounds may span several watermarks.
            let round_every = [1, 2, 7, 100_000][rng.gen_range(0..4)];
            let expected = oracle::report(&records, &config);
            let final_only = rng.gen_bool(0.5);
            let mut options = Options::threads(workers);
            options.round_every = round_every;
            options.final_only = final_only;
            let (got, last) = collect_reports(&shuffled, &config, options)
                .unwrap()
                .pop()
                .expect("a final report");
            assert!(last);
            compare(
                &format!(
                    "preset {name}, seed {seed}, shuffled, workers {workers}, \
                     a round every {round_every} records, final only {final_only}"
                ),
                &shuffled,
                &config,
                std::slice::from_ref(&got),
                std::slice::from_ref(&expected),
            );
            assert_eq!(expected.digest, got.digest);
        }
    }
}

/// The oracle alone: the reordering is equivalent for it too, and it gives
/// one report per advancing watermark with the stats of the prefix.
#[test]
fn oracle_is_order_independent_and_prefix_consistent() {
    for (name, params) in presets() {
        for seed in seeds() {
            let records = random::stream(seed, &params);
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xD1CE);
            let config = random_config(&mut rng, &params);
            let shuffled = random::shuffle_within_lateness(&records, config.lateness, seed);
            let a = oracle::report(&records, &config);
            let b = oracle::report(&shuffled, &config);
            assert_eq!(
                a.to_pretty_json(),
                b.to_pretty_json(),
                "preset {name}, seed {seed}\n{}",
                diff(&a.to_pretty_json(), &b.to_pretty_json())
            );
            // One report per advancing watermark, as of that watermark,
            // with the stats of the stream up to it.
            let at_marks = oracle::reports_at_watermarks(&records, &config);
            let mut w = None;
            let mut marks = Vec::new();
            for (i, r) in records.iter().enumerate() {
                if let Record::Watermark { at } = r {
                    if w.is_none_or(|w| *at > w) {
                        w = Some(*at);
                        marks.push((i, *at));
                    }
                }
            }
            assert_eq!(at_marks.len(), marks.len());
            for (report, &(i, at)) in at_marks.iter().zip(&marks) {
                assert_eq!(report.as_of, at);
                assert_eq!(report.stats, oracle::report(&records[..=i], &config).stats);
                assert!(report.digest_is_valid());
            }
        }
    }
}

/// The random streams do reach the interesting corners under the oracle:
/// every state, every conflict kind and resolution, late records and
/// duplicates (so the comparison above is not vacuous).
#[test]
fn random_streams_reach_every_corner() {
    use std::collections::BTreeSet;
    let mut states = BTreeSet::new();
    let mut kinds = BTreeSet::new();
    let mut resolutions = BTreeSet::new();
    let (mut late, mut duplicate, mut paths, mut runtime_hops) = (0, 0, 0, 0);
    for (_, params) in StreamParams::presets() {
        for seed in 0..24 {
            let records = random::stream(seed, &params);
            let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let config = random_config(&mut rng, &params);
            let reports = oracle::reports_at_watermarks(&records, &config);
            if let Some(last) = reports.last() {
                late += last.stats.late;
                duplicate += last.stats.duplicate;
            }
            for a in reports.iter().flat_map(|r| &r.artifacts) {
                for v in &a.verdicts {
                    states.insert(v.state);
                    if let Some(h) = &v.hops {
                        paths += 1;
                        runtime_hops += h
                            .iter()
                            .filter(|h| **h == tracemerge_records::Hop::Runtime)
                            .count();
                    }
                }
                for c in &a.conflicts {
                    kinds.insert(c.kind());
                    if let tracemerge_records::Conflict::RuntimeEdgeNotInStatic {
                        resolution, ..
                    } = c
                    {
                        resolutions.insert(*resolution);
                    }
                }
            }
        }
    }
    assert_eq!(states.len(), 8, "{states:?}");
    assert_eq!(kinds.len(), 5, "{kinds:?}");
    assert_eq!(resolutions.len(), 4, "{resolutions:?}");
    assert!(
        late > 20 && duplicate > 20,
        "late {late}, duplicate {duplicate}"
    );
    assert!(
        paths > 500 && runtime_hops > 100,
        "paths {paths}, runtime hops {runtime_hops}"
    );
}
