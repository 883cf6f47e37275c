//! The one string interner: names to dense `u32` ids, given in order of
//! first appearance, and back. The dataflow, the replay-log writer and the
//! bench's baselines all intern through it.

use std::sync::Arc;

use rustc_hash::FxHashMap;

/// An interned name.
pub type Id = u32;

/// Gives ids to names in order of first appearance (0, 1, 2, …).
#[derive(Default)]
pub struct Interner {
    ids: FxHashMap<Arc<str>, Id>,
    names: Vec<Arc<str>>,
}

impl Interner {
    pub fn new() -> Self {
        Self::default()
    }

    /// The id of `name`, new if it was never seen.
    #[inline]
    pub fn intern(&mut self, name: &str) -> Id {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = Id::try_from(self.names.len()).expect("fewer than 2^32 distinct names");
        let name: Arc<str> = Arc::from(name);
        self.names.push(name.clone());
        self.ids.insert(name, id);
        id
    }

    /// The id of `name` if it was interned.
    pub fn get(&self, name: &str) -> Option<Id> {
        self.ids.get(name).copied()
    }

    /// The name of `id`, shared (for tables read elsewhere).
    pub fn shared_name(&self, id: Id) -> &Arc<str> {
        &self.names[id as usize]
    }

    /// The name of `id`.
    pub fn name(&self, id: Id) -> &str {
        self.shared_name(id)
    }

    /// How many names have an id.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_in_order_of_first_appearance() {
        let mut interner = Interner::new();
        assert!(interner.is_empty());
        assert_eq!(interner.intern("b"), 0);
        assert_eq!(interner.intern("a"), 1);
        assert_eq!(interner.intern("b"), 0);
        assert_eq!(interner.get("a"), Some(1));
        assert_eq!(interner.get("c"), None);
        assert_eq!(interner.name(1), "a");
        assert_eq!(interner.len(), 2);
    }
}
