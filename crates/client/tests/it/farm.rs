//! The client against bitsfarm's own node and application over loopback TCP: recovery paths
//! that involve a real server.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use backend::{Backend, BackendConfig, Ledger};
use client::{JobConfig, JobKind, JobState};
use node::{Env, MemStore, Node, NodeConfig, NotificationType};
use probe::{Clock, Event, FaultPoint, SharedProbe, Verdict};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::task::JoinSet;
use transport::{
    Listen,
    tcp::{TcpConnect, TcpListen},
};

use crate::support::*;

/// An application and nodes (started on demand) on loopback.
pub struct Farm {
    pub app_addr: String,
    pub ledger: Ledger,
    tasks: JoinSet<()>,
}

pub struct RunningNode {
    pub addr: String,
    pub probe: Arc<TestProbe>,
    tasks: JoinSet<()>,
}

impl RunningNode {
    /// Stops the node: its listener closes and its connections drop.
    pub fn kill(&mut self) {
        self.tasks.abort_all();
    }
}

/// The application's files: none (these farms notify by value).
struct NoFiles;

impl backend::Files for NoFiles {
    fn read(&self, path: &str, _: &mut dyn FnMut(&[u8])) -> std::io::Result<u64> {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            path.to_owned(),
        ))
    }

    fn write(&self, path: &str, _: bytes::Bytes) -> std::io::Result<()> {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            path.to_owned(),
        ))
    }
}

impl Farm {
    pub async fn start(app_probe: Arc<TestProbe>, cfg: BackendConfig) -> Farm {
        let listener = TcpListen::bind("127.0.0.1:0").await.unwrap();
        let app_addr = listener.local_addr();
        let ledger = Ledger::new(true);
        let app = Backend::new(
            cfg,
            ledger.clone(),
            backend::Env {
                files: Arc::new(NoFiles),
                probe: app_probe as SharedProbe,
                clock: Clock::starting_now(),
            },
        );
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            let _ = app.run(Box::new(listener)).await;
        });
        Farm {
            app_addr,
            ledger,
            tasks,
        }
    }

    pub async fn node(
        &mut self,
        name: &str,
        host_id: bool,
        probe: Arc<TestProbe>,
        tweak: impl FnOnce(&mut NodeConfig),
    ) -> RunningNode {
        let listener = TcpListen::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr();
        let mut cfg = NodeConfig {
            name: name.into(),
            host_id: host_id.then(|| addr.clone()),
            notification: NotificationType::ByValue,
            notification_url: Some(format!("http://{}/n", self.app_addr)),
            ..NodeConfig::default()
        };
        tweak(&mut cfg);
        let node = Node::new(
            cfg,
            Env {
                store: Arc::new(MemStore::new(name)),
                connector: Arc::new(TcpConnect),
                probe: probe.clone() as SharedProbe,
                rng: ChaCha8Rng::seed_from_u64(name.len() as u64),
                clock: Clock::starting_now(),
            },
        )
        .unwrap();
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            let _ = node.run(Box::new(listener)).await;
        });
        let _ = &self.tasks;
        RunningNode { addr, probe, tasks }
    }
}

#[tokio::test(start_paused = true)]
async fn a_connection_cut_mid_upload_resumes_on_the_same_session() {
    let mut farm = Farm::start(TestProbe::quiet(), BackendConfig::default()).await;
    let proxy_slot: Arc<std::sync::Mutex<Option<Proxy>>> = Arc::default();
    let hits = Arc::new(AtomicUsize::new(0));
    let (slot, h) = (proxy_slot.clone(), hits.clone());
    // Cut every connection right after the node stored the 3rd fragment: its Ack is lost.
    let node_probe = TestProbe::new(move |ctx| {
        if ctx.point == FaultPoint::FragmentStored && h.fetch_add(1, Ordering::SeqCst) == 2 {
            slot.lock().unwrap().as_ref().unwrap().cut_all();
        }
        Verdict::Continue
    });
    let node = farm.node("node-1", false, node_probe, |_| {}).await;
    let proxy = Proxy::start(&node.addr).await;
    *proxy_slot.lock().unwrap() = Some(proxy.clone());
    let payload = data(10_000, 1);
    let cfg = JobConfig {
        fragment_size: 1000,
        ..job_config(&proxy.addr, "/cut.bin")
    };
    let (report, probe) = run_job(cfg, payload.clone()).await;
    assert_eq!(report.state, JobState::Acknowledged, "{report:?}");
    assert_eq!(report.sessions.len(), 1, "resumed on the same session");
    assert_eq!(report.restarts, 0);
    assert_eq!(report.transient_errors, 1);
    assert_eq!(
        probe.count(|e| matches!(
            e,
            Event::RetryScheduled {
                delay_ms: 600_000,
                ..
            }
        )),
        1
    );
    // The lost Ack's fragment was re-sent: the node answered with where it was.
    assert_eq!(report.bytes_sent, 11_000);
    let d = farm.ledger.deliveries();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].hash, protocol::txid::hash(&payload));
}

#[tokio::test(start_paused = true)]
async fn a_lost_session_restarts_from_byte_zero_on_another_node() {
    let mut farm = Farm::start(TestProbe::quiet(), BackendConfig::default()).await;
    let mut a = farm.node("node-a", false, TestProbe::quiet(), |_| {}).await;
    let b = farm.node("node-b", false, TestProbe::quiet(), |_| {}).await;
    let proxy = Proxy::start(&a.addr).await;
    let payload = data(5000, 2);
    let cfg = JobConfig {
        fragment_size: 1000,
        ..job_config(&proxy.addr, "/lost.bin")
    };
    let job = make_job(cfg, payload.clone(), TestProbe::quiet());
    let control = job.control();
    let run = tokio::spawn(job.run());
    // Once two fragments are in, node A dies and the shared address now leads to node B.
    control
        .progress()
        .wait_for(|p| p.acknowledged >= 2000)
        .await
        .unwrap();
    a.kill();
    proxy.cut_all();
    proxy.set_target(&b.addr);
    let report = run.await.unwrap();
    assert_eq!(report.state, JobState::Acknowledged, "{report:?}");
    assert_eq!(report.restarts, 1);
    assert_eq!(report.sessions.len(), 2);
    assert!(
        report.bytes_sent >= 5000 + 2000,
        "the upload started over: {} bytes sent",
        report.bytes_sent
    );
    let d = farm.ledger.deliveries();
    assert_eq!((d.len(), d[0].node.as_str()), (1, "node-b"));
    assert_eq!(d[0].hash, protocol::txid::hash(&payload));
}

#[tokio::test(start_paused = true)]
async fn a_host_id_job_retries_its_node_then_falls_back_and_is_delivered_again() {
    let mut farm = Farm::start(TestProbe::quiet(), BackendConfig::default()).await;
    // The farm's shared address, and node A's own address (its BITS-Host-Id), as proxies.
    let shared = Proxy::start("127.0.0.1:1").await;
    let a_direct = Proxy::start("127.0.0.1:1").await;
    let b = farm.node("node-b", true, TestProbe::quiet(), |_| {}).await;
    let (sh, ad, b_addr) = (shared.clone(), a_direct.clone(), b.addr.clone());
    let fired = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Node A dies right after the application processed the file, before its Ack: its own
    // address refuses connections from now on, and the shared address leads to node B.
    let a_probe = TestProbe::new(move |ctx| {
        if ctx.point == FaultPoint::AfterForward && !fired.swap(true, Ordering::SeqCst) {
            ad.shutdown();
            sh.set_target(&b_addr);
            sh.cut_all();
        }
        Verdict::Continue
    });
    let a_host = a_direct.addr.clone();
    let a = farm
        .node("node-a", false, a_probe, move |c| c.host_id = Some(a_host))
        .await;
    a_direct.set_target(&a.addr);
    shared.set_target(&a.addr);

    let payload = data(3000, 3);
    let started = tokio::time::Instant::now();
    let cfg = JobConfig {
        transaction_id: true,
        ..job_config(&shared.addr, "/dup.bin")
    };
    let (report, probe) = run_job(cfg, payload).await;
    assert_eq!(report.state, JobState::Acknowledged, "{report:?}");
    assert_eq!(report.host_fallbacks, 1);
    assert_eq!(report.restarts, 1, "node B did not know the session");
    let elapsed = started.elapsed().as_secs();
    assert!(
        (86_400..87_000).contains(&elapsed),
        "fell back after {elapsed} s"
    );
    // The cut final fragment, then a retry every 600 s until the 86,400 s timer expired.
    let to_a = probe
        .count(|e| matches!(e, Event::ClientFailure { target, .. } if *target == a_direct.addr));
    assert_eq!(to_a, 144);
    let ledger = farm.ledger.snapshot();
    assert_eq!(
        ledger.total_deliveries, 2,
        "node A and node B both delivered the file"
    );
    assert_eq!(
        ledger.total_effects, 1,
        "the transaction id let the application deduplicate"
    );
    assert_eq!(
        (
            ledger.deliveries[0].node.as_str(),
            ledger.deliveries[1].node.as_str()
        ),
        ("node-a", "node-b")
    );
}

#[tokio::test(start_paused = true)]
async fn a_403_from_the_application_stops_retries() {
    let app_probe = TestProbe::new(|ctx| {
        if ctx.point == FaultPoint::NotificationReceived {
            Verdict::Fail(403)
        } else {
            Verdict::Continue
        }
    });
    let mut farm = Farm::start(app_probe, BackendConfig::default()).await;
    let node = farm.node("node-1", false, TestProbe::quiet(), |_| {}).await;
    let started = tokio::time::Instant::now();
    let (report, probe) = run_job(job_config(&node.addr, "/no.bin"), data(100, 4)).await;
    assert_eq!(report.state, JobState::Error);
    assert_eq!(report.transient_errors, 0);
    assert_eq!(report.attempts, 1);
    assert!(
        report
            .error
            .as_ref()
            .map(ToString::to_string)
            .unwrap()
            .contains("403"),
        "{:?}",
        report.error
    );
    assert_eq!(
        probe.count(|e| matches!(e, Event::RetryScheduled { .. })),
        0
    );
    assert_eq!(
        started.elapsed(),
        Duration::ZERO,
        "no retry delay was waited"
    );
    assert_eq!(farm.ledger.len(), 0);
    assert_eq!(
        node.probe.count(|e| matches!(e, Event::Forwarded { .. })),
        1,
        "the file was posted once"
    );
}

#[tokio::test(start_paused = true)]
async fn a_transient_application_error_is_retried_after_the_retry_delay() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let app_probe = TestProbe::new(move |ctx| {
        if ctx.point == FaultPoint::NotificationReceived && c.fetch_add(1, Ordering::SeqCst) == 0 {
            Verdict::Fail(503)
        } else {
            Verdict::Continue
        }
    });
    let mut farm = Farm::start(app_probe, BackendConfig::default()).await;
    let node = farm.node("node-1", false, TestProbe::quiet(), |_| {}).await;
    let started = tokio::time::Instant::now();
    let (report, _) = run_job(job_config(&node.addr, "/retry.bin"), data(100, 5)).await;
    assert_eq!(report.state, JobState::Acknowledged);
    assert_eq!(report.transient_errors, 1);
    assert_eq!(started.elapsed().as_secs(), 600);
    assert_eq!(farm.ledger.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn upload_reply_jobs_download_the_reply_before_closing() {
    let mut farm = Farm::start(TestProbe::quiet(), BackendConfig::default()).await;
    let node = farm
        .node("node-1", false, TestProbe::quiet(), |c| {
            c.upload_reply = true
        })
        .await;
    let cfg = JobConfig {
        kind: JobKind::UploadReply,
        ..job_config(&node.addr, "/reply.bin")
    };
    let (report, _) = run_job(cfg, data(700, 6)).await;
    assert_eq!(report.state, JobState::Acknowledged, "{report:?}");
    let reply: serde_json::Value = serde_json::from_slice(report.reply.as_ref().unwrap()).unwrap();
    assert_eq!(reply["len"], 700);
    assert!(report.closed);
}

#[tokio::test(start_paused = true)]
async fn progress_nobody_watches_is_still_kept_and_a_late_watcher_is_woken() {
    // The job wakes no one while only its controls (which hand out receivers, never await)
    // hold the progress: a receiver taken later still reads the latest value, and is woken by
    // the changes after it.
    let mut farm = Farm::start(TestProbe::quiet(), BackendConfig::default()).await;
    let n = farm.node("node-a", false, TestProbe::quiet(), |_| {}).await;
    let cfg = JobConfig {
        fragment_size: 1000,
        ..job_config(&n.addr, "/late.bin")
    };
    let job = make_job(cfg, data(5000, 3), TestProbe::quiet());
    let control = job.control();
    let copy = control.clone();
    let run = tokio::spawn(job.run());
    // Let the job get going unwatched (bounded: an update lost would otherwise spin here).
    for _ in 0..100_000 {
        if control.progress().borrow().acknowledged > 0 || run.is_finished() {
            break;
        }
        tokio::task::yield_now().await;
    }
    let mut late = copy.progress();
    let seen = late.borrow().acknowledged;
    assert!(seen > 0 && seen < 5000, "taken midway: {seen}");
    late.wait_for(|p| p.state == JobState::Acknowledged)
        .await
        .expect("woken by the changes after it was taken");
    let report = run.await.unwrap();
    assert_eq!(report.state, JobState::Acknowledged, "{report:?}");
    let last = control.progress().borrow().clone();
    assert_eq!(
        (last.state, last.acknowledged),
        (JobState::Acknowledged, 5000)
    );
}
