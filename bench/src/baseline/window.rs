//! The live window of the baselines: observed edges (aggregated), hits
//! and coverage, with ttl expiry in arrival order.

use std::collections::hash_map::Entry;
use std::collections::VecDeque;

use tracemerge_records::{union_length, Time};

use super::FxMap;

/// (artifact, caller, callee), interned.
pub type EdgeKey = (u32, u32, u32);
/// (artifact, symbol), interned.
pub type SymbolKey = (u32, u32);

/// The live aggregate of one observed edge.
#[derive(Clone, Debug)]
pub struct EdgeAgg {
    pub key: EdgeKey,
    /// Hits of the live sightings.
    pub hits: u64,
    pub first: Time,
    pub last: Time,
    /// Live sightings.
    live: u32,
    /// (source, live sightings from it).
    sources: Vec<(u32, u32)>,
    /// Queue position of the newest sighting.
    newest: u64,
}

impl EdgeAgg {
    /// Distinct sources among the live sightings.
    pub fn sources(&self) -> u64 {
        self.sources.len() as u64
    }
}

const NONE: u64 = u64::MAX;

struct Sighting {
    expires: Time,
    at: Time,
    slot: u32,
    source: u32,
    hits: u64,
    /// Queue position of the next sighting of the same edge.
    next: u64,
}

/// Live observations with ttl expiry: observed edges (aggregated), hits
/// and coverage windows. One queue per kind in arrival order; a sighting
/// links to the next one of its edge, so expiring the oldest tells the
/// edge its new `first` without a per-edge list.
pub struct Window {
    ttl: Time,
    index: FxMap<EdgeKey, u32>,
    slots: Vec<EdgeAgg>,
    free: Vec<u32>,
    sightings: VecDeque<Sighting>,
    /// Queue position of `sightings[0]`.
    base: u64,
    hits: FxMap<SymbolKey, u32>,
    hit_queue: VecDeque<(Time, SymbolKey)>,
    coverage: FxMap<SymbolKey, Vec<(Time, Time)>>,
    coverage_queue: VecDeque<(Time, SymbolKey, (Time, Time))>,
}

impl Window {
    pub fn new(ttl: Time) -> Self {
        Window {
            ttl,
            index: FxMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
            sightings: VecDeque::new(),
            base: 0,
            hits: FxMap::default(),
            hit_queue: VecDeque::new(),
            coverage: FxMap::default(),
            coverage_queue: VecDeque::new(),
        }
    }

    /// An edge observation at `at`, live during `[at, at + ttl)`.
    pub fn edge(&mut self, key: EdgeKey, at: Time, hits: u64, source: u32) {
        let position = self.base + self.sightings.len() as u64;
        let slot = match self.index.entry(key) {
            Entry::Occupied(e) => *e.get(),
            Entry::Vacant(e) => {
                let fresh = EdgeAgg {
                    key,
                    hits: 0,
                    first: at,
                    last: at,
                    live: 0,
                    sources: Vec::new(),
                    newest: NONE,
                };
                let slot = match self.free.pop() {
                    Some(slot) => {
                        let old = std::mem::replace(&mut self.slots[slot as usize], fresh);
                        let mut sources = old.sources;
                        sources.clear();
                        self.slots[slot as usize].sources = sources;
                        slot
                    }
                    None => {
                        self.slots.push(fresh);
                        (self.slots.len() - 1) as u32
                    }
                };
                *e.insert(slot)
            }
        };
        let agg = &mut self.slots[slot as usize];
        if agg.newest != NONE {
            self.sightings[(agg.newest - self.base) as usize].next = position;
        }
        agg.hits += hits;
        agg.first = agg.first.min(at);
        agg.last = agg.last.max(at);
        agg.live += 1;
        agg.newest = position;
        match agg.sources.iter_mut().find(|(s, _)| *s == source) {
            Some((_, n)) => *n += 1,
            None => agg.sources.push((source, 1)),
        }
        self.sightings.push_back(Sighting {
            expires: at.saturating_add(self.ttl),
            at,
            slot,
            source,
            hits,
            next: NONE,
        });
    }

    /// A hit of a symbol at `at`.
    pub fn hit(&mut self, key: SymbolKey, at: Time) {
        *self.hits.entry(key).or_default() += 1;
        self.hit_queue.push_back((at.saturating_add(self.ttl), key));
    }

    /// Coverage of a symbol during `[from, to)`, live during `[to, to + ttl)`.
    pub fn coverage(&mut self, key: SymbolKey, from: Time, to: Time) {
        self.coverage.entry(key).or_default().push((from, to));
        self.coverage_queue
            .push_back((to.saturating_add(self.ttl), key, (from, to)));
    }

    /// Drops everything no longer live at `now`.
    pub fn expire(&mut self, now: Time) {
        while self.sightings.front().is_some_and(|s| s.expires <= now) {
            let s = self.sightings.pop_front().expect("non-empty");
            self.base += 1;
            let agg = &mut self.slots[s.slot as usize];
            agg.hits -= s.hits;
            agg.live -= 1;
            if let Some(i) = agg.sources.iter().position(|(src, _)| *src == s.source) {
                agg.sources[i].1 -= 1;
                if agg.sources[i].1 == 0 {
                    agg.sources.swap_remove(i);
                }
            }
            if agg.live == 0 {
                agg.newest = NONE;
                self.index.remove(&agg.key);
                self.free.push(s.slot);
            } else {
                agg.first = self.sightings[(s.next - self.base) as usize].at;
            }
        }
        while self.hit_queue.front().is_some_and(|(e, _)| *e <= now) {
            let (_, key) = self.hit_queue.pop_front().expect("non-empty");
            if let Entry::Occupied(mut e) = self.hits.entry(key) {
                *e.get_mut() -= 1;
                if *e.get() == 0 {
                    e.remove();
                }
            }
        }
        while self
            .coverage_queue
            .front()
            .is_some_and(|(e, _, _)| *e <= now)
        {
            let (_, key, interval) = self.coverage_queue.pop_front().expect("non-empty");
            if let Entry::Occupied(mut e) = self.coverage.entry(key) {
                if let Some(i) = e.get().iter().position(|x| *x == interval) {
                    e.get_mut().swap_remove(i);
                }
                if e.get().is_empty() {
                    e.remove();
                }
            }
        }
    }

    /// The live observed edges.
    pub fn edges(&self) -> impl Iterator<Item = &EdgeAgg> {
        self.index.values().map(|&slot| &self.slots[slot as usize])
    }

    pub fn edge_count(&self) -> usize {
        self.index.len()
    }

    pub fn has_edge(&self, key: EdgeKey) -> bool {
        self.index.contains_key(&key)
    }

    /// Symbols with a live hit.
    pub fn hit_symbols(&self) -> impl Iterator<Item = &SymbolKey> {
        self.hits.keys()
    }

    /// The covered time of a symbol (length of the union of its live
    /// coverage intervals), `None` without live coverage.
    pub fn covered(&self, key: SymbolKey) -> Option<Time> {
        let intervals = self.coverage.get(&key)?;
        Some(union_length(intervals.clone()))
    }
}
