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

/// Length of the union of half-open intervals given in ascending order of `from`.
pub fn union_length(sorted: impl Iterator<Item = (Time, Time)>) -> Time {
    let mut total = 0;
    let mut current: Option<(Time, Time)> = None;
    for (from, to) in sorted {
        match current {
            Some((start, end)) if from <= end => current = Some((start, end.max(to))),
            Some((start, end)) => {
                total += end - start;
                current = Some((from, to));
            }
            None => current = Some((from, to)),
        }
    }
    total + current.map_or(0, |(start, end)| end - start)
}

/// Number of members per artifact of a set of nodes.
pub fn count_per_artifact<'s>(nodes: Coll<'s, Node>) -> Coll<'s, (Artifact, u64)> {
    nodes
        .map(|(a, _)| a)
        .count_total()
        .map(|(a, n)| (a, n as u64))
}

#[cfg(test)]
mod tests {
    use super::union_length;

    #[test]
    fn union_of_intervals() {
        assert_eq!(union_length([].into_iter()), 0);
        assert_eq!(union_length([(0, 10), (5, 20), (30, 31)].into_iter()), 21);
        assert_eq!(union_length([(0, 10), (10, 20)].into_iter()), 20);
        assert_eq!(union_length([(0, 100), (10, 20)].into_iter()), 100);
        assert_eq!(union_length([(5, 5)].into_iter()), 0);
    }
}
