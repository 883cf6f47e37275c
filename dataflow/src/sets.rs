//! Sets arranged once and shared by every semijoin against
//! them. `Collection::semijoin` arranges both of its inputs each time it is
//! called; a set that several rules consult would otherwise be held (and
//! maintained) once per rule.

use std::hash::Hash;

use differential_dataflow::operators::arrange::{Arranged, TraceAgent};
use differential_dataflow::trace::implementations::KeySpine;
use differential_dataflow::{ExchangeData, VecCollection};
use tracemerge_records::Time;

type Coll<'s, D> = VecCollection<'s, Time, D, isize>;

/// A collection of distinct keys, arranged.
pub type KeySet<'s, K> = Arranged<'s, TraceAgent<KeySpine<K, Time, isize>>>;

/// Arranges `keys` (distinct already) for [`semijoin`].
pub fn key_set<'s, K: ExchangeData + Hash>(keys: Coll<'s, K>) -> KeySet<'s, K> {
    keys.arrange_by_self()
}

/// The members of `keyed` whose key is in `set`.
pub fn semijoin<'s, K, V>(keyed: Coll<'s, (K, V)>, set: &KeySet<'s, K>) -> Coll<'s, (K, V)>
where
    K: ExchangeData + Hash,
    V: ExchangeData,
{
    keyed.join_core(set.clone(), |k, v, &()| Some((k.clone(), v.clone())))
}
