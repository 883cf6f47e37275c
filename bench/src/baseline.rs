//! The plain-Rust baselines the engine is measured against, written to be
//! fast (interned integer ids, `Vec` adjacency, an Fx hash) so that the
//! comparisons are honest:
//!
//! - [`HashDedup`]: the ingest ceiling. Deduplicates edge observations per
//!   (artifact, caller, callee) into hits, first/last seen and distinct
//!   sources, with ttl expiry: what the engine's live-edge window computes,
//!   and nothing else.
//! - [`Recompute`]: keeps the live window the same way, and on demand
//!   recomputes from scratch, from the static graph and the live
//!   observations, the three closures, the verdicts (with witness paths) and
//!   the conflicts of `dataflow/SEMANTICS.md`.
//!
//! Both are exact for streams whose records arrive in event-time order
//! (every workload of the harness): expiry is first in, first out. They
//! follow one artifact each where the semantics are per artifact
//! ([`Recompute`] ignores the records of other artifacts).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use tracemerge_records::{
    ArtifactReport, Config, Conflict, Hop, ObservedEdge, Reach, Record, Resolution, State,
    Strategy, Time, Verdict,
};

/// The Fx hash of rustc: a multiply and a rotate per word. Not DoS-safe,
/// which a benchmark baseline does not need.
#[derive(Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(FX_SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn finish(&self) -> u64 {
        self.hash
    }
}

pub type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;
pub type FxSet<K> = HashSet<K, BuildHasherDefault<FxHasher>>;

/// Strings to dense `u32` ids and back.
#[derive(Default)]
pub struct Interner {
    ids: FxMap<Box<str>, u32>,
    names: Vec<Box<str>>,
}

impl Interner {
    /// The id of `s`, assigned on first sight.
    #[inline]
    pub fn id(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(s.into());
        self.ids.insert(s.into(), id);
        id
    }

    pub fn get(&self, s: &str) -> Option<u32> {
        self.ids.get(s).copied()
    }

    pub fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

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
        let mut sorted: Vec<(Time, Time)> =
            intervals.iter().copied().filter(|(f, t)| f < t).collect();
        sorted.sort_unstable();
        let mut total = 0;
        let mut current: Option<(Time, Time)> = None;
        for (f, t) in sorted {
            current = match current {
                Some((cf, ct)) if f <= ct => Some((cf, ct.max(t))),
                Some((cf, ct)) => {
                    total += ct - cf;
                    Some((f, t))
                }
                None => Some((f, t)),
            };
        }
        if let Some((cf, ct)) = current {
            total += ct - cf;
        }
        Some(total)
    }
}

/// What [`HashDedup`] holds at the end, to check it against the engine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DedupSummary {
    pub live_edges: u64,
    pub hits: u64,
    pub in_static: u64,
}

/// The ingest ceiling: a hand-written hash-map dedup of the record stream
/// with the engine's window semantics (lateness, ttl expiry at each
/// watermark, per-edge hits, first/last seen and distinct sources, whether
/// the edge is static), and none of its closures.
pub struct HashDedup {
    lateness: Time,
    watermark: Option<Time>,
    strings: Interner,
    sources: Interner,
    statics: FxSet<EdgeKey>,
    window: Window,
    pub late: u64,
}

impl HashDedup {
    pub fn new(config: &Config) -> Self {
        HashDedup {
            lateness: config.lateness,
            watermark: None,
            strings: Interner::default(),
            sources: Interner::default(),
            statics: FxSet::default(),
            window: Window::new(config.ttl),
            late: 0,
        }
    }

    pub fn push(&mut self, record: Record) {
        if let Record::Watermark { at } = record {
            if self.watermark.is_none_or(|w| at > w) {
                self.watermark = Some(at);
                self.window.expire(at);
            }
            return;
        }
        let frontier = self.watermark.unwrap_or(0).saturating_sub(self.lateness);
        if record.time() < frontier {
            self.late += 1;
            return;
        }
        match record {
            Record::Edge(e) => {
                let key = (
                    self.strings.id(&e.artifact),
                    self.strings.id(&e.caller),
                    self.strings.id(&e.callee),
                );
                let source = self.sources.id(&e.source);
                self.window.edge(key, e.at, e.hits, source);
            }
            Record::Hit(h) => {
                let key = (self.strings.id(&h.artifact), self.strings.id(&h.symbol));
                self.window.hit(key, h.at);
            }
            Record::Coverage(c) => {
                let artifact = self.strings.id(&c.artifact);
                for s in &c.symbols {
                    let key = (artifact, self.strings.id(s));
                    self.window.coverage(key, c.from, c.to);
                }
            }
            Record::Graph(g) => {
                let artifact = self.strings.id(&g.artifact);
                self.statics.retain(|k| k.0 != artifact);
                for e in &g.edges {
                    let key = (
                        artifact,
                        self.strings.id(&e.caller),
                        self.strings.id(&e.callee),
                    );
                    self.statics.insert(key);
                }
            }
            Record::Targets(_) | Record::Watermark { .. } => {}
        }
    }

    pub fn summary(&self) -> DedupSummary {
        let mut s = DedupSummary::default();
        for e in self.window.edges() {
            s.live_edges += 1;
            s.hits += e.hits;
            s.in_static += self.statics.contains(&e.key) as u64;
        }
        s
    }
}

/// Compressed sparse rows: the out-neighbours of every node id.
#[derive(Default)]
pub struct Csr {
    offsets: Vec<u32>,
    targets: Vec<u32>,
}

impl Csr {
    /// The adjacency of `n` nodes (ids `0..n`) from a list of edges.
    pub fn build(n: usize, edges: &[(u32, u32)]) -> Csr {
        let mut offsets = vec![0u32; n + 1];
        for &(u, _) in edges {
            offsets[u as usize + 1] += 1;
        }
        for i in 0..n {
            offsets[i + 1] += offsets[i];
        }
        let mut fill = offsets.clone();
        let mut targets = vec![0u32; edges.len()];
        for &(u, v) in edges {
            let slot = &mut fill[u as usize];
            targets[*slot as usize] = v;
            *slot += 1;
        }
        Csr { offsets, targets }
    }

    #[inline]
    pub fn out(&self, u: u32) -> &[u32] {
        let u = u as usize;
        if u + 1 >= self.offsets.len() {
            return &[];
        }
        &self.targets[self.offsets[u] as usize..self.offsets[u + 1] as usize]
    }

    pub fn edge_count(&self) -> usize {
        self.targets.len()
    }
}

const UNREACHED: u32 = u32::MAX;

/// Breadth-first distances from `roots` over the union of `graphs`
/// (`UNREACHED` where not reachable), and how many nodes were reached.
pub fn bfs(n: usize, roots: &[u32], graphs: &[&Csr]) -> (Vec<u32>, u64) {
    let mut dist = vec![UNREACHED; n];
    let mut queue = Vec::with_capacity(1024);
    for &r in roots {
        if dist[r as usize] == UNREACHED {
            dist[r as usize] = 0;
            queue.push(r);
        }
    }
    let mut head = 0;
    while head < queue.len() {
        let u = queue[head];
        head += 1;
        let next = dist[u as usize] + 1;
        for g in graphs {
            for &v in g.out(u) {
                if dist[v as usize] == UNREACHED {
                    dist[v as usize] = next;
                    queue.push(v);
                }
            }
        }
    }
    let reached = queue.len() as u64;
    (dist, reached)
}

/// A set of node ids, one bit each (a closure of a million nodes is
/// 128 KiB: it stays in cache where a distance array would not).
pub struct Bits(Vec<u64>);

impl Bits {
    pub fn new(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(64)])
    }

    #[inline]
    pub fn contains(&self, i: u32) -> bool {
        self.0
            .get(i as usize / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// Adds `i`; whether it was new.
    #[inline]
    pub fn insert(&mut self, i: u32) -> bool {
        let w = &mut self.0[i as usize / 64];
        let bit = 1 << (i % 64);
        let new = *w & bit == 0;
        *w |= bit;
        new
    }
}

/// The nodes reachable from `roots` over the union of `graphs`, and how
/// many there are.
pub fn reach(n: usize, roots: &[u32], graphs: &[&Csr]) -> (Bits, u64) {
    let mut seen = Bits::new(n);
    let mut stack = Vec::with_capacity(1024);
    for &r in roots {
        if seen.insert(r) {
            stack.push(r);
        }
    }
    let mut count = stack.len() as u64;
    while let Some(u) = stack.pop() {
        for g in graphs {
            for &v in g.out(u) {
                if seen.insert(v) {
                    count += 1;
                    stack.push(v);
                }
            }
        }
    }
    (seen, count)
}

#[inline]
fn pack(u: u32, v: u32) -> u64 {
    ((u as u64) << 32) | v as u64
}

/// The static snapshot of the followed artifact, as integer adjacency.
struct Snapshot {
    at: Time,
    /// Whether a symbol id is a snapshot node (ids past the end are not).
    nodes: Vec<bool>,
    out: Csr,
    rev: Csr,
    edges: FxSet<u64>,
    entrypoints: Vec<u32>,
}

impl Snapshot {
    fn is_node(&self, s: u32) -> bool {
        self.nodes.get(s as usize).copied().unwrap_or(false)
    }
}

/// One verdict, in ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdVerdict {
    pub target: u32,
    pub state: State,
    pub path: Option<Vec<u32>>,
    pub hops: Option<Vec<Hop>>,
}

/// One conflict, in ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdConflict {
    EdgeNotInStatic {
        caller: u32,
        callee: u32,
        resolution: Resolution,
        hits: u64,
        sources: u64,
    },
    ExecutedButStaticallyUnreachable(u32),
    UnknownSymbol(u32),
    NoStaticSnapshot,
    ReachableButUnobserved(u32),
}

/// Everything [`Recompute::recompute`] derives.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub reach: Reach,
    pub verdicts: Vec<IdVerdict>,
    pub conflicts: Vec<IdConflict>,
}

/// Ingest one artifact's stream in order, keep its live window, and
/// recompute closures, verdicts and conflicts from scratch on demand.
pub struct Recompute {
    config: Config,
    artifact: String,
    watermark: Option<Time>,
    max_time: Option<Time>,
    symbols: Interner,
    sources: Interner,
    window: Window,
    snapshot: Option<Snapshot>,
    targets: Vec<u32>,
    targets_at: Option<Time>,
}

impl Recompute {
    /// Follows `artifact`; records of other artifacts are ignored.
    pub fn new(config: &Config, artifact: &str) -> Self {
        Recompute {
            config: config.clone(),
            artifact: artifact.to_string(),
            watermark: None,
            max_time: None,
            symbols: Interner::default(),
            sources: Interner::default(),
            window: Window::new(config.ttl),
            snapshot: None,
            targets: Vec::new(),
            targets_at: None,
        }
    }

    /// The time the state describes: the last watermark, else the largest
    /// applied time.
    pub fn as_of(&self) -> Time {
        self.watermark.or(self.max_time).unwrap_or(0)
    }

    /// Live observed edges now.
    pub fn live_edges(&self) -> usize {
        self.window.edge_count()
    }

    /// Applies one record (in arrival order).
    pub fn push(&mut self, record: &Record) {
        if let Record::Watermark { at } = record {
            if self.watermark.is_none_or(|w| *at > w) {
                self.watermark = Some(*at);
                self.window.expire(*at);
            }
            return;
        }
        let time = record.time();
        if time
            < self
                .watermark
                .unwrap_or(0)
                .saturating_sub(self.config.lateness)
        {
            return;
        }
        let artifact = match record {
            Record::Graph(g) => &g.artifact,
            Record::Targets(t) => &t.artifact,
            Record::Edge(e) => &e.artifact,
            Record::Hit(h) => &h.artifact,
            Record::Coverage(c) => &c.artifact,
            Record::Watermark { .. } => unreachable!("handled above"),
        };
        if *artifact != self.artifact {
            return;
        }
        self.max_time = Some(self.max_time.map_or(time, |m| m.max(time)));
        match record {
            Record::Graph(g) => {
                if self.snapshot.as_ref().is_some_and(|s| s.at > g.at) {
                    return;
                }
                let ids: Vec<u32> = g.nodes.iter().map(|s| self.symbols.id(s)).collect();
                let n = self.symbols.len();
                let mut nodes = vec![false; n];
                for &id in &ids {
                    nodes[id as usize] = true;
                }
                let mut pairs: Vec<(u32, u32)> = g
                    .edges
                    .iter()
                    .map(|e| (self.symbols.id(&e.caller), self.symbols.id(&e.callee)))
                    .collect();
                pairs.sort_unstable();
                pairs.dedup();
                let reversed: Vec<(u32, u32)> = pairs.iter().map(|&(u, v)| (v, u)).collect();
                let mut entrypoints: Vec<u32> =
                    g.entrypoints.iter().map(|s| self.symbols.id(s)).collect();
                entrypoints.sort_unstable();
                entrypoints.dedup();
                self.snapshot = Some(Snapshot {
                    at: g.at,
                    nodes,
                    out: Csr::build(n, &pairs),
                    rev: Csr::build(n, &reversed),
                    edges: pairs.iter().map(|&(u, v)| pack(u, v)).collect(),
                    entrypoints,
                });
            }
            Record::Targets(t) => {
                if self.targets_at.is_some_and(|at| at > t.at) {
                    return;
                }
                self.targets_at = Some(t.at);
                let mut ids: Vec<u32> = t.symbols.iter().map(|s| self.symbols.id(s)).collect();
                ids.sort_unstable();
                ids.dedup();
                self.targets = ids;
            }
            Record::Edge(e) => {
                let key = (0, self.symbols.id(&e.caller), self.symbols.id(&e.callee));
                let source = self.sources.id(&e.source);
                self.window.edge(key, e.at, e.hits, source);
            }
            Record::Hit(h) => {
                let key = (0, self.symbols.id(&h.symbol));
                self.window.hit(key, h.at);
            }
            Record::Coverage(c) => {
                for s in &c.symbols {
                    let key = (0, self.symbols.id(s));
                    self.window.coverage(key, c.from, c.to);
                }
            }
            Record::Watermark { .. } => unreachable!("handled above"),
        }
    }

    fn resolve(&self, u: u32, v: u32, agg: &EdgeAgg) -> Resolution {
        let c = &self.config;
        if (!c.quarantine_symbols.is_empty() || !c.quarantine_edges.is_empty())
            && c.quarantined(self.symbols.name(u), self.symbols.name(v))
        {
            return Resolution::Quarantined;
        }
        match c.strategy {
            Strategy::Union => Resolution::Accepted,
            Strategy::Static => Resolution::Rejected,
            Strategy::Quorum { hits, sources } => {
                if agg.hits >= hits && agg.sources() >= sources {
                    Resolution::Accepted
                } else {
                    Resolution::Pending
                }
            }
        }
    }

    /// Recomputes, from the static graph and the live window, the three
    /// closures, every verdict with its witness path, and every conflict.
    pub fn recompute(&self) -> Outcome {
        let n = self.symbols.len();
        let snapshot = self.snapshot.as_ref();
        let empty = Csr::default();
        let (static_out, static_rev) = snapshot.map_or((&empty, &empty), |s| (&s.out, &s.rev));
        let roots: &[u32] = snapshot.map_or(&[], |s| &s.entrypoints);
        let is_static = |u: u32, v: u32| snapshot.is_some_and(|s| s.edges.contains(&pack(u, v)));

        // Observed edges, candidates and the accepted ones; executed symbols.
        let mut observed = Vec::with_capacity(self.window.edge_count());
        let mut accepted = Vec::new();
        let mut candidates = Vec::new();
        let mut executed = vec![false; n];
        for agg in self.window.edges() {
            let (_, u, v) = agg.key;
            observed.push((u, v));
            executed[u as usize] = true;
            executed[v as usize] = true;
            if !is_static(u, v) {
                let resolution = self.resolve(u, v, agg);
                if resolution == Resolution::Accepted {
                    accepted.push((u, v));
                }
                candidates.push((u, v, resolution, agg.hits, agg.sources()));
            }
        }
        for &(_, s) in self.window.hit_symbols() {
            executed[s as usize] = true;
        }

        // The three closures.
        let (reach_static, static_reached) = reach(n, roots, &[static_out]);
        let observed_out = Csr::build(n, &observed);
        let (_, runtime_reached) = reach(n, roots, &[&observed_out]);
        let accepted_out = Csr::build(n, &accepted);
        let (dist, effective_reached) = bfs(n, roots, &[static_out, &accepted_out]);
        let reversed: Vec<(u32, u32)> = accepted.iter().map(|&(u, v)| (v, u)).collect();
        let accepted_rev = Csr::build(n, &reversed);

        let covered_enough = |t: u32| {
            self.window
                .covered((0, t))
                .is_some_and(|c| c >= self.config.min_coverage)
        };

        // Verdicts with witness paths.
        let mut verdicts = Vec::with_capacity(self.targets.len());
        for &t in &self.targets {
            let ti = t as usize;
            let static_side = snapshot.map(|_| reach_static.contains(t));
            let runtime_side = if executed[ti] {
                Some(true)
            } else if covered_enough(t) {
                Some(false)
            } else {
                None
            };
            let state = State::join(static_side, runtime_side);
            let (path, hops) = if dist[ti] == UNREACHED {
                (None, None)
            } else {
                let mut path = vec![t];
                let mut hops = Vec::new();
                let mut v = t;
                while dist[v as usize] > 0 {
                    let want = dist[v as usize] - 1;
                    let parent = static_rev
                        .out(v)
                        .iter()
                        .chain(accepted_rev.out(v))
                        .copied()
                        .filter(|&u| dist[u as usize] == want)
                        .min_by(|&a, &b| self.symbols.name(a).cmp(self.symbols.name(b)))
                        .expect("a reached node has a parent one step closer");
                    hops.push(if is_static(parent, v) {
                        if self.window.has_edge((0, parent, v)) {
                            Hop::Both
                        } else {
                            Hop::Static
                        }
                    } else {
                        Hop::Runtime
                    });
                    path.push(parent);
                    v = parent;
                }
                path.reverse();
                hops.reverse();
                (Some(path), Some(hops))
            };
            verdicts.push(IdVerdict {
                target: t,
                state,
                path,
                hops,
            });
        }

        // Conflicts.
        let mut conflicts = Vec::new();
        match snapshot {
            None => {
                if self.window.edge_count() > 0 || self.window.hit_symbols().next().is_some() {
                    conflicts.push(IdConflict::NoStaticSnapshot);
                }
            }
            Some(s) => {
                for &(caller, callee, resolution, hits, sources) in &candidates {
                    if s.is_node(caller) && s.is_node(callee) {
                        conflicts.push(IdConflict::EdgeNotInStatic {
                            caller,
                            callee,
                            resolution,
                            hits,
                            sources,
                        });
                    }
                }
                for (id, _) in executed.iter().enumerate().filter(|(_, e)| **e) {
                    let id32 = id as u32;
                    if !s.is_node(id32) {
                        conflicts.push(IdConflict::UnknownSymbol(id32));
                    } else if !reach_static.contains(id32) {
                        conflicts.push(IdConflict::ExecutedButStaticallyUnreachable(id32));
                    }
                }
                for &t in &self.targets {
                    let ti = t as usize;
                    if reach_static.contains(t) && !executed[ti] && covered_enough(t) {
                        conflicts.push(IdConflict::ReachableButUnobserved(t));
                    }
                }
            }
        }

        Outcome {
            reach: Reach {
                static_: static_reached,
                runtime: runtime_reached,
                effective: effective_reached,
            },
            verdicts,
            conflicts,
        }
    }

    /// The outcome in the report's terms (names, sorted as the engine's
    /// report sorts them), with the live observed edges.
    pub fn artifact_report(&self, outcome: &Outcome) -> ArtifactReport {
        let name = |id: u32| self.symbols.name(id).to_string();
        let mut observed_edges: Vec<ObservedEdge> = self
            .window
            .edges()
            .map(|agg| {
                let (_, u, v) = agg.key;
                ObservedEdge {
                    caller: name(u),
                    callee: name(v),
                    hits: agg.hits,
                    first_seen: agg.first,
                    last_seen: agg.last,
                    sources: agg.sources(),
                    in_static: self
                        .snapshot
                        .as_ref()
                        .is_some_and(|s| s.edges.contains(&pack(u, v))),
                    // The bench workloads carry no estimated counts.
                    estimated: false,
                }
            })
            .collect();
        observed_edges.sort();
        let mut verdicts: Vec<Verdict> = outcome
            .verdicts
            .iter()
            .map(|v| Verdict {
                target: name(v.target),
                state: v.state,
                vex: v.state.vex(),
                path: v
                    .path
                    .as_ref()
                    .map(|p| p.iter().map(|&s| name(s)).collect()),
                hops: v.hops.clone(),
            })
            .collect();
        verdicts.sort();
        let mut conflicts: Vec<Conflict> = outcome
            .conflicts
            .iter()
            .map(|c| match *c {
                IdConflict::EdgeNotInStatic {
                    caller,
                    callee,
                    resolution,
                    hits,
                    sources,
                } => Conflict::RuntimeEdgeNotInStatic {
                    caller: name(caller),
                    callee: name(callee),
                    resolution,
                    hits,
                    sources,
                },
                IdConflict::ExecutedButStaticallyUnreachable(s) => {
                    Conflict::ExecutedButStaticallyUnreachable { symbol: name(s) }
                }
                IdConflict::UnknownSymbol(s) => Conflict::UnknownSymbol { symbol: name(s) },
                IdConflict::NoStaticSnapshot => Conflict::NoStaticSnapshot {},
                IdConflict::ReachableButUnobserved(s) => {
                    Conflict::ReachableButUnobserved { symbol: name(s) }
                }
            })
            .collect();
        conflicts.sort_by(|x, y| (x.kind(), x).cmp(&(y.kind(), y)));
        ArtifactReport {
            artifact: self.artifact.clone(),
            observed_edges,
            reach: outcome.reach,
            verdicts,
            conflicts,
        }
    }

    /// Nodes reached statically from the entrypoints (for choosing change
    /// edges that alter reachability).
    pub fn statically_unreachable(&self) -> Vec<u32> {
        let Some(s) = self.snapshot.as_ref() else {
            return Vec::new();
        };
        let n = self.symbols.len();
        let (reached, _) = reach(n, &s.entrypoints, &[&s.out]);
        (0..n as u32)
            .filter(|&i| s.is_node(i) && !reached.contains(i))
            .collect()
    }

    /// The name of a symbol id.
    pub fn symbol(&self, id: u32) -> &str {
        self.symbols.name(id)
    }

    /// Static edges of the snapshot.
    pub fn static_edge_count(&self) -> usize {
        self.snapshot.as_ref().map_or(0, |s| s.out.edge_count())
    }
}
