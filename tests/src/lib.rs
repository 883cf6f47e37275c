//! Cross-crate test support for tracemerge.
//!
//! [`oracle`] is a recompute-from-scratch implementation of
//! `dataflow/SEMANTICS.md`, written from the spec alone; the property tests
//! in `tests/tests/oracle.rs` compare the differential engine against it.

pub mod oracle;

/// A line diff of two texts (`similar`'s, unified, three lines of context).
pub fn diff(left: &str, right: &str) -> String {
    similar::TextDiff::from_lines(left, right)
        .unified_diff()
        .context_radius(3)
        .to_string()
}

#[cfg(test)]
mod oracle_tests;
