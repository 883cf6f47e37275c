//! The example stream of DESIGN.md §3, merged end to end.

use tracemerge_dataflow::{merge_records, reports_at_watermarks};
use tracemerge_records::{Config, Record, State};

fn design_stream() -> Vec<Record> {
    [
        r#"{"type":"graph","artifact":"shop@1.4","at":0,"nodes":["main","a","b"],"edges":[["main","a"],["a","b"]],"entrypoints":["main"]}"#,
        r#"{"type":"targets","artifact":"shop@1.4","at":0,"symbols":["b","vuln_fn"]}"#,
        r#"{"type":"edge","artifact":"shop@1.4","caller":"main","callee":"a","at":1000,"hits":3,"source":"ebpf:host-1"}"#,
        r#"{"type":"hit","artifact":"shop@1.4","symbol":"a","at":1000,"hits":1,"source":"etw:host-2"}"#,
        r#"{"type":"coverage","artifact":"shop@1.4","symbols":["a","b"],"from":0,"to":5000,"source":"ebpf:host-1"}"#,
        r#"{"type":"watermark","at":10000}"#,
    ]
    .iter()
    .map(|l| Record::from_json(l).unwrap())
    .collect()
}

#[test]
fn design_example_report() {
    let config = Config {
        min_coverage: 1000,
        ..Config::default()
    };
    let report = merge_records(&design_stream(), &config, 1).unwrap();
    assert_eq!(report.as_of, 10000);
    assert_eq!(report.stats.records, 6);
    let a = &report.artifacts[0];
    assert_eq!(a.artifact, "shop@1.4");
    assert_eq!(a.observed_edges.len(), 1);
    let e = &a.observed_edges[0];
    assert_eq!(
        (e.hits, e.first_seen, e.sources, e.in_static),
        (3, 1000, 1, true)
    );
    assert_eq!(
        (a.reach.static_, a.reach.runtime, a.reach.effective),
        (3, 2, 3)
    );
    let b = a.verdicts.iter().find(|v| v.target == "b").unwrap();
    // b is statically reachable, covered for 5 s and never ran.
    assert_eq!(b.state, State::StaticReachable);
    assert_eq!(
        b.path.as_deref(),
        Some(&["main".to_string(), "a".into(), "b".into()][..])
    );
    let vuln = a.verdicts.iter().find(|v| v.target == "vuln_fn").unwrap();
    // The artifact has a snapshot and vuln_fn is not in it: unreachable.
    assert_eq!(vuln.state, State::StaticUnreachable);
    assert!(vuln.path.is_none());
    let kinds: Vec<_> = a.conflicts.iter().map(|c| c.kind()).collect();
    assert_eq!(kinds, ["reachable_but_unobserved"]);
    assert!(report.digest_is_valid());
}

#[test]
fn same_digest_for_any_worker_count() {
    let config = Config::default();
    let one = merge_records(&design_stream(), &config, 1).unwrap();
    for workers in [2, 3] {
        assert_eq!(
            merge_records(&design_stream(), &config, workers)
                .unwrap()
                .digest,
            one.digest
        );
    }
    assert_eq!(
        reports_at_watermarks(&design_stream(), &config, 2).unwrap(),
        vec![one]
    );
}
