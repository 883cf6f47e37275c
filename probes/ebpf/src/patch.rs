//! Patched entries: calls of functions whose entry is a 5-byte nop counted
//! inside the traced process, with no kernel on the call path.
//!
//! A uprobe, even the trampoline the kernel makes of a 5-byte nop, costs
//! the kernel's uprobe path (~0.28 µs with an empty BPF program). Here the
//! nop of each chosen function is rewritten into `call STUB`, where STUB is
//! a small position-independent routine injected into the process, next to
//! a count table (a shared memory file both the process and the collector
//! map):
//!
//! * at the stub, `[rsp]` is the patch site + 5 (which function) and
//!   `[rsp+8]` the return address into the caller (the caller, as the BPF
//!   program sees it);
//! * the stub counts `(return address, site)` in an open-addressing hash
//!   table: `lock cmpxchg16b` claims a slot for a new key, `lock inc`
//!   counts; a key that finds no free slot within [`MAX_PROBES`] counts a
//!   loss. It saves every register and the flags it touches and returns;
//! * counters only grow: each window reads them and reports the growth
//!   since the last read, so nothing is lost by construction. The table is
//!   a memfd mapped shared by both sides, so the counts of a process that
//!   has exited are still there to read.
//!
//! Injection uses ptrace: every thread is stopped (`PTRACE_SEIZE` +
//! `PTRACE_INTERRUPT`) while code changes; syscalls run in one stopped
//! thread through a `syscall; int3` written over the first patch site for
//! the time (mmap of the region within ±2 GiB of the code so that `call
//! rel32` reaches it, memfd_create, ftruncate, mmap of the table, close,
//! mprotect of the code page to read+exec); then the sites are patched and
//! every thread is let go. [`Patch::restore`] puts the nops back (the
//! region stays mapped: a thread may still be inside the stub).
//!
//! Both nop forms are patched: `0f 1f 44 00 00` (`-pg -mfentry
//! -mnop-mcount`) and five one-byte `90` (gcc's
//! `-fpatchable-function-entry=5`), also after an `endbr64`. A thread
//! stopped between two of the one-byte nops is single-stepped past them
//! first. Limits: a signal frame whose saved instruction pointer is inside
//! such a run (a signal taken between two one-byte nops) would resume in
//! the middle of the call; a child forked while patched keeps the patched
//! code and counts into the same table (the same addresses, so its calls
//! add to the parent's edges) until it execs, and is not restored.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};

use tracemerge_records::Record;

use crate::error::ProbeError;

/// The stub's code page; the table follows it.
const CODE_SIZE: u64 = 4096;
/// Table header: slot mask, lost calls; slots start after it.
const HEADER: u64 = 64;
const SLOT: u64 = 32;
/// Slots a key may try before its call counts as lost.
pub const MAX_PROBES: u64 = 64;
/// Default number of slots (distinct (caller site, callee) pairs).
pub const DEFAULT_SLOTS: u64 = 1 << 16;
const ENDBR64: [u8; 4] = [0xf3, 0x0f, 0x1e, 0xfa];
const NOP5: [u8; 5] = [0x0f, 0x1f, 0x44, 0x00, 0x00];
const NOPS: [u8; 5] = [0x90; 5];

// The stub. Position independent: its one reference is RIP-relative to its
// own start, and the table is mapped CODE_SIZE after that start. Copied out
// of this binary's text between the two symbols.
core::arch::global_asm!(
    ".pushsection .text.tm_patch_stub,\"ax\",@progbits",
    ".balign 16",
    ".globl tm_patch_stub_start",
    ".hidden tm_patch_stub_start",
    ".globl tm_patch_stub_end",
    ".hidden tm_patch_stub_end",
    "tm_patch_stub_start:",
    ".Ltm_stub:",
    "pushfq",
    "push rax",
    "push rbx",
    "push rcx",
    "push rdx",
    "push rsi",
    "push rdi",
    "push r8",
    "push r9",
    "push r10",
    "push r11",
    // 11 words pushed: the site's return address, then the caller's.
    "mov rsi, qword ptr [rsp + 88]",
    "mov rdi, qword ptr [rsp + 96]",
    "lea r8, [rip + .Ltm_stub + 4096]",
    // slot = hash(site, ret) & mask
    "movabs rbx, 0x9e3779b97f4a7c15",
    "mov r11, rsi",
    "imul r11, rbx",
    "xor r11, rdi",
    "imul r11, rbx",
    "shr r11, 32",
    "and r11, qword ptr [r8]",
    "mov r10d, 64",
    ".Ltm_probe:",
    "mov r9, r11",
    "shl r9, 5",
    "lea r9, [r8 + r9 + 64]",
    "mov rax, qword ptr [r9]",
    "mov rdx, qword ptr [r9 + 8]",
    "cmp rax, rdi",
    "jne .Ltm_other",
    "cmp rdx, rsi",
    "je .Ltm_count",
    ".Ltm_other:",
    // A slot is free while its return address is 0 (none is 0).
    "test rax, rax",
    "jnz .Ltm_next",
    "xor eax, eax",
    "xor edx, edx",
    "mov rbx, rdi",
    "mov rcx, rsi",
    "lock cmpxchg16b xmmword ptr [r9]",
    "je .Ltm_count",
    // Another thread claimed it first: ours too?
    "cmp rax, rdi",
    "jne .Ltm_next",
    "cmp rdx, rsi",
    "je .Ltm_count",
    ".Ltm_next:",
    "inc r11",
    "and r11, qword ptr [r8]",
    "dec r10d",
    "jnz .Ltm_probe",
    "lock inc qword ptr [r8 + 8]",
    "jmp .Ltm_done",
    ".Ltm_count:",
    "lock inc qword ptr [r9 + 16]",
    ".Ltm_done:",
    "pop r11",
    "pop r10",
    "pop r9",
    "pop r8",
    "pop rdi",
    "pop rsi",
    "pop rdx",
    "pop rcx",
    "pop rbx",
    "pop rax",
    "popfq",
    "ret",
    "tm_patch_stub_end:",
    ".popsection",
);

unsafe extern "C" {
    static tm_patch_stub_start: u8;
    static tm_patch_stub_end: u8;
}

/// The stub's machine code.
pub fn stub_code() -> &'static [u8] {
    let start = &raw const tm_patch_stub_start;
    let end = &raw const tm_patch_stub_end;
    // SAFETY: both symbols delimit the stub in this binary's text, which is
    // mapped readable for the life of the process.
    unsafe { std::slice::from_raw_parts(start, end as usize - start as usize) }
}

/// Where in a function's first bytes its 5-byte nop is (0, or 4 after an
/// `endbr64`), if it has one: what can be patched.
pub fn nop_offset(code: &[u8]) -> Option<usize> {
    let nop = |c: &[u8]| c.starts_with(&NOP5) || c.starts_with(&NOPS);
    if nop(code) {
        Some(0)
    } else if code.starts_with(&ENDBR64) && nop(&code[4..]) {
        Some(4)
    } else {
        None
    }
}

fn patch_error(pid: u32, what: impl std::fmt::Display) -> ProbeError {
    ProbeError::Patch {
        pid,
        what: what.to_string(),
    }
}

fn errno() -> std::io::Error {
    std::io::Error::last_os_error()
}

fn ptrace(req: libc::c_uint, tid: u32, addr: usize, data: usize) -> Result<(), std::io::Error> {
    // SAFETY: requests that pass no memory (addr and data are numbers here).
    let r = unsafe { libc::ptrace(req, tid as libc::pid_t, addr, data) };
    if r < 0 {
        Err(errno())
    } else {
        Ok(())
    }
}

fn get_regs(tid: u32) -> Result<libc::user_regs_struct, std::io::Error> {
    // SAFETY: plain data, filled by the kernel.
    let mut regs: libc::user_regs_struct = unsafe { std::mem::zeroed() };
    // SAFETY: `regs` outlives the call and has the kernel's layout.
    let r = unsafe {
        libc::ptrace(
            libc::PTRACE_GETREGS,
            tid as libc::pid_t,
            0usize,
            &mut regs as *mut libc::user_regs_struct,
        )
    };
    if r < 0 {
        return Err(errno());
    }
    Ok(regs)
}

fn set_regs(tid: u32, regs: &libc::user_regs_struct) -> Result<(), std::io::Error> {
    // SAFETY: the kernel only reads `regs`.
    let r = unsafe {
        libc::ptrace(
            libc::PTRACE_SETREGS,
            tid as libc::pid_t,
            0usize,
            regs as *const libc::user_regs_struct,
        )
    };
    if r < 0 {
        return Err(errno());
    }
    Ok(())
}

/// How a thread we wait for stopped.
enum Stop {
    /// A ptrace event stop (our interrupt, a group stop).
    Event,
    /// A signal-delivery stop with this signal.
    Signal(i32),
    /// The thread is gone.
    Gone,
}

fn wait(tid: u32) -> Stop {
    let mut status = 0;
    loop {
        // SAFETY: waiting for a thread we trace.
        let r = unsafe { libc::waitpid(tid as libc::pid_t, &mut status, libc::__WALL) };
        if r < 0 {
            if errno().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Stop::Gone;
        }
        if libc::WIFSTOPPED(status) {
            return if status >> 16 != 0 {
                Stop::Event
            } else {
                Stop::Signal(libc::WSTOPSIG(status))
            };
        }
        return Stop::Gone;
    }
}

/// One stopped thread: a signal it was stopped with is handed back to it
/// when it is let go.
struct Thread {
    tid: u32,
    pending: i32,
    /// Traced (and stopped) by us before: left traced and stopped.
    ours: bool,
}

fn traced_by_us(pid: u32, tid: u32) -> bool {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).unwrap_or_default();
    let tracer = status
        .lines()
        .find_map(|l| l.strip_prefix("TracerPid:"))
        .and_then(|v| v.trim().parse::<u32>().ok());
    tracer == Some(std::process::id())
}

/// Every thread of a process stopped under ptrace; let go on drop.
struct Stopped {
    pid: u32,
    threads: Vec<Thread>,
}

fn task_ids(pid: u32) -> Result<Vec<u32>, ProbeError> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map_err(|_| ProbeError::NoProcess { pid })?;
    Ok(dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect())
}

impl Stopped {
    /// Seizes and interrupts every thread, again for threads that appeared
    /// meanwhile, until a listing shows no new one (a stopped thread
    /// creates none).
    fn all(pid: u32) -> Result<Stopped, ProbeError> {
        let mut stopped = Stopped {
            pid,
            threads: Vec::new(),
        };
        let mut seen = BTreeSet::new();
        loop {
            let new: Vec<u32> = task_ids(pid)?
                .into_iter()
                .filter(|t| !seen.contains(t))
                .collect();
            if new.is_empty() {
                break;
            }
            let mut seized = Vec::new();
            for tid in new {
                seen.insert(tid);
                match ptrace(libc::PTRACE_SEIZE, tid, 0, 0) {
                    Ok(()) => seized.push(tid),
                    // Exited since the listing.
                    Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                    // Already traced by us: a command started under ptrace,
                    // stopped at its exec (its only thread then).
                    Err(e) if e.raw_os_error() == Some(libc::EPERM) && traced_by_us(pid, tid) => {
                        stopped.threads.push(Thread {
                            tid,
                            pending: 0,
                            ours: true,
                        })
                    }
                    Err(e) => {
                        return Err(patch_error(
                            pid,
                            format!("ptrace(SEIZE) of thread {tid}: {e}"),
                        ))
                    }
                }
            }
            for &tid in &seized {
                let _ = ptrace(libc::PTRACE_INTERRUPT, tid, 0, 0);
            }
            for tid in seized {
                match wait(tid) {
                    Stop::Event => stopped.threads.push(Thread {
                        tid,
                        pending: 0,
                        ours: false,
                    }),
                    Stop::Signal(sig) => stopped.threads.push(Thread {
                        tid,
                        pending: sig,
                        ours: false,
                    }),
                    Stop::Gone => {}
                }
            }
        }
        if stopped.threads.is_empty() {
            return Err(ProbeError::NoProcess { pid });
        }
        Ok(stopped)
    }

    /// Lets `thread` run until it stops at the `int3` at `trap` (other
    /// stops on the way are resumed; a signal is kept for later).
    fn run_to(&mut self, index: usize, trap: u64) -> Result<(), ProbeError> {
        let pid = self.pid;
        let thread = &mut self.threads[index];
        loop {
            ptrace(libc::PTRACE_CONT, thread.tid, 0, 0)
                .map_err(|e| patch_error(pid, format!("ptrace(CONT): {e}")))?;
            match wait(thread.tid) {
                Stop::Gone => return Err(patch_error(pid, "the thread exited while injecting")),
                Stop::Event => {}
                Stop::Signal(libc::SIGTRAP) => {
                    let regs = get_regs(thread.tid)
                        .map_err(|e| patch_error(pid, format!("ptrace(GETREGS): {e}")))?;
                    if regs.rip == trap {
                        return Ok(());
                    }
                    return Err(patch_error(
                        pid,
                        format!("unexpected trap at {:#x}", regs.rip),
                    ));
                }
                Stop::Signal(sig) => {
                    if thread.pending == 0 {
                        thread.pending = sig;
                    }
                }
            }
        }
    }

    /// Single-steps `thread` once.
    fn step(&mut self, index: usize) -> Result<(), ProbeError> {
        let pid = self.pid;
        let thread = &mut self.threads[index];
        loop {
            ptrace(libc::PTRACE_SINGLESTEP, thread.tid, 0, 0)
                .map_err(|e| patch_error(pid, format!("ptrace(SINGLESTEP): {e}")))?;
            match wait(thread.tid) {
                Stop::Gone => return Err(patch_error(pid, "the thread exited while stepping")),
                Stop::Signal(libc::SIGTRAP) => return Ok(()),
                Stop::Event => {}
                Stop::Signal(sig) => {
                    if thread.pending == 0 {
                        thread.pending = sig;
                    }
                }
            }
        }
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        for t in self.threads.iter().filter(|t| !t.ours) {
            let _ = ptrace(libc::PTRACE_DETACH, t.tid, 0, t.pending as usize);
        }
    }
}

/// Reads and writes the memory of a process (also its read-only code,
/// as a debugger does).
struct Mem {
    file: File,
    pid: u32,
}

impl Mem {
    fn open(pid: u32) -> Result<Mem, ProbeError> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(format!("/proc/{pid}/mem"))
            .map_err(|e| patch_error(pid, format!("/proc/{pid}/mem: {e}")))?;
        Ok(Mem { file, pid })
    }

    fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>, ProbeError> {
        let mut buf = vec![0; len];
        self.file
            .read_exact_at(&mut buf, addr)
            .map_err(|e| patch_error(self.pid, format!("reading {len} bytes at {addr:#x}: {e}")))?;
        Ok(buf)
    }

    fn write(&self, addr: u64, bytes: &[u8]) -> Result<(), ProbeError> {
        self.file.write_all_at(bytes, addr).map_err(|e| {
            patch_error(
                self.pid,
                format!("writing {} bytes at {addr:#x}: {e}", bytes.len()),
            )
        })
    }
}

/// Runs one syscall in a stopped thread through the `syscall; int3` at
/// `gadget`; its result (negative: -errno).
fn inject_syscall(
    stopped: &mut Stopped,
    gadget: u64,
    saved: &libc::user_regs_struct,
    nr: i64,
    args: [u64; 6],
) -> Result<i64, ProbeError> {
    let pid = stopped.pid;
    let tid = stopped.threads[0].tid;
    let mut regs = *saved;
    regs.rip = gadget;
    regs.rax = nr as u64;
    // No syscall restart: the thread may have been stopped inside one.
    regs.orig_rax = u64::MAX;
    regs.rdi = args[0];
    regs.rsi = args[1];
    regs.rdx = args[2];
    regs.r10 = args[3];
    regs.r8 = args[4];
    regs.r9 = args[5];
    set_regs(tid, &regs).map_err(|e| patch_error(pid, format!("ptrace(SETREGS): {e}")))?;
    stopped.run_to(0, gadget + 3)?;
    let after = get_regs(tid).map_err(|e| patch_error(pid, format!("ptrace(GETREGS): {e}")))?;
    Ok(after.rax as i64)
}

/// The address ranges mapped in `pid`, sorted.
fn mapped(pid: u32) -> Result<Vec<(u64, u64)>, ProbeError> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .map_err(|_| ProbeError::NoProcess { pid })?;
    let mut out: Vec<(u64, u64)> = text
        .lines()
        .filter_map(|l| {
            let (range, _) = l.split_once(' ')?;
            let (a, b) = range.split_once('-')?;
            Some((
                u64::from_str_radix(a, 16).ok()?,
                u64::from_str_radix(b, 16).ok()?,
            ))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// A free, page-aligned place for `size` bytes from which `call rel32` at
/// every address in `[lo, hi]` reaches its start: below the code when
/// there is room (above it lies the heap, which must stay free to grow).
fn place(maps: &[(u64, u64)], lo: u64, hi: u64, size: u64) -> Option<u64> {
    const GAP: u64 = 1 << 16;
    const REACH: u64 = (1 << 31) - (1 << 20);
    let min = hi.saturating_sub(REACH).max(1 << 20);
    let max = lo.saturating_add(REACH).min(0x7fff_f000_0000);
    let mut free: Vec<(u64, u64)> = Vec::new();
    let mut prev = 0u64;
    for &(a, b) in maps {
        if a > prev {
            free.push((prev, a));
        }
        prev = prev.max(b);
    }
    free.push((prev, 0x7fff_ffff_f000));
    // Highest place below the code.
    let below = free
        .iter()
        .filter_map(|&(a, b)| {
            let end = b.min(lo).checked_sub(GAP)?;
            let start = end.checked_sub(size)? & !0xfff;
            (start >= a + GAP && start >= min).then_some(start)
        })
        .max();
    below.or_else(|| {
        free.iter()
            .filter_map(|&(a, b)| {
                let start = (a.max(hi) + (1 << 28) + 0xfff) & !0xfff;
                (start + size + GAP <= b && start + size <= max).then_some(start)
            })
            .min()
    })
}

/// A patched process: its sites, the region, the table mapped here.
pub struct Patch {
    pid: u32,
    /// Patch sites (the nop's address in the process) and their original bytes.
    sites: Vec<(u64, [u8; 5])>,
    /// Site index by its return address (site + 5), as the stub records it.
    by_return: HashMap<u64, usize>,
    /// Where the stub is in the process.
    region: u64,
    table: *mut u8,
    table_len: usize,
    slots: u64,
    /// Count of each slot at the last read.
    last: Vec<u64>,
    restored: bool,
}

// SAFETY: the table pointer is a private shared mapping owned by the Patch.
unsafe impl Send for Patch {}

impl Patch {
    /// Injects the stub and table into `pid` and patches the nops at
    /// `sites` (addresses in the process; each must hold one of the nop
    /// forms). `slots`: table size, a power of two.
    pub fn inject(pid: u32, sites: &[u64], slots: u64) -> Result<Patch, ProbeError> {
        assert!(slots.is_power_of_two());
        if sites.is_empty() {
            return Err(patch_error(pid, "no site to patch"));
        }
        let table_len = (HEADER + slots * SLOT).next_multiple_of(4096);
        let size = CODE_SIZE + table_len;
        let lo = *sites.iter().min().unwrap();
        let hi = *sites.iter().max().unwrap() + 5;
        let mut stopped = Stopped::all(pid)?;
        let mem = Mem::open(pid)?;
        let mut originals = Vec::with_capacity(sites.len());
        for &s in sites {
            let bytes: [u8; 5] = mem.read(s, 5)?.try_into().unwrap();
            if bytes != NOP5 && bytes != NOPS {
                return Err(patch_error(
                    pid,
                    format!("no 5-byte nop at {s:#x}: {bytes:02x?}"),
                ));
            }
            originals.push((s, bytes));
        }
        let region = place(&mapped(pid)?, lo, hi, size)
            .ok_or_else(|| patch_error(pid, "no free place within ±2 GiB of the code"))?;

        // Syscalls run in the first thread through `syscall; int3` written
        // over the first site's nop for the time.
        let gadget = sites[0];
        let tid = stopped.threads[0].tid;
        let saved = get_regs(tid).map_err(|e| patch_error(pid, format!("ptrace(GETREGS): {e}")))?;
        mem.write(gadget, &[0x0f, 0x05, 0xcc])?;
        let result = (|| -> Result<(File, i64), ProbeError> {
            let mut call = |nr: i64, args: [u64; 6], what: &str| -> Result<i64, ProbeError> {
                let r = inject_syscall(&mut stopped, gadget, &saved, nr, args)?;
                if (-4095..0).contains(&r) {
                    return Err(patch_error(
                        pid,
                        format!(
                            "{what} in the process: {}",
                            std::io::Error::from_raw_os_error(-r as i32)
                        ),
                    ));
                }
                Ok(r)
            };
            let rw = (libc::PROT_READ | libc::PROT_WRITE) as u64;
            let anon = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE) as u64;
            let got = call(
                libc::SYS_mmap,
                [region, size, rw, anon, u64::MAX, 0],
                "mmap",
            )?;
            if got as u64 != region {
                // A kernel without MAP_FIXED_NOREPLACE took it as a hint.
                let _ = call(libc::SYS_munmap, [got as u64, size, 0, 0, 0, 0], "munmap");
                return Err(patch_error(
                    pid,
                    format!("mmap put the region at {got:#x}, not {region:#x}"),
                ));
            }
            mem.write(region, b"tracemerge-patch\0")?;
            let fd = call(
                libc::SYS_memfd_create,
                [region, libc::MFD_CLOEXEC as u64, 0, 0, 0, 0],
                "memfd_create",
            )?;
            let mapped = (|| -> Result<File, ProbeError> {
                call(
                    libc::SYS_ftruncate,
                    [fd as u64, table_len, 0, 0, 0, 0],
                    "ftruncate",
                )?;
                let shared = (libc::MAP_SHARED | libc::MAP_FIXED) as u64;
                call(
                    libc::SYS_mmap,
                    [region + CODE_SIZE, table_len, rw, shared, fd as u64, 0],
                    "mmap of the table",
                )?;
                std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(format!("/proc/{pid}/fd/{fd}"))
                    .map_err(|e| patch_error(pid, format!("opening its table: {e}")))
            })();
            call(libc::SYS_close, [fd as u64, 0, 0, 0, 0, 0], "close")?;
            let file = mapped?;
            let mut code = stub_code().to_vec();
            code.resize(CODE_SIZE as usize, 0xcc);
            mem.write(region, &code)?;
            let rx = (libc::PROT_READ | libc::PROT_EXEC) as u64;
            call(
                libc::SYS_mprotect,
                [region, CODE_SIZE, rx, 0, 0, 0],
                "mprotect",
            )?;
            Ok((file, 0))
        })();
        // Put back what the thread was doing (and the site's bytes) in any case.
        let back = mem.write(gadget, &originals[0].1[..3]);
        let regs_back = set_regs(tid, &saved);
        let (file, _) = result?;
        back?;
        regs_back.map_err(|e| patch_error(pid, format!("ptrace(SETREGS): {e}")))?;

        // SAFETY: mapping the table file; the pointer is used only through
        // atomics and unmapped on drop.
        let table = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                table_len as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if table == libc::MAP_FAILED {
            return Err(patch_error(pid, format!("mapping its table: {}", errno())));
        }
        let patch = Patch {
            pid,
            by_return: originals
                .iter()
                .enumerate()
                .map(|(i, &(s, _))| (s + 5, i))
                .collect(),
            sites: originals,
            region,
            table: table.cast(),
            table_len: table_len as usize,
            slots,
            last: vec![0; slots as usize],
            restored: false,
        };
        patch.word(0).store(slots - 1, Ordering::SeqCst);

        // No thread may be stopped between two one-byte nops when they
        // become one call: step such a thread past them.
        for i in 0..stopped.threads.len() {
            for _ in 0..5 {
                let rip = get_regs(stopped.threads[i].tid)
                    .map_err(|e| patch_error(pid, format!("ptrace(GETREGS): {e}")))?
                    .rip;
                if !patch.sites.iter().any(|&(s, _)| rip > s && rip < s + 5) {
                    break;
                }
                stopped.step(i)?;
            }
        }
        for &(s, _) in &patch.sites {
            let rel = region as i64 - (s as i64 + 5);
            let rel = i32::try_from(rel).map_err(|_| patch_error(pid, "stub out of call range"))?;
            let mut call = [0xe8, 0, 0, 0, 0];
            call[1..].copy_from_slice(&rel.to_le_bytes());
            mem.write(s, &call)?;
        }
        drop(stopped);
        Ok(patch)
    }

    fn word(&self, offset: u64) -> &AtomicU64 {
        debug_assert!(offset + 8 <= self.table_len as u64 && offset.is_multiple_of(8));
        // SAFETY: in bounds of the mapping, 8-aligned; the other side
        // changes it only with atomic instructions.
        unsafe { &*(self.table.add(offset as usize) as *const AtomicU64) }
    }

    /// The process.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Where the stub was put in the process.
    pub fn region(&self) -> u64 {
        self.region
    }

    /// Calls counted as lost (a key found no free slot).
    pub fn lost(&self) -> u64 {
        self.word(8).load(Ordering::Relaxed)
    }

    /// The calls counted since the last read: (return address into the
    /// caller, site index, calls). A slot whose key is not fully visible
    /// yet is left for the next read, so nothing is lost.
    pub fn read(&mut self) -> Vec<(u64, usize, u64)> {
        let mut out: HashMap<(u64, usize), u64> = HashMap::new();
        for i in 0..self.slots {
            let at = HEADER + i * SLOT;
            let count = self.word(at + 16).load(Ordering::Acquire);
            if count == self.last[i as usize] {
                continue;
            }
            let ret = self.word(at).load(Ordering::Acquire);
            let site = self.word(at + 8).load(Ordering::Acquire);
            if ret == 0 || site == 0 {
                continue;
            }
            let Some(&index) = self.by_return.get(&site) else {
                continue;
            };
            *out.entry((ret, index)).or_default() += count - self.last[i as usize];
            self.last[i as usize] = count;
        }
        out.into_iter().map(|((r, s), n)| (r, s, n)).collect()
    }

    /// Puts the original nops back (every thread stopped for it). The
    /// region stays mapped: a thread may still be inside the stub. `false`
    /// when the process is gone (nothing to restore).
    pub fn restore(&mut self) -> Result<bool, ProbeError> {
        if self.restored {
            return Ok(true);
        }
        self.restored = true;
        let stopped = match Stopped::all(self.pid) {
            Ok(s) => s,
            Err(ProbeError::NoProcess { .. }) => return Ok(false),
            Err(e) => return Err(e),
        };
        let mem = Mem::open(self.pid)?;
        for &(s, original) in &self.sites {
            mem.write(s, &original)?;
        }
        drop(stopped);
        Ok(true)
    }
}

impl Drop for Patch {
    fn drop(&mut self) {
        // SAFETY: our own mapping, not used after this.
        unsafe { libc::munmap(self.table.cast(), self.table_len) };
    }
}

/// The load address of file offset `offset` of the file `file` in `pid`
/// (from /proc/PID/maps).
pub fn address_of_offset(pid: u32, file: crate::symbolize::FileId, offset: u64) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let range = f.next()?;
        let _perms = f.next()?;
        let map_offset = u64::from_str_radix(f.next()?, 16).ok()?;
        let dev = f.next()?;
        let inode: u64 = f.next()?.parse().ok()?;
        let (major, minor) = dev.split_once(':')?;
        let dev = (
            u32::from_str_radix(major, 16).ok()?,
            u32::from_str_radix(minor, 16).ok()?,
        );
        if (dev.0, dev.1, inode) != file {
            continue;
        }
        let (a, b) = range.split_once('-')?;
        let (a, b) = (
            u64::from_str_radix(a, 16).ok()?,
            u64::from_str_radix(b, 16).ok()?,
        );
        if offset >= map_offset && offset - map_offset < b - a {
            return Some(a + offset - map_offset);
        }
    }
    None
}

/// The patchable functions of `binary` as loaded in `pid`: (name, address
/// of its nop in the process), for the names in `functions` (every
/// function with a nop entry when `None`). Functions without a nop entry
/// are left out.
pub fn sites(
    pid: u32,
    binary: &std::path::Path,
    functions: Option<&[String]>,
) -> Result<Vec<(String, u64)>, ProbeError> {
    let info = crate::elf::ElfInfo::read(binary)?;
    let file = crate::symbolize::file_id(binary).map_err(|e| ProbeError::file(binary, e))?;
    let wanted: Option<std::collections::HashSet<&str>> =
        functions.map(|f| f.iter().map(String::as_str).collect());
    let mut out = Vec::new();
    for sym in info.probeable_functions() {
        if wanted
            .as_ref()
            .is_some_and(|w| !w.contains(sym.name.as_str()))
        {
            continue;
        }
        let code = info.bytes(sym.addr, 9.min(sym.size as usize));
        let Some(skip) = nop_offset(code) else {
            continue;
        };
        let Some(offset) = info.file_offset(sym.addr + skip as u64) else {
            continue;
        };
        if let Some(at) = address_of_offset(pid, file, offset) {
            out.push((sym.name.clone(), at));
        }
    }
    Ok(out)
}

/// Which functions of `binary` have a patchable nop entry (by name).
pub fn patchable(
    binary: &std::path::Path,
) -> Result<std::collections::HashSet<String>, ProbeError> {
    let info = crate::elf::ElfInfo::read(binary)?;
    Ok(info
        .probeable_functions()
        .filter(|sym| nop_offset(info.bytes(sym.addr, 9.min(sym.size as usize))).is_some())
        .map(|sym| sym.name.clone())
        .collect())
}

/// What a patch session did.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub functions: usize,
    pub edges: u64,
    pub hits: u64,
    /// Calls that found no free slot in the table.
    pub lost: u64,
    pub windows: u64,
    pub windows_without_coverage: u64,
    /// Injecting and patching (all threads stopped meanwhile).
    pub attach: std::time::Duration,
    /// Whether the nops were put back at the end (`None`: not tried).
    pub restored: Option<bool>,
}

impl Summary {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "functions": self.functions,
            "edges": self.edges,
            "hits": self.hits,
            "losses": self.lost,
            "windows": self.windows,
            "windows_without_coverage": self.windows_without_coverage,
            "attach_ms": self.attach.as_secs_f64() * 1e3,
            "restored": self.restored,
        })
    }
}

/// Exact counting of one process's patched functions, window by window:
/// the same `edge` and `coverage` records as the uprobe collector.
pub struct Session {
    patch: Patch,
    names: Vec<String>,
    sorted_names: Vec<String>,
    symbolizer: crate::symbolize::Symbolizer,
    artifact: String,
    source: String,
    window_start: u64,
    lost_reported: u64,
    restore_on_finish: bool,
    finished: bool,
    summary: Summary,
}

impl Session {
    /// Patches `functions` (those with a nop entry) of `config.binary` in
    /// process `config.pid`. `restore_on_finish`: put the nops back when
    /// the session ends (a process that goes on running); a command that
    /// ends with the session need not be restored.
    pub fn attach(
        config: &crate::exact::Config,
        functions: &[String],
        restore_on_finish: bool,
    ) -> Result<Session, ProbeError> {
        let pid = config.pid.ok_or_else(|| ProbeError::Command {
            program: String::new(),
            what: "patched entries need one process (--pid or a command)".into(),
        })?;
        let binary = std::fs::canonicalize(&config.binary)
            .map_err(|e| ProbeError::file(&config.binary, e))?;
        let info = crate::elf::ElfInfo::read(&binary)?;
        let started = std::time::Instant::now();
        let sites = sites(pid, &binary, Some(functions))?;
        if sites.is_empty() {
            return Err(ProbeError::NothingToProbe {
                binary,
                missing: functions.to_vec(),
            });
        }
        let addrs: Vec<u64> = sites.iter().map(|s| s.1).collect();
        let mut symbolizer =
            crate::symbolize::Symbolizer::new(crate::symbolize::file_id(&binary).ok());
        symbolizer.set_name_style(config.names);
        let patch = Patch::inject(pid, &addrs, DEFAULT_SLOTS)?;
        let attach = started.elapsed();
        symbolizer.refresh(pid);
        let mut namer = crate::demangle::Namer::new(config.names);
        let names: Vec<String> = sites.iter().map(|(n, _)| namer.name(n)).collect();
        let mut sorted_names = names.clone();
        sorted_names.sort();
        let artifact = config
            .artifact
            .clone()
            .unwrap_or_else(|| match &info.build_id {
                Some(id) => format!("build-id:{id}"),
                None => format!("path:{}", binary.display()),
            });
        Ok(Session {
            patch,
            summary: Summary {
                functions: names.len(),
                attach,
                ..Default::default()
            },
            names,
            sorted_names,
            symbolizer,
            artifact,
            source: config
                .source
                .clone()
                .unwrap_or_else(crate::exact::default_source),
            window_start: crate::target::now_ms(),
            lost_reported: 0,
            restore_on_finish,
            finished: false,
        })
    }

    /// The patched functions' names.
    pub fn functions(&self) -> &[String] {
        &self.names
    }

    /// Re-reads the process's maps (call while it still exists).
    pub fn remember_process(&mut self, pid: u32) {
        self.symbolizer.refresh(pid);
    }

    /// The calls counted since the last drain, as `edge` records, and a
    /// `coverage` record of the patched functions for the window (withheld
    /// when calls were lost in it).
    pub fn drain(&mut self) -> Result<Vec<Record>, ProbeError> {
        let now = crate::target::now_ms();
        self.symbolizer.new_round();
        let pid = self.patch.pid();
        let mut edges: std::collections::BTreeMap<(String, String), u64> = Default::default();
        for (ret, site, n) in self.patch.read() {
            // ret - 1: the call instruction, inside the caller.
            let caller = self.symbolizer.resolve(pid, ret - 1);
            *edges.entry((caller, self.names[site].clone())).or_default() += n;
        }
        let mut out = Vec::with_capacity(edges.len() + 1);
        for ((caller, callee), hits) in edges {
            self.summary.edges += 1;
            self.summary.hits += hits;
            out.push(Record::Edge(tracemerge_records::EdgeObservation {
                artifact: self.artifact.clone(),
                caller,
                callee,
                at: now,
                hits,
                source: self.source.clone(),
                event_id: None,
                estimated: false,
            }));
        }
        let lost = self.patch.lost();
        let new_lost = lost - self.lost_reported;
        self.lost_reported = lost;
        self.summary.lost = lost;
        self.summary.windows += 1;
        let window = crate::exact::Window {
            artifact: &self.artifact,
            source: &self.source,
            probed: &self.sorted_names,
            from: self.window_start,
            to: now,
        };
        if let Some(coverage) = window.coverage((new_lost > 0).then_some(new_lost), true) {
            self.summary.windows_without_coverage += coverage.lost.is_some() as u64;
            out.push(Record::Coverage(coverage));
        }
        self.window_start = now;
        Ok(out)
    }

    /// The last drain; then the nops go back when asked for at attach.
    pub fn finish(&mut self) -> Result<Vec<Record>, ProbeError> {
        if self.finished {
            return Ok(Vec::new());
        }
        self.finished = true;
        let out = self.drain()?;
        if self.restore_on_finish {
            self.summary.restored = Some(self.patch.restore()?);
        }
        Ok(out)
    }

    pub fn summary(&self) -> &Summary {
        &self.summary
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Ended without `finish` (an error on the way): a process that goes
        // on running gets its nops back all the same.
        if self.restore_on_finish && !self.finished {
            let _ = self.patch.restore();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_nop_forms_are_patchable_also_after_endbr64() {
        assert_eq!(nop_offset(&[0x0f, 0x1f, 0x44, 0, 0, 0x55]), Some(0));
        assert_eq!(nop_offset(&[0x90; 6]), Some(0));
        assert_eq!(
            nop_offset(&[0xf3, 0x0f, 0x1e, 0xfa, 0x90, 0x90, 0x90, 0x90, 0x90]),
            Some(4)
        );
        assert_eq!(nop_offset(&[0x90, 0x90, 0x90, 0x90, 0x55]), None);
        assert_eq!(nop_offset(&[0x0f, 0x1f, 0x44, 0, 8]), None);
        assert_eq!(nop_offset(&[0x55]), None);
    }

    #[test]
    fn stub_is_position_independent_and_fits_its_page() {
        let code = stub_code();
        assert!(!code.is_empty() && (code.len() as u64) < CODE_SIZE);
        assert_eq!(code[0], 0x9c, "pushfq first");
        assert_eq!(*code.last().unwrap(), 0xc3, "ret last");
    }

    #[test]
    fn the_region_goes_below_the_code_within_call_range() {
        let maps = [
            (0x5555_0000_0000, 0x5555_0010_0000),
            (0x7fff_0000_0000, 0x7fff_0010_0000),
        ];
        let at = place(&maps, 0x5555_0000_1000, 0x5555_0000_2000, 0x20_1000).unwrap();
        assert!(at + 0x20_1000 < 0x5555_0000_0000 && 0x5555_0000_2000 - at < 1 << 31);
        // No room below (a mapping fills it): above, past the heap's room.
        let full = [(0x1_0000, 0x40_0000), (0x40_0000, 0x50_0000)];
        let at = place(&full, 0x40_1000, 0x40_2000, 0x20_1000).unwrap();
        assert!(at > 0x50_0000 && at - 0x40_1000 < 1 << 31);
    }
}
