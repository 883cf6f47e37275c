//! Cross-crate test support for tracemerge.
//!
//! [`oracle`] is a recompute-from-scratch implementation of
//! `dataflow/SEMANTICS.md`, written from the spec alone; the property tests
//! in `tests/tests/oracle.rs` compare the differential engine against it.

pub mod oracle;

#[cfg(test)]
mod oracle_tests;
