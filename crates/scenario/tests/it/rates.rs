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
        "crash-caused duplicates {a} at MTBF 2 h, {b} at 4 h: ratio {ratio:.2}"
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
