//! Typed decoders for the kernel events the edge extraction needs, and for
//! the KernelTraceControl ImageID events (PDB identity of each image).
//! Each decoder returns `None` when the payload is too short for its fields.

use crate::events::{Event, Guid, HeaderKind};
use crate::file::{ansiz, ptr_at, u16_at, u32_at, u64_at, utf16z};
use serde::Serialize;

/// Kernel event groups (high byte of the hook id).
pub mod group {
    pub const EVENT_TRACE: u8 = 0x00;
    /// Process events; also Image Load (type 10) under the classic hook 0x030A.
    pub const PROCESS: u8 = 0x03;
    pub const FILE_IO: u8 = 0x04;
    pub const THREAD: u8 = 0x05;
    pub const PERFINFO: u8 = 0x0f;
    pub const IMAGE: u8 = 0x14;
    pub const STACK_WALK: u8 = 0x18;
}

/// StackWalk event types.
pub mod stackwalk {
    pub const STACK: u8 = 32;
    pub const KEY_CREATE: u8 = 34;
    pub const KEY_DELETE: u8 = 35;
    pub const KEY_RUNDOWN: u8 = 36;
    pub const KEY_REF_KERNEL: u8 = 37;
    pub const KEY_REF_USER: u8 = 38;
}

/// Image Load logged under the Process group (hook 0x030A) by older kernels
/// and some sessions: the Image Load layout.
pub const IMAGE_LOAD_CLASSIC: u8 = 10;

/// PerfInfo `SampledProfile`.
pub const PERFINFO_SAMPLED_PROFILE: u8 = 46;

/// The KernelTraceControl provider that carries ImageID / DbgID events.
pub const KERNEL_TRACE_CONTROL: Guid = Guid::from_fields(
    0xb3e6_75d7,
    0x2554,
    0x4f18,
    [0x83, 0x0b, 0x27, 0x62, 0x73, 0x25, 0x60, 0xde],
);
pub const IMAGE_ID_OPCODE: u8 = 0;
pub const DBGID_RSDS_OPCODE: u8 = 36;
pub const DBGID_ILRSDS_OPCODE: u8 = 37;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Lifecycle {
    Start,
    End,
    /// Rundown at the start of the trace (existed before it).
    DcStart,
    /// Rundown at the end of the trace (still exists).
    DcEnd,
    Defunct,
}

/// Image Load (10), Unload (2), DCStart (3), DCEnd (4).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ImageEvent {
    pub kind: Lifecycle,
    pub base: u64,
    pub size: u64,
    pub pid: u32,
    pub checksum: u32,
    pub time_date_stamp: u32,
    pub file_name: String,
}

/// Process Start (1), End (2), DCStart (3), DCEnd (4), Defunct (39).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProcessEvent {
    pub kind: Lifecycle,
    pub pid: u32,
    pub parent_pid: u32,
    pub session_id: u32,
    pub exit_status: i32,
    pub image_file_name: String,
    pub command_line: String,
}

/// Thread Start (1), End (2), DCStart (3), DCEnd (4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ThreadEvent {
    pub kind: Lifecycle,
    pub pid: u32,
    pub tid: u32,
}

/// StackWalk full stack (32).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackEvent {
    pub event_timestamp: i64,
    pub pid: u32,
    pub tid: u32,
    pub frames: Vec<u64>,
}

/// StackWalk key reference (37 kernel, 38 user).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackKeyRef {
    pub event_timestamp: i64,
    pub pid: u32,
    pub tid: u32,
    pub key: u64,
    pub kernel: bool,
}

/// StackWalk key definition (34 create, 35 delete, 36 rundown).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackKeyDef {
    pub key: u64,
    pub frames: Vec<u64>,
}

/// PerfInfo SampledProfile (46).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SampledProfile {
    pub instruction_pointer: u64,
    pub tid: u32,
    pub count: u16,
}

/// KernelTraceControl ImageID (opcode 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageId {
    pub base: u64,
    pub size: u64,
    pub pid: u32,
    pub time_date_stamp: u32,
    pub original_file_name: String,
}

/// KernelTraceControl DbgID_RSDS (opcode 36; 37 for IL PDBs): the CodeView
/// record that names the image's PDB.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DbgIdRsds {
    pub base: u64,
    pub pid: u32,
    pub guid: Guid,
    pub age: u32,
    pub pdb_file_name: String,
}

/// A decoded event of interest.
#[derive(Clone, Debug)]
pub enum Decoded {
    Image(ImageEvent),
    Process(ProcessEvent),
    Thread(ThreadEvent),
    Stack(StackEvent),
    KeyRef(StackKeyRef),
    KeyDef(StackKeyDef),
    Sample(SampledProfile),
    ImageId(ImageId),
    Rsds(DbgIdRsds),
}

fn lifecycle(opcode: u8) -> Option<Lifecycle> {
    Some(match opcode {
        1 | 10 => Lifecycle::Start,
        2 => Lifecycle::End,
        3 => Lifecycle::DcStart,
        4 => Lifecycle::DcEnd,
        39 => Lifecycle::Defunct,
        _ => return None,
    })
}

fn frames(p: &[u8], from: usize, ps: usize) -> Vec<u64> {
    let n = p.len().saturating_sub(from) / ps;
    (0..n)
        .filter_map(|i| ptr_at(p, from + i * ps, ps))
        .collect()
}

/// Decodes `ev` when it is one of the events above. `Some(Err(()))` means
/// "known kind but payload too short": the caller counts it.
pub fn decode(ev: &Event<'_>) -> Option<Result<Decoded, ()>> {
    let p = ev.payload;
    let ps = ev.pointer_size;
    if ev.kind.is_kernel() {
        let r = match (ev.group, ev.opcode) {
            (group::IMAGE, 2 | 3 | 4 | 10) | (group::PROCESS, IMAGE_LOAD_CLASSIC) => {
                image(ev).map(Decoded::Image)
            }
            (group::PROCESS, 1..=4 | 39) => process(ev).map(Decoded::Process),
            (group::THREAD, 1..=4) => (|| {
                Some(Decoded::Thread(ThreadEvent {
                    kind: lifecycle(ev.opcode)?,
                    pid: u32_at(p, 0)?,
                    tid: u32_at(p, 4)?,
                }))
            })(),
            (group::STACK_WALK, stackwalk::STACK) => (|| {
                Some(Decoded::Stack(StackEvent {
                    event_timestamp: u64_at(p, 0)? as i64,
                    pid: u32_at(p, 8)?,
                    tid: u32_at(p, 12)?,
                    frames: frames(p, 16, ps),
                }))
            })(),
            (group::STACK_WALK, stackwalk::KEY_REF_KERNEL | stackwalk::KEY_REF_USER) => (|| {
                Some(Decoded::KeyRef(StackKeyRef {
                    event_timestamp: u64_at(p, 0)? as i64,
                    pid: u32_at(p, 8)?,
                    tid: u32_at(p, 12)?,
                    key: ptr_at(p, 16, ps)?,
                    kernel: ev.opcode == stackwalk::KEY_REF_KERNEL,
                }))
            })(
            ),
            (
                group::STACK_WALK,
                stackwalk::KEY_CREATE | stackwalk::KEY_DELETE | stackwalk::KEY_RUNDOWN,
            ) => (|| {
                Some(Decoded::KeyDef(StackKeyDef {
                    key: ptr_at(p, 0, ps)?,
                    frames: frames(p, ps, ps),
                }))
            })(),
            (group::PERFINFO, PERFINFO_SAMPLED_PROFILE) => (|| {
                Some(Decoded::Sample(SampledProfile {
                    instruction_pointer: ptr_at(p, 0, ps)?,
                    tid: u32_at(p, ps)?,
                    count: u16_at(p, ps + 4).unwrap_or(1),
                }))
            })(),
            _ => return None,
        };
        return Some(r.ok_or(()));
    }
    if ev.kind == HeaderKind::Full && ev.provider == Some(KERNEL_TRACE_CONTROL) {
        let r = match ev.opcode {
            IMAGE_ID_OPCODE => (|| {
                Some(Decoded::ImageId(ImageId {
                    base: ptr_at(p, 0, ps)?,
                    size: ptr_at(p, ps, ps)?,
                    pid: u32_at(p, 2 * ps)?,
                    time_date_stamp: u32_at(p, 2 * ps + 4)?,
                    original_file_name: utf16z(p.get(2 * ps + 8..)?).0,
                }))
            })(),
            DBGID_RSDS_OPCODE | DBGID_ILRSDS_OPCODE => (|| {
                Some(Decoded::Rsds(DbgIdRsds {
                    base: ptr_at(p, 0, ps)?,
                    pid: u32_at(p, ps)?,
                    guid: Guid::from_bytes(p.get(ps + 4..)?)?,
                    age: u32_at(p, ps + 20)?,
                    pdb_file_name: ansiz(p.get(ps + 24..)?).0,
                }))
            })(),
            _ => return None,
        };
        return Some(r.ok_or(()));
    }
    None
}

fn image(ev: &Event<'_>) -> Option<ImageEvent> {
    let p = ev.payload;
    let ps = ev.pointer_size;
    let kind = lifecycle(ev.opcode)?;
    // v0: BaseAddress, ModuleSize(u32), FileName; v1: ImageBase, ImageSize,
    // ProcessId, FileName; v2+: + CheckSum, TimeDateStamp, Reserved0,
    // DefaultBase, Reserved1..4 before FileName.
    match ev.version {
        0 => Some(ImageEvent {
            kind,
            base: ptr_at(p, 0, ps)?,
            size: u64::from(u32_at(p, ps)?),
            pid: 0,
            checksum: 0,
            time_date_stamp: 0,
            file_name: utf16z(p.get(ps + 4..)?).0,
        }),
        1 => Some(ImageEvent {
            kind,
            base: ptr_at(p, 0, ps)?,
            size: ptr_at(p, ps, ps)?,
            pid: u32_at(p, 2 * ps)?,
            checksum: 0,
            time_date_stamp: 0,
            file_name: utf16z(p.get(2 * ps + 4..)?).0,
        }),
        _ => Some(ImageEvent {
            kind,
            base: ptr_at(p, 0, ps)?,
            size: ptr_at(p, ps, ps)?,
            pid: u32_at(p, 2 * ps)?,
            checksum: u32_at(p, 2 * ps + 4)?,
            time_date_stamp: u32_at(p, 2 * ps + 8)?,
            file_name: utf16z(p.get(3 * ps + 32..)?).0,
        }),
    }
}

fn process(ev: &Event<'_>) -> Option<ProcessEvent> {
    let p = ev.payload;
    let ps = ev.pointer_size;
    let kind = lifecycle(ev.opcode)?;
    let pid = u32_at(p, ps)?;
    let parent_pid = u32_at(p, ps + 4)?;
    let session_id = u32_at(p, ps + 8)?;
    let exit_status = u32_at(p, ps + 12)? as i32;
    // v2: the SID follows ExitStatus; v3: DirectoryTableBase first; v4+: and Flags.
    let mut sid = ps + 16;
    if ev.version >= 3 {
        sid += ps;
    }
    if ev.version >= 4 {
        sid += 4;
    }
    // TOKEN_USER (two pointers) then the SID, or a single 0 when absent.
    let name_at = if u32_at(p, sid)? == 0 {
        sid + 4
    } else {
        let sub_authorities = *p.get(sid + 2 * ps + 1)? as usize;
        sid + 2 * ps + 8 + 4 * sub_authorities
    };
    let (image_file_name, used) = ansiz(p.get(name_at..)?);
    let command_line = utf16z(p.get(name_at + used..).unwrap_or(&[])).0;
    Some(ProcessEvent {
        kind,
        pid,
        parent_pid,
        session_id,
        exit_status,
        image_file_name,
        command_line,
    })
}
