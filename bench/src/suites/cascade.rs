//! `cascade`: one runtime edge that flips the reachability of a large
//! subtree. The graph has a region (1%, 10%, 50% of its functions) that no
//! static edge from the rest enters; a runtime edge from the entrypoint
//! into the region's root makes all of it reachable under the `union`
//! strategy ("on"), and its expiry one ttl later makes it unreachable again
//! ("off"). Engine latency of both against [`Recompute`](crate::baseline::Recompute).

use std::collections::BTreeMap;

use serde_json::{json, Value};
use tracemerge_records::{Config, EdgeObservation, Record};
use tracemerge_scenarios::workload::Workload;

use super::update::load;
use crate::driver::{ratio, sig, Latencies};
use crate::{BenchError, CascadePlan};

/// Observation lifetime in this suite: the flip-off is an expiry.
const TTL: u64 = 10_000;

fn one_fraction(
    plan: &CascadePlan,
    fraction: f64,
    seed: u64,
    log: &mut dyn FnMut(&str),
) -> Result<Value, BenchError> {
    let workload = Workload {
        seed,
        functions: plan.functions,
        detached: fraction,
        // No random runtime edges: one could enter the region by chance.
        conflict_rate: 0.0,
        records: 1_000,
        ..Workload::default()
    };
    let (caller, root) = workload
        .cascade_edge()
        .ok_or(BenchError::NoDetachedRegion)?;
    let (_, region) = workload
        .detached_root()
        .ok_or(BenchError::NoDetachedRegion)?;
    let config = Config {
        ttl: TTL,
        ..Config::default()
    };
    let mut loaded = load(workload, &config)?;
    // Let the warm-up observations expire first.
    let mut at = loaded.watermark + TTL + 1;
    loaded.change(Vec::new(), at)?;
    // `change` closes each round with a watermark a millisecond later.
    at += 2;
    let artifact = loaded.workload.artifact.clone();
    let edge = |at| {
        Record::Edge(EdgeObservation {
            artifact: artifact.clone(),
            caller: caller.clone(),
            callee: root.clone(),
            at,
            hits: 1,
            source: "ebpf:host-0".into(),
            event_id: None,
            estimated: false,
        })
    };
    let mut on = Latencies::default();
    let mut off = Latencies::default();
    let mut recompute = Latencies::default();
    let mut flipped = 0;
    // The first flip warms up and is not measured.
    for rep in 0..=plan.repeats.max(1) {
        let took_on = loaded.change(vec![edge(at)], at + 1)?;
        let (took_recompute_on, reach_on) = loaded.recompute();
        let expired = at + TTL + 1;
        let took_off = loaded.change(Vec::new(), expired)?;
        let (took_recompute_off, reach_off) = loaded.recompute();
        if rep > 0 {
            on.record(took_on);
            off.record(took_off);
            recompute.record(took_recompute_on);
            recompute.record(took_recompute_off);
        }
        flipped = reach_on.saturating_sub(reach_off);
        at = expired + 2;
    }
    log(&format!(
        "cascade: {:.0}% ({flipped} functions flip): engine on p50 {:.3} ms, off p50 {:.3} ms, recompute p50 {:.3} ms",
        fraction * 100.0,
        on.p50_ms(),
        off.p50_ms(),
        recompute.p50_ms()
    ));
    let load_seconds = loaded.load_seconds;
    let static_edges = loaded.static_edges;
    let agree = loaded.finish()?;
    Ok(json!({
        "fraction": fraction,
        "subtree_functions": region,
        "flipped_functions": flipped,
        "static_edges": static_edges,
        "load_seconds": sig(load_seconds),
        "engine_on": on.summary(),
        "engine_off": off.summary(),
        "recompute": recompute.summary(),
        "engine_over_recompute": sig(ratio(on.p50_ms(), recompute.p50_ms())),
        "speedup_vs_recompute": sig(ratio(recompute.p50_ms(), on.p50_ms())),
        "agree": agree,
    }))
}

pub fn run(plan: &CascadePlan, seed: u64, log: &mut dyn FnMut(&str)) -> Result<Value, BenchError> {
    let mut sizes = Vec::new();
    let mut over = BTreeMap::new();
    let mut speedup = BTreeMap::new();
    for &fraction in &plan.fractions {
        let r = one_fraction(plan, fraction, seed, log)?;
        let key = format!("{}%", fraction * 100.0);
        over.insert(key.clone(), r["engine_over_recompute"].clone());
        speedup.insert(key, r["speedup_vs_recompute"].clone());
        sizes.push(r);
    }
    Ok(json!({
        "functions": plan.functions,
        "ttl_ms": TTL,
        "sizes": sizes,
        "engine_over_recompute": over,
        "speedup_vs_recompute": speedup,
    }))
}
