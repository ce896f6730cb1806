//! Property tests of the protocol crate: render→parse round trips, and the parser never panics.

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use proptest::prelude::*;
use protocol::{Ack, AckError, ByteRange, ErrorContext, HResult, Packet, packet::Fragment};

fn token() -> impl Strategy<Value = String> {
    "[!-~]{1,40}"
}

fn session_id() -> impl Strategy<Value = String> {
    "[!-~]{1,100}"
}

fn byte_range() -> impl Strategy<Value = ByteRange> {
    prop_oneof![
        Just(ByteRange::new(0, 0, 0).unwrap()),
        (1u64..u64::MAX / 2, any::<u64>(), any::<u64>()).prop_map(|(total, a, b)| {
            let start = a % total;
            let end = start + 1 + b % (total - start);
            ByteRange::new(start, end, total).unwrap()
        }),
    ]
}

fn packet() -> impl Strategy<Value = Packet> {
    prop_oneof![
        Just(Packet::Ping),
        prop::collection::vec("[!-+\\--~]{1,40}", 1..4)
            .prop_map(|protocols| Packet::CreateSession { protocols }),
        (session_id(), byte_range(), prop::option::of("[ -~]{0,60}")).prop_map(
            |(session_id, range, content_name)| Packet::Fragment(Fragment {
                session_id,
                range,
                // Header values are trimmed of surrounding blanks by HTTP; keep names inside.
                content_name: content_name
                    .map(|n| n.trim().to_owned())
                    .filter(|n| !n.is_empty()),
            })
        ),
        session_id().prop_map(|session_id| Packet::CloseSession { session_id }),
        session_id().prop_map(|session_id| Packet::CancelSession { session_id }),
    ]
}

fn ack() -> impl Strategy<Value = Ack> {
    (
        prop_oneof![
            Just(200u16),
            Just(201),
            Just(400),
            Just(416),
            Just(500),
            100u16..600
        ],
        prop::option::of(session_id()),
        prop::option::of(token()),
        prop::option::of(token()),
        prop::option::of(any::<u64>()),
        prop::option::of(any::<u64>()),
        prop::option::of(token()),
        prop::option::of((any::<u32>(), any::<u32>())),
    )
        .prop_map(
            |(status, session_id, protocol, host_id, fallback, received, reply_url, error)| Ack {
                status,
                session_id,
                protocol,
                host_id,
                host_id_fallback_timeout_s: fallback,
                received,
                reply_url,
                error: error.map(|(c, x)| AckError {
                    code: HResult(c),
                    context: ErrorContext(x),
                }),
            },
        )
}

proptest! {
    #[test]
    fn every_packet_round_trips(p in packet()) {
        let req = p.to_request("/upload/f.bin".parse().unwrap());
        prop_assert_eq!(req.method().as_str(), "BITS_POST");
        prop_assert!(req.headers().contains_key("content-length"));
        prop_assert_eq!(Packet::parse(req.method(), req.headers()), Ok(p));
    }

    #[test]
    fn every_ack_round_trips(a in ack()) {
        let resp = a.to_response();
        prop_assert_eq!(&resp.headers()["bits-packet-type"], "Ack");
        prop_assert_eq!(&resp.headers()["content-length"], "0");
        prop_assert_eq!(Ack::parse(resp.status(), resp.headers()), Ok(a));
    }

    #[test]
    fn arbitrary_headers_never_panic(
        pairs in prop::collection::vec((
            prop_oneof![
                Just("bits-packet-type".to_owned()), Just("bits-session-id".to_owned()),
                Just("content-range".to_owned()), Just("content-length".to_owned()),
                Just("content-encoding".to_owned()), Just("content-name".to_owned()),
                Just("bits-supported-protocols".to_owned()), Just("bits-error-code".to_owned()),
                Just("bits-error".to_owned()), Just("bits-error-context".to_owned()),
                Just("bits-received-content-range".to_owned()),
                Just("bits-host-id-fallback-timeout".to_owned()), "[a-z-]{1,12}",
            ],
            prop::collection::vec(any::<u8>(), 0..80),
        ), 0..10),
        kind in prop_oneof![Just("Ping".to_owned()), Just("create-session".to_owned()),
            Just("FRAGMENT".to_owned()), Just("Close-Session".to_owned()),
            Just("cancel-session".to_owned()), Just("Ack".to_owned()), "[ -~]{0,20}"],
        status in 100u16..1000,
    ) {
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&kind) {
            headers.insert("bits-packet-type", v);
        }
        for (name, value) in pairs {
            if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_bytes(&value)) {
                headers.append(n, v);
            }
        }
        let _ = Packet::parse(&protocol::bits_post(), &headers);
        let _ = Packet::parse(&Method::POST, &headers);
        let _ = Ack::parse(StatusCode::from_u16(status).unwrap(), &headers);
        for (_, v) in headers.iter() {
            if let Ok(s) = v.to_str() {
                let _ = ByteRange::parse(s);
                let _ = HResult::parse(s);
                let _ = protocol::txid::parse(s.as_bytes());
            }
        }
    }

    #[test]
    fn ranges_round_trip(r in byte_range()) {
        prop_assert_eq!(ByteRange::parse(&r.to_string()), Ok(r));
    }
}
