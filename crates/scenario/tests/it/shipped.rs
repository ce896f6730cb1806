//! Every shipped scenario reproduces its chain: its expectations hold (the canary's must not).

use scenario::catalog::SHIPPED;

use crate::{run, shipped};

fn check(name: &str) -> scenario::summary::Summary {
    let s = shipped(name);
    let summary = run(&s, s.seed);
    for i in &summary.invariants {
        assert!(i.held, "{name}: invariant {} failed: {}", i.name, i.detail);
    }
    summary
}

fn check_passes(name: &str) -> scenario::summary::Summary {
    let summary = check(name);
    for e in &summary.expectations {
        assert!(
            e.held,
            "{name}: expected {} {}, got {} {}",
            e.name, e.expected, e.actual, e.detail
        );
    }
    assert!(summary.ok, "{name}");
    summary
}

#[test]
fn every_shipped_scenario_is_tested_here() {
    let tested = [
        "canary",
        "crash-after-forward",
        "crash-no-hostid",
        "farm-week",
        "happy-path",
        "hostid-resume",
        "hostid-toggle",
        "lost-ack-single-node",
        "no-hostid-reconnect",
        "slow-backend",
        "transaction-id-dedup",
    ];
    let names: Vec<&str> = SHIPPED.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, tested, "a new shipped scenario needs a test below");
}

#[test]
fn happy_path_delivers_every_file_once() {
    let s = check_passes("happy-path");
    assert_eq!(
        (
            s.metrics.files,
            s.metrics.deliveries,
            s.metrics.duplicate_deliveries
        ),
        (40, 40, 0)
    );
}

#[test]
fn no_hostid_reconnect_restarts_on_another_node() {
    let s = check_passes("no-hostid-reconnect");
    assert_eq!((s.metrics.restarts, s.metrics.duplicate_deliveries), (1, 0));
}

#[test]
fn hostid_resume_resumes_on_the_same_node() {
    let s = check_passes("hostid-resume");
    assert_eq!(s.metrics.restarts, 0);
}

#[test]
fn crash_after_forward_delivers_again_after_the_fallback() {
    let s = check_passes("crash-after-forward");
    assert_eq!(s.metrics.files_duplicated, 1);
    let d = &s.duplicates[0];
    assert_ne!(
        d.nodes[0], d.nodes[1],
        "a different node delivered it again"
    );
    let chain = &d.chains[0];
    assert_eq!(chain.rule, Some(0));
    assert!(
        chain.sentence.contains("fallback timer expired"),
        "{}",
        chain.sentence
    );
    assert!(
        chain.sentence.contains("did not know the session"),
        "{}",
        chain.sentence
    );
    let t_again = chain.steps.last().unwrap().t_ms;
    assert!(
        t_again >= 86_400_000,
        "delivered again only after the fallback: {t_again} ms"
    );
}

#[test]
fn crash_no_hostid_delivers_again_with_the_first_retry() {
    let s = check_passes("crash-no-hostid");
    let chain = &s.duplicates[0].chains[0];
    assert!(!chain.sentence.contains("fallback"), "{}", chain.sentence);
    assert!(
        chain.sentence.contains("did not know the session"),
        "{}",
        chain.sentence
    );
    let t_again = chain.steps.last().unwrap().t_ms;
    assert!(
        (600_000..700_000).contains(&t_again),
        "delivered again after one retry delay: {t_again} ms"
    );
}

#[test]
fn lost_ack_single_node_duplicates_without_a_farm() {
    let s = check_passes("lost-ack-single-node");
    assert_eq!(s.duplicates[0].nodes, vec!["node-1".to_owned()]);
}

#[test]
fn slow_backend_is_posted_again() {
    let s = check_passes("slow-backend");
    assert!(
        s.duplicates[0].chains[0]
            .sentence
            .contains("no answer from the application")
    );
}

#[test]
fn transaction_id_dedup_has_one_effect_per_file() {
    let s = check_passes("transaction-id-dedup");
    assert!(s.metrics.deliveries > s.metrics.files);
    assert_eq!(s.metrics.effects, s.metrics.files);
    assert!(s.duplicates.iter().all(|d| d.effects == 1));
}

#[test]
fn hostid_toggle_restarts_only_before_the_switch() {
    let s = check_passes("hostid-toggle");
    assert_eq!(s.metrics.restarts, 1);
    // All three rules fired, including the timed switch.
    assert!(s.faults.iter().all(|f| f.fired == 1), "{:?}", s.faults);
}

#[test]
fn the_canary_fails() {
    let s = check("canary");
    assert!(!s.ok, "the canary must be reported failing");
    let e = &s.expectations[0];
    assert_eq!((e.name.as_str(), e.held), ("duplicate_deliveries", false));
    assert!(e.actual >= 1.0);
}

#[test]
fn a_day_of_farm_week_has_its_traffic_and_explained_duplicates() {
    // The shipped week, shortened to a day (the full week is `bench --only week`).
    let src = scenario::catalog::source("farm-week").unwrap();
    let set = [scenario::overrides::Override::parse("workload.duration_days=1").unwrap()];
    let s = scenario::overrides::apply(&src.text, &src.origin, &src.default_name, &set).unwrap();
    let summary = run(&s, 1);
    for i in &summary.invariants {
        assert!(i.held, "invariant {} failed: {}", i.name, i.detail);
    }
    // 2,000 uploads an hour for 24 hours: a Poisson count of mean 48,000 (sd 219).
    let files = summary.metrics.files;
    assert!((46_700..=49_300).contains(&files), "{files} uploads");
    assert_eq!(summary.rates.uploads, files);
    assert_eq!(
        summary.metrics.acknowledged, files,
        "every upload ends acknowledged"
    );
    // Its failures make duplicates, each with a named cause.
    assert!(summary.metrics.duplicate_deliveries > 0);
    let classified: u64 = summary.rates.causes.iter().map(|c| c.count).sum();
    assert_eq!(classified, summary.metrics.duplicate_deliveries);
    assert!(
        summary.rates.causes.iter().all(|c| c.cause != "other"),
        "{:?}",
        summary.rates.causes
    );
}
