//! The Windows sessions. Compiled on Windows, type-checked elsewhere with
//! `--features typecheck`; untested (no Windows machine in CI).

use std::mem::size_of;
use std::path::Path;

use ferrisetw::provider::{Provider, TraceFlags};
use ferrisetw::trace::{DumpFileLoggingMode, DumpFileParams, UserTrace};
use ferrisetw::{EventRecord, SchemaLocator, GUID};
use tracemerge_records::Record;
use windows::core::PCWSTR;
use windows::Win32::Foundation::ERROR_SUCCESS;
use windows::Win32::System::Diagnostics::Etw::{
    ControlTraceW, StartTraceW, SystemTraceControlGuid, TraceSetInformation, TraceStackTracingInfo,
    CLASSIC_EVENT_ID, CONTROLTRACE_HANDLE, EVENT_TRACE_CONTROL_STOP,
    EVENT_TRACE_FILE_MODE_SEQUENTIAL, EVENT_TRACE_FLAG, EVENT_TRACE_PROPERTIES,
    WNODE_FLAG_TRACED_GUID,
};

use crate::{
    properties_layout, wide, CollectError, CollectorConfig, KERNEL_ENABLE_FLAGS, STACK_EVENTS,
};

/// A running kernel session writing to an .etl file.
pub struct KernelSession {
    handle: CONTROLTRACE_HANDLE,
    name: Vec<u16>,
    /// EVENT_TRACE_PROPERTIES + names, 8-byte aligned storage.
    props: Vec<u64>,
}

impl KernelSession {
    /// Starts the NT Kernel Logger (process, thread, image, sampled profile;
    /// QPC clock) and enables stack walks on [`STACK_EVENTS`].
    pub fn start(etl: &Path) -> Result<KernelSession, CollectError> {
        let name = wide("NT Kernel Logger");
        let file = wide(&etl.to_string_lossy());
        let (total, name_off, file_off) =
            properties_layout(size_of::<EVENT_TRACE_PROPERTIES>(), name.len(), file.len());
        let mut props = vec![0u64; total.div_ceil(8)];
        let p = props.as_mut_ptr() as *mut EVENT_TRACE_PROPERTIES;
        // SAFETY: `props` is zeroed, 8-byte aligned and at least `total`
        // bytes: the struct plus both names.
        unsafe {
            (*p).Wnode.BufferSize = total as u32;
            (*p).Wnode.Guid = SystemTraceControlGuid;
            (*p).Wnode.ClientContext = 1; // QueryPerformanceCounter
            (*p).Wnode.Flags = WNODE_FLAG_TRACED_GUID;
            (*p).BufferSize = 1024; // KB
            (*p).MinimumBuffers = 16;
            (*p).MaximumBuffers = 256;
            (*p).LogFileMode = EVENT_TRACE_FILE_MODE_SEQUENTIAL;
            (*p).EnableFlags = EVENT_TRACE_FLAG(KERNEL_ENABLE_FLAGS);
            (*p).LoggerNameOffset = name_off as u32;
            (*p).LogFileNameOffset = file_off as u32;
            let dst = (props.as_mut_ptr() as *mut u8).add(file_off) as *mut u16;
            std::ptr::copy_nonoverlapping(file.as_ptr(), dst, file.len());
        }
        let mut handle = CONTROLTRACE_HANDLE::default();
        // SAFETY: valid properties block and NUL-terminated session name.
        let rc = unsafe { StartTraceW(&mut handle, PCWSTR(name.as_ptr()), p) };
        if rc != ERROR_SUCCESS {
            return Err(CollectError::Win32 {
                call: "StartTraceW",
                code: rc.0,
            });
        }
        let session = KernelSession {
            handle,
            name,
            props,
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
        Ok(session)
    }

    /// Stops the session (its .etl file is complete afterwards).
    pub fn stop(mut self) -> Result<(), CollectError> {
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
        if rc != ERROR_SUCCESS {
            return Err(CollectError::Win32 {
                call: "ControlTraceW(STOP)",
                code: rc.0,
            });
        }
        Ok(())
    }
}

/// Starts a ferrisetw user session with stack traces on `providers`, dumped
/// to `etl`.
pub fn start_user_session(providers: &[u128], etl: &Path) -> Result<UserTrace, CollectError> {
    let mut builder = UserTrace::new().named(format!("tracemerge-{}", std::process::id()));
    for &g in providers {
        let provider = Provider::by_guid(GUID::from_u128(g))
            .trace_flags(TraceFlags::EVENT_ENABLE_PROPERTY_STACK_TRACE)
            .add_callback(|_record: &EventRecord, _schema: &SchemaLocator| {})
            .build();
        builder = builder.enable(provider);
    }
    builder
        .set_etl_dump_file(DumpFileParams {
            file_path: etl.to_path_buf(),
            file_logging_mode: DumpFileLoggingMode::default(),
            max_size: None,
        })
        .start_and_process()
        .map_err(|e| CollectError::UserSession(format!("{e:?}")))
}

/// Runs both sessions for the configured time, then decodes their files.
pub fn collect(config: &CollectorConfig) -> Result<Vec<Record>, CollectError> {
    let kernel_etl = config.work_dir.join("tracemerge-kernel.etl");
    let user_etl = config.work_dir.join("tracemerge-user.etl");
    let kernel = KernelSession::start(&kernel_etl)?;
    let user = if config.providers.is_empty() {
        None
    } else {
        match start_user_session(&config.providers, &user_etl) {
            Ok(u) => Some(u),
            Err(e) => {
                let _ = kernel.stop();
                return Err(e);
            }
        }
    };
    std::thread::sleep(config.duration);
    if let Some(u) = user {
        u.stop()
            .map_err(|e| CollectError::UserSession(format!("{e:?}")))?;
    }
    kernel.stop()?;
    let mut trace = tracemerge_etl::decode_file(&kernel_etl)?;
    if !config.providers.is_empty() {
        trace.absorb_stacks(tracemerge_etl::decode_file(&user_etl)?);
    }
    let mut symbols = config
        .import
        .symbols
        .as_ref()
        .map(tracemerge_etl::symbols::SymbolDir::new);
    Ok(tracemerge_etl::edges::edges(trace, "live", &config.import, symbols.as_mut()).records)
}
