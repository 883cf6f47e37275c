//! Per-artifact state kept outside differential: each time's changes are
//! applied together once the time is complete.

use std::collections::BTreeMap;

use differential_dataflow::{AsCollection, ExchangeData, VecCollection};
use rustc_hash::FxHashMap;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::CapabilitySet;
use tracemerge_records::Time;

use crate::model::Artifact;

/// One time's changes of an artifact (or of several), with their diffs.
type Changes<C> = Vec<((Artifact, C), isize)>;

/// Hands each complete time's changes of each artifact to `apply` (the
/// changes of one artifact and time at once, in no particular order) and
/// emits what it pushes at that time. A time is complete once no change at
/// or before it can arrive, so `apply` sees every change of its time and
/// never has to take back what it said.
///
/// Each artifact's changes go to one worker (exchanged by artifact), so
/// state that `apply` keeps per artifact is whole there and the output
/// does not depend on the worker count.
pub fn per_artifact_at_complete_times<'s, C, O>(
    changes: VecCollection<'s, Time, (Artifact, C)>,
    name: &str,
    mut apply: impl FnMut(Artifact, &[((Artifact, C), isize)], &mut Vec<(O, isize)>) + 'static,
) -> VecCollection<'s, Time, O>
where
    C: ExchangeData,
    O: ExchangeData,
{
    let pact =
        Exchange::new(|((artifact, _), _, _): &((Artifact, C), Time, isize)| *artifact as u64);
    changes
        .inner
        .unary_frontier(pact, name, move |_, _| {
            let mut pending: BTreeMap<Time, Changes<C>> = BTreeMap::new();
            // A time's lists are kept for the next times (grown anew, they
            // were copied a dozen times a round), unless a large time grew
            // them; a few times are pending at once.
            let mut spares: Vec<Changes<C>> = Vec::new();
            let mut items = Vec::new();
            let mut capabilities = CapabilitySet::new();
            move |(input, frontier), output| {
                input.for_each(|capability, data| {
                    if let Some(capability) = capability.retain_least(0) {
                        capabilities.insert(capability);
                    }
                    // Changes come in runs of one time: one lookup a run.
                    let mut data = data.drain(..).peekable();
                    while let Some((change, time, diff)) = data.next() {
                        let changes = (pending.entry(time))
                            .or_insert_with(|| spares.pop().unwrap_or_default());
                        changes.push((change, diff));
                        while let Some((change, _, diff)) = data.next_if(|(_, t, _)| *t == time) {
                            changes.push((change, diff));
                        }
                    }
                });
                while let Some(entry) = pending.first_entry() {
                    let time = *entry.key();
                    if frontier.frontier().less_equal(&time) {
                        break;
                    }
                    let mut changes = entry.remove();
                    changes.sort_unstable_by_key(|((artifact, _), _)| *artifact);
                    for batch in changes.chunk_by(|(a, _), (b, _)| a.0 == b.0) {
                        apply(batch[0].0 .0, batch, &mut items);
                    }
                    let capability = capabilities.delayed(&time);
                    let mut session = output.session(&capability);
                    for (item, diff) in items.drain(..) {
                        session.give((item, time, diff));
                    }
                    keep_list(&mut items);
                    changes.clear();
                    keep_list(&mut changes);
                    if spares.len() < MAX_SPARES {
                        spares.push(changes);
                    }
                }
                // Hold a capability only for the earliest time still pending.
                capabilities = match pending.first_key_value() {
                    Some((time, _)) => CapabilitySet::from_elem(capabilities.delayed(time)),
                    None => CapabilitySet::new(),
                };
            }
        })
        .as_collection()
}

/// Emptied lists of changes kept for the times to come: about as many as
/// rounds are in flight.
const MAX_SPARES: usize = 8;

/// Drops an emptied list that a large time grew (a snapshot's load), so
/// its memory is not held for the rounds after.
pub(crate) fn keep_list<T>(list: &mut Vec<T>) {
    if list.capacity() > 1 << 16 {
        *list = Vec::new();
    }
}

/// Empties a scratch table that held `used` entries this time. Emptying a
/// hash table costs its capacity, not its length, so one that a large time
/// grew (a snapshot's load) is dropped once a time uses a small share of it,
/// instead of being swept at every later, smaller time.
pub(crate) fn keep_for_next_time<K, V>(table: &mut FxHashMap<K, V>, used: usize) {
    if table.capacity() > 8 * used.max(64) {
        *table = FxHashMap::default();
    } else {
        table.clear();
    }
}
