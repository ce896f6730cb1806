//! Generated requests: mostly-valid BITS packets with one thing wrong, garbage, extremes.
//! Every request comes from a seeded generator, so a failing one is replayed from its seed.

use rand::{Rng as _, RngExt as _};
use rand_chacha::ChaCha8Rng;

/// A request to send, as raw bytes, and what kind of answer it must get.
#[derive(Debug, Clone)]
pub struct Request {
    /// The bytes on the wire (one request, sometimes cut short).
    pub bytes: Vec<u8>,
    /// It carries a BITS packet type and a complete body: the answer must be an Ack.
    pub expects_ack: bool,
    /// The bytes end before the request does (a truncated body or head): the server may close
    /// the connection without an answer.
    pub truncated: bool,
    /// The session the request created or names, when it is a Create-Session.
    pub creates_session: bool,
}

/// Picks from a list.
fn pick<'a, T: ?Sized>(rng: &mut ChaCha8Rng, items: &[&'a T]) -> &'a T {
    items[rng.random_range(0..items.len())]
}

fn number(rng: &mut ChaCha8Rng) -> String {
    match rng.random_range(0..10) {
        0 => "0".into(),
        1 => u64::MAX.to_string(),
        2 => (1u64 << 63).to_string(),
        3 => "-1".into(),
        4 => "1000000000000000000000000000000".into(),
        5 => "".into(),
        6 => "x".into(),
        _ => rng.random_range(0..4096u64).to_string(),
    }
}

fn path(rng: &mut ChaCha8Rng) -> String {
    match rng.random_range(0..12) {
        0 => "/../escape.bin".into(),
        1 => "/a/%2e%2e/%2e%2e/x".into(),
        2 => format!("/ln/{}", "n".repeat(rng.random_range(200..300))),
        3 => "/BITS-Sessions/x/request".into(),
        4 => "/%ff%fe".into(),
        5 => "//double".into(),
        6 => "/".into(),
        7 => "*".into(),
        _ => format!("/fuzz/f{}.bin", rng.random_range(0..8)),
    }
}

/// A request of the generator's choosing; `sessions` are ids the server issued earlier.
pub fn generate(rng: &mut ChaCha8Rng, sessions: &[String]) -> Request {
    let method = match rng.random_range(0..20) {
        0 => "POST",
        1 => "GET",
        2 => "bits_post",
        3 => "PUT",
        4 => "BITS_POST BITS_POST",
        _ => "BITS_POST",
    };
    let packet = match rng.random_range(0..20) {
        0 => "".to_owned(),
        1 => "fragment".to_owned(),
        2 => "Nonsense".to_owned(),
        3 => "Ping".to_owned(),
        4..=6 => "Create-Session".to_owned(),
        7 => "Close-Session".to_owned(),
        8 => "Cancel-Session".to_owned(),
        _ => "Fragment".to_owned(),
    };
    let session = if !sessions.is_empty() && rng.random_bool(0.8) {
        sessions[rng.random_range(0..sessions.len())].clone()
    } else {
        pick(
            rng,
            &[
                "{00000000-0000-4000-8000-000000000000}",
                "../../etc",
                "",
                "{",
                &*"x".repeat(101),
            ],
        )
        .to_owned()
    };
    let mut headers: Vec<(String, String)> = vec![("Host".into(), "fuzz".into())];
    if !packet.is_empty() {
        headers.push(("BITS-Packet-Type".into(), packet.clone()));
    }
    let body_len = match rng.random_range(0..10) {
        0 => 0,
        1 => rng.random_range(0..70_000),
        _ => rng.random_range(1..2048),
    };
    let mut body = vec![0u8; body_len];
    rng.fill_bytes(&mut body);
    let mut declared = body_len as u64;
    let mut truncated = false;
    let mut chunked = false;
    let lower = packet.to_ascii_lowercase();
    match lower.as_str() {
        "create-session" => {
            if rng.random_bool(0.9) {
                headers.push((
                    "BITS-Supported-Protocols".into(),
                    pick(
                        rng,
                        &[
                            protocol::header::PROTOCOL_GUID,
                            "{7DF0354D-249B-430F-820D-3D2A9BEF4931}",
                            "{00000000-0000-0000-0000-000000000000}",
                            "junk, {7df0354d-249b-430f-820d-3d2a9bef4931}",
                        ],
                    )
                    .into(),
                ));
            }
            if rng.random_bool(0.7) {
                body.clear();
                declared = 0;
            }
        }
        "fragment" => {
            headers.push(("BITS-Session-Id".into(), session.clone()));
            let start: u64 = rng.random_range(0..4096);
            let len = body.len() as u64;
            let total = start + len + rng.random_range(0..4096);
            // Extreme totals and offsets with a length that matches the body, so they pass the
            // framing checks and reach the node's decisions.
            let huge = *pick(
                rng,
                &[
                    &u64::MAX,
                    &(1u64 << 63),
                    &1_844_674_407_370_956u64,
                    &(start + len),
                ],
            );
            let range = match rng.random_range(0..16) {
                0 => format!("bytes {}-{}/{}", number(rng), number(rng), number(rng)),
                1 => "bytes */100".into(),
                2 => format!("bytes 0-{}/{}", u64::MAX - 1, u64::MAX),
                3 => "items 0-1/2".into(),
                4 | 5 if len > 0 => format!("bytes {start}-{}/{huge}", start + len - 1),
                6 if len > 0 => format!("bytes {}-{}/{}", u64::MAX - len, u64::MAX - 1, u64::MAX),
                _ if len == 0 => format!("bytes {start}-{start}/{total}"),
                _ => format!("bytes {start}-{}/{total}", start + len - 1),
            };
            headers.push(("Content-Range".into(), range));
            if rng.random_bool(0.1) {
                headers.push(("Content-Name".into(), "\u{202e}evil.exe".into()));
            }
            if rng.random_bool(0.05) {
                headers.push(("Content-Encoding".into(), "gzip".into()));
            }
        }
        "close-session" | "cancel-session" => {
            headers.push(("BITS-Session-Id".into(), session.clone()));
            if rng.random_bool(0.8) {
                body.clear();
                declared = 0;
            }
        }
        _ => {
            if rng.random_bool(0.5) {
                body.clear();
                declared = 0;
            }
        }
    }
    match rng.random_range(0..20) {
        0 => chunked = true,
        1 => {
            // Declares more than it sends: the server waits, then gives up.
            declared += rng.random_range(1..100);
            truncated = true;
        }
        2 => declared = declared.saturating_sub(1),
        _ => {}
    }
    if chunked {
        headers.push(("Transfer-Encoding".into(), "chunked".into()));
    } else {
        headers.push(("Content-Length".into(), declared.to_string()));
    }
    if rng.random_range(0..30) == 0 {
        headers.push(("BITS-Session-Id".into(), "{dup}".into()));
    }
    let target = path(rng);
    let mut head = format!("{method} {target} HTTP/1.1\r\n");
    for (k, v) in &headers {
        head.push_str(k);
        head.push_str(": ");
        head.push_str(v);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    if chunked {
        if !body.is_empty() {
            bytes.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
            bytes.extend_from_slice(&body);
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(b"0\r\n\r\n");
    } else {
        let send = (declared as usize).min(body.len());
        bytes.extend_from_slice(&body[..send]);
    }
    // A head cut in the middle, now and then.
    if rng.random_range(0..40) == 0 {
        let cut = rng.random_range(1..bytes.len().max(2));
        bytes.truncate(cut);
        truncated = true;
    }
    // Every BITS_POST that reaches the node is answered with an Ack, whatever is wrong with
    // it; hyper itself answers requests that are not HTTP (a bad request line or target).
    let expects_ack = method == "BITS_POST" && !truncated && target.starts_with('/');
    Request {
        bytes,
        expects_ack,
        truncated,
        creates_session: lower == "create-session",
    }
}
