//! The run's totals, counted file by file.

use client::JobState;

use super::{MAX_DETAILED, tally::Tally};
use crate::{summary::FailedJob, track::FileTrack};

/// Counts one file's deliveries, effects and job outcome into `tally`.
pub(super) fn fold(t: &FileTrack, tally: &mut Tally) {
    let m = &mut tally.metrics;
    m.files += 1;
    let n = t.deliveries.len() as u64;
    tally.delivered_events += t.deliveries.iter().filter(|d| d.hash.is_some()).count() as u64;
    m.deliveries += n;
    m.effects += t.effects();
    m.duplicate_effects += t.effects().saturating_sub(1);
    if n > 1 {
        m.duplicate_deliveries += n - 1;
        m.files_duplicated += 1;
    }
    let Some(o) = &t.outcome else {
        tally.outside_files += u64::from(t.client == crate::track::OUTSIDE);
        return;
    };
    let took_ms = o.finished_ms.saturating_sub(o.started_ms);
    tally.durations.add(took_ms as f64 / 1000.0);
    tally.times.add_ms(took_ms);
    m.acknowledged += u64::from(o.final_acked);
    m.failed += u64::from(o.state == JobState::Error);
    m.restarts += u64::from(o.restarts);
    m.host_fallbacks += u64::from(o.host_fallbacks);
    m.bytes_resent += o.bytes_resent;
    for d in &t.deliveries {
        if d.hash.is_some_and(|h| h != o.hash) || d.len.is_some_and(|l| l != o.total) {
            m.corrupted += 1;
        }
    }
    if o.final_acked && n == 0 {
        m.lost += 1;
        tally.name_lost(&t.file);
    }
    if o.state == JobState::Error && tally.failed_jobs.len() < MAX_DETAILED {
        tally.failed_jobs.push(FailedJob {
            file: t.file.clone(),
            error: o
                .error
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
        });
    }
}
