//! The one rule for a test that cannot run here (no root, no eBPF, no ETL
//! corpus): it prints why and skips, or, with `TRACEMERGE_REQUIRE_ALL=1`
//! (set by `.ci/run`), fails. Every test crate uses this, so a skip is
//! never silent and CI never skips.

use std::io::Write as _;

/// The environment variable that turns skips into failures.
pub const REQUIRE_ALL: &str = "TRACEMERGE_REQUIRE_ALL";

/// Whether skips are failures here (`TRACEMERGE_REQUIRE_ALL=1`).
pub fn required() -> bool {
    std::env::var(REQUIRE_ALL).as_deref() == Ok("1")
}

/// Skips `test`, printing `why` on stderr; panics instead under
/// `TRACEMERGE_REQUIRE_ALL=1`.
pub fn skip(test: &str, why: &str) {
    if required() {
        panic!("{test}: cannot run ({why}) and {REQUIRE_ALL}=1");
    }
    // Straight to stderr: the test harness captures eprintln!.
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

#[cfg(test)]
mod tests {
    use super::*;

    // One test: the environment is process-wide.
    #[test]
    fn skips_or_fails() {
        let before = std::env::var_os(REQUIRE_ALL);
        std::env::remove_var(REQUIRE_ALL);
        assert!(!required());
        skip("t", "nothing here");
        std::env::set_var(REQUIRE_ALL, "0");
        assert!(!required());
        std::env::set_var(REQUIRE_ALL, "1");
        assert!(required());
        let failed = std::panic::catch_unwind(|| skip("t", "nothing here"));
        let message = *failed.unwrap_err().downcast::<String>().unwrap();
        assert_eq!(
            message,
            "t: cannot run (nothing here) and TRACEMERGE_REQUIRE_ALL=1"
        );
        match before {
            Some(v) => std::env::set_var(REQUIRE_ALL, v),
            None => std::env::remove_var(REQUIRE_ALL),
        }
    }
}
