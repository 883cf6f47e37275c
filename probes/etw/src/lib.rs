//! Live ETW collector: records kernel stack walks with image and process
//! events, and user-mode providers with stack traces, then turns them into
//! the same records as the ETL decoder (`tracemerge-etl`).
//!
//! How: a kernel session ("NT Kernel Logger": process, thread, image load,
//! sampled profile; stack walks enabled through `TraceSetInformation`, which
//! ferrisetw lacks) and, when providers are given, a ferrisetw user session
//! with `EVENT_ENABLE_PROPERTY_STACK_TRACE`, both written to .etl files that
//! the pure-Rust decoder reads afterwards. The Windows code is compiled on
//! Windows, and type-checked elsewhere with `--features typecheck`; it is
//! **compiled but untested** (no Windows machine in CI). The parts that do
//! not touch Windows (configuration, GUID parsing, session layout) are tested
//! everywhere.

use std::path::PathBuf;
use std::time::Duration;

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

/// What to collect and how to turn it into records.
#[derive(Clone, Debug)]
pub struct CollectorConfig {
    pub duration: Duration,
    /// User-mode providers (GUIDs) recorded with stack traces.
    pub providers: Vec<u128>,
    /// Where the session .etl files are written (kept after the run).
    pub work_dir: PathBuf,
    pub import: tracemerge_etl::ImportOptions,
}

/// Why a live collection failed.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("{call} failed with Windows error {code}")]
    Win32 { call: &'static str, code: u32 },
    #[error("user session: {0}")]
    UserSession(String),
    #[error(transparent)]
    Decode(#[from] tracemerge_etl::EtlError),
    #[error("the live collector runs only on Windows")]
    Unsupported,
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
/// and the log file name (UTF-16, NUL-terminated): total size and offsets.
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

/// Collects for `config.duration` and returns the record stream.
pub fn collect(config: &CollectorConfig) -> Result<Vec<tracemerge_records::Record>, CollectError> {
    #[cfg(windows)]
    {
        live::collect(config)
    }
    #[cfg(not(windows))]
    {
        let _ = config;
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
    }

    #[test]
    fn stack_events_are_the_decoded_ones() {
        // The decoder reads samples (0x0F/46) and images (0x14/10) and
        // processes (0x03/1): the events asked to carry stacks.
        let types: Vec<u8> = STACK_EVENTS.iter().map(|e| e.1).collect();
        assert_eq!(
            types,
            vec![tracemerge_etl::kernel::PERFINFO_SAMPLED_PROFILE, 10, 1]
        );
        assert_eq!(KERNEL_ENABLE_FLAGS, 0x0100_0007);
    }

    #[cfg(not(windows))]
    #[test]
    fn collect_is_unsupported_here() {
        let cfg = CollectorConfig {
            duration: Duration::from_millis(1),
            providers: vec![],
            work_dir: std::env::temp_dir(),
            import: Default::default(),
        };
        assert!(matches!(collect(&cfg), Err(CollectError::Unsupported)));
    }
}
