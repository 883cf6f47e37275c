//! Interned names: artifacts, symbols and sources travel through the
//! dataflow as `u32` ids and become strings again only on the way out.
//!
//! Comparing and hashing a `u32` costs a fraction of a string's, and an id
//! allocates nothing, which is most of the dataflow's work. Ids are given in
//! order of first appearance by the one sequential [`Interner`] in ingest;
//! every process of a cluster reads the same stream, so all agree on them.
//! Ids carry no order: where a rule orders names (the witness tie-break),
//! it compares the names through [`Names`].

use std::cmp::Ordering;
use std::sync::{Arc, RwLock, RwLockReadGuard};

pub use tracemerge_records::intern::Id;

/// The shared, append-only table of names by id.
#[derive(Clone, Default)]
pub struct Names {
    table: Arc<RwLock<Vec<Arc<str>>>>,
}

impl Names {
    /// Read access for a batch of lookups.
    pub fn read(&self) -> NamesGuard<'_> {
        NamesGuard(self.table.read().expect("names lock"))
    }

    /// Orders two ids by their names (byte order).
    pub fn compare(&self, a: Id, b: Id) -> Ordering {
        if a == b {
            return Ordering::Equal;
        }
        let names = self.read();
        names.get(a).cmp(names.get(b))
    }
}

/// A read lock on [`Names`].
pub struct NamesGuard<'a>(RwLockReadGuard<'a, Vec<Arc<str>>>);

impl NamesGuard<'_> {
    pub fn get(&self, id: Id) -> &str {
        &self.0[id as usize]
    }
}

/// Gives ids to names ([`tracemerge_records::intern::Interner`]) and
/// publishes each new one in its [`Names`]; the only writer of that table.
#[derive(Default)]
pub struct Interner {
    ids: tracemerge_records::intern::Interner,
    names: Names,
}

impl Interner {
    pub fn new() -> Self {
        Self::default()
    }

    /// The id of `name`, new if it was never seen.
    pub fn intern(&mut self, name: &str) -> Id {
        let known = self.ids.len();
        let id = self.ids.intern(name);
        if id as usize == known {
            let name = self.ids.shared_name(id).clone();
            self.names.table.write().expect("names lock").push(name);
        }
        id
    }

    /// [`Interner::intern`] for a name that is most likely `last`'s (an
    /// artifact or source, which records repeat run after run): one string
    /// comparison instead of a hash lookup when it is. `last` becomes
    /// `name`'s id.
    pub fn intern_repeated(&mut self, name: &str, last: &mut Option<Id>) -> Id {
        if let Some(id) = *last {
            if &**self.ids.shared_name(id) == name {
                return id;
            }
        }
        let id = self.intern(name);
        *last = Some(id);
        id
    }

    /// The name of `id`.
    pub fn name(&self, id: Id) -> &str {
        self.ids.shared_name(id)
    }

    /// The table the ids refer to, for readers on other threads.
    pub fn names(&self) -> Names {
        self.names.clone()
    }
}

/// The first eight bytes of a name, zero-padded, as a big-endian number:
/// names whose prefixes differ compare as the prefixes do.
pub(crate) fn name_prefix(name: &str) -> u64 {
    let mut prefix = [0u8; 8];
    let n = name.len().min(8);
    prefix[..n].copy_from_slice(&name.as_bytes()[..n]);
    u64::from_be_bytes(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_compare_by_name() {
        let mut interner = Interner::new();
        let b = interner.intern("b");
        let a = interner.intern("a");
        assert_eq!(interner.intern("b"), b);
        assert_ne!(a, b);
        let names = interner.names();
        assert_eq!(names.read().get(a), "a");
        assert_eq!(names.compare(a, b), Ordering::Less);
        assert_eq!(names.compare(b, a), Ordering::Greater);
    }

    #[test]
    fn a_repeated_name_keeps_its_id_and_a_new_one_takes_the_place() {
        let mut interner = Interner::new();
        let mut last = None;
        let a = interner.intern_repeated("a", &mut last);
        assert_eq!(
            (last, interner.intern_repeated("a", &mut last)),
            (Some(a), a)
        );
        let b = interner.intern_repeated("b", &mut last);
        assert_ne!(a, b);
        assert_eq!(last, Some(b));
        // The guess only saves a lookup: a name seen before keeps its id.
        assert_eq!(interner.intern_repeated("a", &mut last), a);
        assert_eq!(interner.intern("b"), b);
    }

    proptest::proptest! {
        /// Prefix keys never contradict the byte order of names.
        #[test]
        fn name_prefixes_agree_with_name_order(a in "[a-c\\x00]{0,10}", b in "[a-c\\x00]{0,10}") {
            let (ka, kb) = (super::name_prefix(&a), super::name_prefix(&b));
            if ka != kb {
                proptest::prop_assert_eq!(ka.cmp(&kb), a.as_bytes().cmp(b.as_bytes()));
            }
        }
    }
}
