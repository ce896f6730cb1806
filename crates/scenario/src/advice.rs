//! What a run's result means and what to change: the verdict line every report opens with,
//! and advice drawn from the causes of its duplicates and the settings it ran with, each with
//! the sweep that measures it.
//!
//! The verdict tells apart "the scenario showed the problem it was written to show" from "no
//! problem": a green PASS above a duplicate delivery misleads otherwise.

use crate::{rates::Cause, spec::SessionState, summary::Summary, text::duration};

/// `1 lost upload`, `3 lost uploads`.
fn ordinal_count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// How a run went, in one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// `pass` (nothing went wrong), `expected` (the problem the scenario expects showed),
    /// `warn` (the invariants held but the run showed a problem nobody expected), `fail`.
    pub class: &'static str,
    /// The line.
    pub text: String,
}

/// One thing to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advice {
    /// The duplicates it answers (cause names), or `effects`.
    pub about: String,
    /// What to change and why, in words (`backticked` keys).
    pub text: String,
    /// The sweep that measures it.
    pub sweep: String,
}

/// The problems a run showed, in words (`1 duplicate delivery (1 with an effect)`).
fn problems(s: &Summary) -> Vec<String> {
    let m = &s.metrics;
    let mut p = Vec::new();
    if m.duplicate_deliveries > 0 {
        p.push(format!(
            "{} ({} with an effect on the application)",
            ordinal_count(
                m.duplicate_deliveries,
                "duplicate delivery",
                "duplicate deliveries"
            ),
            m.duplicate_effects
        ));
    }
    if m.lost > 0 {
        p.push(ordinal_count(m.lost, "lost upload", "lost uploads"));
    }
    if m.failed > 0 {
        p.push(ordinal_count(m.failed, "failed job", "failed jobs"));
    }
    if m.restarts > 0 {
        p.push(ordinal_count(
            m.restarts,
            "restart from byte 0",
            "restarts from byte 0",
        ));
    }
    p
}

/// The verdict of a run.
pub fn verdict(s: &Summary) -> Verdict {
    if !s.ok {
        let mut failed: Vec<String> = s
            .expectations
            .iter()
            .filter(|e| !e.held)
            .map(|e| format!("expectation `{} {}`", e.name, e.expected))
            .collect();
        failed.extend(
            s.invariants
                .iter()
                .filter(|i| !i.held)
                .map(|i| format!("invariant `{}`", i.name)),
        );
        return Verdict {
            class: "fail",
            text: format!("FAIL: {} did not hold", failed.join(", ")),
        };
    }
    let problems = problems(s);
    if problems.is_empty() {
        return Verdict {
            class: "pass",
            text: if s.metrics.files > 0 {
                "PASS, no problem: every file was delivered exactly once".into()
            } else {
                "PASS: every invariant held".into()
            },
        };
    }
    // A checked expectation that held names a metric that went wrong: the scenario was
    // written to show it. (An expectation about something else says nothing of the problem.)
    let m = &s.metrics;
    let wrong = [
        ("duplicate_deliveries", m.duplicate_deliveries),
        ("files_duplicated", m.files_duplicated),
        ("duplicate_effects", m.duplicate_effects),
        ("lost", m.lost),
        ("failed", m.failed),
        ("restarts", m.restarts),
    ];
    let expected = s
        .expectations
        .iter()
        .any(|e| e.held && wrong.iter().any(|&(name, n)| n > 0 && e.name == name));
    if expected {
        Verdict {
            class: "expected",
            text: format!(
                "PASS: the scenario showed what it expects: {}",
                problems.join(", ")
            ),
        }
    } else {
        Verdict {
            class: "warn",
            text: format!(
                "PASS (the invariants held), but the run showed {}: see what to change",
                problems.join(", ")
            ),
        }
    }
}

/// The scenario argument a sweep command names: the one the run was replayed with.
fn scenario_arg(replay: &str, name: &str) -> String {
    replay.split_whitespace().nth(2).unwrap_or(name).to_owned()
}

/// What to change, from the causes of the run's duplicates and the settings it ran with.
pub fn what_to_change(s: &Summary) -> Vec<Advice> {
    let r = &s.resolved;
    let sc = scenario_arg(&s.replay, &s.scenario);
    let sweep = |vary: &str| format!("bitsfarm sweep {sc} {vary} --seeds 20");
    let mut causes: Vec<Cause> = Vec::new();
    for d in &s.duplicates {
        for c in &d.chains {
            if let Some(cause) = Cause::parse(&c.class)
                && !causes.contains(&cause)
            {
                causes.push(cause);
            }
        }
    }
    for c in &s.rates.causes {
        if let Some(cause) = Cause::parse(&c.cause)
            && !causes.contains(&cause)
        {
            causes.push(cause);
        }
    }
    causes.sort_by_key(|c| Cause::ALL.iter().position(|x| x == c));
    let mut out = Vec::new();
    let names = |cs: &[Cause]| {
        cs.iter()
            .filter(|c| causes.contains(c))
            .map(|c| c.name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let other_node = [
        Cause::LostAckOtherNode,
        Cause::NodeDownOtherNode,
        Cause::HostIdFallback,
    ];
    if other_node.iter().any(|c| causes.contains(c)) {
        let text = if !r.farm.host_id {
            "A retry reached a node that did not know the session, and the file was uploaded and delivered again. Set BITSHostId on every node (`farm.host_id = true`) so a client's retries go back to the node that holds its session; with durable session state (`farm.session_state = durable`) that node replays its cached Ack instead of forwarding the file again.".to_owned()
        } else if r.farm.fallback_timeout_s <= r.clients.retry_delay_s {
            format!(
                "The Host-Id fallback timeout ({}) is not longer than the clients' retry delay ({}): the first retry after a failure already goes back to the shared address and another node. Raise `farm.fallback_timeout_s` well above the retry delay, and above your longest node outage.",
                duration(r.farm.fallback_timeout_s as f64),
                duration(r.clients.retry_delay_s as f64)
            )
        } else {
            format!(
                "Clients gave up on their node after the Host-Id fallback timeout ({}) while it was down, and uploaded again elsewhere. Raise `farm.fallback_timeout_s` above your longest node outage, or bring nodes back sooner; only transaction ids with dedupe remove the duplicate effect.",
                duration(r.farm.fallback_timeout_s as f64)
            )
        };
        out.push(Advice {
            about: names(&other_node),
            text,
            sweep: sweep(
                "--vary farm.host_id=true,false --vary farm.session_state=durable,volatile",
            ),
        });
    }
    let same_node = [Cause::LostAckSameNode, Cause::NodeDownSameNode];
    if same_node.iter().any(|c| causes.contains(c)) {
        let text = if r.farm.session_state == SessionState::Volatile {
            "The node forwarded the file again to the application after it came back or after a retry. Keep session state durable (`farm.session_state = durable`, the IIS default) so a node that comes back still knows the session and replays its Ack.".to_owned()
        } else {
            "The node had not recorded the application's answer when the Ack was lost or it died, so the retry was forwarded again. Nothing in the farm closes that window; transaction ids with application dedupe remove the duplicate effect.".to_owned()
        };
        out.push(Advice {
            about: names(&same_node),
            text,
            sweep: sweep("--vary farm.session_state=durable,volatile"),
        });
    }
    if causes.contains(&Cause::AppLateAnswer) {
        out.push(Advice {
            about: Cause::AppLateAnswer.name().into(),
            text: format!(
                "The application answered after the node's deadline (`farm.app_deadline_s`: {}), so the node had the client retry and forwarded the file again. Answer sooner (take the file, queue the work, answer at once), or raise the deadline above the application's slowest answer.",
                duration(r.farm.app_deadline_s as f64)
            ),
            sweep: sweep(&format!(
                "--vary farm.app_deadline_s={},{}",
                r.farm.app_deadline_s,
                r.farm.app_deadline_s * 3
            )),
        });
    }
    let only_dedupe = [
        Cause::AppCrashAfterEffect,
        Cause::Partition,
        Cause::PoolRecycle,
        Cause::Late,
        Cause::Other,
    ];
    let undeduped = !(r.clients.transaction_id && r.backend.dedupe);
    if s.metrics.duplicate_effects > 0
        || (undeduped && only_dedupe.iter().any(|c| causes.contains(c)))
    {
        out.push(Advice {
            about: "effects".into(),
            text: if undeduped {
                "Whatever the farm does, the application can receive a file twice (it may act and die before answering). Only a transaction id in the data removes the duplicate effect: have the clients send one (`clients.transaction_id = true`) and the application apply each id once (`backend.dedupe = true`).".into()
            } else {
                "Duplicate effects despite transaction ids and dedupe: the application's record of applied ids did not survive; keep it durable.".into()
            },
            sweep: sweep("--vary clients.transaction_id=false,true --set backend.dedupe=true"),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sweep_names_the_scenario_as_replayed() {
        assert_eq!(
            scenario_arg("bitsfarm scenario my/farm.toml --seed 3", "x"),
            "my/farm.toml"
        );
        assert_eq!(scenario_arg("", "x"), "x");
    }
}
