//! Integer graphs of the baselines: compressed sparse rows, breadth-first
//! distances and reachability bit sets.

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

pub(super) const UNREACHED: u32 = u32::MAX;

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
