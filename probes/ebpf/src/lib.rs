//! eBPF collector (Linux): exact-mode uprobes and sampling mode, producing tracemerge records.
