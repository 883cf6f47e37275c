//! Live ETW collector: a real-time kernel session (sampled profile, image,
//! process and thread events, kernel stack walks enabled through
//! `TraceSetInformation`, which ferrisetw lacks) and, when providers are
//! given, a ferrisetw user session with stack traces. Their events go,
//! as they come, through the ETL decoder's rules
//! ([`tracemerge_etl::realtime`]: the same record decoding and stack
//! assembly as files) and come out as edge records window by window, with
//! watermarks, like the eBPF probes.
//!
//! The Windows code ([`live`]) is compiled on Windows and type-checked
//! elsewhere with `--features typecheck`; it is **compiled but untested**
//! (no Windows machine in CI). Everything else — the collection loop
//! ([`run_loop`]), configuration, GUID parsing, session layout — is tested
//! everywhere, the loop by feeding it a recorded trace's events as if they
//! came live.

use std::ffi::OsString;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use tracemerge_etl::realtime::{LiveEvent, RealtimeDecoder};
use tracemerge_records::Record;

#[cfg(any(windows, feature = "typecheck"))]
pub mod live;

/// Kernel events that get a stack walk: (event class GUID, event type).
/// PerfInfo SampledProfile, Image Load, Process Start.
pub const STACK_EVENTS: [(u128, u8); 3] = [
    (0xce1dbfb4_137e_4da6_87b0_3f59aa102cbc, 46),
    (0x2cb15d1d_5fc1_11d2_abe1_00a0c911f518, 10),
    (0x3d6fa8d0_fe05_11d0_9dda_00c04fd7ba7c, 1),
];

/// `EVENT_TRACE_FLAG_PROCESS | THREAD | IMAGE_LOAD | PROFILE`.
pub const KERNEL_ENABLE_FLAGS: u32 = 0x1 | 0x2 | 0x4 | 0x0100_0000;

/// How far events may arrive out of order: real-time buffers are per
/// processor and flushed at least every second.
pub const REORDER_HORIZON: Duration = Duration::from_secs(2);

/// How long the watermark waits for a stack still being assembled (a
/// thread still in the kernel has not logged its user stack yet).
pub const STACK_PATIENCE: Duration = Duration::from_secs(10);

/// What to trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Every process, until the time limit or Ctrl-C.
    All,
    /// A running process, until it exits.
    Pid(u32),
    /// Start this command (argv) once the session runs; trace it until it exits.
    Command(Vec<OsString>),
}

/// What to collect and how to turn it into records.
#[derive(Clone, Debug)]
pub struct CollectorConfig {
    /// Stop after this long (besides the target's exit and Ctrl-C).
    pub duration: Option<Duration>,
    /// Records are drained once per window (wall clock).
    pub window: Duration,
    pub target: Target,
    /// User-mode providers (GUIDs) recorded with stack traces.
    pub providers: Vec<u128>,
    /// Naming, aggregation window (event time), artifact map, `source`.
    pub import: tracemerge_etl::ImportOptions,
    /// Send a started command's standard output to our standard error
    /// (set when the records go to standard output).
    pub command_stdout_to_stderr: bool,
}

/// What a sink's error is: the caller's own error (writing records,
/// say), kept whole for the caller to format or inspect.
pub type SinkError = Box<dyn std::error::Error + Send + Sync>;

/// Why a live collection failed.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("{call} failed with Windows error {code}")]
    Win32 { call: &'static str, code: u32 },
    /// The ferrisetw user session failed (its error, as ferrisetw debugs it:
    /// the type exists only where ferrisetw is compiled).
    #[error("user session: {0}")]
    UserSession(String),
    /// `Target::Command` with no program.
    #[error("empty command")]
    EmptyCommand,
    /// The command to trace could not be started.
    #[error("{program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    /// The sink refused a window's records.
    #[error("{0}")]
    Sink(#[source] SinkError),
    #[error("ETW needs Windows: the live collector runs only there (on other systems, decode .etl files with `tracemerge etl import`)")]
    Unsupported,
}

/// How the collection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Exit code of the traced command (0 otherwise, 130 on Ctrl-C).
    pub exit_code: i32,
    pub summary: serde_json::Value,
}

/// Parses a provider GUID written `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`
/// (braces allowed).
pub fn parse_guid(s: &str) -> Result<u128, String> {
    let t = s.trim().trim_start_matches('{').trim_end_matches('}');
    let parts: Vec<&str> = t.split('-').collect();
    let lens = [8, 4, 4, 4, 12];
    if parts.len() != 5
        || parts
            .iter()
            .zip(lens)
            .any(|(p, n)| p.len() != n || !p.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(format!("invalid GUID {s:?}"));
    }
    u128::from_str_radix(&parts.concat(), 16).map_err(|e| format!("invalid GUID {s:?}: {e}"))
}

/// Layout of an `EVENT_TRACE_PROPERTIES` block followed by the session name
/// and the log file name (UTF-16, NUL-terminated; none for real-time
/// sessions): total size and offsets.
pub fn properties_layout(
    struct_size: usize,
    name_units: usize,
    file_units: usize,
) -> (usize, usize, usize) {
    let name_off = struct_size;
    let file_off = name_off + 2 * name_units;
    (file_off + 2 * file_units, name_off, file_off)
}

/// UTF-16 with a terminating NUL.
pub fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

/// The collection loop, shared by the Windows sessions and the tests.
///
/// Takes events from `events` as they come; at the end of each `window`
/// (wall clock) the records no later event can change go to `sink`, then a
/// watermark. `watch` is asked between events whether to stop (the target
/// exited, Ctrl-C): `Some(exit code)`. At the end (or the `deadline`), or
/// when the sender is gone, `stop_sessions` stops the sessions, the events
/// still in flight are taken until the sender hangs up (at most
/// `flush_limit`), and the rest of the records and the final watermark go
/// to `sink`.
#[allow(clippy::too_many_arguments)]
pub fn run_loop(
    events: &Receiver<LiveEvent>,
    decoder: &mut RealtimeDecoder,
    window: Duration,
    deadline: Option<Instant>,
    flush_limit: Duration,
    watch: &mut dyn FnMut(&RealtimeDecoder) -> Option<i32>,
    stop_sessions: &mut dyn FnMut(),
    sink: &mut dyn FnMut(&[Record]) -> Result<(), SinkError>,
) -> Result<i32, CollectError> {
    let window = window.max(Duration::from_millis(1));
    let tick = window.min(Duration::from_millis(100));
    let mut window_end = Instant::now() + window;
    let mut exit_code = 0;
    let mut hung_up = false;
    loop {
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            break;
        }
        if now >= window_end {
            sink(&decoder.drain()).map_err(CollectError::Sink)?;
            window_end += window;
            if window_end < now {
                window_end = now + window;
            }
        }
        if let Some(code) = watch(decoder) {
            exit_code = code;
            break;
        }
        let until = deadline.map_or(window_end, |d| d.min(window_end));
        let wait = until.saturating_duration_since(now).min(tick);
        match events.recv_timeout(wait) {
            Ok(ev) => {
                decoder.push(&ev);
                // Take what is queued without waking the clock each time.
                for ev in events.try_iter().take(10_000) {
                    decoder.push(&ev);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                hung_up = true;
                break;
            }
        }
    }
    stop_sessions();
    if !hung_up {
        // Stopping a session flushes its buffers: take those events too.
        let flush_end = Instant::now() + flush_limit;
        loop {
            let wait = flush_end.saturating_duration_since(Instant::now());
            match events.recv_timeout(wait) {
                Ok(ev) => decoder.push(&ev),
                Err(_) => break,
            }
        }
    }
    sink(&decoder.finish()).map_err(CollectError::Sink)?;
    Ok(exit_code)
}

/// The collector's summary line: stacks, pairs, records, assembly counts.
pub fn summary(decoder: &RealtimeDecoder) -> serde_json::Value {
    let s = decoder.stats();
    let c = &decoder.counts;
    serde_json::json!({
        "records_decoded": c.records,
        "stacks": s.stacks,
        "stacks_late": s.stacks_late,
        "pairs": s.pairs,
        "pairs_unresolved": s.pairs_unresolved,
        "edge_records": s.edge_records,
        "kernel_fragments_joined_later": c.assembly.kernel_fragments_joined_later,
        "kernel_only_at_end": c.assembly.kernel_only_at_end,
        "stack_key_refs_unresolved": c.key_refs_unresolved,
        "bad_payloads": c.bad_payloads,
    })
}

/// Collects until the target exits, the time limit or Ctrl-C; every
/// window's records go to `sink`. A sink error stops the collection and
/// returns as [`CollectError::Sink`].
pub fn collect<E: Into<SinkError>>(
    config: &CollectorConfig,
    sink: &mut dyn FnMut(&[Record]) -> Result<(), E>,
) -> Result<Outcome, CollectError> {
    let sink: &mut dyn FnMut(&[Record]) -> Result<(), SinkError> =
        &mut |records| sink(records).map_err(Into::into);
    #[cfg(windows)]
    {
        live::collect(config, sink)
    }
    #[cfg(not(windows))]
    {
        let _ = (config, sink);
        Err(CollectError::Unsupported)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids() {
        assert_eq!(
            parse_guid("{ce1dbfb4-137e-4da6-87b0-3f59aa102cbc}"),
            Ok(0xce1dbfb4_137e_4da6_87b0_3f59aa102cbc)
        );
        assert!(parse_guid("ce1dbfb4-137e-4da6-87b0").is_err());
        assert!(parse_guid("ce1dbfb4-137e-4da6-87b0-3f59aa102cbz").is_err());
        assert!(parse_guid("").is_err());
    }

    #[test]
    fn layout_and_strings() {
        let name = wide("NT Kernel Logger");
        assert_eq!(name.len(), 17);
        assert_eq!(*name.last().unwrap(), 0);
        assert_eq!(properties_layout(120, 17, 10), (120 + 34 + 20, 120, 154));
        assert_eq!(properties_layout(120, 17, 0), (120 + 34, 120, 154));
    }

    #[test]
    fn stack_events_are_the_decoded_ones() {
        // The decoder reads samples (0x0F/46) and images (0x14/10) and
        // processes (0x03/1): the events asked to carry stacks, named by
        // the class GUIDs the real-time decoder maps to those groups.
        use tracemerge_etl::kernel::group;
        use tracemerge_etl::realtime::kernel_class;
        let events: Vec<(u128, u8)> = [
            (
                group::PERFINFO,
                tracemerge_etl::kernel::PERFINFO_SAMPLED_PROFILE,
            ),
            (group::IMAGE, 10),
            (group::PROCESS, 1),
        ]
        .iter()
        .map(|&(g, t)| {
            let b = kernel_class(g).unwrap().0;
            let d1 = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            let d2 = u16::from_le_bytes([b[4], b[5]]);
            let d3 = u16::from_le_bytes([b[6], b[7]]);
            let mut v = u128::from(d1) << 96 | u128::from(d2) << 80 | u128::from(d3) << 64;
            for (i, x) in b[8..].iter().enumerate() {
                v |= u128::from(*x) << (56 - 8 * i);
            }
            (v, t)
        })
        .collect();
        assert_eq!(events, STACK_EVENTS.to_vec());
        assert_eq!(KERNEL_ENABLE_FLAGS, 0x0100_0007);
    }

    #[cfg(not(windows))]
    #[test]
    fn collect_needs_windows() {
        let cfg = CollectorConfig {
            duration: Some(Duration::from_millis(1)),
            window: Duration::from_secs(1),
            target: Target::All,
            providers: vec![],
            import: Default::default(),
            command_stdout_to_stderr: false,
        };
        let err = collect(&cfg, &mut |_| Ok::<_, std::io::Error>(())).unwrap_err();
        assert!(matches!(err, CollectError::Unsupported));
        assert!(err.to_string().contains("ETW needs Windows"), "{err}");
    }

    /// A sink's error stops the loop and comes back whole, as the sink's
    /// own type under [`CollectError::Sink`].
    #[test]
    fn a_sink_error_comes_back_typed() {
        let (tx, rx) = std::sync::mpsc::channel::<LiveEvent>();
        drop(tx);
        let mut decoder = RealtimeDecoder::new(tracemerge_etl::realtime::RealtimeOptions {
            pointer_size: 8,
            clock: tracemerge_etl::file::Clock::qpc(10_000_000, 0, 0),
            reorder_ticks: 0,
            patience_ticks: 0,
            pid: None,
            import: Default::default(),
            start_time: 0,
        });
        let err = run_loop(
            &rx,
            &mut decoder,
            Duration::from_millis(1),
            None,
            Duration::ZERO,
            &mut |_| None,
            &mut || {},
            &mut |_| Err(std::io::Error::other("disk full").into()),
        )
        .unwrap_err();
        let CollectError::Sink(source) = &err else {
            panic!("{err:?}")
        };
        assert!(source.downcast_ref::<std::io::Error>().is_some(), "{err:?}");
        assert_eq!(err.to_string(), "disk full");
    }
}
