//! Sweeps: one scenario run over the cartesian product of settings, over many seeds.
//!
//! A sweep directory holds `sweep.json` (the [`Plan`]), `results.jsonl` (one [`RunLine`] per
//! run) and the reports made from them: `summary.json` (a [`SweepSummary`]), `report.md`,
//! `report.html`. The summary is computed from the lines alone, so shards of one plan merge by
//! concatenating their lines.

use std::collections::BTreeMap;

use scenario::{
    metrics::Metrics,
    rates::{CauseCount, Interval, Rates, RunCounts, UploadTimes},
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
    /// Upload times as an HDR histogram.
    #[serde(default)]
    pub upload_times: UploadTimes,
    /// Duplicate deliveries by cause.
    #[serde(default)]
    pub causes: BTreeMap<String, CauseCount>,
}

impl RunLine {
    fn counts(&self) -> RunCounts<'_> {
        RunCounts {
            metrics: &self.metrics,
            times: &self.upload_times,
            causes: &self.causes,
        }
    }

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
            upload_times: s.upload_times.clone(),
            causes: s.causes.clone(),
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
    /// The setting's rates pooled over its runs (per million uploads, 95% intervals, by
    /// cause).
    #[serde(default)]
    pub rates: Rates,
    /// Why the setting is left out of the ranking: an invariant failed (a scripted fault that
    /// never fired is one) in some of its runs, named with how many.
    #[serde(default)]
    pub flagged: Option<String>,
}

/// Whether a varied key is a setting an operator controls (the farm, the clients' BITS
/// settings, the application), rather than a condition the farm meets (failures, scripted
/// faults, the traffic, the network).
pub fn is_setting(key: &str) -> bool {
    const TRAFFIC: [&str; 5] = [
        "clients.count",
        "clients.files_per_client",
        "clients.file_size",
        "clients.file_size_max",
        "clients.start_spread_s",
    ];
    const CLIENT: [&str; 7] = [
        "workload.transaction_id",
        "workload.retry_delay_s",
        "workload.fragment_size",
        "workload.fragment_size_max",
        "workload.no_progress_timeout_s",
        "workload.connect_timeout_s",
        "workload.request_timeout_s",
    ];
    (key.starts_with("farm.") || key.starts_with("clients.") || key.starts_with("backend."))
        && !TRAFFIC.contains(&key)
        || CLIENT.contains(&key)
}

/// One row of a safety matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ranked {
    /// The setting's index.
    pub setting: usize,
    /// Its rank (1 = safest); settings whose intervals overlap share a rank.
    pub rank: usize,
    /// Whether it shares its rank with another setting (ordered by cost within the tie).
    pub tied: bool,
}

/// The settings ranked under one condition (one combination of the varied conditions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Matrix {
    /// The condition's values (`fault[0].point=after-forward`), or `(as written)`.
    pub condition: String,
    /// Ranked settings, safest first (flagged settings are not here).
    pub rows: Vec<Ranked>,
    /// Settings of this condition left out, with why.
    pub flagged: Vec<usize>,
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
    /// Settings from safest to least safe, matrix by matrix (see `matrices`), then the
    /// flagged ones.
    pub ranking: Vec<usize>,
    /// Whether every run's invariants held.
    pub invariants_held: bool,
    /// Varied keys an operator controls ([`is_setting`]).
    #[serde(default)]
    pub setting_keys: Vec<String>,
    /// Varied keys that are conditions (failures, faults, traffic).
    #[serde(default)]
    pub condition_keys: Vec<String>,
    /// A safety matrix per condition.
    #[serde(default)]
    pub matrices: Vec<Matrix>,
    /// What to change, in plain words, with intervals and costs.
    #[serde(default)]
    pub conclusion: Vec<String>,
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
            rates: Rates::pooled(&mine.iter().map(|l| l.counts()).collect::<Vec<_>>()),
            flagged: flag(&mine),
        });
    }
    let runs_planned = (0..plan.items()).filter(|&i| plan.in_shard(i)).count() as u64;
    let (setting_keys, condition_keys): (Vec<String>, Vec<String>) =
        plan.varied.iter().cloned().partition(|k| is_setting(k));
    let matrices = matrices(plan, &settings, &condition_keys);
    let mut conclusion = conclude(plan, &settings, &setting_keys);
    conclusion.extend(clean_rows(&settings, &matrices, &setting_keys, plan));
    // Safest first, matrix by matrix (flagged settings last).
    let ranking: Vec<usize> = matrices
        .iter()
        .flat_map(|m| m.rows.iter().map(|r| r.setting))
        .chain(matrices.iter().flat_map(|m| m.flagged.iter().copied()))
        .collect();
    SweepSummary {
        schema_version: FORMAT_VERSION,
        plan: plan.clone(),
        runs: lines.len() as u64,
        runs_planned,
        invariants_held: lines.iter().all(|l| l.invariants_held),
        settings,
        ranking,
        setting_keys,
        condition_keys,
        matrices,
        conclusion,
    }
}

/// Why a setting's runs cannot be ranked, if they cannot: the invariants that failed, each
/// with the runs it failed in.
fn flag(mine: &[&RunLine]) -> Option<String> {
    let mut failed: BTreeMap<String, u64> = BTreeMap::new();
    for l in mine {
        for f in &l.failed_invariants {
            let name = f.split(':').next().unwrap_or(f).to_owned();
            *failed.entry(name).or_default() += 1;
        }
    }
    (!failed.is_empty()).then(|| {
        failed
            .iter()
            .map(|(name, n)| {
                let what = if name == "all_faults_fired" {
                    " (a scripted fault never fired)"
                } else {
                    ""
                };
                format!("{name} failed in {n} of {} runs{what}", mine.len())
            })
            .collect::<Vec<_>>()
            .join("; ")
    })
}

/// The value of `key` in a setting.
fn value_of<'a>(plan: &'a Plan, setting: usize, key: &str) -> &'a str {
    plan.settings[setting]
        .values
        .iter()
        .find(|(k, _)| k == key)
        .map_or("", |(_, v)| v.as_str())
}

/// The cost of a setting, for ordering within a tie: bytes re-sent per upload, then p99 time.
fn cost(s: &SettingSummary) -> (f64, f64) {
    (s.bytes_resent_per_upload, s.rates.upload_time_s.p99)
}

/// One safety matrix per combination of the condition keys: its unflagged settings ranked by
/// duplicate effects, then duplicate deliveries; settings whose intervals of both overlap the
/// first of a group share its rank, ordered among themselves by cost.
fn matrices(plan: &Plan, settings: &[SettingSummary], conditions: &[String]) -> Vec<Matrix> {
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    for s in settings {
        let label = if conditions.is_empty() {
            "(as written)".to_owned()
        } else {
            conditions
                .iter()
                .map(|k| format!("{k}={}", value_of(plan, s.index, k)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match groups.iter_mut().find(|(l, _)| *l == label) {
            Some((_, v)) => v.push(s.index),
            None => groups.push((label, vec![s.index])),
        }
    }
    groups
        .into_iter()
        .map(|(condition, members)| {
            let (flagged, mut ok): (Vec<usize>, Vec<usize>) = members
                .into_iter()
                .partition(|&i| settings[i].flagged.is_some());
            let key = |i: usize| {
                let r = &settings[i].rates;
                (
                    r.duplicate_effects_per_million.value,
                    r.duplicate_deliveries_per_million.value,
                )
            };
            ok.sort_by(|&a, &b| {
                let (x, y) = (key(a), key(b));
                x.0.total_cmp(&y.0)
                    .then(x.1.total_cmp(&y.1))
                    .then(a.cmp(&b))
            });
            // Tie groups: each led by its first row.
            let mut tie_groups: Vec<Vec<usize>> = Vec::new();
            for i in ok {
                let joins = tie_groups.last().is_some_and(|g| {
                    let (l, r) = (&settings[g[0]].rates, &settings[i].rates);
                    l.duplicate_effects_per_million
                        .overlaps(&r.duplicate_effects_per_million)
                        && l.duplicate_deliveries_per_million
                            .overlaps(&r.duplicate_deliveries_per_million)
                });
                if joins {
                    tie_groups.last_mut().expect("a group").push(i);
                } else {
                    tie_groups.push(vec![i]);
                }
            }
            let mut rows = Vec::new();
            for mut g in tie_groups {
                g.sort_by(|&a, &b| {
                    let (x, y) = (cost(&settings[a]), cost(&settings[b]));
                    x.0.total_cmp(&y.0)
                        .then(x.1.total_cmp(&y.1))
                        .then(a.cmp(&b))
                });
                let rank = rows.len() + 1;
                let tied = g.len() > 1;
                rows.extend(g.into_iter().map(|setting| Ranked {
                    setting,
                    rank,
                    tied,
                }));
            }
            Matrix {
                condition,
                rows,
                flagged,
            }
        })
        .collect()
}

/// Per condition with some settings that showed no duplicate at all: which (their setting
/// keys' values), and how many runs say so.
fn clean_rows(
    settings: &[SettingSummary],
    matrices: &[Matrix],
    setting_keys: &[String],
    plan: &Plan,
) -> Vec<String> {
    let mut out = Vec::new();
    for m in matrices {
        let clean: Vec<&Ranked> = m
            .rows
            .iter()
            .filter(|r| settings[r.setting].duplicate_deliveries == 0)
            .collect();
        if clean.is_empty() || clean.len() == m.rows.len() {
            continue;
        }
        let label = |i: usize| {
            let vals: Vec<String> = plan.settings[i]
                .values
                .iter()
                .filter(|(k, _)| setting_keys.contains(k))
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            format!("`{}`", vals.join(", "))
        };
        let uploads: u64 = clean.iter().map(|r| settings[r.setting].uploads).sum();
        let names: Vec<String> = clean.iter().take(4).map(|r| label(r.setting)).collect();
        out.push(format!(
            "{}: no file was delivered twice with {}{} ({} uploads, {} of the {} ranked settings).",
            if m.condition == "(as written)" {
                "As written".to_owned()
            } else {
                format!("Under {}", m.condition)
            },
            names.join("; "),
            if clean.len() > 4 { "; ..." } else { "" },
            uploads,
            clean.len(),
            m.rows.len()
        ));
    }
    out
}

/// Counts pooled over several settings.
#[derive(Default)]
struct Pool {
    uploads: u64,
    effects: u64,
    deliveries: u64,
    bytes_resent: u64,
    runs: u64,
}

impl Pool {
    fn add(&mut self, s: &SettingSummary) {
        self.uploads += s.uploads;
        self.effects += s.duplicate_effects;
        self.deliveries += s.duplicate_deliveries;
        self.bytes_resent += s.bytes_resent;
        self.runs += s.runs;
    }

    fn rate(&self, count: u64) -> Interval {
        let (lo, hi) = scenario::rates::wilson(count, self.uploads);
        Interval {
            value: if self.uploads == 0 {
                0.0
            } else {
                count as f64 * 1e6 / self.uploads as f64
            },
            low: lo * 1e6,
            high: hi * 1e6,
        }
    }

    fn resent(&self) -> f64 {
        self.bytes_resent as f64 / self.uploads.max(1) as f64
    }
}

/// The conclusion: for each setting key, which value removes duplicate effects, which
/// reduces duplicate deliveries and by how much, at what cost. Each value is compared with
/// the key's worst value over the settings that agree on every other varied key (and are not
/// flagged), pooled; intervals are 95% Wilson intervals over the pooled uploads.
fn conclude(plan: &Plan, settings: &[SettingSummary], setting_keys: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    if setting_keys.is_empty() {
        out.push("No setting an operator controls was varied (only conditions): the matrices say how the farm fares under each, not what to change.".into());
    }
    for key in setting_keys {
        let mut values: Vec<&str> = Vec::new();
        for s in &plan.settings {
            let v = value_of(plan, s.index, key);
            if !values.contains(&v) {
                values.push(v);
            }
        }
        // Pairs of settings that differ in `key` only.
        let others = |i: usize| -> Vec<(String, String)> {
            plan.settings[i]
                .values
                .iter()
                .filter(|(k, _)| k != key)
                .cloned()
                .collect()
        };
        let pools = |v: &str, w: &str| -> (Pool, Pool) {
            let (mut a, mut b) = (Pool::default(), Pool::default());
            for x in settings.iter().filter(|s| s.flagged.is_none()) {
                if value_of(plan, x.index, key) != v {
                    continue;
                }
                if let Some(y) = settings.iter().find(|y| {
                    y.flagged.is_none()
                        && value_of(plan, y.index, key) == w
                        && others(y.index) == others(x.index)
                }) {
                    a.add(x);
                    b.add(y);
                }
            }
            (a, b)
        };
        // The worst value: the most duplicate deliveries over the settings with it.
        let total = |v: &str| {
            let mut p = Pool::default();
            for x in settings.iter().filter(|s| s.flagged.is_none()) {
                if value_of(plan, x.index, key) == v {
                    p.add(x);
                }
            }
            (p.effects, p.deliveries) as (u64, u64)
        };
        let Some(worst) = values.iter().copied().max_by_key(|v| total(v)) else {
            continue;
        };
        let (mut said, mut compared) = (false, false);
        for v in values.iter().copied().filter(|v| *v != worst) {
            let (a, b) = pools(v, worst);
            if a.uploads == 0 || b.uploads == 0 {
                continue;
            }
            compared = true;
            let cost = format!(
                "bytes re-sent per upload {} → {}",
                scenario::text::bytes(b.resent().round() as u64),
                scenario::text::bytes(a.resent().round() as u64)
            );
            let (ea, eb) = (a.rate(a.effects), b.rate(b.effects));
            if a.effects == 0 && b.effects > 0 && !ea.overlaps(&eb) {
                out.push(format!(
                    "`{key}={v}` removes duplicate effects: 0 in {} uploads (at most {:.1} per million at 95%), against {} per million with `{key}={worst}` ({cost}).",
                    a.uploads, ea.high, eb.show(1)
                ));
                said = true;
            } else if !ea.overlaps(&eb) && ea.value < eb.value {
                out.push(format!(
                    "`{key}={v}` reduces duplicate effects from {} to {} per million ({:+.0}%) against `{key}={worst}` ({cost}).",
                    eb.show(1),
                    ea.show(1),
                    (ea.value / eb.value - 1.0) * 100.0
                ));
                said = true;
            }
            let (da, db) = (a.rate(a.deliveries), b.rate(b.deliveries));
            if !da.overlaps(&db) && da.value < db.value {
                out.push(format!(
                    "`{key}={v}` reduces duplicate deliveries from {} to {} per million ({:+.0}%) against `{key}={worst}` ({cost}).",
                    db.show(1),
                    da.show(1),
                    (da.value / db.value.max(1e-9) - 1.0) * 100.0
                ));
                said = true;
            }
        }
        if !compared {
            out.push(format!(
                "`{key}` never changes alone here (another varied key changes with it in every pair of settings): no comparison."
            ));
        } else if !said {
            out.push(format!(
                "`{key}`: no value changes duplicate deliveries or effects measurably here (their 95% intervals overlap); more seeds may tell."
            ));
        }
    }
    out
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

    /// A run line of `files` uploads with `dups` duplicate deliveries (effects too, unless
    /// `deduped`), and failed invariants.
    fn line(item: u64, setting: usize, dups: u64, deduped: bool, failed: &[&str]) -> RunLine {
        RunLine {
            v: FORMAT_VERSION,
            item,
            setting,
            seed: item,
            invariants_held: failed.is_empty(),
            expectations_held: true,
            failed_invariants: failed.iter().map(|f| format!("{f}: detail")).collect(),
            metrics: Metrics {
                files: 10_000,
                duplicate_deliveries: dups,
                files_duplicated: dups,
                duplicate_effects: if deduped { 0 } else { dups },
                bytes_resent: dups * 1000 + setting as u64,
                ..Metrics::default()
            },
            durations: Durations::default(),
            upload_times: UploadTimes::default(),
            causes: BTreeMap::new(),
        }
    }

    fn plan_of(varied: &[(&str, &[&str])], seeds: u64) -> Plan {
        let varied: Vec<(String, Vec<String>)> = varied
            .iter()
            .map(|(k, vs)| (k.to_string(), vs.iter().map(|v| v.to_string()).collect()))
            .collect();
        Plan {
            v: FORMAT_VERSION,
            scenario: "s".into(),
            scenario_arg: "s".into(),
            fixed: vec![],
            varied: varied.iter().map(|(k, _)| k.clone()).collect(),
            settings: settings(&varied),
            first_seed: 1,
            seeds,
            shard: None,
        }
    }

    #[test]
    fn settings_and_conditions_are_told_apart() {
        for k in [
            "farm.host_id",
            "backend.dedupe",
            "clients.transaction_id",
            "workload.transaction_id",
        ] {
            assert!(is_setting(k), "{k}");
        }
        for k in [
            "fault[0].point",
            "failure[2].mtbf_h",
            "workload.uploads_per_hour",
            "clients.count",
            "network.latency_ms",
        ] {
            assert!(!is_setting(k), "{k}");
        }
    }

    #[test]
    fn overlapping_rows_tie_and_flagged_rows_are_left_out() {
        // Setting 0: 10 per run; 1: 11 per run (tied with 0); 2: 200 per run; 3: 0, but a
        // scripted fault never fired in one run.
        let plan = plan_of(&[("farm.balancer", &["a", "b", "c", "d"])], 5);
        let per_run = [10, 11, 200, 0];
        let mut lines = Vec::new();
        for (setting, dups) in per_run.into_iter().enumerate() {
            for k in 0..5u64 {
                let failed: &[&str] = if setting == 3 && k == 2 {
                    &["all_faults_fired"]
                } else {
                    &[]
                };
                lines.push(line(setting as u64 * 5 + k, setting, dups, false, failed));
            }
        }
        let s = summarize(&plan, &lines);
        assert_eq!(s.matrices.len(), 1);
        let m = &s.matrices[0];
        let ranks: Vec<(usize, usize, bool)> =
            m.rows.iter().map(|r| (r.setting, r.rank, r.tied)).collect();
        // 0 and 1 tie at rank 1, ordered by cost (0 re-sends fewer bytes); 2 is third.
        assert_eq!(ranks, vec![(0, 1, true), (1, 1, true), (2, 3, false)]);
        assert_eq!(m.flagged, vec![3]);
        let why = s.settings[3].flagged.as_deref().unwrap();
        assert!(
            why.contains("all_faults_fired failed in 1 of 5 runs"),
            "{why}"
        );
        assert!(why.contains("never fired"), "{why}");
        // The report names the ties and the flagged row.
        let md = crate::markdown::sweep(&s);
        assert!(md.contains("| =1 | farm.balancer=a |"), "{md}");
        assert!(
            md.contains("Left out of the ranking: **farm.balancer=d**"),
            "{md}"
        );
    }

    #[test]
    fn the_conclusion_says_what_removes_and_what_reduces() {
        // transaction ids (with dedupe) remove effects; host ids cut deliveries by 90%; one
        // condition, the crash point, is varied too.
        let plan = plan_of(
            &[
                ("farm.host_id", &["false", "true"]),
                ("fault[0].point", &["after-forward", "ack-ready"]),
                ("clients.transaction_id", &["false", "true"]),
            ],
            4,
        );
        let mut lines = Vec::new();
        let mut item = 0;
        for st in &plan.settings {
            let v = |k: &str| st.values.iter().find(|(kk, _)| kk == k).unwrap().1.clone();
            let dups = if v("farm.host_id") == "true" { 10 } else { 100 };
            for _ in 0..4 {
                lines.push(line(
                    item,
                    st.index,
                    dups,
                    v("clients.transaction_id") == "true",
                    &[],
                ));
                item += 1;
            }
        }
        let s = summarize(&plan, &lines);
        assert_eq!(
            s.setting_keys,
            vec!["farm.host_id", "clients.transaction_id"]
        );
        assert_eq!(s.condition_keys, vec!["fault[0].point"]);
        assert_eq!(s.matrices.len(), 2, "a matrix per crash point");
        let text = s.conclusion.join("\n");
        assert!(
            text.contains("`clients.transaction_id=true` removes duplicate effects"),
            "{text}"
        );
        assert!(
            text.contains("`farm.host_id=true` reduces duplicate deliveries from 10000.0")
                && text.contains("to 1000.0")
                && text.contains("(-90%)"),
            "{text}"
        );
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
