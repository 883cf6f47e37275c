//! Reachability closures and witness paths.

use std::cmp::Ordering;
use std::hash::Hash;

use differential_dataflow::algorithms::graphs::bfs::bfs;
use differential_dataflow::lattice::Lattice;
use differential_dataflow::operators::iterate::Iterate;
use differential_dataflow::{ExchangeData, VecCollection};
use timely::progress::Timestamp;

/// BFS distance of every reachable node.
pub type Distances<'s, T, N> = VecCollection<'s, T, (N, u32)>;
/// BFS parent of every reachable non-root node, with the label of the edge.
pub type Parents<'s, T, N, L> = VecCollection<'s, T, (N, (N, L))>;
/// A witness path (nodes from a root) and the labels of its hops.
pub type Path<N, L> = (Vec<N>, Vec<L>);

/// The nodes reachable from `roots` along `edges`, roots included.
pub fn reachable<'s, T, N>(
    edges: VecCollection<'s, T, (N, N)>,
    roots: VecCollection<'s, T, N>,
) -> VecCollection<'s, T, N>
where
    T: Timestamp + Lattice,
    N: ExchangeData + Hash,
{
    let roots = roots.distinct();
    roots.clone().iterate(|scope, reached| {
        let edges = edges.enter(scope);
        let roots = roots.enter(scope);
        reached
            .map(|n| (n, ()))
            .join_map(edges, |_, (), next| next.clone())
            .concat(roots)
            .distinct()
    })
}

/// For every node reachable from `roots`, its BFS parent: among the
/// in-neighbours one step closer to a root, the first one in `order`, with
/// the label of the edge taken. Roots have no parent.
pub fn bfs_parents<'s, T, N, L>(
    edges: VecCollection<'s, T, ((N, N), L)>,
    roots: VecCollection<'s, T, N>,
    order: impl Fn(&N, &N) -> Ordering + 'static,
) -> (Distances<'s, T, N>, Parents<'s, T, N, L>)
where
    T: Timestamp + Lattice,
    N: ExchangeData + Hash,
    L: ExchangeData + Hash,
{
    let dist = bfs(edges.clone().map(|(e, _)| e), roots.distinct());
    let parents = edges
        .map(|((u, v), label)| (u, (v, label)))
        .join_map(dist.clone(), |u, (v, label), du| {
            (v.clone(), (*du, u.clone(), label.clone()))
        })
        .join_map(dist.clone(), |v, (du, u, label), dv| {
            (v.clone(), (*du + 1 == *dv, u.clone(), label.clone()))
        })
        .filter(|(_, (closer, _, _))| *closer)
        .map(|(v, (_, u, label))| (v, (u, label)))
        .reduce(move |_v, candidates, out| {
            let first = candidates
                .iter()
                .map(|(c, _)| *c)
                .min_by(|(u, l), (w, m)| order(u, w).then_with(|| l.cmp(m)))
                .expect("reduce sees non-empty input");
            out.push((first.clone(), 1))
        });
    (dist, parents)
}

/// The witness path of every reachable target: from a root to the target
/// along BFS parents, with the label of every hop.
pub fn witness_paths<'s, T, N, L>(
    dist: Distances<'s, T, N>,
    parents: Parents<'s, T, N, L>,
    targets: VecCollection<'s, T, N>,
) -> VecCollection<'s, T, (N, Path<N, L>)>
where
    T: Timestamp + Lattice,
    N: ExchangeData + Hash,
    L: ExchangeData + Hash,
{
    // Every (target, node) on the target's parent chain.
    let start = targets.distinct().map(|t| (t.clone(), t));
    let chain_parents = parents.clone();
    let chain = start.clone().iterate(|scope, chain| {
        let parents = chain_parents.enter(scope);
        let start = start.enter(scope);
        chain
            .map(|(t, v)| (v, t))
            .join_map(parents, |_v, t, (u, _)| (t.clone(), u.clone()))
            .concat(start)
            .distinct()
    });
    let on_chain = chain
        .map(|(t, v)| (v, t))
        .join_map(dist, |v, t, d| (v.clone(), (t.clone(), *d)));
    let hops = on_chain.clone().join_map(parents, |v, (t, d), (_, label)| {
        (t.clone(), (*d, v.clone(), Some(label.clone())))
    });
    let roots = on_chain
        .filter(|(_, (_, d))| *d == 0)
        .map(|(v, (t, _))| (t, (0, v, None)));
    hops.concat(roots).reduce(|_t, steps, out| {
        // Steps arrive sorted by distance: the path in order.
        let path = steps.iter().map(|((_, v, _), _)| v.clone()).collect();
        let labels = steps
            .iter()
            .filter_map(|((_, _, l), _)| l.clone())
            .collect();
        out.push(((path, labels), 1));
    })
}
