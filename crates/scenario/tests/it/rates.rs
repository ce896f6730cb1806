//! Rates over simulated traffic: checked against what can be worked out by hand, and against
//! how they must move when a failure rate moves.

use scenario::summary::Summary;

use crate::{run, scenario};

fn cause_count(s: &Summary, cause: &str) -> u64 {
    s.rates
        .causes
        .iter()
        .filter(|c| c.cause == cause)
        .map(|c| c.count)
        .sum()
}

fn invariants_hold(s: &Summary) {
    for i in &s.invariants {
        assert!(i.held, "invariant {} failed: {}", i.name, i.detail);
    }
}

/// One node, an application that dies right after its effect with probability `p` per
/// notification (back in a second), clients that retry a minute later: each attempt is one
/// more delivery until one gets its answer, so deliveries per upload are geometric and the
/// duplicates per upload are p / (1 - p). Arrivals are rare enough (2 a minute) that a crash
/// almost never catches another notification.
#[test]
fn app_crashes_after_the_effect_give_the_geometric_rate() {
    let p = 0.02;
    let s = scenario(&format!(
        r#"
deadline_days = 10
[farm]
nodes = 1
notification = "by-value"
[workload]
duration_days = 7
uploads_per_hour = 120
machines = 500
file_size = 4096
fragment_size = 4096
retry_delay_s = 60
[[failure]]
kind = "app-crash"
probability = {p}
repair_s = 1
"#
    ));
    let summary = run(&s, 1);
    invariants_hold(&summary);
    let expected = 1e6 * p / (1.0 - p); // 20,408 per million
    let r = &summary.rates.duplicate_deliveries_per_million;
    eprintln!("expected {expected:.0} per million, measured {}", r.show(0));
    assert!(
        r.low <= expected && expected <= r.high,
        "expected {expected:.0} per million, measured {}",
        r.show(0)
    );
    // The interval is informative: about ±10% at 20,000 uploads.
    assert!(r.high - r.low < 0.25 * expected, "{}", r.show(0));
    assert!(summary.rates.uploads > 19_000, "{}", summary.rates.uploads);
    // Every duplicate is put down to the application's crash.
    assert_eq!(
        cause_count(&summary, "app-crash-after-effect"),
        summary.metrics.duplicate_deliveries
    );
}

fn crashes(mtbf_h: f64, txid_dedupe: bool) -> Summary {
    // Two nodes, an upload a second, every answer of the application 20 s after its
    // effect: a node that dies takes the notifications in flight on it (about 10) with it, and
    // each comes back as a duplicate through the other node. Crash-caused duplicates are then
    // proportional to the crash rate.
    let s = scenario(&format!(
        r#"
deadline_days = 3
[farm]
nodes = 2
notification = "by-value"
[backend]
dedupe = {txid_dedupe}
[workload]
duration_days = 1
uploads_per_hour = 3600
machines = 1000
file_size = 4096
fragment_size = 4096
retry_delay_s = 30
transaction_id = {txid_dedupe}
[[failure]]
kind = "node-crash"
mtbf_h = {mtbf_h}
repair_s = 30
[[failure]]
kind = "app-slow"
duration_s = 20
"#
    ));
    let summary = run(&s, 7);
    invariants_hold(&summary);
    summary
}

fn crash_caused(s: &Summary) -> u64 {
    cause_count(s, "node-down-other-node") + cause_count(s, "node-down-same-node")
}

#[test]
fn doubling_the_node_mtbf_roughly_halves_crash_caused_duplicates() {
    let (often, rarely) = (crashes(0.25, false), crashes(0.5, false));
    let (a, b) = (crash_caused(&often), crash_caused(&rarely));
    // About 192 and 96 crashes a day, each taking about 10 notifications: the count of crashes
    // dominates the spread, and the ratio's standard error is about 0.26, so 2 ± 0.6 (2.3
    // standard errors) is the tolerance.
    let ratio = a as f64 / b.max(1) as f64;
    eprintln!("crash-caused duplicates: {a} at MTBF 15 min, {b} at 30 min: ratio {ratio:.2}");
    assert!(
        (1.4..=2.6).contains(&ratio),
        "crash-caused duplicates {a} at MTBF 15 min, {b} at 30 min: ratio {ratio:.2}"
    );
    assert!(b >= 400, "{b}");
    // And they are most of the duplicates of these runs.
    assert!(
        a * 10 >= often.metrics.duplicate_deliveries * 9,
        "{a} of {}",
        often.metrics.duplicate_deliveries
    );
}

#[test]
fn with_transaction_ids_and_dedupe_no_duplicate_has_an_effect() {
    let s = crashes(0.5, true);
    assert!(
        s.metrics.duplicate_deliveries > 100,
        "{}",
        s.metrics.duplicate_deliveries
    );
    assert_eq!(s.metrics.duplicate_effects, 0);
    assert_eq!(s.rates.duplicate_effects_per_million.value, 0.0);
    // The interval still bounds what a longer run could show.
    assert!(s.rates.duplicate_effects_per_million.high > 0.0);
}

/// Runs an hour of uploads of 256 KiB in 32 KiB fragments (5 a second) through two nodes
/// whose application pools recycle every 5 minutes (overlapped): the workers started, and the
/// summary.
fn recycling(session_state: &str) -> (u64, Summary) {
    let s = scenario(&format!(
        r#"
deadline_days = 1
[farm]
nodes = 2
notification = "by-value"
session_state = "{session_state}"
[network]
window_bytes = 65536
latency_ms = 5
[workload]
duration_days = 0.0417
uploads_per_hour = 18000
machines = 100
file_size = 262144
fragment_size = 32768
retry_delay_s = 30
[[failure]]
kind = "pool-recycle"
every_min = 5
"#
    ));
    let started = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let count = started.clone();
    let sink: scenario::log::Sink = Box::new(move |rec| {
        if matches!(rec.event, probe::Event::NodeStarted { .. }) {
            count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });
    let result = scenario::farm::run(&s, 3, Some(sink));
    let summary = scenario::check::summarize(&s, 3, &result, String::new());
    invariants_hold(&summary);
    (started.load(std::sync::atomic::Ordering::Relaxed), summary)
}

#[test]
fn an_overlapped_recycle_hands_new_requests_to_a_new_worker() {
    // 2 nodes × 12 recycles in the hour: 24 new workers beside the first 2.
    let (workers, durable) = recycling("durable");
    assert!(
        (24..=26).contains(&(workers - 2)),
        "{workers} workers started"
    );
    // With sessions on disk the new worker knows them, and the connections stay up (HTTP.sys
    // keeps them): the client sees nothing, nothing restarts, nothing doubles.
    assert_eq!(durable.metrics.restarts, 0);
    assert_eq!(durable.metrics.bytes_resent, 0);
    assert_eq!(durable.metrics.duplicate_deliveries, 0);
    assert_eq!(durable.metrics.acknowledged, durable.metrics.files);
    // With volatile session state, uploads caught by a recycle restart on the new worker
    // (their next fragment goes to it, on the same connection).
    let (_, volatile) = recycling("volatile");
    assert!(volatile.metrics.restarts > 0, "{:?}", volatile.metrics);
    assert_eq!(volatile.metrics.acknowledged, volatile.metrics.files);
}

/// Every kind of failure process at a high rate for two simulated hours: each strikes, the run
/// keeps every invariant, and every duplicate gets a named cause.
#[test]
fn every_failure_kind_strikes_and_its_duplicates_are_explained() {
    let s = scenario(
        r#"
deadline_days = 2
[farm]
nodes = 3
notification = "by-value"
[workload]
duration_days = 0.0833
uploads_per_hour = 3600
machines = 200
file_size = { dist = "uniform", min = 1024, max = 2097152 }
fragment_size = 262144
retry_delay_s = 60
[[failure]]
kind = "node-crash"
mtbf_h = 1
repair_s = { dist = "exponential", mean = 60 }
[[failure]]
kind = "power-cut"
node = "node-3"
mtbf_h = 1
repair_s = 120
[[failure]]
kind = "app-error"
probability = 0.02
status = 503
[[failure]]
kind = "app-slow"
probability = 0.02
duration_s = { dist = "lognormal", median = 60, p99 = 900 }
[[failure]]
kind = "app-crash"
probability = 0.005
mtbf_h = 1
repair_s = 30
[[failure]]
kind = "connection-reset"
per_request = 0.005
per_mib = 0.01
[[failure]]
kind = "partition"
mtbf_h = 1
duration_s = 30
[[failure]]
kind = "pool-recycle"
every_min = 20
overlap = false
"#,
    );
    let kinds = std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::new()));
    let seen = kinds.clone();
    let sink: scenario::log::Sink = Box::new(move |rec| {
        if let probe::Event::FailureStruck { kind, .. } = &rec.event {
            *seen.lock().unwrap().entry(kind.clone()).or_insert(0u64) += 1;
        }
    });
    let result = scenario::farm::run(&s, 11, Some(sink));
    let summary = scenario::check::summarize(&s, 11, &result, String::new());
    invariants_hold(&summary);
    let kinds = kinds.lock().unwrap();
    for k in [
        "node-crash",
        "power-cut",
        "app-error",
        "app-slow",
        "app-crash",
        "connection-reset",
        "partition",
        "pool-recycle",
    ] {
        assert!(
            kinds.get(k).copied().unwrap_or(0) > 0,
            "{k} never struck: {kinds:?}"
        );
    }
    assert!(summary.metrics.duplicate_deliveries > 0);
    assert_eq!(summary.metrics.acknowledged, summary.metrics.files);
    let other = cause_count(&summary, "other");
    assert_eq!(other, 0, "{:?}", summary.rates.causes);
}
