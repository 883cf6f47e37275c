//! What every test (and benchmark) that loads BPF programs needs: one BPF
//! user at a time on this machine, a skip with a printed reason where the
//! probes cannot run (a failure instead under `TRACEMERGE_REQUIRE_ALL=1`,
//! as CI sets it), and a check that nothing was left loaded.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

static IN_PROCESS: Mutex<()> = Mutex::new(());

/// Held while BPF is in use: an in-process lock for test threads, and a file
/// lock for other processes (test binaries run in parallel, the bench), so
/// that a leak check never sees someone else's programs.
pub struct Exclusive {
    _thread: MutexGuard<'static, ()>,
    _file: std::fs::File,
}

/// Waits until no one else on this machine uses BPF through tracemerge.
pub fn exclusive() -> std::io::Result<Exclusive> {
    let thread = IN_PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(std::env::temp_dir().join("tracemerge-bpf-tests.lock"))?;
    file.lock()?;
    Ok(Exclusive {
        _thread: thread,
        _file: file,
    })
}

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
