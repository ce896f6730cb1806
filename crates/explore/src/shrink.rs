//! Shrinking: the smallest knobs that still break a property, by greedy steps over
//! [`Knobs::simpler`]. The same steps drive proptest's shrinking ([`KnobsTree`]).

use std::collections::VecDeque;

use proptest::{
    strategy::{NewTree, Strategy, ValueTree},
    test_runner::TestRunner,
};
use rand::RngExt as _;

use crate::{knobs::Knobs, space::Space};

/// Shrinks `knobs` while `fails` says the property still fails, trying at most `budget`
/// candidates. Returns the smallest failing knobs found and the candidates tried.
pub fn shrink(
    knobs: Knobs,
    budget: usize,
    mut fails: impl FnMut(&Knobs) -> bool,
) -> (Knobs, usize) {
    let mut best = knobs;
    let mut tried = 0;
    'outer: loop {
        for c in best.simpler() {
            if tried >= budget {
                break 'outer;
            }
            tried += 1;
            if fails(&c) {
                best = c;
                continue 'outer;
            }
        }
        break;
    }
    (best, tried)
}

/// Generated knobs as a proptest strategy: proptest draws a seed for the generator and shrinks
/// with [`Knobs::simpler`].
#[derive(Debug, Clone)]
pub struct KnobsStrategy {
    space: Space,
}

impl KnobsStrategy {
    /// Knobs from `space`.
    pub fn new(space: Space) -> KnobsStrategy {
        KnobsStrategy { space }
    }
}

/// A value tree over knobs: `current` is the last known failing knobs, or a simpler candidate
/// being tried.
#[derive(Debug, Clone)]
pub struct KnobsTree {
    accepted: Knobs,
    trying: Option<Knobs>,
    queue: VecDeque<Knobs>,
}

impl Strategy for KnobsStrategy {
    type Tree = KnobsTree;
    type Value = Knobs;

    fn new_tree(&self, runner: &mut TestRunner) -> NewTree<Self> {
        let seed: u64 = runner.rng().random();
        let knobs = crate::knobs::generate(seed, &self.space);
        let queue = knobs.simpler().into();
        Ok(KnobsTree {
            accepted: knobs,
            trying: None,
            queue,
        })
    }
}

impl ValueTree for KnobsTree {
    type Value = Knobs;

    fn current(&self) -> Knobs {
        self.trying.clone().unwrap_or_else(|| self.accepted.clone())
    }

    fn simplify(&mut self) -> bool {
        // The current value failed: it becomes the one to beat.
        if let Some(t) = self.trying.take() {
            self.queue = t.simpler().into();
            self.accepted = t;
        }
        match self.queue.pop_front() {
            Some(c) => {
                self.trying = Some(c);
                true
            }
            None => false,
        }
    }

    fn complicate(&mut self) -> bool {
        // The candidate passed: try the next one from the last failing value.
        self.trying = None;
        match self.queue.pop_front() {
            Some(c) => {
                self.trying = Some(c);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrinking_finds_the_smallest_failing_knobs() {
        // "Fails" whenever there is a fault of the first kind: shrinks to that one fault, on
        // node 1, in a farm and client set no larger than the fault needs.
        let starts: Vec<Knobs> = (0..)
            .map(|s| crate::knobs::generate(s, &Space::default()))
            .filter(|k| k.faults.len() >= 3)
            .take(30)
            .collect();
        for start in starts {
            let kind = start.faults[0].kind;
            let (small, tried) = shrink(start.clone(), 1000, |k| {
                k.faults.iter().any(|f| f.kind == kind)
            });
            assert!(tried > 0);
            assert_eq!(small.faults.len(), 1, "{small:?}");
            let f = &small.faults[0];
            assert_eq!(f.kind, kind);
            let clients = if f.kind.names_client() {
                f.client + 1
            } else {
                1
            };
            assert_eq!(
                (small.clients, small.files_per_client, small.nodes),
                (clients, 1, 1),
                "{small:?}"
            );
            assert!(f.node == 1 || !f.kind.names_node(), "{small:?}");
            assert_eq!((f.nth, small.file_size_max), (1, 0), "{small:?}");
        }
    }
}
