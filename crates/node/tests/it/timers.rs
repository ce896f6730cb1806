//! The node's timers at their real defaults, on tokio's paused clock (no wall time spent):
//! session timeout with cleanup, and the application deadline.

use std::{sync::Arc, time::Duration};

use backend::{Backend, BackendConfig, Ledger};
use bytes::Bytes;
use node::{Env, MemStore, Node, NodeConfig, NotificationType};
use probe::{Clock, Event, FaultPoint, SharedProbe, Verdict};
use protocol::{ByteRange, ErrorContext, HResult, Packet, packet::Fragment};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use transport::{Body, Connect, HttpConn};

use crate::support::*;

async fn send(conn: &dyn Connect, p: &Packet, body: Bytes) -> protocol::Ack {
    let mut c = HttpConn::open(conn, "node", Duration::from_secs(60))
        .await
        .unwrap();
    let mut req = p
        .to_request("/t.bin".parse().unwrap())
        .map(|()| Body::from(body));
    req.headers_mut()
        .insert(http::header::HOST, "node".parse().unwrap());
    let resp = c.send(req, Duration::from_secs(3600)).await.unwrap();
    protocol::Ack::parse(resp.status(), resp.headers()).unwrap()
}

fn fragment(id: &str, d: &[u8], s: usize, e: usize) -> (Packet, Bytes) {
    let range = ByteRange::new(s as u64, e as u64, d.len() as u64).unwrap();
    (
        Packet::Fragment(Fragment {
            session_id: id.into(),
            range,
            content_name: None,
        }),
        Bytes::copy_from_slice(&d[s..e]),
    )
}

#[tokio::test(start_paused = true)]
async fn sessions_without_progress_expire_after_the_session_timeout() {
    let (connect, listen) = duplex();
    let probe = TestProbe::quiet();
    let env = Env {
        store: Arc::new(MemStore::new("n")),
        connector: Arc::new(connect.clone()),
        probe: probe.clone() as SharedProbe,
        rng: ChaCha8Rng::seed_from_u64(1),
        clock: Clock::starting_now(),
    };
    let node = Node::new(NodeConfig::default(), env).unwrap();
    tokio::spawn(node.clone().run(Box::new(listen)));
    let created = send(
        &connect,
        &Packet::CreateSession {
            protocols: vec![GUID.into()],
        },
        Bytes::new(),
    )
    .await;
    let id = created.session_id.unwrap();
    let d = data(100, 1);
    let (p, b) = fragment(&id, &d, 0, 50);
    assert_eq!(send(&connect, &p, b).await.status, 200);

    // 13 days later the session is still there (timeout 14 days, cleanup every 12 hours).
    tokio::time::sleep(Duration::from_secs(13 * 86_400)).await;
    let (p, b) = fragment(&id, &d, 50, 60);
    assert_eq!(
        send(&connect, &p, b).await.status,
        200,
        "progress resets the timeout"
    );
    tokio::time::sleep(Duration::from_secs(13 * 86_400)).await;
    assert_eq!(
        probe.count(|e| matches!(e, Event::SessionExpired { .. })),
        0
    );
    // Past 14 days without progress plus one cleanup period, it is gone.
    tokio::time::sleep(Duration::from_secs(86_400 + 43_200)).await;
    assert_eq!(
        probe.count(|e| matches!(e, Event::SessionExpired { .. })),
        1
    );
    let (p, b) = fragment(&id, &d, 60, 100);
    assert_eq!(
        send(&connect, &p, b).await.code(),
        Some(HResult::SESSION_NOT_FOUND)
    );
}

#[tokio::test(start_paused = true)]
async fn an_application_slower_than_the_300_s_deadline_gets_a_context_7_error_and_is_notified_again()
 {
    let (node_connect, node_listen) = duplex();
    let (app_connect, app_listen) = duplex();
    let store = MemStore::new("n");
    // The application takes 400 s to answer the first notification, then answers at once.
    let slow_once = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let s = slow_once.clone();
    let app_probe = TestProbe::new(move |ctx| {
        if ctx.point == FaultPoint::EffectRecorded
            && s.swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            Verdict::Delay(Duration::from_secs(400))
        } else {
            Verdict::Continue
        }
    });
    let ledger = Ledger::new(false);
    let app = Backend::new(
        BackendConfig::default(),
        ledger.clone(),
        backend::Env {
            files: Arc::new(MemFiles(store.clone())),
            probe: app_probe,
            clock: Clock::starting_now(),
        },
    );
    tokio::spawn(app.run(Box::new(app_listen)));
    let cfg = NodeConfig {
        notification: NotificationType::ByValue,
        notification_url: Some("http://app/notify".into()),
        ..NodeConfig::default()
    };
    let env = Env {
        store: Arc::new(store),
        connector: Arc::new(app_connect),
        probe: probe::none(),
        rng: ChaCha8Rng::seed_from_u64(2),
        clock: Clock::starting_now(),
    };
    tokio::spawn(Node::new(cfg, env).unwrap().run(Box::new(node_listen)));

    let id = send(
        &node_connect,
        &Packet::CreateSession {
            protocols: vec![GUID.into()],
        },
        Bytes::new(),
    )
    .await
    .session_id
    .unwrap();
    let d = data(10, 3);
    let started = tokio::time::Instant::now();
    let (p, b) = fragment(&id, &d, 0, 10);
    let ack = send(&node_connect, &p, b.clone()).await;
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(300),
        "the node gives up at the deadline"
    );
    assert_eq!(
        (ack.status, ack.code()),
        (504, Some(HResult::WINHTTP_TIMEOUT))
    );
    assert_eq!(ack.error.unwrap().context, ErrorContext::REMOTE_APPLICATION);
    // The application did process it (it was only slow): one delivery already.
    tokio::time::sleep(Duration::from_secs(200)).await;
    assert_eq!(ledger.len(), 1);
    // The client's retry re-posts the file: the duplicate Microsoft warns about.
    let ack = send(&node_connect, &p, b).await;
    assert_eq!(ack.status, 200);
    assert_eq!(ledger.len(), 2);
}
