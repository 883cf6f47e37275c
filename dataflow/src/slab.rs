//! A map from keys to values that costs a slot and a 4-byte table entry
//! per key: the values sit in a slab (a `Vec`) indexed by a dense id, each
//! holding its own key; a hash table of ids finds a key's slot; the slots
//! of removed keys are reused (the last freed first), so the slab follows
//! the number of keys held, not the number ever seen.
//!
//! For the per-edge state of the aggregator and the sink, where a
//! `HashMap<EdgeKey, V>` at its usual load costs about twice
//! `size_of::<(EdgeKey, V)>()` per key.

use std::hash::{Hash, Hasher};

use hashbrown::HashTable;
use rustc_hash::FxHasher;

/// A value that knows its key; `Default` is what a free slot holds.
pub(crate) trait Keyed: Default {
    type Key: Copy + Eq + Hash;
    fn key(&self) -> Self::Key;
}

/// The table's hash of a key. Keys are sharded to workers by their Fx
/// hash modulo the workers, so the low bits of that hash are alike within
/// a shard: the table hashes the rotated value, whose low bits are the
/// high ones.
fn table_hash<K: Hash>(key: &K) -> u64 {
    let mut hasher = FxHasher::default();
    key.hash(&mut hasher);
    hasher.finish().rotate_left(32)
}

pub(crate) struct Slab<T> {
    slots: Vec<T>,
    /// Ids of the slots in use, hashed by their key.
    ids: HashTable<u32>,
    /// The free slots, the last freed on top.
    free: Vec<u32>,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            slots: Vec::new(),
            ids: HashTable::new(),
            free: Vec::new(),
        }
    }
}

impl<T: Keyed> Slab<T> {
    /// The number of keys held.
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The id of `key`'s slot, if it has one.
    pub(crate) fn find(&self, key: T::Key) -> Option<u32> {
        let slots = &self.slots;
        (self.ids)
            .find(table_hash(&key), |id| slots[*id as usize].key() == key)
            .copied()
    }

    /// The id of `key`'s slot; a new key gets a free slot (or a new one)
    /// holding `make()`, whose key must be `key`.
    pub(crate) fn id_or_insert(&mut self, key: T::Key, make: impl FnOnce() -> T) -> u32 {
        if let Some(id) = self.find(key) {
            return id;
        }
        let value = make();
        debug_assert!(value.key() == key);
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = value;
                id
            }
            None => {
                let id = u32::try_from(self.slots.len()).expect("at most 2^32 keys in a slab");
                self.slots.push(value);
                id
            }
        };
        let slots = &self.slots;
        (self.ids).insert_unique(table_hash(&key), id, |id| {
            table_hash(&slots[*id as usize].key())
        });
        id
    }

    pub(crate) fn get(&self, id: u32) -> &T {
        &self.slots[id as usize]
    }

    pub(crate) fn get_mut(&mut self, id: u32) -> &mut T {
        &mut self.slots[id as usize]
    }

    /// Frees slot `id` (which must be in use): its value is dropped and the
    /// slot kept for the next new key.
    pub(crate) fn remove(&mut self, id: u32) -> T {
        let key = self.slots[id as usize].key();
        let found = (self.ids).find_entry(table_hash(&key), |other| *other == id);
        found.expect("a slot in use is in the table").remove();
        self.free.push(id);
        std::mem::take(&mut self.slots[id as usize])
    }

    /// The slots in use, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.ids.iter().map(|id| &self.slots[*id as usize])
    }

    /// How many slots there are, in use or free.
    #[cfg(test)]
    pub(crate) fn slots(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    struct Entry {
        key: (u32, u32, u32),
        value: u64,
    }

    impl Keyed for Entry {
        type Key = (u32, u32, u32);
        fn key(&self) -> Self::Key {
            self.key
        }
    }

    fn entry(key: (u32, u32, u32), value: u64) -> impl FnOnce() -> Entry {
        move || Entry { key, value }
    }

    #[test]
    fn freed_slots_are_reused_last_freed_first() {
        let mut slab = Slab::default();
        let ids: Vec<u32> = (0..100)
            .map(|i| slab.id_or_insert((0, i, i + 1), entry((0, i, i + 1), i as u64)))
            .collect();
        assert_eq!(ids, (0..100).collect::<Vec<u32>>());
        let known = slab.id_or_insert((0, 7, 8), || unreachable!("a known key"));
        assert_eq!(known, 7);
        for id in [3, 50, 99] {
            assert_eq!(slab.remove(id).value, id as u64);
            assert_eq!(*slab.get(id), Entry::default(), "a free slot holds nothing");
        }
        assert_eq!(slab.len(), 97);
        assert_eq!(slab.id_or_insert((1, 1, 1), entry((1, 1, 1), 0)), 99);
        assert_eq!(slab.id_or_insert((1, 2, 2), entry((1, 2, 2), 0)), 50);
        assert_eq!(slab.id_or_insert((1, 3, 3), entry((1, 3, 3), 0)), 3);
        assert_eq!(slab.id_or_insert((1, 4, 4), entry((1, 4, 4), 0)), 100);
        assert_eq!(slab.slots(), 101, "a new slot only once none is free");
        assert_eq!(slab.find((0, 3, 4)), None, "a removed key is gone");
        assert_eq!(slab.find((0, 50, 51)), None);
        assert_eq!(slab.find((1, 2, 2)), Some(50));
        assert_eq!(slab.find((0, 98, 99)), Some(98));
        slab.get_mut(98).value = 1000;
        assert_eq!(slab.get(98).value, 1000);
        assert_eq!(slab.iter().count(), 101);
    }

    proptest! {
        /// Against a `BTreeMap`: any sequence of inserts, updates and
        /// removals leaves the same keys and values, and never more slots
        /// than the most keys held at once.
        #[test]
        fn a_slab_is_a_map(ops in proptest::collection::vec((0u32..40, any::<bool>(), any::<u64>()), 0..400)) {
            let mut slab: Slab<Entry> = Slab::default();
            let mut model: BTreeMap<(u32, u32, u32), u64> = BTreeMap::new();
            let mut most = 0;
            for (k, insert, value) in ops {
                let key = (k % 3, k, k / 2);
                if insert {
                    let id = slab.id_or_insert(key, entry(key, value));
                    slab.get_mut(id).value = value;
                    model.insert(key, value);
                } else if let Some(id) = slab.find(key) {
                    prop_assert_eq!(Some(slab.remove(id).value), model.remove(&key));
                } else {
                    prop_assert!(!model.contains_key(&key));
                }
                most = most.max(model.len());
                prop_assert_eq!(slab.len(), model.len());
                prop_assert!(slab.slots() <= most);
            }
            let mut held: Vec<_> = slab.iter().map(|e| (e.key, e.value)).collect();
            held.sort_unstable();
            prop_assert_eq!(held, model.into_iter().collect::<Vec<_>>());
        }
    }
}
