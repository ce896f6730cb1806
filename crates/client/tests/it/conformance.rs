//! The client conformance facts of the reference (§6, facts 17–20), against scripted servers
//! over loopback TCP.

use client::{JobConfig, JobState};
use protocol::{Ack, ErrorContext, HResult, Packet};
use tokio::time::Instant;

use crate::support::*;

#[tokio::test(start_paused = true)]
async fn fact_17_next_fragment_starts_at_received_content_range_and_413_shrinks() {
    let log = new_log();
    // The server holds less than the client sent (200 with an earlier BRCR), then asks to
    // resync (416), then refuses a fragment as too large (413).
    let srv = script_server("O", log.clone(), |s, n| match (&s.packet, n) {
        (Some(Packet::Fragment(f)), 1) => Ack::ok().with_session(&f.session_id).with_received(600),
        (Some(Packet::Fragment(f)), 2) => {
            let mut a = Ack::new(416)
                .with_session(&f.session_id)
                .with_received(1500);
            a.error = Some(protocol::AckError {
                code: HResult::OK,
                context: ErrorContext::REMOTE_FILE,
            });
            a
        }
        (Some(Packet::Fragment(f)), 3) => Ack::error(
            413,
            HResult::from_http_status(413),
            ErrorContext::REMOTE_FILE,
        )
        .with_session(&f.session_id)
        .with_received(1500),
        _ => happy(s, None),
    })
    .await;
    let cfg = JobConfig {
        fragment_size: 1000,
        min_fragment_size: 100,
        ..job_config(&srv.addr, "/f.bin")
    };
    let (report, _) = run_job(cfg, data(3000, 1)).await;
    assert_eq!(report.state, JobState::Acknowledged, "{report:?}");
    let ranges: Vec<(u64, u64)> = seen(&log)
        .iter()
        .filter_map(|s| s.range())
        .map(|r| (r.start, r.end))
        .collect();
    assert_eq!(
        ranges,
        vec![
            (0, 1000),    // 200, BRCR 600
            (600, 1600),  // 416, BRCR 1500
            (1500, 2500), // 413: same offset, half the size
            (1500, 2000),
            (2000, 2500),
            (2500, 3000),
        ]
    );
    assert_eq!(report.restarts, 0);
    assert_eq!(report.transient_errors, 0);
}

#[tokio::test(start_paused = true)]
async fn fact_18_session_not_found_restarts_from_byte_zero_but_not_for_cancel() {
    let log = new_log();
    let srv = script_server("O", log.clone(), |s, n| match (&s.packet, n) {
        (Some(Packet::Fragment(f)), 3) => Ack::session_not_found().with_session(&f.session_id),
        _ => happy(s, None),
    })
    .await;
    let cfg = JobConfig {
        fragment_size: 100,
        ..job_config(&srv.addr, "/f.bin")
    };
    let (report, probe) = run_job(cfg, data(500, 2)).await;
    assert_eq!(report.state, JobState::Acknowledged);
    assert_eq!(report.restarts, 1);
    let kinds: Vec<String> = seen(&log)
        .iter()
        .map(|s| match s.range() {
            Some(r) => format!("F{}", r.start),
            None => s.kind().to_owned(),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "Create-Session",
            "F0",
            "F100",
            "F200",
            "Create-Session",
            "F0",
            "F100",
            "F200",
            "F300",
            "F400",
            "Close-Session"
        ]
    );
    assert_eq!(
        probe.count(|e| matches!(e, probe::Event::UploadRestart { .. })),
        1
    );

    // Cancel answered with 0x8020001F: no new session.
    let log = log_cancel().await;
    let kinds: Vec<&str> = log.iter().map(Seen::kind).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "Create-Session").count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(kinds.last(), Some(&"Cancel-Session"));
}

async fn log_cancel() -> Vec<Seen> {
    let log = new_log();
    let srv = script_server("O", log.clone(), |s, _| match &s.packet {
        Some(Packet::CancelSession { session_id }) => {
            Ack::session_not_found().with_session(session_id)
        }
        // Fragments wait so the job is mid-upload when it is cancelled.
        Some(Packet::Fragment(f)) => {
            Ack::error(503, HResult::FAIL, ErrorContext::REMOTE_FILE).with_session(&f.session_id)
        }
        _ => happy(s, None),
    })
    .await;
    let job = make_job(
        job_config(&srv.addr, "/c.bin"),
        data(10, 3),
        TestProbe::quiet(),
    );
    let control = job.control();
    let run = tokio::spawn(job.run());
    let mut progress = control.progress();
    progress
        .wait_for(|p| p.state == JobState::TransientError)
        .await
        .unwrap();
    // The owner sees why and when the next retry goes out (the upload bar's countdown).
    let p = progress
        .wait_for(|p| p.retry_at.is_some())
        .await
        .unwrap()
        .clone();
    let left = p.retry_at.unwrap() - Instant::now();
    assert!(
        left.as_secs() > 590 && left.as_secs() <= 600 && !p.giving_up,
        "{left:?}"
    );
    assert!(
        p.last_error.as_deref().is_some_and(|e| e.contains("503")),
        "{:?}",
        p.last_error
    );
    control.cancel();
    let report = run.await.unwrap();
    assert_eq!(report.state, JobState::Cancelled);
    seen(&log)
}

#[tokio::test(start_paused = true)]
async fn fact_19_every_request_after_create_session_goes_to_the_host_id_until_the_fallback_timer_expires()
 {
    let log = new_log();
    let h = script_server("H", log.clone(), |s, _| happy(s, None)).await;
    let host = h.addr.clone();
    let o = script_server("O", log.clone(), move |s, _| happy(s, Some(&host))).await;
    let (report, _) = run_job(
        JobConfig {
            fragment_size: 100,
            ..job_config(&o.addr, "/h.bin")
        },
        data(250, 4),
    )
    .await;
    assert_eq!(report.state, JobState::Acknowledged);
    let trail: Vec<(&str, &str)> = seen(&log).iter().map(|s| (s.server, s.kind())).collect();
    assert_eq!(
        trail,
        [
            ("O", "Create-Session"),
            ("H", "Ping"),
            ("H", "Fragment"),
            ("H", "Fragment"),
            ("H", "Fragment"),
            ("H", "Close-Session")
        ]
    );
    for s in seen(&log).iter().filter(|s| s.server == "H") {
        assert_eq!(
            s.headers["host"],
            h.addr.as_str(),
            "requests to H carry H as Host"
        );
    }

    // H unreachable: the job retries H (every 600 s) for the fallback timeout measured from
    // the first failure, then returns to the original address.
    let log = new_log();
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
        // Dropped: connections to it are refused.
    };
    let dead2 = dead.clone();
    let o = script_server("O", log.clone(), move |s, n| {
        let mut ack = happy(s, None);
        if n == 0 {
            ack.host_id = Some(dead2.clone());
            ack.host_id_fallback_timeout_s = Some(3600);
        }
        ack
    })
    .await;
    let started = Instant::now();
    let (report, probe) = run_job(job_config(&o.addr, "/h.bin"), data(10, 5)).await;
    assert_eq!(report.state, JobState::Acknowledged, "{report:?}");
    assert_eq!(report.host_fallbacks, 1);
    // First failure at t≈0; retries at 600, 1200, ..., 3600 s: the one at 3600 s goes to O.
    let elapsed = started.elapsed().as_secs();
    assert!(
        (3600..3700).contains(&elapsed),
        "fell back after {elapsed} s"
    );
    let failures_to_h =
        probe.count(|e| matches!(e, probe::Event::ClientFailure { target, .. } if *target == dead));
    assert_eq!(failures_to_h, 6, "Ping to H at 0, 600, ..., 3000 s");
    let trail: Vec<&str> = seen(&log).iter().map(Seen::kind).collect();
    assert_eq!(
        trail,
        ["Create-Session", "Fragment", "Close-Session"],
        "after the fallback the session resumes at O"
    );
}

#[tokio::test(start_paused = true)]
async fn fact_19_without_a_fallback_timeout_header_the_job_never_falls_back() {
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let log = new_log();
    let d = dead.clone();
    let o = script_server("O", log.clone(), move |s, _| happy(s, Some(&d))).await;
    // No-progress timeout of 10 days: the job keeps trying H until it gives up.
    let cfg = JobConfig {
        no_progress_timeout_s: 10 * 86_400,
        ..job_config(&o.addr, "/h.bin")
    };
    let started = Instant::now();
    let (report, _) = run_job(cfg, data(10, 6)).await;
    assert_eq!(report.state, JobState::Error);
    assert_eq!(report.host_fallbacks, 0);
    assert_eq!(started.elapsed().as_secs(), 10 * 86_400);
    assert_eq!(
        seen(&log).len(),
        1,
        "only the Create-Session ever reached the original address"
    );
    assert!(matches!(
        report.error,
        Some(client::JobError::NoProgress { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn fact_20_content_name_identity_and_close_resend_rules() {
    // Content-Name on the first fragment only; no Content-Encoding.
    let log = new_log();
    let srv = script_server("O", log.clone(), |s, _| happy(s, None)).await;
    let cfg = JobConfig {
        fragment_size: 100,
        content_name: Some("report.bin".into()),
        ..job_config(&srv.addr, "/r.bin")
    };
    let (report, _) = run_job(cfg, data(300, 7)).await;
    assert_eq!(report.state, JobState::Acknowledged);
    let frags: Vec<Seen> = seen(&log)
        .into_iter()
        .filter(|s| s.range().is_some())
        .collect();
    assert_eq!(frags.len(), 3);
    assert_eq!(frags[0].headers["content-name"], "report.bin");
    assert!(
        frags[1..]
            .iter()
            .all(|f| !f.headers.contains_key("content-name"))
    );
    assert!(
        frags
            .iter()
            .all(|f| !f.headers.contains_key("content-encoding"))
    );

    // Close-Session: resent on 5xx (twice here), once 0x8020001F or 4xx stops it.
    for (answers, expected_closes) in [
        (vec![503, 503, 200], 3),
        (vec![1], 1), // 1: a 500 carrying 0x8020001F
        (vec![404], 1),
        (vec![400], 1),
    ] {
        let log = new_log();
        let a = answers.clone();
        // Requests: Create-Session (0), the one Fragment (1), then Close-Sessions from 2 on.
        let srv = script_server("O", log.clone(), move |s, n| match &s.packet {
            Some(Packet::CloseSession { session_id }) => {
                let i = n - 2;
                match a.get(i).copied().unwrap_or(200) {
                    200 => Ack::ok().with_session(session_id),
                    1 => Ack::session_not_found().with_session(session_id),
                    st => Ack::error(st, HResult::FAIL, ErrorContext::REMOTE_FILE)
                        .with_session(session_id),
                }
            }
            _ => happy(s, None),
        })
        .await;
        let started = Instant::now();
        let (report, _) = run_job(job_config(&srv.addr, "/c.bin"), data(10, 8)).await;
        assert_eq!(report.state, JobState::Acknowledged, "{answers:?}");
        let closes = seen(&log)
            .iter()
            .filter(|s| s.kind() == "Close-Session")
            .count();
        assert_eq!(closes, expected_closes, "{answers:?}");
        assert_eq!(
            started.elapsed().as_secs(),
            600 * (expected_closes as u64 - 1),
            "resent after the retry delay"
        );
    }
}
