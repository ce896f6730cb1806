//! The checker: from a run's tracked files to metrics (`count`), the chain of events behind
//! every duplicate delivery (`chain`), invariants (`invariants`) and the scenario's expectations
//! (`expectations`).
//!
//! A checker finding (a duplicate, a lost file) is data in the summary, not an error.

mod chain;
mod count;
mod expectations;
mod invariants;
pub mod tally;

use crate::{farm::RunResult, spec::Scenario, summary::Summary};

/// How many duplicated files the summary details (all are counted).
pub const MAX_DETAILED: usize = 100;

/// Whether the run's invariants hold the application to one effect per transaction id.
pub fn txid_dedupe(scenario: &Scenario) -> bool {
    scenario.backend.dedupe
        && scenario
            .workload
            .as_ref()
            .map_or(scenario.clients.transaction_id, |w| w.transaction_id)
}

/// Summarises a run. `replay` is the command that replays it.
pub fn summarize(scenario: &Scenario, seed: u64, run: &RunResult, replay: String) -> Summary {
    let mut s = Summary::empty(scenario, seed, replay);
    s.completed = run.completed;
    s.events = run.events;
    s.event_log_hash = run.event_hash.clone();
    s.panics = run.panics.count;
    s.panic_messages = run.panics.messages.clone();
    let tally = run.tracker.tally_all(txid_dedupe(scenario));
    s.metrics = tally.metrics.clone();
    s.metrics.virtual_time_s = run.virtual_time_ms as f64 / 1000.0;
    s.durations = tally.durations.clone();
    s.lost_files = tally.lost_files.clone();
    s.failed_jobs = tally.failed_jobs.clone();
    s.duplicates = tally.duplicates.clone();
    s.outside_files = tally.outside_files;
    s.late_deliveries = tally.late_deliveries;
    s.upload_times = tally.times.clone();
    s.causes = tally.causes.clone();
    // Harness invariant: the application's ledger and the event log agree (a run the harness
    // could not finish has no ledger to compare).
    if scenario.farm.notification != node::NotificationType::None && run.harness_failure.is_none() {
        assert_eq!(
            run.ledger_deliveries, tally.delivered_events,
            "the ledger and the Delivered events disagree"
        );
    }
    s.rates = crate::rates::Rates::of_run(&s.counts());
    s.faults = invariants::fault_summaries(run);
    s.invariants = invariants::check(scenario, run, &s, &tally);
    s.expectations = expectations::check(scenario, &tally, &s);
    s.ok = s.expectations.iter().all(|e| e.held) && s.invariants.iter().all(|i| i.held);
    s
}
