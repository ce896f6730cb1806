//! Steering a running farm from outside: the live farm's control API (`farm --control`) calls
//! this. Everything it does to the farm is a fault rule, so the event log, the causal chains
//! and the report explain it like a rule of the scenario file: `POST /nodes/node-1/crash` adds
//! the timed rule "crash at 12.5 s on node-1" and fires it at once; `POST /faults` adds any
//! rule a `[[fault]]` table can say, checked as the loader checks one.

use std::sync::Arc;

use node::{Notification, NotificationLog};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::{
    farm::Network,
    fault::{Command, Harness, RuleState},
    spec::{Action, Fault, Scenario},
};

/// One host of the farm, as `GET /nodes` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostState {
    /// `node-1`, ..., or `backend`.
    pub name: String,
    /// Where it is reached (its `BITS-Host-Id` when that is on).
    pub address: String,
    /// Whether it is up.
    pub up: bool,
    /// Sessions open on it (nodes that are up).
    pub sessions: Option<u64>,
}

/// A handle on a running farm. Clones share it.
#[derive(Clone)]
pub struct Control {
    inner: Arc<Inner>,
}

struct Inner {
    scenario: Scenario,
    harness: Arc<Harness>,
    net: Arc<dyn Network>,
    ctl: mpsc::UnboundedSender<Command>,
    notifications: Arc<NotificationLog>,
}

impl Control {
    pub(crate) fn new(
        scenario: Scenario,
        harness: Arc<Harness>,
        net: Arc<dyn Network>,
        ctl: mpsc::UnboundedSender<Command>,
        notifications: Arc<NotificationLog>,
    ) -> Control {
        Control {
            inner: Arc::new(Inner {
                scenario,
                harness,
                net,
                ctl,
                notifications,
            }),
        }
    }

    /// The farm's hosts: every node, then the built-in application if it runs.
    pub async fn hosts(&self) -> Vec<HostState> {
        let (tx, rx) = oneshot::channel();
        if self.inner.ctl.send(Command::Hosts(tx)).is_err() {
            return Vec::new();
        }
        let sessions = rx.await.unwrap_or_default();
        sessions
            .into_iter()
            .map(|(name, sessions)| HostState {
                address: self.inner.net.advertise(&name),
                up: self.inner.net.is_up(&name),
                sessions,
                name,
            })
            .collect()
    }

    /// Every rule of the run: the scenario's, then those added.
    pub fn faults(&self) -> Vec<RuleState> {
        self.inner.harness.rule_states()
    }

    /// Adds a rule (the keys of a `[[fault]]` table); its id, or what is wrong with it.
    pub fn add_fault(&self, fault: &Fault) -> Result<usize, String> {
        self.check(fault)?;
        if fault.at_s.is_some_and(|at| at < self.inner.harness.now_s()) {
            return Err(format!(
                "at_s: {} s has passed (the farm has run {:.1} s); leave it out to act now",
                fault.at_s.unwrap_or_default(),
                self.inner.harness.now_s()
            ));
        }
        let id = self.inner.harness.add_rule(fault);
        if let Some(at) = fault.at_s {
            self.inner.harness.arm_timed(id, at);
        }
        Ok(id)
    }

    /// Removes rule `id`: it matches and fires no more.
    pub fn remove_fault(&self, id: usize) -> Result<(), String> {
        if self.inner.harness.remove_rule(id) {
            Ok(())
        } else {
            Err(format!("no rule {id} to remove (GET /faults lists them)"))
        }
    }

    /// Carries out `action` on `host` now (`crash`, `power-cut`, `restart`), as a timed rule
    /// fired at once; the rule's id.
    pub fn act_on(
        &self,
        host: &str,
        action: Action,
        restart_after_s: Option<f64>,
    ) -> Result<usize, String> {
        let fault = Fault {
            at_s: Some(self.now()),
            node: Some(host.to_owned()),
            action: Some(action),
            restart_after_s,
            ..Fault::default()
        };
        self.add_now(&fault)
    }

    /// Switches `BITSHostId` on every node now; the rule's id.
    pub fn host_id(&self, enabled: bool) -> Result<usize, String> {
        let fault = Fault {
            at_s: Some(self.now()),
            action: Some(Action::HostId),
            enabled: Some(enabled),
            ..Fault::default()
        };
        self.add_now(&fault)
    }

    /// What the nodes sent to the server application, and how it answered.
    pub fn ledger(&self) -> Vec<Notification> {
        self.inner.notifications.snapshot()
    }

    /// The run's time to a tenth of a second, for a rule's words ("at 12.5 s").
    fn now(&self) -> f64 {
        (self.inner.harness.now_s() * 10.0).floor() / 10.0
    }

    /// A rule checked as the loader checks one, and one the live farm can carry out.
    fn check(&self, fault: &Fault) -> Result<(), String> {
        crate::load::check_added_fault(&self.inner.scenario, fault)?;
        match crate::live::cannot(fault) {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }

    fn add_now(&self, fault: &Fault) -> Result<usize, String> {
        self.check(fault)?;
        let id = self.inner.harness.add_rule(fault);
        self.inner.harness.fire_timed(id);
        Ok(id)
    }
}

/// Where a live run hands its [`Control`] once the farm is up.
pub type ControlSlot = oneshot::Sender<Control>;
