//! Fault rules as data: each action does what it says, and a rule that never fires fails the
//! run.

use crate::{run, scenario};

const FARM: &str = r#"
[farm]
nodes = 3
notification = "by-value"

[clients]
count = 3
file_size = 200000
fragment_size = 50000
"#;

#[test]
fn a_rule_that_never_fires_fails_the_run() {
    let s = scenario(&format!(
        "{FARM}\n[[fault]]\npoint = \"after-forward\"\nfile = \"/upload/nobody.bin\"\naction = \"crash\"\n"
    ));
    let summary = run(&s, 1);
    let inv = summary
        .invariants
        .iter()
        .find(|i| i.name == "all_faults_fired")
        .unwrap();
    assert!(!inv.held);
    assert!(inv.detail.contains("#0"), "{}", inv.detail);
    assert!(!summary.ok);
    // Unless it is optional.
    let s = scenario(&format!(
        "{FARM}\n[[fault]]\npoint = \"after-forward\"\nfile = \"/upload/nobody.bin\"\naction = \"crash\"\noptional = true\n"
    ));
    assert!(run(&s, 1).ok);
}

#[test]
fn fail_answers_with_the_status_and_the_client_retries() {
    let s = scenario(&format!(
        "{FARM}\n[[fault]]\npoint = \"notification-received\"\nnode = \"backend\"\naction = \"fail\"\nstatus = 503\n\n[expect]\ndeliveries_per_file = 1\n"
    ));
    let summary = run(&s, 1);
    assert!(summary.ok, "{}", summary.to_text());
    assert!(
        summary.metrics.virtual_time_s >= 600.0,
        "the 503 was retried after the 600 s delay"
    );
}

#[test]
fn a_403_from_the_application_ends_the_job_in_error() {
    let s = scenario(&format!(
        "{FARM}\n[[fault]]\npoint = \"notification-received\"\nnode = \"backend\"\naction = \"fail\"\nstatus = 403\n\n[expect]\nfailed = 1\nacknowledged = 2\nlost = 0\n"
    ));
    let summary = run(&s, 1);
    assert!(summary.ok, "{}", summary.to_text());
    assert_eq!(summary.failed_jobs.len(), 1);
    assert!(
        summary.failed_jobs[0].error.contains("403"),
        "{}",
        summary.failed_jobs[0].error
    );
}

#[test]
fn a_power_cut_is_silence_until_the_client_times_out() {
    // The node loses power mid-upload and comes back after an hour; with BITSHostId the client
    // waits out its 360 s request timeout, retries the node every 600 s and resumes once it is
    // back (durable sessions): no restart, no duplicate.
    let s = scenario(
        r#"
[farm]
nodes = 2
host_id = true
notification = "by-value"

[clients]
count = 1
file_size = 400000
fragment_size = 100000

[[fault]]
point = "fragment-stored"
nth = 2
action = "power-cut"
restart_after_s = 3600

[expect]
restarts = 0
duplicate_deliveries = 0
deliveries_per_file = 1
virtual_time_s = ">= 3600"
"#,
    );
    let summary = run(&s, 1);
    assert!(summary.ok, "{}", summary.to_text());
}

#[test]
fn a_volatile_node_that_restarts_loses_its_sessions() {
    let s = scenario(
        r#"
[farm]
nodes = 1
notification = "by-value"
session_state = "volatile"

[clients]
count = 1
file_size = 400000
fragment_size = 100000

[[fault]]
point = "fragment-stored"
nth = 2
action = "crash"
restart_after_s = 60

[expect]
restarts = 1
deliveries_per_file = 1
"#,
    );
    let summary = run(&s, 1);
    assert!(summary.ok, "{}", summary.to_text());
}

#[test]
fn a_partition_between_client_and_node_heals() {
    let s = scenario(
        r#"
[farm]
nodes = 1
host_id = true
notification = "by-value"

[clients]
count = 1
file_size = 400000
fragment_size = 100000

[[fault]]
point = "fragment-stored"
nth = 2
action = "partition"
node = "node-1"
peer = "c00"
duration_s = 1800

[expect]
restarts = 0
deliveries_per_file = 1
virtual_time_s = ">= 1800"
"#,
    );
    let summary = run(&s, 1);
    assert!(summary.ok, "{}", summary.to_text());
}

#[test]
fn probability_rules_are_seeded() {
    let s = scenario(&format!(
        "{FARM}\n[[fault]]\npoint = \"fragment-stored\"\nprobability = 0.3\naction = \"drop-response\"\noptional = true\n"
    ));
    let a = run(&s, 5);
    let b = run(&s, 5);
    assert_eq!(a.faults[0].fired, b.faults[0].fired);
    let fired: u64 = (1..=10).map(|seed| run(&s, seed).faults[0].fired).sum();
    assert!(fired > 0, "a 30% rule over 10 runs fires");
    let hits: u64 = (1..=10).map(|seed| run(&s, seed).faults[0].hits).sum();
    assert!(fired < hits, "and does not fire on every hit");
}
