//! Tiny versions of every suite: the results have the documented keys and
//! sane values, and the baselines compute what the engine computes. No
//! timing is asserted (speed is measured by `tracemerge bench`, never
//! asserted in tests).

use serde_json::Value;
use tracemerge_bench::baseline::{HashDedup, Recompute};
use tracemerge_bench::driver::run_to_end;
use tracemerge_bench::suites::ingest::summary_of;
use tracemerge_bench::suites::update::agreement;
use tracemerge_bench::{lookup, Launcher, Plan, Suite};
use tracemerge_dataflow::Options;
use tracemerge_records::{Config, EdgeObservation, Record, Strategy};
use tracemerge_scenarios::workload::Workload;
use tracemerge_skip::skip;

fn plan(suite: Suite) -> Plan {
    let mut plan = Plan::tiny();
    plan.suites = vec![suite];
    plan.work_dir = std::env::temp_dir().join(format!(
        "tracemerge-bench-test-{}-{}",
        std::process::id(),
        suite.name()
    ));
    plan
}

fn run(plan: &Plan) -> Value {
    let results = tracemerge_bench::run(plan, &mut |line| eprintln!("{line}"));
    for key in [
        "schema",
        "quick",
        "machine.cpu",
        "machine.cores",
        "machine.kernel",
        "machine.date",
    ] {
        assert!(lookup(&results, key).is_some(), "{key} missing");
    }
    let suite = plan.suites[0].name();
    assert!(
        results[suite].get("error").is_none(),
        "{suite} failed: {}",
        results[suite]
    );
    results
}

fn number(results: &Value, key: &str) -> f64 {
    let v = lookup(results, key).unwrap_or_else(|| panic!("{key} missing in {results}"));
    let x = v
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number: {v}"));
    assert!(x.is_finite(), "{key} = {x}");
    x
}

fn positive(results: &Value, key: &str) -> f64 {
    let x = number(results, key);
    assert!(x > 0.0, "{key} = {x}");
    x
}

/// A stream that exercises every rule the recompute baseline implements:
/// expiry (short ttl), coverage long enough to count, hits, runtime edges
/// missing from the graph (some naming unknown symbols), a detached region
/// entered at runtime.
fn mixed_stream(seed: u64) -> (Workload, Vec<Record>) {
    let w = Workload {
        seed,
        functions: 400,
        records: 4_000,
        conflict_rate: 0.15,
        coverage_share: 0.05,
        hit_share: 0.05,
        detached: 0.2,
        watermark_every: 250,
        targets: 60,
        ..Workload::default()
    };
    let mut records: Vec<Record> = w.stream().collect();
    let end = records.pop();
    let (caller, root) = w.cascade_edge().unwrap();
    for (u, v) in [
        (caller, root),
        ("f3".to_string(), "plugin_x".to_string()),
        ("plugin_x".to_string(), "f399".to_string()),
    ] {
        records.push(Record::Edge(EdgeObservation {
            artifact: w.artifact.clone(),
            caller: u,
            callee: v,
            at: 4_000,
            hits: 2,
            source: "ebpf:host-9".into(),
            event_id: None,
            estimated: false,
        }));
    }
    records.extend(end);
    (w, records)
}

#[test]
fn recompute_baseline_equals_the_engine_report() {
    for (seed, strategy) in [
        (1, Strategy::Union),
        (
            2,
            Strategy::Quorum {
                hits: 3,
                sources: 2,
            },
        ),
        (3, Strategy::Static),
    ] {
        let (w, records) = mixed_stream(seed);
        let config = Config {
            ttl: 1_500,
            min_coverage: 400,
            strategy,
            ..Config::default()
        };
        let (report, _) = run_to_end(
            records.clone().into_iter().map(Ok::<_, String>),
            &config,
            Options::threads(1),
        )
        .unwrap();
        let mut baseline = Recompute::new(&config, &w.artifact);
        for r in &records {
            baseline.push(r);
        }
        assert_eq!(baseline.as_of(), report.as_of);
        let expected = baseline.artifact_report(&baseline.recompute());
        let actual = report
            .artifacts
            .iter()
            .find(|a| a.artifact == w.artifact)
            .expect("the artifact is reported");
        assert_eq!(actual.reach, expected.reach, "{strategy}: reach");
        assert_eq!(actual.verdicts, expected.verdicts, "{strategy}: verdicts");
        assert_eq!(
            actual.conflicts, expected.conflicts,
            "{strategy}: conflicts"
        );
        assert_eq!(
            actual.observed_edges, expected.observed_edges,
            "{strategy}: observed edges"
        );
        let all = agreement(&report, &expected);
        assert!(all
            .as_object()
            .unwrap()
            .values()
            .all(|v| v.as_bool() != Some(false)));

        // The stream hits every state worth checking.
        let states: std::collections::BTreeSet<_> =
            expected.verdicts.iter().map(|v| v.state).collect();
        assert!(states.len() >= 3, "{strategy}: only {states:?}");
        assert!(!expected.conflicts.is_empty());

        // And the ingest ceiling keeps the same live edges.
        let mut dedup = HashDedup::new(&config);
        for r in records {
            dedup.push(r);
        }
        assert_eq!(dedup.summary(), summary_of(&report), "{strategy}: dedup");
    }
}

#[test]
fn ingest() {
    let results = run(&plan(Suite::Ingest));
    let ratio = positive(&results, "ingest.ratio_vs_hash_dedup");
    let engine = positive(&results, "ingest.engine_records_per_s");
    let hash = positive(&results, "ingest.hash_dedup_records_per_s");
    assert!(
        (ratio - engine / hash).abs() <= ratio * 0.01,
        "{ratio} vs {engine}/{hash}"
    );
    assert_eq!(results["ingest"]["agree"], true, "{}", results["ingest"]);
    positive(&results, "ingest.live_edges");
}

#[test]
fn update() {
    let results = run(&plan(Suite::Update));
    positive(&results, "update.speedup_vs_recompute");
    positive(&results, "update.speedup_vs_recompute_p99");
    assert_eq!(results["update"]["speedup_graph_functions"], 2_000);
    assert_eq!(results["update"]["speedup_change_edges"], 1);
    let sizes = results["update"]["results"].as_array().unwrap();
    assert_eq!(sizes.len(), 2);
    for size in sizes {
        for part in ["verdicts", "conflicts", "reach", "observed_edges"] {
            assert_eq!(size["agree"][part], true, "{part}: {size}");
        }
        let changes = size["changes"].as_array().unwrap();
        assert_eq!(changes.len(), 3);
        for c in changes {
            for key in [
                "engine.p50_ms",
                "engine.p99_ms",
                "engine.max_ms",
                "recompute.p50_ms",
            ] {
                positive(c, key);
            }
            assert!(c["engine"]["p50_ms"].as_f64() <= c["engine"]["p99_ms"].as_f64());
            number(c, "speedup_p50");
        }
        positive(size, "load_seconds");
    }
}

#[test]
fn cascade() {
    let results = run(&plan(Suite::Cascade));
    let sizes = results["cascade"]["sizes"].as_array().unwrap();
    assert_eq!(sizes.len(), 2);
    for s in sizes {
        // The whole region flips (and the few functions only it calls).
        let flipped = s["flipped_functions"].as_u64().unwrap();
        let region = s["subtree_functions"].as_u64().unwrap();
        assert!(
            flipped >= region && flipped < region + region / 5 + 5,
            "{s}"
        );
        for key in ["engine_on.p50_ms", "engine_off.p50_ms", "recompute.p50_ms"] {
            positive(s, key);
        }
        positive(s, "engine_over_recompute");
        for part in ["verdicts", "conflicts", "reach", "observed_edges"] {
            assert_eq!(s["agree"][part], true, "{part}: {s}");
        }
    }
    positive(&results, "cascade.engine_over_recompute.10%");
}

#[test]
fn memory() {
    let mut plan = plan(Suite::Memory);
    // The crate's `bench-child` binary is the child.
    plan.memory.launcher = Some(Launcher {
        program: env!("CARGO_BIN_EXE_bench-child").into(),
        args: Vec::new(),
    });
    let results = run(&plan);
    assert_eq!(
        results["memory"]["live_edges"], 2_000,
        "{}",
        results["memory"]
    );
    positive(&results, "memory.peak_rss_mib");
    // A tiny run may not grow the peak RSS measurably: finite, not negative.
    assert!(number(&results, "memory.bytes_per_live_edge") >= 0.0);
    assert!(number(&results, "memory.ratio_vs_adjacency") >= 0.0);
    positive(&results, "memory.sizes.0.adjacency_bytes_per_edge");
}

#[test]
fn memory_without_a_launcher_is_skipped() {
    let results = run(&plan(Suite::Memory));
    assert!(results["memory"]["skipped"].is_string());
}

#[test]
fn replay() {
    let results = run(&plan(Suite::Replay));
    positive(&results, "replay.records_per_s");
    assert_eq!(results["replay"]["format"], "replay log (.tmlog)");
    // Graph, targets, the runtime records (watermarks among them), the final watermark.
    assert_eq!(results["replay"]["records"], 3_000 + 3);
}

#[test]
fn scale() {
    let results = run(&plan(Suite::Scale));
    positive(&results, "scale.ratio");
    let runs = results["scale"]["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for r in runs {
        positive(r, "records_per_s");
        positive(r, "busiest_thread_cpu_seconds");
        // One reader and one sink; an aggregator and a worker per worker.
        let workers = r["workers"].as_u64().unwrap() as usize;
        assert_eq!(r["threads"].as_array().unwrap().len(), 2 + 2 * workers);
        let busiest = r["busiest_thread_cpu_seconds"].as_f64().unwrap();
        assert!(busiest <= r["cpu_seconds"].as_f64().unwrap(), "{r}");
    }
    positive(&results, "scale.busiest_thread_ratio");
    assert_eq!(results["scale"]["same_digest"], true);
}

#[test]
fn probe() {
    let results = run(&plan(Suite::Probe));
    if let Some(why) = results["probe"]["skipped"].as_str() {
        return skip("probe", why);
    }
    assert!(results["probe"]["call"].is_object(), "{}", results["probe"]);
    positive(&results, "probe.drain.edges");
}

#[test]
fn etl() {
    let results = run(&plan(Suite::Etl));
    if let Some(why) = results["etl"]["skipped"].as_str() {
        return skip("etl", why);
    }
    assert!(!results["etl"]["files"].as_array().unwrap().is_empty());
    positive(&results, "etl.decode_mb_per_s");
}

#[test]
fn html_report_draws_the_plots() {
    let mut plan = Plan::tiny();
    plan.suites = vec![Suite::Update, Suite::Cascade, Suite::Scale];
    plan.update.sizes = vec![300, 600];
    plan.update.changes = vec![1, 10];
    plan.update.repeats = 2;
    plan.cascade.functions = 400;
    plan.cascade.fractions = vec![0.1];
    plan.scale.records = 1_000;
    plan.work_dir =
        std::env::temp_dir().join(format!("tracemerge-bench-test-{}-html", std::process::id()));
    let results = tracemerge_bench::run(&plan, &mut |_| {});
    let page = tracemerge_bench::html::report(&results);
    assert_eq!(page.matches("<svg").count(), 3, "{page}");
    assert!(!page.contains("NaN"));
    assert!(page.contains("Update latency vs graph size"));
    assert!(!page.contains("<script"));
}
