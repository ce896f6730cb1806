//! Fault rules as the harness uses them: each validated `[[fault]]` table parsed once, at load,
//! into a trigger, an action and a limit, with every default filled in. No use site re-defaults
//! an `Option` of the file format.

use std::time::Duration;

use probe::{CrashKind, FaultPoint};
use protocol::PacketType;

use crate::spec::{Action, Fault};

/// When a point rule fires among the hits that match it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum When {
    /// From the n-th matching hit on (1-based).
    Nth(u64),
    /// On each matching hit with this probability (drawn from the run's seed).
    Probability(f64),
}

/// What makes a rule fire.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// An actor reaches a fault point.
    Point {
        /// The point.
        point: FaultPoint,
        /// Only this actor's hits count (`node` of a point rule, except for a partition, where
        /// `node` is a side of the partition).
        actor: Option<String>,
        /// Only this packet's hits.
        packet: Option<PacketType>,
        /// Only this file's hits.
        file: Option<String>,
        /// Which hits fire.
        when: When,
    },
    /// A moment of virtual time.
    At {
        /// Since the start of the run.
        at: Duration,
        /// The actor the rule acts as (`node`, or the farm).
        actor: String,
    },
}

/// Who an action is done to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The actor that reached the point.
    Actor,
    /// A named party.
    Named(String),
}

impl Target {
    /// The party's name, given the actor at hand.
    pub fn resolve<'a>(&'a self, actor: &'a str) -> &'a str {
        match self {
            Target::Actor => actor,
            Target::Named(n) => n,
        }
    }
}

/// What a rule does when it fires.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleAction {
    /// Kill or power off a host; bring it back after `restart_after` (seconds), if set.
    Crash {
        /// Kill or power cut.
        kind: CrashKind,
        /// Which host.
        target: Target,
        /// When it restarts, seconds after the crash.
        restart_after_s: Option<f64>,
    },
    /// Cut the connection the request came on.
    DropResponse,
    /// The actor waits this many seconds.
    Delay(f64),
    /// Answer with an HTTP status (on a node, with this `BITS-Error-Code` if set).
    Fail {
        /// The status.
        status: u16,
        /// The HRESULT.
        code: Option<u32>,
    },
    /// Answer with a plain HTTP error page.
    Page(u16),
    /// Partition two parties for a while.
    Partition {
        /// One side.
        a: Target,
        /// The other side.
        peer: String,
        /// For how long.
        duration: Duration,
    },
    /// Start a crashed host again.
    Restart(Target),
    /// Switch `BITSHostId` on every node.
    HostId(bool),
    /// A client cancels its job.
    Cancel(String),
    /// The actor panics.
    Panic,
    /// A node's disk is full for a while.
    DiskFull {
        /// Whose disk.
        target: Target,
        /// For how long.
        duration: Duration,
    },
    /// The storage write at hand fails.
    IoError,
}

/// A fault rule, ready to match and fire.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Position in the scenario's `[[fault]]` list.
    pub index: usize,
    /// When it fires.
    pub trigger: Trigger,
    /// What it does.
    pub action: RuleAction,
    /// How many times it may fire (0: no limit).
    pub limit: u64,
    /// Whether it may stay unfired.
    pub optional: bool,
    /// The rule in words (reports and event text).
    pub description: String,
}

impl Rule {
    /// The rule of a `[[fault]]` table the loader validated (panics on a table it would have
    /// refused: a harness bug, not an input error).
    pub fn parse(index: usize, f: &Fault) -> Rule {
        let action_kind = f.action.expect("validated: every rule has an action");
        let seconds = |s: Option<f64>| Duration::from_secs_f64(s.unwrap_or(0.0));
        let named_or_actor = |timed: bool| match (&f.node, timed) {
            (Some(n), true) => Target::Named(n.clone()),
            _ => Target::Actor,
        };
        let trigger = match (f.point, f.at_s) {
            (Some(point), _) => Trigger::Point {
                point,
                actor: f.node.clone().filter(|_| action_kind != Action::Partition),
                packet: f.packet,
                file: f.file.clone(),
                when: match f.probability {
                    Some(p) => When::Probability(p),
                    None => When::Nth(f.nth.unwrap_or(1)),
                },
            },
            (None, Some(at_s)) => Trigger::At {
                at: Duration::from_secs_f64(at_s),
                actor: f.node.clone().unwrap_or_else(|| "farm".to_owned()),
            },
            (None, None) => unreachable!("validated: every rule has a trigger"),
        };
        let timed = f.point.is_none();
        let action = match action_kind {
            Action::Crash | Action::PowerCut => RuleAction::Crash {
                kind: if action_kind == Action::Crash {
                    CrashKind::Kill
                } else {
                    CrashKind::PowerCut
                },
                target: named_or_actor(timed),
                restart_after_s: f.restart_after_s,
            },
            Action::DropResponse => RuleAction::DropResponse,
            Action::Delay => RuleAction::Delay(f.duration_s.unwrap_or(0.0)),
            Action::Fail => RuleAction::Fail {
                status: f.status.unwrap_or(500),
                code: f
                    .code
                    .as_deref()
                    .and_then(|c| c.strip_prefix("0x"))
                    .map(|hex| u32::from_str_radix(hex, 16).expect("validated when loaded")),
            },
            Action::Page => RuleAction::Page(f.status.unwrap_or(502)),
            Action::Partition => RuleAction::Partition {
                a: f.node.clone().map_or(Target::Actor, Target::Named),
                peer: f.peer.clone().unwrap_or_default(),
                duration: seconds(f.duration_s),
            },
            Action::Restart => {
                RuleAction::Restart(f.node.clone().map_or(Target::Actor, Target::Named))
            }
            Action::HostId => RuleAction::HostId(f.enabled == Some(true)),
            Action::Cancel => RuleAction::Cancel(f.node.clone().unwrap_or_default()),
            Action::Panic => RuleAction::Panic,
            Action::DiskFull => RuleAction::DiskFull {
                target: named_or_actor(timed),
                duration: seconds(f.duration_s),
            },
            Action::IoError => RuleAction::IoError,
        };
        Rule {
            index,
            trigger,
            action,
            limit: f
                .times
                .unwrap_or(if f.probability.is_some() { 0 } else { 1 }),
            optional: f.optional,
            description: describe(f),
        }
    }

    /// Whether a hit at `point` by `actor` (for `packet` and `file`) matches the rule.
    pub fn matches(
        &self,
        point: FaultPoint,
        actor: &str,
        packet: Option<PacketType>,
        file: Option<&str>,
    ) -> bool {
        match &self.trigger {
            Trigger::Point {
                point: p,
                actor: a,
                packet: pk,
                file: fl,
                ..
            } => {
                *p == point
                    && a.as_deref().is_none_or(|a| a == actor)
                    && pk.is_none_or(|pk| Some(pk) == packet)
                    && fl.as_deref().is_none_or(|fl| Some(fl) == file)
            }
            Trigger::At { .. } => false,
        }
    }

    /// The words of the `fault_fired` event when the rule fires for `actor` (on connection
    /// `conn`).
    pub fn fired_text(&self, actor: &str, conn: u64) -> String {
        match &self.action {
            RuleAction::Crash { kind, target, .. } => {
                let action = if *kind == CrashKind::Kill {
                    "crash"
                } else {
                    "power-cut"
                };
                format!("{action} {}", target.resolve(actor))
            }
            RuleAction::Partition { a, peer, .. } => {
                let peer = if peer.is_empty() { "?" } else { peer };
                format!("partition {} from {peer}", a.resolve(actor))
            }
            RuleAction::HostId(enabled) => {
                format!("BITSHostId {}", if *enabled { "on" } else { "off" })
            }
            RuleAction::Delay(secs) => format!("delay {secs} s"),
            RuleAction::Fail { status, code } => match code {
                Some(code) => format!("fail with HTTP {status} 0x{code:08X}"),
                None => format!("fail with HTTP {status}"),
            },
            RuleAction::Page(status) => format!("answer with an HTTP {status} page"),
            RuleAction::Cancel(client) => {
                let client = if client.is_empty() { "?" } else { client };
                format!("{client} cancels its job")
            }
            RuleAction::DropResponse => format!("drop the response on connection {conn}"),
            RuleAction::Restart(host) => format!("restart {}", host.resolve(actor)),
            RuleAction::Panic => format!("panic in {actor}"),
            RuleAction::DiskFull { target, duration } => format!(
                "fill the disk of {} for {} s",
                target.resolve(actor),
                duration.as_secs_f64()
            ),
            RuleAction::IoError => "fail the storage write with an I/O error".to_owned(),
        }
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
            (None, Some(n)) if n > 1 => s.push_str(&format!(" ({} hit)", crate::text::ordinal(n))),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(toml_rule: &str) -> Rule {
        let sc = crate::load_str(&format!("[[fault]]\n{toml_rule}"), "t.toml", "t")
            .unwrap_or_else(|e| panic!("{e}"));
        Rule::parse(0, &sc.faults[0])
    }

    #[test]
    fn defaults_are_filled_in_once() {
        let r = rule("point = \"after-forward\"\nnode = \"node-2\"\naction = \"crash\"\n");
        assert_eq!(
            r.trigger,
            Trigger::Point {
                point: FaultPoint::AfterForward,
                actor: Some("node-2".into()),
                packet: None,
                file: None,
                when: When::Nth(1),
            }
        );
        assert_eq!(r.limit, 1);
        assert_eq!(r.fired_text("node-2", 0), "crash node-2");
        assert!(r.matches(FaultPoint::AfterForward, "node-2", None, None));
        assert!(!r.matches(FaultPoint::AfterForward, "node-1", None, None));

        let r = rule("point = \"request\"\nprobability = 0.5\naction = \"fail\"\nstatus = 503\n");
        assert_eq!(
            r.limit, 0,
            "probability rules are unlimited unless times says"
        );
        assert_eq!(
            r.action,
            RuleAction::Fail {
                status: 503,
                code: None
            }
        );

        let r = rule(
            "point = \"request\"\naction = \"fail\"\nstatus = 413\ncode = \"0x80200020\"\ntimes = 3\n",
        );
        assert_eq!(r.limit, 3);
        assert_eq!(
            r.action,
            RuleAction::Fail {
                status: 413,
                code: Some(0x8020_0020)
            }
        );
        assert_eq!(r.fired_text("node-1", 0), "fail with HTTP 413 0x80200020");
    }

    #[test]
    fn node_means_a_filter_a_target_or_a_side_by_the_rule() {
        // A partition at a point: node is a side, not a filter.
        let r = rule(
            "point = \"request\"\nnode = \"node-1\"\naction = \"partition\"\npeer = \"c00\"\nduration_s = 10\n",
        );
        assert!(r.matches(FaultPoint::Request, "node-3", None, None));
        assert_eq!(r.fired_text("node-3", 0), "partition node-1 from c00");
        // A timed crash: node is the target; the rule acts as that node.
        let r = rule("at_s = 5\nnode = \"node-2\"\naction = \"power-cut\"\n");
        assert!(matches!(r.trigger, Trigger::At { ref actor, .. } if actor == "node-2"));
        assert_eq!(r.fired_text("node-2", 0), "power-cut node-2");
        // A timed BITSHostId switch acts as the farm.
        let r = rule("at_s = 5\naction = \"host-id\"\nenabled = true\n");
        assert!(matches!(r.trigger, Trigger::At { ref actor, .. } if actor == "farm"));
        assert_eq!(r.fired_text("farm", 0), "BITSHostId on");
    }
}
