//! Broken and hostile servers (audit D9, D10, D11; test gaps J1, J2): the client bounds what it
//! reads, never loops without its retry delay, never panics on a server's or a flag's number.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use client::{JobConfig, JobState};
use protocol::{Ack, ErrorContext, HResult, Packet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

/// After this many requests every script below gives up with a fatal answer, so a client that
/// loops without delay ends the test instead of hanging it.
const LOOP_GUARD: usize = 500;

fn fatal() -> Ack {
    Ack::error(400, HResult::INVALID_ARG, ErrorContext::REMOTE_FILE)
}

fn fragments(log: &Log) -> usize {
    seen(log).iter().filter(|s| s.range().is_some()).count()
}

/// A server that answers every fragment with `answer` (the same `BITS-Received-Content-Range`
/// every time): the job must fall into transient errors with the retry delay, and give up at
/// the no-progress timeout after a bounded number of requests.
async fn never_advances(
    answer: fn(&protocol::packet::Fragment) -> Ack,
) -> (client::JobReport, usize) {
    let log = new_log();
    let srv = script_server("O", log.clone(), move |s, n| {
        if n >= LOOP_GUARD {
            return fatal();
        }
        match &s.packet {
            Some(Packet::Fragment(f)) => answer(f),
            _ => happy(s, None),
        }
    })
    .await;
    let cfg = JobConfig {
        fragment_size: 100,
        min_retry_delay_s: 600,
        no_progress_timeout_s: 3600,
        ..job_config(&srv.addr, "/stuck.bin")
    };
    let (report, _) = run_job(cfg, data(1000, 4)).await;
    (report, fragments(&log))
}

#[tokio::test(start_paused = true)]
async fn a_200_whose_brcr_never_advances_is_retried_after_the_delay_not_in_a_loop() {
    let (report, sent) =
        never_advances(|f| Ack::ok().with_session(&f.session_id).with_received(0)).await;
    assert_eq!(report.state, JobState::Error, "{report:?}");
    assert!(
        matches!(
            report.error,
            Some(client::JobError::NoProgress {
                timeout_s: 3600,
                ..
            })
        ),
        "{report:?}"
    );
    let error = report
        .error
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(error.ends_with("(no progress for 3600 s)"), "{error}");
    // One hour of 600 s retry delays: 7 rounds of at most 4 answers without progress.
    assert!(
        sent <= 7 * client::MAX_IDLE_ROUND_TRIPS as usize,
        "{sent} fragments"
    );
    assert!(report.transient_errors >= 5, "{report:?}");
}

#[tokio::test(start_paused = true)]
async fn a_416_whose_brcr_never_advances_is_retried_after_the_delay_not_in_a_loop() {
    let (report, sent) = never_advances(|f| {
        let mut a = Ack::new(416).with_session(&f.session_id).with_received(0);
        a.error = Some(protocol::AckError {
            code: HResult::OK,
            context: ErrorContext::REMOTE_FILE,
        });
        a
    })
    .await;
    assert_eq!(report.state, JobState::Error, "{report:?}");
    assert!(sent <= 7 * client::MAX_IDLE_ROUND_TRIPS as usize, "{sent}");
}

#[tokio::test(start_paused = true)]
async fn a_farm_that_loses_every_session_is_retried_after_the_delay_not_in_a_loop() {
    let log = new_log();
    let srv = script_server("O", log.clone(), |s, n| {
        if n >= LOOP_GUARD {
            return fatal();
        }
        match &s.packet {
            Some(Packet::Fragment(f)) => Ack::session_not_found().with_session(&f.session_id),
            _ => happy(s, None),
        }
    })
    .await;
    let cfg = JobConfig {
        no_progress_timeout_s: 3600,
        ..job_config(&srv.addr, "/lost.bin")
    };
    let (report, _) = run_job(cfg, data(100, 5)).await;
    assert_eq!(report.state, JobState::Error, "{report:?}");
    let creates = seen(&log)
        .iter()
        .filter(|s| s.kind() == "Create-Session")
        .count();
    assert!(
        creates <= 7 * client::MAX_IDLE_ROUND_TRIPS as usize,
        "{creates} sessions created"
    );
    assert!(report.transient_errors >= 5, "{report:?}");
}

#[tokio::test(start_paused = true)]
async fn a_resync_and_a_reconnect_to_another_node_are_not_errors() {
    // One 416 that moves the client back, then progress: no transient error.
    let log = new_log();
    let srv = script_server("O", log.clone(), |s, n| match (&s.packet, n) {
        (Some(Packet::Fragment(f)), 2) => {
            let mut a = Ack::new(416).with_session(&f.session_id).with_received(100);
            a.error = Some(protocol::AckError {
                code: HResult::OK,
                context: ErrorContext::REMOTE_FILE,
            });
            a
        }
        _ => happy(s, None),
    })
    .await;
    let cfg = JobConfig {
        fragment_size: 100,
        ..job_config(&srv.addr, "/ok.bin")
    };
    let (report, _) = run_job(cfg, data(500, 6)).await;
    assert_eq!(report.state, JobState::Acknowledged, "{report:?}");
    assert_eq!(report.transient_errors, 0);
}

#[tokio::test(start_paused = true)]
async fn a_huge_host_id_fallback_timeout_does_not_panic_the_job() {
    // BITS-Host-Id-Fallback-Timeout: u64::MAX, then a transient error on the Host-Id.
    let log = new_log();
    let srv = script_server("O", log.clone(), |s, n| match (&s.packet, n) {
        (Some(Packet::CreateSession { .. }), _) => {
            let mut ack = happy(s, None);
            ack.host_id = Some("127.0.0.1:1".into());
            ack.host_id_fallback_timeout_s = Some(u64::MAX);
            ack
        }
        _ => happy(s, None),
    })
    .await;
    let cfg = JobConfig {
        no_progress_timeout_s: 1200,
        ..job_config(&srv.addr, "/h.bin")
    };
    // The Host-Id refuses connections: transient errors until the no-progress timeout.
    let (report, _) = run_job(cfg, data(10, 7)).await;
    assert_eq!(report.state, JobState::Error, "{report:?}");
    assert!(
        report
            .error
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default()
            .contains("no progress"),
        "{report:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn huge_timeouts_and_fragment_sizes_from_flags_do_not_panic_the_job() {
    // The server acknowledges part of the first fragment, then fails once: the offset
    // arithmetic and both timers see u64::MAX.
    let log = new_log();
    let srv = script_server("O", log.clone(), |s, n| match (&s.packet, n) {
        (Some(Packet::Fragment(f)), 1) => Ack::ok().with_session(&f.session_id).with_received(3),
        (Some(Packet::Fragment(f)), 2) => {
            Ack::error(503, HResult::FAIL, ErrorContext::REMOTE_FILE).with_session(&f.session_id)
        }
        _ => happy(s, None),
    })
    .await;
    let cfg = JobConfig {
        fragment_size: u64::MAX,
        no_progress_timeout_s: u64::MAX,
        connect_timeout_s: u64::MAX,
        request_timeout_s: u64::MAX,
        min_retry_delay_s: 5,
        ..job_config(&srv.addr, "/m.bin")
    };
    let (report, _) = run_job(cfg, data(10, 8)).await;
    assert_eq!(report.state, JobState::Acknowledged, "{report:?}");
    assert_eq!(report.transient_errors, 1);
    let ranges: Vec<(u64, u64)> = seen(&log)
        .iter()
        .filter_map(|s| s.range())
        .map(|r| (r.start, r.end))
        .collect();
    assert_eq!(ranges, [(0, 10), (3, 10), (3, 10)]);
}

/// A raw TCP server: `respond` writes whatever it likes after reading a request head.
async fn raw_server(respond: fn(usize) -> Vec<u8>, endless: bool) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let sent = Arc::new(AtomicUsize::new(0));
    let total = sent.clone();
    tokio::spawn(async move {
        let mut n = 0;
        while let Ok((mut s, _)) = listener.accept().await {
            let total = total.clone();
            let head = respond(n);
            n += 1;
            tokio::spawn(async move {
                let mut buf = vec![0u8; 1 << 16];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => got.extend_from_slice(&buf[..k]),
                    }
                }
                if s.write_all(&head).await.is_err() {
                    return;
                }
                // Then body bytes for as long as the client reads them (up to 256 MiB, so a
                // client that reads without bound ends the test instead of the machine).
                // A chunked head ends in a chunk-size line: every chunk is 64 KiB and closed.
                let chunked = head.ends_with(b"10000\r\n");
                let mut chunk = vec![b'x'; 1 << 16];
                if chunked {
                    chunk.extend_from_slice(b"\r\n10000\r\n");
                }
                while endless && total.load(Ordering::Relaxed) < 256 << 20 {
                    if s.write_all(&chunk).await.is_err() {
                        return;
                    }
                    total.fetch_add(chunk.len(), Ordering::Relaxed);
                }
            });
        }
    });
    (addr, sent)
}

fn ack_head(extra: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nBITS-Packet-Type: Ack\r\nBITS-Session-Id: {{S1}}\r\n\
         BITS-Protocol: {}\r\n{extra}\r\n",
        protocol::header::PROTOCOL_GUID
    )
    .into_bytes()
}

#[tokio::test(start_paused = true)]
async fn an_endless_ack_body_is_cut_at_a_small_limit() {
    for head in [
        ack_head("Content-Length: 1000000000000000\r\n"),
        ack_head("Transfer-Encoding: chunked\r\n"),
    ] {
        let chunked = head.windows(7).any(|w| w == b"chunked");
        let respond: fn(usize) -> Vec<u8> = if chunked {
            |_| {
                let mut h = ack_head("Transfer-Encoding: chunked\r\n");
                h.extend_from_slice(b"10000\r\n");
                h
            }
        } else {
            |_| ack_head("Content-Length: 1000000000000000\r\n")
        };
        let (addr, sent) = raw_server(respond, true).await;
        let cfg = JobConfig {
            no_progress_timeout_s: 1200,
            ..job_config(&addr, "/b.bin")
        };
        let (report, probe) = run_job(cfg, data(10, 9)).await;
        assert_eq!(report.state, JobState::Error, "{report:?}");
        let too_long = probe.count(|e| {
            matches!(e, probe::Event::ClientFailure { error, .. } if error.contains("longer than 65536 bytes"))
        });
        assert!(too_long >= 1, "{report:?}");
        // The client stopped reading: the server could not push more than the socket buffers
        // and the limit per attempt.
        let pushed = sent.load(Ordering::Relaxed);
        assert!(
            pushed < 64 << 20,
            "the client read {pushed} bytes of an endless body"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn an_endless_reply_download_fails_the_job_at_its_limit() {
    let (reply_addr, _) = raw_server(
        |_| b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000\r\n\r\n".to_vec(),
        true,
    )
    .await;
    let log = new_log();
    let reply_url = format!("http://{reply_addr}/reply");
    let srv = script_server("O", log.clone(), move |s, _| match &s.packet {
        Some(Packet::Fragment(f)) => {
            let mut a = Ack::ok()
                .with_session(&f.session_id)
                .with_received(f.range.end);
            a.reply_url = Some(reply_url.clone());
            a
        }
        _ => happy(s, None),
    })
    .await;
    let cfg = JobConfig {
        kind: client::JobKind::UploadReply,
        max_reply_size: 1 << 20,
        ..job_config(&srv.addr, "/r.bin")
    };
    let (report, _) = run_job(cfg, data(10, 10)).await;
    assert_eq!(report.state, JobState::Error, "{report:?}");
    assert!(
        report
            .error
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default()
            .contains("longer than 1048576 bytes"),
        "{report:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancel_session_that_fails_with_503_is_sent_again() {
    // Test gap J1: Cancel-Session is resent on 5xx, after the retry delay.
    let log = new_log();
    let cancels = Arc::new(AtomicUsize::new(0));
    let c = cancels.clone();
    let srv = script_server("O", log.clone(), move |s, _| match &s.packet {
        Some(Packet::CancelSession { session_id }) => {
            if c.fetch_add(1, Ordering::Relaxed) == 0 {
                Ack::error(503, HResult::FAIL, ErrorContext::REMOTE_FILE).with_session(session_id)
            } else {
                Ack::ok().with_session(session_id)
            }
        }
        Some(Packet::Fragment(f)) => {
            Ack::error(503, HResult::FAIL, ErrorContext::REMOTE_FILE).with_session(&f.session_id)
        }
        _ => happy(s, None),
    })
    .await;
    let job = make_job(
        job_config(&srv.addr, "/c.bin"),
        data(10, 11),
        TestProbe::quiet(),
    );
    let control = job.control();
    let run = tokio::spawn(job.run());
    control
        .progress()
        .wait_for(|p| p.state == JobState::TransientError)
        .await
        .unwrap();
    let before = tokio::time::Instant::now();
    control.cancel();
    let report = run.await.unwrap();
    assert_eq!(report.state, JobState::Cancelled);
    assert_eq!(
        cancels.load(Ordering::Relaxed),
        2,
        "resent once after the 503"
    );
    // The resend waited the retry delay.
    assert!(before.elapsed() >= std::time::Duration::from_secs(600));

    // A Cancel-Session that always fails is resent only while the no-progress timeout allows.
    let log = new_log();
    let srv = script_server("O", log.clone(), |s, _| match &s.packet {
        Some(
            Packet::CancelSession { session_id }
            | Packet::Fragment(protocol::packet::Fragment { session_id, .. }),
        ) => Ack::error(503, HResult::FAIL, ErrorContext::REMOTE_FILE).with_session(session_id),
        _ => happy(s, None),
    })
    .await;
    let job = make_job(
        JobConfig {
            no_progress_timeout_s: 1800,
            ..job_config(&srv.addr, "/c.bin")
        },
        data(10, 13),
        TestProbe::quiet(),
    );
    let control = job.control();
    let run = tokio::spawn(job.run());
    control
        .progress()
        .wait_for(|p| p.state == JobState::TransientError)
        .await
        .unwrap();
    control.cancel();
    let report = run.await.unwrap();
    assert_eq!(report.state, JobState::Cancelled);
    let cancels = seen(&log)
        .iter()
        .filter(|s| s.kind() == "Cancel-Session")
        .count();
    // Resent every 600 s while the next try still falls within the 1,800 s no-progress
    // timeout: at 0, 600, 1,200 and 1,800 s.
    assert_eq!(cancels, 4, "{cancels} Cancel-Sessions");
}

#[tokio::test(start_paused = true)]
async fn http_answers_without_an_ack_are_judged_by_their_status() {
    // Test gap J2: a proxy's 503 page is transient (retried), IIS's 404 page is fatal.
    let (addr, _) = raw_server(
        |n| match n {
            0 => b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\nConnection: close\r\n\r\nbusy!"
                .to_vec(),
            _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnope".to_vec(),
        },
        false,
    )
    .await;
    let (report, _) = run_job(job_config(&addr, "/p.bin"), data(10, 12)).await;
    assert_eq!(report.state, JobState::Error, "{report:?}");
    assert_eq!(report.transient_errors, 1, "the 503 page is retried once");
    assert_eq!(report.attempts, 2);
    let error = report
        .error
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(error.contains("HTTP 404 without a BITS Ack"), "{error}");
}
