//! How often: duplicate deliveries and effects per million uploads with 95% intervals, lost
//! and failed uploads, restarts, bytes re-sent, upload-time percentiles from an HDR histogram,
//! and the duplicates broken down by cause. `summary.json` carries this as `rates`.
//!
//! **Intervals.** For one run, a 95% Wilson score interval on the share of uploads (each
//! upload counted as one trial; a rate above one per upload is capped there). Uploads of one
//! run are not independent (one crash duplicates every file it caught in flight), so over
//! several runs (`--runs N`) the interval is the wider of the pooled Wilson interval and a
//! percentile bootstrap over runs (runs drawn with replacement, 2,000 times, from a fixed
//! seed), which carries the clustering.

use std::collections::BTreeMap;

use rand::{RngExt as _, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::metrics::Metrics;

/// z for a two-sided 95% interval.
const Z95: f64 = 1.959_963_984_540_054;
/// Bootstrap resamples over runs.
const RESAMPLES: usize = 2000;

/// A rate with its 95% interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Interval {
    /// The estimate.
    pub value: f64,
    /// Lower bound.
    pub low: f64,
    /// Upper bound.
    pub high: f64,
}

impl Interval {
    /// Whether two intervals overlap (their rates cannot be told apart at 95%).
    pub fn overlaps(&self, other: &Interval) -> bool {
        self.low <= other.high && other.low <= self.high
    }

    /// `12.3 [8.1, 17.9]` with `digits` decimals.
    pub fn show(&self, digits: usize) -> String {
        format!(
            "{:.d$} [{:.d$}, {:.d$}]",
            self.value,
            self.low,
            self.high,
            d = digits
        )
    }
}

/// The 95% Wilson score interval of `x` successes in `n` trials, as shares (0–1).
pub fn wilson(x: u64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let n_f = n as f64;
    let p = x.min(n) as f64 / n_f;
    let z2 = Z95 * Z95;
    let denom = 1.0 + z2 / n_f;
    let centre = (p + z2 / (2.0 * n_f)) / denom;
    let half = Z95 * (p * (1.0 - p) / n_f + z2 / (4.0 * n_f * n_f)).sqrt() / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

fn per_million(x: u64, n: u64) -> Interval {
    let (lo, hi) = wilson(x, n);
    Interval {
        value: if n == 0 {
            0.0
        } else {
            x as f64 * 1e6 / n as f64
        },
        low: lo * 1e6,
        high: hi * 1e6,
    }
}

/// Upload times (first attempt to the job's end), in milliseconds, as an HDR histogram (3
/// significant digits); in JSON the non-empty buckets as `[value_ms, count]` pairs, so runs and
/// sweep shards merge exactly.
///
/// A run has a few uploads, and a histogram of millisecond times up to minutes is an array of
/// ~11,000 buckets, allocated, copied and walked whole by every merge and quantile: up to
/// [`FEW`] times are kept as they are, and every answer (quantiles, buckets) is computed from
/// them with the histogram's own bucket arithmetic, so it is the histogram's answer.
#[derive(Debug, Clone, Default)]
pub struct UploadTimes {
    /// The times in ascending order, while there are at most [`FEW`] (each below
    /// [`FEW_MAX_MS`]) and no histogram.
    few: Vec<u64>,
    /// Every time, once there were more.
    hist: Option<hdrhistogram::Histogram<u64>>,
}

/// Most times an [`UploadTimes`] keeps as they are.
const FEW: usize = 64;
/// Times kept as they are are below this (about 35 years): a histogram could cap one above.
const FEW_MAX_MS: u64 = 1 << 40;

fn new_histogram() -> hdrhistogram::Histogram<u64> {
    hdrhistogram::Histogram::new(3).expect("3 significant digits is valid")
}

fn record(h: &mut hdrhistogram::Histogram<u64>, ms: u64, n: u64) {
    // The histogram grows to fit; past its largest trackable value a time is capped.
    if h.record_n(ms, n).is_err() {
        h.saturating_record_n(ms, n);
    }
}

thread_local! {
    /// A histogram of the shape [`UploadTimes`] uses, for its bucket arithmetic only (which
    /// depends on the shape, not on the counts or the range recorded so far).
    static SHAPE: hdrhistogram::Histogram<u64> = new_histogram();
}

impl PartialEq for UploadTimes {
    fn eq(&self, other: &Self) -> bool {
        self.pairs() == other.pairs()
    }
}

impl UploadTimes {
    /// Adds one time.
    pub fn add_ms(&mut self, ms: u64) {
        match &mut self.hist {
            Some(h) => record(h, ms, 1),
            None if ms < FEW_MAX_MS && self.few.len() < FEW => {
                let at = self.few.partition_point(|&t| t <= ms);
                self.few.insert(at, ms);
            }
            None => record(self.histogram_mut(), ms, 1),
        }
    }

    /// The histogram, made from the times kept so far if there is none yet.
    fn histogram_mut(&mut self) -> &mut hdrhistogram::Histogram<u64> {
        self.hist.get_or_insert_with(|| {
            let mut h = new_histogram();
            for ms in self.few.drain(..) {
                record(&mut h, ms, 1);
            }
            h
        })
    }

    /// Adds another histogram.
    pub fn merge(&mut self, other: &UploadTimes) {
        for &ms in &other.few {
            self.add_ms(ms);
        }
        if let Some(o) = &other.hist {
            // Auto-resizing histograms cannot fail to add.
            let _ = self.histogram_mut().add(o);
        }
    }

    /// Times counted.
    pub fn count(&self) -> u64 {
        self.few.len() as u64 + self.hist.as_ref().map_or(0, |h| h.len())
    }

    /// Quantile `q` (0–1), seconds; 0 when empty.
    pub fn quantile_s(&self, q: f64) -> f64 {
        let ms = match &self.hist {
            Some(h) if !h.is_empty() => h.value_at_quantile(q),
            Some(_) => return 0.0,
            None if self.few.is_empty() => return 0.0,
            None => {
                // As `Histogram::value_at_quantile`: the bucket where the count reaches
                // ceil(q × total) (at least 1), by its highest (q = 0: lowest) equivalent.
                let few = &self.few;
                let q = q.min(1.0);
                let at = ((q * few.len() as f64).ceil() as usize).clamp(1, few.len());
                let v = few[at - 1];
                SHAPE.with(|s| {
                    if q == 0.0 {
                        s.lowest_equivalent(v)
                    } else {
                        s.highest_equivalent(v)
                    }
                })
            }
        };
        ms as f64 / 1000.0
    }

    fn pairs(&self) -> Vec<(u64, u64)> {
        match &self.hist {
            Some(h) => h
                .iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect(),
            // As `iter_recorded`: each bucket holding times, by its highest equivalent.
            None => SHAPE.with(|s| {
                let mut pairs: Vec<(u64, u64)> = Vec::new();
                for &v in &self.few {
                    let top = s.highest_equivalent(v);
                    match pairs.last_mut() {
                        Some((last, n)) if *last == top => *n += 1,
                        _ => pairs.push((top, 1)),
                    }
                }
                pairs
            }),
        }
    }
}

impl Serialize for UploadTimes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.pairs().serialize(s)
    }
}

impl<'de> Deserialize<'de> for UploadTimes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let pairs: Vec<(u64, u64)> = Vec::deserialize(d)?;
        let mut t = UploadTimes::default();
        if !pairs.is_empty() {
            let h = t.histogram_mut();
            for (v, c) in pairs {
                record(h, v, c);
            }
        }
        Ok(t)
    }
}

/// Upload-time percentiles, seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
}

impl Percentiles {
    /// The percentiles of `t`.
    pub fn of(t: &UploadTimes) -> Percentiles {
        Percentiles {
            p50: t.quantile_s(0.5),
            p90: t.quantile_s(0.9),
            p99: t.quantile_s(0.99),
            p999: t.quantile_s(0.999),
        }
    }
}

/// Why a file was delivered again: the chain of a duplicate delivery, classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cause {
    /// The final Ack was lost on the wire (a reset, a dropped answer); the client's retry
    /// reached another node, which did not know the session: a new upload, delivered again.
    LostAckOtherNode,
    /// The final Ack was lost; the retry reached the same node, which forwarded again.
    LostAckSameNode,
    /// The node died after forwarding, before the client got the Ack; the retry went to
    /// another node.
    NodeDownOtherNode,
    /// The node died after forwarding; it came back and forwarded again.
    NodeDownSameNode,
    /// The client's Host-Id fallback timer expired while its node stayed down: it went back
    /// to the shared address and uploaded again elsewhere.
    HostIdFallback,
    /// The application answered after the node's deadline (or not at all): the node told
    /// the client to retry, and forwarded again.
    AppLateAnswer,
    /// The application died after its effect, before answering.
    AppCrashAfterEffect,
    /// The node and the application were partitioned after the application took the file.
    Partition,
    /// An IIS application-pool recycle cut the request in flight.
    PoolRecycle,
    /// Delivered after its upload had ended and been counted (a late answer).
    Late,
    /// None of the above.
    Other,
}

impl Cause {
    /// Every cause, in report order.
    pub const ALL: [Cause; 11] = [
        Cause::LostAckOtherNode,
        Cause::LostAckSameNode,
        Cause::NodeDownOtherNode,
        Cause::NodeDownSameNode,
        Cause::HostIdFallback,
        Cause::AppLateAnswer,
        Cause::AppCrashAfterEffect,
        Cause::Partition,
        Cause::PoolRecycle,
        Cause::Late,
        Cause::Other,
    ];

    /// The name in `summary.json`.
    pub fn name(self) -> &'static str {
        match self {
            Cause::LostAckOtherNode => "lost-ack-other-node",
            Cause::LostAckSameNode => "lost-ack-same-node",
            Cause::NodeDownOtherNode => "node-down-other-node",
            Cause::NodeDownSameNode => "node-down-same-node",
            Cause::HostIdFallback => "host-id-fallback",
            Cause::AppLateAnswer => "app-late-answer",
            Cause::AppCrashAfterEffect => "app-crash-after-effect",
            Cause::Partition => "partition",
            Cause::PoolRecycle => "pool-recycle",
            Cause::Late => "late",
            Cause::Other => "other",
        }
    }

    /// The cause of a name.
    pub fn parse(name: &str) -> Option<Cause> {
        Cause::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The cause in words.
    pub fn words(self) -> &'static str {
        match self {
            Cause::LostAckOtherNode => {
                "the final Ack was lost on the wire; the retry reached another node, which did not know the session, and the file was uploaded and delivered again"
            }
            Cause::LostAckSameNode => {
                "the final Ack was lost on the wire; the retry reached the same node, which forwarded the file again"
            }
            Cause::NodeDownOtherNode => {
                "the node died after forwarding, before the client got the Ack; the retry went to another node"
            }
            Cause::NodeDownSameNode => {
                "the node died after forwarding, before the client got the Ack; it came back and forwarded the file again"
            }
            Cause::HostIdFallback => {
                "the client's Host-Id fallback timer expired while its node stayed down; it uploaded again through the shared address"
            }
            Cause::AppLateAnswer => {
                "the application answered after the node's deadline; the node had the client retry and forwarded again"
            }
            Cause::AppCrashAfterEffect => {
                "the application died after its effect, before answering; the retry was forwarded again"
            }
            Cause::Partition => {
                "the node lost the application's answer to a partition; the retry was forwarded again"
            }
            Cause::PoolRecycle => {
                "an application-pool recycle cut the request in flight; the retry was forwarded again"
            }
            Cause::Late => "delivered after the upload had ended (a late answer)",
            Cause::Other => "none of the named causes",
        }
    }
}

/// Duplicates of one cause.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct CauseCount {
    /// Duplicate deliveries.
    pub deliveries: u64,
    /// Of which had an effect.
    pub effects: u64,
}

/// One cause's part of the duplicates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CauseRate {
    /// The cause's name ([`Cause::name`]).
    pub cause: String,
    /// In words.
    pub words: String,
    /// Duplicate deliveries of this cause.
    pub count: u64,
    /// Its share of all duplicate deliveries (0–1).
    pub share: f64,
    /// Duplicate deliveries of this cause per million uploads (95% interval).
    pub per_million: Interval,
    /// Duplicate effects of this cause.
    pub effects: u64,
}

/// The rates of a run, or of several runs pooled.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Rates {
    /// Uploads counted (files whose job ended, plus those still running at the end).
    pub uploads: u64,
    /// Runs pooled.
    pub runs: u64,
    /// How the intervals were made.
    pub method: String,
    /// Duplicate deliveries per million uploads.
    pub duplicate_deliveries_per_million: Interval,
    /// Duplicate effects (the application acted twice) per million uploads.
    pub duplicate_effects_per_million: Interval,
    /// Files delivered more than once, per million uploads.
    pub files_duplicated_per_million: Interval,
    /// Uploads acknowledged but never delivered, per million.
    pub lost_per_million: Interval,
    /// Uploads whose job ended in error, per million.
    pub failed_per_million: Interval,
    /// Restarts from byte 0 per million uploads.
    pub restarts_per_million: f64,
    /// Bytes re-sent per upload.
    pub bytes_resent_per_upload: f64,
    /// Upload times, seconds.
    pub upload_time_s: Percentiles,
    /// Duplicates by cause, most frequent first.
    pub causes: Vec<CauseRate>,
}

/// What the rates of one run are made from.
pub struct RunCounts<'a> {
    /// The run's totals.
    pub metrics: &'a Metrics,
    /// Its upload times.
    pub times: &'a UploadTimes,
    /// Its duplicates by cause name.
    pub causes: &'a BTreeMap<String, CauseCount>,
}

impl Rates {
    /// The rates of one run.
    pub fn of_run(r: &RunCounts<'_>) -> Rates {
        Rates::pooled(std::slice::from_ref(r))
    }

    /// The rates of several runs pooled (one run: Wilson intervals).
    pub fn pooled(runs: &[RunCounts<'_>]) -> Rates {
        let mut m = Metrics::default();
        // One run's times are its own histogram; several runs' are merged into a new one
        // (a merge walks the whole bucket array, and a fresh histogram allocates one).
        let merged;
        let times = match runs {
            [one] => one.times,
            _ => {
                let mut all = UploadTimes::default();
                for r in runs {
                    all.merge(r.times);
                }
                merged = all;
                &merged
            }
        };
        let mut causes: BTreeMap<String, CauseCount> = BTreeMap::new();
        for r in runs {
            m.add(r.metrics);
            for (k, c) in r.causes {
                let e = causes.entry(k.clone()).or_default();
                e.deliveries += c.deliveries;
                e.effects += c.effects;
            }
        }
        let n = m.files;
        let shown: Vec<(&String, &CauseCount)> =
            causes.iter().filter(|(_, c)| c.deliveries > 0).collect();
        // Each run's uploads, then the counts the intervals are drawn from: five metrics, then
        // each cause shown.
        let width = 6 + shown.len();
        let table: Vec<u64> = runs
            .iter()
            .flat_map(|r| {
                let m = r.metrics;
                [
                    m.files,
                    m.duplicate_deliveries,
                    m.duplicate_effects,
                    m.files_duplicated,
                    m.lost,
                    m.failed,
                ]
                .into_iter()
                .chain(
                    shown
                        .iter()
                        .map(|(name, _)| r.causes.get(*name).map_or(0, |c| c.deliveries)),
                )
            })
            .collect();
        let bounds = (runs.len() >= 2).then(|| bootstrap(&table, width));
        let boot = |i: usize, wilson: Interval| -> Interval {
            let Some(bounds) = &bounds else {
                return wilson;
            };
            let (lo, hi) = bounds[i];
            Interval {
                value: wilson.value,
                low: wilson.low.min(lo),
                high: wilson.high.max(hi),
            }
        };
        let dup = boot(0, per_million(m.duplicate_deliveries, n));
        let eff = boot(1, per_million(m.duplicate_effects, n));
        let files_dup = boot(2, per_million(m.files_duplicated, n));
        let lost = boot(3, per_million(m.lost, n));
        let failed = boot(4, per_million(m.failed, n));
        let mut cause_rates: Vec<CauseRate> = shown
            .iter()
            .enumerate()
            .map(|(i, (k, c))| CauseRate {
                cause: (*k).clone(),
                words: Cause::parse(k).map_or("", Cause::words).to_owned(),
                count: c.deliveries,
                share: c.deliveries as f64 / m.duplicate_deliveries.max(1) as f64,
                per_million: boot(5 + i, per_million(c.deliveries, n)),
                effects: c.effects,
            })
            .collect();
        cause_rates.sort_by(|a, b| b.count.cmp(&a.count).then(a.cause.cmp(&b.cause)));
        Rates {
            uploads: n,
            runs: runs.len() as u64,
            method: if runs.len() < 2 {
                "95% Wilson score interval over uploads".into()
            } else {
                format!(
                    "95%: the wider of the pooled Wilson interval and a bootstrap over the {} runs",
                    runs.len()
                )
            },
            duplicate_deliveries_per_million: dup,
            duplicate_effects_per_million: eff,
            files_duplicated_per_million: files_dup,
            lost_per_million: lost,
            failed_per_million: failed,
            restarts_per_million: if n == 0 {
                0.0
            } else {
                m.restarts as f64 * 1e6 / n as f64
            },
            bytes_resent_per_upload: if n == 0 {
                0.0
            } else {
                m.bytes_resent as f64 / n as f64
            },
            upload_time_s: Percentiles::of(times),
            causes: cause_rates,
        }
    }

    /// The rates in a few lines for a terminal.
    pub fn to_text(&self) -> String {
        let mut o = format!(
            "rates over {} uploads{} (95% intervals)\n",
            self.uploads,
            if self.runs > 1 {
                format!(" in {} runs", self.runs)
            } else {
                String::new()
            }
        );
        o += &format!(
            "  duplicate deliveries per million uploads: {}\n",
            self.duplicate_deliveries_per_million.show(1)
        );
        o += &format!(
            "  duplicate effects per million uploads:    {}\n",
            self.duplicate_effects_per_million.show(1)
        );
        o += &format!(
            "  lost {} · failed {} per million; restarts {:.1} per million; {} re-sent per upload\n",
            self.lost_per_million.show(1),
            self.failed_per_million.show(1),
            self.restarts_per_million,
            crate::text::bytes(self.bytes_resent_per_upload.round() as u64)
        );
        o += &format!(
            "  upload time p50 · p90 · p99 · p99.9: {}\n",
            self.upload_times_text(" · ")
        );
        if !self.causes.is_empty() {
            o += "  duplicates by cause:\n";
            for c in &self.causes {
                o += &format!(
                    "    {:>5.1}%  {:<24} {} per million ({} duplicate(s), {} with effect)\n",
                    c.share * 100.0,
                    c.cause,
                    c.per_million.show(1),
                    c.count,
                    c.effects
                );
            }
        }
        o
    }
}

impl Rates {
    /// The upload-time percentiles p50, p90, p99 and p99.9 in human units, `sep` between.
    fn upload_times_text(&self, sep: &str) -> String {
        let t = &self.upload_time_s;
        [t.p50, t.p90, t.p99, t.p999]
            .map(crate::text::duration)
            .join(sep)
    }

    /// The rates as rows of (what, value) for report tables, most telling first.
    pub fn rows(&self) -> Vec<(String, String)> {
        vec![
            (
                "duplicate deliveries per million uploads".into(),
                self.duplicate_deliveries_per_million.show(1),
            ),
            (
                "duplicate effects per million uploads (the application acted twice)".into(),
                self.duplicate_effects_per_million.show(1),
            ),
            (
                "files delivered more than once, per million".into(),
                self.files_duplicated_per_million.show(1),
            ),
            (
                "lost uploads per million".into(),
                self.lost_per_million.show(1),
            ),
            (
                "failed uploads per million".into(),
                self.failed_per_million.show(1),
            ),
            (
                "restarts from byte 0 per million uploads".into(),
                format!("{:.1}", self.restarts_per_million),
            ),
            (
                "bytes re-sent per upload".into(),
                crate::text::bytes(self.bytes_resent_per_upload.round() as u64),
            ),
            (
                "upload time p50 / p90 / p99 / p99.9".into(),
                self.upload_times_text(" / "),
            ),
        ]
    }
}

/// 2.5th and 97.5th percentiles, per million uploads, of a bootstrap over runs of the count
/// `pick` gives per run.
/// 95% percentile-bootstrap bounds, per million uploads, of each count in `table`'s rows (one
/// row of `width` per run: its uploads, then its counts): runs resampled with replacement
/// [`RESAMPLES`] times. Every count is drawn from the same resamples, one stream of draws with a
/// fixed seed (as if each had its own stream with that seed).
fn bootstrap(table: &[u64], width: usize) -> Vec<(f64, f64)> {
    let k = width - 1;
    let runs = table.len() / width;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x5eed_b007);
    let mut rates: Vec<Vec<f64>> = vec![Vec::with_capacity(RESAMPLES); k];
    let mut sums = vec![0u64; k + 1];
    for _ in 0..RESAMPLES {
        sums.fill(0);
        for _ in 0..runs {
            let i = rng.random_range(0..runs);
            for (s, c) in sums.iter_mut().zip(&table[i * width..(i + 1) * width]) {
                *s += c;
            }
        }
        let n = sums[0];
        for (r, x) in rates.iter_mut().zip(&sums[1..]) {
            r.push(if n == 0 {
                0.0
            } else {
                *x as f64 * 1e6 / n as f64
            });
        }
    }
    rates
        .into_iter()
        .map(|mut r| {
            r.sort_by(f64::total_cmp);
            let at = |q: f64| r[((q * RESAMPLES as f64) as usize).min(RESAMPLES - 1)];
            (at(0.025), at(0.975))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_stream_of_resamples_gives_each_count_the_bounds_of_its_own_stream() {
        // The bootstrap as it was, one count at a time, each with its own seeded stream.
        fn alone(counts: &[(u64, u64)]) -> (f64, f64) {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x5eed_b007);
            let mut rates: Vec<f64> = (0..RESAMPLES)
                .map(|_| {
                    let (mut x, mut n) = (0u64, 0u64);
                    for _ in 0..counts.len() {
                        let (cx, cn) = counts[rng.random_range(0..counts.len())];
                        x += cx;
                        n += cn;
                    }
                    if n == 0 {
                        0.0
                    } else {
                        x as f64 * 1e6 / n as f64
                    }
                })
                .collect();
            rates.sort_by(f64::total_cmp);
            let at = |q: f64| rates[((q * RESAMPLES as f64) as usize).min(RESAMPLES - 1)];
            (at(0.025), at(0.975))
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let (runs, width) = (37, 4);
        let table: Vec<u64> = (0..runs * width)
            .map(|i| {
                if i % width == 0 {
                    rng.random_range(50..150)
                } else {
                    rng.random_range(0..9)
                }
            })
            .collect();
        let together = bootstrap(&table, width);
        assert_eq!(together.len(), width - 1);
        for (col, got) in together.iter().enumerate() {
            let counts: Vec<(u64, u64)> = (0..runs)
                .map(|r| (table[r * width + 1 + col], table[r * width]))
                .collect();
            assert_eq!(*got, alone(&counts), "count {col}");
            assert!(
                got.0 < got.1,
                "runs that disagree give an interval: {got:?}"
            );
        }
    }

    #[test]
    fn wilson_matches_published_values() {
        // Wilson (1927) / Newcombe (1998), example: 81 of 263 -> [0.2553, 0.3662].
        let (lo, hi) = wilson(81, 263);
        assert!(
            (lo - 0.2553).abs() < 5e-4 && (hi - 0.3662).abs() < 5e-4,
            "{lo} {hi}"
        );
        // No successes still gives an upper bound (rule of three, roughly 3.7/n for z = 1.96).
        let (lo, hi) = wilson(0, 10_000);
        assert_eq!(lo, 0.0);
        assert!(hi > 3.0e-4 && hi < 4.0e-4, "{hi}");
    }

    #[test]
    fn the_bootstrap_widens_intervals_when_runs_disagree() {
        let causes = BTreeMap::new();
        let times = UploadTimes::default();
        let run = |dups: u64| Metrics {
            files: 10_000,
            duplicate_deliveries: dups,
            ..Metrics::default()
        };
        let even: Vec<Metrics> = (0..10).map(|_| run(10)).collect();
        let clustered: Vec<Metrics> = (0..10).map(|i| run(if i == 0 { 100 } else { 0 })).collect();
        let rates = |ms: &[Metrics]| {
            let counts: Vec<RunCounts<'_>> = ms
                .iter()
                .map(|m| RunCounts {
                    metrics: m,
                    times: &times,
                    causes: &causes,
                })
                .collect();
            Rates::pooled(&counts).duplicate_deliveries_per_million
        };
        let (e, c) = (rates(&even), rates(&clustered));
        assert_eq!((e.value, c.value), (1000.0, 1000.0));
        assert!(c.high - c.low > 2.0 * (e.high - e.low), "{e:?} {c:?}");
    }

    #[test]
    fn upload_times_round_trip_through_json_and_merge() {
        let mut a = UploadTimes::default();
        for ms in [10, 200, 3_000, 45_000, 600_000] {
            a.add_ms(ms);
        }
        let back: UploadTimes = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(back, a);
        let mut b = back.clone();
        b.merge(&a);
        assert_eq!(b.count(), 10);
        assert!(
            (a.quantile_s(0.5) - 3.0).abs() < 0.01,
            "{}",
            a.quantile_s(0.5)
        );
    }

    /// What an [`UploadTimes`] answers must be what one histogram of all its times answers,
    /// whether it kept them as they are, in a histogram, or merged from both kinds.
    fn same_as_one_histogram(t: &UploadTimes, all: &[u64]) {
        let mut h = new_histogram();
        for &ms in all {
            record(&mut h, ms, 1);
        }
        let pairs: Vec<(u64, u64)> = h
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect();
        assert_eq!(t.pairs(), pairs, "{all:?}");
        assert_eq!(t.count(), all.len() as u64);
        for q in [0.0, 0.001, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0] {
            let want = if h.is_empty() {
                0.0
            } else {
                h.value_at_quantile(q) as f64 / 1000.0
            };
            assert_eq!(
                t.quantile_s(q).to_bits(),
                want.to_bits(),
                "q {q} of {all:?}"
            );
        }
    }

    #[test]
    fn a_few_times_kept_as_they_are_answer_as_the_histogram_would() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for round in 0..300 {
            // From none to past FEW, over the scales of real runs (ms to days), with repeats
            // and bucket neighbours.
            let n = rng.random_range(0..=FEW + 8);
            let scale = 10u64.pow(rng.random_range(0..=9));
            let times: Vec<u64> = (0..n).map(|_| rng.random_range(0..=scale)).collect();
            let mut t = UploadTimes::default();
            for &ms in &times {
                t.add_ms(ms);
            }
            assert_eq!(t.hist.is_some(), n > FEW, "round {round}");
            same_as_one_histogram(&t, &times);
            // Merged: few into few, few into a histogram, a histogram into few.
            let more: Vec<u64> = (0..rng.random_range(0..=FEW))
                .map(|_| rng.random_range(0..=scale))
                .collect();
            let mut u = UploadTimes::default();
            for &ms in &more {
                u.add_ms(ms);
            }
            let both: Vec<u64> = times.iter().chain(&more).copied().collect();
            let mut a = t.clone();
            a.merge(&u);
            same_as_one_histogram(&a, &both);
            let mut b = u.clone();
            b.merge(&t);
            same_as_one_histogram(&b, &both);
            let back: UploadTimes =
                serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
            assert_eq!(back, a);
        }
    }
}
