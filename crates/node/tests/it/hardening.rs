//! The node under a hostile or unlucky world (audit D2–D7, D15–D17, the peer findings, and
//! test gaps N1–N4), over real loopback TCP.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use node::{DiskStore, NodeConfig, NotificationType, Storage};
use probe::{Event, FaultPoint, Verdict};
use protocol::{Ack, HResult, Packet};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use transport::Body;

use crate::{support::*, upload::tempdir};

/// A bound for things that must happen at all (not a speed check): a test that would hang on a
/// broken build fails instead.
const HANG: Duration = Duration::from_secs(20);

fn create() -> Packet {
    Packet::CreateSession {
        protocols: vec![GUID.into()],
    }
}

/// A fragment request head for `range` of a `total`-byte upload, by hand.
fn fragment_head(session: &str, start: u64, end_exclusive: u64, total: u64) -> String {
    format!(
        "BITS_POST /up/a.bin HTTP/1.1\r\nHost: x\r\nBITS-Packet-Type: Fragment\r\n\
         BITS-Session-Id: {session}\r\nContent-Range: bytes {start}-{}/{total}\r\n\
         Content-Length: {}\r\n\r\n",
        end_exclusive - 1,
        end_exclusive - start
    )
}

#[tokio::test]
async fn a_stalled_fragment_holds_neither_its_session_nor_its_bytes() {
    // Audit D2: a client whose connection stops mid-body. Its Close-Session on another
    // connection is answered; the stalled request ends after the idle timeout and frees the
    // bytes it reserved.
    let (n, _) = start_node(NodeConfig {
        idle_timeout_s: 1,
        max_buffered_bytes: 1024,
        ..NodeConfig::default()
    })
    .await;
    let mut c = Client::connect(&n.addr).await;
    let stalled_id = c.create("/up/a.bin").await;
    let other_id = c.create("/up/b.bin").await;
    let mut stalled = TcpStream::connect(&n.addr).await.unwrap();
    stalled
        .write_all(fragment_head(&stalled_id, 0, 1000, 1000).as_bytes())
        .await
        .unwrap();
    stalled.write_all(&[b'x'; 10]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    // While the body is stalled its 1 KiB reservation fills the budget: another session's
    // fragment is answered 503 (transient), without waiting.
    let mut c2 = Client::connect(&n.addr).await;
    let d = data(600, 1);
    let busy = tokio::time::timeout(HANG, c2.fragment("/up/b.bin", &other_id, &d, 0, 600))
        .await
        .expect("answered at once");
    assert_eq!(busy.status, 503, "{busy:?}");

    // The stalled session's own Close-Session is answered although its body never came.
    let mut c3 = Client::connect(&n.addr).await;
    let closed = tokio::time::timeout(HANG, c3.close("/up/a.bin", &stalled_id))
        .await
        .expect("Close-Session answered while the fragment is stalled");
    assert_eq!(closed.status, 200, "{closed:?}");

    // The stalled request ends by itself (the node answers and closes the connection) ...
    let mut rest = Vec::new();
    tokio::time::timeout(HANG, stalled.read_to_end(&mut rest))
        .await
        .expect("the stalled connection was closed")
        .unwrap();
    let text = String::from_utf8_lossy(&rest);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    // ... and its bytes are free again.
    let mut c4 = Client::connect(&n.addr).await;
    let ok = c4.fragment("/up/b.bin", &other_id, &d, 0, 600).await;
    assert_eq!(ok.status, 200, "{ok:?}");
}

#[tokio::test]
async fn a_body_that_crawls_is_abandoned() {
    // One byte at a time, below min_bytes_per_s: the node gives up after idle + len / rate.
    let (n, store) = start_node(NodeConfig {
        idle_timeout_s: 1,
        min_bytes_per_s: 1000,
        ..NodeConfig::default()
    })
    .await;
    let mut c = Client::connect(&n.addr).await;
    let id = c.create("/up/a.bin").await;
    let mut s = TcpStream::connect(&n.addr).await.unwrap();
    s.write_all(fragment_head(&id, 0, 2000, 2000).as_bytes())
        .await
        .unwrap();
    let dripping = async {
        loop {
            if s.write_all(b"x").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            let mut buf = [0u8; 64];
            if let Ok(Ok(k)) =
                tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf)).await
            {
                return String::from_utf8_lossy(&buf[..k]).into_owned();
            }
        }
        String::new()
    };
    let answer = tokio::time::timeout(HANG, dripping)
        .await
        .expect("the crawling body was cut off");
    assert!(
        answer.starts_with("HTTP/1.1 408") || answer.is_empty(),
        "{answer}"
    );
    assert_eq!(store.bytes_held(), 0);
}

/// Uploads `payload` to `url` in one session; the final Ack's status.
async fn upload_once(addr: &str, url: &str, payload: &[u8], frag: usize) -> u16 {
    let mut c = Client::connect(addr).await;
    let ack = c.ack(url, &create(), Bytes::new()).await;
    if ack.status != 200 {
        return ack.status;
    }
    let id = ack.session_id.unwrap();
    c.upload(url, &id, payload, frag).await.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_type_0_uploads_to_one_path_never_tear_the_file() {
    // Audit D3: two clients upload different bytes to one URL at once, overwrites off. One is
    // placed whole and acknowledged; the other is told the file exists (403).
    let root = tempdir("node-race");
    let store = Arc::new(DiskStore::open(&root).unwrap());
    let n = start_node_with(NodeConfig::default(), store, 5).await;
    let (a, b) = (data(2 << 20, 1), data(2 << 20, 2));
    for round in 0..10 {
        let url = format!("/race/r{round}.bin");
        let (ra, rb) = tokio::join!(
            upload_once(&n.addr, &url, &a, 2 << 20),
            upload_once(&n.addr, &url, &b, 2 << 20)
        );
        let mut statuses = [ra, rb];
        statuses.sort();
        assert_eq!(statuses, [200, 403], "round {round}");
        let file = std::fs::read(root.join(&url[1..])).unwrap();
        let want = if ra == 200 { &a } else { &b };
        assert!(
            file == *want,
            "round {round}: the acknowledged file is not its upload"
        );
    }
}

#[tokio::test]
async fn a_later_upload_never_destroys_an_acknowledged_one() {
    // Audit D4: the old temporary name of /coll/report.bin was a legal remote name.
    let root = tempdir("node-collision");
    let store = Arc::new(DiskStore::open(&root).unwrap());
    let n = start_node_with(NodeConfig::default(), store, 6).await;
    let first = vec![b'A'; 3600];
    let second = vec![b'B'; 190];
    let tricky = "/coll/.report.bin.bitsfarm-partial";
    assert_eq!(upload_once(&n.addr, tricky, &first, 4096).await, 200);
    assert_eq!(
        upload_once(&n.addr, "/coll/report.bin", &second, 4096).await,
        200
    );
    assert_eq!(std::fs::read(root.join(&tricky[1..])).unwrap(), first);
    assert_eq!(std::fs::read(root.join("coll/report.bin")).unwrap(), second);
}

#[tokio::test]
async fn a_node_that_dies_after_placing_the_file_still_acknowledges_it() {
    // Audit D7: the file is placed, then the node fails before recording it (a crash at
    // after-forward leaves the same state). The retried final fragment is acknowledged; the
    // file is placed once.
    let root = tempdir("node-d7");
    let store = Arc::new(DiskStore::open(&root).unwrap());
    let failed_once = Arc::new(AtomicUsize::new(0));
    let f = failed_once.clone();
    let probe = TestProbe::new(move |ctx| {
        if ctx.point == FaultPoint::AfterForward && f.fetch_add(1, Ordering::Relaxed) == 0 {
            Verdict::Fail(500)
        } else {
            Verdict::Continue
        }
    });
    let n = start_node_on(NodeConfig::default(), store, 7, probe.clone()).await;
    let payload = data(5000, 3);
    let mut c = Client::connect(&n.addr).await;
    let id = c.create("/c/victim.bin").await;
    let first = c.upload("/c/victim.bin", &id, &payload, 5000).await;
    assert_eq!(first.status, 500, "the injected failure");
    let again = c.fragment("/c/victim.bin", &id, &payload, 0, 5000).await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.received, Some(5000));
    assert_eq!(std::fs::read(root.join("c/victim.bin")).unwrap(), payload);
    assert_eq!(
        probe.count(|e| matches!(e, Event::Committed { .. })),
        1,
        "placed once"
    );
}

#[tokio::test]
async fn names_too_long_to_place_are_refused_at_create_session() {
    // Audit D17.
    let root = tempdir("node-names");
    let store = Arc::new(DiskStore::open(&root).unwrap());
    let n = start_node_with(NodeConfig::default(), store, 8).await;
    let mut c = Client::connect(&n.addr).await;
    let long = format!("/ln/{}", "n".repeat(256));
    let ack = c.ack(&long, &create(), Bytes::new()).await;
    assert_eq!((ack.status, ack.code()), (400, Some(HResult::INVALID_ARG)));
    let longest = format!("/ln/{}", "n".repeat(255));
    assert_eq!(
        upload_once(&n.addr, &longest, &data(100, 4), 100).await,
        200
    );
    assert!(root.join(&longest[1..]).exists());
}

#[tokio::test]
async fn packets_other_than_fragment_with_a_body_are_400() {
    // MC-BUP 2.2.2.3 / 2.2.4.3, found by peer implementations.
    let (n, store) = start_node(NodeConfig::default()).await;
    let mut c = Client::connect(&n.addr).await;
    let id = c.create("/up/x.bin").await;
    for p in [
        Packet::Ping,
        create(),
        Packet::CloseSession {
            session_id: id.clone(),
        },
        Packet::CancelSession {
            session_id: id.clone(),
        },
    ] {
        let mut req = p
            .to_request("/up/x.bin".parse().unwrap())
            .map(|()| Body::from(Bytes::from_static(b"body")));
        // The packet's own Content-Length: 0 would hide the body; declare it.
        req.headers_mut().remove(http::header::CONTENT_LENGTH);
        let resp = c.raw(req).await;
        let ack = Ack::parse(resp.status(), resp.headers()).unwrap();
        assert_eq!(
            (ack.status, ack.code()),
            (400, Some(HResult::INVALID_ARG)),
            "{p:?}"
        );
    }
    // The session survived the refused Close/Cancel, and packets without a body still work.
    assert!(store.get(&id).unwrap().is_some());
    assert_eq!(
        c.ack("/up/x.bin", &Packet::Ping, Bytes::new()).await.status,
        200
    );
    assert_eq!(c.close("/up/x.bin", &id).await.status, 200);
}

#[tokio::test]
async fn a_fragment_without_content_length_is_400() {
    // The choice, documented in ARCHITECTURE.md: a Fragment must declare its length
    // (MC-BUP requires Content-Length); a chunked one is refused, never guessed at.
    let (n, store) = start_node(NodeConfig::default()).await;
    let mut c = Client::connect(&n.addr).await;
    let id = c.create("/up/a.bin").await;
    let mut s = TcpStream::connect(&n.addr).await.unwrap();
    s.write_all(
        format!(
            "BITS_POST /up/a.bin HTTP/1.1\r\nHost: x\r\nBITS-Packet-Type: Fragment\r\n\
             BITS-Session-Id: {id}\r\nContent-Range: bytes 0-4/5\r\n\
             Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 4096];
    let k = tokio::time::timeout(HANG, s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..k]);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("bits-error-code: 0x80070057"),
        "{text}"
    );
    assert_eq!(store.bytes_held(), 0);
}

#[tokio::test]
async fn session_limits_answer_503_and_cleanup_frees_them() {
    // Audit D15: open sessions and the bytes they hold are bounded; 503 is transient.
    let (n, _) = start_node(NodeConfig {
        max_sessions: Some(2),
        max_session_bytes: Some(1000),
        ..NodeConfig::default()
    })
    .await;
    let mut c = Client::connect(&n.addr).await;
    let a = c.create("/l/a.bin").await;
    let _b = c.create("/l/b.bin").await;
    let third = c.ack("/l/c.bin", &create(), Bytes::new()).await;
    assert_eq!(third.status, 503, "{third:?}");
    let d = data(1500, 5);
    assert_eq!(c.fragment("/l/a.bin", &a, &d, 0, 800).await.status, 200);
    let over = c.fragment("/l/a.bin", &a, &d, 800, 1500).await;
    assert_eq!((over.status, over.received), (503, Some(800)));
    // Closing a session gives its place and its bytes back.
    assert_eq!(c.close("/l/a.bin", &a).await.status, 200);
    let again = c.create("/l/c.bin").await;
    assert_eq!(
        c.fragment("/l/c.bin", &again, &d, 0, 1000).await.status,
        200
    );
}

#[tokio::test]
async fn an_early_answer_drains_a_long_body_and_keeps_the_connection() {
    // Test gap N1: a 64 KiB body to an unknown session arrives in several frames; the node
    // answers 0x8020001F, drains it, and the same connection serves the next request.
    let (n, _) = start_node(NodeConfig::default()).await;
    let mut c = Client::connect(&n.addr).await;
    let body = vec![b'z'; 64 << 10];
    let ghost = "{00000000-0000-4000-8000-0000000000AA}";
    let ack = c.fragment("/up/g.bin", ghost, &body, 0, body.len()).await;
    assert_eq!(ack.code(), Some(HResult::SESSION_NOT_FOUND));
    let mut s = TcpStream::connect(&n.addr).await.unwrap();
    let head = fragment_head(ghost, 0, body.len() as u64, body.len() as u64);
    s.write_all(head.as_bytes()).await.unwrap();
    for piece in body.chunks(8 << 10) {
        s.write_all(piece).await.unwrap();
        s.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    s.write_all(b"BITS_POST /up/g.bin HTTP/1.1\r\nHost: x\r\nBITS-Packet-Type: Ping\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 4096];
    while got.windows(12).filter(|w| w == b"HTTP/1.1 200").count() == 0 {
        let k = tokio::time::timeout(HANG, s.read(&mut buf))
            .await
            .expect("the Ping on the same connection is answered")
            .unwrap();
        assert!(
            k > 0,
            "the connection was closed: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..k]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 500"), "{text}");
}

#[tokio::test]
async fn an_unparsable_packet_echoes_a_readable_session_id_only() {
    // Test gap N2.
    let (n, _) = start_node(NodeConfig::default()).await;
    let mut c = Client::connect(&n.addr).await;
    for (id, echoed) in [("{short}", true), (&*"x".repeat(101), false)] {
        let mut req = http::Request::new(Body::empty());
        *req.method_mut() = protocol::bits_post();
        *req.uri_mut() = "/up/a.bin".parse().unwrap();
        req.headers_mut()
            .insert("bits-packet-type", "Nonsense".parse().unwrap());
        req.headers_mut()
            .insert("bits-session-id", id.parse().unwrap());
        let resp = c.raw(req).await;
        assert_eq!(resp.status(), 400);
        assert_eq!(
            resp.headers()
                .get("bits-session-id")
                .map(|v| v.to_str().unwrap()),
            echoed.then_some(id),
        );
    }
}

#[tokio::test]
async fn an_overlap_whose_old_part_spans_a_whole_body_chunk_appends_the_right_tail() {
    // Test gap N3: the node holds 100 bytes; the fragment 50..300 arrives as two chunks, the
    // first (30 bytes) entirely old, the second starting with 20 more old bytes.
    let (n, store) = start_node(NodeConfig::default()).await;
    let d = data(300, 6);
    let mut c = Client::connect(&n.addr).await;
    let id = c.create("/up/o.bin").await;
    assert_eq!(
        c.fragment("/up/o.bin", &id, &d, 0, 100).await.received,
        Some(100)
    );
    let mut s = TcpStream::connect(&n.addr).await.unwrap();
    s.write_all(fragment_head(&id, 50, 300, 300).as_bytes())
        .await
        .unwrap();
    s.write_all(&d[50..80]).await.unwrap();
    s.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    s.write_all(&d[80..300]).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let k = tokio::time::timeout(HANG, s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..k]).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 200"), "{text}");
    assert!(text.contains("bits-received-content-range: 300"), "{text}");
    let stored = store.read_path(&store.entity_path(&id)).unwrap().concat();
    assert_eq!(stored, d, "the stored file equals the source");
}

#[tokio::test]
async fn a_fully_held_non_final_fragment_is_416_and_does_not_refresh_the_session() {
    // Test gap N4.
    let (n, store) = start_node(NodeConfig::default()).await;
    let d = data(300, 7);
    let mut c = Client::connect(&n.addr).await;
    let id = c.create("/up/h.bin").await;
    assert_eq!(c.fragment("/up/h.bin", &id, &d, 0, 200).await.status, 200);
    let touched = store.get(&id).unwrap().unwrap().touched_ms;
    tokio::time::sleep(Duration::from_millis(20)).await;
    // The same fragment again: it ends exactly where the node is (and one inside it).
    for (start, end) in [(0, 200), (100, 200), (0, 100)] {
        let again = c.fragment("/up/h.bin", &id, &d, start, end).await;
        assert_eq!(
            (again.status, again.received),
            (416, Some(200)),
            "{start}..{end}"
        );
    }
    assert_eq!(store.get(&id).unwrap().unwrap().touched_ms, touched);
}

#[tokio::test]
async fn an_application_413_is_a_fatal_too_large_not_a_shrink() {
    // Audit D14: the application refuses the upload's size; the client must not shrink its
    // fragments and re-send the whole file again and again.
    let app = start_recorder(|| {
        let mut r = http::Response::new(Body::empty());
        *r.status_mut() = http::StatusCode::PAYLOAD_TOO_LARGE;
        r
    })
    .await;
    let (n, _) = start_node(NodeConfig {
        notification: NotificationType::ByValue,
        notification_url: Some(format!("http://{}/app", app.addr)),
        ..NodeConfig::default()
    })
    .await;
    let mut c = Client::connect(&n.addr).await;
    let id = c.create("/up/big.bin").await;
    let ack = c.upload("/up/big.bin", &id, &data(1000, 8), 1000).await;
    assert_eq!(
        (ack.status, ack.code()),
        (400, Some(HResult::TOO_LARGE)),
        "{ack:?}"
    );
}
