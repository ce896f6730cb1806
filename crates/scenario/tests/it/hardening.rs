//! Audit D12 and D13: a panic inside a run fails it, every value the loader accepts keeps a run
//! bounded, and what it must refuse it refuses with `file:line`.

use scenario::{check::summarize, farm};

use crate::{run, scenario};

fn invariant<'a>(
    s: &'a scenario::summary::Summary,
    name: &str,
) -> &'a scenario::summary::InvariantResult {
    s.invariants
        .iter()
        .find(|i| i.name == name)
        .unwrap_or_else(|| panic!("no invariant {name}"))
}

#[test]
fn a_panic_in_a_node_or_in_a_harness_task_fails_the_run() {
    let sc = scenario(
        r#"
[farm]
nodes = 2
[clients]
count = 2
retry_delay_s = 5
[[fault]]
point = "after-forward"
action = "panic"
[[fault]]
at_s = 3
node = "node-1"
action = "panic"
"#,
    );
    let s = run(&sc, 1);
    assert!(!s.ok, "a run with panics must not pass");
    assert_eq!(s.panics, 2);
    let inv = invariant(&s, "no_panics");
    assert!(!inv.held);
    assert!(inv.detail.contains("2 panic(s)"), "{}", inv.detail);
    assert!(
        s.panic_messages[0].starts_with("fault #0 injected a panic in node-"),
        "{:?}",
        s.panic_messages
    );
    assert!(s.panic_messages[1].starts_with("fault #1 injected a panic in node-1"));
    // The text report says so, with the replay command.
    let text = s.to_text();
    assert!(text.contains("panics: 2"), "{text}");
    assert!(text.contains("result: FAIL"));
    assert!(text.contains("replay: test test --seed 1"));
    // Without the panics the same farm passes: the invariant is what failed it.
    let calm = scenario("[farm]\nnodes = 2\n[clients]\ncount = 2\nretry_delay_s = 5\n");
    let s = run(&calm, 1);
    assert!(s.ok, "{}", s.to_text());
    assert!(invariant(&s, "no_panics").held);
}

#[test]
fn a_panicking_application_fails_the_run_even_when_every_other_check_holds() {
    // The application panics while handling the notification: the node sees a broken
    // connection, the client retries, and the file is still delivered once. Only the panic
    // says something went wrong.
    let sc = scenario(
        r#"
[farm]
notification = "by-value"
[clients]
retry_delay_s = 5
[[fault]]
point = "notification-received"
action = "panic"
"#,
    );
    let s = run(&sc, 3);
    assert_eq!(s.metrics.acknowledged, 1);
    assert!(invariant(&s, "completed").held);
    assert!(invariant(&s, "no_lost_files").held);
    assert!(!invariant(&s, "no_panics").held);
    assert!(!s.ok);
}

#[test]
fn a_run_over_its_event_budget_is_stopped_and_fails() {
    // A client that fails for ten years, retrying every 5 s: about 250 million events.
    let sc = scenario(
        r#"
deadline_days = 3650
[clients]
count = 4
retry_delay_s = 5
no_progress_timeout_s = 315360000
[[fault]]
point = "request"
action = "fail"
status = 503
times = 0
"#,
    );
    let result = farm::run_bounded(&sc, 1, None, 20_000);
    assert!(!result.completed);
    // Tasks already running in the same instant may add a few events after the budget.
    assert!(
        (20_000..20_100).contains(&result.events),
        "{}",
        result.events
    );
    let s = summarize(&sc, 1, &result, "replay".into());
    let inv = invariant(&s, "completed");
    assert!(!inv.held);
    assert!(
        inv.detail.contains("stopped after 20000 events"),
        "{}",
        inv.detail
    );
    assert!(!s.ok);
}

/// Loads `text` and returns its error as `line: key: message`.
fn refused(text: &str) -> String {
    match scenario::load_str(text, "x.toml", "x") {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => format!(
            "{}: {}: {}",
            e.line.map_or(0, |l| l),
            e.key.unwrap_or_default(),
            e.message
        ),
    }
}

#[test]
fn values_that_would_panic_or_never_end_are_refused_with_file_line_and_key() {
    let huge = u64::MAX;
    let cases: Vec<(String, &str)> = vec![
        // D12: durations that overflow `Duration::from_secs_f64` or an `Instant`.
        (
            "[[fault]]\npoint = \"request\"\naction = \"delay\"\nduration_s = 1e300\n".into(),
            "4: fault[0].duration_s",
        ),
        (
            "[[fault]]\npoint = \"request\"\naction = \"crash\"\nrestart_after_s = 1e300\n".into(),
            "4: fault[0].restart_after_s",
        ),
        (
            "[[fault]]\nat_s = 1e300\nnode = \"node-1\"\naction = \"crash\"\n".into(),
            "2: fault[0].at_s",
        ),
        ("[clients]\nstart_spread_s = 1e300\n".into(), "2: clients.start_spread_s"),
        (format!("[farm]\nfallback_timeout_s = {huge}\n"), "2: farm.fallback_timeout_s"),
        (format!("[farm]\nidle_timeout_s = {huge}\n"), "2: farm.idle_timeout_s"),
        (format!("[farm]\nsession_timeout_s = {huge}\n"), "2: farm.session_timeout_s"),
        (
            format!("[clients]\nno_progress_timeout_s = {huge}\n"),
            "2: clients.no_progress_timeout_s",
        ),
        (format!("[clients]\nretry_delay_s = {huge}\n"), "2: clients.retry_delay_s"),
        (format!("[clients]\nrequest_timeout_s = {huge}\n"), "2: clients.request_timeout_s"),
        // D13: memory and time.
        (
            "[clients]\ncount = 100\nfile_size = 1073741824\n".into(),
            "2: clients.count",
        ),
        (
            "[clients]\nfile_size = 1073741824\nfragment_size = 1\n".into(),
            "3: clients.fragment_size",
        ),
        (
            "[clients]\ncount = 1000\nfiles_per_client = 1000\nfile_size = 1048576\nfragment_size = 65536\n"
                .into(),
            "5: clients.fragment_size",
        ),
        (
            format!("description = \"{}\"\n", "d".repeat(2000)),
            "1: description",
        ),
        ("[network]\nwindow_bytes = 1099511627776\n".into(), "2: network.window_bytes"),
        (
            "[[fault]]\npoint = \"request\"\naction = \"fail\"\nstatus = 503\n".repeat(1001),
            "1: fault",
        ),
    ];
    for (text, want) in cases {
        let got = refused(&text);
        assert!(got.starts_with(want), "want {want}..., got {got}");
    }
    // The bounds themselves are accepted: the limits are limits, not off by one.
    for text in [
        format!(
            "deadline_days = 3650\n[clients]\nno_progress_timeout_s = {}\n",
            3650 * 86_400
        ),
        "[clients]\ncount = 4\nfile_size = 1073741824\nfragment_size = 1024\n".into(),
        "[[fault]]\npoint = \"request\"\naction = \"delay\"\nduration_s = 5184000\n".into(),
    ] {
        scenario(&text);
    }
}

/// Rogue clients send the fuzzer's requests through the shared address beside the scenario's
/// clients, while a node crashes: every answer they get is well formed, nothing panics, and the
/// scenario's files arrive whole and are counted alone.
#[test]
fn rogue_clients_beside_real_ones_through_a_crash() {
    let text = r#"
[farm]
nodes = 2
notification = "by-value"
[clients]
count = 4
file_size = 100000
fragment_size = 30000
[rogues]
count = 3
requests = 300
[[fault]]
point = "fragment-stored"
node = "node-1"
action = "crash"
nth = 5
restart_after_s = 30
"#;
    let sc = crate::scenario(text);
    let calm = crate::scenario(&text.replace("count = 3", "count = 0"));
    for seed in 1..=5 {
        let s = crate::run(&sc, seed);
        for i in &s.invariants {
            assert!(i.held, "seed {seed}: {} failed: {}", i.name, i.detail);
        }
        assert_eq!(
            (s.metrics.files, s.metrics.acknowledged),
            (4, 4),
            "seed {seed}"
        );
        // The rogues were there: the run records far more than the clients alone.
        assert!(
            s.events > crate::run(&calm, seed).events + 300,
            "seed {seed}"
        );
    }
}

/// A misbehaving application answers upload-reply jobs with a reply URL that leads nowhere:
/// the files are delivered once, the jobs end in error (404: at once; an unknown host: at the
/// no-progress timeout), and the run's invariants hold.
#[test]
fn a_reply_url_that_leads_nowhere_fails_the_jobs_not_the_run() {
    for (url, why) in [
        ("http://backend/missing", "HTTP 404"),
        ("http://nowhere/r", "no progress for 3600 s"),
    ] {
        let s = crate::run(
            &crate::scenario(&format!(
                "[farm]\nnodes = 1\nupload_reply = true\nnotification = \"by-value\"\n[clients]\ncount = 2\nno_progress_timeout_s = 3600\n[backend]\nreply_url = \"{url}\"\n"
            )),
            1,
        );
        for i in &s.invariants {
            assert!(i.held, "{url}: {} failed: {}", i.name, i.detail);
        }
        assert_eq!((s.metrics.deliveries, s.metrics.failed), (2, 2), "{url}");
        assert!(
            s.failed_jobs.iter().all(|j| j.error.contains(why)),
            "{url}: {:?}",
            s.failed_jobs
        );
    }
    for (text, words) in [
        (
            "[backend]\nreply_url = \"http://x/r\"\n",
            "needs farm.upload_reply",
        ),
        (
            "[farm]\nupload_reply = true\nnotification = \"by-value\"\n[backend]\nreply_url = \"ftp://x\"\n",
            "http:// URL",
        ),
    ] {
        let err = scenario::load_str(text, "x.toml", "x")
            .expect_err(text)
            .to_string();
        assert!(
            err.contains("backend.reply_url") && err.contains(words),
            "{err}"
        );
    }
}
