//! One step of the search, shared by `bitsfarm explore` and the tests: draw a scenario for a
//! seed, run it, check the properties; shrink a failure.

use crate::{
    knobs::{self, Knobs},
    property::{self, Property},
    shrink,
    space::Space,
};

/// What to search for.
#[derive(Debug, Clone)]
pub struct Search {
    /// Where scenarios come from.
    pub space: Space,
    /// The properties to check (one: every run is focused on its domain, see
    /// [`Property::focus`]).
    pub properties: Vec<Property>,
    /// Check determinism (a second run) on every n-th seed.
    pub determinism_every: u64,
}

/// The verdicts of one run.
#[derive(Debug, Clone)]
pub struct Verdicts {
    /// The generator seed.
    pub seed: u64,
    /// Properties that applied and were checked.
    pub checked: Vec<Property>,
    /// Properties that failed, and how.
    pub failed: Vec<(Property, String)>,
}

impl Search {
    /// Every property, determinism on every 8th seed (every seed when it is the only one).
    pub fn new(space: Space, properties: Vec<Property>) -> Search {
        let determinism_every = if properties == [Property::Determinism] {
            1
        } else {
            8
        };
        Search {
            space,
            properties,
            determinism_every,
        }
    }

    /// The scenario knobs for a seed.
    pub fn knobs(&self, seed: u64) -> Knobs {
        let k = knobs::generate(seed, &self.space);
        match self.properties.as_slice() {
            [p] => p.focus(k),
            _ => k,
        }
    }

    /// Runs the seed's scenario and checks every property that applies.
    pub fn check(&self, seed: u64) -> Verdicts {
        let knobs = self.knobs(seed);
        let determinism = self.properties.contains(&Property::Determinism)
            && seed.is_multiple_of(self.determinism_every.max(1));
        let outcome = property::run(&knobs, determinism);
        let mut v = Verdicts {
            seed,
            checked: Vec::new(),
            failed: Vec::new(),
        };
        for &p in &self.properties {
            if !p.applies(&knobs) || (p == Property::Determinism && !determinism) {
                continue;
            }
            v.checked.push(p);
            if let Err(why) = p.check(&outcome) {
                v.failed.push((p, why));
            }
        }
        v
    }
}

/// Shrinks knobs that break `p` (trying at most `budget` candidates); returns the smallest
/// failing knobs and how they fail.
pub fn shrink_failure(p: Property, knobs: Knobs, budget: usize) -> (Knobs, String) {
    let verdict = |k: &Knobs| {
        if p.applies(k) {
            p.check(&property::run(k, p == Property::Determinism)).err()
        } else {
            None
        }
    };
    let first = verdict(&knobs);
    let (small, _) = shrink::shrink(knobs, budget, |k| verdict(k).is_some());
    let why = verdict(&small)
        .or(first)
        .unwrap_or_else(|| "the failure did not reproduce".into());
    (small, why)
}
