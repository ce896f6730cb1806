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
    /// The first duplicate chains, each on a timeline of its own: windows around its steps.
    pub zooms: Vec<Zoom>,
}

/// One duplicate delivery's chain on its own timeline: the farm, the nodes, the application
/// and the file's client, in windows around the chain's steps (what lies between is skipped
/// and says how long it was), so its decisive events are never a few pixels of a day.
#[derive(Debug, Clone)]
pub struct Zoom {
    /// Index of the duplicated file in the summary's `duplicates`.
    pub duplicate: usize,
    /// The file.
    pub file: String,
    /// Which delivery the chain explains (2 = the first extra one).
    pub delivery: u64,
    /// The timeline (its `zooms` empty).
    pub timeline: Timeline,
}

/// Most chains zoomed in one report.
pub const MAX_ZOOMS: usize = 12;

/// A chain to zoom: duplicate index, file, delivery, the client's lane, the steps' times.
struct ZoomPlan {
    duplicate: usize,
    file: String,
    delivery: u64,
    client: String,
    times: Vec<u64>,
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
    zooms: Vec<ZoomPlan>,
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
            zooms: summary
                .duplicates
                .iter()
                .enumerate()
                .flat_map(|(i, d)| {
                    d.chains.iter().map(move |c| ZoomPlan {
                        duplicate: i,
                        file: d.file.clone(),
                        delivery: c.delivery,
                        client: client_of(&d.job),
                        times: c.steps.iter().map(|s| s.t_ms).collect(),
                    })
                })
                .filter(|z| !z.times.is_empty())
                .take(MAX_ZOOMS)
                .collect(),
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
        // Spans still open at the end last until it.
        for b in self.lanes.values_mut() {
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
            b.spans.sort_by_key(|s| (s.from_ms, s.to_ms));
        }
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
        let lay = |names: &mut dyn Iterator<Item = &String>, axis: &Axis| -> Vec<Lane> {
            names
                .filter_map(|n| self.lanes.get(n).map(|b| lay_lane(n, b, axis)))
                .collect()
        };
        let zooms = self
            .zooms
            .iter()
            .map(|z| {
                let axis = Axis::windows(&z.times, WIDTH);
                let names: Vec<String> = infra
                    .iter()
                    .cloned()
                    .chain(std::iter::once(z.client.clone()))
                    .collect();
                Zoom {
                    duplicate: z.duplicate,
                    file: z.file.clone(),
                    delivery: z.delivery,
                    timeline: Timeline {
                        lanes: lay(&mut names.iter(), &axis),
                        faults: self
                            .faults
                            .iter()
                            .filter(|f| axis.covers(f.t_ms))
                            .cloned()
                            .collect(),
                        axis,
                        hidden_clients: 0,
                        zooms: Vec::new(),
                    },
                }
            })
            .collect();
        let names: Vec<String> = infra
            .into_iter()
            .chain(clients.into_iter().map(|(_, n)| n))
            .collect();
        Timeline {
            lanes: lay(&mut names.iter(), &axis),
            faults: self.faults,
            axis,
            hidden_clients: hidden,
            zooms,
        }
    }
}

/// A lane laid out on `axis`: marks outside its stretches left out (a zoom's windows), marks
/// of one kind in one pixel column merged, spans clipped to the axis ([`merge_spans`]).
fn lay_lane(name: &str, b: &LaneBuild, axis: &Axis) -> Lane {
    let mut merged: BTreeMap<(i64, MarkKind), Mark> = BTreeMap::new();
    for (t, kind, title) in &b.marks {
        if axis.windowed && !axis.covers(*t) {
            continue;
        }
        let col = axis.x(*t).floor() as i64;
        merged
            .entry((col, *kind))
            .and_modify(|m| m.count += 1)
            .or_insert(Mark {
                t_ms: *t,
                kind: *kind,
                count: 1,
                title: title.clone(),
            });
    }
    Lane {
        highlight: b.trouble,
        name: name.to_owned(),
        spans: merge_spans(&b.spans, axis),
        marks: merged.into_values().collect(),
    }
}

/// The spans (in start order) clipped to the axis, with those of one kind that touch on screen
/// (less than a pixel apart) drawn as one: a client's thousand back-to-back jobs are one bar
/// whose tooltip says how many it holds, so a lane's drawing grows with its pixels, not its
/// jobs.
fn merge_spans(spans: &[Span], axis: &Axis) -> Vec<Span> {
    let (first, last) = axis.span();
    let mut out: Vec<(Span, u64)> = Vec::new();
    // Index in `out` of the last span of each kind.
    let mut last_of: [Option<usize>; 4] = [None; 4];
    for sp in spans {
        if axis.windowed && (sp.to_ms < first || sp.from_ms > last) {
            continue;
        }
        let from_ms = sp.from_ms.max(first);
        let to_ms = sp.to_ms.min(last).max(from_ms);
        let k = sp.kind as usize;
        if let Some(i) = last_of[k] {
            let (prev, n) = &mut out[i];
            if axis.x(from_ms) < axis.x(prev.to_ms) + 1.0 {
                prev.to_ms = prev.to_ms.max(to_ms);
                *n += 1;
                continue;
            }
        }
        last_of[k] = Some(out.len());
        out.push((
            Span {
                from_ms,
                to_ms,
                kind: sp.kind,
                title: sp.title.clone(),
            },
            1,
        ));
    }
    out.into_iter()
        .map(|(mut sp, n)| {
            if n > 1 {
                sp.title = format!("{} (+{} more here)", sp.title, n - 1);
            }
            sp
        })
        .collect()
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
    /// Only the stretches are shown (a zoom): what lies between is skipped, not idle.
    pub windowed: bool,
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
                    windowed: false,
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
            windowed: false,
        }
    }

    /// An axis of windows around `times` (a chain's steps): steps less than a minute apart
    /// share a window, each window is padded by a third of its length (20 ms to 20 s) and
    /// gets an equal share of the width; time inside a window is linear.
    pub fn windows(times: &[u64], width: f64) -> Axis {
        let mut times = times.to_vec();
        times.sort_unstable();
        times.dedup();
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for &t in &times {
            match runs.last_mut() {
                Some(run) if t - run.1 <= 60_000 => run.1 = t,
                _ => runs.push((t, t)),
            }
        }
        if runs.is_empty() {
            runs.push((0, 1));
        }
        let n = runs.len() as f64;
        let w = ((width - BREAK * (n - 1.0)) / n).max(MIN_SEGMENT);
        let mut segments = Vec::new();
        let mut x = 0.0;
        let mut prev_end = 0u64;
        for (i, &(a, b)) in runs.iter().enumerate() {
            // At most 20 s: windows are more than a minute apart, so they never overlap.
            let pad = ((b - a) / 3).clamp(20, 20_000);
            // Windows never overlap: a window starts after the one before it ends.
            let t0 = a
                .saturating_sub(pad)
                .max(if i == 0 { 0 } else { prev_end + 1 });
            let t1 = b + pad;
            if i > 0 {
                x += BREAK;
            }
            segments.push((t0, t1, x, x + w));
            x += w;
            prev_end = t1;
        }
        Axis {
            times: vec![Vec::new(); segments.len()],
            segments,
            width: x,
            windowed: true,
        }
    }

    /// Whether `t` lies in one of the stretches.
    pub fn covers(&self, t: u64) -> bool {
        self.segments
            .iter()
            .any(|&(t0, t1, _, _)| t0 <= t && t <= t1)
    }

    /// The first and last time of the axis.
    pub fn span(&self) -> (u64, u64) {
        (
            self.segments.first().map_or(0, |s| s.0),
            self.segments.last().map_or(0, |s| s.1),
        )
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

    fn span(from_ms: u64, to_ms: u64, kind: SpanKind, title: &str) -> Span {
        Span {
            from_ms,
            to_ms,
            kind,
            title: title.into(),
        }
    }

    #[test]
    fn back_to_back_spans_are_drawn_as_one_bar_that_counts_them() {
        // 10,000 one-second jobs in a row, a transient error inside them, and one job an hour
        // later, on a 1,000-pixel axis.
        let mut spans: Vec<Span> = (0..10_000)
            .map(|i| {
                span(
                    i * 1_000,
                    i * 1_000 + 990,
                    SpanKind::Active,
                    &format!("job {i}"),
                )
            })
            .collect();
        spans.push(span(
            5_000_500,
            5_000_700,
            SpanKind::TransientError,
            "retrying",
        ));
        spans.push(span(13_600_000, 13_601_000, SpanKind::Active, "late job"));
        spans.sort_by_key(|s| (s.from_ms, s.to_ms));
        let mut times: Vec<u64> = spans.iter().flat_map(|s| [s.from_ms, s.to_ms]).collect();
        let axis = Axis::new(&mut times, 1000.0);
        let drawn = merge_spans(&spans, &axis);
        assert!(drawn.len() <= 1000 + 2, "{} bars", drawn.len());
        let active: Vec<&Span> = drawn
            .iter()
            .filter(|s| s.kind == SpanKind::Active)
            .collect();
        // Every job is in one bar or another, and the bars cover the jobs' time.
        let held: u64 = active
            .iter()
            .map(|s| match s.title.split_once("(+") {
                Some((_, more)) => 1 + more.split(' ').next().unwrap().parse::<u64>().unwrap(),
                None => 1,
            })
            .sum();
        assert_eq!(held, 10_001);
        assert_eq!(active[0].from_ms, 0);
        assert!(
            active[0].title.starts_with("job 0 (+"),
            "{}",
            active[0].title
        );
        // The late job is a bar of its own; the error is not merged into the jobs.
        let late = active.last().unwrap();
        assert_eq!(
            (late.from_ms, late.title.as_str()),
            (13_600_000, "late job")
        );
        assert!(active[active.len() - 2].to_ms <= 9_999_990);
        let errors: Vec<&Span> = drawn
            .iter()
            .filter(|s| s.kind == SpanKind::TransientError)
            .collect();
        assert_eq!(errors.len(), 1);
        assert_eq!((errors[0].from_ms, errors[0].to_ms), (5_000_500, 5_000_700));
    }

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
