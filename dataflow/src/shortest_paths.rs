//! BFS distances and parents from a set of roots, kept current as edges and
//! roots come and go.
//!
//! A differential BFS re-derives every changed distance with its history, so
//! an edge that reattaches a large region costs many times a plain BFS. This
//! is the dynamic algorithm instead (after Ramalingam and Reps, for unit
//! weights): a deletion finds the nodes that lost every shortest-path parent,
//! in distance order, and settles only those again from their unaffected
//! in-neighbours; an insertion relaxes forward from its head. Work follows
//! what changed, and a batch that changes much of the graph is one plain BFS.
//! So is a deletion that turns out to move much of it (a runtime edge that
//! held a large region expires): once it has found more than an eighth of
//! the reached nodes affected, the repair is given up for one BFS from the
//! roots, which then costs less than carrying on. Finding an affected node
//! measured about four BFS visits, settling it again as many more, so a
//! repair pays only below about a sixth of the graph; giving up at a
//! quarter, a cascade's expiry paid for most of that search and then the
//! BFS (`bench cascade`'s flip off: 1% 6.3 → 5.0 ms, 50% 4.9 → 3.5 ms;
//! 16 and 32 gained more there, but cost the churning ingest more BFS
//! passes over a runtime graph far larger than its reach). An insertion is
//! not given up: relaxing forward visits only the nodes that move, each
//! once, which measured cheaper than a BFS over the whole graph.
//! Nodes are dense local indices and distances only grow by one along an
//! edge, so the work is array lookups and FIFO queues. Edges are compact
//! rows ([`Adjacency`]: each node's targets contiguous, rows in node order)
//! with a small overflow for what changed since they were built, so a BFS
//! reads them in order and an edge costs 4 bytes per direction.
//!
//! Parents are not kept: a witness path is walked back on demand from its
//! target, and [`ShortestPaths::path_may_have_changed`] says which paths to
//! walk again after a batch, so a batch that moves half the graph costs no
//! parent work for nodes on no witness path.

use std::cmp::Ordering;
use std::collections::VecDeque;
use std::hash::Hash;

use rustc_hash::FxHashMap;

const UNREACHED: u32 = u32::MAX;
const NO_PARENT: u32 = u32::MAX;
/// The adjacency's rows are rebuilt once its overflow and vacant slots
/// pass 1/`REBUILD_RATIO` of the edges: a rebuild costs a pass over every
/// node and edge, so under churn (edges expiring as others come) a larger
/// share would spend more on rebuilds, a smaller one more on reading the
/// overflow's links.
const REBUILD_RATIO: usize = 4;

/// Distances of one graph's nodes from its roots, and their parents.
///
/// `parent(v)` is the first in-neighbour `u` in the given order with
/// `dist(u) = dist(v) - 1`; roots have distance 0 and no parent.
pub struct ShortestPaths<N> {
    index: FxHashMap<N, u32>,
    nodes: Vec<N>,
    /// Each node's sort key (see [`ShortestPaths::apply`]).
    keys: Vec<u64>,
    /// Out-edges and in-edges, as compact rows.
    out: Adjacency,
    into: Adjacency,
    is_root: Vec<bool>,
    dist: Vec<u32>,
    /// A batch changing more than 1/`recompute_ratio` of the graph (its
    /// nodes and edges, what a plain BFS passes over) is one plain BFS
    /// (0: never).
    recompute_ratio: usize,
    /// A deletion that finds more than 1/`abort_ratio` of the reached nodes
    /// affected stops and does one plain BFS instead, which is then the
    /// cheaper of the two (0: never).
    abort_ratio: usize,
    reached: usize,
    /// Whether the last [`ShortestPaths::apply`] changed any distance.
    any_moved: bool,
    edges: usize,
    /// Plain BFS runs so far (batches too large, repairs given up).
    recomputes: usize,
    scratch: Scratch,
    /// Buffers kept between passes, so that a pass allocates nothing.
    queue: MonotoneQueue,
    affected: Vec<u32>,
    spare: Vec<u32>,
}

/// Per-node marks of one [`ShortestPaths::apply`]: a mark equal to `epoch`
/// is set in this pass, so nothing is cleared between passes.
#[derive(Default)]
struct Scratch {
    epoch: u32,
    seen: Vec<u32>,
    affected: Vec<u32>,
    /// Heads of changed edges and changed roots.
    touched: Vec<u32>,
    /// Per node, the epoch it was recorded in and its distance before this
    /// pass (valid in that epoch): one cache line for both.
    recorded: Vec<Recorded>,
    recorded_list: Vec<u32>,
}

#[derive(Clone, Copy, Default)]
struct Recorded {
    epoch: u32,
    previous: u32,
}

impl Scratch {
    /// The distance of `x` before this pass, if it was recorded in it.
    #[inline]
    fn previous(&self, x: u32) -> Option<u32> {
        let r = self.recorded[x as usize];
        (r.epoch == self.epoch).then_some(r.previous)
    }

    /// Keeps `dist`, the distance of `x` before this pass, once.
    #[inline]
    fn record(&mut self, x: u32, dist: u32) {
        let r = &mut self.recorded[x as usize];
        if r.epoch != self.epoch {
            *r = Recorded {
                epoch: self.epoch,
                previous: dist,
            };
            self.recorded_list.push(x);
        }
    }
}

impl Scratch {
    fn push_node(&mut self) {
        self.seen.push(0);
        self.affected.push(0);
        self.touched.push(0);
        self.recorded.push(Recorded::default());
    }

    fn next_epoch(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            for marks in [&mut self.seen, &mut self.affected, &mut self.touched] {
                marks.iter_mut().for_each(|m| *m = 0);
            }
            self.recorded.iter_mut().for_each(|r| r.epoch = 0);
            self.epoch = 1;
        }
        self.recorded_list.clear();
    }
}

/// Nodes by distance, smallest first: seeds in any order, then nodes one
/// step further than the last one popped (which keeps the FIFO sorted).
#[derive(Default)]
struct MonotoneQueue {
    seeds: Vec<(u32, u32)>,
    next: VecDeque<(u32, u32)>,
}

impl MonotoneQueue {
    fn seed(&mut self, dist: u32, node: u32) {
        self.seeds.push((dist, node));
    }

    /// Sorts the seeds; call after seeding, before popping.
    fn start(&mut self) {
        self.seeds.sort_unstable_by(|a, b| b.cmp(a));
    }

    /// `dist` must be at least every distance popped so far.
    fn push(&mut self, dist: u32, node: u32) {
        self.next.push_back((dist, node));
    }

    fn clear(&mut self) {
        self.seeds.clear();
        self.next.clear();
    }

    fn pop(&mut self) -> Option<(u32, u32)> {
        match (self.seeds.last(), self.next.front()) {
            (Some(s), Some(n)) if n < s => self.next.pop_front(),
            (Some(_), _) => self.seeds.pop(),
            (None, _) => self.next.pop_front(),
        }
    }
}

impl<N: Copy + Ord + Hash> Default for ShortestPaths<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<N: Copy + Ord + Hash> ShortestPaths<N> {
    /// An empty graph.
    pub fn new() -> Self {
        ShortestPaths {
            index: FxHashMap::default(),
            nodes: Vec::new(),
            keys: Vec::new(),
            out: Adjacency::new(REBUILD_RATIO),
            into: Adjacency::new(REBUILD_RATIO),
            is_root: Vec::new(),
            dist: Vec::new(),
            recompute_ratio: 8,
            abort_ratio: 8,
            reached: 0,
            any_moved: false,
            edges: 0,
            recomputes: 0,
            scratch: Scratch::default(),
            queue: MonotoneQueue::default(),
            affected: Vec::new(),
            spare: Vec::new(),
        }
    }

    /// How many nodes are reachable from the roots (roots included).
    pub fn reached(&self) -> usize {
        self.reached
    }

    /// The BFS distance of `node`, if it is reachable.
    pub fn dist(&self, node: N) -> Option<u32> {
        let &x = self.index.get(&node)?;
        (self.dist[x as usize] != UNREACHED).then_some(self.dist[x as usize])
    }

    /// The BFS parent of `node`, if it is reachable and not a root.
    pub fn parent(&self, node: N, order: impl Fn(N, N) -> Ordering) -> Option<N> {
        let &x = self.index.get(&node)?;
        let p = self.best_parent(x, &order);
        (p != NO_PARENT).then(|| self.nodes[p as usize])
    }

    /// The path from a root to `node` along parents, if `node` is reachable.
    pub fn path_to(&self, node: N, order: impl Fn(N, N) -> Ordering) -> Option<Vec<N>> {
        let &x = self.index.get(&node)?;
        if self.dist[x as usize] == UNREACHED {
            return None;
        }
        // A node at distance d has a path of d + 1 nodes.
        let mut path = Vec::with_capacity(self.dist[x as usize] as usize + 1);
        path.push(node);
        let mut at = self.best_parent(x, &order);
        while at != NO_PARENT {
            path.push(self.nodes[at as usize]);
            at = self.best_parent(at, &order);
        }
        path.reverse();
        Some(path)
    }

    /// Whether the last [`ShortestPaths::apply`] may have changed the path
    /// to `path`'s last node, given the path before it: a node on it moved,
    /// one of their in-neighbours moved (the candidates changed), or an edge
    /// into one of them or a root among them came or went. False means the
    /// path is unchanged; true, that it must be walked again.
    pub fn path_may_have_changed(&self, path: &[N]) -> bool {
        let s = &self.scratch;
        if !self.any_moved {
            // Only a changed edge into one of its nodes can change it.
            return path.iter().any(|node| {
                (self.index.get(node)).is_none_or(|&x| s.touched[x as usize] == s.epoch)
            });
        }
        let moved = |x: u32| s.previous(x).is_some_and(|d| d != self.dist[x as usize]);
        path.iter().any(|node| {
            let Some(&x) = self.index.get(node) else {
                return true;
            };
            s.touched[x as usize] == s.epoch || moved(x) || self.into.neighbours(x).any(moved)
        })
    }

    /// The nodes that became reachable (`true`) or stopped being so in the
    /// last [`ShortestPaths::apply`].
    pub fn reach_changes(&self) -> impl Iterator<Item = (N, bool)> + '_ {
        let s = &self.scratch;
        (s.recorded_list.iter()).filter_map(move |&x| {
            let before = s.recorded[x as usize].previous != UNREACHED;
            let after = self.dist[x as usize] != UNREACHED;
            (before != after).then(|| (self.nodes[x as usize], after))
        })
    }

    /// Whether `node`'s distance changed in the last [`ShortestPaths::apply`].
    pub fn moved(&self, node: N) -> bool {
        let s = &self.scratch;
        (self.index.get(&node))
            .is_some_and(|&x| s.previous(x).is_some_and(|d| d != self.dist[x as usize]))
    }

    fn local(&mut self, node: N, key: &impl Fn(N) -> u64) -> u32 {
        if let Some(&x) = self.index.get(&node) {
            return x;
        }
        let x = self.nodes.len() as u32;
        self.index.insert(node, x);
        self.nodes.push(node);
        self.keys.push(key(node));
        self.out.push_node();
        self.into.push_node();
        self.is_root.push(false);
        self.dist.push(UNREACHED);
        self.scratch.push_node();
        x
    }

    /// Lowers the distance of `x` to `d` if that is shorter, recording the
    /// old one, and queues `x` as a seed.
    fn lower_seed(&mut self, x: u32, d: u32) {
        let old = self.dist[x as usize];
        if d < old {
            self.scratch.record(x, old);
            self.dist[x as usize] = d;
            self.queue.seed(d, x);
        }
    }

    /// Applies a batch of changes: edges and roots that appeared or
    /// disappeared (each listed once, as a change of presence). `key` gives
    /// each new node a sort key that agrees with the order parents are
    /// chosen in (`key(a) < key(b)` only if `a` comes first), compared
    /// before that order is asked. [`ShortestPaths::moved`] then says which
    /// nodes' distances changed.
    pub fn apply(
        &mut self,
        added_edges: &[(N, N)],
        removed_edges: &[(N, N)],
        added_roots: &[N],
        removed_roots: &[N],
        key: impl Fn(N) -> u64,
    ) {
        let removed: Vec<(u32, u32)> = (removed_edges.iter())
            .map(|&(u, v)| (self.local(u, &key), self.local(v, &key)))
            .collect();
        // New nodes get their dense ids in the order of the edges that bring
        // them: in sorted order (a snapshot's, where most edges join nearby
        // functions) a BFS visits memory in order; in a hash map's order
        // every visit missed the cache. A batch small against the graph (a
        // round's few edges) adds few nodes and is not worth the sort.
        let sorted: Vec<(N, N)>;
        let added_edges = if added_edges.len() * 8 > self.nodes.len() {
            let mut edges = added_edges.to_vec();
            edges.sort_unstable();
            sorted = edges;
            &sorted
        } else {
            added_edges
        };
        let added: Vec<(u32, u32)> = (added_edges.iter())
            .map(|&(u, v)| (self.local(u, &key), self.local(v, &key)))
            .collect();
        let removed_roots: Vec<u32> = (removed_roots.iter())
            .map(|&r| self.local(r, &key))
            .collect();
        let added_roots: Vec<u32> = added_roots.iter().map(|&r| self.local(r, &key)).collect();
        self.scratch.next_epoch();
        let epoch = self.scratch.epoch;
        for &(_, v) in added.iter().chain(&removed) {
            self.scratch.touched[v as usize] = epoch;
        }
        for &r in added_roots.iter().chain(&removed_roots) {
            self.scratch.touched[r as usize] = epoch;
        }
        // A plain BFS passes over every node, reached or not: a graph with
        // few edges per node (the runtime graph of a large snapshot) is
        // repaired for batches that would be large against its edges alone.
        let graph = self.edges + self.nodes.len();
        let large = (added.len() + removed.len()) * self.recompute_ratio > graph.max(1);
        self.edges = self.edges + added.len() - removed.len();

        // Deletions first, on the graph without the removed edges and roots.
        for &(u, v) in &removed {
            self.out.remove(u, v);
            self.into.remove(v, u);
        }
        for &r in &removed_roots {
            self.is_root[r as usize] = false;
        }
        if large {
            return self.link_and_recompute(&added, &added_roots);
        }
        let mut queue = std::mem::take(&mut self.queue);
        queue.clear();
        for &(u, v) in &removed {
            let (du, dv) = (self.dist[u as usize], self.dist[v as usize]);
            if du != UNREACHED && dv != UNREACHED && du + 1 == dv {
                queue.seed(dv, v);
            }
        }
        for &r in &removed_roots {
            if self.dist[r as usize] == 0 {
                queue.seed(0, r);
            }
        }
        queue.start();
        // Nodes that lost every shortest-path parent, in distance order:
        // when a node at distance d is decided, every node at d - 1 is.
        let mut affected = std::mem::take(&mut self.affected);
        affected.clear();
        let mut aborted = false;
        while let Some((d, x)) = queue.pop() {
            let s = &mut self.scratch;
            if s.seen[x as usize] == epoch || self.dist[x as usize] != d || self.is_root[x as usize]
            {
                continue;
            }
            s.seen[x as usize] = epoch;
            let supported = self.into.neighbours(x).any(|w| {
                s.affected[w as usize] != epoch
                    && self.dist[w as usize] != UNREACHED
                    && self.dist[w as usize] + 1 == d
            });
            if supported {
                continue;
            }
            s.affected[x as usize] = epoch;
            affected.push(x);
            if self.abort_ratio > 0 && affected.len() * self.abort_ratio > self.reached {
                aborted = true;
                break;
            }
            for y in self.out.neighbours(x) {
                if self.dist[y as usize] == d + 1 {
                    queue.push(d + 1, y);
                }
            }
        }
        self.affected = affected;
        queue.clear();
        self.queue = queue;
        if aborted {
            return self.link_and_recompute(&added, &added_roots);
        }
        for i in 0..self.affected.len() {
            let x = self.affected[i];
            self.scratch.record(x, self.dist[x as usize]);
            self.dist[x as usize] = UNREACHED;
        }
        // Settle them again from their unaffected in-neighbours.
        for i in 0..self.affected.len() {
            let x = self.affected[i];
            let best = (self.into.neighbours(x))
                .map(|w| self.dist[w as usize])
                .min()
                .filter(|&d| d != UNREACHED);
            if let Some(d) = best {
                self.lower_seed(x, d + 1);
            }
        }
        self.settle();

        // Insertions: relax forward from the heads of added edges and roots.
        self.link(&added);
        for &(u, v) in &added {
            let du = self.dist[u as usize];
            if du != UNREACHED {
                self.lower_seed(v, du + 1);
            }
        }
        for &r in &added_roots {
            self.is_root[r as usize] = true;
            self.lower_seed(r, 0);
        }
        self.settle();
        self.finish()
    }

    /// Adds `edges` to both directions of the adjacency.
    fn link(&mut self, edges: &[(u32, u32)]) {
        self.out.insert(edges.iter().copied());
        self.into.insert(edges.iter().map(|&(u, v)| (v, u)));
    }

    /// Links the added edges and roots, then does one plain BFS.
    fn link_and_recompute(&mut self, added: &[(u32, u32)], added_roots: &[u32]) {
        self.link(added);
        for &r in added_roots {
            self.is_root[r as usize] = true;
        }
        self.recompute()
    }

    /// Pops settled distances off the queue (its seeds already lowered)
    /// and lowers out-neighbours as they are queued, so that a node is
    /// queued once per distance it takes.
    fn settle(&mut self) {
        let mut queue = std::mem::take(&mut self.queue);
        queue.start();
        let (out, dist, scratch) = (&self.out, &mut self.dist, &mut self.scratch);
        while let Some((d, x)) = queue.pop() {
            if dist[x as usize] != d {
                continue;
            }
            for y in out.neighbours(x) {
                let old = dist[y as usize];
                if d + 1 < old {
                    scratch.record(y, old);
                    dist[y as usize] = d + 1;
                    queue.push(d + 1, y);
                }
            }
        }
        queue.clear();
        self.queue = queue;
    }

    fn best_parent(&self, x: u32, order: &impl Fn(N, N) -> Ordering) -> u32 {
        let d = self.dist[x as usize];
        if d == UNREACHED || d == 0 {
            return NO_PARENT;
        }
        let mut best = NO_PARENT;
        for w in self.into.neighbours(x) {
            if self.dist[w as usize] == UNREACHED || self.dist[w as usize] + 1 != d {
                continue;
            }
            if best == NO_PARENT || self.precedes(w, best, order) {
                best = w;
            }
        }
        best
    }

    /// Whether `a` comes before `b` in the parent order.
    fn precedes(&self, a: u32, b: u32, order: &impl Fn(N, N) -> Ordering) -> bool {
        match self.keys[a as usize].cmp(&self.keys[b as usize]) {
            Ordering::Equal => order(self.nodes[a as usize], self.nodes[b as usize]).is_lt(),
            by_key => by_key.is_lt(),
        }
    }

    /// One plain BFS from the roots; records what differs from the
    /// distances before this pass.
    fn recompute(&mut self) {
        self.recomputes += 1;
        let n = self.nodes.len();
        let mut old_dist = std::mem::take(&mut self.spare);
        old_dist.clear();
        old_dist.resize(n, UNREACHED);
        std::mem::swap(&mut self.dist, &mut old_dist);
        // The FIFO: nodes in the order reached.
        let mut order = std::mem::take(&mut self.affected);
        order.clear();
        for x in 0..n as u32 {
            if self.is_root[x as usize] {
                self.dist[x as usize] = 0;
                order.push(x);
            }
        }
        let mut head = 0;
        while head < order.len() {
            let x = order[head];
            head += 1;
            let d = self.dist[x as usize] + 1;
            for y in self.out.neighbours(x) {
                if self.dist[y as usize] == UNREACHED {
                    self.dist[y as usize] = d;
                    order.push(y);
                }
            }
        }
        self.affected = order;
        let s = &mut self.scratch;
        for (x, (&old, &new)) in old_dist.iter().zip(&self.dist).enumerate() {
            if old != new {
                s.record(x as u32, old);
            }
        }
        self.spare = old_dist;
        self.finish()
    }

    /// Counts reached nodes anew from the recorded previous distances, and
    /// notes whether any distance changed.
    fn finish(&mut self) {
        let s = &self.scratch;
        self.any_moved = false;
        for &x in &s.recorded_list {
            let (d, nd) = (s.recorded[x as usize].previous, self.dist[x as usize]);
            self.any_moved |= d != nd;
            if d == UNREACHED && nd != UNREACHED {
                self.reached += 1;
            } else if d != UNREACHED && nd == UNREACHED {
                self.reached -= 1;
            }
        }
    }
}

/// Marks a CSR slot whose edge was removed since the last rebuild.
const VACANT: u32 = u32::MAX;
/// The end of an overflow chain.
const END: u32 = u32::MAX;

/// One direction of a graph's edges over dense node ids: compressed rows
/// (each node's targets contiguous, rows in node order) as of the last
/// rebuild, plus what changed since: removed edges vacate their slot, and
/// inserted ones take a vacant slot of their source's row or else go to a
/// per-node chain of overflow links. A BFS reads the rows in order; the
/// overflow stays a small share, since it is folded into new rows once it
/// passes a 1/`rebuild_ratio` share of the nodes and edges (or a batch that
/// large comes), and so do the vacant slots once they outnumber the edges. Edges that come and go again (a window's churn) mostly refill
/// their own slots, so they seldom cost a rebuild.
///
/// Memory: 4 bytes per edge and 8 per node, plus 8 per overflow link.
struct Adjacency {
    /// Row `x` is `targets[offsets[x]..offsets[x + 1]]`, for `x` below
    /// `offsets.len() - 1`; later nodes have empty rows.
    offsets: Vec<u32>,
    targets: Vec<u32>,
    /// Per node, the first overflow link of its chain, or [`END`].
    heads: Vec<u32>,
    /// Overflow links; free ones are chained from `free`.
    links: Vec<Link>,
    free: u32,
    /// Edges held, vacant slots, and overflow links in use.
    edges: usize,
    vacant: usize,
    overflow: usize,
    /// Rows are rebuilt once the overflow passes 1/`rebuild_ratio` of the
    /// nodes and edges together, or the vacant slots outnumber the edges
    /// (0: never).
    rebuild_ratio: usize,
    /// How many times the rows were rebuilt.
    rebuilds: usize,
}

#[derive(Clone, Copy)]
struct Link {
    target: u32,
    next: u32,
}

impl Adjacency {
    fn new(rebuild_ratio: usize) -> Self {
        Adjacency {
            offsets: vec![0],
            targets: Vec::new(),
            heads: Vec::new(),
            links: Vec::new(),
            free: END,
            edges: 0,
            vacant: 0,
            overflow: 0,
            rebuild_ratio,
            rebuilds: 0,
        }
    }

    /// Adds a node with no edges; its id is the number of nodes before.
    fn push_node(&mut self) {
        self.heads.push(END);
    }

    /// The targets of `x`'s edges, rows first.
    fn neighbours(&self, x: u32) -> Neighbours<'_> {
        let x = x as usize;
        let row = match self.offsets.get(x + 1) {
            Some(&end) => &self.targets[self.offsets[x] as usize..end as usize],
            None => &[],
        };
        Neighbours {
            row: row.iter(),
            links: &self.links,
            next: self.heads[x],
        }
    }

    /// Removes the edge `x → y` (one occurrence of it).
    fn remove(&mut self, x: u32, y: u32) {
        let xi = x as usize;
        if let Some(&end) = self.offsets.get(xi + 1) {
            let row = &mut self.targets[self.offsets[xi] as usize..end as usize];
            if let Some(slot) = row.iter_mut().find(|t| **t == y) {
                *slot = VACANT;
                self.vacant += 1;
                self.edges -= 1;
                return;
            }
        }
        // Not in the row: unlink it from the chain and free the link.
        let (mut previous, mut at) = (END, self.heads[xi]);
        while at != END {
            let link = self.links[at as usize];
            if link.target == y {
                match previous {
                    END => self.heads[xi] = link.next,
                    p => self.links[p as usize].next = link.next,
                }
                self.links[at as usize].next = self.free;
                self.free = at;
                self.overflow -= 1;
                self.edges -= 1;
                return;
            }
            (previous, at) = (at, link.next);
        }
        debug_assert!(false, "removing an edge that is not there");
    }

    /// Inserts `edges`, each into a vacant slot of its source's row if it
    /// has one, else onto the overflow; rebuilds the rows (with the edges
    /// that found no slot) instead if the overflow would pass its share, or
    /// if more slots are vacant than edges held.
    fn insert(&mut self, edges: impl Iterator<Item = (u32, u32)>) {
        let mut rest = Vec::new();
        for (x, y) in edges {
            if self.vacant == 0 || !self.fill_vacant(x, y) {
                rest.push((x, y));
            }
        }
        // A rebuild costs a pass over the nodes and the edges: the overflow
        // may grow by a share of both before one is due, so that its cost
        // stays a constant per edge inserted even where most nodes have no
        // edge in this graph (the runtime graph of a large snapshot).
        let total = self.edges + rest.len();
        let share = total + self.heads.len();
        if self.rebuild_ratio > 0
            && ((rest.len() + self.overflow) * self.rebuild_ratio > share || self.vacant > total)
        {
            return self.rebuild(rest.iter().copied(), rest.len());
        }
        for &(x, y) in &rest {
            let link = Link {
                target: y,
                next: self.heads[x as usize],
            };
            let i = if self.free != END {
                let i = self.free;
                self.free = self.links[i as usize].next;
                self.links[i as usize] = link;
                i
            } else {
                self.links.push(link);
                (self.links.len() - 1) as u32
            };
            self.heads[x as usize] = i;
        }
        self.overflow += rest.len();
        self.edges += rest.len();
    }

    /// Puts `x → y` into a vacant slot of `x`'s row, if it has one.
    fn fill_vacant(&mut self, x: u32, y: u32) -> bool {
        let xi = x as usize;
        let Some(&end) = self.offsets.get(xi + 1) else {
            return false;
        };
        let row = &mut self.targets[self.offsets[xi] as usize..end as usize];
        let Some(slot) = row.iter_mut().find(|t| **t == VACANT) else {
            return false;
        };
        *slot = y;
        self.vacant -= 1;
        self.edges += 1;
        true
    }

    /// New rows holding every edge and `extra` (`count` of them); no
    /// overflow and no vacant slot after. One pass over the old edges: the
    /// extra ones are grouped by source first (they come in any order).
    fn rebuild(&mut self, extra: impl Iterator<Item = (u32, u32)> + Clone, count: usize) {
        self.rebuilds += 1;
        let n = self.heads.len();
        let grouped = (count > 0).then(|| group_by_source(extra, n));
        let mut offsets = Vec::with_capacity(n + 1);
        let mut targets = Vec::with_capacity(self.edges + count);
        offsets.push(0);
        for x in 0..n {
            targets.extend(self.neighbours(x as u32));
            if let Some((starts, ys)) = &grouped {
                targets.extend_from_slice(&ys[starts[x] as usize..starts[x + 1] as usize]);
            }
            offsets.push(targets.len() as u32);
        }
        debug_assert_eq!(targets.len(), self.edges + count);
        self.edges = targets.len();
        self.offsets = offsets;
        self.targets = targets;
        self.heads.iter_mut().for_each(|h| *h = END);
        self.links = Vec::new();
        self.free = END;
        self.vacant = 0;
        self.overflow = 0;
    }
}

/// `edges` over `n` nodes as rows: the targets of node `x` are
/// `targets[starts[x]..starts[x + 1]]`.
fn group_by_source(
    edges: impl Iterator<Item = (u32, u32)> + Clone,
    n: usize,
) -> (Vec<u32>, Vec<u32>) {
    let mut starts = vec![0u32; n + 1];
    for (x, _) in edges.clone() {
        starts[x as usize + 1] += 1;
    }
    for x in 0..n {
        starts[x + 1] += starts[x];
    }
    let mut next = starts.clone();
    let mut targets = vec![0u32; starts[n] as usize];
    for (x, y) in edges {
        targets[next[x as usize] as usize] = y;
        next[x as usize] += 1;
    }
    (starts, targets)
}

/// The targets of one node's edges: its row's occupied slots, then its
/// overflow chain.
struct Neighbours<'a> {
    row: std::slice::Iter<'a, u32>,
    links: &'a [Link],
    next: u32,
}

impl Iterator for Neighbours<'_> {
    type Item = u32;

    #[inline]
    fn next(&mut self) -> Option<u32> {
        for &y in self.row.by_ref() {
            if y != VACANT {
                return Some(y);
            }
        }
        if self.next == END {
            return None;
        }
        let link = self.links[self.next as usize];
        self.next = link.next;
        Some(link.target)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;

    use super::*;

    /// Plain BFS with the same parent rule, for comparison.
    fn reference(
        edges: &BTreeSet<(u8, u8)>,
        roots: &BTreeSet<u8>,
    ) -> BTreeMap<u8, (u32, Option<u8>)> {
        let mut dist: BTreeMap<u8, u32> = roots.iter().map(|&r| (r, 0)).collect();
        let mut frontier: Vec<u8> = roots.iter().copied().collect();
        let mut d = 0;
        while !frontier.is_empty() {
            d += 1;
            let mut next = Vec::new();
            for &(u, v) in edges {
                if frontier.contains(&u) && !dist.contains_key(&v) {
                    dist.insert(v, d);
                    next.push(v);
                }
            }
            frontier = next;
        }
        dist.iter()
            .map(|(&v, &dv)| {
                let parent = (dv > 0)
                    .then(|| {
                        (edges.iter())
                            .filter(|&&(u, w)| w == v && dist.get(&u) == Some(&(dv - 1)))
                            .map(|&(u, _)| u)
                            .min()
                    })
                    .flatten();
                (v, (dv, parent))
            })
            .collect()
    }

    fn state(paths: &ShortestPaths<u8>, universe: u8) -> BTreeMap<u8, (u32, Option<u8>)> {
        (0..universe)
            .filter_map(|v| Some((v, (paths.dist(v)?, paths.parent(v, |a, b| a.cmp(&b))))))
            .collect()
    }

    fn all_paths(paths: &ShortestPaths<u8>, universe: u8) -> BTreeMap<u8, Vec<u8>> {
        (0..universe)
            .filter_map(|v| Some((v, paths.path_to(v, |a, b| a.cmp(&b))?)))
            .collect()
    }

    /// Edges and roots to toggle.
    type Step = (Vec<(u8, u8)>, Vec<u8>);

    /// A step toggles some edges and roots; its batch lists each once.
    fn steps() -> impl Strategy<Value = Vec<Step>> {
        let toggles = prop::collection::vec((0u8..12, 0u8..12), 0..12);
        let roots = prop::collection::vec(0u8..12, 0..2);
        prop::collection::vec((toggles, roots), 1..25)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// After every batch, distances, parents, the reached count and the
        /// changed list match a BFS over the graph as it now is.
        #[test]
        fn matches_plain_bfs(initial_root in 0u8..12, steps in steps(), recompute_ratio in prop_oneof![Just(0), Just(8)], abort_ratio in prop_oneof![Just(0), Just(1), Just(4), Just(1000)], rebuild_ratio in prop_oneof![Just(0), Just(1), Just(8)], keyed: bool) {
            let mut paths = ShortestPaths::new();
            paths.recompute_ratio = recompute_ratio;
            paths.abort_ratio = abort_ratio;
            paths.out.rebuild_ratio = rebuild_ratio;
            paths.into.rebuild_ratio = rebuild_ratio;
            let mut edges = BTreeSet::new();
            let mut roots = BTreeSet::from([initial_root]);
            // Either every order question is settled by keys, or none is.
            let key = move |n: u8| if keyed { n as u64 } else { 0 };
            paths.apply(&[], &[], &[initial_root], &[], key);
            for (toggled_edges, toggled_roots) in steps {
                let before = state(&paths, 12);
                let paths_before = all_paths(&paths, 12);
                let (mut added, mut removed) = (Vec::new(), Vec::new());
                for e in toggled_edges.into_iter().collect::<BTreeSet<_>>() {
                    if edges.remove(&e) { removed.push(e) } else { edges.insert(e); added.push(e) }
                }
                let (mut added_roots, mut removed_roots) = (Vec::new(), Vec::new());
                for r in toggled_roots.into_iter().collect::<BTreeSet<_>>() {
                    if roots.remove(&r) { removed_roots.push(r) } else { roots.insert(r); added_roots.push(r) }
                }
                paths.apply(&added, &removed, &added_roots, &removed_roots, key);
                let expected = reference(&edges, &roots);
                let after = state(&paths, 12);
                prop_assert_eq!(&after, &expected);
                prop_assert_eq!(paths.reached(), expected.len());
                let reach_changes: BTreeSet<(u8, bool)> = paths.reach_changes().collect();
                let came_or_went: BTreeSet<(u8, bool)> = (0..12)
                    .filter(|v| before.contains_key(v) != after.contains_key(v))
                    .map(|v| (v, after.contains_key(&v)))
                    .collect();
                prop_assert_eq!(reach_changes, came_or_went);
                let moved: BTreeSet<u8> = (0..12)
                    .filter(|v| before.get(v).map(|s| s.0) != after.get(v).map(|s| s.0))
                    .collect();
                for v in 0..12 {
                    prop_assert_eq!(paths.moved(v), moved.contains(&v));
                }
                // Every path that changed is flagged (from its old form), or
                // its target moved (it was not reachable before).
                let paths_after = all_paths(&paths, 12);
                for v in 0..12u8 {
                    let (old, new) = (paths_before.get(&v), paths_after.get(&v));
                    if old != new {
                        match old {
                            Some(old) => prop_assert!(paths.path_may_have_changed(old)),
                            None => prop_assert!(paths.moved(v)),
                        }
                    }
                }
                for &v in expected.keys() {
                    let path = &paths_after[&v];
                    prop_assert!(roots.contains(&path[0]));
                    prop_assert_eq!(path.len() as u32, expected[&v].0 + 1);
                }
            }
        }
    }

    /// Everything a caller can ask of a [`ShortestPaths`] over `0..n`.
    fn observe(paths: &ShortestPaths<u16>, n: u16) -> Vec<(Option<u32>, Option<u16>, bool)> {
        (0..n)
            .map(|v| {
                (
                    paths.dist(v),
                    paths.parent(v, |a, b| a.cmp(&b)),
                    paths.moved(v),
                )
            })
            .collect()
    }

    type Edge16 = (u16, u16);

    /// Random batches on a graph of a few hundred nodes, where one edge can
    /// move much of it: a strategy of toggles per step.
    fn big_steps() -> impl Strategy<Value = (Vec<Edge16>, Vec<Vec<Edge16>>)> {
        let edge = (0u16..300, 0u16..300);
        let initial = prop::collection::vec(edge.clone(), 200..700);
        let step = prop::collection::vec(edge, 1..4);
        (initial, prop::collection::vec(step, 1..30))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(120))]

        /// A deletion's repair given up for a plain BFS (random ratios put
        /// the threshold on either side of the affected count) leaves the same
        /// distances, parents, moved nodes, reached count and changed
        /// paths as the repair carried to its end.
        #[test]
        fn giving_up_agrees_with_repairing((initial, steps) in big_steps(), abort_ratio in 1usize..12, rebuild_ratio in 0usize..16) {
            let n = 300;
            let mut repair = ShortestPaths::new();
            repair.abort_ratio = 0;
            repair.recompute_ratio = 0;
            // The repair's adjacency is rebuilt at other times than the
            // other's: rows and overflow agree whichever holds an edge.
            repair.out.rebuild_ratio = rebuild_ratio;
            repair.into.rebuild_ratio = rebuild_ratio;
            let mut give_up = ShortestPaths::new();
            give_up.abort_ratio = abort_ratio;
            give_up.recompute_ratio = 0;
            let key = |v: u16| v as u64;
            let mut edges: BTreeSet<(u16, u16)> = initial.into_iter().collect();
            let edge_list: Vec<_> = edges.iter().copied().collect();
            for paths in [&mut repair, &mut give_up] {
                paths.apply(&edge_list, &[], &[0], &[], key);
            }
            for toggles in steps {
                let old_paths: Vec<Option<Vec<u16>>> =
                    (0..n).map(|v| repair.path_to(v, |a, b| a.cmp(&b))).collect();
                let (mut added, mut removed) = (Vec::new(), Vec::new());
                for e in toggles.into_iter().collect::<BTreeSet<_>>() {
                    if edges.remove(&e) { removed.push(e) } else { edges.insert(e); added.push(e) }
                }
                for paths in [&mut repair, &mut give_up] {
                    paths.apply(&added, &removed, &[], &[], key);
                }
                prop_assert_eq!(observe(&repair, n), observe(&give_up, n));
                prop_assert_eq!(repair.reached(), give_up.reached());
                for path in old_paths.iter().flatten() {
                    prop_assert_eq!(
                        repair.path_may_have_changed(path),
                        give_up.path_may_have_changed(path)
                    );
                }
            }
            prop_assert_eq!(repair.recomputes, 0);
        }
    }

    /// An edge that made a region reachable (or shortened a chain) leaves:
    /// there are ratios at which the repair is given up and ratios at
    /// which it is not, and every one agrees with the repair carried to its
    /// end; insertions are never given up.
    #[test]
    fn giving_up_happens_on_both_sides_of_the_threshold() {
        // A chain 0 → 1 → … → 99 from the root, and a region 100 → … → 199
        // hanging off 100 that calls back into the chain's far end.
        let mut edges: Vec<(u16, u16)> = (0..99).map(|i| (i, i + 1)).collect();
        edges.extend((100..199).map(|i| (i, i + 1)));
        edges.extend((100..199).step_by(10).map(|i| (i, 99 - (i - 100) / 2)));
        let key = |v: u16| v as u64;
        let mut outcomes = BTreeSet::new();
        for flip in [(0, 100), (0, 50), (0, 90)] {
            for abort_ratio in [0, 1, 2, 4, 8, 64] {
                let mut paths = ShortestPaths::new();
                paths.abort_ratio = abort_ratio;
                let mut repair = ShortestPaths::new();
                repair.abort_ratio = 0;
                for p in [&mut paths, &mut repair] {
                    p.apply(&edges, &[], &[0], &[], key);
                }
                let before = paths.recomputes;
                for p in [&mut paths, &mut repair] {
                    p.apply(&[flip], &[], &[], &[], key);
                }
                assert_eq!(observe(&paths, 200), observe(&repair, 200));
                assert_eq!(paths.reached(), repair.reached());
                assert_eq!(paths.recomputes, before, "an insertion is never given up");
                for p in [&mut paths, &mut repair] {
                    p.apply(&[], &[flip], &[], &[], key);
                }
                assert_eq!(observe(&paths, 200), observe(&repair, 200));
                assert_eq!(paths.reached(), 100);
                let gave_up = paths.recomputes > before;
                assert_eq!(repair.recomputes, 1, "only the first batch");
                assert!(abort_ratio > 0 || !gave_up);
                outcomes.insert(gave_up);
            }
        }
        assert_eq!(outcomes.len(), 2, "both sides of the threshold");
    }

    /// The neighbours of every node of `adjacency`, sorted.
    fn rows(adjacency: &Adjacency) -> Vec<Vec<u32>> {
        (0..adjacency.heads.len() as u32)
            .map(|x| {
                let mut row: Vec<u32> = adjacency.neighbours(x).collect();
                row.sort_unstable();
                row
            })
            .collect()
    }

    /// The same edges as rows of a `BTreeSet` model over `n` nodes.
    fn model_rows(model: &BTreeSet<(u32, u32)>, n: usize) -> Vec<Vec<u32>> {
        let mut rows = vec![Vec::new(); n];
        for &(x, y) in model {
            rows[x as usize].push(y);
        }
        rows
    }

    /// Batches of edge toggles over a growing set of nodes: each batch
    /// names the nodes it may use (nodes are added as the batch needs them)
    /// and the edges it toggles.
    fn adjacency_batches() -> impl Strategy<Value = Vec<(u32, Vec<(u32, u32)>)>> {
        let batch = (1u32..40).prop_flat_map(|n| {
            let edge = (0..n, 0..n);
            (Just(n), prop::collection::vec(edge, 0..60))
        });
        prop::collection::vec(batch, 1..30)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Against a `BTreeSet` of edges: after any sequence of removals
        /// and inserted batches, whether they went to the overflow or into
        /// rebuilt rows, every node has exactly its edges, the counts agree,
        /// and a rebuild leaves neither overflow nor vacant slots.
        #[test]
        fn adjacency_is_a_set_of_edges(batches in adjacency_batches(), rebuild_ratio in prop_oneof![Just(0), Just(1), Just(2), Just(8), Just(64)]) {
            let mut adjacency = Adjacency::new(rebuild_ratio);
            let mut model: BTreeSet<(u32, u32)> = BTreeSet::new();
            let mut rebuilds = 0;
            for (n, toggles) in batches {
                while adjacency.heads.len() < n as usize {
                    adjacency.push_node();
                }
                let mut added = Vec::new();
                for e in toggles.into_iter().collect::<BTreeSet<_>>() {
                    if model.remove(&e) {
                        adjacency.remove(e.0, e.1);
                    } else {
                        model.insert(e);
                        added.push(e);
                    }
                }
                let rebuilds_before = adjacency.rebuilds;
                adjacency.insert(added.iter().copied());
                if adjacency.rebuilds > rebuilds_before {
                    rebuilds += 1;
                    prop_assert_eq!(adjacency.overflow, 0);
                    prop_assert_eq!(adjacency.vacant, 0);
                    prop_assert_eq!(adjacency.targets.len(), model.len());
                }
                prop_assert_eq!(rows(&adjacency), model_rows(&model, adjacency.heads.len()));
                prop_assert_eq!(adjacency.edges, model.len());
                let slots = adjacency.targets.len();
                prop_assert_eq!(slots - adjacency.vacant + adjacency.overflow, model.len());
                // Between rebuilds, the overflow stays within its share (a
                // batch past it is folded in) and vacant slots never
                // outnumber the edges.
                if rebuild_ratio > 0 {
                    prop_assert!(adjacency.overflow * rebuild_ratio <= model.len() + adjacency.heads.len());
                    prop_assert!(adjacency.vacant <= model.len());
                }
            }
            if rebuild_ratio == 0 {
                prop_assert_eq!(rebuilds, 0);
            }
        }
    }

    /// Removals vacate slots and free links; an edge takes a vacant slot of
    /// its source's row before the overflow, and the links freed are reused
    /// before the overflow grows; an overflow past its share of nodes and
    /// edges, or more vacant slots than edges, rebuilds the rows.
    #[test]
    fn adjacency_refills_slots_and_rebuilds_at_its_share() {
        let mut adjacency = Adjacency::new(4);
        (0..10).for_each(|_| adjacency.push_node());
        let chain: Vec<(u32, u32)> = (0..8).map(|x| (x, x + 1)).collect();
        adjacency.insert(chain.iter().copied());
        assert_eq!((adjacency.targets.len(), adjacency.overflow), (8, 0));
        adjacency.insert([(0, 5)].into_iter());
        assert_eq!((adjacency.targets.len(), adjacency.overflow), (8, 1));
        assert_eq!(adjacency.neighbours(0).collect::<Vec<_>>(), vec![1, 5]);
        adjacency.remove(0, 1);
        adjacency.remove(0, 5);
        assert_eq!(
            (adjacency.vacant, adjacency.overflow, adjacency.edges),
            (1, 0, 7)
        );
        assert_eq!(adjacency.neighbours(0).count(), 0);
        // Row 0's vacant slot takes its next edge.
        adjacency.insert([(0, 7)].into_iter());
        assert_eq!(
            (adjacency.vacant, adjacency.overflow, adjacency.edges),
            (0, 0, 8)
        );
        assert_eq!(adjacency.neighbours(0).collect::<Vec<_>>(), vec![7]);
        adjacency.insert([(9, 0)].into_iter());
        assert_eq!(adjacency.links.len(), 1, "the freed link is reused");
        assert_eq!(adjacency.neighbours(9).collect::<Vec<_>>(), vec![0]);
        assert_eq!(adjacency.rebuilds, 1);
        // Below the share: one link and six more, 7 × 4 > 15 edges + 10 nodes.
        let fan: Vec<(u32, u32)> = (1..7).map(|y| (9, y)).collect();
        adjacency.insert(fan.iter().copied());
        assert_eq!(adjacency.rebuilds, 2);
        assert_eq!((adjacency.overflow, adjacency.targets.len()), (0, 15));
        assert_eq!(
            adjacency.neighbours(9).collect::<BTreeSet<_>>(),
            BTreeSet::from([0, 1, 2, 3, 4, 5, 6])
        );
        // Eight of fifteen slots vacant: more than the seven edges left.
        for (x, y) in fan.into_iter().chain([(1, 2), (2, 3)]) {
            adjacency.remove(x, y);
        }
        adjacency.insert(std::iter::empty());
        assert_eq!(adjacency.rebuilds, 3);
        assert_eq!((adjacency.vacant, adjacency.targets.len()), (0, 7));
        assert_eq!(adjacency.neighbours(9).collect::<Vec<_>>(), vec![0]);
        assert_eq!(adjacency.neighbours(0).collect::<Vec<_>>(), vec![7]);
    }

    /// A parent is the first candidate in the given order, not by id.
    #[test]
    fn parents_follow_the_order() {
        let mut paths = ShortestPaths::new();
        let reverse = |a: u8, b: u8| b.cmp(&a);
        let key = |_| 0;
        paths.apply(&[(0, 1), (0, 2), (1, 3), (2, 3)], &[], &[0], &[], key);
        assert_eq!(paths.parent(3, reverse), Some(2));
        assert!(paths.path_may_have_changed(&[0, 2, 3]));
        paths.apply(&[], &[(2, 3)], &[], &[], key);
        assert_eq!(paths.parent(3, reverse), Some(1));
        assert_eq!(paths.path_to(3, reverse), Some(vec![0, 1, 3]));
        // Nothing about 0 → 1 → 3 changes when an unrelated edge comes.
        paths.apply(&[(2, 4)], &[], &[], &[], key);
        assert!(!paths.path_may_have_changed(&[0, 1, 3]));
    }
}
