//! The server-side conformance facts of the reference (§6, facts 1–16), one test each, over
//! real loopback TCP.

use std::sync::Arc;

use backend::BackendConfig;
use bytes::Bytes;
use http::{Request, Response};
use node::{NodeConfig, NotificationType};
use probe::{Event, FaultPoint, Verdict};
use protocol::{Ack, ByteRange, ErrorContext, HResult, Packet, packet::Fragment};
use transport::Body;

use crate::support::*;

const URL: &str = "/upload/file.bin";

fn raw_bits(headers: &[(&str, &str)]) -> Request<Body> {
    let mut req = Request::new(Body::empty());
    *req.method_mut() = protocol::bits_post();
    *req.uri_mut() = URL.parse().unwrap();
    for (k, v) in headers {
        req.headers_mut().append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    req
}

fn assert_invalid_arg(resp: &Response<Bytes>) {
    assert_eq!(resp.status(), 400, "{resp:?}");
    assert_eq!(resp.headers()["bits-packet-type"], "Ack");
    assert_eq!(resp.headers()["content-length"], "0");
    assert_eq!(resp.headers()["bits-error-code"], "0x80070057");
    assert_eq!(resp.headers()["bits-error-context"], "0x5");
}

#[tokio::test]
async fn fact_01_create_session_without_common_protocol_is_400() {
    let (n, _) = start_node(NodeConfig::default()).await;
    let mut c = Client::connect(&n.addr).await;
    for headers in [
        vec![("BITS-Packet-Type", "Create-Session")],
        vec![
            ("BITS-Packet-Type", "Create-Session"),
            (
                "BITS-Supported-Protocols",
                "{00000000-0000-0000-0000-000000000000}",
            ),
        ],
    ] {
        let resp = c.raw(raw_bits(&headers)).await;
        assert_invalid_arg(&resp);
        assert!(!resp.headers().contains_key("bits-protocol"));
        assert!(!resp.headers().contains_key("bits-session-id"));
    }
}

#[tokio::test]
async fn fact_02_create_session_negotiates_the_guid_in_any_case_and_position() {
    let (a, _) = start_node(NodeConfig::default()).await;
    let b = start_node_with(NodeConfig::default(), Arc::new(node::MemStore::new("b")), 2).await;
    let upper = GUID.to_uppercase();
    let mixed = "{7Df0354D-249b-430F-820d-3D2A9bEf4931}";
    let mut ids = std::collections::BTreeSet::new();
    for (addr, list, chosen) in [
        (&a.addr, upper.clone(), upper.clone()),
        (
            &a.addr,
            format!("{{11111111-1111-1111-1111-111111111111}} {mixed}"),
            mixed.to_owned(),
        ),
        (
            &a.addr,
            format!("{{11111111-1111-1111-1111-111111111111}},{GUID}"),
            GUID.to_owned(),
        ),
        (&b.addr, format!("{{2}}, {GUID}"), GUID.to_owned()),
    ] {
        let mut c = Client::connect(addr).await;
        let resp = c
            .raw(raw_bits(&[
                ("BITS-Packet-Type", "Create-Session"),
                ("BITS-Supported-Protocols", &list),
            ]))
            .await;
        assert_eq!(resp.status(), 200, "{resp:?}");
        assert_eq!(resp.headers()["bits-protocol"], chosen.as_str());
        assert!(
            resp.headers()["bits-protocol"]
                .to_str()
                .unwrap()
                .eq_ignore_ascii_case(GUID)
        );
        assert_eq!(resp.headers()["accept-encoding"], "Identity");
        assert!(!resp.headers().contains_key("bits-error-code"));
        assert!(!resp.headers().contains_key("bits-error-context"));
        let id = resp.headers()["bits-session-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            id.starts_with('{') && id.ends_with('}') && id.len() == 38,
            "{id}"
        );
        assert!(ids.insert(id), "session ids must be unique across nodes");
    }
}

#[tokio::test]
async fn fact_03_host_id_only_on_create_session_and_only_when_configured() {
    for host_id in [None, Some("node-7.farm.example")] {
        let cfg = NodeConfig {
            host_id: host_id.map(str::to_owned),
            host_id_fallback_timeout_s: 1234,
            ..NodeConfig::default()
        };
        let (n, _) = start_node(cfg).await;
        let mut c = Client::connect(&n.addr).await;
        let create = c
            .send(
                URL,
                &Packet::CreateSession {
                    protocols: vec![GUID.into()],
                },
                Bytes::new(),
            )
            .await;
        match host_id {
            Some(h) => {
                assert_eq!(create.headers()["bits-host-id"], h);
                assert_eq!(create.headers()["bits-host-id-fallback-timeout"], "1234");
            }
            None => {
                assert!(!create.headers().contains_key("bits-host-id"));
                assert!(
                    !create
                        .headers()
                        .contains_key("bits-host-id-fallback-timeout")
                );
            }
        }
        let id = create.headers()["bits-session-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let data = data(10, 1);
        let range = ByteRange::new(0, 10, 10).unwrap();
        let others = [
            (Packet::Ping, Bytes::new()),
            (
                Packet::Fragment(Fragment {
                    session_id: id.clone(),
                    range,
                    content_name: None,
                }),
                Bytes::from(data),
            ),
            (
                Packet::CloseSession {
                    session_id: id.clone(),
                },
                Bytes::new(),
            ),
            (
                Packet::CancelSession {
                    session_id: id.clone(),
                },
                Bytes::new(),
            ),
        ];
        for (p, body) in others {
            let resp = c.send(URL, &p, body).await;
            assert!(!resp.headers().contains_key("bits-host-id"), "{p:?}");
            assert!(
                !resp.headers().contains_key("bits-host-id-fallback-timeout"),
                "{p:?}"
            );
        }
    }
}

#[tokio::test]
async fn host_id_can_be_toggled_while_the_node_runs() {
    let (n, _) = start_node(NodeConfig::default()).await;
    let mut c = Client::connect(&n.addr).await;
    let create = Packet::CreateSession {
        protocols: vec![GUID.into()],
    };
    assert!(
        !c.send(URL, &create, Bytes::new())
            .await
            .headers()
            .contains_key("bits-host-id")
    );
    n.node.set_host_id(Some("node-1".into()));
    let resp = c.send(URL, &create, Bytes::new()).await;
    assert_eq!(resp.headers()["bits-host-id"], "node-1");
    assert_eq!(resp.headers()["bits-host-id-fallback-timeout"], "86400");
    n.node.set_host_id(None);
    assert!(
        !c.send(URL, &create, Bytes::new())
            .await
            .headers()
            .contains_key("bits-host-id")
    );
}

#[tokio::test]
async fn fact_04_packet_types_are_case_insensitive_and_unknown_ones_get_400_on_a_live_connection() {
    let (n, _) = start_node(NodeConfig::default()).await;
    let mut c = Client::connect(&n.addr).await;
    for kind in ["PING", "ping", "pInG"] {
        assert_eq!(
            c.raw(raw_bits(&[("BITS-Packet-Type", kind)]))
                .await
                .status(),
            200
        );
    }
    let resp = c
        .raw(raw_bits(&[
            ("BITS-Packet-Type", "cReAtE-sEsSiOn"),
            ("BITS-Supported-Protocols", GUID),
        ]))
        .await;
    assert_eq!(resp.status(), 200);
    for headers in [
        vec![("BITS-Packet-Type", "Download")],
        vec![],
        vec![("BITS-Packet-Type", "Ack")],
    ] {
        assert_invalid_arg(&c.raw(raw_bits(&headers)).await);
    }
    // The same connection still answers: nothing was dropped.
    assert!(c.conn.is_reusable().await);
    assert_eq!(
        c.raw(raw_bits(&[("BITS-Packet-Type", "Ping")]))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn fact_05_every_fragment_ack_carries_received_content_range() {
    let (n, _) = start_node(NodeConfig::default()).await;
    let mut c = Client::connect(&n.addr).await;
    let id = c.create(URL).await;
    let d = data(100, 2);
    for (s, e, status, received) in [
        (0, 10, 200, 10),
        (50, 60, 416, 10),
        (0, 5, 416, 10),
        (5, 20, 200, 20),
        (20, 100, 200, 100),
    ] {
        let ack = c.fragment(URL, &id, &d, s, e).await;
        assert_eq!(
            (ack.status, ack.received),
            (status, Some(received)),
            "fragment {s}..{e}"
        );
    }
}

#[tokio::test]
async fn fact_06_a_gap_is_416_with_the_held_offset_and_changes_nothing() {
    let f = farm(NotificationType::ByValue, |_| {}).await;
    let mut c = Client::connect(&f.node.addr).await;
    let id = c.create(URL).await;
    let d = data(300, 3);
    assert_eq!(c.fragment(URL, &id, &d, 0, 100).await.received, Some(100));
    let ack = c.fragment(URL, &id, &d, 150, 200).await;
    assert_eq!(ack.status, 416);
    assert_eq!(ack.received, Some(100));
    assert_eq!(ack.error.unwrap().context, ErrorContext::REMOTE_FILE);
    assert_eq!(
        f.store.bytes_held(),
        100,
        "a refused fragment must store nothing"
    );
    // Resuming at the held offset completes the upload with the right bytes.
    assert_eq!(c.fragment(URL, &id, &d, 100, 300).await.status, 200);
    let deliveries = f.app.ledger.deliveries();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].hash, protocol::txid::hash(&d));
}

#[tokio::test]
async fn fact_07_an_overlap_appends_only_the_new_tail() {
    let f = farm(NotificationType::ByValue, |_| {}).await;
    let mut c = Client::connect(&f.node.addr).await;
    let id = c.create(URL).await;
    let d = data(200, 4);
    assert_eq!(c.fragment(URL, &id, &d, 0, 101).await.received, Some(101));
    // Overlapping fragment whose already-held part differs from what the node has: the node
    // must keep its own bytes and append only 101..150.
    let mut tampered = d.clone();
    for b in &mut tampered[50..101] {
        *b ^= 0xFF;
    }
    let ack = c.fragment(URL, &id, &tampered, 50, 150).await;
    assert_eq!((ack.status, ack.received), (200, Some(150)));
    assert_eq!(f.store.bytes_held(), 150);
    assert_eq!(c.fragment(URL, &id, &d, 150, 200).await.status, 200);
    let got = f.app.ledger.deliveries();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].hash,
        protocol::txid::hash(&d),
        "stored file must equal the source byte for byte"
    );
}

#[tokio::test]
async fn fact_08_missing_or_inconsistent_content_range_is_400() {
    let (n, store) = start_node(NodeConfig::default()).await;
    let mut c = Client::connect(&n.addr).await;
    let id = c.create(URL).await;
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![("Content-Length", "3")],
        vec![("Content-Range", "bytes 0-2"), ("Content-Length", "3")],
        vec![("Content-Range", "bytes x-2/3"), ("Content-Length", "3")],
        vec![("Content-Range", "bytes 2-0/3"), ("Content-Length", "3")],
        vec![("Content-Range", "bytes 0-2/3"), ("Content-Length", "2")],
        vec![("Content-Range", "bytes 0-1/3"), ("Content-Length", "3")],
    ];
    for extra in cases {
        let mut headers = vec![
            ("BITS-Packet-Type", "Fragment"),
            ("BITS-Session-Id", id.as_str()),
        ];
        headers.extend(extra.iter().copied());
        let mut req = raw_bits(&headers);
        let len: usize = extra
            .iter()
            .find(|(k, _)| *k == "Content-Length")
            .map_or(0, |(_, v)| v.parse().unwrap());
        *req.body_mut() = Body::from(vec![b'x'; len]);
        assert_invalid_arg(&c.raw(req).await);
    }
    assert_eq!(store.bytes_held(), 0);
}

#[tokio::test]
async fn fact_09_unknown_session_is_0x8020001f() {
    let (n, _) = start_node(NodeConfig::default()).await;
    let mut c = Client::connect(&n.addr).await;
    let d = data(4, 0);
    let ghost = "{00000000-0000-4000-8000-000000000000}";
    let ack = c.fragment(URL, ghost, &d, 0, 4).await;
    assert_eq!(
        (ack.status, ack.code()),
        (500, Some(HResult::SESSION_NOT_FOUND))
    );
    assert_eq!(ack.session_id.as_deref(), Some(ghost));
    for p in [
        Packet::CloseSession {
            session_id: ghost.into(),
        },
        Packet::CancelSession {
            session_id: ghost.into(),
        },
    ] {
        let ack = c.ack(URL, &p, Bytes::new()).await;
        assert_eq!(
            (ack.status, ack.code()),
            (500, Some(HResult::SESSION_NOT_FOUND))
        );
    }
    let resp = c
        .send(
            URL,
            &Packet::CloseSession {
                session_id: ghost.into(),
            },
            Bytes::new(),
        )
        .await;
    assert_eq!(resp.headers()["bits-error-code"], "0x8020001F");
}

#[tokio::test]
async fn fact_10_resent_final_fragment_replays_the_cached_ack_without_notifying() {
    let f = farm(NotificationType::ByValue, |c| c.upload_reply = true).await;
    let mut c = Client::connect(&f.node.addr).await;
    let id = c.create(URL).await;
    let d = data(1000, 5);
    let first = c.upload(URL, &id, &d, 300).await;
    assert_eq!(first.status, 200);
    let reply_url = first.reply_url.clone().expect("reply url");
    // The Ack was "lost": the client re-sends the final fragment, on a new connection.
    let mut again = Client::connect(&f.node.addr).await;
    let second = again.fragment(URL, &id, &d, 900, 1000).await;
    assert_eq!(second.status, 200);
    assert_eq!(second.reply_url.as_deref(), Some(reply_url.as_str()));
    assert_eq!(second.received, Some(1000));
    assert_eq!(f.app.ledger.len(), 1, "a cached Ack must not notify again");
    assert_eq!(
        f.node
            .probe
            .count(|e| matches!(e, Event::CachedAckReplayed { .. })),
        1
    );
    assert_eq!(
        f.node.probe.count(|e| matches!(e, Event::Forwarded { .. })),
        1
    );
}

#[tokio::test]
async fn fact_11_notification_forms() {
    let ok = || Response::new(Body::empty());
    for kind in [
        NotificationType::ByReference,
        NotificationType::ByValue,
        NotificationType::None,
    ] {
        let rec = start_recorder(ok).await;
        let cfg = NodeConfig {
            notification: kind,
            notification_url: (kind != NotificationType::None)
                .then(|| format!("http://{}/app/notify", rec.addr)),
            ..NodeConfig::default()
        };
        let (n, _) = start_node(cfg).await;
        let mut c = Client::connect(&n.addr).await;
        let url = "/upload/report.bin?ACCOUNT=86433";
        let id = c.create(url).await;
        let d = data(5000, 6);
        assert_eq!(c.upload(url, &id, &d, 1024).await.status, 200);
        assert_eq!(c.close(url, &id).await.status, 200);
        let seen = rec.seen.lock().unwrap().clone();
        if kind == NotificationType::None {
            assert!(seen.is_empty(), "type 0 must not notify");
            continue;
        }
        assert_eq!(seen.len(), 1, "exactly one notification per upload");
        let r = &seen[0];
        assert_eq!(r.uri, "/app/notify?ACCOUNT=86433");
        assert_eq!(
            r.headers["bits-original-request-url"],
            format!("http://{}{url}", n.addr).as_str()
        );
        if kind == NotificationType::ByReference {
            assert_eq!(r.headers["content-length"], "0");
            assert!(r.body.is_empty());
            let req_path = r.headers["bits-request-datafile-name"].to_str().unwrap();
            assert!(req_path.ends_with(&format!("{id}/request")), "{req_path}");
            assert!(
                r.headers["bits-response-datafile-name"]
                    .to_str()
                    .unwrap()
                    .ends_with(&format!("{id}/response"))
            );
        } else {
            assert_eq!(r.headers["content-length"], "5000");
            assert_eq!(&r.body[..], &d[..]);
            assert!(!r.headers.contains_key("bits-request-datafile-name"));
            assert!(!r.headers.contains_key("bits-response-datafile-name"));
        }
    }
}

#[tokio::test]
async fn fact_12_application_error_is_context_7_and_the_retry_notifies_again() {
    let fail_first = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let n = fail_first.clone();
    let app_probe = TestProbe::new(move |ctx| {
        if ctx.point == FaultPoint::NotificationReceived
            && n.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0
        {
            Verdict::Fail(503)
        } else {
            Verdict::Continue
        }
    });
    let f = farm_with(
        NotificationType::ByValue,
        |_| {},
        BackendConfig::default(),
        app_probe,
    )
    .await;
    let mut c = Client::connect(&f.node.addr).await;
    let id = c.create(URL).await;
    let d = data(64, 7);
    let ack = c.fragment(URL, &id, &d, 0, 64).await;
    assert_eq!(ack.status, 503);
    assert_eq!(ack.error.unwrap().context, ErrorContext::REMOTE_APPLICATION);
    assert_eq!(ack.code(), Some(HResult::from_http_status(503)));
    assert_eq!(f.app.ledger.len(), 0);
    // The session stayed open: the re-sent final fragment notifies again, and succeeds.
    let ack = c.fragment(URL, &id, &d, 0, 64).await;
    assert_eq!(ack.status, 200, "{ack:?}");
    assert_eq!(f.app.ledger.len(), 1);
    assert_eq!(
        f.node.probe.count(|e| matches!(e, Event::Forwarded { .. })),
        2
    );
}

#[tokio::test]
async fn fact_13_reply_url_only_on_the_final_ack_of_upload_reply_and_static_urls_pass_through() {
    // Upload-reply with the application's own reply.
    let f = farm(NotificationType::ByReference, |c| c.upload_reply = true).await;
    let mut c = Client::connect(&f.node.addr).await;
    let id = c.create(URL).await;
    let d = data(500, 8);
    let mid = c.fragment(URL, &id, &d, 0, 200).await;
    assert_eq!(
        mid.reply_url, None,
        "no reply URL before the final fragment"
    );
    let fin = c.fragment(URL, &id, &d, 200, 500).await;
    let reply_url = fin
        .reply_url
        .expect("final Ack of upload-reply carries BITS-Reply-URL");
    // The reply can be downloaded from the node before Close.
    let target = transport::url::parse(&reply_url).unwrap();
    let mut get = Request::new(Body::empty());
    *get.uri_mut() = target.path_and_query.parse().unwrap();
    let resp = c.raw(get).await;
    assert_eq!(resp.status(), 200);
    let reply: serde_json::Value = serde_json::from_slice(resp.body()).unwrap();
    assert_eq!(reply["len"], 500);
    assert_eq!(reply["file"], URL);

    // Plain upload: no reply URL.
    let plain = farm(NotificationType::ByValue, |_| {}).await;
    let mut c = Client::connect(&plain.node.addr).await;
    let id = c.create(URL).await;
    assert_eq!(c.upload(URL, &id, &d, 200).await.reply_url, None);

    // Static response URL passed through verbatim.
    let static_url = "http://cdn.example/replies/Thing%20One?x=1";
    let app_cfg = BackendConfig {
        static_reply_url: Some(static_url.into()),
        ..BackendConfig::default()
    };
    let st = farm_with(
        NotificationType::ByValue,
        |c| c.upload_reply = true,
        app_cfg,
        TestProbe::quiet(),
    )
    .await;
    let mut c = Client::connect(&st.node.addr).await;
    let id = c.create(URL).await;
    assert_eq!(
        c.upload(URL, &id, &d, 200).await.reply_url.as_deref(),
        Some(static_url)
    );
}

#[tokio::test]
async fn fact_14_close_releases_the_session_and_an_early_close_delivers_nothing() {
    let f = farm(NotificationType::ByValue, |_| {}).await;
    let mut c = Client::connect(&f.node.addr).await;
    let id = c.create(URL).await;
    let d = data(100, 9);
    assert_eq!(c.fragment(URL, &id, &d, 0, 40).await.status, 200);
    assert_eq!(f.store.bytes_held(), 40);
    let ack = c.close(URL, &id).await;
    assert_eq!(
        (ack.status, ack.session_id.as_deref()),
        (200, Some(id.as_str()))
    );
    assert_eq!(f.store.bytes_held(), 0, "partial data must be deleted");
    assert_eq!(f.app.ledger.len(), 0, "nothing delivered");
    let after = c.fragment(URL, &id, &d, 40, 100).await;
    assert_eq!(after.code(), Some(HResult::SESSION_NOT_FOUND));
    assert_eq!(
        c.close(URL, &id).await.code(),
        Some(HResult::SESSION_NOT_FOUND)
    );

    // A completed upload: Close after delivery, then the session is gone too.
    let id = c.create(URL).await;
    assert_eq!(c.upload(URL, &id, &d, 60).await.status, 200);
    assert_eq!(c.close(URL, &id).await.status, 200);
    assert_eq!(f.app.ledger.len(), 1);
    assert_eq!(
        c.close(URL, &id).await.code(),
        Some(HResult::SESSION_NOT_FOUND)
    );
}

#[tokio::test]
async fn fact_15_cancel_after_the_final_fragment_neither_undelivers_nor_redelivers() {
    let f = farm(NotificationType::ByValue, |_| {}).await;
    let mut c = Client::connect(&f.node.addr).await;
    let id = c.create(URL).await;
    let d = data(100, 10);
    assert_eq!(c.upload(URL, &id, &d, 30).await.status, 200);
    let ack = c
        .ack(
            URL,
            &Packet::CancelSession {
                session_id: id.clone(),
            },
            Bytes::new(),
        )
        .await;
    assert_eq!(ack.status, 200);
    let s = f.app.ledger.snapshot();
    assert_eq!((s.total_deliveries, s.total_effects), (1, 1));
    assert_eq!(f.store.bytes_held(), 0);

    // Type 0: the committed file stays where it is after Cancel.
    let (n, store) = start_node(NodeConfig::default()).await;
    let mut c = Client::connect(&n.addr).await;
    let id = c.create(URL).await;
    assert_eq!(c.upload(URL, &id, &d, 30).await.status, 200);
    assert_eq!(
        c.ack(URL, &Packet::CancelSession { session_id: id }, Bytes::new())
            .await
            .status,
        200
    );
    assert_eq!(
        store.destination(URL).unwrap().hash,
        protocol::txid::hash(&d)
    );
}

#[tokio::test]
async fn fact_16_too_large_is_0x80200020_and_never_413() {
    let (n, store) = start_node(NodeConfig {
        max_upload_size: 1000,
        ..NodeConfig::default()
    })
    .await;
    let mut c = Client::connect(&n.addr).await;
    let id = c.create(URL).await;
    let d = data(1001, 11);
    let ack: Ack = c.fragment(URL, &id, &d, 0, 100).await;
    assert_eq!(ack.code(), Some(HResult::TOO_LARGE));
    assert_ne!(ack.status, 413);
    assert_eq!(store.bytes_held(), 0);
}
