//! What every test (and benchmark) that loads BPF programs needs: one BPF
//! user at a time on this machine, a skip with a printed reason where the
//! probes cannot run (a failure instead under `TRACEMERGE_REQUIRE_ALL=1`,
//! as CI sets it), and a check that nothing was left loaded.
//!
//! Test support, not part of the collector: compiled only with the
//! `testing` feature, which the tests of this crate and of the command
//! turn on through their dev-dependencies.

use std::time::{Duration, Instant};

pub use crate::lock::{exclusive, Exclusive};

/// [`exclusive`] use of BPF when the probes can run here; otherwise prints
/// why `test` is skipped and returns `None`, or panics under
/// `TRACEMERGE_REQUIRE_ALL=1` ([`tracemerge_skip::skip`]).
pub fn bpf_or_skip(test: &str) -> Option<Exclusive> {
    if let Some(why) = crate::unsupported() {
        tracemerge_skip::skip(test, &why);
        return None;
    }
    Some(exclusive().expect("the BPF lock file"))
}

/// Asserts that no tracemerge BPF program is loaded any more (the kernel
/// frees a closed program after an RCU grace period: allow it a moment).
pub fn assert_clean() {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let left = crate::leftover_programs();
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "BPF programs left behind: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
