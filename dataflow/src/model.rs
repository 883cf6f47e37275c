//! The data of the dataflow's collections.

use serde::{Deserialize, Serialize};
use tracemerge_records::Time;

pub type Artifact = String;
pub type Symbol = String;
/// A symbol within its artifact: the node type of every closure.
pub type Node = (Artifact, Symbol);
/// Where an observation came from (agent/host).
pub type Source = String;
/// A runtime edge of one artifact: (artifact, caller, callee).
pub type EdgeKey = (Artifact, Symbol, Symbol);
/// One sighting of an observation: its time and source.
pub type Sighting = (Time, Source);
/// A static or runtime edge of one artifact: (artifact, (caller, callee)).
pub type ArtifactEdge = (Artifact, (Symbol, Symbol));

/// An update of one input collection, before it gets its time and diff.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Update {
    /// The artifact has a snapshot.
    Snapshot(Artifact),
    Node(Artifact, Symbol),
    StaticEdge(Artifact, (Symbol, Symbol)),
    Entrypoint(Artifact, Symbol),
    Target(Artifact, Symbol),
    /// `(artifact, caller, callee), (at, source)`; the diff carries the hits.
    EdgeObservation((Artifact, Symbol, Symbol), (Time, Source)),
    /// `(artifact, symbol), (at, source)`; the diff carries the hits.
    HitObservation((Artifact, Symbol), (Time, Source)),
    /// `(artifact, symbol), (from, to)`.
    Coverage((Artifact, Symbol), (Time, Time)),
}

/// An update with its event time and multiplicity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timed {
    pub update: Update,
    pub time: Time,
    pub diff: isize,
}

impl Update {
    pub fn at(self, time: Time, diff: isize) -> Timed {
        Timed {
            update: self,
            time,
            diff,
        }
    }
}
