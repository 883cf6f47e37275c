//! A small ETL writer for synthetic test files: the log-file header buffer,
//! plain or XPRESS-compressed buffers, and the kernel / EVENT_HEADER
//! records the decoder understands.
#![allow(dead_code, clippy::too_many_arguments)]

use std::collections::HashMap;
use std::path::PathBuf;

use tracemerge_etl::events::EventWalker;
use tracemerge_etl::file::BufferWalker;
use tracemerge_etl::realtime::LiveEvent;
use tracemerge_records::Record;

pub const FT_2024: i64 = 133_485_408_000_000_000; // 2024-01-01T00:00:00Z as FILETIME
pub const QPC_START: i64 = 1_000_000;
pub const FREQ: i64 = 10_000_000;

pub struct Buf {
    pub records: Vec<Vec<u8>>,
    pub flags: u16,
    pub processor: u16,
}

pub struct EtlWriter {
    pub ps: usize,
    pub buffer_size: u32,
    pub compressed: bool,
    pub events_lost: u32,
    pub buffers_lost: u32,
    pub buffers: Vec<Buf>,
}

fn align8(v: &mut Vec<u8>) {
    while !v.len().is_multiple_of(8) {
        v.push(0);
    }
}

pub fn ptr(v: &mut Vec<u8>, ps: usize, x: u64) {
    if ps == 4 {
        v.extend_from_slice(&(x as u32).to_le_bytes());
    } else {
        v.extend_from_slice(&x.to_le_bytes());
    }
}

pub fn wstr(v: &mut Vec<u8>, s: &str) {
    for u in s.encode_utf16() {
        v.extend_from_slice(&u.to_le_bytes());
    }
    v.extend_from_slice(&[0, 0]);
}

impl EtlWriter {
    pub fn new(ps: usize) -> EtlWriter {
        EtlWriter {
            ps,
            buffer_size: 0x2000,
            compressed: false,
            events_lost: 0,
            buffers_lost: 0,
            buffers: Vec::new(),
        }
    }

    /// Starts a new data buffer (after the header buffer).
    pub fn buffer(&mut self, processor: u16) -> &mut Self {
        self.buffers.push(Buf {
            records: Vec::new(),
            flags: 0,
            processor,
        });
        self
    }

    pub fn flag_current(&mut self, flags: u16) -> &mut Self {
        self.buffers.last_mut().expect("a buffer").flags |= flags;
        self
    }

    pub fn push(&mut self, rec: Vec<u8>) -> &mut Self {
        if self.buffers.is_empty() {
            self.buffer(0);
        }
        self.buffers.last_mut().unwrap().records.push(rec);
        self
    }

    fn kernel_header(ht: u8, size: usize, group: u8, opcode: u8, version: u16) -> Vec<u8> {
        let mut r = Vec::new();
        r.extend_from_slice(&version.to_le_bytes());
        r.push(ht);
        r.push(0xc0);
        r.extend_from_slice(&(size as u16).to_le_bytes());
        r.push(opcode);
        r.push(group);
        r
    }

    /// A kernel record with a system header (thread, process, CPU times).
    pub fn system(
        &self,
        group: u8,
        opcode: u8,
        version: u16,
        tid: u32,
        pid: u32,
        ts: i64,
        payload: &[u8],
    ) -> Vec<u8> {
        let ht = if self.ps == 4 { 1 } else { 2 };
        let mut r = Self::kernel_header(ht, 0x20 + payload.len(), group, opcode, version);
        r.extend_from_slice(&tid.to_le_bytes());
        r.extend_from_slice(&pid.to_le_bytes());
        r.extend_from_slice(&ts.to_le_bytes());
        r.extend_from_slice(&[0; 8]);
        r.extend_from_slice(payload);
        r
    }

    /// A kernel record with a perfinfo header (timestamp only).
    pub fn perfinfo(
        &self,
        group: u8,
        opcode: u8,
        version: u16,
        ts: i64,
        payload: &[u8],
    ) -> Vec<u8> {
        let ht = if self.ps == 4 { 16 } else { 17 };
        let mut r = Self::kernel_header(ht, 0x10 + payload.len(), group, opcode, version);
        r.extend_from_slice(&ts.to_le_bytes());
        r.extend_from_slice(payload);
        r
    }

    /// Image event (v2 layout): opcode 10 load, 2 unload, 3 DCStart, 4 DCEnd.
    pub fn image(
        &self,
        opcode: u8,
        ts: i64,
        base: u64,
        size: u64,
        pid: u32,
        path: &str,
    ) -> Vec<u8> {
        let ps = self.ps;
        let mut p = Vec::new();
        ptr(&mut p, ps, base);
        ptr(&mut p, ps, size);
        p.extend_from_slice(&pid.to_le_bytes());
        p.extend_from_slice(&0u32.to_le_bytes()); // checksum
        p.extend_from_slice(&0x5000_0000u32.to_le_bytes()); // TimeDateStamp
        p.extend_from_slice(&0u32.to_le_bytes());
        ptr(&mut p, ps, base);
        p.extend_from_slice(&[0; 16]);
        wstr(&mut p, path);
        self.system(0x14, opcode, 2, 0, pid, ts, &p)
    }

    /// Process event (v4 layout, no SID): opcode 1 start, 3 DCStart.
    pub fn process(&self, opcode: u8, ts: i64, pid: u32, name: &str) -> Vec<u8> {
        let ps = self.ps;
        let mut p = Vec::new();
        ptr(&mut p, ps, 0xdead_0000 + u64::from(pid));
        p.extend_from_slice(&pid.to_le_bytes());
        p.extend_from_slice(&4u32.to_le_bytes()); // parent
        p.extend_from_slice(&1u32.to_le_bytes()); // session
        p.extend_from_slice(&0u32.to_le_bytes()); // exit status
        ptr(&mut p, ps, 0x1000); // DirectoryTableBase
        p.extend_from_slice(&0u32.to_le_bytes()); // flags
        p.extend_from_slice(&0u32.to_le_bytes()); // no SID
        p.extend_from_slice(name.as_bytes());
        p.push(0);
        wstr(&mut p, &format!("{name} --serve"));
        wstr(&mut p, "");
        wstr(&mut p, "");
        self.system(0x03, opcode, 4, 0, pid, ts, &p)
    }

    pub fn sample(&self, ts: i64, ip: u64, tid: u32) -> Vec<u8> {
        let mut p = Vec::new();
        ptr(&mut p, self.ps, ip);
        p.extend_from_slice(&tid.to_le_bytes());
        p.extend_from_slice(&1u16.to_le_bytes());
        p.extend_from_slice(&0u16.to_le_bytes());
        self.perfinfo(0x0f, 46, 2, ts, &p)
    }

    /// StackWalk full stack (32) logged at `ts` for the event at `event_ts`.
    pub fn stack(&self, ts: i64, event_ts: i64, pid: u32, tid: u32, frames: &[u64]) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend_from_slice(&event_ts.to_le_bytes());
        p.extend_from_slice(&pid.to_le_bytes());
        p.extend_from_slice(&tid.to_le_bytes());
        for &f in frames {
            ptr(&mut p, self.ps, f);
        }
        self.perfinfo(0x18, 32, 2, ts, &p)
    }

    /// StackWalk key reference (37 kernel, 38 user).
    pub fn key_ref(
        &self,
        ts: i64,
        kernel: bool,
        event_ts: i64,
        pid: u32,
        tid: u32,
        key: u64,
    ) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend_from_slice(&event_ts.to_le_bytes());
        p.extend_from_slice(&pid.to_le_bytes());
        p.extend_from_slice(&tid.to_le_bytes());
        ptr(&mut p, self.ps, key);
        self.perfinfo(0x18, if kernel { 37 } else { 38 }, 2, ts, &p)
    }

    /// StackWalk key definition (35 delete, 36 rundown).
    pub fn key_def(&self, ts: i64, opcode: u8, key: u64, frames: &[u64]) -> Vec<u8> {
        let mut p = Vec::new();
        ptr(&mut p, self.ps, key);
        for &f in frames {
            ptr(&mut p, self.ps, f);
        }
        self.perfinfo(0x18, opcode, 2, ts, &p)
    }

    /// An EVENT_HEADER record with a related-activity item and a stack item.
    pub fn user_event_with_stack(&self, ts: i64, pid: u32, tid: u32, frames: &[u64]) -> Vec<u8> {
        let mut ext = Vec::new();
        // related activity id: 16 bytes, linkage 1 (more follow)
        ext.extend_from_slice(&24u16.to_le_bytes());
        ext.extend_from_slice(&1u16.to_le_bytes());
        ext.extend_from_slice(&1u16.to_le_bytes());
        ext.extend_from_slice(&16u16.to_le_bytes());
        ext.extend_from_slice(&[0xaa; 16]);
        let ds = 8 + frames.len() * 8;
        ext.extend_from_slice(&((8 + ds) as u16).to_le_bytes());
        ext.extend_from_slice(&6u16.to_le_bytes());
        ext.extend_from_slice(&0u16.to_le_bytes());
        ext.extend_from_slice(&(ds as u16).to_le_bytes());
        ext.extend_from_slice(&0u64.to_le_bytes()); // MatchId
        for &f in frames {
            ext.extend_from_slice(&f.to_le_bytes());
        }
        let payload = b"payload!";
        let size = 0x50 + ext.len() + payload.len();
        let mut r = Vec::new();
        r.extend_from_slice(&(size as u16).to_le_bytes());
        r.push(19);
        r.push(0xc0);
        r.extend_from_slice(&(0x0001u16 | 0x40).to_le_bytes()); // EXTENDED_INFO | 64-bit
        r.extend_from_slice(&0u16.to_le_bytes());
        r.extend_from_slice(&tid.to_le_bytes());
        r.extend_from_slice(&pid.to_le_bytes());
        r.extend_from_slice(&ts.to_le_bytes());
        r.extend_from_slice(&[0x11; 16]); // provider
        r.extend_from_slice(&7u16.to_le_bytes()); // id
        r.extend_from_slice(&[1, 0, 4, 0]); // version, channel, level, opcode
        r.extend_from_slice(&0u16.to_le_bytes()); // task
        r.extend_from_slice(&0u64.to_le_bytes()); // keyword
        r.extend_from_slice(&[0; 8]); // processor time
        r.extend_from_slice(&[0; 16]); // activity id
        r.extend_from_slice(&ext);
        r.extend_from_slice(payload);
        r
    }

    /// KernelTraceControl DbgID_RSDS (classic full header, opcode 36).
    pub fn rsds(
        &self,
        ts: i64,
        base: u64,
        pid: u32,
        guid: [u8; 16],
        age: u32,
        pdb: &str,
    ) -> Vec<u8> {
        let mut p = Vec::new();
        ptr(&mut p, self.ps, base);
        p.extend_from_slice(&pid.to_le_bytes());
        p.extend_from_slice(&guid);
        p.extend_from_slice(&age.to_le_bytes());
        p.extend_from_slice(pdb.as_bytes());
        p.push(0);
        let mut r = Vec::new();
        r.extend_from_slice(&((0x30 + p.len()) as u16).to_le_bytes());
        r.push(if self.ps == 4 { 10 } else { 20 });
        r.push(0xc0);
        r.extend_from_slice(&[36, 0]); // class type (opcode), level
        r.extend_from_slice(&2u16.to_le_bytes()); // version
        r.extend_from_slice(&u32::MAX.to_le_bytes()); // thread
        r.extend_from_slice(&pid.to_le_bytes());
        r.extend_from_slice(&ts.to_le_bytes());
        // KernelTraceControl b3e675d7-2554-4f18-830b-2762732560de
        r.extend_from_slice(&[
            0xd7, 0x75, 0xe6, 0xb3, 0x54, 0x25, 0x18, 0x4f, 0x83, 0x0b, 0x27, 0x62, 0x73, 0x25,
            0x60, 0xde,
        ]);
        r.extend_from_slice(&[0; 8]);
        r.extend_from_slice(&p);
        r
    }

    fn header_record(&self, buffers_written: u32) -> Vec<u8> {
        let ps = self.ps;
        let mut p = Vec::new();
        p.extend_from_slice(&self.buffer_size.to_le_bytes());
        p.extend_from_slice(&[10, 0, 0, 0]); // version
        p.extend_from_slice(&19041u32.to_le_bytes()); // provider version (build)
        p.extend_from_slice(&2u32.to_le_bytes()); // processors
        p.extend_from_slice(&(FT_2024 + 50_000_000).to_le_bytes()); // end time
        p.extend_from_slice(&156_250u32.to_le_bytes());
        p.extend_from_slice(&0u32.to_le_bytes());
        let mode: u32 = 1 | if self.compressed { 0x0400_0000 } else { 0 };
        p.extend_from_slice(&mode.to_le_bytes());
        p.extend_from_slice(&buffers_written.to_le_bytes());
        p.extend_from_slice(&1u32.to_le_bytes()); // start buffers
        p.extend_from_slice(&(ps as u32).to_le_bytes());
        p.extend_from_slice(&self.events_lost.to_le_bytes());
        p.extend_from_slice(&3000u32.to_le_bytes()); // MHz
        ptr(&mut p, ps, 0);
        ptr(&mut p, ps, 0);
        p.extend_from_slice(&[0; 172]); // time zone
        align8(&mut p);
        p.extend_from_slice(&(FT_2024 - 1_000_000_000).to_le_bytes()); // boot
        p.extend_from_slice(&FREQ.to_le_bytes());
        p.extend_from_slice(&FT_2024.to_le_bytes()); // start
        p.extend_from_slice(&1u32.to_le_bytes()); // QPC clock
        p.extend_from_slice(&self.buffers_lost.to_le_bytes());
        wstr(&mut p, "Synthetic");
        wstr(&mut p, "synthetic.etl");
        self.system(0, 0, 2, 1, 4, QPC_START, &p)
    }

    fn encode_buffer(
        &self,
        records: &[Vec<u8>],
        flags: u16,
        processor: u16,
        compress: bool,
        buffer_type: u16,
    ) -> Vec<u8> {
        let mut data = Vec::new();
        for r in records {
            data.extend_from_slice(r);
            align8(&mut data);
        }
        let saved = 0x48 + data.len() as u32;
        assert!(saved <= self.buffer_size, "records do not fit the buffer");
        let body = if compress {
            tracemerge_etl::xpress::compress(&data)
        } else {
            data
        };
        let size = if compress {
            0x48 + body.len() as u32
        } else {
            self.buffer_size
        };
        let mut b = Vec::new();
        b.extend_from_slice(&size.to_le_bytes());
        b.extend_from_slice(&saved.to_le_bytes());
        b.extend_from_slice(&saved.to_le_bytes());
        b.extend_from_slice(&0i32.to_le_bytes());
        b.extend_from_slice(&FT_2024.to_le_bytes());
        b.extend_from_slice(&0i64.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
        b.extend_from_slice(&u32::from(processor).to_le_bytes());
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&saved.to_le_bytes());
        let f = flags | if compress { 0x40 } else { 0 };
        b.extend_from_slice(&f.to_le_bytes());
        b.extend_from_slice(&buffer_type.to_le_bytes());
        b.extend_from_slice(&[0; 16]);
        assert_eq!(b.len(), 0x48);
        b.extend_from_slice(&body);
        if !compress {
            b.resize(self.buffer_size as usize, 0xff);
        }
        b
    }

    /// The file's bytes and the byte offset of each buffer.
    pub fn build(&self) -> (Vec<u8>, Vec<usize>) {
        let mut out = Vec::new();
        let mut offsets = Vec::new();
        let header = self.header_record(1 + self.buffers.len() as u32);
        offsets.push(0);
        out.extend(self.encode_buffer(&[header], 1, 0, false, 4));
        for b in &self.buffers {
            offsets.push(out.len());
            out.extend(self.encode_buffer(&b.records, b.flags, b.processor, self.compressed, 0));
        }
        (out, offsets)
    }

    pub fn bytes(&self) -> Vec<u8> {
        self.build().0
    }
}

/// `../shared/data/etw/NAME` from the workspace root, or `None` (with the
/// reason printed) when absent; with `TRACEMERGE_REQUIRE_ALL=1` absence fails.
pub fn shared_file(name: &str) -> Option<PathBuf> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let root = manifest
        .ancestors()
        .find(|p| {
            std::fs::read_to_string(p.join("Cargo.toml")).is_ok_and(|t| t.contains("[workspace]"))
        })
        .unwrap_or(&manifest)
        .to_path_buf();
    let path = root.join("../shared/data/etw").join(name);
    if path.is_file() {
        return Some(path);
    }
    tracemerge_skip::skip(name, &format!("test data {} is absent", path.display()));
    None
}

/// Every event of `data` as a real-time consumer would receive it, in file order.
pub fn live_events(data: &[u8], pointer_size: usize) -> Vec<LiveEvent> {
    let mut out = Vec::new();
    for buf in BufferWalker::new(data) {
        let buf = buf.expect("intact buffers");
        for ev in EventWalker::new(&buf.payload, pointer_size) {
            out.extend(LiveEvent::from_logged(&ev.expect("intact records")));
        }
    }
    out
}

/// The hits of each (artifact, caller, callee) edge of `records`.
pub fn hits(records: &[Record]) -> HashMap<(String, String, String), u64> {
    let mut m = HashMap::new();
    for r in records {
        if let Record::Edge(e) = r {
            *m.entry((e.artifact.clone(), e.caller.clone(), e.callee.clone()))
                .or_default() += e.hits;
        }
    }
    m
}

/// Milliseconds since the Unix epoch of a synthetic QPC timestamp.
pub fn ms(ts: i64) -> u64 {
    let ft = FT_2024 + (ts - QPC_START);
    ((ft - 116_444_736_000_000_000) / 10_000) as u64
}
