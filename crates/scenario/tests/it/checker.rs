//! The checker's secondary numbers and its choice of causes (test gaps K1–K9): each test would
//! fail on the mutant the audit found surviving.

use std::sync::{Arc, Mutex};

use client::{JobReport, JobState};
use probe::Event;
use scenario::{
    check::summarize,
    farm::{self, RunResult},
    log::Record,
    summary::{Chain, Summary},
    track::Tracker,
};

use crate::{run, scenario, shipped};

fn invariant_held(s: &Summary, name: &str) -> bool {
    s.invariants
        .iter()
        .find(|i| i.name == name)
        .unwrap_or_else(|| panic!("no invariant {name}"))
        .held
}

/// Every chain of the duplicated files.
fn chains(s: &Summary) -> Vec<&Chain> {
    s.duplicates.iter().flat_map(|d| &d.chains).collect()
}

#[test]
fn duplicate_effects_count_what_the_application_did_twice() {
    // K1: crash-after-forward applies the file twice; with transaction ids and dedupe, once.
    let s = run(&shipped("crash-after-forward"), 1);
    assert_eq!(
        (s.metrics.duplicate_deliveries, s.metrics.duplicate_effects),
        (1, 1)
    );
    let s = run(&shipped("transaction-id-dedup"), 1);
    assert!(s.metrics.duplicate_deliveries >= 1);
    assert_eq!(s.metrics.duplicate_effects, 0);
    assert_eq!(s.metrics.effects, s.metrics.files);
}

#[test]
fn durations_are_counted_in_seconds() {
    // K2: every file ends within a second except the duplicated one, which waited a day for
    // the Host-Id fallback.
    let s = run(&shipped("crash-after-forward"), 1);
    assert_eq!(s.durations.count(), s.metrics.files);
    assert_eq!(s.durations.quantile(0.5), 1.0);
    assert!(s.durations.quantile(1.0) >= 86_400.0, "{:?}", s.durations);
}

#[test]
fn exactly_one_of_dedupe_and_transaction_ids_is_not_a_broken_invariant() {
    // K4: without both, more than one effect per file is normal, not a failure.
    for (txid, dedupe) in [(true, false), (false, true)] {
        let mut sc = shipped("crash-after-forward");
        sc.clients.transaction_id = txid;
        sc.backend.dedupe = dedupe;
        let s = run(&sc, 1);
        assert_eq!(
            s.metrics.duplicate_effects, 1,
            "txid {txid}, dedupe {dedupe}"
        );
        assert!(invariant_held(&s, "dedupe_one_effect_per_transaction"));
    }
}

/// A run summary built from hand-made events: one file whose job uploaded `len` bytes with hash
/// `hash`, delivered with `delivered_hash`.
fn hand_made(delivered_hash: u64, delivered_len: u64) -> Summary {
    let sc = scenario("[farm]\nnotification = \"by-value\"\n");
    let mut tracker = Tracker::new(false);
    tracker.register("c00-f000", "/upload/c00-f000.bin", "c00");
    tracker.observe(&Record {
        v: 1,
        seq: 0,
        t_ms: 5,
        event: Event::Delivered {
            file: "/upload/c00-f000.bin".into(),
            txid: None,
            node: "node-1".into(),
            session: Some("{S}".into()),
            len: delivered_len,
            hash: delivered_hash,
            effect: true,
        },
    });
    let report = JobReport {
        name: "c00-f000".into(),
        file: "/upload/c00-f000.bin".into(),
        state: JobState::Acknowledged,
        error: None,
        total: 100,
        entity: client::Entity::memory(bytes::Bytes::new()),
        txid: None,
        final_acked: true,
        acknowledged: 100,
        restarts: 0,
        attempts: 1,
        transient_errors: 0,
        host_fallbacks: 0,
        bytes_sent: 100,
        sessions: vec!["{S}".into()],
        closed: true,
        transferred_ms: Some(5),
        finished_ms: 6,
        reply: None,
        history: Vec::new(),
    };
    tracker.finish(&report, 0xABCD);
    let result = RunResult {
        completed: true,
        virtual_time_ms: 6,
        events: 1,
        event_hash: "0".into(),
        tracker,
        rules: Vec::new(),
        ledger_deliveries: 1,
        panics: sim::Panics::default(),
        harness_failure: None,
    };
    summarize(&sc, 1, &result, "replay".into())
}

#[test]
fn a_delivery_whose_bytes_differ_is_counted_corrupted() {
    // K3: the integrity count and invariant on a positive case.
    let s = hand_made(0x1234, 100);
    assert_eq!(s.metrics.corrupted, 1);
    assert!(!invariant_held(&s, "integrity"));
    let s = hand_made(0xABCD, 99);
    assert_eq!(s.metrics.corrupted, 1, "a short delivery is corrupted too");
    let s = hand_made(0xABCD, 100);
    assert_eq!(s.metrics.corrupted, 0);
    assert!(invariant_held(&s, "integrity"));
}

#[test]
fn a_type_0_duplicate_reads_as_placing_the_file_twice() {
    // K5: notification type 0; the node dies after placing the file, and the client's retry
    // lands on another node that places it again.
    let s = run(
        &scenario(
            r#"
[farm]
nodes = 2
[clients]
retry_delay_s = 5
[[fault]]
point = "after-forward"
node = "node-1"
action = "crash"
"#,
        ),
        1,
    );
    assert_eq!(s.metrics.duplicate_deliveries, 1, "{}", s.to_text());
    let texts: Vec<&str> = chains(&s)[0]
        .steps
        .iter()
        .map(|x| x.text.as_str())
        .collect();
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("node-1 placed it at its destination at")),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("node-2 placed it at its destination again at")),
        "{texts:?}"
    );
}

#[test]
fn an_application_error_before_a_duplicate_is_in_its_chain() {
    // K6: the application records the delivery, then answers 500; the node retries it.
    let s = run(
        &scenario(
            r#"
[farm]
notification = "by-value"
[clients]
retry_delay_s = 5
[[fault]]
point = "effect-recorded"
action = "fail"
status = 500
"#,
        ),
        1,
    );
    assert_eq!(s.metrics.duplicate_deliveries, 1, "{}", s.to_text());
    let chain = chains(&s)[0];
    assert!(
        chain.steps.iter().any(|x| x
            .text
            .starts_with("the application answered node-1 with HTTP 500 at")),
        "{chain:?}"
    );
    assert_eq!(chain.rule, Some(0));
}

/// The first time a Delivered event happens in a run of `sc`, and where.
fn first_delivery(sc: &scenario::Scenario) -> (u64, String) {
    let seen: Arc<Mutex<Option<(u64, String)>>> = Arc::default();
    let s = seen.clone();
    let sink: scenario::log::Sink = Box::new(move |rec| {
        if let Event::Delivered { node, .. } = &rec.event {
            s.lock().unwrap().get_or_insert((rec.t_ms, node.clone()));
        }
    });
    farm::run(sc, 1, Some(sink));
    seen.lock().unwrap().clone().expect("a delivery")
}

#[test]
fn a_cause_found_only_in_the_farm_wide_log_explains_the_duplicate() {
    // K8: a timed crash (a farm-wide event, not in the file's own story) kills the node while
    // its final Ack is on the slow way back to the client.
    let base = r#"
[farm]
nodes = 2
notification = "by-value"
[clients]
retry_delay_s = 5
[network]
latency_ms = 2000
"#;
    let (t_ms, node) = first_delivery(&scenario(base));
    let at_s = (t_ms + 1000) as f64 / 1000.0;
    let s = run(
        &scenario(&format!(
            "{base}\n[[fault]]\nat_s = {at_s}\nnode = \"{node}\"\naction = \"crash\"\n"
        )),
        1,
    );
    assert_eq!(s.metrics.duplicate_deliveries, 1, "{}", s.to_text());
    let chain = chains(&s)[0];
    assert_eq!(chain.rule, Some(0), "{chain:?}");
    assert_eq!(
        chain.cause.as_deref(),
        Some(&*format!("fault #0: crash {node}"))
    );
    assert!(invariant_held(&s, "duplicates_explained"));
}

#[test]
fn of_several_faults_the_earliest_after_the_previous_delivery_is_the_cause() {
    // K9: the crash at after-forward (rule #0) kept the Ack from the client; a later, harmless
    // BITSHostId switch (rule #1) is in the window too but is not the cause.
    let s = run(
        &scenario(
            r#"
[farm]
nodes = 2
notification = "by-value"
session_state = "volatile"
[clients]
retry_delay_s = 600
[[fault]]
point = "after-forward"
node = "node-1"
action = "crash"
restart_after_s = 10
[[fault]]
at_s = 300
action = "host-id"
enabled = false
"#,
        ),
        1,
    );
    assert_eq!(s.metrics.duplicate_deliveries, 1, "{}", s.to_text());
    let chain = chains(&s)[0];
    assert!(
        chain
            .steps
            .iter()
            .any(|x| x.text.starts_with("fault #1 fired: BITSHostId off")),
        "the later rule is in the window: {chain:?}"
    );
    assert_eq!(chain.rule, Some(0), "{chain:?}");
    assert!(
        chain
            .cause
            .as_deref()
            .unwrap_or_default()
            .contains("crash node-1")
    );
}

#[test]
fn every_run_is_checked_against_every_invariant_in_order() {
    let s = run(&shipped("happy-path"), 1);
    let names: Vec<&str> = s.invariants.iter().map(|i| i.name.as_str()).collect();
    let want: Vec<&str> = scenario::summary::Invariant::ALL
        .iter()
        .map(|i| i.name())
        .collect();
    assert_eq!(names, want);
    for i in scenario::summary::Invariant::ALL {
        assert!(s.invariant(i).is_some_and(|r| r.held), "{i:?}");
    }
}

/// The verdict says "the scenario showed what it expects" only when a held expectation is
/// about the problem the run showed; an expectation about something else leaves it a warning.
#[test]
fn the_verdict_credits_the_scenario_only_for_problems_it_expects() {
    let mut sc = shipped("crash-after-forward");
    let v = scenario::advice::verdict(&run(&sc, 1));
    assert_eq!(v.class, "expected", "{}", v.text);
    assert!(v.text.contains("1 duplicate delivery"), "{}", v.text);
    sc.expect.retain(|k, _| k == "acknowledged");
    let v = scenario::advice::verdict(&run(&sc, 1));
    assert_eq!(v.class, "warn", "{}", v.text);
    assert!(v.text.contains("see what to change"), "{}", v.text);
    let v = scenario::advice::verdict(&run(&shipped("happy-path"), 1));
    assert_eq!(v.class, "pass", "{}", v.text);
}
