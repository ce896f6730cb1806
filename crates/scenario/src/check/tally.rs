//! Folding finished files into the run's totals, one file at a time: what the checker needs
//! of a file (counts, its duplicates' chains and causes, the per-file expectations'
//! distribution) is taken when the file is folded, so a long run can forget its finished
//! files (`Tracker::streaming`) and keep only this.

use std::collections::BTreeMap;

use crate::{
    log::Record,
    metrics::Metrics,
    rates::{CauseCount, UploadTimes},
    summary::{DuplicateFile, Durations, FailedJob},
    track::FileTrack,
};

/// How many files a per-file count names, per value of the count.
const EXAMPLES: usize = 5;
/// Most lost files a summary names.
const MAX_LOST_NAMED: usize = 10_000;

/// Files by one per-file count (deliveries or effects): how many had each value, with a few
/// named.
pub type PerFile = BTreeMap<u64, (u64, Vec<String>)>;

/// The totals of the files folded so far.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Totals (all but `virtual_time_s`).
    pub metrics: Metrics,
    /// Deliveries seen as `delivered` events (the ledger must agree).
    pub delivered_events: u64,
    /// Files of outside clients.
    pub outside_files: u64,
    /// Upload times, power-of-two buckets (kept for existing reports).
    pub durations: Durations,
    /// Upload times, HDR histogram.
    pub times: UploadTimes,
    /// Lost files, named (at most 10,000).
    pub lost_files: Vec<String>,
    /// Failed jobs, at most [`super::MAX_DETAILED`].
    pub failed_jobs: Vec<FailedJob>,
    /// Duplicated files with their chains, at most [`super::MAX_DETAILED`].
    pub duplicates: Vec<DuplicateFile>,
    /// Duplicate deliveries whose chain starts at no injected fault or failure.
    pub unexplained: u64,
    /// Duplicate deliveries by cause name.
    pub causes: BTreeMap<String, CauseCount>,
    /// Files by number of deliveries.
    pub by_deliveries: PerFile,
    /// Files by number of effects.
    pub by_effects: PerFile,
    /// With transaction ids and dedupe: files with more than one effect, and the first.
    pub txid_over: (u64, Option<(String, u64)>),
    /// Deliveries of files already folded (counted as duplicates, cause `late`).
    pub late_deliveries: u64,
}

fn note(map: &mut PerFile, value: u64, file: &str) {
    let e = map.entry(value).or_default();
    e.0 += 1;
    if e.1.len() < EXAMPLES {
        e.1.push(file.to_owned());
    }
}

impl Tally {
    /// Folds one file in; `global` holds the run's events not about one file (crashes,
    /// partitions, ...) that its chains may need; `txid_dedupe`: the run deduplicates by
    /// transaction id (more than one effect per file breaks an invariant).
    pub fn fold(&mut self, t: &FileTrack, global: &[Record], txid_dedupe: bool) {
        super::count::fold(t, self);
        if t.deliveries.len() > 1 {
            super::chain::fold(t, global, self);
        }
        note(&mut self.by_deliveries, t.deliveries.len() as u64, &t.file);
        note(&mut self.by_effects, t.effects(), &t.file);
        if txid_dedupe && t.effects() > 1 {
            self.txid_over.0 += 1;
            if self.txid_over.1.is_none() {
                self.txid_over.1 = Some((t.file.clone(), t.effects()));
            }
        }
    }

    /// A delivery of a file already folded: counted as a duplicate (cause `late`).
    pub fn late_delivery(&mut self, effect: bool) {
        self.late_deliveries += 1;
        let m = &mut self.metrics;
        m.deliveries += 1;
        m.duplicate_deliveries += 1;
        m.effects += u64::from(effect);
        m.duplicate_effects += u64::from(effect);
        self.delivered_events += 1;
        let c = self
            .causes
            .entry(crate::rates::Cause::Late.name().to_owned())
            .or_default();
        c.deliveries += 1;
        c.effects += u64::from(effect);
    }

    pub(super) fn name_lost(&mut self, file: &str) {
        if self.lost_files.len() < MAX_LOST_NAMED {
            self.lost_files.push(file.to_owned());
        }
    }
}
