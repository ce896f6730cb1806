//! The timeline of a run: a lane per client, node, the balancer and the backend, with fault
//! bands, on a time axis that collapses idle stretches (a simulated day is mostly waiting).

use std::collections::{BTreeMap, BTreeSet};

use probe::{Event, JobState};
use scenario::{log::Record, summary::Summary};

/// What a mark stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MarkKind {
    /// A connection through the shared address (colour by node).
    Routed(usize),
    /// A session was created.
    Session,
    /// A node forwarded a file to the application.
    Forward,
    /// A node did not know a session.
    NotFound,
    /// A cached final Ack was replayed.
    Replay,
    /// A delivery (`true`: of a duplicated file).
    Delivery(bool),
    /// A job was acknowledged.
    Done,
    /// A job failed.
    Failed,
    /// An upload restarted from byte 0.
    Restart,
    /// A Host-Id fallback.
    Fallback,
    /// A fault fired.
    Fault,
}

/// A point on a lane; marks of one kind in one pixel column are merged.
#[derive(Debug, Clone)]
pub struct Mark {
    /// Time of the first merged event.
    pub t_ms: u64,
    /// Kind.
    pub kind: MarkKind,
    /// Events merged into this mark.
    pub count: u64,
    /// Tooltip of the first event.
    pub title: String,
}

/// What a span stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    /// The host was down.
    Down,
    /// The job was in transient error.
    TransientError,
    /// The party was partitioned from another.
    Partition,
    /// The job was running.
    Active,
}

/// An interval on a lane.
#[derive(Debug, Clone)]
pub struct Span {
    /// Start.
    pub from_ms: u64,
    /// End.
    pub to_ms: u64,
    /// Kind.
    pub kind: SpanKind,
    /// Tooltip.
    pub title: String,
}

/// One row of the timeline.
#[derive(Debug, Clone)]
pub struct Lane {
    /// `farm`, `node-2`, `backend`, `c07`.
    pub name: String,
    /// Whether the lane belongs to a duplicated file's story.
    pub highlight: bool,
    /// Intervals.
    pub spans: Vec<Span>,
    /// Points.
    pub marks: Vec<Mark>,
}

/// A vertical line at a fault.
#[derive(Debug, Clone)]
pub struct FaultLine {
    /// When.
    pub t_ms: u64,
    /// Rule number.
    pub rule: usize,
    /// What it did.
    pub title: String,
}

/// A run's timeline.
#[derive(Debug, Clone)]
pub struct Timeline {
    /// Lanes, top to bottom.
    pub lanes: Vec<Lane>,
    /// Fault lines.
    pub faults: Vec<FaultLine>,
    /// The time axis.
    pub axis: Axis,
    /// Client lanes left out (more than the report shows), if any.
    pub hidden_clients: usize,
}

/// Most client lanes a report shows; clients with trouble come first.
pub const MAX_CLIENT_LANES: usize = 300;

/// Pixel width of the time area.
pub const WIDTH: f64 = 1100.0;

#[derive(Default)]
struct LaneBuild {
    spans: Vec<Span>,
    open: BTreeMap<u8, (u64, String)>,
    marks: Vec<(u64, MarkKind, String)>,
    trouble: bool,
}

/// Builds a timeline from a run's events, one at a time.
pub struct Builder {
    nodes: Vec<String>,
    duplicated: BTreeSet<String>,
    lanes: BTreeMap<String, LaneBuild>,
    faults: Vec<FaultLine>,
    times: Vec<u64>,
    end_ms: u64,
}

fn client_of(job: &str) -> String {
    job.split("-f").next().unwrap_or(job).to_owned()
}

impl Builder {
    /// A builder for the run `summary` describes.
    pub fn new(summary: &Summary) -> Builder {
        let nodes: Vec<String> = (1..=summary.resolved.farm.nodes)
            .map(|i| format!("node-{i}"))
            .collect();
        let mut lanes = BTreeMap::new();
        for n in nodes
            .iter()
            .chain(["farm".to_owned(), "backend".to_owned()].iter())
        {
            lanes.insert(n.clone(), LaneBuild::default());
        }
        Builder {
            nodes,
            duplicated: summary.duplicates.iter().map(|d| d.file.clone()).collect(),
            lanes,
            faults: Vec::new(),
            times: Vec::new(),
            end_ms: (summary.metrics.virtual_time_s * 1000.0) as u64,
        }
    }

    fn lane(&mut self, name: &str) -> &mut LaneBuild {
        self.lanes.entry(name.to_owned()).or_default()
    }

    fn mark(&mut self, lane: &str, t: u64, kind: MarkKind, title: String) {
        self.times.push(t);
        self.lane(lane).marks.push((t, kind, title));
    }

    fn open(&mut self, lane: &str, key: u8, t: u64, title: String) {
        self.times.push(t);
        self.lane(lane).open.entry(key).or_insert((t, title));
    }

    fn close(&mut self, lane: &str, key: u8, t: u64, kind: SpanKind) {
        self.times.push(t);
        let l = self.lane(lane);
        if let Some((from, title)) = l.open.remove(&key) {
            l.spans.push(Span {
                from_ms: from,
                to_ms: t,
                kind,
                title,
            });
        }
    }

    /// Takes one event into account.
    pub fn add(&mut self, rec: &Record) {
        const DOWN: u8 = 0;
        const TRANSIENT: u8 = 1;
        const PARTITION: u8 = 2;
        const ACTIVE: u8 = 3;
        let t = rec.t_ms;
        self.end_ms = self.end_ms.max(t);
        match &rec.event {
            Event::Connected {
                from,
                to,
                via: Some(via),
                ..
            } => {
                let idx = self.nodes.iter().position(|n| n == to).unwrap_or(0);
                self.mark(via, t, MarkKind::Routed(idx), format!("{from} → {to}"));
            }
            Event::Crashed { host, kind } => {
                self.open(host, DOWN, t, format!("{host} down ({kind})"))
            }
            Event::Restarted { host, .. } => self.close(host, DOWN, t, SpanKind::Down),
            Event::Partitioned { a, b } => {
                self.open(a, PARTITION, t, format!("{a} cut off from {b}"));
                self.open(b, PARTITION, t, format!("{b} cut off from {a}"));
            }
            Event::Healed { a, b } => {
                self.close(a, PARTITION, t, SpanKind::Partition);
                self.close(b, PARTITION, t, SpanKind::Partition);
            }
            Event::FaultFired {
                rule,
                action,
                actor,
                ..
            } => {
                self.times.push(t);
                self.faults.push(FaultLine {
                    t_ms: t,
                    rule: *rule,
                    title: format!("fault #{rule} on {actor}: {action}"),
                });
            }
            Event::SessionCreated { node, file, .. } => {
                self.mark(node, t, MarkKind::Session, format!("session for {file}"))
            }
            Event::Forwarded { node, file, .. } => {
                self.mark(node, t, MarkKind::Forward, format!("forwarded {file}"))
            }
            Event::SessionNotFound { node, .. } => {
                self.mark(node, t, MarkKind::NotFound, "session not found".into())
            }
            Event::CachedAckReplayed { node, file, .. } => self.mark(
                node,
                t,
                MarkKind::Replay,
                format!("cached Ack replayed for {file}"),
            ),
            Event::Delivered { file, node, .. } | Event::Committed { file, node, .. } => {
                let dup = self.duplicated.contains(file);
                self.mark(
                    "backend",
                    t,
                    MarkKind::Delivery(dup),
                    format!("{file} from {node}"),
                );
            }
            Event::JobState { job, state, file } => {
                let c = client_of(job);
                match state {
                    JobState::Connecting => {
                        self.open(&c, ACTIVE, t, format!("{job}: {file}"));
                        self.close(&c, TRANSIENT, t, SpanKind::TransientError);
                    }
                    JobState::TransientError => {
                        self.open(&c, TRANSIENT, t, format!("{job} in transient error"))
                    }
                    JobState::Acknowledged | JobState::Error | JobState::Cancelled => {
                        self.close(&c, TRANSIENT, t, SpanKind::TransientError);
                        self.close(&c, ACTIVE, t, SpanKind::Active);
                        let (kind, word) = if *state == JobState::Acknowledged {
                            (MarkKind::Done, "acknowledged")
                        } else {
                            (MarkKind::Failed, state.name())
                        };
                        self.mark(&c, t, kind, format!("{job} {word}"));
                        if *state != JobState::Acknowledged {
                            self.lane(&c).trouble = true;
                        }
                    }
                    _ => {}
                }
                if self.duplicated.contains(file) {
                    self.lane(&c).trouble = true;
                }
            }
            Event::UploadRestart { job, .. } => {
                let c = client_of(job);
                self.mark(
                    &c,
                    t,
                    MarkKind::Restart,
                    format!("{job} restarted from byte 0"),
                );
                self.lane(&c).trouble = true;
            }
            Event::HostFallback { job, from, to } => {
                let c = client_of(job);
                self.mark(
                    &c,
                    t,
                    MarkKind::Fallback,
                    format!("{job}: Host-Id fallback {from} → {to}"),
                );
                self.lane(&c).trouble = true;
            }
            _ => {}
        }
    }

    /// The finished timeline.
    pub fn finish(mut self) -> Timeline {
        let end = self.end_ms;
        self.times.push(end);
        let axis = Axis::new(&mut self.times, WIDTH);
        let mut lanes = Vec::new();
        let infra: Vec<String> = std::iter::once("farm".to_owned())
            .chain(self.nodes.iter().cloned())
            .chain(std::iter::once("backend".to_owned()))
            .collect();
        let mut clients: Vec<(bool, String)> = self
            .lanes
            .keys()
            .filter(|k| !infra.contains(k))
            .map(|k| (!self.lanes[k].trouble, k.clone()))
            .collect();
        clients.sort();
        let hidden = clients.len().saturating_sub(MAX_CLIENT_LANES);
        clients.truncate(MAX_CLIENT_LANES);
        clients.sort_by(|a, b| a.1.cmp(&b.1));
        for name in infra.into_iter().chain(clients.into_iter().map(|(_, n)| n)) {
            let Some(mut b) = self.lanes.remove(&name) else {
                continue;
            };
            for (key, (from, title)) in std::mem::take(&mut b.open) {
                let kind = match key {
                    0 => SpanKind::Down,
                    1 => SpanKind::TransientError,
                    2 => SpanKind::Partition,
                    _ => SpanKind::Active,
                };
                b.spans.push(Span {
                    from_ms: from,
                    to_ms: end,
                    kind,
                    title,
                });
            }
            // Merge marks of one kind in one pixel column.
            let mut merged: BTreeMap<(i64, MarkKind), Mark> = BTreeMap::new();
            for (t, kind, title) in b.marks {
                let col = axis.x(t).floor() as i64;
                merged
                    .entry((col, kind))
                    .and_modify(|m| m.count += 1)
                    .or_insert(Mark {
                        t_ms: t,
                        kind,
                        count: 1,
                        title,
                    });
            }
            b.spans.sort_by_key(|s| (s.from_ms, s.to_ms));
            lanes.push(Lane {
                highlight: b.trouble,
                name,
                spans: b.spans,
                marks: merged.into_values().collect(),
            });
        }
        Timeline {
            lanes,
            faults: self.faults,
            axis,
            hidden_clients: hidden,
        }
    }
}

/// The time axis. Idle stretches longer than the gap threshold shrink to a fixed-width break;
/// inside a busy stretch, position blends linear time with the event count so far, so a burst
/// of activity gets room even when retries keep the whole day "busy". Monotone throughout.
#[derive(Debug, Clone)]
pub struct Axis {
    /// `(t0, t1, x0, x1)` per busy stretch, in order.
    pub segments: Vec<(u64, u64, f64, f64)>,
    /// Event times per stretch, sorted (for the rank part of the position).
    times: Vec<Vec<u64>>,
    /// Width in pixels.
    pub width: f64,
}

/// Pixels of a collapsed idle stretch.
const BREAK: f64 = 28.0;
/// Least pixels of a busy stretch.
const MIN_SEGMENT: f64 = 36.0;
/// Share of a stretch's width placed by event rank rather than by time.
const RANK_WEIGHT: f64 = 0.6;

impl Axis {
    /// An axis over `times` (sorted in place).
    pub fn new(times: &mut Vec<u64>, width: f64) -> Axis {
        times.sort_unstable();
        times.dedup();
        let (first, last) = match (times.first(), times.last()) {
            (Some(&a), Some(&b)) => (a, b),
            _ => {
                return Axis {
                    segments: vec![(0, 1, 0.0, width)],
                    times: vec![Vec::new()],
                    width,
                };
            }
        };
        let gap = ((last - first) / 20).max(60_000);
        let mut runs: Vec<Vec<u64>> = Vec::new();
        for &t in times.iter() {
            match runs.last_mut() {
                Some(run) if t - run.last().copied().unwrap_or(t) <= gap => run.push(t),
                _ => runs.push(vec![t]),
            }
        }
        let breaks = runs.len().saturating_sub(1) as f64 * BREAK;
        let events: usize = runs.iter().map(Vec::len).sum();
        let spare = (width - breaks - MIN_SEGMENT * runs.len() as f64).max(0.0);
        let mut x = 0.0;
        let mut segments = Vec::new();
        for (i, run) in runs.iter().enumerate() {
            if i > 0 {
                x += BREAK;
            }
            let w = MIN_SEGMENT + spare * run.len() as f64 / events as f64;
            segments.push((run[0], *run.last().expect("non-empty"), x, x + w));
            x += w;
        }
        Axis {
            segments,
            times: runs,
            width,
        }
    }

    /// Position of `t` inside stretch `i`, from 0 to 1.
    fn fraction(&self, i: usize, t: u64) -> f64 {
        let (t0, t1, _, _) = self.segments[i];
        if t1 == t0 {
            return 0.5;
        }
        let lin = (t - t0) as f64 / (t1 - t0) as f64;
        let times = &self.times[i];
        let below = times.partition_point(|&x| x < t);
        let upto = times.partition_point(|&x| x <= t);
        // Interpolate between neighbouring events so the position is continuous in t.
        let rank = if times.len() < 2 {
            lin
        } else if upto > below {
            (below as f64 + 0.5 * (upto - below - 1) as f64) / (times.len() - 1) as f64
        } else {
            let (a, b) = (times[below - 1], times[below]);
            ((below - 1) as f64 + (t - a) as f64 / (b - a) as f64) / (times.len() - 1) as f64
        };
        RANK_WEIGHT * rank.clamp(0.0, 1.0) + (1.0 - RANK_WEIGHT) * lin
    }

    /// The x of time `t`.
    pub fn x(&self, t: u64) -> f64 {
        let mut prev_end: Option<(u64, f64)> = None;
        for (i, &(t0, t1, x0, x1)) in self.segments.iter().enumerate() {
            if t < t0 {
                // Inside the break before this stretch.
                return match prev_end {
                    Some((pt, px)) => px + (x0 - px) * (t - pt) as f64 / (t0 - pt).max(1) as f64,
                    None => x0,
                };
            }
            if t <= t1 {
                return x0 + (x1 - x0) * self.fraction(i, t);
            }
            prev_end = Some((t1, x1));
        }
        self.segments.last().map_or(0.0, |s| s.3)
    }

    /// Tick marks: `(x, t)` spread evenly in x over every stretch, about one per `spacing`
    /// pixels, always including each stretch's ends.
    pub fn ticks(&self, spacing: f64) -> Vec<(f64, u64)> {
        let mut out = Vec::new();
        for &(t0, t1, x0, x1) in &self.segments {
            let n = ((x1 - x0) / spacing).floor().max(1.0) as usize;
            for k in 0..=n {
                let target = x0 + (x1 - x0) * k as f64 / n as f64;
                // Invert the monotone mapping by bisection on t.
                let (mut lo, mut hi) = (t0, t1);
                while hi > lo + 1 {
                    let mid = lo + (hi - lo) / 2;
                    if self.x(mid) < target {
                        lo = mid
                    } else {
                        hi = mid
                    }
                }
                let t = if (self.x(lo) - target).abs() <= (self.x(hi) - target).abs() {
                    lo
                } else {
                    hi
                };
                if out
                    .last()
                    .is_none_or(|&(px, _): &(f64, u64)| target - px > spacing * 0.5)
                {
                    out.push((target, t));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_stretches_collapse() {
        let mut times = vec![0, 500, 1_000, 86_400_000, 86_401_000];
        let a = Axis::new(&mut times, 1000.0);
        assert_eq!(a.segments.len(), 2, "{:?}", a.segments);
        let (x_busy_end, x_late) = (a.x(1_000), a.x(86_400_000));
        assert!(
            x_late - x_busy_end <= BREAK + 0.001,
            "the idle day takes one break"
        );
        assert!(
            a.x(0) < a.x(500) && a.x(500) < a.x(1_000),
            "order is kept inside a stretch"
        );
        assert!(
            a.x(43_200_000) > x_busy_end && a.x(43_200_000) < x_late,
            "times in a break land in it"
        );
        assert!((a.x(86_401_000) - 1000.0).abs() < 0.001);
    }

    #[test]
    fn a_burst_gets_room_even_when_the_day_is_busy() {
        // Ten events in the first second, then one every 600 s for a day.
        let mut times: Vec<u64> = (0..10).map(|i| i * 100).collect();
        times.extend((1..=144).map(|k| k * 600_000));
        let a = Axis::new(&mut times, 1000.0);
        assert_eq!(a.segments.len(), 1, "no stretch is idle");
        assert!(a.x(900) > 20.0, "the first second spans {} px", a.x(900));
        // Monotone everywhere.
        let mut prev = -1.0;
        for t in (0..86_400_000u64).step_by(97_000) {
            let x = a.x(t);
            assert!(x >= prev, "x({t}) = {x} < {prev}");
            prev = x;
        }
        let ticks = a.ticks(100.0);
        assert!(ticks.len() >= 5);
        assert!(
            ticks
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1)
        );
        for (x, t) in &ticks {
            assert!(
                (a.x(*t) - x).abs() < 1.0,
                "tick at {x} labels {t}, which maps to {}",
                a.x(*t)
            );
        }
    }
}
