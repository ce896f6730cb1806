//! Faults as data: the rules of a scenario matched against fault points and virtual time, and
//! the harness probe through which the simulated actors report events and meet the rules.
//!
//! A rule sees an event (a fault point with its context, or a moment in virtual time) and
//! returns a verdict, in the spirit of turmoil's `Rule::on_packet`. Network effects (crash,
//! cut, partition) happen synchronously inside the probe call, so a crash "after forward"
//! severs the connection before the node's Ack can reach the client; the node's and backend's
//! tasks are stopped by the farm controller.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use probe::{Clock, Event, FaultCtx, FaultPoint, Probe, Verdict};
use rand::RngExt as _;
use rand_chacha::ChaCha8Rng;
use sim::{CrashKind, Net};

/// What the harness needs of the network to carry out fault rules: the simulator's
/// [`sim::Net`], or (for the live farm) real sockets behind balancers. Fault rules are written
/// once, against this.
pub trait Fabric: Send + Sync + 'static {
    /// Takes a host down: its connections are reset (kill) or go silent (power cut), and new
    /// ones to it fail the same way.
    fn crash(&self, host: &str, kind: CrashKind);
    /// Cuts one connection, by the number its listener gave it; whether it was open.
    fn cut(&self, conn: u64, reason: &str) -> bool;
    /// Partitions two parties until healed.
    fn partition(&self, a: &str, b: &str);
}

impl Fabric for Net {
    fn crash(&self, host: &str, kind: CrashKind) {
        Net::crash(self, host, kind);
    }

    fn cut(&self, conn: u64, reason: &str) -> bool {
        Net::cut(self, conn, reason)
    }

    fn partition(&self, a: &str, b: &str) {
        Net::partition(self, a, b);
    }
}
use tokio::sync::mpsc;

use crate::{
    log::{EventLog, Sink},
    rule::{Rule, RuleAction, Trigger, When},
    spec::Fault,
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
    /// Recycle a node's worker with overlap: a new worker takes new connections, the old one
    /// finishes its requests in flight.
    Recycle { host: String },
    /// Tell the farm's hosts and the sessions open on each (the control API).
    Hosts(tokio::sync::oneshot::Sender<Vec<(String, Option<u64>)>>),
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

/// A rule with its counters.
struct Armed {
    rule: Rule,
    /// The table it was made from (the control API shows it).
    source: Fault,
    hits: u64,
    fired: u64,
    /// Taken out of a running farm (the control API): it no longer matches or fires.
    removed: bool,
}

impl Armed {
    fn new(index: usize, f: &Fault) -> Armed {
        Armed {
            rule: Rule::parse(index, f),
            source: f.clone(),
            hits: 0,
            fired: 0,
            removed: false,
        }
    }
}

/// A rule as the live farm's control API shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RuleState {
    /// Its id: the position in the run's rules (the scenario's first, then those added).
    pub id: usize,
    /// The rule in words.
    pub description: String,
    /// Matching hits seen.
    pub hits: u64,
    /// Times it fired.
    pub fired: u64,
    /// Whether it was removed.
    pub removed: bool,
    /// The rule, with the keys of a `[[fault]]` table.
    pub rule: Fault,
}

struct Inner {
    log: EventLog,
    tracker: Tracker,
    rules: Vec<Armed>,
    rng: ChaCha8Rng,
    down: BTreeSet<String>,
    /// Nodes whose disk is full, until this virtual time (ms).
    full: BTreeMap<String, u64>,
    /// The failure processes asked at fault points.
    hits: crate::failure::Hits,
}

/// Most events one run may record, unless the scenario plans more work ([`event_budget`]). A
/// run that gets there is stopped and fails (`completed`): a scenario whose clients retry for
/// years would otherwise run for hours. The bench's 100,000-file run records about 2 million.
pub const MAX_EVENTS: u64 = 10_000_000;

/// Events per planned upload and per planned fragment in a run's budget: a clean upload
/// records about 12 events plus 2 per fragment; the rest is room for retries.
const EVENTS_PER_UPLOAD: u64 = 40;
const EVENTS_PER_FRAGMENT: u64 = 4;

/// The events a run of `s` may record: [`MAX_EVENTS`], or more when its planned uploads and
/// fragments need more, so that every scenario the loader accepts (up to 1,000,000 files, a
/// workload of up to 10,000,000 uploads) can complete.
pub fn event_budget(s: &crate::Scenario) -> u64 {
    let c = &s.clients;
    let files = u64::from(c.count) * u64::from(c.files_per_client);
    let largest = c.file_size_max.unwrap_or(c.file_size).max(c.file_size);
    let mut uploads = files;
    let mut fragments = files.saturating_mul(largest.div_ceil(c.fragment_size.max(1)).max(1));
    if let Some(w) = &s.workload {
        // Poisson arrivals: the expected count, with room for a high draw.
        let expected = (w.uploads_per_hour * 24.0 * w.duration_days * 1.2) as u64 + 1000;
        let high = crate::dist::Sampler::of(&w.file_size).high() as u64;
        uploads = uploads.saturating_add(expected);
        fragments = fragments
            .saturating_add(expected.saturating_mul(high.div_ceil(w.fragment_size.max(1)).max(1)));
    }
    let planned = uploads
        .saturating_mul(EVENTS_PER_UPLOAD)
        .saturating_add(fragments.saturating_mul(EVENTS_PER_FRAGMENT));
    MAX_EVENTS.max(planned)
}

/// The probe every simulated actor reports to.
pub(crate) struct Harness {
    clock: Clock,
    inner: Mutex<Inner>,
    /// The network holds the harness as its probe; [`Harness::detach`] breaks the cycle at the
    /// end of a run.
    net: Mutex<Option<std::sync::Arc<dyn Fabric>>>,
    ctl: mpsc::UnboundedSender<Command>,
    /// Set once the run recorded `max_events` events; the farm stops the run.
    over_budget: tokio::sync::watch::Sender<bool>,
    max_events: u64,
}

/// One fired rule, to apply outside the lock.
struct Firing {
    rule: Rule,
}

impl Harness {
    /// The harness of a run of `scenario` with `seed`: its fault rules and per-hit failure
    /// processes, each with its generator from the seed.
    pub(crate) fn new(
        clock: Clock,
        scenario: &crate::spec::Scenario,
        seed: u64,
        tracker: Tracker,
        sink: Option<Sink>,
        ctl: mpsc::UnboundedSender<Command>,
        max_events: u64,
    ) -> Arc<Harness> {
        let faults = &scenario.faults;
        let rng: ChaCha8Rng = crate::farm::entity_rng(seed, "faults", 0);
        let hits = crate::failure::Hits::new(scenario, seed);
        Arc::new(Harness {
            clock,
            inner: Mutex::new(Inner {
                log: EventLog::new(sink),
                tracker,
                rules: faults
                    .iter()
                    .enumerate()
                    .map(|(i, f)| Armed::new(i, f))
                    .collect(),
                rng,
                down: BTreeSet::new(),
                full: BTreeMap::new(),
                hits,
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

    pub(crate) fn set_net(&self, net: std::sync::Arc<dyn Fabric>) {
        let mut slot = self.net.lock().unwrap_or_else(|p| p.into_inner());
        assert!(slot.is_none(), "the harness's network is set once");
        *slot = Some(net);
    }

    /// Forgets the network (the end of a run), so neither keeps the other alive.
    pub(crate) fn detach(&self) {
        self.net.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    fn net(&self) -> std::sync::Arc<dyn Fabric> {
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
                description: if r.removed {
                    format!("{} (removed while the farm ran)", r.rule.description)
                } else {
                    r.rule.description.clone()
                },
                hits: r.hits,
                fired: r.fired,
                // A removed rule was not meant to fire any more.
                optional: r.rule.optional || r.removed,
            })
            .collect()
    }

    /// Every rule with its counters (the control API's `GET /faults`).
    pub(crate) fn rule_states(&self) -> Vec<RuleState> {
        self.lock()
            .rules
            .iter()
            .enumerate()
            .map(|(id, r)| RuleState {
                id,
                description: r.rule.description.clone(),
                hits: r.hits,
                fired: r.fired,
                removed: r.removed,
                rule: r.source.clone(),
            })
            .collect()
    }

    /// Adds a rule the caller validated to the running farm; its id. A timed rule fires when
    /// the caller arms it ([`Harness::arm_timed`]) or fires it.
    pub(crate) fn add_rule(&self, f: &Fault) -> usize {
        let mut inner = self.lock();
        let index = inner.rules.len();
        inner.rules.push(Armed::new(index, f));
        index
    }

    /// Takes a rule out of the running farm; false if there is no such rule or it is out
    /// already.
    pub(crate) fn remove_rule(&self, index: usize) -> bool {
        let mut inner = self.lock();
        match inner.rules.get_mut(index) {
            Some(r) if !r.removed => {
                r.removed = true;
                true
            }
            _ => false,
        }
    }

    /// Seconds since the run started (the farm's clock).
    pub(crate) fn now_s(&self) -> f64 {
        self.clock.now_ms() as f64 / 1000.0
    }

    /// Fires timed rule `index` at `at_s` seconds of the run's time (at once if that has
    /// passed).
    pub(crate) fn arm_timed(self: &Arc<Self>, index: usize, at_s: f64) {
        let when = self.clock.epoch() + Duration::from_secs_f64(at_s);
        let h = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(when).await;
            h.fire_timed(index);
        });
    }

    /// A host is up again (restarted): its events count again.
    pub(crate) fn mark_up(&self, host: &str) {
        self.lock().down.remove(host);
    }

    /// Records that failure process `process` struck `target`.
    pub(crate) fn strike(
        &self,
        process: usize,
        kind: crate::spec::FailureKind,
        target: &str,
        what: String,
        session: Option<&str>,
        file: Option<&str>,
    ) {
        self.event(Event::FailureStruck {
            process,
            kind: kind.name().to_owned(),
            target: target.to_owned(),
            what,
            session: session.map(str::to_owned),
            file: file.map(str::to_owned),
        });
    }

    /// Takes `host` down now (its connections break) and has the farm stop it, and start it
    /// again after `restart_after` seconds if given.
    pub(crate) fn crash(&self, host: &str, kind: CrashKind, restart_after: Option<f64>) {
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
        let rule = &f.rule;
        let point = match &rule.trigger {
            Trigger::Point { point, .. } => Some(*point),
            Trigger::At { .. } => None,
        };
        self.event(Event::FaultFired {
            rule: rule.index,
            point,
            actor: actor.to_owned(),
            action: rule.fired_text(actor, conn),
            session: session.map(str::to_owned),
            file: file.map(str::to_owned),
        });
        match &rule.action {
            RuleAction::Crash {
                kind,
                target,
                restart_after_s,
            } => {
                let target = target.resolve(actor);
                self.crash(target, *kind, *restart_after_s);
                // The crashed actor stops right here: nothing after the point happens.
                if target == actor {
                    Verdict::Fail(500)
                } else {
                    Verdict::Continue
                }
            }
            RuleAction::DropResponse => {
                self.net()
                    .cut(conn, &format!("fault #{} drop-response", rule.index));
                Verdict::Continue
            }
            RuleAction::Delay(secs) => Verdict::Delay(Duration::from_secs_f64(*secs)),
            RuleAction::Fail { status, code } => match code {
                Some(code) => Verdict::FailWith {
                    status: *status,
                    code: *code,
                },
                None => Verdict::Fail(*status),
            },
            RuleAction::Page(status) => Verdict::Page(*status),
            RuleAction::Cancel(client) => {
                let _ = self.ctl.send(Command::Cancel {
                    client: client.clone(),
                });
                Verdict::Continue
            }
            RuleAction::Partition { a, peer, duration } => {
                let a = a.resolve(actor).to_owned();
                self.net().partition(&a, peer);
                let _ = self.ctl.send(Command::Heal {
                    a,
                    b: peer.clone(),
                    after: *duration,
                });
                Verdict::Continue
            }
            RuleAction::Restart(host) => {
                let _ = self.ctl.send(Command::Restart {
                    host: host.resolve(actor).to_owned(),
                });
                Verdict::Continue
            }
            RuleAction::HostId(enabled) => {
                let _ = self.ctl.send(Command::HostId { enabled: *enabled });
                Verdict::Continue
            }
            RuleAction::Panic => panic!("fault #{} injected a panic in {actor}", rule.index),
            RuleAction::DiskFull { target, duration } => {
                let until = self
                    .clock
                    .now_ms()
                    .saturating_add(duration.as_millis() as u64);
                let mut inner = self.lock();
                let slot = inner
                    .full
                    .entry(target.resolve(actor).to_owned())
                    .or_default();
                *slot = (*slot).max(until);
                Verdict::Continue
            }
            RuleAction::IoError => Verdict::Fail(500),
        }
    }

    /// Fires timed rule `index` (its time has come).
    pub(crate) fn fire_timed(&self, index: usize) {
        let rule = {
            let mut inner = self.lock();
            let r = &mut inner.rules[index];
            if r.removed {
                return;
            }
            r.hits += 1;
            r.fired += 1;
            r.rule.clone()
        };
        let actor = match &rule.trigger {
            Trigger::At { actor, .. } => actor.clone(),
            Trigger::Point { .. } => unreachable!("only timed rules are fired by time"),
        };
        self.apply(&Firing { rule }, &actor, 0, None, None);
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
            for r in inner.rules.iter_mut() {
                if r.removed || !r.rule.matches(ctx.point, ctx.actor, ctx.packet, ctx.file) {
                    continue;
                }
                r.hits += 1;
                if r.rule.limit != 0 && r.fired >= r.rule.limit {
                    continue;
                }
                let fire = match &r.rule.trigger {
                    Trigger::Point {
                        when: When::Probability(p),
                        ..
                    } => inner.rng.random_bool(*p),
                    Trigger::Point {
                        when: When::Nth(n), ..
                    } => r.hits >= *n,
                    Trigger::At { .. } => false,
                };
                if fire {
                    r.fired += 1;
                    out.push(Firing {
                        rule: r.rule.clone(),
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
        if verdict == Verdict::Continue {
            let strike = {
                let mut inner = self.lock();
                if inner.hits.is_empty() {
                    None
                } else {
                    inner.hits.at(ctx)
                }
            };
            if let Some(st) = strike {
                self.strike(
                    st.process,
                    st.kind,
                    ctx.actor,
                    st.what,
                    ctx.session,
                    ctx.file,
                );
                if st.cut {
                    self.net().cut(
                        ctx.conn,
                        &format!("failure #{} {}", st.process, st.kind.name()),
                    );
                }
                if let Some(after) = st.crash_backend {
                    self.crash(ctx.actor, CrashKind::Kill, Some(after));
                }
                return st.verdict;
            }
        }
        if verdict == Verdict::Continue
            && ctx.point == FaultPoint::StorageWrite
            && self
                .lock()
                .full
                .get(ctx.actor)
                .is_some_and(|&until| self.clock.now_ms() < until)
        {
            return Verdict::DiskFull;
        }
        verdict
    }
}

#[cfg(test)]
mod budget_tests {
    use super::*;

    fn load(body: &str) -> crate::Scenario {
        crate::load_str(body, "budget", "budget").expect("a valid scenario")
    }

    #[test]
    fn every_scenario_the_loader_accepts_has_room_to_complete() {
        // A clean one-fragment upload records 15 events (666,667 such files filled the old
        // fixed budget of 10,000,000); each further fragment about 2.
        let small = load("[clients]\ncount = 10\nfiles_per_client = 1\n");
        assert_eq!(event_budget(&small), MAX_EVENTS);
        let most_files = load(
            "[clients]\ncount = 1000\nfiles_per_client = 1000\nfile_size = 4096\nfragment_size = 4096\n",
        );
        assert!(event_budget(&most_files) >= 2 * 15 * 1_000_000);
        let most_fragments = load(
            "[clients]\ncount = 10\nfiles_per_client = 1000\nfile_size = 4096000\nfragment_size = 4096\n",
        );
        assert!(event_budget(&most_fragments) >= 2 * (15 * 10_000 + 2 * 10_000_000));
        let workload = load(
            "deadline_days = 6\n[workload]\nduration_days = 5\nuploads_per_hour = 80000\nfile_size = 4096\nfragment_size = 4096\n",
        );
        assert!(event_budget(&workload) >= 2 * 15 * 9_600_000);
    }
}
