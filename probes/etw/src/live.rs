//! The Windows sessions. Compiled on Windows, type-checked elsewhere with
//! `--features typecheck`; untested (no Windows machine in CI).
//!
//! A real-time "NT Kernel Logger" session delivers `EVENT_RECORD`s to a
//! callback on a consumer thread (`ProcessTrace`); the callback copies the
//! fields the decoder reads into a [`LiveEvent`] and sends it to the
//! collection loop ([`crate::run_loop`]).

use std::mem::size_of;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ferrisetw::provider::{Provider, TraceFlags};
use ferrisetw::trace::UserTrace;
use ferrisetw::{EventRecord, SchemaLocator, GUID};
use tracemerge_etl::events::{Guid, EVENT_HEADER_FLAG_EXTENDED_INFO, EXT_TYPE_STACK_TRACE64};
use tracemerge_etl::file::Clock;
use tracemerge_etl::realtime::{LiveEvent, RealtimeDecoder, RealtimeOptions};
use tracemerge_records::Record;
use windows::core::{PCWSTR, PWSTR};
use windows::Win32::Foundation::{BOOL, ERROR_SUCCESS, FILETIME};
use windows::Win32::System::Console::SetConsoleCtrlHandler;
use windows::Win32::System::Diagnostics::Etw::{
    CloseTrace, ControlTraceW, OpenTraceW, ProcessTrace, StartTraceW, SystemTraceControlGuid,
    TraceSetInformation, TraceStackTracingInfo, CLASSIC_EVENT_ID, CONTROLTRACE_HANDLE,
    EVENT_RECORD, EVENT_TRACE_CONTROL_STOP, EVENT_TRACE_FLAG, EVENT_TRACE_LOGFILEW,
    EVENT_TRACE_PROPERTIES, EVENT_TRACE_REAL_TIME_MODE, PROCESSTRACE_HANDLE,
    PROCESS_TRACE_MODE_EVENT_RECORD, PROCESS_TRACE_MODE_RAW_TIMESTAMP,
    PROCESS_TRACE_MODE_REAL_TIME, WNODE_FLAG_TRACED_GUID,
};
use windows::Win32::System::Performance::{QueryPerformanceCounter, QueryPerformanceFrequency};
use windows::Win32::System::SystemInformation::GetSystemTimePreciseAsFileTime;

use crate::{
    properties_layout, run_loop, summary, wide, CollectError, CollectorConfig, Outcome, SinkError,
    Target, KERNEL_ENABLE_FLAGS, REORDER_HORIZON, STACK_EVENTS, STACK_PATIENCE,
};

/// `EVENT_TRACE_PROPERTIES.Wnode.ClientContext`: QueryPerformanceCounter.
const CLOCK_QPC: u32 = 1;

fn guid(g: &GUID) -> Guid {
    Guid::from_fields(g.data1, g.data2, g.data3, g.data4)
}

/// The session clock: QueryPerformanceCounter ticks read at a FILETIME.
fn session_clock() -> (Clock, i64, i64) {
    let (mut freq, mut ticks) = (0i64, 0i64);
    // SAFETY: plain out-parameters.
    let ft: FILETIME = unsafe {
        let _ = QueryPerformanceFrequency(&mut freq);
        let _ = QueryPerformanceCounter(&mut ticks);
        GetSystemTimePreciseAsFileTime()
    };
    let filetime = (i64::from(ft.dwHighDateTime) << 32) | i64::from(ft.dwLowDateTime);
    (Clock::qpc(freq, filetime, ticks), filetime, freq)
}

/// A running real-time kernel session and its consumer thread.
pub struct KernelSession {
    handle: CONTROLTRACE_HANDLE,
    name: Vec<u16>,
    /// EVENT_TRACE_PROPERTIES + name, 8-byte aligned storage.
    props: Vec<u64>,
    consumer: Option<(PROCESSTRACE_HANDLE, JoinHandle<()>)>,
}

/// Called by `ProcessTrace` on its thread for every event.
unsafe extern "system" fn on_event(record: *mut EVENT_RECORD) {
    // SAFETY: ETW passes a valid record for the duration of the call; its
    // UserContext is the `Sender` installed by `KernelSession::start`, alive
    // until `ProcessTrace` returns.
    let Some(r) = (unsafe { record.as_ref() }) else {
        return;
    };
    let Some(tx) = (unsafe { (r.UserContext as *const Sender<LiveEvent>).as_ref() }) else {
        return;
    };
    let h = &r.EventHeader;
    let bytes = |ptr: *const u8, len: usize| -> Vec<u8> {
        if ptr.is_null() || len == 0 {
            Vec::new()
        } else {
            // SAFETY: ETW guarantees `len` readable bytes at `ptr`.
            unsafe { std::slice::from_raw_parts(ptr, len) }.to_vec()
        }
    };
    let mut extended = Vec::new();
    if !r.ExtendedData.is_null() {
        for i in 0..usize::from(r.ExtendedDataCount) {
            // SAFETY: `ExtendedDataCount` items at `ExtendedData`.
            let item = unsafe { &*r.ExtendedData.add(i) };
            extended.push((
                item.ExtType,
                bytes(item.DataPtr as *const u8, usize::from(item.DataSize)),
            ));
        }
    }
    let _ = tx.send(LiveEvent {
        provider: guid(&h.ProviderId),
        id: h.EventDescriptor.Id,
        version: h.EventDescriptor.Version,
        opcode: h.EventDescriptor.Opcode,
        flags: h.Flags & !EVENT_HEADER_FLAG_EXTENDED_INFO,
        thread_id: h.ThreadId,
        process_id: h.ProcessId,
        timestamp: h.TimeStamp,
        payload: bytes(r.UserData as *const u8, usize::from(r.UserDataLength)),
        extended,
    });
}

impl KernelSession {
    /// Starts the NT Kernel Logger in real-time mode (process, thread,
    /// image, sampled profile; QPC clock), enables stack walks on
    /// [`STACK_EVENTS`] and starts consuming into `events`.
    pub fn start(events: Sender<LiveEvent>) -> Result<KernelSession, CollectError> {
        let name = wide("NT Kernel Logger");
        let (total, name_off, _) =
            properties_layout(size_of::<EVENT_TRACE_PROPERTIES>(), name.len(), 0);
        let mut props = vec![0u64; total.div_ceil(8)];
        let p = props.as_mut_ptr() as *mut EVENT_TRACE_PROPERTIES;
        // SAFETY: `props` is zeroed, 8-byte aligned and `total` bytes long.
        unsafe {
            (*p).Wnode.BufferSize = total as u32;
            (*p).Wnode.Guid = SystemTraceControlGuid;
            (*p).Wnode.ClientContext = CLOCK_QPC;
            (*p).Wnode.Flags = WNODE_FLAG_TRACED_GUID;
            (*p).BufferSize = 1024; // KB
            (*p).MinimumBuffers = 16;
            (*p).MaximumBuffers = 256;
            (*p).FlushTimer = 1; // s: bounds how late a buffer is delivered
            (*p).LogFileMode = EVENT_TRACE_REAL_TIME_MODE;
            (*p).EnableFlags = EVENT_TRACE_FLAG(KERNEL_ENABLE_FLAGS);
            (*p).LoggerNameOffset = name_off as u32;
        }
        let mut handle = CONTROLTRACE_HANDLE::default();
        // SAFETY: valid properties block and NUL-terminated session name.
        let rc = unsafe { StartTraceW(&mut handle, PCWSTR(name.as_ptr()), p) };
        if rc != ERROR_SUCCESS {
            return Err(CollectError::Win32 {
                call: "StartTraceW(NT Kernel Logger)",
                code: rc.0,
            });
        }
        let mut session = KernelSession {
            handle,
            name,
            props,
            consumer: None,
        };
        let ids: Vec<CLASSIC_EVENT_ID> = STACK_EVENTS
            .iter()
            .map(|&(g, t)| CLASSIC_EVENT_ID {
                EventGuid: GUID::from_u128(g),
                Type: t,
                Reserved: [0; 7],
            })
            .collect();
        // SAFETY: `ids` outlives the call; the length is its byte size.
        let rc = unsafe {
            TraceSetInformation(
                session.handle,
                TraceStackTracingInfo,
                ids.as_ptr() as *const core::ffi::c_void,
                (ids.len() * size_of::<CLASSIC_EVENT_ID>()) as u32,
            )
        };
        if rc != ERROR_SUCCESS {
            let _ = session.stop();
            return Err(CollectError::Win32 {
                call: "TraceSetInformation(TraceStackTracingInfo)",
                code: rc.0,
            });
        }
        let context = Box::into_raw(Box::new(events));
        let mut logfile = EVENT_TRACE_LOGFILEW {
            LoggerName: PWSTR(session.name.as_mut_ptr()),
            Context: context as *mut core::ffi::c_void,
            ..Default::default()
        };
        logfile.Anonymous1.ProcessTraceMode = PROCESS_TRACE_MODE_REAL_TIME
            | PROCESS_TRACE_MODE_EVENT_RECORD
            | PROCESS_TRACE_MODE_RAW_TIMESTAMP;
        logfile.Anonymous2.EventRecordCallback = Some(on_event);
        // SAFETY: `logfile` is fully initialised; the name outlives the session.
        let trace = unsafe { OpenTraceW(&mut logfile) };
        if trace.Value == u64::MAX {
            // SAFETY: the context was not handed to a consumer.
            drop(unsafe { Box::from_raw(context) });
            let _ = session.stop();
            return Err(CollectError::Win32 {
                call: "OpenTraceW",
                code: windows::core::Error::from_win32().code().0 as u32,
            });
        }
        let context = context as usize;
        let consumer = std::thread::spawn(move || {
            // SAFETY: blocks until the session stops or the trace is closed.
            let _ = unsafe { ProcessTrace(&[trace], None, None) };
            // SAFETY: no callback runs after ProcessTrace returned.
            drop(unsafe { Box::from_raw(context as *mut Sender<LiveEvent>) });
        });
        session.consumer = Some((trace, consumer));
        Ok(session)
    }

    /// Stops the session; the consumer delivers what was buffered, then ends.
    pub fn stop(&mut self) -> Result<(), CollectError> {
        let p = self.props.as_mut_ptr() as *mut EVENT_TRACE_PROPERTIES;
        // SAFETY: same properties block as at start.
        let rc = unsafe {
            ControlTraceW(
                self.handle,
                PCWSTR(self.name.as_ptr()),
                p,
                EVENT_TRACE_CONTROL_STOP,
            )
        };
        if let Some((trace, consumer)) = self.consumer.take() {
            // SAFETY: a handle from OpenTraceW, closed once.
            let _ = unsafe { CloseTrace(trace) };
            let _ = consumer.join();
        }
        if rc != ERROR_SUCCESS {
            return Err(CollectError::Win32 {
                call: "ControlTraceW(STOP)",
                code: rc.0,
            });
        }
        Ok(())
    }
}

/// Starts a ferrisetw user session with stack traces on `providers`; their
/// stacks go to `events` (timestamps converted to the kernel session's clock).
pub fn start_user_session(
    providers: &[u128],
    events: Sender<LiveEvent>,
    clock: Clock,
) -> Result<UserTrace, CollectError> {
    let mut builder = UserTrace::new().named(format!("tracemerge-{}", std::process::id()));
    for &g in providers {
        let tx = events.clone();
        let provider = Provider::by_guid(GUID::from_u128(g))
            .trace_flags(TraceFlags::EVENT_ENABLE_PROPERTY_STACK_TRACE)
            .add_callback(move |record: &EventRecord, _schema: &SchemaLocator| {
                let extended: Vec<(u16, Vec<u8>)> = record
                    .extended_data()
                    .iter()
                    .filter_map(|item| match item.to_extended_data_item() {
                        ferrisetw::native::ExtendedDataItem::StackTrace64(s) => {
                            let mut data = s.match_id().to_le_bytes().to_vec();
                            for a in s.addresses() {
                                data.extend_from_slice(&a.to_le_bytes());
                            }
                            Some((EXT_TYPE_STACK_TRACE64, data))
                        }
                        _ => None,
                    })
                    .collect();
                if extended.is_empty() {
                    return;
                }
                let _ = tx.send(LiveEvent {
                    provider: guid(&record.provider_id()),
                    id: record.event_id(),
                    version: record.version(),
                    opcode: record.opcode(),
                    flags: record.event_flags() & !EVENT_HEADER_FLAG_EXTENDED_INFO,
                    thread_id: record.thread_id(),
                    process_id: record.process_id(),
                    // ferrisetw sessions deliver system time (FILETIME).
                    timestamp: clock.ticks_from_filetime(record.raw_timestamp()),
                    payload: Vec::new(),
                    extended,
                });
            })
            .build();
        builder = builder.enable(provider);
    }
    builder
        .start_and_process()
        .map_err(|e| CollectError::UserSession(format!("{e:?}")))
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

unsafe extern "system" fn on_ctrl(_ctrl_type: u32) -> BOOL {
    INTERRUPTED.store(true, Ordering::SeqCst);
    BOOL(1)
}

fn spawn(argv: &[std::ffi::OsString], stdout_to_stderr: bool) -> Result<Child, CollectError> {
    let (program, args) = argv.split_first().ok_or(CollectError::EmptyCommand)?;
    let mut cmd = std::process::Command::new(program);
    cmd.args(args);
    if stdout_to_stderr {
        cmd.stdout(Stdio::from(std::io::stderr()));
    }
    cmd.spawn().map_err(|source| CollectError::Spawn {
        program: program.to_string_lossy().into_owned(),
        source,
    })
}

/// Runs the sessions until the target exits, the time limit or Ctrl-C.
pub fn collect(
    config: &CollectorConfig,
    sink: &mut dyn FnMut(&[Record]) -> Result<(), SinkError>,
) -> Result<Outcome, CollectError> {
    let (tx, rx) = channel();
    let (clock, start_time, freq) = session_clock();
    let mut kernel = KernelSession::start(tx.clone())?;
    let mut user = if config.providers.is_empty() {
        None
    } else {
        match start_user_session(&config.providers, tx.clone(), clock) {
            Ok(u) => Some(u),
            Err(e) => {
                let _ = kernel.stop();
                return Err(e);
            }
        }
    };
    drop(tx);
    // The command starts once the session runs, so its image loads are seen.
    let mut child = match &config.target {
        Target::Command(argv) => match spawn(argv, config.command_stdout_to_stderr) {
            Ok(c) => Some(c),
            Err(e) => {
                let _ = kernel.stop();
                return Err(e);
            }
        },
        _ => None,
    };
    let pid = match &config.target {
        Target::All => None,
        Target::Pid(p) => Some(*p),
        Target::Command(_) => child.as_ref().map(Child::id),
    };
    let mut decoder = RealtimeDecoder::new(RealtimeOptions {
        pointer_size: size_of::<usize>() as u32,
        clock,
        reorder_ticks: (REORDER_HORIZON.as_secs_f64() * freq as f64) as i64,
        patience_ticks: (STACK_PATIENCE.as_secs_f64() * freq as f64) as i64,
        pid,
        import: config.import.clone(),
        start_time,
    });
    // SAFETY: installs a handler that only stores to an atomic.
    let _ = unsafe { SetConsoleCtrlHandler(Some(on_ctrl), true) };
    let deadline = config.duration.map(|d| Instant::now() + d);
    let mut watch = |decoder: &RealtimeDecoder| -> Option<i32> {
        if INTERRUPTED.load(Ordering::SeqCst) {
            return Some(130);
        }
        if let Some(c) = child.as_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                return Some(status.code().unwrap_or(1));
            }
            return None;
        }
        match pid {
            Some(p) if decoder.process_ended(p) => Some(0),
            _ => None,
        }
    };
    let mut stop_error = None;
    let mut stop_sessions = || {
        if let Some(u) = user.take() {
            let _ = u.stop();
        }
        if let Err(e) = kernel.stop() {
            stop_error = Some(e);
        }
    };
    let exit_code = run_loop(
        &rx,
        &mut decoder,
        config.window,
        deadline,
        Duration::from_secs(10),
        &mut watch,
        &mut stop_sessions,
        sink,
    )?;
    if let Some(e) = stop_error {
        return Err(e);
    }
    Ok(Outcome {
        exit_code,
        summary: summary(&decoder),
    })
}
