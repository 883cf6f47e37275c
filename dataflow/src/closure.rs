//! Reachability closures and witness paths.
//!
//! Edge sets are arranged once, outside the iterative scopes, and entered:
//! an arrangement made inside an iteration would copy every edge with
//! iteration timestamps.

use std::cmp::Ordering;
use std::hash::Hash;

use differential_dataflow::algorithms::graphs::bfs::bfs_arranged;
use differential_dataflow::lattice::Lattice;
use differential_dataflow::operators::arrange::{Arranged, TraceAgent};
use differential_dataflow::operators::iterate::Iterate;
use differential_dataflow::trace::implementations::ValSpine;
use differential_dataflow::{ExchangeData, VecCollection};
use timely::progress::Timestamp;

/// BFS distance of every reachable node, arranged by node.
pub type Distances<'s, T, N> = Arranged<'s, TraceAgent<ValSpine<N, u32, T, isize>>>;
/// BFS parent of every reachable non-root node.
pub type Parents<'s, T, N> = VecCollection<'s, T, (N, N)>;
/// Hops `(u, v)` of witness paths, each with its target and the distance of `v`.
pub type Hops<'s, T, N> = VecCollection<'s, T, ((N, N), (N, u32))>;
/// [`Hops`] with the label of each.
pub type LabelledHops<'s, T, N, L> = VecCollection<'s, T, (((N, N), (N, u32)), L)>;
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
    let edges = edges.arrange_by_key();
    let roots = roots.distinct();
    roots.clone().iterate(|scope, reached| {
        let edges = edges.enter(scope);
        let roots = roots.enter(scope);
        reached
            .map(|n| (n, ()))
            .join_core(edges, |_, (), next| Some(next.clone()))
            .concat(roots)
            .distinct()
    })
}

/// For every node reachable from `roots`, its BFS distance and its BFS
/// parent: among the in-neighbours one step closer to a root, the first one
/// in `order`. Roots have no parent.
///
/// Only the presence of edges matters here; what labels them (static,
/// runtime, both) is looked up for the few hops on witness paths, so an
/// edge whose label changes costs the BFS nothing.
pub fn bfs_parents<'s, T, N>(
    edges: VecCollection<'s, T, (N, N)>,
    roots: VecCollection<'s, T, N>,
    order: impl Fn(&N, &N) -> Ordering + 'static,
) -> (Distances<'s, T, N>, Parents<'s, T, N>)
where
    T: Timestamp + Lattice,
    N: ExchangeData + Hash,
{
    let edges = edges.arrange_by_key();
    let dist = bfs_arranged(edges.clone(), roots.distinct()).arrange_by_key();
    let parents = edges
        .join_core(dist.clone(), |u, v, du| Some((v.clone(), (*du, u.clone()))))
        .join_core(dist.clone(), |v, (du, u), dv| {
            (*du + 1 == *dv).then(|| (v.clone(), u.clone()))
        })
        .reduce(move |_v, candidates, out| {
            let first = candidates
                .iter()
                .map(|(u, _)| *u)
                .min_by(|u, w| order(u, w))
                .expect("reduce sees non-empty input");
            out.push((first.clone(), 1))
        });
    (dist, parents)
}

/// The witness path of every reachable target: from a root to the target
/// along BFS parents, with the label of every hop. `label` labels hops
/// (`(u, v)` with the target and distance riding along); it sees only the
/// edges on witness paths, so labels need no collection of their own.
pub fn witness_paths<'s, T, N, L, F>(
    dist: Distances<'s, T, N>,
    parents: Parents<'s, T, N>,
    targets: VecCollection<'s, T, N>,
    label: F,
) -> VecCollection<'s, T, (N, Path<N, L>)>
where
    T: Timestamp + Lattice,
    N: ExchangeData + Hash,
    L: ExchangeData + Hash,
    F: FnOnce(Hops<'s, T, N>) -> LabelledHops<'s, T, N, L>,
{
    let parents = parents.arrange_by_key();
    // Every (target, node) on the target's parent chain.
    let start = targets.distinct().map(|t| (t.clone(), t));
    let chain_parents = parents.clone();
    let chain = start.clone().iterate(|scope, chain| {
        let parents = chain_parents.enter(scope);
        let start = start.enter(scope);
        chain
            .map(|(t, v)| (v, t))
            .join_core(parents, |_v, t, u| Some((t.clone(), u.clone())))
            .concat(start)
            .distinct()
    });
    let on_chain = chain
        .map(|(t, v)| (v, t))
        .join_core(dist, |v, t, d| Some((v.clone(), (t.clone(), *d))));
    let hops = on_chain.clone().join_core(parents, |v, (t, d), u| {
        Some(((u.clone(), v.clone()), (t.clone(), *d)))
    });
    let hops = label(hops).map(|(((_, v), (t, d)), l)| (t, (d, v, Some(l))));
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
