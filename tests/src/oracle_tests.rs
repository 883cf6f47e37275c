//! Hand-computed checks of the oracle itself, one rule of SEMANTICS.md at a time.

use tracemerge_records::{
    ArtifactReport, Config, Conflict, Hop, ObservedEdge, Reach, Record, Report, Resolution, State,
    Stats, Strategy, Verdict, Vex,
};

use crate::oracle::reports_at_watermarks;

fn recs(text: &str) -> Vec<Record> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| Record::from_json(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn report(text: &str, config: &Config) -> Report {
    crate::oracle::report(&recs(text), config)
}

fn cfg(ttl: u64, lateness: u64, strategy: &str, min_coverage: u64) -> Config {
    Config {
        ttl,
        lateness,
        strategy: strategy.parse().unwrap(),
        min_coverage,
        ..Config::default()
    }
}

fn art<'a>(r: &'a Report, name: &str) -> &'a ArtifactReport {
    r.artifacts
        .iter()
        .find(|a| a.artifact == name)
        .unwrap_or_else(|| panic!("no artifact {name} in {}", r.to_pretty_json()))
}

fn verdict<'a>(a: &'a ArtifactReport, target: &str) -> &'a Verdict {
    a.verdicts
        .iter()
        .find(|v| v.target == target)
        .unwrap_or_else(|| panic!("no verdict {target} in {a:?}"))
}

fn state(a: &ArtifactReport, target: &str) -> State {
    verdict(a, target).state
}

fn edge_conflict(
    caller: &str,
    callee: &str,
    resolution: Resolution,
    hits: u64,
    sources: u64,
) -> Conflict {
    Conflict::RuntimeEdgeNotInStatic {
        caller: caller.into(),
        callee: callee.into(),
        resolution,
        hits,
        sources,
    }
}

fn sym(kind: &str, s: &str) -> Conflict {
    let symbol = s.to_string();
    match kind {
        "unknown" => Conflict::UnknownSymbol { symbol },
        "unreachable" => Conflict::ExecutedButStaticallyUnreachable { symbol },
        "unobserved" => Conflict::ReachableButUnobserved { symbol },
        _ => unreachable!(),
    }
}

/// Sorted like the sealed report (kind name first, then subject).
fn sorted(mut v: Vec<Conflict>) -> Vec<Conflict> {
    v.sort_by(|x, y| (x.kind(), x).cmp(&(y.kind(), y)));
    v
}

#[test]
fn empty_stream() {
    let r = report("", &Config::default());
    assert_eq!(r.as_of, 0);
    assert_eq!(r.stats, Stats::default());
    assert!(r.artifacts.is_empty());
    assert!(r.digest_is_valid());
}

#[test]
fn as_of_rules() {
    // No watermark: the largest time of an applied record (coverage: `to`).
    let r = report(
        r#"{"type":"edge","artifact":"x","caller":"a","callee":"b","at":70}
           {"type":"coverage","artifact":"x","symbols":["a"],"from":10,"to":90}
           {"type":"hit","artifact":"x","symbol":"a","at":20}"#,
        &Config::default(),
    );
    assert_eq!(r.as_of, 90);
    assert_eq!(r.stats.records, 3);
    // With a watermark: W, even when records lie beyond it; a lower
    // watermark changes nothing; a record beyond W does not count yet.
    let text = r#"{"type":"watermark","at":50}
           {"type":"edge","artifact":"x","caller":"a","callee":"b","at":70}
           {"type":"watermark","at":40}
           {"type":"hit","artifact":"x","symbol":"a","at":45}"#;
    let c = cfg(600_000, 10, "union", 60_000);
    let r = report(text, &c);
    assert_eq!(r.as_of, 50);
    assert_eq!(r.stats.records, 4);
    assert_eq!(r.stats.late, 0, "45 >= 50 - 10 is not late");
    let a = art(&r, "x");
    assert!(a.observed_edges.is_empty(), "edge at 70 > as_of 50");
    assert_eq!(a.conflicts, vec![Conflict::NoStaticSnapshot {}]);
    // Once W passes 70 the edge counts: it was applied, not dropped.
    let r = report(&format!("{text}\n{{\"type\":\"watermark\",\"at\":80}}"), &c);
    assert_eq!(art(&r, "x").observed_edges.len(), 1);
    // With lateness 0 the hit at 45 is late.
    assert_eq!(report(text, &Config::default()).stats.late, 1);
    // A watermark at 0 still makes as_of = W = 0.
    let r = report(
        r#"{"type":"watermark","at":0}
           {"type":"hit","artifact":"x","symbol":"a","at":20}"#,
        &Config::default(),
    );
    assert_eq!(r.as_of, 0);
    assert!(r.artifacts.is_empty());
}

/// One report per advancing watermark; it sees every applied record at or
/// before the watermark, also one that arrives after it within lateness.
#[test]
fn reports_per_advancing_watermark() {
    let records = recs(
        r#"{"type":"hit","artifact":"x","symbol":"a","at":5}
           {"type":"watermark","at":10}
           {"type":"hit","artifact":"w","symbol":"a","at":7}
           {"type":"hit","artifact":"v","symbol":"a","at":3}
           {"type":"watermark","at":8}
           {"type":"hit","artifact":"y","symbol":"a","at":12}
           {"type":"watermark","at":20}
           {"type":"hit","artifact":"z","symbol":"a","at":25}"#,
    );
    // lateness 4: after W = 10 the cutoff is 6: w (7) is applied, v (3) is late.
    let reports = reports_at_watermarks(&records, &cfg(100, 4, "union", 0));
    assert_eq!(
        reports.iter().map(|r| r.as_of).collect::<Vec<_>>(),
        vec![10, 20]
    );
    assert_eq!(
        reports
            .iter()
            .map(|r| (r.stats.records, r.stats.late))
            .collect::<Vec<_>>(),
        vec![(2, 0), (7, 1)]
    );
    let names = |r: &Report| {
        r.artifacts
            .iter()
            .map(|a| a.artifact.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(&reports[0]),
        vec!["w", "x"],
        "w arrived after W but within the bound"
    );
    assert_eq!(names(&reports[1]), vec!["w", "x", "y"]);
    assert_eq!(
        reports[1],
        crate::oracle::report(&records[..7], &cfg(100, 4, "union", 0))
    );
}

#[test]
fn late_records() {
    // lateness 10, W = 100: cutoff 90.
    let r = report(
        r#"{"type":"watermark","at":100}
           {"type":"hit","artifact":"x","symbol":"a","at":89}
           {"type":"hit","artifact":"x","symbol":"b","at":90}
           {"type":"edge","artifact":"x","caller":"c","callee":"d","at":89,"event_id":"e1"}
           {"type":"edge","artifact":"x","caller":"c","callee":"d","at":95,"event_id":"e1"}
           {"type":"coverage","artifact":"x","symbols":["t"],"from":0,"to":89}
           {"type":"coverage","artifact":"x","symbols":["t"],"from":0,"to":90}
           {"type":"graph","artifact":"g","at":50,"nodes":["m"],"edges":[]}
           {"type":"targets","artifact":"g","at":89,"symbols":["m"]}
           {"type":"watermark","at":5}"#,
        &cfg(1000, 10, "union", 50),
    );
    assert_eq!(r.stats.records, 10);
    // hit@89, edge@89 (its id is not registered), coverage to 89, graph@50, targets@89.
    assert_eq!(r.stats.late, 5);
    assert_eq!(
        r.stats.duplicate, 0,
        "the late first copy was never applied"
    );
    let x = art(&r, "x");
    assert_eq!(x.observed_edges.len(), 1);
    assert_eq!(x.observed_edges[0].first_seen, 95);
    assert!(
        r.artifacts.iter().all(|a| a.artifact != "g"),
        "g's records were all late"
    );
    // Saturating cutoff: W − lateness below 0 is 0, nothing is late.
    let r = report(
        r#"{"type":"watermark","at":5}
           {"type":"hit","artifact":"x","symbol":"a","at":0}"#,
        &cfg(1000, 10, "union", 50),
    );
    assert_eq!(r.stats.late, 0);
    // With lateness 0 a record exactly at W is on time, below W late.
    let r = report(
        r#"{"type":"watermark","at":5}
           {"type":"hit","artifact":"x","symbol":"a","at":5}
           {"type":"hit","artifact":"x","symbol":"a","at":4}"#,
        &cfg(1000, 0, "union", 50),
    );
    assert_eq!(r.stats.late, 1);
    assert_eq!(r.stats.records, 3);
}

#[test]
fn duplicate_event_ids() {
    let r = report(
        r#"{"type":"edge","artifact":"x","caller":"a","callee":"b","at":10,"hits":2,"source":"s1","event_id":"e1"}
           {"type":"edge","artifact":"x","caller":"a","callee":"b","at":10,"hits":2,"source":"s1","event_id":"e1"}
           {"type":"edge","artifact":"x","caller":"a","callee":"b","at":12,"hits":5,"source":"s2","event_id":"e2"}
           {"type":"hit","artifact":"y","symbol":"q","at":12,"event_id":"e2"}
           {"type":"edge","artifact":"x","caller":"a","callee":"b","at":11,"hits":7,"source":"s3"}
           {"type":"edge","artifact":"x","caller":"a","callee":"b","at":11,"hits":7,"source":"s3"}
           {"type":"watermark","at":20}"#,
        &cfg(1000, 0, "union", 50),
    );
    // The second e1 and the hit reusing e2 (ids are global) are duplicates;
    // records without an id are never duplicates.
    assert_eq!(r.stats.duplicate, 2);
    assert_eq!(r.stats.records, 7);
    let x = art(&r, "x");
    assert_eq!(
        x.observed_edges,
        vec![ObservedEdge {
            caller: "a".into(),
            callee: "b".into(),
            hits: 2 + 5 + 7 + 7,
            first_seen: 10,
            last_seen: 12,
            sources: 3,
            in_static: false,
            estimated: false,
        }]
    );
    assert!(r.artifacts.iter().all(|a| a.artifact != "y"));

    // Ids are forgotten once their record's time falls behind W − lateness:
    // a later copy with a newer time is applied again.
    let r = report(
        r#"{"type":"hit","artifact":"x","symbol":"a","at":10,"event_id":"e"}
           {"type":"watermark","at":14}
           {"type":"hit","artifact":"x","symbol":"b","at":20,"event_id":"e"}
           {"type":"watermark","at":16}
           {"type":"hit","artifact":"x","symbol":"c","at":20,"event_id":"e"}
           {"type":"watermark","at":30}"#,
        &cfg(1000, 5, "union", 50),
    );
    // At the first copy of b: W=14, cutoff 9 ≤ 10 → still remembered → duplicate.
    // At c: W=16, cutoff 11 > 10 → forgotten... but b was never applied, so
    // c is applied and remembered at 20.
    assert_eq!(r.stats.duplicate, 1);
    let x = art(&r, "x");
    assert_eq!(x.conflicts, vec![Conflict::NoStaticSnapshot {}]);
    let r2 = report(
        r#"{"type":"hit","artifact":"x","symbol":"a","at":10,"event_id":"e"}
           {"type":"hit","artifact":"x","symbol":"a","at":10,"event_id":"e"}
           {"type":"targets","artifact":"x","at":0,"symbols":["a","b","c"]}
           {"type":"watermark","at":16}
           {"type":"hit","artifact":"x","symbol":"b","at":20,"event_id":"e"}
           {"type":"hit","artifact":"x","symbol":"c","at":20,"event_id":"e"}
           {"type":"watermark","at":30}"#,
        &cfg(1000, 5, "union", 50),
    );
    assert_eq!(r2.stats.duplicate, 2);
    let x = art(&r2, "x");
    assert_eq!(state(x, "a"), State::RuntimeObserved);
    assert_eq!(state(x, "b"), State::RuntimeObserved);
    assert_eq!(state(x, "c"), State::Unknown);
}

/// Every one of the eight states, and the VEX mapping.
#[test]
fn all_lattice_states() {
    let r = report(
        r#"{"type":"graph","artifact":"app","at":0,"nodes":["main","a","b","c","d","e","f"],"edges":[["main","a"],["a","b"],["c","d"]],"entrypoints":["main"]}
           {"type":"targets","artifact":"app","at":0,"symbols":["a","b","c","d","e","f","zz"]}
           {"type":"hit","artifact":"app","symbol":"a","at":100}
           {"type":"hit","artifact":"app","symbol":"c","at":100}
           {"type":"coverage","artifact":"app","symbols":["b","d","zz"],"from":0,"to":100}
           {"type":"coverage","artifact":"app","symbols":["f"],"from":0,"to":49}
           {"type":"targets","artifact":"lib","at":0,"symbols":["x","y","z"]}
           {"type":"hit","artifact":"lib","symbol":"x","at":100}
           {"type":"coverage","artifact":"lib","symbols":["y"],"from":50,"to":100}
           {"type":"coverage","artifact":"lib","symbols":["z"],"from":80,"to":100}
           {"type":"watermark","at":150}"#,
        &cfg(1000, 0, "union", 50),
    );
    let app = art(&r, "app");
    let expect = [
        ("a", State::ConfirmedReachable, Vex::Affected),
        ("b", State::StaticReachable, Vex::Affected), // reachable, covered 100, not run
        ("c", State::Contested, Vex::UnderInvestigation),
        ("d", State::ConfirmedUnreachable, Vex::NotAffected),
        ("e", State::StaticUnreachable, Vex::NotAffected),
        ("f", State::StaticUnreachable, Vex::NotAffected), // covered 49 < 50
        ("zz", State::ConfirmedUnreachable, Vex::NotAffected), // not a node: unreachable
    ];
    for (t, s, v) in expect {
        assert_eq!(state(app, t), s, "{t}");
        assert_eq!(verdict(app, t).vex, v, "{t}");
    }
    let lib = art(&r, "lib");
    assert_eq!(lib.reach, Reach::default());
    for (t, s, v) in [
        ("x", State::RuntimeObserved, Vex::Affected),
        ("y", State::RuntimeUnobserved, Vex::UnderInvestigation),
        ("z", State::Unknown, Vex::UnderInvestigation), // covered 20 < 50
    ] {
        assert_eq!(state(lib, t), s, "{t}");
        assert_eq!(verdict(lib, t).vex, v, "{t}");
        assert_eq!(verdict(lib, t).path, None);
    }
    assert_eq!(lib.conflicts, vec![Conflict::NoStaticSnapshot {}]);
    assert_eq!(
        app.conflicts,
        sorted(vec![sym("unreachable", "c"), sym("unobserved", "b")])
    );
    assert_eq!(
        app.reach,
        Reach {
            static_: 3,
            runtime: 1,
            effective: 3
        }
    );
    // Paths: only for effectively reachable targets.
    assert_eq!(
        verdict(app, "b").path,
        Some(vec!["main".into(), "a".into(), "b".into()])
    );
    assert_eq!(verdict(app, "b").hops, Some(vec![Hop::Static, Hop::Static]));
    assert_eq!(verdict(app, "c").path, None);
    assert_eq!(verdict(app, "c").hops, None);
}

/// min_coverage 0: only live coverage makes a target unobserved, even a
/// zero-length interval; no coverage leaves the runtime side empty.
#[test]
fn zero_min_coverage_needs_some_coverage() {
    let r = report(
        r#"{"type":"graph","artifact":"app","at":0,"nodes":["main","b"],"edges":[["main","b"]],"entrypoints":["main"]}
           {"type":"targets","artifact":"app","at":0,"symbols":["b","q","r"]}
           {"type":"targets","artifact":"lib","at":0,"symbols":["y"]}
           {"type":"coverage","artifact":"app","symbols":["r"],"from":5,"to":5}
           {"type":"watermark","at":10}"#,
        &cfg(1000, 0, "union", 0),
    );
    let app = art(&r, "app");
    assert_eq!(state(app, "b"), State::StaticReachable);
    assert_eq!(state(app, "q"), State::StaticUnreachable);
    assert_eq!(state(app, "r"), State::ConfirmedUnreachable);
    assert!(app.conflicts.is_empty());
    assert_eq!(state(art(&r, "lib"), "y"), State::Unknown);
}

#[test]
fn coverage_union_and_ttl() {
    // Coverage is live on [to, to + ttl); intervals are not clipped.
    let text = r#"{"type":"targets","artifact":"x","at":0,"symbols":["t"]}
           {"type":"coverage","artifact":"x","symbols":["t","u"],"from":0,"to":30}
           {"type":"coverage","artifact":"x","symbols":["t"],"from":20,"to":60}
           {"type":"coverage","artifact":"x","symbols":["u"],"from":60,"to":100}
           {"type":"coverage","artifact":"y","symbols":["t"],"from":0,"to":100}"#;
    let at = |w: u64, min: u64| {
        let r = report(
            &format!("{text}\n{{\"type\":\"watermark\",\"at\":{w}}}"),
            &cfg(50, 0, "union", min),
        );
        state(art(&r, "x"), "t")
    };
    assert_eq!(at(60, 60), State::RuntimeUnobserved); // [0,60) = 60
    assert_eq!(at(60, 61), State::Unknown);
    assert_eq!(at(79, 60), State::RuntimeUnobserved); // first record live until 80
    assert_eq!(at(80, 60), State::Unknown); // only [20,60) = 40 left
    assert_eq!(at(80, 40), State::RuntimeUnobserved);
    assert_eq!(at(110, 1), State::Unknown); // 60 + 50 = 110: expired
    assert_eq!(at(29, 1), State::Unknown); // nothing ended yet
}

#[test]
fn ttl_expiry_of_edges_and_hits() {
    let text = r#"{"type":"graph","artifact":"x","at":0,"nodes":["m","a"],"edges":[["m","a"]],"entrypoints":["m"]}
           {"type":"targets","artifact":"x","at":0,"symbols":["a"]}
           {"type":"edge","artifact":"x","caller":"m","callee":"a","at":100,"hits":2,"source":"s"}
           {"type":"edge","artifact":"x","caller":"m","callee":"a","at":120,"hits":3,"source":"s"}
           {"type":"hit","artifact":"y","symbol":"h","at":100}"#;
    let at = |w: u64| {
        report(
            &format!("{text}\n{{\"type\":\"watermark\",\"at\":{w}}}"),
            &cfg(50, 0, "union", 10),
        )
    };
    let r = at(99);
    assert!(art(&r, "x").observed_edges.is_empty());
    assert_eq!(state(art(&r, "x"), "a"), State::StaticReachable);
    assert!(r.artifacts.iter().all(|a| a.artifact != "y"));
    let r = at(149);
    let e = &art(&r, "x").observed_edges[0];
    assert_eq!(
        (e.hits, e.first_seen, e.last_seen, e.sources, e.in_static),
        (5, 100, 120, 1, true)
    );
    assert_eq!(state(art(&r, "x"), "a"), State::ConfirmedReachable);
    assert_eq!(verdict(art(&r, "x"), "a").hops, Some(vec![Hop::Both]));
    assert_eq!(art(&r, "y").conflicts, vec![Conflict::NoStaticSnapshot {}]);
    let r = at(150); // the first observation expired: re-observation extends
    let e = &art(&r, "x").observed_edges[0];
    assert_eq!((e.hits, e.first_seen, e.last_seen), (3, 120, 120));
    assert!(
        r.artifacts.iter().all(|a| a.artifact != "y"),
        "y only had an expired hit"
    );
    let r = at(170);
    assert!(art(&r, "x").observed_edges.is_empty());
    assert_eq!(state(art(&r, "x"), "a"), State::StaticReachable);
    assert_eq!(verdict(art(&r, "x"), "a").hops, Some(vec![Hop::Static]));
    // ttl 0: nothing is ever live.
    let r = report(
        &format!("{text}\n{{\"type\":\"watermark\",\"at\":100}}"),
        &cfg(0, 0, "union", 10),
    );
    assert!(art(&r, "x").observed_edges.is_empty());
}

#[test]
fn snapshot_replacement() {
    let g1 = r#"{"type":"graph","artifact":"x","at":10,"nodes":["m","a"],"edges":[["m","a"]],"entrypoints":["m"]}"#;
    let g2 = r#"{"type":"graph","artifact":"x","at":20,"nodes":["m","b"],"edges":[["m","b"]],"entrypoints":["m"]}"#;
    let g3 = r#"{"type":"graph","artifact":"x","at":40,"nodes":["m","c"],"edges":[["m","c"]],"entrypoints":["m"]}"#;
    let t = r#"{"type":"targets","artifact":"x","at":0,"symbols":["a","b","c"]}"#;
    let check = |order: &[&str], w: u64, expect: [State; 3]| {
        let text = format!(
            "{}\n{t}\n{{\"type\":\"watermark\",\"at\":{w}}}",
            order.join("\n")
        );
        let r = report(&text, &cfg(1000, 100, "union", 10));
        let x = art(&r, "x");
        assert_eq!(
            [state(x, "a"), state(x, "b"), state(x, "c")],
            expect,
            "{order:?} at {w}"
        );
    };
    use State::{StaticReachable as R, StaticUnreachable as U};
    // Arrival order does not matter; the largest at ≤ T wins.
    for order in [[g1, g2, g3], [g3, g2, g1], [g2, g1, g3]] {
        check(&order, 15, [R, U, U]);
        check(&order, 20, [U, R, U]);
        check(&order, 39, [U, R, U]);
        check(&order, 40, [U, U, R]);
    }
    // Before any snapshot: no static side.
    let r = report(
        &format!("{g2}\n{t}\n{{\"type\":\"watermark\",\"at\":5}}"),
        &cfg(1000, 100, "union", 10),
    );
    assert_eq!(state(art(&r, "x"), "b"), State::Unknown);

    // Same at: the greater (nodes, edges, entrypoints) as sorted sets wins,
    // whatever the arrival order and however the record lists them:
    //   p: ({a,m}, {(m,a)}, {m})
    //   q: ({b,m}, {(m,b)}, {m})   (greater: "b" > "a")
    let p = r#"{"type":"graph","artifact":"x","at":20,"nodes":["m","a"],"edges":[["m","a"]],"entrypoints":["m"]}"#;
    let q = r#"{"type":"graph","artifact":"x","at":20,"nodes":["m","b"],"edges":[{"caller":"m","callee":"b","kind":"heuristic"}],"entrypoints":["m","m"]}"#;
    for order in [[p, q], [q, p]] {
        check(&order, 30, [U, R, U]);
    }
    // Edge pairs decide when the nodes are equal:
    //   r: ({a,b,m}, {(m,a),(m,b)}, {m}) vs s: ({a,b,m}, {(m,b)}, {m})
    //   at the first edge: "a" < "b", so s is greater.
    let r_ = r#"{"type":"graph","artifact":"x","at":20,"nodes":["m","a","b"],"edges":[["m","a"],["m","b"]],"entrypoints":["m"]}"#;
    let s_ = r#"{"type":"graph","artifact":"x","at":20,"nodes":["b","a","m"],"edges":[["m","b"]],"entrypoints":["m"]}"#;
    for order in [[r_, s_], [s_, r_]] {
        check(&order, 30, [U, R, U]);
    }
    // Edges compare as sets: t's duplicate collapses, t: {(m,a)} is a
    // prefix of u: {(m,a),(m,b)}, so u is greater.
    let t_ = r#"{"type":"graph","artifact":"x","at":20,"nodes":["a","b","m"],"edges":[["m","a"],{"caller":"m","callee":"a","kind":"heuristic"}],"entrypoints":["m"]}"#;
    let u_ = r#"{"type":"graph","artifact":"x","at":20,"nodes":["a","b","m"],"edges":[["m","a"],["m","b"]],"entrypoints":["m"]}"#;
    for order in [[t_, u_], [u_, t_]] {
        check(&order, 30, [R, R, U]);
    }
    // Targets replace too (same rule); an empty later set empties it.
    let text = r#"{"type":"targets","artifact":"x","at":5,"symbols":["a"]}
        {"type":"targets","artifact":"x","at":9,"symbols":["b","b"]}
        {"type":"targets","artifact":"x","at":9,"symbols":["a"]}
        {"type":"targets","artifact":"x","at":12,"symbols":[]}"#;
    let at = |w: u64| {
        report(
            &format!("{text}\n{{\"type\":\"watermark\",\"at\":{w}}}"),
            &cfg(1000, 100, "union", 10),
        )
    };
    let names = |r: &Report| {
        r.artifacts.first().map(|a| {
            a.verdicts
                .iter()
                .map(|v| v.target.clone())
                .collect::<Vec<_>>()
        })
    };
    assert_eq!(names(&at(6)), Some(vec!["a".to_string()]));
    assert_eq!(names(&at(10)), Some(vec!["b".to_string()]));
    assert_eq!(
        names(&at(12)),
        None,
        "empty target set and nothing else: not listed"
    );
}

#[test]
fn strategies_and_quarantine() {
    let text = r#"{"type":"graph","artifact":"x","at":0,"nodes":["m","a","b","q"],"edges":[["m","a"]],"entrypoints":["m"]}
        {"type":"targets","artifact":"x","at":0,"symbols":["b","q","p"]}
        {"type":"edge","artifact":"x","caller":"a","callee":"b","at":10,"hits":2,"source":"s1"}
        {"type":"edge","artifact":"x","caller":"a","callee":"b","at":11,"hits":1,"source":"s2"}
        {"type":"edge","artifact":"x","caller":"a","callee":"q","at":10,"hits":9,"source":"s1"}
        {"type":"edge","artifact":"x","caller":"a","callee":"q","at":10,"hits":9,"source":"s2"}
        {"type":"edge","artifact":"x","caller":"b","callee":"p","at":10,"hits":9}
        {"type":"edge","artifact":"x","caller":"b","callee":"p","at":10,"hits":9,"source":"s9"}
        {"type":"edge","artifact":"x","caller":"m","callee":"a","at":10,"hits":1,"source":"s1"}
        {"type":"watermark","at":20}"#;
    let run = |strategy: &str, quarantine: &str| {
        let mut c = cfg(1000, 0, strategy, 10);
        c.add_quarantine(quarantine).unwrap();
        report(text, &c)
    };
    use Resolution::*;
    // a→b: 3 hits, 2 sources; a→q: 18 hits, 2 sources; b→p: 18 hits, 2
    // sources ("" and "s9"), p is not a node (no edge conflict, unknown_symbol).
    let cases: [(&str, &str, Resolution, Resolution, u64); 6] = [
        ("union", "", Accepted, Accepted, 5),
        ("static", "", Rejected, Rejected, 2),
        ("quorum:3:2", "", Accepted, Accepted, 5),
        ("quorum:4:2", "", Pending, Accepted, 3),
        ("quorum:1:3", "", Pending, Pending, 2),
        ("union", "q\nb -> p", Accepted, Quarantined, 3),
    ];
    for (strategy, quarantine, ab, aq, effective) in cases {
        let r = run(strategy, quarantine);
        let x = art(&r, "x");
        let expect = sorted(vec![
            edge_conflict("a", "b", ab, 3, 2),
            edge_conflict("a", "q", aq, 18, 2),
            sym("unreachable", "b"),
            sym("unreachable", "q"),
            sym("unknown", "p"),
        ]);
        assert_eq!(x.conflicts, expect, "{strategy} {quarantine:?}");
        assert_eq!(x.reach.static_, 2, "{strategy}");
        assert_eq!(
            x.reach.runtime, 5,
            "{strategy}: quarantined edges still count"
        );
        assert_eq!(x.reach.effective, effective, "{strategy} {quarantine:?}");
        assert_eq!(r.config.strategy.to_string(), strategy);
    }
    // b → p accepted under union: p (not a node) is effectively reachable,
    // via runtime hops, yet statically unreachable and executed: contested.
    let r = run("union", "");
    let x = art(&r, "x");
    assert_eq!(state(x, "p"), State::Contested);
    assert_eq!(
        verdict(x, "p").path,
        Some(vec!["m".into(), "a".into(), "b".into(), "p".into()])
    );
    assert_eq!(
        verdict(x, "p").hops,
        Some(vec![Hop::Both, Hop::Runtime, Hop::Runtime])
    );
    // Under static the effective graph is the static one.
    let r = run("static", "");
    assert_eq!(verdict(art(&r, "x"), "b").path, None);
    // Quarantine of the callee symbol.
    let r = run("union", "b");
    let x = art(&r, "x");
    assert!(x
        .conflicts
        .contains(&edge_conflict("a", "b", Quarantined, 3, 2)));
    assert_eq!(x.reach.effective, 3, "m, a, q");
    assert_eq!(r.config.quarantine_symbols.len(), 1);
    // Quarantine of the caller symbol.
    let r = run("union", "a");
    let x = art(&r, "x");
    assert!(x
        .conflicts
        .contains(&edge_conflict("a", "q", Quarantined, 18, 2)));
    assert_eq!(x.reach.effective, 2);
    assert!(!x.conflicts.iter().any(|c| matches!(
        c,
        Conflict::RuntimeEdgeNotInStatic {
            resolution: Accepted,
            ..
        }
    )));
}

#[test]
fn artifact_without_snapshot_gets_only_no_static_snapshot() {
    let r = report(
        r#"{"type":"edge","artifact":"x","caller":"a","callee":"b","at":10}
           {"type":"targets","artifact":"x","at":0,"symbols":["b"]}
           {"type":"coverage","artifact":"c","symbols":["b"],"from":0,"to":10}
           {"type":"targets","artifact":"t","at":0,"symbols":["b"]}
           {"type":"watermark","at":20}"#,
        &cfg(1000, 0, "quorum:5:5", 10),
    );
    assert_eq!(
        r.artifacts.len(),
        2,
        "coverage alone does not list an artifact"
    );
    let x = art(&r, "x");
    assert_eq!(x.conflicts, vec![Conflict::NoStaticSnapshot {}]);
    assert_eq!(x.reach, Reach::default());
    assert!(!x.observed_edges[0].in_static);
    assert_eq!(state(x, "b"), State::RuntimeObserved);
    assert_eq!(verdict(x, "b").path, None);
    let t = art(&r, "t");
    assert!(t.conflicts.is_empty());
    assert_eq!(state(t, "b"), State::Unknown);
}

#[test]
fn conflicts_with_a_snapshot() {
    let r = report(
        r#"{"type":"graph","artifact":"x","at":0,"nodes":["m","a","b","c","u"],"edges":[["m","a"],["a","b"],["u","c"]],"entrypoints":["m"]}
           {"type":"targets","artifact":"x","at":0,"symbols":["b","c","a"]}
           {"type":"edge","artifact":"x","caller":"m","callee":"a","at":10,"source":"s"}
           {"type":"edge","artifact":"x","caller":"u","callee":"u","at":10,"source":"s"}
           {"type":"edge","artifact":"x","caller":"c","callee":"ghost","at":10,"source":"s"}
           {"type":"hit","artifact":"x","symbol":"c","at":10}
           {"type":"hit","artifact":"x","symbol":"zz","at":10}
           {"type":"coverage","artifact":"x","symbols":["b","c","a"],"from":0,"to":10}
           {"type":"watermark","at":20}"#,
        &cfg(1000, 0, "union", 10),
    );
    let x = art(&r, "x");
    assert_eq!(
        x.conflicts,
        sorted(vec![
            edge_conflict("u", "u", Resolution::Accepted, 1, 1), // self loop
            sym("unreachable", "u"),
            sym("unreachable", "c"),
            sym("unknown", "ghost"),
            sym("unknown", "zz"),
            sym("unobserved", "b"),
        ])
    );
    // Sorted by kind name, then subject.
    assert_eq!(
        x.conflicts.iter().map(|c| c.kind()).collect::<Vec<_>>(),
        vec![
            "executed_but_statically_unreachable",
            "executed_but_statically_unreachable",
            "reachable_but_unobserved",
            "runtime_edge_not_in_static",
            "unknown_symbol",
            "unknown_symbol",
        ]
    );
    assert_eq!(
        x.reach,
        Reach {
            static_: 3,
            runtime: 2,
            effective: 3
        }
    );
    assert_eq!(state(x, "a"), State::ConfirmedReachable);
    assert_eq!(state(x, "b"), State::StaticReachable);
    assert_eq!(state(x, "c"), State::Contested);
    let in_static: Vec<_> = x
        .observed_edges
        .iter()
        .map(|e| (e.callee.as_str(), e.in_static))
        .collect();
    assert_eq!(in_static, vec![("ghost", false), ("a", true), ("u", false)]);
}

#[test]
fn witness_path_tie_break() {
    // Two shortest paths to t: m→b→t and m→a→t (a < b), plus e2→t at the
    // same depth from a second entrypoint; and a longer one m→z→y→t.
    let r = report(
        r#"{"type":"graph","artifact":"x","at":0,"nodes":["m","a","b","t","z","y","e2","c","d"],"edges":[["m","b"],["b","t"],["m","z"],["z","y"],["y","t"],["e2","c"],["c","t"],["m","m"]],"entrypoints":["m","e2"]}
           {"type":"targets","artifact":"x","at":0,"symbols":["t","m","d","y"]}
           {"type":"edge","artifact":"x","caller":"m","callee":"a","at":10,"source":"s"}
           {"type":"edge","artifact":"x","caller":"a","callee":"t","at":10,"source":"s"}
           {"type":"edge","artifact":"x","caller":"b","callee":"t","at":10,"source":"s"}
           {"type":"edge","artifact":"x","caller":"d","callee":"d","at":10,"source":"s"}
           {"type":"watermark","at":20}"#,
        &cfg(1000, 0, "union", 10),
    );
    let x = art(&r, "x");
    let path = |t: &str| verdict(x, t).path.clone();
    let hops = |t: &str| verdict(x, t).hops.clone();
    // parent(t) is the smallest of {a, b, c} at distance 1: a.
    assert_eq!(path("t"), Some(vec!["m".into(), "a".into(), "t".into()]));
    assert_eq!(hops("t"), Some(vec![Hop::Runtime, Hop::Runtime]));
    // An entrypoint target: a path of one symbol, no hops.
    assert_eq!(path("m"), Some(vec!["m".into()]));
    assert_eq!(hops("m"), Some(vec![]));
    // A self loop reaching nothing new; d is not reachable.
    assert_eq!(path("d"), None);
    assert_eq!(path("y"), Some(vec!["m".into(), "z".into(), "y".into()]));
    assert_eq!(hops("y"), Some(vec![Hop::Static, Hop::Static]));
    assert_eq!(
        x.reach,
        Reach {
            static_: 7,
            runtime: 4,
            effective: 8
        }
    );
    // Without the runtime edges: b (with b→t both) wins over c.
    let r = report(
        r#"{"type":"graph","artifact":"x","at":0,"nodes":["m","b","t","e2","c"],"edges":[["m","b"],["b","t"],["e2","c"],["c","t"]],"entrypoints":["e2","m"]}
           {"type":"targets","artifact":"x","at":0,"symbols":["t"]}
           {"type":"edge","artifact":"x","caller":"b","callee":"t","at":10,"source":"s"}
           {"type":"watermark","at":20}"#,
        &cfg(1000, 0, "union", 10),
    );
    let x = art(&r, "x");
    assert_eq!(
        verdict(x, "t").path,
        Some(vec!["m".into(), "b".into(), "t".into()])
    );
    assert_eq!(verdict(x, "t").hops, Some(vec![Hop::Static, Hop::Both]));
    assert_eq!(state(x, "t"), State::ConfirmedReachable);
    // And byte order, not alphabetical ignoring case: "B" < "a".
    let r = report(
        r#"{"type":"graph","artifact":"x","at":0,"nodes":["m","a","B","t"],"edges":[["m","a"],["m","B"],["a","t"],["B","t"]],"entrypoints":["m"]}
           {"type":"targets","artifact":"x","at":0,"symbols":["t"]}
           {"type":"watermark","at":20}"#,
        &cfg(1000, 0, "union", 10),
    );
    assert_eq!(
        verdict(art(&r, "x"), "t").path,
        Some(vec!["m".into(), "B".into(), "t".into()])
    );
}

#[test]
fn sources_count_distinct_strings_including_empty() {
    let r = report(
        r#"{"type":"edge","artifact":"x","caller":"a","callee":"b","at":10}
           {"type":"edge","artifact":"x","caller":"a","callee":"b","at":11,"source":""}
           {"type":"edge","artifact":"x","caller":"a","callee":"b","at":12,"source":"h"}
           {"type":"edge","artifact":"x","caller":"b","callee":"a","at":12,"source":"h"}
           {"type":"watermark","at":20}"#,
        &cfg(1000, 0, "union", 10),
    );
    let x = art(&r, "x");
    assert_eq!(x.observed_edges[0].sources, 2);
    assert_eq!(x.observed_edges[0].hits, 3);
    assert_eq!(x.observed_edges[1].sources, 1);
}

#[test]
fn report_is_sealed_and_config_is_printed() {
    let mut c = cfg(1000, 7, "quorum:2:1", 10);
    c.add_quarantine("evil\na -> b\n").unwrap();
    let r = report(
        r#"{"type":"hit","artifact":"b","symbol":"a","at":1}
           {"type":"hit","artifact":"a","symbol":"a","at":1}"#,
        &c,
    );
    assert!(r.digest_is_valid());
    assert_eq!(r.config, c);
    assert_eq!(
        r.artifacts
            .iter()
            .map(|a| a.artifact.as_str())
            .collect::<Vec<_>>(),
        ["a", "b"]
    );
    let text = String::from_utf8(r.canonical_bytes()).unwrap();
    assert!(text.contains(r#""strategy":"quorum:2:1""#), "{text}");
    assert_eq!(
        Strategy::Quorum {
            hits: 2,
            sources: 1
        },
        c.strategy
    );
}
