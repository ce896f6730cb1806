//! The run's totals, counted from its tracked files.

use client::JobState;

use crate::{
    farm::RunResult,
    spec::Scenario,
    summary::{FailedJob, Summary},
};

use super::MAX_DETAILED;

/// Counts the run's metrics, completion times, lost files and failed jobs into `s`.
pub(super) fn count(scenario: &Scenario, run: &RunResult, s: &mut Summary) {
    let files = run.tracker.files();
    let m = &mut s.metrics;
    m.files = files.len() as u64;
    m.virtual_time_s = run.virtual_time_ms as f64 / 1000.0;
    let mut delivered_events = 0u64;
    for t in files.values() {
        let n = t.deliveries.len() as u64;
        delivered_events += t.deliveries.iter().filter(|d| d.hash.is_some()).count() as u64;
        m.deliveries += n;
        m.effects += t.effects();
        m.duplicate_effects += t.effects().saturating_sub(1);
        if n > 1 {
            m.duplicate_deliveries += n - 1;
            m.files_duplicated += 1;
        }
        let Some(o) = &t.outcome else {
            s.outside_files += u64::from(t.client == crate::track::OUTSIDE);
            continue;
        };
        s.durations
            .add(o.finished_ms.saturating_sub(o.started_ms) as f64 / 1000.0);
        m.acknowledged += u64::from(o.final_acked);
        m.failed += u64::from(o.state == JobState::Error);
        m.restarts += u64::from(o.restarts);
        m.host_fallbacks += u64::from(o.host_fallbacks);
        m.bytes_resent += o.bytes_resent;
        if o.final_acked && n == 0 {
            m.lost += 1;
            s.lost_files.push(t.file.clone());
        }
        for d in &t.deliveries {
            if d.hash.is_some_and(|h| h != o.hash) || d.len.is_some_and(|l| l != o.total) {
                m.corrupted += 1;
            }
        }
        if o.state == JobState::Error && s.failed_jobs.len() < MAX_DETAILED {
            s.failed_jobs.push(FailedJob {
                file: t.file.clone(),
                error: o
                    .error
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            });
        }
    }
    // Harness invariant: the application's ledger and the event log agree (a run the harness
    // could not finish has no ledger to compare).
    if scenario.farm.notification != node::NotificationType::None && run.harness_failure.is_none() {
        assert_eq!(
            run.ledger_deliveries, delivered_events,
            "the ledger and the Delivered events disagree"
        );
    }
}
