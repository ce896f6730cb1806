//! Whole uploads and node policies over loopback TCP.

use std::sync::Arc;

use bytes::Bytes;
use node::{NodeConfig, NotificationType};
use probe::Event;
use protocol::{HResult, Packet};

use crate::support::*;

async fn full_upload(kind: NotificationType) {
    let f = farm(kind, |_| {}).await;
    let mut c = Client::connect(&f.node.addr).await;
    let url = "/uploads/big.bin";
    let id = c.create(url).await;
    let d = data(1 << 20, 12);
    let fin = c.upload(url, &id, &d, 64 * 1024).await;
    assert_eq!((fin.status, fin.received), (200, Some(1 << 20)));
    assert_eq!(c.close(url, &id).await.status, 200);
    let got = f.app.ledger.deliveries();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].file, url);
    assert_eq!(got[0].len, 1 << 20);
    assert_eq!(got[0].hash, protocol::txid::hash(&d));
    assert_eq!(got[0].node, "node-1");
    assert_eq!(got[0].session.as_deref(), Some(id.as_str()));
    assert_eq!(
        f.node
            .probe
            .count(|e| matches!(e, Event::FragmentAcked { .. })),
        16
    );
    assert_eq!(f.store.bytes_held(), 0, "Close frees the session's bytes");
}

#[tokio::test]
async fn full_upload_by_value() {
    full_upload(NotificationType::ByValue).await;
}

#[tokio::test]
async fn full_upload_by_reference() {
    full_upload(NotificationType::ByReference).await;
}

#[tokio::test]
async fn lost_final_ack_retry_on_a_live_session_delivers_once() {
    let f = farm(NotificationType::ByValue, |_| {}).await;
    let url = "/upload/once.bin";
    let d = data(10_000, 13);
    let mut c = Client::connect(&f.node.addr).await;
    let id = c.create(url).await;
    assert_eq!(c.upload(url, &id, &d, 4096).await.status, 200);
    // The client never saw that Ack: it reconnects and re-sends the final fragment twice.
    for _ in 0..2 {
        let mut retry = Client::connect(&f.node.addr).await;
        let ack = retry.fragment(url, &id, &d, 8192, 10_000).await;
        assert_eq!((ack.status, ack.received), (200, Some(10_000)));
    }
    assert_eq!(
        f.app.ledger.len(),
        1,
        "zero extra deliveries on a live session"
    );
}

#[tokio::test]
async fn transaction_ids_are_read_and_deduplicated() {
    let store = node::MemStore::new("node");
    let app = start_backend(
        backend::BackendConfig::default(),
        true,
        Arc::new(MemFiles(store.clone())),
        TestProbe::quiet(),
    )
    .await;
    let cfg = NodeConfig {
        notification: NotificationType::ByValue,
        notification_url: Some(format!("http://{}/n", app.addr)),
        ..NodeConfig::default()
    };
    let n = start_node_with(cfg, Arc::new(store), 3).await;
    let payload = data(3000, 14);
    let mut d = protocol::txid::header("tx-42", &payload);
    d.extend_from_slice(&payload);
    // The same job uploaded twice through two sessions (a restart after a lost session).
    for _ in 0..2 {
        let mut c = Client::connect(&n.addr).await;
        let id = c.create("/upload/tx.bin").await;
        assert_eq!(c.upload("/upload/tx.bin", &id, &d, 1000).await.status, 200);
    }
    let s = app.ledger.snapshot();
    assert_eq!((s.total_deliveries, s.total_effects), (2, 1));
    assert_eq!(s.deliveries[0].txid.as_deref(), Some("tx-42"));
    assert_eq!(
        s.deliveries[0].verification,
        backend::Verification::Verified
    );
    assert!(!s.deliveries[1].effect);
}

#[tokio::test]
async fn ledger_is_served_as_json() {
    let f = farm(NotificationType::ByValue, |_| {}).await;
    let mut c = Client::connect(&f.node.addr).await;
    let id = c.create("/a.bin").await;
    assert_eq!(c.upload("/a.bin", &id, &data(10, 1), 10).await.status, 200);
    let mut app = Client::connect(&f.app.addr).await;
    let mut req = http::Request::new(transport::Body::empty());
    *req.uri_mut() = "/ledger".parse().unwrap();
    let resp = app.raw(req).await;
    assert_eq!(resp.status(), 200);
    let json: serde_json::Value = serde_json::from_slice(resp.body()).unwrap();
    assert_eq!(json["total_deliveries"], 1);
    assert_eq!(json["files"]["/a.bin"]["deliveries"], 1);
}

#[tokio::test]
async fn no_url_escapes_the_upload_root() {
    let root = tempdir("traversal");
    let store = Arc::new(node::DiskStore::open(&root).unwrap());
    let n = start_node_with(NodeConfig::default(), store, 4).await;
    let mut c = Client::connect(&n.addr).await;
    for url in [
        "/../escape.bin",
        "/a/%2e%2e/%2e%2e/escape.bin",
        "/a/..%2fescape.bin",
        "/a/..%5cescape.bin",
        "/BITS-Sessions/x/request",
        "//etc/passwd",
        "/c:/x",
    ] {
        let ack = c
            .ack(
                url,
                &Packet::CreateSession {
                    protocols: vec![GUID.into()],
                },
                Bytes::new(),
            )
            .await;
        assert_eq!(
            (ack.status, ack.code()),
            (400, Some(HResult::INVALID_ARG)),
            "{url}"
        );
    }
    let listing = list(&root);
    assert_eq!(
        listing,
        vec!["BITS-Sessions".to_owned()],
        "nothing may be written"
    );
    assert!(!root.parent().unwrap().join("escape.bin").exists());
}

#[tokio::test]
async fn disabled_uploads_answer_501_access_denied() {
    let (n, _) = start_node(NodeConfig {
        uploads_enabled: false,
        ..NodeConfig::default()
    })
    .await;
    let mut c = Client::connect(&n.addr).await;
    let ack = c
        .ack(
            "/a",
            &Packet::CreateSession {
                protocols: vec![GUID.into()],
            },
            Bytes::new(),
        )
        .await;
    assert_eq!(
        (ack.status, ack.code()),
        (501, Some(HResult::ACCESS_DENIED))
    );
}

#[tokio::test]
async fn oversized_fragment_is_413_so_the_client_shrinks_it() {
    let (n, store) = start_node(NodeConfig {
        max_fragment_size: 1000,
        ..NodeConfig::default()
    })
    .await;
    let mut c = Client::connect(&n.addr).await;
    let id = c.create("/a").await;
    let d = data(3000, 15);
    let ack = c.fragment("/a", &id, &d, 0, 2000).await;
    assert_eq!((ack.status, ack.received), (413, Some(0)));
    assert_eq!(store.bytes_held(), 0);
    // The connection survives and smaller fragments go through.
    assert_eq!(c.upload("/a", &id, &d, 1000).await.status, 200);
}

#[tokio::test]
async fn type_0_commits_and_honours_allow_overwrites() {
    for allow in [false, true] {
        let (n, store) = start_node(NodeConfig {
            allow_overwrites: allow,
            ..NodeConfig::default()
        })
        .await;
        let mut c = Client::connect(&n.addr).await;
        let first = data(50, 16);
        let id = c.create("/f.txt").await;
        assert_eq!(c.upload("/f.txt", &id, &first, 50).await.status, 200);
        assert_eq!(c.close("/f.txt", &id).await.status, 200);
        assert_eq!(
            store.destination("/f.txt").unwrap().hash,
            protocol::txid::hash(&first)
        );
        let second = data(60, 17);
        let ack = c
            .ack(
                "/f.txt",
                &Packet::CreateSession {
                    protocols: vec![GUID.into()],
                },
                Bytes::new(),
            )
            .await;
        if allow {
            let id = ack.session_id.unwrap();
            assert_eq!(c.upload("/f.txt", &id, &second, 60).await.status, 200);
            assert_eq!(
                store.destination("/f.txt").unwrap().hash,
                protocol::txid::hash(&second)
            );
        } else {
            assert_eq!(
                (ack.status, ack.code()),
                (403, Some(HResult::ACCESS_DENIED))
            );
            assert_eq!(
                store.destination("/f.txt").unwrap().hash,
                protocol::txid::hash(&first)
            );
        }
    }
}

#[tokio::test]
async fn commit_on_close_places_the_file_only_at_close() {
    let cfg = NodeConfig {
        commit_point: node::CommitPoint::Close,
        ..NodeConfig::default()
    };
    let (n, store) = start_node(cfg).await;
    let mut c = Client::connect(&n.addr).await;
    let d = data(20, 18);
    let id = c.create("/late.bin").await;
    assert_eq!(c.upload("/late.bin", &id, &d, 20).await.status, 200);
    assert!(store.destination("/late.bin").is_none());
    assert_eq!(c.close("/late.bin", &id).await.status, 200);
    assert_eq!(store.destination("/late.bin").unwrap().len, 20);
}

#[tokio::test]
async fn zero_byte_upload_completes() {
    let f = farm(NotificationType::ByValue, |_| {}).await;
    let mut c = Client::connect(&f.node.addr).await;
    let id = c.create("/empty").await;
    let ack = c.fragment("/empty", &id, &[], 0, 0).await;
    assert_eq!((ack.status, ack.received), (200, Some(0)));
    assert_eq!(f.app.ledger.deliveries()[0].len, 0);
}

#[tokio::test]
async fn non_bits_methods_are_refused_without_breaking_the_connection() {
    let (n, _) = start_node(NodeConfig::default()).await;
    let mut c = Client::connect(&n.addr).await;
    let mut put = http::Request::new(transport::Body::from(Bytes::from_static(b"xx")));
    *put.method_mut() = http::Method::PUT;
    *put.uri_mut() = "/a".parse().unwrap();
    assert_eq!(c.raw(put).await.status(), 405);
    let mut get = http::Request::new(transport::Body::empty());
    *get.uri_mut() = "/BITS-Sessions/00/response".parse().unwrap();
    assert_eq!(c.raw(get).await.status(), 404);
    assert_eq!(c.ack("/a", &Packet::Ping, Bytes::new()).await.status, 200);
}

pub use testkit::Scratch;

/// A fresh [`Scratch`] directory named after `tag`.
pub fn tempdir(tag: &str) -> Scratch {
    Scratch::new("bitsfarm-test", tag)
}

fn list(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}
