//! Decodes Windows ETW trace files (.etl) into call edges; runs on every platform.
