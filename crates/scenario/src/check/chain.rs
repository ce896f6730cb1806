//! Causal chains: for every delivery after a file's first, the events that led to it, from the
//! injected fault at its root, in words.

use std::collections::BTreeMap;

use client::JobState;
use probe::Event;

use super::{MAX_DETAILED, tally::Tally};
use crate::{
    farm::BACKEND,
    log::Record,
    rates::Cause,
    spec::FailureKind,
    summary::{Chain, ChainStep, DuplicateFile},
    text::{secs, short},
    track::{Delivery, FileTrack, Step},
};

/// Folds a duplicated file in: a chain per extra delivery, each classified by cause; the
/// file detailed if fewer than [`MAX_DETAILED`] are.
pub(super) fn fold(t: &FileTrack, global: &[Record], tally: &mut Tally) {
    let chains = chains(t, global);
    tally.unexplained += chains.iter().filter(|c| c.cause.is_none()).count() as u64;
    for c in &chains {
        let e = tally.causes.entry(c.class.clone()).or_default();
        e.deliveries += 1;
        e.effects += u64::from(
            t.deliveries
                .get(c.delivery as usize - 1)
                .is_some_and(|d| d.effect),
        );
    }
    if tally.duplicates.len() < MAX_DETAILED {
        let mut nodes: Vec<String> = Vec::new();
        for d in &t.deliveries {
            if !nodes.contains(&d.node) {
                nodes.push(d.node.clone());
            }
        }
        tally.duplicates.push(DuplicateFile {
            file: t.file.clone(),
            job: t.job.clone(),
            deliveries: t.deliveries.len() as u64,
            effects: t.effects(),
            nodes,
            restarts: t.outcome.as_ref().map_or(0, |o| o.restarts),
            bytes_resent: t.outcome.as_ref().map_or(0, |o| o.bytes_resent),
            chains,
        });
    }
}

/// The cause of delivery `cur` after `prev`, from the events of its chain's window, in log
/// order: a Host-Id fallback if the client fell back (the node stayed down past the fallback
/// timeout), else the first event that can keep a delivered file's Ack from its client.
fn classify(prev: &Delivery, cur: &Delivery, seen: &[&Event]) -> Cause {
    let same = prev.node == cur.node;
    if seen.iter().any(|e| matches!(e, Event::HostFallback { .. })) {
        return Cause::HostIdFallback;
    }
    let struck = |e: &Event, kind: FailureKind| matches!(e, Event::FailureStruck { kind: k, .. } if k == kind.name());
    let lost_ack = if same {
        Cause::LostAckSameNode
    } else {
        Cause::LostAckOtherNode
    };
    // A non-overlapped recycle strikes, then kills the node.
    let mut recycling = false;
    for e in seen {
        match e {
            Event::FailureStruck { target, .. }
                if struck(e, FailureKind::PoolRecycle) && *target == prev.node =>
            {
                recycling = true;
            }
            Event::Crashed { host, .. } if *host == prev.node => {
                return if recycling {
                    Cause::PoolRecycle
                } else if same {
                    Cause::NodeDownSameNode
                } else {
                    Cause::NodeDownOtherNode
                };
            }
            Event::Crashed { host, .. } if host == BACKEND => return Cause::AppCrashAfterEffect,
            _ if struck(e, FailureKind::AppCrash) => return Cause::AppCrashAfterEffect,
            // (A slow answer that still came in time is no cause: only the node giving up.)
            Event::AppAnswered {
                node, status: None, ..
            } if *node == prev.node => return Cause::AppLateAnswer,
            Event::Partitioned { a, b }
                if (a == &prev.node || b == &prev.node) && (a == BACKEND || b == BACKEND) =>
            {
                return Cause::Partition;
            }
            Event::ConnectionCut { .. } => return lost_ack,
            _ if struck(e, FailureKind::ConnectionReset) => return lost_ack,
            Event::FaultFired { action, .. } if action.starts_with("drop-response") => {
                return lost_ack;
            }
            _ => {}
        }
    }
    Cause::Other
}

/// Words for one event of a chain; `None` for events that add nothing.
fn render(rec: &Record, first: bool) -> Option<String> {
    let t = secs(rec.t_ms);
    Some(match &rec.event {
        Event::Delivered {
            node,
            session,
            effect,
            ..
        } => {
            let s = session
                .as_deref()
                .map(|s| format!(" (session {})", short(s)))
                .unwrap_or_default();
            match (first, effect) {
                (true, _) => format!("{node} delivered it at {t}{s}"),
                (false, true) => format!("{node} delivered it again at {t}{s}"),
                (false, false) => format!(
                    "{node} delivered it again at {t}{s}, without effect: its transaction id was already applied"
                ),
            }
        }
        Event::Committed { node, .. } => {
            if first {
                format!("{node} placed it at its destination at {t}")
            } else {
                format!("{node} placed it at its destination again at {t}")
            }
        }
        Event::FaultFired {
            rule,
            actor,
            action,
            point,
            ..
        } => match point {
            Some(p) => format!("fault #{rule} fired on {actor} at {p}: {action} ({t})"),
            None => format!("fault #{rule} fired: {action} ({t})"),
        },
        Event::Crashed { host, kind } => {
            if *kind == probe::CrashKind::Kill {
                format!("{host} was killed before its Ack reached the client ({t})")
            } else {
                format!("{host} lost power ({t})")
            }
        }
        Event::Restarted { host, durable } => {
            format!(
                "{host} restarted at {t} with {} session state",
                if *durable {
                    "durable"
                } else {
                    "volatile (lost)"
                }
            )
        }
        Event::AppAnswered {
            node,
            status,
            error,
            ..
        } => match (status, error) {
            (Some(s), _) if (200..300).contains(s) => return None,
            (Some(s), _) => format!("the application answered {node} with HTTP {s} at {t}"),
            (None, Some(e)) => format!(
                "{node} got no answer from the application ({e}) at {t} and sent the client an error"
            ),
            (None, None) => return None,
        },
        Event::Forwarded { node, .. } => format!("{node} forwarded it to the application at {t}"),
        Event::CachedAckReplayed { node, .. } => {
            format!("{node} replayed its cached Ack at {t} (no new delivery)")
        }
        Event::SessionCreated { node, session, .. } => {
            format!("{node} created session {} at {t}", short(session))
        }
        Event::SessionNotFound { node, .. } => format!("{node} did not know the session ({t})"),
        Event::SessionExpired { node, .. } => format!("{node} expired the session at {t}"),
        Event::SessionCancelled { node, .. } => format!("{node} cancelled the session at {t}"),
        Event::UploadRestart { acknowledged, .. } => format!(
            "the client restarted the upload from byte 0 at {t} ({acknowledged} bytes had been acknowledged)"
        ),
        Event::RetryScheduled {
            delay_ms, target, ..
        } => format!(
            "the client got an error at {t} and retried {target} after {}",
            secs(*delay_ms)
        ),
        Event::HostIdLearned { host_id, .. } => {
            format!("the client was told to use BITS-Host-Id {host_id}")
        }
        Event::HostFallback { from, to, .. } => format!(
            "the Host-Id fallback timer expired: the client returned from {from} to {to} at {t}"
        ),
        Event::JobState { state, .. } => match state {
            JobState::Transferred => format!("the client got the final Ack at {t}"),
            JobState::Error => format!("the job failed at {t}"),
            _ => return None,
        },
        Event::FailureStruck {
            process,
            kind,
            what,
            ..
        } => format!("failure #{process} ({kind}): {what} ({t})"),
        Event::Partitioned { a, b } => format!("{a} and {b} were partitioned at {t}"),
        Event::Healed { a, b } => format!("the partition between {a} and {b} healed at {t}"),
        Event::HostIdToggled { enabled } => format!(
            "BITSHostId was switched {} at {t}",
            if *enabled { "on" } else { "off" }
        ),
        _ => return None,
    })
}

fn render_step(step: &Step) -> Option<ChainStep> {
    match step {
        Step::At(rec) => render(rec, false).map(|text| ChainStep {
            t_ms: rec.t_ms,
            text,
        }),
        Step::Retrying {
            target,
            first_ms,
            last_ms,
            failures,
            delay_ms,
            error,
            ..
        } => {
            let text = if *failures == 1 {
                let then = if *delay_ms > 0 {
                    format!(", retried after {}", secs(*delay_ms))
                } else {
                    String::new()
                };
                format!(
                    "the request to {target} failed at {} ({error}){then}",
                    secs(*first_ms)
                )
            } else {
                format!(
                    "{failures} requests to {target} failed between {} and {} ({error}), retried every {}",
                    secs(*first_ms),
                    secs(*last_ms),
                    secs(*delay_ms)
                )
            };
            Some(ChainStep {
                t_ms: *first_ms,
                text,
            })
        }
    }
}

/// The chain behind each delivery after the first.
fn chains(t: &FileTrack, global: &[Record]) -> Vec<Chain> {
    let pos = |seq: u64| {
        t.story
            .iter()
            .position(|s| matches!(s, Step::At(r) if r.seq == seq))
    };
    let mut out = Vec::new();
    for k in 1..t.deliveries.len() {
        let (prev, cur) = (&t.deliveries[k - 1], &t.deliveries[k]);
        let mut steps: BTreeMap<u64, ChainStep> = BTreeMap::new();
        // Candidate causes: (rule is none, seq, text, rule).
        let mut causes: Vec<(bool, u64, String, Option<usize>)> = Vec::new();
        let mut note_cause = |seq: u64, rec: &Record| {
            let found = match &rec.event {
                Event::FaultFired {
                    rule,
                    action,
                    actor,
                    point,
                    ..
                } => Some((
                    match point {
                        Some(p) => format!("fault #{rule}: {action} when {actor} reached {p}"),
                        None => format!("fault #{rule}: {action}"),
                    },
                    Some(*rule),
                )),
                Event::Crashed { host, kind } => Some((
                    format!(
                        "{host} {}",
                        if *kind == probe::CrashKind::Kill {
                            "was killed"
                        } else {
                            "lost power"
                        }
                    ),
                    None,
                )),
                Event::Partitioned { a, b } => {
                    Some((format!("{a} and {b} were partitioned"), None))
                }
                Event::FailureStruck {
                    process,
                    kind,
                    what,
                    ..
                } => Some((format!("failure #{process} ({kind}): {what}"), None)),
                _ => None,
            };
            if let Some((text, rule)) = found {
                causes.push((rule.is_none(), seq, text, rule));
            }
        };
        // The window: everything after the delivery before `prev` (the whole story for the
        // first duplicate) up to `cur`. What kept `prev`'s Ack from the client may have
        // happened just before `prev` itself (a connection cut before the node forwarded).
        // (For the first duplicate, nothing before the file's own first event.)
        let from_seq = if k >= 2 {
            t.deliveries[k - 2].seq
        } else {
            t.story.first().map_or(0, |s| s.seq().saturating_sub(1))
        };
        let start = if k >= 2 {
            pos(from_seq).map(|p| p + 1)
        } else {
            Some(0)
        };
        // (seq, event) of the window, for the cause's class.
        let mut seen: Vec<(u64, &Event)> = Vec::new();
        if let (Some(a), Some(b)) = (start, pos(cur.seq)) {
            for step in &t.story[a..=b] {
                let cs = match step {
                    Step::At(r) => {
                        seen.push((r.seq, &r.event));
                        note_cause(r.seq, r);
                        let delivery =
                            matches!(r.event, Event::Delivered { .. } | Event::Committed { .. });
                        render(r, delivery && r.seq != cur.seq)
                            .map(|text| ChainStep { t_ms: r.t_ms, text })
                    }
                    Step::Retrying { .. } => render_step(step),
                };
                if let Some(cs) = cs {
                    steps.insert(step.seq(), cs);
                }
            }
        }
        let hosts = [
            prev.node.as_str(),
            cur.node.as_str(),
            "backend",
            t.client.as_str(),
        ];
        for r in global
            .iter()
            .filter(|r| r.seq > from_seq && r.seq < cur.seq)
        {
            let relevant = match &r.event {
                Event::Crashed { host, .. } | Event::Restarted { host, .. } => {
                    hosts.contains(&host.as_str())
                }
                Event::Partitioned { a, b } | Event::Healed { a, b } => {
                    hosts.contains(&a.as_str()) || hosts.contains(&b.as_str())
                }
                Event::FaultFired { actor, .. } => {
                    hosts.contains(&actor.as_str()) || actor == "farm"
                }
                Event::HostIdToggled { .. } => true,
                Event::FailureStruck { target, .. } => hosts.contains(&target.as_str()),
                _ => false,
            };
            if relevant {
                seen.push((r.seq, &r.event));
                note_cause(r.seq, r);
                if let Some(text) = render(r, false) {
                    steps.insert(r.seq, ChainStep { t_ms: r.t_ms, text });
                }
            }
        }
        let steps: Vec<ChainStep> = steps.into_values().collect();
        let sentence = steps
            .iter()
            .map(|s| s.text.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        // The cause: the earliest fault after `prev` (it kept `prev`'s Ack from the client),
        // or else the latest fault before it. Fault rules before bare crashes or partitions.
        let (after, before): (Vec<_>, Vec<_>) = causes.into_iter().partition(|c| c.1 > prev.seq);
        let cause = after
            .into_iter()
            .min_by_key(|(no_rule, seq, _, _)| (*no_rule, *seq))
            .or_else(|| {
                before
                    .into_iter()
                    .min_by_key(|(no_rule, seq, _, _)| (*no_rule, u64::MAX - *seq))
            });
        out.push(Chain {
            class: {
                // What kept `prev`'s Ack from the client happened after it, as a rule; only
                // if nothing there is telling, the whole window.
                seen.sort_by_key(|(seq, _)| *seq);
                let after: Vec<&Event> = seen
                    .iter()
                    .filter(|(seq, _)| *seq > prev.seq)
                    .map(|(_, e)| *e)
                    .collect();
                match classify(prev, cur, &after) {
                    Cause::Other => {
                        let all: Vec<&Event> = seen.iter().map(|(_, e)| *e).collect();
                        classify(prev, cur, &all)
                    }
                    c => c,
                }
                .name()
                .to_owned()
            },
            delivery: k as u64 + 1,
            rule: cause.as_ref().and_then(|c| c.3),
            cause: cause.map(|c| c.2),
            steps,
            sentence,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(event: Event) -> Record {
        Record {
            v: 1,
            seq: 1,
            t_ms: 1500,
            event,
        }
    }

    #[test]
    fn chain_steps_in_words() {
        // K7: the step of a cancelled session (and the type-0 placements beside it).
        let cancelled = Event::SessionCancelled {
            node: "node-1".into(),
            session: "{S}".into(),
            file: "/f".into(),
        };
        assert_eq!(
            render(&rec(cancelled), false).as_deref(),
            Some("node-1 cancelled the session at 1.5 s")
        );
        let committed = || Event::Committed {
            node: "node-2".into(),
            session: "{S}".into(),
            file: "/f".into(),
        };
        assert_eq!(
            render(&rec(committed()), true).as_deref(),
            Some("node-2 placed it at its destination at 1.5 s")
        );
        assert_eq!(
            render(&rec(committed()), false).as_deref(),
            Some("node-2 placed it at its destination again at 1.5 s")
        );
    }
}
