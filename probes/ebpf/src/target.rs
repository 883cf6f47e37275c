//! The traced process: a command started under ptrace (so that it is
//! probed from its first instruction and its memory maps can be read at its
//! exit), or a process that was already running.

use crate::error::ProbeError;
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static LAST_SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    LAST_SIGNAL.store(sig, Ordering::SeqCst);
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Routes SIGINT and SIGTERM to a flag (see [`interrupted`]) so that a
/// collector can detach, drain and report before it exits.
pub fn catch_interrupts() {
    // SAFETY: the handler only stores to atomics (async-signal-safe).
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

/// Whether SIGINT or SIGTERM arrived since [`catch_interrupts`].
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// What happened to a traced command.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// Still running.
    Running,
    /// About to exit: its memory is still intact; call [`Command::resume`].
    Exiting,
    /// Gone, with this exit code (128 + signal when killed).
    Exited(i32),
    /// Stopped by [`NEW_EDGE_SIGNAL`] from the kernel (the exact-mode
    /// program saw a new edge): call [`Command::resume`], which drops it.
    NewEdge,
}

/// The signal the exact-mode program sends the traced thread at a new edge
/// (when armed). Ignored by default, so that if it ever reached a program
/// nothing would happen; under ptrace it only stops the thread for us.
pub const NEW_EDGE_SIGNAL: i32 = libc::SIGURG;

/// A command started under ptrace, stopped right after its exec.
pub struct Command {
    pub pid: u32,
    exited: Option<i32>,
}

fn ptrace(req: libc::c_uint, pid: u32, data: usize) -> libc::c_long {
    // SAFETY: plain ptrace requests on our own tracee; no memory is passed.
    unsafe { libc::ptrace(req, pid as libc::pid_t, 0usize, data) }
}

impl Command {
    /// Starts `argv` under ptrace and waits until its exec has happened (the
    /// program is mapped, no instruction of it has run). Must be driven from
    /// the same thread from then on (ptrace's rule).
    /// With `stdout_to_stderr`, the command's standard output goes to our
    /// standard error (when our standard output carries the records).
    pub fn spawn(argv: &[OsString], stdout_to_stderr: bool) -> Result<Command, ProbeError> {
        let (prog, args) = argv.split_first().ok_or_else(|| ProbeError::Command {
            program: String::new(),
            what: "no command given".into(),
        })?;
        let failed = |what: String| ProbeError::Command {
            program: prog.to_string_lossy().into_owned(),
            what,
        };
        let mut cmd = std::process::Command::new(prog);
        cmd.args(args);
        if stdout_to_stderr {
            use std::os::fd::AsFd;
            let err = std::io::stderr()
                .as_fd()
                .try_clone_to_owned()
                .map_err(|e| failed(format!("duplicating stderr: {e}")))?;
            cmd.stdout(std::process::Stdio::from(err));
        }
        // SAFETY: PTRACE_TRACEME is async-signal-safe and touches no memory.
        unsafe {
            cmd.pre_exec(|| {
                if libc::ptrace(libc::PTRACE_TRACEME, 0, 0usize, 0usize) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| failed(format!("starting {}: {e}", prog.to_string_lossy())))?;
        let pid = child.id();
        // We reap it ourselves with waitpid; std's handle is not used again.
        drop(child);
        let mut status = 0;
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::__WALL) };
        if r < 0 || !libc::WIFSTOPPED(status) {
            return Err(failed(format!(
                "{}: did not stop at exec (status {status:#x})",
                prog.to_string_lossy()
            )));
        }
        let opts = libc::PTRACE_O_TRACEEXIT | libc::PTRACE_O_EXITKILL;
        if ptrace(libc::PTRACE_SETOPTIONS, pid, opts as usize) < 0 {
            return Err(failed(format!(
                "ptrace(SETOPTIONS): {}",
                std::io::Error::last_os_error()
            )));
        }
        Ok(Command { pid, exited: None })
    }

    /// Lets the stopped command run.
    pub fn resume(&mut self) {
        ptrace(libc::PTRACE_CONT, self.pid, 0);
    }

    /// Sends a signal to the command.
    pub fn signal(&self, sig: i32) {
        if self.exited.is_none() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(self.pid as libc::pid_t, sig) };
        }
    }

    /// Checks (without blocking) for the exit stop or the exit. Signals the
    /// command receives are passed on to it.
    pub fn poll(&mut self) -> Event {
        if let Some(code) = self.exited {
            return Event::Exited(code);
        }
        loop {
            let mut status = 0;
            // SAFETY: waiting for our own child.
            let r = unsafe {
                libc::waitpid(
                    self.pid as libc::pid_t,
                    &mut status,
                    libc::WNOHANG | libc::__WALL,
                )
            };
            if r == 0 {
                return Event::Running;
            }
            if r < 0 {
                self.exited = Some(-1);
                return Event::Exited(-1);
            }
            if libc::WIFEXITED(status) {
                let code = libc::WEXITSTATUS(status);
                self.exited = Some(code);
                return Event::Exited(code);
            }
            if libc::WIFSIGNALED(status) {
                let code = 128 + libc::WTERMSIG(status);
                self.exited = Some(code);
                return Event::Exited(code);
            }
            if libc::WIFSTOPPED(status) {
                let sig = libc::WSTOPSIG(status);
                if sig == libc::SIGTRAP && (status >> 16) == libc::PTRACE_EVENT_EXIT {
                    return Event::Exiting;
                }
                if sig == NEW_EDGE_SIGNAL && self.sent_by_kernel() {
                    return Event::NewEdge;
                }
                // A signal for the command (or a trap we do not care about):
                // deliver it and keep going.
                let deliver = if sig == libc::SIGTRAP { 0 } else { sig };
                ptrace(libc::PTRACE_CONT, self.pid, deliver as usize);
            }
        }
    }
}

impl Command {
    /// Whether the signal the command is stopped with came from the kernel
    /// (`SI_KERNEL`: a BPF program's `bpf_send_signal_thread`), not from a
    /// process.
    fn sent_by_kernel(&self) -> bool {
        // SAFETY: siginfo_t is plain data; the kernel fills it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: the tracee is in a signal-delivery-stop; `info` outlives the call.
        let r = unsafe {
            libc::ptrace(
                libc::PTRACE_GETSIGINFO,
                self.pid as libc::pid_t,
                0usize,
                &mut info as *mut libc::siginfo_t,
            )
        };
        r == 0 && info.si_code == libc::SI_KERNEL
    }
}

impl Drop for Command {
    fn drop(&mut self) {
        if self.exited.is_none() {
            // The collector is going away early: do not leave a stopped or
            // orphaned tracee behind (PTRACE_O_EXITKILL covers a crash).
            self.signal(libc::SIGKILL);
            let mut status = 0;
            // SAFETY: reaping our own child.
            unsafe { libc::waitpid(self.pid as libc::pid_t, &mut status, libc::__WALL) };
        }
    }
}

/// Whether process `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next());
            !matches!(state, Some('Z') | Some('X') | None)
        }
        Err(_) => false,
    }
}

/// The executable of a running process.
pub fn exe(pid: u32) -> Result<std::path::PathBuf, ProbeError> {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .map_err(|cause| ProbeError::Process { pid, cause })
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
