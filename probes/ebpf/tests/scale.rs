//! 10,000 probed functions: attach plus detach within 2 s, and every one of
//! the 10,000 edges counted exactly once.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tracemerge_ebpf::exact::{Config, Session};
use tracemerge_records::Record;

#[test]
fn ten_thousand_functions() {
    let Some(_guard) = common::bpf_or_skip("ten_thousand_functions") else {
        return;
    };
    let dir = common::scratch("scale");
    let exe = tracemerge_ebpf::bench::generate_program(&dir, 10_000).unwrap();

    // Attach + detach time of the probes themselves (one uprobe_multi link).
    let mut config = Config::new(&exe);
    config.functions = Some((0..10_000).map(|i| format!("f{i}")).collect());
    let started = Instant::now();
    let mut session = Session::attach(&config).unwrap();
    assert_eq!(session.functions().len(), 10_000);
    session.detach();
    let total = started.elapsed();
    let s = session.summary();
    eprintln!(
        "load {:?} attach {:?} detach {:?} total {:?}",
        s.load, s.attach, s.detach, total
    );
    assert!(
        s.attach + s.detach < Duration::from_secs(2),
        "attach {:?} + detach {:?}",
        s.attach,
        s.detach
    );
    assert!(total < Duration::from_secs(3), "whole session {total:?}");
    drop(session);
    common::assert_clean();

    // And the probes work at that scale: main calls each function once.
    let (records, _) = common::trace(
        &config,
        vec![exe.clone().into(), "all".into()],
        Duration::from_secs(1),
    );
    let mut edges: BTreeMap<(String, String), u64> = BTreeMap::new();
    for r in &records {
        if let Record::Edge(e) = r {
            *edges
                .entry((e.caller.clone(), e.callee.clone()))
                .or_default() += e.hits;
        }
    }
    assert_eq!(edges.len(), 10_000);
    for i in 0..10_000 {
        assert_eq!(
            edges.get(&("main".to_string(), format!("f{i}"))),
            Some(&1),
            "main -> f{i}"
        );
    }
    common::assert_clean();
}
