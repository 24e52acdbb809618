//! Cycle detection over `needs` edges, shared by the frontends and the planner.

use crate::span::Span;

/// The first cycle of a graph given as adjacency lists (job → (needed job, edge span)),
/// found by an iterative depth-first search (no recursion, whatever the graph): each element
/// is a job and the span of its edge to the next one in the cycle.
pub fn find_cycle(edges: &[Vec<(usize, Span)>]) -> Option<Vec<(usize, Span)>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut mark = vec![Mark::New; edges.len()];
    for root in 0..edges.len() {
        if mark[root] != Mark::New {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        mark[root] = Mark::Active;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(&(to, _)) = edges[node].get(*next) {
                *next += 1;
                match mark[to] {
                    Mark::New => {
                        mark[to] = Mark::Active;
                        stack.push((to, 0));
                    }
                    Mark::Active => {
                        let start = stack
                            .iter()
                            .position(|(n, _)| *n == to)
                            .expect("an active node is on the stack");
                        return Some(
                            stack[start..]
                                .iter()
                                .map(|&(n, e)| (n, edges[n][e - 1].1))
                                .collect(),
                        );
                    }
                    Mark::Done => {}
                }
            } else {
                mark[node] = Mark::Done;
                stack.pop();
            }
        }
    }
    None
}
