//! Live runtime evidence: deduplicated observed edges, executed symbols and
//! covered symbols.
//!
//! Observations enter with `+hits` at `at` and `-hits` at `at + ttl`, so the
//! collections here always hold exactly the live window; nothing in this
//! module knows about time.

use differential_dataflow::operators::{CountTotal, ThresholdTotal};
use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};
use tracemerge_records::Time;

use crate::model::{Artifact, EdgeKey, Node, Sighting, Source};

type Coll<'s, D> = VecCollection<'s, Time, D, isize>;

/// What the live observations of one edge add up to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EdgeStats {
    pub hits: u64,
    pub first_seen: Time,
    pub last_seen: Time,
    pub sources: u64,
}

/// Deduplicates live edge observations on (artifact, caller, callee): hits
/// within the window, first and last sighting, and distinct sources.
///
/// The input carries one record per (edge, at, source) whose multiplicity is
/// its hit count, so repeated sightings at the same millisecond from the
/// same source cost nothing extra.
pub fn observed_edges<'s>(
    observations: Coll<'s, (EdgeKey, Sighting)>,
) -> Coll<'s, (EdgeKey, EdgeStats)> {
    observations.reduce(|_edge, sightings, out| {
        // Sightings arrive sorted by (at, source).
        let hits = sightings.iter().map(|(_, n)| *n as u64).sum();
        let first_seen = sightings[0].0 .0;
        let last_seen = sightings
            .iter()
            .map(|((at, _), _)| *at)
            .max()
            .unwrap_or(first_seen);
        let mut sources: Vec<&Source> = sightings.iter().map(|((_, s), _)| s).collect();
        sources.sort_unstable();
        sources.dedup();
        out.push((
            EdgeStats {
                hits,
                first_seen,
                last_seen,
                sources: sources.len() as u64,
            },
            1,
        ));
    })
}

/// Symbols that ran within the window: both ends of live edges and the
/// symbols of live hits.
pub fn executed<'s>(
    observed: Coll<'s, (EdgeKey, EdgeStats)>,
    hits: Coll<'s, (Node, Sighting)>,
) -> Coll<'s, Node> {
    observed
        .flat_map(|((a, u, v), _)| [(a.clone(), u), (a, v)])
        .concat(hits.map(|(node, _)| node))
        .distinct_total()
}

/// Symbols whose live coverage intervals add up (as a union) to at least
/// `min_coverage` milliseconds.
pub fn covered<'s>(coverage: Coll<'s, (Node, (Time, Time))>, min_coverage: Time) -> Coll<'s, Node> {
    coverage
        .reduce(|_node, intervals, out| {
            out.push((union_length(intervals.iter().map(|(iv, _)| **iv)), 1))
        })
        .filter(move |(_, length)| *length >= min_coverage)
        .map(|(node, _)| node)
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
