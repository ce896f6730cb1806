//! A disk that fails: every storage write of an upload fails in turn (`io-error` at
//! `storage-write`, torn appends included), a full disk, a power cut in the middle of a write.
//! Whatever fails, the node answers with an error, keeps its state as it was before the failed
//! step, and the client's retry gets the file delivered whole.

use scenario::summary::Summary;

use crate::{run, scenario};

fn upload(notification: &str, extra: &str, fault: &str) -> String {
    format!(
        r#"
[farm]
nodes = 1
notification = "{notification}"
{extra}
[clients]
count = 1
file_size = 30000
fragment_size = 10000
{fault}
"#
    )
}

fn assert_whole(s: &Summary, what: &str) {
    for i in &s.invariants {
        assert!(i.held, "{what}: invariant {} failed: {}", i.name, i.detail);
    }
    assert_eq!(
        s.metrics.acknowledged, 1,
        "{what}: the upload was not acknowledged: {:?}",
        s.failed_jobs
    );
    assert!(s.metrics.deliveries >= 1, "{what}");
    assert_eq!(s.metrics.corrupted, 0, "{what}");
}

/// How many storage accesses at `point` an upload makes, counted by a rule that never fires.
fn accesses(point: &str, notification: &str, extra: &str) -> u64 {
    let fault = format!(
        "[[fault]]\npoint = \"{point}\"\naction = \"io-error\"\nnth = 1000000\noptional = true\n"
    );
    let s = run(&scenario(&upload(notification, extra, &fault)), 1);
    s.faults[0].hits
}

#[test]
fn each_storage_access_of_an_upload_may_fail_and_the_retry_delivers_the_file_whole() {
    for (notification, extra) in [
        ("by-reference", ""),
        ("by-value", "upload_reply = true"),
        ("none", ""),
        ("none", "commit_point = \"close\""),
    ] {
        // Writes: create, three appends and saves, the notification's record, the close (at
        // least 9). Reads: the session at each fragment (twice: before the body and under the
        // lock), the entity for the application, the close.
        for (point, least) in [("storage-write", 9), ("storage-read", 8)] {
            let n = accesses(point, notification, extra);
            assert!(n >= least, "{notification} {extra}: only {n} at {point}");
            for k in 1..=n {
                let fault =
                    format!("[[fault]]\npoint = \"{point}\"\naction = \"io-error\"\nnth = {k}\n");
                let s = run(&scenario(&upload(notification, extra, &fault)), 1);
                let what = format!("{notification} {extra}: {point} {k} of {n} fails");
                assert_eq!(s.faults[0].fired, 1, "{what}");
                assert_whole(&s, &what);
            }
        }
    }
}

#[test]
fn a_full_disk_holds_uploads_back_until_it_has_room() {
    let fault =
        "[[fault]]\nat_s = 0\nnode = \"node-1\"\naction = \"disk-full\"\nduration_s = 3600\n";
    let s = run(&scenario(&upload("by-reference", "", fault)), 1);
    assert_whole(&s, "disk full for an hour");
    assert!(
        s.metrics.virtual_time_s > 3600.0,
        "the upload finished at {} s, while the disk was full",
        s.metrics.virtual_time_s
    );
    assert_eq!(s.metrics.restarts, 0, "a full disk loses no session");
}

#[test]
fn a_power_cut_during_a_write_tears_it_and_the_node_recovers() {
    // Write 4 is the second fragment's append: half of it reaches the disk, then the power goes.
    let fault = "[[fault]]\npoint = \"storage-write\"\naction = \"power-cut\"\nnth = 4\nrestart_after_s = 60\n";
    let s = run(
        &scenario(&upload(
            "by-reference",
            "session_state = \"durable\"",
            fault,
        )),
        1,
    );
    assert_eq!(s.faults[0].fired, 1);
    assert_whole(&s, "power cut during an append");
    assert_eq!(
        s.metrics.restarts, 0,
        "the durable session survives the power cut"
    );
}

#[test]
fn storage_fault_rules_that_cannot_work_are_refused_with_their_key() {
    for (rule, key, words) in [
        (
            "point = \"request\"\naction = \"io-error\"",
            "point",
            "storage-write",
        ),
        (
            "at_s = 1\nnode = \"node-1\"\naction = \"disk-full\"",
            "duration_s",
            "needs duration_s",
        ),
        (
            "at_s = 1\naction = \"disk-full\"\nduration_s = 5",
            "node",
            "needs node",
        ),
        (
            "point = \"effect-recorded\"\naction = \"disk-full\"\nduration_s = 5",
            "point",
            "node fault point",
        ),
    ] {
        let text = format!("[farm]\nnodes = 1\n[[fault]]\n{rule}\n");
        let err = scenario::load_str(&text, "x.toml", "x")
            .expect_err(rule)
            .to_string();
        assert!(err.contains(key) && err.contains(words), "{rule}: {err}");
    }
}
