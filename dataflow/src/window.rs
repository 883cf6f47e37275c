//! Live runtime evidence in the dataflow: edge statistics and per-artifact
//! counts. The live window itself (which edges are live, their statistics,
//! executed and covered symbols) is kept by [`crate::aggregate`]; the
//! collections here hold exactly what it says is live now.

use differential_dataflow::operators::CountTotal;
use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};
use tracemerge_records::Time;

use crate::model::{Artifact, Node};

type Coll<'s, D> = VecCollection<'s, Time, D, isize>;

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

/// Number of members per artifact of a set of nodes.
pub fn count_per_artifact<'s>(nodes: Coll<'s, Node>) -> Coll<'s, (Artifact, u64)> {
    nodes
        .map(|(a, _)| a)
        .count_total()
        .map(|(a, n)| (a, n as u64))
}
