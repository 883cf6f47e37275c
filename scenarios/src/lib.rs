//! Named workloads for tracemerge: small hand-written cases with expected
//! reports (used by tests and by `tracemerge demo`) and seeded random
//! streams (used by the property tests against the oracle).

pub mod cases;
pub mod random;
pub mod workload;

pub use cases::{cases, Case};
