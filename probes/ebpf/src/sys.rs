//! The few bpf(2) commands that aya 0.14 lacks: loading a program with the
//! `BPF_TRACE_UPROBE_MULTI` expected attach type, creating a uprobe_multi
//! link, and listing loaded programs (for leak checks).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_GET_NEXT_ID: libc::c_long = 11;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_LINK_CREATE: libc::c_long = 28;

/// `BPF_PROG_TYPE_KPROBE`: uprobe programs are kprobe-type programs.
pub const PROG_TYPE_KPROBE: u32 = 2;
/// `BPF_TRACE_UPROBE_MULTI` of `enum bpf_attach_type`.
pub const TRACE_UPROBE_MULTI: u32 = 48;

/// A zeroed `union bpf_attr`, written field by field at the kernel's offsets.
/// 128 bytes cover every command used here; the kernel accepts a larger attr
/// whose tail is zero.
#[repr(C, align(8))]
struct Attr([u8; 128]);

impl Attr {
    fn new() -> Attr {
        Attr([0; 128])
    }
    fn u32(&mut self, offset: usize, v: u32) -> &mut Self {
        self.0[offset..offset + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn u64(&mut self, offset: usize, v: u64) -> &mut Self {
        self.0[offset..offset + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn read_u32(&self, offset: usize) -> u32 {
        u32::from_ne_bytes(self.0[offset..offset + 4].try_into().unwrap())
    }
}

fn bpf(cmd: libc::c_long, attr: &mut Attr) -> io::Result<libc::c_long> {
    // SAFETY: attr is a valid, writable bpf_attr of the size passed; every
    // pointer stored in it outlives the call (the callers keep them alive).
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.0.as_mut_ptr(), attr.0.len() as u32) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: the kernel just returned this fd to us and nobody else owns it.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

/// Loads a program from raw (already relocated) instructions. On a verifier
/// rejection the error carries the verifier log.
pub fn prog_load(
    prog_type: u32,
    expected_attach_type: u32,
    insns: &[u8],
    license: &str,
    name: &str,
) -> io::Result<OwnedFd> {
    let license = CString::new(license).map_err(io::Error::other)?;
    let mut log = vec![0u8; 1 << 20];
    let load = |log_level: u32, log: &mut [u8]| {
        let mut attr = Attr::new();
        attr.u32(0, prog_type)
            .u32(4, (insns.len() / 8) as u32)
            .u64(8, insns.as_ptr() as u64)
            .u64(16, license.as_ptr() as u64)
            .u32(68, expected_attach_type);
        if log_level > 0 {
            attr.u32(24, log_level)
                .u32(28, log.len() as u32)
                .u64(32, log.as_mut_ptr() as u64);
        }
        let bytes = name.as_bytes();
        let n = bytes.len().min(15);
        attr.0[48..48 + n].copy_from_slice(&bytes[..n]);
        bpf(BPF_PROG_LOAD, &mut attr).map(owned)
    };
    match load(0, &mut log) {
        Ok(fd) => Ok(fd),
        Err(first) => {
            // Retry with the verifier log to say why.
            match load(1, &mut log) {
                Ok(fd) => Ok(fd),
                Err(_) => {
                    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                    let text = String::from_utf8_lossy(&log[..end]);
                    let tail: Vec<&str> = text.lines().rev().take(20).collect();
                    let tail: Vec<&str> = tail.into_iter().rev().collect();
                    Err(io::Error::new(
                        first.kind(),
                        format!("{first}; verifier log (tail):\n{}", tail.join("\n")),
                    ))
                }
            }
        }
    }
}

/// Creates one uprobe_multi link: entry probes at `offsets` (file offsets)
/// of the file `path`, each with its cookie; `pid` 0 probes every process.
/// Dropping the returned fd detaches all probes at once.
pub fn uprobe_multi_link(
    prog: &OwnedFd,
    path: &std::path::Path,
    offsets: &[u64],
    cookies: &[u64],
    pid: u32,
) -> io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    assert_eq!(offsets.len(), cookies.len());
    let path = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let mut attr = Attr::new();
    attr.u32(0, prog.as_raw_fd() as u32)
        .u32(8, TRACE_UPROBE_MULTI)
        .u64(16, path.as_ptr() as u64)
        .u64(24, offsets.as_ptr() as u64)
        .u64(40, cookies.as_ptr() as u64)
        .u32(48, offsets.len() as u32)
        .u32(56, pid);
    bpf(BPF_LINK_CREATE, &mut attr).map(owned)
}

/// Names and ids of all BPF programs loaded in the kernel.
pub fn loaded_programs() -> io::Result<Vec<(u32, String)>> {
    let mut out = Vec::new();
    let mut id = 0u32;
    loop {
        let mut attr = Attr::new();
        attr.u32(0, id);
        match bpf(BPF_PROG_GET_NEXT_ID, &mut attr) {
            Ok(_) => id = attr.read_u32(4),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => break,
            Err(e) => return Err(e),
        }
        let mut attr = Attr::new();
        attr.u32(0, id);
        let fd = match bpf(BPF_PROG_GET_FD_BY_ID, &mut attr) {
            Ok(fd) => owned(fd),
            Err(_) => continue, // unloaded meanwhile
        };
        let mut info = [0u8; 256];
        let mut attr = Attr::new();
        attr.u32(0, fd.as_raw_fd() as u32)
            .u32(4, info.len() as u32)
            .u64(8, info.as_mut_ptr() as u64);
        if bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr).is_err() {
            continue;
        }
        let name = &info[64..80];
        let end = name.iter().position(|&b| b == 0).unwrap_or(16);
        out.push((id, String::from_utf8_lossy(&name[..end]).into_owned()));
    }
    Ok(out)
}

/// `(run_time_ns, run_cnt)` of a loaded program: the kernel's own count of
/// its runs and the time spent in them, kept only while the sysctl
/// `kernel.bpf_stats_enabled` is 1.
pub fn prog_run_stats(prog: &OwnedFd) -> io::Result<(u64, u64)> {
    let mut info = [0u64; 64];
    let mut attr = Attr::new();
    attr.u32(0, prog.as_raw_fd() as u32)
        .u32(4, std::mem::size_of_val(&info) as u32)
        .u64(8, info.as_mut_ptr() as u64);
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    // struct bpf_prog_info: run_time_ns at byte 192, run_cnt at 200.
    Ok((info[24], info[25]))
}
