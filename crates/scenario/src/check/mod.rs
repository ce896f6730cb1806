//! The checker: from a run's tracked files to metrics (`count`), the chain of events behind
//! every duplicate delivery (`chain`), invariants (`invariants`) and the scenario's expectations
//! (`expectations`).
//!
//! A checker finding (a duplicate, a lost file) is data in the summary, not an error.

mod chain;
mod count;
mod expectations;
mod invariants;

use crate::{farm::RunResult, spec::Scenario, summary::Summary};

/// How many duplicated files the summary details (all are counted).
pub const MAX_DETAILED: usize = 100;

/// Summarises a run. `replay` is the command that replays it.
pub fn summarize(scenario: &Scenario, seed: u64, run: &RunResult, replay: String) -> Summary {
    let mut s = Summary::empty(scenario, seed, replay);
    s.completed = run.completed;
    s.events = run.events;
    s.event_log_hash = run.event_hash.clone();
    s.panics = run.panics.count;
    s.panic_messages = run.panics.messages.clone();
    count::count(scenario, run, &mut s);
    let unexplained = chain::duplicates(run, &mut s);
    s.faults = invariants::fault_summaries(run);
    s.invariants = invariants::check(scenario, run, &s, unexplained);
    s.expectations = expectations::check(scenario, &run.tracker, &s);
    s.ok = s.expectations.iter().all(|e| e.held) && s.invariants.iter().all(|i| i.held);
    s
}
