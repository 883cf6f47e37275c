//! Live ETW collector. Windows-only code, type-checked on Linux through a cargo feature.
