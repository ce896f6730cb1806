//! Sweeps: one scenario run over the cartesian product of settings, over many seeds.
//!
//! A sweep directory holds `sweep.json` (the [`Plan`]), `results.jsonl` (one [`RunLine`] per
//! run) and the reports made from them: `summary.json` (a [`SweepSummary`]), `report.md`,
//! `report.html`. The summary is computed from the lines alone, so shards of one plan merge by
//! concatenating their lines.

use std::collections::BTreeMap;

use scenario::{
    metrics::Metrics,
    summary::{Durations, Summary},
};
use serde::{Deserialize, Serialize};

/// Version of `sweep.json`, `results.jsonl` and the sweep `summary.json`.
pub const FORMAT_VERSION: u32 = 1;

/// A `--vary` that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaryError {
    /// Not `KEY=V1,V2,...`.
    #[error("--vary {0:?} is not KEY=V1,V2,...")]
    Syntax(String),
    /// No values.
    #[error("--vary {0} lists no values")]
    NoValues(String),
    /// The same key twice.
    #[error("--vary {0} is given twice")]
    Twice(String),
}

/// Reads `--vary KEY=V1,V2,...` flags: each key with its values, in the order given.
pub fn varied(flags: &[String]) -> Result<Vec<(String, Vec<String>)>, VaryError> {
    let mut varied: Vec<(String, Vec<String>)> = Vec::new();
    for v in flags {
        let (key, values) = v
            .split_once('=')
            .ok_or_else(|| VaryError::Syntax(v.clone()))?;
        let key = key.trim().to_owned();
        let values: Vec<String> = values
            .split(',')
            .map(|x| x.trim().to_owned())
            .filter(|x| !x.is_empty())
            .collect();
        if values.is_empty() {
            return Err(VaryError::NoValues(key));
        }
        if varied.iter().any(|(k, _)| *k == key) {
            return Err(VaryError::Twice(key));
        }
        varied.push((key, values));
    }
    Ok(varied)
}

/// Every combination of the varied values (the cartesian product, the first key varying
/// slowest), numbered.
pub fn settings(varied: &[(String, Vec<String>)]) -> Vec<Setting> {
    let mut combos: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for (key, values) in varied {
        combos = combos
            .into_iter()
            .flat_map(|c| {
                values
                    .iter()
                    .map(move |v| [c.clone(), vec![(key.clone(), v.clone())]].concat())
            })
            .collect();
    }
    combos
        .into_iter()
        .enumerate()
        .map(|(index, values)| Setting { index, values })
        .collect()
}

/// One combination of varied values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setting {
    /// Position in the plan.
    pub index: usize,
    /// `(key, value)` per varied key, in the order the keys were given.
    pub values: Vec<(String, String)>,
}

impl Setting {
    /// `farm.host_id=true, backend.dedupe=false`.
    pub fn label(&self) -> String {
        if self.values.is_empty() {
            return "(as written)".into();
        }
        self.values
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What a sweep runs. Every shard of a sweep has the same plan but for `shard`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Format version.
    pub v: u32,
    /// Scenario name.
    pub scenario: String,
    /// The scenario argument as given (for replay commands).
    pub scenario_arg: String,
    /// Overrides applied to every run (`--set`).
    pub fixed: Vec<String>,
    /// The varied keys, in order.
    pub varied: Vec<String>,
    /// Every setting.
    pub settings: Vec<Setting>,
    /// First seed.
    pub first_seed: u64,
    /// Seeds per setting.
    pub seeds: u64,
    /// `(k, m)`: this directory holds shard k of m (1-based); `None`: the whole sweep.
    pub shard: Option<(u64, u64)>,
}

impl Plan {
    /// Runs in the whole sweep.
    pub fn items(&self) -> u64 {
        self.settings.len() as u64 * self.seeds
    }

    /// The setting and seed of item `i` (items are ordered setting-major).
    pub fn item(&self, i: u64) -> (usize, u64) {
        ((i / self.seeds) as usize, self.first_seed + i % self.seeds)
    }

    /// Whether item `i` belongs to this plan's shard: items are dealt round-robin, so every
    /// shard gets a similar mix of settings.
    pub fn in_shard(&self, i: u64) -> bool {
        match self.shard {
            None => true,
            Some((k, m)) => i % m == k - 1,
        }
    }

    /// The plan without its shard (what shards of one sweep share).
    pub fn unsharded(&self) -> Plan {
        Plan {
            shard: None,
            ..self.clone()
        }
    }

    /// The command that replays one run of the sweep.
    pub fn replay(&self, setting: usize, seed: u64) -> String {
        let mut cmd = format!("bitsfarm scenario {} --seed {seed}", self.scenario_arg);
        for f in &self.fixed {
            cmd.push_str(&format!(" --set {f}"));
        }
        for (k, v) in &self.settings[setting].values {
            cmd.push_str(&format!(" --set {k}={v}"));
        }
        cmd
    }
}

/// One run of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunLine {
    /// Format version.
    pub v: u32,
    /// Item number in the plan.
    pub item: u64,
    /// Setting index.
    pub setting: usize,
    /// Seed.
    pub seed: u64,
    /// Every invariant held.
    pub invariants_held: bool,
    /// Every expectation of the scenario held (expectations are written for the scenario as
    /// shipped; varied settings may break them on purpose).
    pub expectations_held: bool,
    /// Invariants that failed.
    pub failed_invariants: Vec<String>,
    /// The run's totals (each a field of its own in the line).
    #[serde(flatten)]
    pub metrics: Metrics,
    /// Upload completion times.
    pub durations: Durations,
}

impl RunLine {
    /// The line for one run's summary.
    pub fn of(item: u64, setting: usize, s: &Summary) -> RunLine {
        RunLine {
            v: FORMAT_VERSION,
            item,
            setting,
            seed: s.seed,
            invariants_held: s.invariants.iter().all(|i| i.held),
            expectations_held: s.expectations.iter().all(|e| e.held),
            failed_invariants: s
                .invariants
                .iter()
                .filter(|i| !i.held)
                .map(|i| format!("{}: {}", i.name, i.detail))
                .collect(),
            metrics: s.metrics.clone(),
            durations: s.durations.clone(),
        }
    }
}

/// A rate per 1,000 uploads with its 95% confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    /// Events per 1,000 uploads over all runs (pooled).
    pub per_1000: f64,
    /// Lower bound of the 95% interval.
    pub low: f64,
    /// Upper bound of the 95% interval.
    pub high: f64,
}

impl Rate {
    /// The pooled rate of `counts` over `files`, with a normal-approximation interval over the
    /// per-run rates (runs are the independent samples; files within a run are not).
    pub fn of(counts: &[u64], files: &[u64]) -> Rate {
        let total_files: u64 = files.iter().sum();
        let total: u64 = counts.iter().sum();
        let per_1000 = if total_files == 0 {
            0.0
        } else {
            total as f64 * 1000.0 / total_files as f64
        };
        let rates: Vec<f64> = counts
            .iter()
            .zip(files)
            .filter(|(_, f)| **f > 0)
            .map(|(c, f)| *c as f64 * 1000.0 / *f as f64)
            .collect();
        let n = rates.len() as f64;
        if n < 2.0 {
            return Rate {
                per_1000,
                low: per_1000,
                high: per_1000,
            };
        }
        let mean = rates.iter().sum::<f64>() / n;
        let var = rates.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0);
        let half = 1.96 * (var / n).sqrt();
        Rate {
            per_1000,
            low: (per_1000 - half).max(0.0),
            high: per_1000 + half,
        }
    }
}

/// Percentiles of upload completion times, seconds (bucket upper bounds; see [`Durations`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// One setting's numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettingSummary {
    /// Setting index.
    pub index: usize,
    /// `key=value, ...`.
    pub label: String,
    /// The varied values.
    pub values: BTreeMap<String, String>,
    /// Runs.
    pub runs: u64,
    /// Uploads (files) over all runs.
    pub uploads: u64,
    /// Duplicate deliveries.
    pub duplicate_deliveries: u64,
    /// Duplicate deliveries per 1,000 uploads.
    pub duplicate_deliveries_rate: Rate,
    /// Duplicate effects (what the application did twice).
    pub duplicate_effects: u64,
    /// Duplicate effects per 1,000 uploads.
    pub duplicate_effects_rate: Rate,
    /// Files acknowledged but never delivered.
    pub lost: u64,
    /// Jobs that ended in error.
    pub failed: u64,
    /// Restarts from byte 0.
    pub restarts: u64,
    /// Restarts per 1,000 uploads.
    pub restarts_rate: Rate,
    /// Host-Id fallbacks.
    pub host_fallbacks: u64,
    /// Bytes re-sent over all runs.
    pub bytes_resent: u64,
    /// Bytes re-sent per upload.
    pub bytes_resent_per_upload: f64,
    /// Upload completion times.
    pub completion_s: Completion,
    /// Runs in which every invariant held.
    pub invariants_held: u64,
    /// Runs in which every expectation held.
    pub expectations_held: u64,
    /// Replay commands of runs whose invariants failed (at most 10).
    pub broken_runs: Vec<String>,
}

/// A sweep's numbers: what `summary.json`, `report.md` and `report.html` show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepSummary {
    /// Format version.
    pub schema_version: u32,
    /// The plan (without shard if merged from every shard).
    pub plan: Plan,
    /// Runs summarised.
    pub runs: u64,
    /// Runs the plan (or shard) calls for.
    pub runs_planned: u64,
    /// One entry per setting, in plan order.
    pub settings: Vec<SettingSummary>,
    /// Settings from safest to least safe: fewest duplicate effects, then duplicate
    /// deliveries, then lost files, then restarts.
    pub ranking: Vec<usize>,
    /// Whether every run's invariants held.
    pub invariants_held: bool,
}

/// Summarises the lines of a plan.
pub fn summarize(plan: &Plan, lines: &[RunLine]) -> SweepSummary {
    let mut settings = Vec::new();
    for setting in &plan.settings {
        let mine: Vec<&RunLine> = lines
            .iter()
            .filter(|l| l.setting == setting.index)
            .collect();
        let files: Vec<u64> = mine.iter().map(|l| l.metrics.files).collect();
        let rate = |f: fn(&RunLine) -> u64| {
            Rate::of(&mine.iter().map(|l| f(l)).collect::<Vec<_>>(), &files)
        };
        let sum = |f: fn(&RunLine) -> u64| mine.iter().map(|l| f(l)).sum::<u64>();
        let mut durations = Durations::default();
        for l in &mine {
            durations.merge(&l.durations);
        }
        let uploads = sum(|l| l.metrics.files);
        let bytes_resent = sum(|l| l.metrics.bytes_resent);
        settings.push(SettingSummary {
            index: setting.index,
            label: setting.label(),
            values: setting.values.iter().cloned().collect(),
            runs: mine.len() as u64,
            uploads,
            duplicate_deliveries: sum(|l| l.metrics.duplicate_deliveries),
            duplicate_deliveries_rate: rate(|l| l.metrics.duplicate_deliveries),
            duplicate_effects: sum(|l| l.metrics.duplicate_effects),
            duplicate_effects_rate: rate(|l| l.metrics.duplicate_effects),
            lost: sum(|l| l.metrics.lost),
            failed: sum(|l| l.metrics.failed),
            restarts: sum(|l| l.metrics.restarts),
            restarts_rate: rate(|l| l.metrics.restarts),
            host_fallbacks: sum(|l| l.metrics.host_fallbacks),
            bytes_resent,
            bytes_resent_per_upload: if uploads == 0 {
                0.0
            } else {
                bytes_resent as f64 / uploads as f64
            },
            completion_s: Completion {
                p50: durations.quantile(0.5),
                p90: durations.quantile(0.9),
                p99: durations.quantile(0.99),
            },
            invariants_held: mine.iter().filter(|l| l.invariants_held).count() as u64,
            expectations_held: mine.iter().filter(|l| l.expectations_held).count() as u64,
            broken_runs: mine
                .iter()
                .filter(|l| !l.invariants_held)
                .take(10)
                .map(|l| plan.replay(l.setting, l.seed))
                .collect(),
        });
    }
    let mut ranking: Vec<usize> = (0..settings.len()).collect();
    ranking.sort_by(|&a, &b| {
        let (x, y) = (&settings[a], &settings[b]);
        x.duplicate_effects_rate
            .per_1000
            .total_cmp(&y.duplicate_effects_rate.per_1000)
            .then(
                x.duplicate_deliveries_rate
                    .per_1000
                    .total_cmp(&y.duplicate_deliveries_rate.per_1000),
            )
            .then(x.lost.cmp(&y.lost))
            .then(
                x.restarts_rate
                    .per_1000
                    .total_cmp(&y.restarts_rate.per_1000),
            )
            .then(a.cmp(&b))
    });
    let runs_planned = (0..plan.items()).filter(|&i| plan.in_shard(i)).count() as u64;
    SweepSummary {
        schema_version: FORMAT_VERSION,
        plan: plan.clone(),
        runs: lines.len() as u64,
        runs_planned,
        invariants_held: lines.iter().all(|l| l.invariants_held),
        settings,
        ranking,
    }
}

/// Why shards cannot be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// Nothing to merge.
    #[error("no sweep directories given")]
    Empty,
    /// The shards belong to different sweeps.
    #[error("{0} is a shard of a different sweep (scenario, settings or seeds differ)")]
    DifferentPlan(String),
    /// One run appears twice.
    #[error("run {item} (setting {setting}, seed {seed}) appears in more than one shard")]
    Duplicate {
        /// Item number.
        item: u64,
        /// Setting.
        setting: usize,
        /// Seed.
        seed: u64,
    },
}

/// Merges shards' plans and lines into the whole sweep's. Missing runs are allowed (the merged
/// summary says how many of the planned runs it holds); duplicated runs are not.
pub fn merge(parts: Vec<(String, Plan, Vec<RunLine>)>) -> Result<(Plan, Vec<RunLine>), MergeError> {
    let mut iter = parts.into_iter();
    let (_, first, mut lines) = iter.next().ok_or(MergeError::Empty)?;
    let plan = first.unsharded();
    for (name, p, more) in iter {
        if p.unsharded() != plan {
            return Err(MergeError::DifferentPlan(name));
        }
        lines.extend(more);
    }
    lines.sort_by_key(|l| l.item);
    if let Some(w) = lines.windows(2).find(|w| w[0].item == w[1].item) {
        return Err(MergeError::Duplicate {
            item: w[0].item,
            setting: w[0].setting,
            seed: w[0].seed,
        });
    }
    Ok((plan, lines))
}

#[cfg(test)]
mod tests {

    #[test]
    fn vary_flags_make_the_cartesian_product_first_key_slowest() {
        let v = varied(&["a=1,2".into(), "b = x, y ,z".into()]).unwrap();
        let labels: Vec<String> = settings(&v).iter().map(Setting::label).collect();
        assert_eq!(labels.len(), 6);
        assert_eq!(labels[0], "a=1, b=x");
        assert_eq!(labels[3], "a=2, b=x");
        assert_eq!(varied(&["a".into()]), Err(VaryError::Syntax("a".into())));
        assert_eq!(
            varied(&["a=,".into()]),
            Err(VaryError::NoValues("a".into()))
        );
        assert_eq!(
            varied(&["a=1".into(), "a=2".into()]),
            Err(VaryError::Twice("a".into()))
        );
    }

    use super::*;

    #[test]
    fn rates_pool_counts_and_bound_the_interval() {
        let r = Rate::of(&[1, 0, 1, 0], &[10, 10, 10, 10]);
        assert_eq!(r.per_1000, 50.0);
        assert!(r.low < 50.0 && r.high > 50.0 && r.low >= 0.0);
        let none = Rate::of(&[0, 0], &[10, 10]);
        assert_eq!((none.per_1000, none.low, none.high), (0.0, 0.0, 0.0));
        let one = Rate::of(&[3], &[10]);
        assert_eq!((one.low, one.high), (300.0, 300.0));
    }

    #[test]
    fn shards_deal_items_round_robin() {
        let plan = Plan {
            v: 1,
            scenario: "s".into(),
            scenario_arg: "s".into(),
            fixed: vec![],
            varied: vec!["a".into()],
            settings: vec![
                Setting {
                    index: 0,
                    values: vec![("a".into(), "1".into())],
                },
                Setting {
                    index: 1,
                    values: vec![("a".into(), "2".into())],
                },
            ],
            first_seed: 10,
            seeds: 3,
            shard: Some((2, 3)),
        };
        assert_eq!(plan.items(), 6);
        assert_eq!(plan.item(4), (1, 11));
        let mine: Vec<u64> = (0..6).filter(|&i| plan.in_shard(i)).collect();
        assert_eq!(mine, vec![1, 4]);
        assert_eq!(
            plan.replay(1, 11),
            "bitsfarm scenario s --seed 11 --set a=2"
        );
    }
}
