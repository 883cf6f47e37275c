//! Live runtime evidence in the dataflow: edge statistics. The live window
//! itself (which edges are live, their statistics, executed and covered
//! symbols) is kept by [`crate::aggregate`]; the dataflow holds exactly
//! what it says is live now.

use serde::{Deserialize, Serialize};
use tracemerge_records::Time;

/// What the live observations of one edge add up to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EdgeStats {
    pub hits: u64,
    pub first_seen: Time,
    pub last_seen: Time,
    pub sources: u64,
    /// A live sighting carries an estimated count.
    pub estimated: bool,
}
