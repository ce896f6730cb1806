//! The run summary: what `bitsfarm scenario` prints, and, as JSON (`--json`, `summary.json`),
//! what tools read.
//!
//! # JSON format (`schema_version` 1)
//!
//! An object with the fields of [`Summary`]: identity (`scenario`, `seed`, `replay`), totals
//! (`files`, `acknowledged`, `failed`, `deliveries`, `duplicate_deliveries`, `files_duplicated`,
//! `effects`, `lost`, `corrupted`, `restarts`, `host_fallbacks`, `bytes_resent`), time
//! (`virtual_time_s`, `wall_time_ms`), the determinism oracle (`events`, `event_log_hash`), the
//! fault rules with their counters (`faults`), `expectations` and `invariants` (each with
//! `name` and `held`), the duplicated files with the chain behind each extra delivery
//! (`duplicates`, at most 100 detailed; each chain with its `class`, a cause name), failed
//! jobs, and `ok` (every expectation and invariant held). Fields are only ever added within a
//! schema version.
//!
//! `rates` says how often ([`crate::rates::Rates`]): `uploads`, `runs`, `method`;
//! `duplicate_deliveries_per_million`, `duplicate_effects_per_million`,
//! `files_duplicated_per_million`, `lost_per_million`, `failed_per_million`, each
//! `{ "value", "low", "high" }` (95%); `restarts_per_million`, `bytes_resent_per_upload`,
//! `upload_time_s` (`p50`, `p90`, `p99`, `p999`), and `causes`: a list of `{ "cause", "words",
//! "count", "share", "per_million": { "value", "low", "high" }, "effects" }`, most frequent
//! first. `upload_times` (an HDR histogram as `[value_ms, count]` pairs) and `causes` (counts
//! by cause name) let runs and sweep shards pool exactly; `late_deliveries` counts deliveries
//! after a workload's file was folded. An aggregate of `--runs` and every row of a sweep carry
//! `rates` too, pooled over their runs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{
    Scenario,
    metrics::Metrics,
    rates::{CauseCount, Rates, RunCounts, UploadTimes},
    text::{ordinal, secs},
};

/// Version of the summary's JSON format.
pub const SCHEMA_VERSION: u32 = 1;

/// One step of a causal chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ChainStep {
    /// Virtual time, milliseconds.
    pub t_ms: u64,
    /// What happened, in words.
    pub text: String,
}

/// Why a file was delivered once more.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Chain {
    /// Which delivery this explains (2 = the first duplicate).
    pub delivery: u64,
    /// The injected fault at the root, in words (`None`: unexplained).
    pub cause: Option<String>,
    /// The fault rule at the root, when a rule fired.
    pub rule: Option<usize>,
    /// The steps, in order.
    pub steps: Vec<ChainStep>,
    /// The steps as one sentence.
    pub sentence: String,
    /// The cause, classified (`lost-ack-other-node`, `app-late-answer`, ...: see
    /// [`crate::rates::Cause`]).
    #[serde(default)]
    pub class: String,
}

/// A file the application received more than once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DuplicateFile {
    /// The upload's path.
    pub file: String,
    /// Its job.
    pub job: String,
    /// Deliveries.
    pub deliveries: u64,
    /// Deliveries with an effect.
    pub effects: u64,
    /// Delivering nodes, in order of first delivery.
    pub nodes: Vec<String>,
    /// Times the file's upload restarted from byte 0.
    pub restarts: u32,
    /// Bytes of the file sent beyond one copy.
    pub bytes_resent: u64,
    /// One chain per delivery after the first.
    pub chains: Vec<Chain>,
}

/// A fault rule and its counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FaultSummary {
    /// Position in the scenario.
    pub index: usize,
    /// The rule in words.
    pub description: String,
    /// Matching hits.
    pub hits: u64,
    /// Firings.
    pub fired: u64,
    /// Whether it may stay unfired.
    pub optional: bool,
}

/// One expectation's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ExpectationResult {
    /// The metric.
    pub name: String,
    /// The expression (`>= 1`).
    pub expected: String,
    /// The metric's value (per-file metrics: the number of files that satisfy it).
    pub actual: f64,
    /// Whether it held.
    pub held: bool,
    /// More words, for per-file metrics.
    pub detail: String,
}

/// The invariants every run is checked against (the summary names them by [`Invariant::name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Invariant {
    /// Every job ended before the deadline, within the run's event budget.
    Completed,
    /// Nothing inside the run panicked.
    NoPanics,
    /// Every upload acknowledged to its client was delivered.
    NoLostFiles,
    /// Every delivery's bytes equal the client's.
    Integrity,
    /// With transaction ids and dedupe: at most one effect per file.
    DedupeOneEffectPerTransaction,
    /// Every non-optional fault rule fired.
    AllFaultsFired,
    /// Every duplicate's causal chain starts at an injected fault.
    DuplicatesExplained,
}

impl Invariant {
    /// Every invariant, in the order the summary lists them.
    pub const ALL: [Invariant; 7] = [
        Invariant::Completed,
        Invariant::NoPanics,
        Invariant::NoLostFiles,
        Invariant::Integrity,
        Invariant::DedupeOneEffectPerTransaction,
        Invariant::AllFaultsFired,
        Invariant::DuplicatesExplained,
    ];

    /// The name in summaries and reports (`no_lost_files`).
    pub fn name(self) -> &'static str {
        match self {
            Invariant::Completed => "completed",
            Invariant::NoPanics => "no_panics",
            Invariant::NoLostFiles => "no_lost_files",
            Invariant::Integrity => "integrity",
            Invariant::DedupeOneEffectPerTransaction => "dedupe_one_effect_per_transaction",
            Invariant::AllFaultsFired => "all_faults_fired",
            Invariant::DuplicatesExplained => "duplicates_explained",
        }
    }
}

/// One invariant's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct InvariantResult {
    /// The invariant.
    pub name: String,
    /// Whether it held.
    pub held: bool,
    /// What was found.
    pub detail: String,
}

/// A job that ended in error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FailedJob {
    /// The upload's path.
    pub file: String,
    /// Why.
    pub error: String,
}

/// Upload completion times (first attempt to end of job), as a histogram whose bucket `b`
/// holds times in `[2^(b-1), 2^b)` seconds (bucket 0: under a second). Histograms of several
/// runs add up exactly, so sweep shards merge without keeping every time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Durations {
    /// Counts per bucket.
    pub buckets: Vec<u64>,
}

impl Durations {
    /// Buckets: up to 2^31 s.
    pub const BUCKETS: usize = 32;

    /// Adds one time.
    pub fn add(&mut self, secs: f64) {
        if self.buckets.is_empty() {
            self.buckets = vec![0; Self::BUCKETS];
        }
        let b = if secs < 1.0 {
            0
        } else {
            ((secs.log2().floor() as usize) + 1).min(Self::BUCKETS - 1)
        };
        self.buckets[b] += 1;
    }

    /// Adds another histogram.
    pub fn merge(&mut self, other: &Durations) {
        if self.buckets.is_empty() {
            self.buckets = vec![0; Self::BUCKETS];
        }
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
    }

    /// Times counted.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// The upper bound (seconds) of the bucket holding quantile `q` (0–1); 0 when empty.
    pub fn quantile(&self, q: f64) -> f64 {
        let n = self.count();
        if n == 0 {
            return 0.0;
        }
        let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
        let mut seen = 0;
        for (b, c) in self.buckets.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return (1u64 << b) as f64;
            }
        }
        (1u64 << (Self::BUCKETS - 1)) as f64
    }
}

/// The summary of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Summary {
    /// Format version.
    pub schema_version: u32,
    /// Scenario name.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// The command that replays this run.
    pub replay: String,
    /// The scenario as run, every default filled in.
    pub resolved: Scenario,
    /// The run's totals (each a field of its own in JSON).
    #[serde(flatten)]
    pub metrics: Metrics,
    /// Upload completion times.
    pub durations: Durations,
    /// Paths of the files acknowledged to their client and never delivered.
    pub lost_files: Vec<String>,
    /// Wall time of the run, milliseconds (set by the caller).
    pub wall_time_ms: f64,
    /// Whether every job ended before the deadline.
    pub completed: bool,
    /// Events recorded.
    pub events: u64,
    /// Hash of the event log (the same scenario and seed always give the same hash).
    pub event_log_hash: String,
    /// Fault rules and their counters.
    pub faults: Vec<FaultSummary>,
    /// Expectations.
    pub expectations: Vec<ExpectationResult>,
    /// Invariants.
    pub invariants: Vec<InvariantResult>,
    /// Duplicated files (at most 100 detailed).
    pub duplicates: Vec<DuplicateFile>,
    /// Failed jobs (at most 100).
    pub failed_jobs: Vec<FailedJob>,
    /// Panics inside the run (node, client, application or harness task); any fails the run.
    #[serde(default)]
    pub panics: u64,
    /// The first panic messages, each with its source location (at most 10).
    #[serde(default)]
    pub panic_messages: Vec<String>,
    /// Files uploaded by clients the run did not start (the live farm's outside clients): only
    /// their clients know whether they were acknowledged, restarted or re-sent bytes, so they
    /// count in none of those totals.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub outside_files: u64,
    /// How often: duplicates per million uploads with 95% intervals, lost and failed uploads,
    /// upload-time percentiles and the duplicates by cause ([`crate::rates`]).
    #[serde(default)]
    pub rates: Rates,
    /// Upload times as an HDR histogram (`[value_ms, count]` pairs; runs merge exactly).
    #[serde(default)]
    #[schemars(with = "Vec<(u64, u64)>")]
    pub upload_times: UploadTimes,
    /// Duplicate deliveries by cause name.
    #[serde(default)]
    pub causes: BTreeMap<String, CauseCount>,
    /// Deliveries of a file after its upload had ended and was counted (streaming runs).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub late_deliveries: u64,
    /// Expectations not checked (`metric expression`): a what-if run (`--set`) changed the
    /// settings they were written for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unchecked_expectations: Vec<String>,
    /// Whether every expectation and invariant held.
    pub ok: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What the report says of files uploaded by outside clients, if there were any.
pub fn outside_note(outside_files: u64) -> Option<String> {
    (outside_files > 0).then(|| {
        format!(
            "{outside_files} file(s) came from outside clients: deliveries and duplicates are counted from the farm's side; whether they were acknowledged, restarted or re-sent bytes only their clients know (not in those totals)"
        )
    })
}

impl Summary {
    pub(crate) fn empty(scenario: &Scenario, seed: u64, replay: String) -> Summary {
        Summary {
            schema_version: SCHEMA_VERSION,
            scenario: scenario.name.clone(),
            seed,
            replay,
            resolved: scenario.clone(),
            metrics: Metrics::default(),
            durations: Durations::default(),
            lost_files: Vec::new(),
            wall_time_ms: 0.0,
            completed: false,
            events: 0,
            event_log_hash: String::new(),
            faults: Vec::new(),
            expectations: Vec::new(),
            invariants: Vec::new(),
            duplicates: Vec::new(),
            failed_jobs: Vec::new(),
            panics: 0,
            panic_messages: Vec::new(),
            outside_files: 0,
            rates: Rates::default(),
            upload_times: UploadTimes::default(),
            causes: BTreeMap::new(),
            late_deliveries: 0,
            unchecked_expectations: crate::expect::unchecked(scenario),
            ok: false,
        }
    }

    /// What this run's rates are made from.
    pub fn counts(&self) -> RunCounts<'_> {
        RunCounts {
            metrics: &self.metrics,
            times: &self.upload_times,
            causes: &self.causes,
        }
    }

    /// An invariant's result (`None` in a summary written before the invariant existed).
    pub fn invariant(&self, i: Invariant) -> Option<&InvariantResult> {
        self.invariants.iter().find(|r| r.name == i.name())
    }

    /// The summary for a terminal.
    pub fn to_text(&self) -> String {
        let m = &self.metrics;
        let mut o = String::new();
        let p = |o: &mut String, s: String| {
            o.push_str(&s);
            o.push('\n');
        };
        p(
            &mut o,
            format!("scenario {} (seed {})", self.scenario, self.seed),
        );
        // Rates first for runs that model traffic and failure rates.
        if self.resolved.workload.is_some() || !self.resolved.failures.is_empty() {
            o.push_str(&self.rates.to_text());
        }
        p(
            &mut o,
            format!(
                "  files {}   acknowledged {}   failed {}",
                m.files, m.acknowledged, m.failed
            ),
        );
        if let Some(note) = outside_note(self.outside_files) {
            p(&mut o, format!("  ({note})"));
        }
        p(
            &mut o,
            format!(
                "  deliveries {}   duplicate deliveries {}   files duplicated {}   effects {}   duplicate effects {}",
                m.deliveries,
                m.duplicate_deliveries,
                m.files_duplicated,
                m.effects,
                m.duplicate_effects
            ),
        );
        p(
            &mut o,
            format!("  lost {}   corrupted {}", m.lost, m.corrupted),
        );
        p(
            &mut o,
            format!(
                "  restarts from byte 0 {}   Host-Id fallbacks {}   bytes re-sent {}",
                m.restarts,
                m.host_fallbacks,
                crate::text::bytes(m.bytes_resent)
            ),
        );
        let speed = if self.wall_time_ms > 0.0 {
            m.virtual_time_s * 1000.0 / self.wall_time_ms
        } else {
            0.0
        };
        p(
            &mut o,
            format!(
                "  virtual time {} ({:.2} days) in {:.1} ms of wall time ({:.1e}× real time); {} events, log hash {}",
                secs((m.virtual_time_s * 1000.0).round() as u64),
                m.virtual_time_s / 86_400.0,
                self.wall_time_ms,
                speed,
                self.events,
                self.event_log_hash
            ),
        );
        if !self.faults.is_empty() {
            p(&mut o, "\nfaults".into());
            for f in &self.faults {
                p(
                    &mut o,
                    format!(
                        "  #{} {}: fired {} time(s) ({} matching hit(s)){}",
                        f.index,
                        f.description,
                        f.fired,
                        f.hits,
                        if f.optional { ", optional" } else { "" }
                    ),
                );
            }
        }
        if !self.duplicates.is_empty() {
            p(&mut o, "\nfiles delivered more than once".into());
            p(
                &mut o,
                format!(
                    "  {:<28} {:>10} {:>8}  nodes",
                    "file", "deliveries", "effects"
                ),
            );
            for d in &self.duplicates {
                p(
                    &mut o,
                    format!(
                        "  {:<28} {:>10} {:>8}  {}",
                        d.file,
                        d.deliveries,
                        d.effects,
                        d.nodes.join(" → ")
                    ),
                );
            }
            for d in self.duplicates.iter().take(5) {
                for c in &d.chains {
                    p(
                        &mut o,
                        format!(
                            "\n  why {} was delivered a {} time:",
                            d.file,
                            ordinal(c.delivery)
                        ),
                    );
                    for s in &c.steps {
                        p(&mut o, format!("    - {}", s.text));
                    }
                    p(
                        &mut o,
                        format!(
                            "    cause: {}",
                            c.cause
                                .as_deref()
                                .unwrap_or("UNEXPLAINED: no injected fault in the chain")
                        ),
                    );
                }
            }
            if self.duplicates.len() > 5 {
                p(
                    &mut o,
                    format!(
                        "  ({} more duplicated files in --json / summary.json)",
                        self.duplicates.len() - 5
                    ),
                );
            }
        }
        if !self.failed_jobs.is_empty() {
            p(&mut o, "\nfailed jobs".into());
            for f in self.failed_jobs.iter().take(5) {
                p(&mut o, format!("  {}: {}", f.file, f.error));
            }
        }
        if self.panics > 0 {
            p(
                &mut o,
                format!(
                    "\npanics: {} (the run proves nothing about BITS; this is a bitsfarm bug or a value it should have refused)",
                    self.panics
                ),
            );
            for m in &self.panic_messages {
                p(&mut o, format!("  {m}"));
            }
        }
        let advice = crate::advice::what_to_change(self);
        if !advice.is_empty() {
            p(&mut o, "\nwhat to change".into());
            for a in &advice {
                p(
                    &mut o,
                    format!("  - {} ({})", a.text.replace('`', ""), a.about),
                );
                p(&mut o, format!("    measure it: {}", a.sweep));
            }
        }
        p(&mut o, "\nexpectations".into());
        if !self.unchecked_expectations.is_empty() {
            p(
                &mut o,
                format!(
                    "  not checked ({}): written for the shipped settings, and this run changed them with --set (--expect checks them)",
                    self.unchecked_expectations.join(", ")
                ),
            );
        } else if self.expectations.is_empty() {
            p(&mut o, "  (none)".into());
        }
        for e in &self.expectations {
            let actual = if e.detail.is_empty() {
                format!("actual {}", e.actual)
            } else {
                e.detail.clone()
            };
            p(
                &mut o,
                format!(
                    "  {:<6} {} {} ({actual})",
                    if e.held { "held" } else { "FAILED" },
                    e.name,
                    e.expected
                ),
            );
        }
        p(&mut o, "invariants".into());
        for i in &self.invariants {
            if i.held {
                p(&mut o, format!("  held   {}", i.name));
            } else {
                p(&mut o, format!("  FAILED {}: {}", i.name, i.detail));
            }
        }
        p(
            &mut o,
            format!("\nresult: {}", crate::advice::verdict(self).text),
        );
        p(&mut o, format!("replay: {}", self.replay));
        o
    }
}

/// Totals over several runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Totals {
    /// Sums of the runs' metrics (virtual time too).
    #[serde(flatten)]
    pub metrics: Metrics,
    /// Upload completion times.
    pub durations: Durations,
}

impl Totals {
    /// Adds one run.
    pub fn add(&mut self, s: &Summary) {
        self.metrics.add(&s.metrics);
        self.durations.merge(&s.durations);
    }
}

/// A run that did not pass, with how to replay it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FailedRun {
    /// Its seed.
    pub seed: u64,
    /// The replay command.
    pub replay: String,
    /// The expectations and invariants that failed.
    pub failed: Vec<String>,
}

/// How often one expectation held over several runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ExpectationTally {
    /// The metric.
    pub name: String,
    /// The expression.
    pub expected: String,
    /// Whether it held in every run.
    pub held: bool,
    /// Runs in which it held.
    pub runs_held: u64,
}

/// The summary of several runs of one scenario (seeds `seed`, `seed + 1`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Aggregate {
    /// Format version (shared with [`Summary`]).
    pub schema_version: u32,
    /// Scenario name.
    pub scenario: String,
    /// First seed.
    pub seed: u64,
    /// Runs.
    pub runs: u64,
    /// Runs in which every expectation and invariant held.
    pub passed: u64,
    /// Runs in which at least one file was delivered twice.
    pub runs_with_duplicates: u64,
    /// Sums over all runs.
    #[serde(flatten)]
    pub totals: Totals,
    /// Wall time of all runs, milliseconds.
    pub wall_time_ms: f64,
    /// Per expectation: held in every run?
    pub expectations: Vec<ExpectationTally>,
    /// Runs that did not pass (at most 100).
    pub failed_runs: Vec<FailedRun>,
    /// The runs' rates pooled ([`Rates::pooled`]: intervals that carry the spread between
    /// runs).
    #[serde(default)]
    pub rates: Rates,
    /// Expectations not checked (a what-if run: see [`Summary::unchecked_expectations`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unchecked_expectations: Vec<String>,
    /// Whether every run passed.
    pub ok: bool,
}

impl Aggregate {
    /// Aggregates runs (in seed order).
    pub fn of(runs: &[Summary], wall_time_ms: f64) -> Aggregate {
        let first = runs.first().expect("at least one run");
        let mut totals = Totals::default();
        let mut failed_runs = Vec::new();
        let mut tallies: Vec<ExpectationTally> = first
            .expectations
            .iter()
            .map(|e| ExpectationTally {
                name: e.name.clone(),
                expected: e.expected.clone(),
                held: true,
                runs_held: 0,
            })
            .collect();
        for s in runs {
            totals.add(s);
            for (t, e) in tallies.iter_mut().zip(&s.expectations) {
                t.runs_held += u64::from(e.held);
                t.held &= e.held;
            }
            if !s.ok && failed_runs.len() < 100 {
                let mut failed: Vec<String> = s
                    .expectations
                    .iter()
                    .filter(|e| !e.held)
                    .map(|e| format!("{} {} (actual {})", e.name, e.expected, e.actual))
                    .collect();
                failed.extend(
                    s.invariants
                        .iter()
                        .filter(|i| !i.held)
                        .map(|i| format!("invariant {}: {}", i.name, i.detail)),
                );
                failed_runs.push(FailedRun {
                    seed: s.seed,
                    replay: s.replay.clone(),
                    failed,
                });
            }
        }
        let passed = runs.iter().filter(|s| s.ok).count() as u64;
        Aggregate {
            schema_version: SCHEMA_VERSION,
            scenario: first.scenario.clone(),
            seed: first.seed,
            runs: runs.len() as u64,
            passed,
            runs_with_duplicates: runs
                .iter()
                .filter(|s| s.metrics.duplicate_deliveries > 0)
                .count() as u64,
            totals,
            wall_time_ms,
            expectations: tallies,
            failed_runs,
            rates: Rates::pooled(&runs.iter().map(Summary::counts).collect::<Vec<_>>()),
            unchecked_expectations: first.unchecked_expectations.clone(),
            ok: passed == runs.len() as u64,
        }
    }

    /// The aggregate for a terminal.
    pub fn to_text(&self) -> String {
        let t = &self.totals;
        let per_k = |n: u64| {
            if t.metrics.files == 0 {
                0.0
            } else {
                n as f64 * 1000.0 / t.metrics.files as f64
            }
        };
        let per_s = self.runs as f64 * 1000.0 / self.wall_time_ms.max(1e-9);
        let mut o = format!(
            "scenario {}: {} runs (seeds {}..{}) in {:.0} ms ({})\n",
            self.scenario,
            self.runs,
            self.seed,
            self.seed + self.runs - 1,
            self.wall_time_ms,
            if per_s >= 10.0 {
                format!("{per_s:.0} runs/s")
            } else {
                format!("{:.2} s per run", 1.0 / per_s.max(1e-9))
            }
        );
        o += &format!(
            "  passed {} of {}; runs with a duplicate delivery {}\n",
            self.passed, self.runs, self.runs_with_duplicates
        );
        o += &format!(
            "  files {}   acknowledged {}   failed {}   deliveries {}   duplicate deliveries {} ({:.1} per 1,000 uploads)\n",
            t.metrics.files,
            t.metrics.acknowledged,
            t.metrics.failed,
            t.metrics.deliveries,
            t.metrics.duplicate_deliveries,
            per_k(t.metrics.duplicate_deliveries)
        );
        o += &format!(
            "  effects {}   lost {}   corrupted {}   restarts {}   Host-Id fallbacks {}   bytes re-sent {}\n",
            t.metrics.effects,
            t.metrics.lost,
            t.metrics.corrupted,
            t.metrics.restarts,
            t.metrics.host_fallbacks,
            t.metrics.bytes_resent
        );
        o += &self.rates.to_text();
        o += "expectations\n";
        if !self.unchecked_expectations.is_empty() {
            o += &format!(
                "  not checked ({}): written for the shipped settings, and these runs changed them with --set (--expect checks them)\n",
                self.unchecked_expectations.join(", ")
            );
        }
        for e in &self.expectations {
            o += &format!(
                "  {:<6} {} {} (held in {} of {} runs)\n",
                if e.held { "held" } else { "FAILED" },
                e.name,
                e.expected,
                e.runs_held,
                self.runs
            );
        }
        for f in self.failed_runs.iter().take(10) {
            o += &format!(
                "  failed seed {}: {}\n    replay: {}\n",
                f.seed,
                f.failed.join("; "),
                f.replay
            );
        }
        o += &format!("result: {}\n", if self.ok { "PASS" } else { "FAIL" });
        o
    }
}
