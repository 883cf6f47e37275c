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

use crate::model::{Artifact, EdgeKey, Node, Sighting};

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
/// Each statistic is kept so that one more sighting costs little however hot
/// the edge: hits are the multiplicity of the edge (sightings carry their
/// hit count as multiplicity), sources are a distinct set per edge, and the
/// first/last sighting come from a two-level min/max over time buckets of
/// `bucket` ms (about the square root of the window is best).
pub fn observed_edges<'s>(
    observations: Coll<'s, (EdgeKey, Sighting)>,
    bucket: Time,
) -> Coll<'s, (EdgeKey, EdgeStats)> {
    let hits = observations
        .clone()
        .map(|(edge, _)| edge)
        .count_total()
        .map(|(edge, n)| (edge, Part::Hits(n as u64)));
    let sources = observations
        .clone()
        .map(|(edge, (_, source))| (edge, source))
        .distinct_total()
        .map(|(edge, _)| edge)
        .count_total()
        .map(|(edge, n)| (edge, Part::Sources(n as u64)));
    let span = time_span(observations.map(|(edge, (at, _))| (edge, at)), bucket)
        .map(|(edge, (first, last))| (edge, Part::Span(first, last)));
    hits.concat(sources)
        .concat(span)
        .reduce(|_edge, parts, out| {
            let mut stats = EdgeStats {
                hits: 0,
                first_seen: 0,
                last_seen: 0,
                sources: 0,
            };
            for (part, _) in parts {
                match part {
                    Part::Hits(n) => stats.hits = *n,
                    Part::Sources(n) => stats.sources = *n,
                    Part::Span(first, last) => {
                        (stats.first_seen, stats.last_seen) = (*first, *last)
                    }
                }
            }
            out.push((stats, 1));
        })
}

/// One statistic of an observed edge.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
enum Part {
    Hits(u64),
    Sources(u64),
    Span(Time, Time),
}

/// The earliest and latest time per key, computed first per bucket of
/// `bucket` ms and then over the buckets, so a change touches at most a
/// bucket's worth of times and a window's worth of buckets.
pub fn time_span<'s>(
    times: Coll<'s, (EdgeKey, Time)>,
    bucket: Time,
) -> Coll<'s, (EdgeKey, (Time, Time))> {
    let bucket = bucket.max(1);
    times
        .map(move |(key, at)| ((key, at / bucket), at))
        .reduce(|_, ats, out| {
            // Times arrive sorted.
            out.push(((*ats[0].0, *ats[ats.len() - 1].0), 1))
        })
        .map(|((key, _), span)| (key, span))
        .reduce(|_, spans, out| {
            let first = spans[0].0 .0;
            let last = spans.iter().map(|(s, _)| s.1).max().unwrap_or(first);
            out.push(((first, last), 1))
        })
}

/// A good bucket for [`time_span`] over a window of `ttl` ms: its square
/// root, rounded up to a power of two.
pub fn span_bucket(ttl: Time) -> Time {
    ((ttl as f64).sqrt().ceil() as Time)
        .max(1)
        .next_power_of_two()
}

/// The set of live edges (an edge is live while any sighting of it is).
pub fn live_edges<'s>(observations: Coll<'s, (EdgeKey, Sighting)>) -> Coll<'s, EdgeKey> {
    observations.map(|(edge, _)| edge).distinct_total()
}

/// Symbols that ran within the window: both ends of live edges and the
/// symbols of live hits.
pub fn executed<'s>(live: Coll<'s, EdgeKey>, hits: Coll<'s, (Node, Sighting)>) -> Coll<'s, Node> {
    live.flat_map(|(a, u, v)| [(a, u), (a, v)])
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
