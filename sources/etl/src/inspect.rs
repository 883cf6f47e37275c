//! The `inspect` summary: what a trace holds, as JSON.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use crate::file::FILETIME_UNIX_EPOCH;
use crate::trace::{StackOrigin, Trace};

/// Cross-module caller → callee pairs of adjacent frames (caller = frame
/// i+1, callee = frame i, return addresses minus one), both frames inside a
/// loaded image, counted over the StackWalk stacks.
pub fn module_pairs(trace: &Trace) -> HashMap<(String, String), u64> {
    let mut pairs: HashMap<(String, String), u64> = HashMap::new();
    for s in trace
        .stacks
        .iter()
        .filter(|s| s.origin == StackOrigin::StackWalk)
    {
        let names: Vec<Option<&str>> = s
            .frames
            .iter()
            .enumerate()
            .map(|(i, &a)| {
                let look = if i == 0 { a } else { a.wrapping_sub(1) };
                trace
                    .modules
                    .lookup(s.pid, look, s.timestamp)
                    .map(|m| m.name.as_str())
            })
            .collect();
        for w in names.windows(2) {
            if let (Some(callee), Some(caller)) = (w[0], w[1]) {
                if callee != caller {
                    *pairs
                        .entry((caller.to_string(), callee.to_string()))
                        .or_default() += 1;
                }
            }
        }
    }
    pairs
}

fn filetime_ms(ft: i64) -> Value {
    if ft > FILETIME_UNIX_EPOCH {
        json!((ft - FILETIME_UNIX_EPOCH) / 10_000)
    } else {
        Value::Null
    }
}

/// The JSON summary printed by `tracemerge etl inspect`.
pub fn summary(trace: &Trace) -> Value {
    let h = &trace.header;
    let c = &trace.counts;
    let mut events = Map::new();
    for ((g, t), n) in &c.kernel {
        events.insert(format!("{g}/{t}"), json!(n));
    }
    let (stacks, frames, in_image) = trace.frame_stats(StackOrigin::StackWalk);
    let (inline, inline_frames, inline_in_image) = trace.frame_stats(StackOrigin::Inline);
    let mut by_event: HashMap<String, u64> = HashMap::new();
    let mut matched = 0u64;
    for s in &trace.stacks {
        if let Some((g, t)) = s.event {
            matched += 1;
            *by_event.entry(format!("{g}/{t}")).or_default() += 1;
        }
    }
    let by_event: Map<String, Value> = {
        let mut v: Vec<_> = by_event.into_iter().collect();
        v.sort();
        v.into_iter().map(|(k, n)| (k, json!(n))).collect()
    };
    let mut pairs: Vec<_> = module_pairs(trace).into_iter().collect();
    pairs.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let top: Vec<Value> = pairs
        .iter()
        .take(10)
        .map(|((caller, callee), n)| json!({"caller": caller, "callee": callee, "count": n}))
        .collect();
    json!({
        "schema": "tracemerge.etl.inspect.v1",
        "buffers": c.buffers,
        "buffers_decoded": c.buffers_decoded,
        "buffers_compressed": c.buffers_compressed,
        "buffers_written": h.buffers_written,
        "buffer_size": h.buffer_size,
        "pointer_size": h.pointer_size,
        "perf_freq": h.perf_freq,
        "clock_type": h.clock_type,
        "processors": h.number_of_processors,
        "os_version": h.version,
        "os_build": h.provider_version,
        "log_file_mode": format!("{:#010x}", h.log_file_mode),
        "logger_name": h.logger_name,
        "start_time": filetime_ms(h.start_time),
        "end_time": filetime_ms(h.end_time),
        "first_event": trace.clock.unix_ms(trace.first_timestamp),
        "last_event": trace.clock.unix_ms(trace.last_timestamp),
        "lost_events": h.events_lost,
        "lost_buffers": h.buffers_lost,
        "buffers_flagged_lost": c.buffers_flagged_lost,
        "records": c.records,
        "events": events,
        "provider_events": c.providers,
        "stack_fragments": c.stack_fragments,
        "stack_key_refs": c.key_refs,
        "stack_keys_defined": c.keys_defined,
        "stack_key_refs_unresolved": c.key_refs_unresolved,
        "stacks": stacks,
        "frames": frames,
        "frames_in_image": in_image,
        "stacks_inline": inline,
        "frames_inline": inline_frames,
        "frames_inline_in_image": inline_in_image,
        "stacks_matched_to_event": matched,
        "stacks_by_event": by_event,
        "image_pids": trace.modules.image_pids(),
        "kernel_image_events": trace.modules.kernel_image_events(),
        "kernel_modules": trace.modules.kernel_modules(),
        "pdb_ids": trace.pdbs.len(),
        "top_module_pairs": top,
        "bad_payloads": c.bad_payloads,
        "damage": trace.damage.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
        "skipped": {
            "buffers": trace.skipped.buffers,
            "bytes": trace.skipped.bytes + c.skipped_record_bytes,
        },
    })
}
