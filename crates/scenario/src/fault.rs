//! Faults as data: the rules of a scenario matched against fault points and virtual time, and
//! the harness probe through which the simulated actors report events and meet the rules.
//!
//! A rule sees an event (a fault point with its context, or a moment in virtual time) and
//! returns a verdict, in the spirit of turmoil's `Rule::on_packet`. Network effects (crash,
//! cut, partition) happen synchronously inside the probe call, so a crash "after forward"
//! severs the connection before the node's Ack can reach the client; the node's and backend's
//! tasks are stopped by the farm controller.

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use probe::{Clock, Event, FaultCtx, Probe, Verdict};
use rand::RngExt as _;
use rand_chacha::ChaCha8Rng;
use sim::{CrashKind, Net};
use tokio::sync::mpsc;

use crate::{
    log::{EventLog, Sink},
    spec::{Action, Fault},
    track::Tracker,
};

/// What the farm controller must do; sent by the harness.
#[derive(Debug)]
pub(crate) enum Command {
    /// A host was taken down (its connections are already severed): stop its tasks, and
    /// restart it after the delay, if any.
    Crashed {
        host: String,
        restart_after: Option<Duration>,
    },
    /// Start a crashed host again.
    Restart { host: String },
    /// Switch `BITSHostId` on every node.
    HostId { enabled: bool },
    /// Heal a partition after a delay.
    Heal {
        a: String,
        b: String,
        after: Duration,
    },
    /// A client cancels its current job.
    Cancel { client: String },
}

/// A rule's counters, reported with the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleReport {
    /// Position in the scenario's `[[fault]]` list.
    pub index: usize,
    /// The rule in words.
    pub description: String,
    /// Matching hits seen.
    pub hits: u64,
    /// Times it fired.
    pub fired: u64,
    /// Whether it may stay unfired.
    pub optional: bool,
}

struct Rule {
    spec: Fault,
    hits: u64,
    fired: u64,
}

impl Rule {
    /// Firings allowed: `times`, or 1 for nth rules and unlimited for probability rules.
    fn limit(&self) -> u64 {
        self.spec
            .times
            .unwrap_or(if self.spec.probability.is_some() {
                0
            } else {
                1
            })
    }
}

struct Inner {
    log: EventLog,
    tracker: Tracker,
    rules: Vec<Rule>,
    rng: ChaCha8Rng,
    down: BTreeSet<String>,
}

/// Most events one run may record. A run that gets there is stopped and fails (`completed`):
/// a scenario whose clients retry for years, or move a file in millions of fragments, would
/// otherwise run for hours. The bench's 100,000-file run records about 2 million.
pub const MAX_EVENTS: u64 = 10_000_000;

/// The probe every simulated actor reports to.
pub(crate) struct Harness {
    clock: Clock,
    inner: Mutex<Inner>,
    /// The network holds the harness as its probe; [`Harness::detach`] breaks the cycle at the
    /// end of a run.
    net: Mutex<Option<Net>>,
    ctl: mpsc::UnboundedSender<Command>,
    /// Set once the run recorded `max_events` events; the farm stops the run.
    over_budget: tokio::sync::watch::Sender<bool>,
    max_events: u64,
}

/// One fired rule, to apply outside the lock.
struct Firing {
    index: usize,
    spec: Fault,
}

impl Harness {
    pub(crate) fn new(
        clock: Clock,
        faults: &[Fault],
        rng: ChaCha8Rng,
        tracker: Tracker,
        sink: Option<Sink>,
        ctl: mpsc::UnboundedSender<Command>,
        max_events: u64,
    ) -> Arc<Harness> {
        Arc::new(Harness {
            clock,
            inner: Mutex::new(Inner {
                log: EventLog::new(sink),
                tracker,
                rules: faults
                    .iter()
                    .map(|f| Rule {
                        spec: f.clone(),
                        hits: 0,
                        fired: 0,
                    })
                    .collect(),
                rng,
                down: BTreeSet::new(),
            }),
            net: Mutex::new(None),
            ctl,
            over_budget: tokio::sync::watch::channel(false).0,
            max_events,
        })
    }

    /// Turns true once the run has recorded its budget of events.
    pub(crate) fn over_budget(&self) -> tokio::sync::watch::Receiver<bool> {
        self.over_budget.subscribe()
    }

    pub(crate) fn set_net(&self, net: Net) {
        let mut slot = self.net.lock().unwrap_or_else(|p| p.into_inner());
        assert!(slot.is_none(), "the harness's network is set once");
        *slot = Some(net);
    }

    /// Forgets the network (the end of a run), so neither keeps the other alive.
    pub(crate) fn detach(&self) {
        self.net.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    fn net(&self) -> Net {
        let slot = self.net.lock().unwrap_or_else(|p| p.into_inner());
        slot.clone().expect("the network is set for the whole run")
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` with the tracker.
    pub(crate) fn with_tracker<T>(&self, f: impl FnOnce(&mut Tracker) -> T) -> T {
        f(&mut self.lock().tracker)
    }

    /// The log's hash and length so far.
    pub(crate) fn log_state(&self) -> (String, u64) {
        let inner = self.lock();
        (inner.log.hash(), inner.log.len())
    }

    /// The rules' counters.
    pub(crate) fn rule_reports(&self) -> Vec<RuleReport> {
        self.lock()
            .rules
            .iter()
            .enumerate()
            .map(|(index, r)| RuleReport {
                index,
                description: describe(&r.spec),
                hits: r.hits,
                fired: r.fired,
                optional: r.spec.optional,
            })
            .collect()
    }

    /// A host is up again (restarted): its events count again.
    pub(crate) fn mark_up(&self, host: &str) {
        self.lock().down.remove(host);
    }

    fn crash(&self, host: &str, kind: CrashKind, restart_after: Option<f64>) {
        self.lock().down.insert(host.to_owned());
        self.net().crash(host, kind);
        let restart_after = restart_after.map(Duration::from_secs_f64);
        let _ = self.ctl.send(Command::Crashed {
            host: host.to_owned(),
            restart_after,
        });
    }

    /// Applies a fired rule's action; returns the verdict for the actor at the point.
    fn apply(
        &self,
        f: &Firing,
        actor: &str,
        conn: u64,
        session: Option<&str>,
        file: Option<&str>,
    ) -> Verdict {
        let action = f.spec.action.expect("validated: every rule has an action");
        let text = match action {
            Action::Crash | Action::PowerCut => {
                let target = f
                    .spec
                    .node
                    .as_deref()
                    .filter(|_| f.spec.point.is_none())
                    .unwrap_or(actor);
                format!("{} {target}", action.name())
            }
            Action::Partition => {
                format!(
                    "partition {} from {}",
                    f.spec.node.as_deref().unwrap_or(actor),
                    f.spec.peer.as_deref().unwrap_or("?")
                )
            }
            Action::HostId => format!(
                "BITSHostId {}",
                if f.spec.enabled == Some(true) {
                    "on"
                } else {
                    "off"
                }
            ),
            Action::Delay => format!("delay {} s", f.spec.duration_s.unwrap_or(0.0)),
            Action::Fail => match &f.spec.code {
                Some(code) => format!("fail with HTTP {} {code}", f.spec.status.unwrap_or(500)),
                None => format!("fail with HTTP {}", f.spec.status.unwrap_or(500)),
            },
            Action::Page => format!("answer with an HTTP {} page", f.spec.status.unwrap_or(502)),
            Action::Cancel => format!("{} cancels its job", f.spec.node.as_deref().unwrap_or("?")),
            Action::DropResponse => format!("drop the response on connection {conn}"),
            Action::Restart => format!("restart {}", f.spec.node.as_deref().unwrap_or(actor)),
            Action::Panic => format!("panic in {actor}"),
        };
        self.event(Event::FaultFired {
            rule: f.index,
            point: f.spec.point,
            actor: actor.to_owned(),
            action: text,
            session: session.map(str::to_owned),
            file: file.map(str::to_owned),
        });
        match action {
            Action::Crash | Action::PowerCut => {
                let kind = if action == Action::Crash {
                    CrashKind::Kill
                } else {
                    CrashKind::PowerCut
                };
                let target = f
                    .spec
                    .node
                    .as_deref()
                    .filter(|_| f.spec.point.is_none())
                    .unwrap_or(actor);
                self.crash(target, kind, f.spec.restart_after_s);
                // The crashed actor stops right here: nothing after the point happens.
                if target == actor {
                    Verdict::Fail(500)
                } else {
                    Verdict::Continue
                }
            }
            Action::DropResponse => {
                self.net()
                    .cut(conn, &format!("fault #{} drop-response", f.index));
                Verdict::Continue
            }
            Action::Delay => {
                Verdict::Delay(Duration::from_secs_f64(f.spec.duration_s.unwrap_or(0.0)))
            }
            Action::Fail => {
                let status = f.spec.status.unwrap_or(500);
                match f.spec.code.as_deref().and_then(|c| c.strip_prefix("0x")) {
                    Some(hex) => Verdict::FailWith {
                        status,
                        code: u32::from_str_radix(hex, 16).expect("validated when loaded"),
                    },
                    None => Verdict::Fail(status),
                }
            }
            Action::Page => Verdict::Page(f.spec.status.unwrap_or(502)),
            Action::Cancel => {
                let client = f.spec.node.clone().unwrap_or_default();
                let _ = self.ctl.send(Command::Cancel { client });
                Verdict::Continue
            }
            Action::Partition => {
                let a = f.spec.node.clone().unwrap_or_else(|| actor.to_owned());
                let b = f.spec.peer.clone().unwrap_or_default();
                self.net().partition(&a, &b);
                let after = Duration::from_secs_f64(f.spec.duration_s.unwrap_or(0.0));
                let _ = self.ctl.send(Command::Heal { a, b, after });
                Verdict::Continue
            }
            Action::Restart => {
                let host = f.spec.node.clone().unwrap_or_else(|| actor.to_owned());
                let _ = self.ctl.send(Command::Restart { host });
                Verdict::Continue
            }
            Action::HostId => {
                let _ = self.ctl.send(Command::HostId {
                    enabled: f.spec.enabled == Some(true),
                });
                Verdict::Continue
            }
            Action::Panic => panic!("fault #{} injected a panic in {actor}", f.index),
        }
    }

    /// Fires timed rule `index` (its time has come).
    pub(crate) fn fire_timed(&self, index: usize) {
        let spec = {
            let mut inner = self.lock();
            let r = &mut inner.rules[index];
            r.hits += 1;
            r.fired += 1;
            r.spec.clone()
        };
        let actor = spec.node.clone().unwrap_or_else(|| "farm".to_owned());
        self.apply(&Firing { index, spec }, &actor, 0, None, None);
    }
}

impl Probe for Harness {
    fn event(&self, event: Event) {
        let t_ms = self.clock.now_ms();
        let mut inner = self.lock();
        // A crashed node's leftover tasks may run on within the instant of the crash; what
        // they report did not happen.
        if event.node().is_some_and(|n| inner.down.contains(n)) {
            return;
        }
        let rec = inner.log.record(t_ms, event);
        inner.tracker.observe(&rec);
        if inner.log.len() == self.max_events {
            self.over_budget.send_replace(true);
        }
    }

    fn fault(&self, ctx: &FaultCtx<'_>) -> Verdict {
        let firings: Vec<Firing> = {
            let mut inner = self.lock();
            let inner = &mut *inner;
            let mut out = Vec::new();
            for (index, r) in inner.rules.iter_mut().enumerate() {
                let s = &r.spec;
                if s.point != Some(ctx.point)
                    || s.node
                        .as_deref()
                        .is_some_and(|n| n != ctx.actor && s.action != Some(Action::Partition))
                    || s.packet.is_some_and(|p| Some(p) != ctx.packet)
                    || s.file.as_deref().is_some_and(|f| Some(f) != ctx.file)
                {
                    continue;
                }
                r.hits += 1;
                let limit = r.limit();
                if limit != 0 && r.fired >= limit {
                    continue;
                }
                let fire = match s.probability {
                    Some(p) => inner.rng.random_bool(p),
                    None => r.hits >= s.nth.unwrap_or(1),
                };
                if fire {
                    r.fired += 1;
                    out.push(Firing {
                        index,
                        spec: s.clone(),
                    });
                }
            }
            out
        };
        let mut verdict = Verdict::Continue;
        for f in &firings {
            let v = self.apply(f, ctx.actor, ctx.conn, ctx.session, ctx.file);
            if verdict == Verdict::Continue {
                verdict = v;
            }
        }
        verdict
    }
}

/// A rule in words: `crash at after-forward on node-2 (1st hit)`.
pub fn describe(f: &Fault) -> String {
    let action = f.action.map_or("?", Action::name);
    let mut s = action.to_owned();
    if let Some(p) = f.point {
        s.push_str(&format!(" at {p}"));
        if let Some(n) = &f.node {
            s.push_str(&format!(" on {n}"));
        }
        if let Some(pk) = f.packet {
            s.push_str(&format!(" for {pk}"));
        }
        if let Some(file) = &f.file {
            s.push_str(&format!(" for {file}"));
        }
        match (f.probability, f.nth) {
            (Some(p), _) => s.push_str(&format!(" (probability {p})")),
            (None, Some(n)) if n > 1 => {
                s.push_str(&format!(" ({} hit)", crate::summary::ordinal(n)))
            }
            _ => {}
        }
    }
    if let Some(t) = f.at_s {
        s.push_str(&format!(" at {t} s"));
        if let Some(n) = &f.node {
            s.push_str(&format!(" on {n}"));
        }
    }
    if let Some(p) = &f.peer {
        s.push_str(&format!(" / {p}"));
    }
    if let Some(d) = f.duration_s {
        s.push_str(&format!(" for {d} s"));
    }
    if let Some(r) = f.restart_after_s {
        s.push_str(&format!(", restart after {r} s"));
    }
    s
}
