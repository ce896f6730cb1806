//! The properties every simulation must satisfy (and one that must not: the canary).

use std::sync::{Arc, Mutex};

use probe::{Event, JobState};
use scenario::{
    check::summarize,
    farm,
    spec::{ExpectValue, SessionState},
    summary::{Invariant, Summary},
};

use crate::{knobs::Knobs, space::FaultKind};

/// A property of full simulations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Property {
    /// Every upload acknowledged to its client was delivered at least once.
    NoLoss,
    /// The bytes delivered equal the client's bytes.
    Integrity,
    /// With transaction ids and application dedupe: exactly one effect per acknowledged upload
    /// (and never more than one per file).
    DedupeOneEffect,
    /// Without faults: exactly one delivery per file, whatever the farm's settings.
    NoFaultsOneDelivery,
    /// With BITSHostId, durable session state, and only node outages shorter than the fallback
    /// timeout: no restart from byte 0, and no duplicate except where a node died with the
    /// application's answer in flight (between forwarding the upload and recording
    /// `NotifyCache`): the seed document's chain, which no node setting can prevent.
    HostIdDurableResumes,
    /// Every duplicate delivery has a causal chain that starts at an injected fault.
    DuplicatesExplained,
    /// Once faults stop, every job ends within a bound of virtual time.
    Liveness,
    /// A job gives up for lack of progress only when the farm could not serve it for a whole
    /// no-progress timeout: an outage that long, or BITSHostId pinning it to a dead node for
    /// that long (the fallback timer must bring it back to the farm first).
    NoNeedlessGiveUp,
    /// The same scenario and seed give the same event log.
    Determinism,
    /// Nothing inside the run panicked (node, client, application, harness task): a run with
    /// a panic shows nothing about BITS.
    NoPanics,
    /// Deliberately false: "without dedupe there is never a duplicate delivery". The explorer
    /// must falsify it; that is the proof it can find what it looks for.
    Canary,
}

impl Property {
    /// Every property, canary last.
    pub const ALL: [Property; 11] = [
        Property::NoLoss,
        Property::Integrity,
        Property::DedupeOneEffect,
        Property::NoFaultsOneDelivery,
        Property::HostIdDurableResumes,
        Property::DuplicatesExplained,
        Property::Liveness,
        Property::NoNeedlessGiveUp,
        Property::Determinism,
        Property::NoPanics,
        Property::Canary,
    ];

    /// The name used on the command line and in file names.
    pub fn name(self) -> &'static str {
        match self {
            Property::NoLoss => "no-loss",
            Property::Integrity => "integrity",
            Property::DedupeOneEffect => "dedupe-one-effect",
            Property::NoFaultsOneDelivery => "no-faults-one-delivery",
            Property::HostIdDurableResumes => "hostid-durable-resumes",
            Property::DuplicatesExplained => "duplicates-explained",
            Property::Liveness => "liveness",
            Property::NoNeedlessGiveUp => "no-needless-give-up",
            Property::Determinism => "determinism",
            Property::NoPanics => "no-panics",
            Property::Canary => "canary",
        }
    }

    /// A property by name.
    pub fn parse(s: &str) -> Option<Property> {
        Property::ALL.into_iter().find(|p| p.name() == s)
    }

    /// The property in one sentence.
    pub fn describe(self) -> &'static str {
        match self {
            Property::NoLoss => {
                "Every upload acknowledged to its client was delivered at least once."
            }
            Property::Integrity => "The bytes delivered equal the client's bytes.",
            Property::DedupeOneEffect => {
                "With transaction ids and backend dedupe: exactly one effect per acknowledged upload."
            }
            Property::NoFaultsOneDelivery => "With no faults: exactly one delivery per file.",
            Property::HostIdDurableResumes => {
                "With BITSHostId, durable session state and outages shorter than the fallback timeout: \
                 no restart from byte 0, no duplicate unless a node died with the application's answer in flight."
            }
            Property::DuplicatesExplained => {
                "Every duplicate delivery has a causal chain that starts at an injected fault."
            }
            Property::Liveness => {
                "Once faults stop, every job ends within a bound of virtual time."
            }
            Property::NoNeedlessGiveUp => {
                "A job gives up for lack of progress only when the farm could not serve it for a whole no-progress timeout."
            }
            Property::Determinism => "The same scenario and seed give the same event-log hash.",
            Property::NoPanics => {
                "Nothing inside a run panics (node, client, application, harness task)."
            }
            Property::Canary => {
                "(Deliberately false) without dedupe there is never a duplicate delivery."
            }
        }
    }

    /// Expectations that fail when a replay breaks the property, where a metric says it (the
    /// built-in invariants cover no-loss, integrity, one effect per transaction and explained
    /// duplicates).
    pub fn expectations(self) -> std::collections::BTreeMap<String, ExpectValue> {
        let e: &[(&str, ExpectValue)] = match self {
            Property::Canary => &[("duplicate_deliveries", ExpectValue::Number(0.0))],
            Property::NoFaultsOneDelivery => &[("deliveries_per_file", ExpectValue::Number(1.0))],
            Property::HostIdDurableResumes => &[("restarts", ExpectValue::Number(0.0))],
            Property::DedupeOneEffect => &[("duplicate_effects", ExpectValue::Number(0.0))],
            _ => &[],
        };
        e.iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    /// What to look at in a replay when no expectation can say it.
    pub fn replay_note(self) -> Option<&'static str> {
        match self {
            Property::HostIdDurableResumes => Some(
                "A duplicate is a failure unless its node died between forwarding the upload and recording NotifyCache; see the chain in the replay.",
            ),
            Property::Liveness => Some(
                "Look for jobs ending long after the last fault stopped (the bound is printed above).",
            ),
            Property::Determinism => Some("Replay twice with --json and compare event_log_hash."),
            _ => None,
        }
    }

    /// Whether the property is meant to fail.
    pub fn is_canary(self) -> bool {
        self == Property::Canary
    }

    /// Whether the property says anything about runs of these knobs.
    pub fn applies(self, k: &Knobs) -> bool {
        match self {
            Property::NoLoss
            | Property::Integrity
            | Property::DuplicatesExplained
            | Property::Determinism
            | Property::NoPanics => true,
            // Dedupe is the application's: without one (notification type 0) nothing dedupes.
            Property::DedupeOneEffect => {
                k.transaction_id && k.dedupe && k.notification != node::NotificationType::None
            }
            Property::NoFaultsOneDelivery => k.faults.is_empty(),
            Property::HostIdDurableResumes => {
                // The client retries its node at multiples of the retry delay until the fallback
                // timer expires: an outage of `r` seconds is survivable only if a retry falls in
                // [r, fallback). (With fallback <= retry delay BITSHostId never helps: the
                // timer has expired by the first retry.)
                let d = k.retry_delay_s.max(5);
                let survivable = |r: u64| r.div_ceil(d).max(1) * d < k.fallback_timeout_s;
                k.host_id
                    && k.session_state == SessionState::Durable
                    && k.faults.iter().all(|f| match f.kind {
                        FaultKind::Crash | FaultKind::PowerCut => {
                            f.restart_after_s.is_some_and(survivable)
                        }
                        FaultKind::DropResponse | FaultKind::ProxyPage => survivable(0),
                        FaultKind::Partition => survivable(f.duration_s),
                        // An odd Ack may say the session is gone (a restart); a cancelled job
                        // ends its session on purpose; a failed storage write after the
                        // delivery loses NotifyCache, so the retried final fragment notifies
                        // again.
                        FaultKind::SlowApp
                        | FaultKind::AppFails
                        | FaultKind::AppCrash
                        | FaultKind::HostIdToggle
                        | FaultKind::OddAck
                        | FaultKind::Cancel
                        | FaultKind::IoError
                        | FaultKind::DiskFull => false,
                    })
            }
            Property::Liveness => {
                // Faults must stop: the application and at least one node come back.
                let app_stays_down = k
                    .faults
                    .iter()
                    .any(|f| f.kind == FaultKind::AppCrash && f.restart_after_s.is_none());
                let dead: std::collections::BTreeSet<u32> = k
                    .faults
                    .iter()
                    .filter(|f| {
                        matches!(f.kind, FaultKind::Crash | FaultKind::PowerCut)
                            && f.restart_after_s.is_none()
                    })
                    .map(|f| f.node)
                    .collect();
                !app_stays_down && (dead.len() as u32) < k.nodes && !bad_reply_url(k)
            }
            // A reply URL that leads nowhere is an outage that never ends.
            Property::NoNeedlessGiveUp => outages_leave_a_way(k) && !bad_reply_url(k),
            Property::Canary => !(k.transaction_id && k.dedupe),
        }
    }

    /// The knobs moved into the property's domain (so that it applies): the explorer and the
    /// property tests search there when they look at one property. Every other knob stays.
    pub fn focus(self, mut k: Knobs) -> Knobs {
        match self {
            Property::NoLoss
            | Property::Integrity
            | Property::DuplicatesExplained
            | Property::Determinism
            | Property::NoPanics => {}
            Property::DedupeOneEffect => {
                k.transaction_id = true;
                k.dedupe = true;
                if k.notification == node::NotificationType::None {
                    k.notification = node::NotificationType::ByValue;
                }
            }
            Property::NoFaultsOneDelivery => k.faults.clear(),
            Property::HostIdDurableResumes => {
                k.host_id = true;
                k.session_state = SessionState::Durable;
                let fits = |f: &crate::knobs::FaultKnob| {
                    self.applies(&Knobs {
                        faults: vec![f.clone()],
                        ..k.clone()
                    })
                };
                let faults = k.faults.iter().filter(|f| fits(f)).cloned().collect();
                k.faults = faults;
            }
            Property::Liveness => {
                for f in &mut k.faults {
                    if f.restart_after_s.is_none() {
                        f.restart_after_s = Some(3600);
                    }
                }
                k.reply_url = None;
            }
            Property::NoNeedlessGiveUp => {
                k.reply_url = None;
                // Keep the faults, in order, that still leave the farm a way to serve.
                let all = std::mem::take(&mut k.faults);
                for f in all {
                    k.faults.push(f);
                    if !outages_leave_a_way(&k) {
                        k.faults.pop();
                    }
                }
            }
            Property::Canary => {
                k.dedupe = false;
            }
        }
        k
    }

    /// Checks the property on a run; `Err` says how it failed.
    pub fn check(self, o: &Outcome) -> Result<(), String> {
        let s = &o.summary;
        let inv = |i: Invariant| match s.invariant(i) {
            None => Err(format!("the summary has no {} invariant", i.name())),
            Some(r) if r.held => Ok(()),
            Some(r) => Err(r.detail.clone()),
        };
        match self {
            Property::NoLoss => inv(Invariant::NoLostFiles),
            Property::Integrity => inv(Invariant::Integrity),
            Property::DuplicatesExplained => inv(Invariant::DuplicatesExplained),
            Property::NoPanics => inv(Invariant::NoPanics),
            Property::DedupeOneEffect => {
                if s.metrics.duplicate_effects > 0 {
                    return Err(format!(
                        "{} duplicate effect(s) despite transaction ids and dedupe",
                        s.metrics.duplicate_effects
                    ));
                }
                match o.jobs.iter().find(|j| j.acknowledged && j.effects != 1) {
                    Some(j) => Err(format!(
                        "{} was acknowledged with {} effects",
                        j.file, j.effects
                    )),
                    None => Ok(()),
                }
            }
            Property::NoFaultsOneDelivery => match o.jobs.iter().find(|j| j.deliveries != 1) {
                Some(j) => Err(format!(
                    "{} was delivered {} times without any fault",
                    j.file, j.deliveries
                )),
                None => Ok(()),
            },
            Property::HostIdDurableResumes => {
                if s.metrics.restarts > 0 {
                    Err(format!("{} restart(s) from byte 0", s.metrics.restarts))
                } else if let Some(why) = o.unexcused_duplicates.first() {
                    Err(format!(
                        "{} duplicate deliveries without a node death in the forwarding window; first: {why}",
                        o.unexcused_duplicates.len()
                    ))
                } else {
                    Ok(())
                }
            }
            Property::Liveness => {
                let bound_ms = o.liveness_bound_ms();
                let deadline_ms = (crate::knobs::DEADLINE_DAYS * 86_400_000.0) as u64;
                // A job still running at the deadline fails only if its bound had passed.
                match o.jobs.iter().find(|j| {
                    let due = o.faults_end_ms.max(j.started_ms) + bound_ms;
                    j.finished_ms > due && (j.finished_ms != u64::MAX || due <= deadline_ms)
                }) {
                    Some(j) if j.finished_ms == u64::MAX => Err(format!(
                        "{} still running at the deadline, more than {} ms after faults stopped ({} ms)",
                        j.file, bound_ms, o.faults_end_ms
                    )),
                    Some(j) => Err(format!(
                        "{} ended at {} ms, more than {} ms after faults stopped ({} ms)",
                        j.file, j.finished_ms, bound_ms, o.faults_end_ms
                    )),
                    None => Ok(()),
                }
            }
            Property::NoNeedlessGiveUp => match o
                .jobs
                .iter()
                .find(|j| matches!(j.error, Some(client::JobError::NoProgress { .. })))
            {
                Some(j) => Err(format!(
                    "{} gave up ({}) although every outage left the farm a way to serve it",
                    j.file,
                    j.error
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default()
                )),
                None => Ok(()),
            },
            Property::Determinism => match &o.replay_hash {
                Some(h) if *h != s.event_log_hash => {
                    Err(format!("event log hash {} then {}", s.event_log_hash, h))
                }
                _ => Ok(()),
            },
            Property::Canary => {
                if s.metrics.duplicate_deliveries > 0 {
                    Err(format!(
                        "{} duplicate deliveries without dedupe",
                        s.metrics.duplicate_deliveries
                    ))
                } else {
                    Ok(())
                }
            }
        }
    }
}

/// Whether every outage in `k` is short enough that no job may give up for lack of progress:
/// at most one node is down for long (or for good), the farm has another, BITSHostId (if it may
/// be on) falls back well within the no-progress timeout, and all other outages together are
/// shorter than it. "Short" leaves room for a request timeout, a connect timeout, a retry
/// delay and a minute of transfer.
fn outages_leave_a_way(k: &Knobs) -> bool {
    let c = scenario::spec::Clients::default();
    let slack = c.request_timeout_s + c.connect_timeout_s + k.retry_delay_s.max(5) + 60;
    let npt = k.no_progress_timeout_s;
    let pinned = k.host_id
        || k.faults
            .iter()
            .any(|f| f.kind == FaultKind::HostIdToggle && f.enabled);
    let mut long_node_outages = 0;
    let mut short_total = 0;
    for f in &k.faults {
        match f.outage_s() {
            Some(d) if d + slack < npt => short_total += d,
            _ if matches!(f.kind, FaultKind::Crash | FaultKind::PowerCut) => long_node_outages += 1,
            _ => return false,
        }
    }
    short_total + slack < npt
        && match long_node_outages {
            0 => true,
            1 => k.nodes >= 2 && (!pinned || k.fallback_timeout_s + slack < npt),
            _ => false,
        }
}

/// How one job went.
#[derive(Debug, Clone)]
pub struct JobRun {
    /// The file.
    pub file: String,
    /// Final fragment acknowledged.
    pub acknowledged: bool,
    /// Deliveries.
    pub deliveries: u64,
    /// Effects.
    pub effects: u64,
    /// First attempt.
    pub started_ms: u64,
    /// End.
    pub finished_ms: u64,
    /// Why the job failed.
    pub error: Option<client::JobError>,
}

/// One run of generated knobs, as properties see it.
pub struct Outcome {
    /// The knobs.
    pub knobs: Knobs,
    /// The run's summary.
    pub summary: Summary,
    /// Every job.
    pub jobs: Vec<JobRun>,
    /// When the last fault stops acting: a crash when its restart is due (if ever), a
    /// partition when it heals, a delay when it ends; other faults when they fire. Scheduled
    /// ends count even if the run finished first.
    pub faults_end_ms: u64,
    /// The event log hash of a second run, when determinism was checked.
    pub replay_hash: Option<String>,
    /// Duplicate deliveries whose previous delivery's node did not die in its forwarding
    /// window (from forwarding the upload to recording `NotifyCache`), one line each.
    pub unexcused_duplicates: Vec<String>,
}

impl Outcome {
    /// How long after faults stop every job must have ended: the fallback timeout, two rounds
    /// of request timeout plus retry delay, and ten minutes per file of slack.
    pub fn liveness_bound_ms(&self) -> u64 {
        let k = &self.knobs;
        let c = scenario::spec::Clients::default();
        let round = c.request_timeout_s + c.connect_timeout_s + k.retry_delay_s.max(5);
        (k.fallback_timeout_s + 2 * round + 600 * u64::from(k.files_per_client) + 600) * 1000
    }
}

/// Runs the knobs' scenario (twice when `determinism` is set) and gathers what the properties
/// need.
pub fn run(knobs: &Knobs, determinism: bool) -> Outcome {
    let sc = knobs.scenario("generated");
    let ends: Arc<Mutex<u64>> = Arc::default();
    let e = ends.clone();
    // How long each rule keeps acting after it fires (`None`: for good).
    let lasts: Vec<Option<u64>> = knobs
        .faults
        .iter()
        .map(|f| f.outage_s().map(|s| s * 1000))
        .collect();
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let seen_in = seen.clone();
    let sink: scenario::log::Sink = Box::new(move |rec| {
        seen_in.lock().unwrap_or_else(|p| p.into_inner()).note(rec);
        let end = match &rec.event {
            Event::FaultFired { rule, .. } => match lasts.get(*rule).copied().flatten() {
                Some(d) => rec.t_ms + d,
                // A permanent outage: liveness does not apply (see `applies`).
                None => rec.t_ms,
            },
            Event::Restarted { .. } | Event::Healed { .. } | Event::HostIdToggled { .. } => {
                rec.t_ms
            }
            _ => return,
        };
        let mut e = e.lock().unwrap_or_else(|p| p.into_inner());
        *e = (*e).max(end);
    });
    let result = farm::run(&sc, sc.seed, Some(sink));
    let summary = summarize(&sc, sc.seed, &result, String::new());
    let jobs = result
        .tracker
        .files()
        .into_iter()
        .map(|t| {
            let o = t.outcome.as_ref();
            JobRun {
                file: t.file.clone(),
                acknowledged: o.is_some_and(|o| o.final_acked),
                deliveries: t.deliveries.len() as u64,
                effects: t.effects(),
                started_ms: o.map_or(0, |o| o.started_ms),
                finished_ms: o
                    .filter(|o| o.state.is_final() || o.state == JobState::Acknowledged)
                    .map_or(u64::MAX, |o| o.finished_ms),
                error: o.and_then(|o| o.error.clone()),
            }
        })
        .collect();
    let seen = std::mem::take(&mut *seen.lock().unwrap_or_else(|p| p.into_inner()));
    let by_value = knobs.notification != node::NotificationType::None;
    let unexcused_duplicates = result
        .tracker
        .files()
        .into_iter()
        .flat_map(|t| {
            t.deliveries
                .windows(2)
                .filter(|w| !seen.in_window(&w[0], w[1].seq, by_value))
                .map(|w| {
                    format!(
                        "{} delivered by {} at {} ms and again by {} at {} ms",
                        t.file, w[0].node, w[0].t_ms, w[1].node, w[1].t_ms
                    )
                })
        })
        .collect();
    let replay_hash = determinism.then(|| farm::run(&sc, sc.seed, None).event_hash);
    let faults_end_ms = *ends.lock().unwrap_or_else(|p| p.into_inner());
    Outcome {
        knobs: knobs.clone(),
        summary,
        jobs,
        faults_end_ms,
        replay_hash,
        unexcused_duplicates,
    }
}

/// The events that say whether a node died in a forwarding window: (seq, node, session).
#[derive(Debug, Default)]
struct Seen {
    forwarded: Vec<(u64, String, String)>,
    answered: Vec<(u64, String, String)>,
    crashed: Vec<(u64, String)>,
    /// Crash rules that fired at `after-forward`.
    after_forward: Vec<(u64, String, Option<String>)>,
}

impl Seen {
    fn note(&mut self, rec: &scenario::log::Record) {
        match &rec.event {
            Event::Forwarded { node, session, .. } => {
                self.forwarded
                    .push((rec.seq, node.clone(), session.clone()))
            }
            Event::AppAnswered { node, session, .. } => {
                self.answered.push((rec.seq, node.clone(), session.clone()))
            }
            Event::Crashed { host, .. } => self.crashed.push((rec.seq, host.clone())),
            Event::FaultFired {
                point: Some(probe::FaultPoint::AfterForward),
                actor,
                session,
                ..
            } => self
                .after_forward
                .push((rec.seq, actor.clone(), session.clone())),
            _ => {}
        }
    }

    /// Whether the node of delivery `d` died between forwarding it and recording the answer:
    /// a crash rule fired at `after-forward` for its session, or (with an application) the
    /// node crashed after forwarding and before the application's answer reached it.
    /// Only deaths before the next delivery (at `next_seq`) count.
    fn in_window(&self, d: &scenario::track::Delivery, next_seq: u64, with_app: bool) -> bool {
        let Some(session) = &d.session else {
            return false;
        };
        let at_point = self.after_forward.iter().any(|(seq, node, s)| {
            (d.seq..next_seq).contains(seq) && *node == d.node && s.as_ref() == Some(session)
        });
        if at_point || !with_app {
            return at_point;
        }
        let same = |node: &String, s: &String| *node == d.node && s == session;
        let Some(start) = self
            .forwarded
            .iter()
            .rev()
            .find(|(seq, n, s)| *seq < d.seq && same(n, s))
            .map(|f| f.0)
        else {
            return false;
        };
        let end = self
            .answered
            .iter()
            .find(|(seq, n, s)| *seq > start && same(n, s))
            .map_or(next_seq, |a| a.0.min(next_seq));
        self.crashed
            .iter()
            .any(|(seq, host)| *seq > start && *seq < end && *host == d.node)
    }
}

/// Whether the application answers upload-reply jobs with a reply URL that leads nowhere.
fn bad_reply_url(k: &Knobs) -> bool {
    k.upload_reply && k.reply_url.is_some()
}
