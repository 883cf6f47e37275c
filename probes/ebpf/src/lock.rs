//! One BPF user at a time on this machine: tests, the `probe` bench suite
//! and the research benchmarks take this lock, so that a leak check never
//! sees someone else's programs.

use std::sync::{Mutex, MutexGuard};

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
