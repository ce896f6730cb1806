//! `bitsfarm probe URL` against `serve` in several configurations, a live 3-node farm, a
//! deliberately broken server written here, and something that is not a BITS server.

use crate::{live::serve, *};

fn probe(args: &[&str]) -> (i32, serde_json::Value, String) {
    let mut all = vec!["probe"];
    all.extend(args);
    all.push("--json");
    let o = bitsfarm(&all);
    let findings = serde_json::from_str(&stdout(&o)).unwrap_or(serde_json::Value::Null);
    (code(&o), findings, stderr(&o))
}

/// The ids of facts that did not hold (`false`), and of those not checked (`null`).
fn failed_and_unknown(f: &serde_json::Value) -> (Vec<String>, Vec<String>) {
    let mut failed = Vec::new();
    let mut unknown = Vec::new();
    for fact in f["facts"].as_array().unwrap() {
        let id = fact["id"].as_str().unwrap().to_owned();
        match fact["holds"].as_bool() {
            Some(false) => failed.push(id),
            None => unknown.push(id),
            Some(true) => {}
        }
    }
    (failed, unknown)
}

fn risk_ids(f: &serde_json::Value) -> Vec<String> {
    f["risks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

/// `serve` with BITSHostId, a 300 s fallback timeout, a 5,000,000-byte upload limit and a
/// 300,000-byte request limit: every checkable fact holds; the probe finds the Host-Id, the
/// timeout, both limits (by declared totals and by heads, never sending the bytes), one node,
/// and names the short fallback as a risk. The scenario it writes runs with
/// `scenario` and `sweep`. Every session it opened is gone afterwards.
#[test]
fn probe_finds_a_servers_settings_and_risks() {
    let root = tempdir("probe-serve");
    let uploads = root.join("uploads");
    let srv = serve(
        &[
            "--host-id",
            "localhost",
            "--fallback-timeout-s",
            "300",
            "--max-upload-size",
            "5000000",
            "--max-fragment-size",
            "300000",
        ],
        &uploads,
    );
    let mirror = root.join("mirror.toml");
    let url = format!("http://{}/upload/", srv.node);
    let out = root.join("probe");
    let (exit, f, err) = probe(&[
        &url,
        "--write-scenario",
        mirror.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(exit, 0, "{err}\n{f}");
    // --out: the same findings as JSON, and the report in words.
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("probe.json")).unwrap()).unwrap();
    assert_eq!(saved, f);
    // probe.json is what docs/schema/probe.schema.json says.
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/schema/probe.schema.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut errors = Vec::new();
    crate::schema_cmd::validate(&schema, &schema, &saved, "$", &mut errors);
    assert!(errors.is_empty(), "{errors:#?}");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("holds  S6") && md.contains("BITSHostIdFallbackTimeout  300 s"),
        "{md}"
    );
    let (failed, unknown) = failed_and_unknown(&f);
    assert!(failed.is_empty(), "{failed:?}: {f}");
    assert_eq!(unknown, ["S11", "S12", "S15"], "{f}");
    let s = &f["settings"];
    assert_eq!(s["host_id"], "localhost", "{s}");
    assert_eq!(s["fallback_timeout_s"], 300, "{s}");
    let (lo, hi) = (
        s["max_upload_size_range"][0].as_u64().unwrap(),
        s["max_upload_size_range"][1].as_u64().unwrap(),
    );
    assert!(lo <= 5_000_000 && 5_000_000 < hi, "{s}");
    assert!(hi - lo <= 5_000_000 / 1000 + 1, "{s}");
    // The largest fragment, from heads alone (IIS's maxAllowedContentLength answers 413).
    let (lo, hi) = (
        s["max_fragment_size_range"][0].as_u64().unwrap(),
        s["max_fragment_size_range"][1].as_u64().unwrap(),
    );
    assert!(lo <= 300_000 && 300_000 < hi && hi - lo <= 3_000 + 1, "{s}");
    assert_eq!(
        (s["nodes_seen"].as_u64(), s["nodes_estimated"].as_bool()),
        (Some(1), Some(false))
    );
    assert_eq!(s["session_id_format"], "guid");
    assert_eq!(s["upload_reply"], false);
    assert!(risk_ids(&f).contains(&"fallback-short".to_owned()), "{f}");
    assert!(f["requests"].as_u64().unwrap() <= 300);
    // Nothing left behind: every session was closed or cancelled.
    let left: Vec<_> = std::fs::read_dir(uploads.join("BITS-Sessions"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "ledger.jsonl")
        .collect();
    assert!(left.is_empty(), "sessions left: {left:?}");
    // The mirrored farm runs.
    let text = std::fs::read_to_string(&mirror).unwrap();
    assert!(
        text.contains("host_id = true") && text.contains("fallback_timeout_s = 300"),
        "{text}"
    );
    let o = bitsfarm(&[
        "scenario",
        mirror.to_str().unwrap(),
        "--out",
        root.join("sim").to_str().unwrap(),
    ]);
    assert_ne!(code(&o), 2, "{}", stderr(&o));
    let o = bitsfarm(&[
        "sweep",
        mirror.to_str().unwrap(),
        "--vary",
        "farm.host_id=true,false",
        "--seeds",
        "2",
        "--out",
        root.join("sweep").to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // A request budget too small: the rest is not checkable, said why.
    let (_, f, _) = probe(&[&url, "--max-requests", "10"]);
    assert_eq!(f["requests"], 10, "{f}");
    let budget = f["facts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == "S14")
        .unwrap()
        .clone();
    assert!(budget["holds"].is_null(), "{budget}");
    assert!(
        budget["evidence"]
            .as_str()
            .unwrap()
            .contains("--max-requests"),
        "{budget}"
    );
}

/// A live 3-node farm without BITSHostId: a session is found on about a third of fresh
/// connections, the probe estimates 3 nodes and names the risk.
#[test]
fn probe_sees_a_farm_that_does_not_share_sessions() {
    let root = tempdir("probe-farm");
    let out = root.join("farm");
    let farm = crate::farm_cmd::OutsideFarm::start(&[
        "happy-path",
        "--timeout-s",
        "60",
        "--out",
        out.to_str().unwrap(),
    ]);
    let url = format!("http://{}/upload/", farm.shared());
    let (exit, f, err) = probe(&[&url, "--connections", "9"]);
    let _ = farm.stop(false);
    assert_eq!(exit, 0, "{err}\n{f}");
    let s = &f["settings"];
    assert_eq!(s["host_id"], serde_json::Value::Null);
    assert_eq!(s["sessions_shared"], false, "{s}");
    assert_eq!(
        (
            s["sessions_found"].as_u64(),
            s["connections_tried"].as_u64()
        ),
        (Some(3), Some(9)),
        "{s}"
    );
    assert_eq!(
        (s["nodes_seen"].as_u64(), s["nodes_estimated"].as_bool()),
        (Some(3), Some(true)),
        "{s}"
    );
    assert!(risk_ids(&f).contains(&"no-host-id".to_owned()), "{f}");
}

/// A server written here that answers 200 to a fragment past the bytes it holds and keeps
/// sessions per connection: the probe exits 1 and names those facts.
#[test]
fn probe_names_what_a_broken_server_gets_wrong() {
    let addr = broken_server();
    let o = bitsfarm(&["probe", &format!("http://{addr}/up/")]);
    assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    for fact in ["FAILS  S6 ", "FAILS  S-visible"] {
        assert!(out.contains(fact), "{fact:?} not in:\n{out}");
    }
    assert!(out.contains("holds  S9 "), "{out}");
}

/// Something that is not a BITS server: exit 2 with what it answered.
#[test]
fn probe_refuses_what_is_not_a_bits_server() {
    let root = tempdir("probe-not-bits");
    let srv = serve(&[], &root.join("uploads"));
    let o = bitsfarm(&["probe", &format!("http://{}/ledger", srv.app)]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("not a BITS upload endpoint"),
        "{}",
        stderr(&o)
    );
    let o = bitsfarm(&["probe", "ftp://example.com/"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
}

/// A BITS server of the test's own, wrong in two ways: sessions belong to the connection that
/// created them, and a fragment past the bytes held is answered 200 as if it were next.
fn broken_server() -> String {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for (n, conn) in listener.incoming().enumerate() {
            let Ok(stream) = conn else { continue };
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(30)));
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut out = stream;
                // This connection's sessions: id → bytes held.
                let mut sessions: std::collections::BTreeMap<String, u64> = Default::default();
                let mut next = 0;
                loop {
                    let mut headers = std::collections::BTreeMap::new();
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        let h = h.trim_end();
                        if h.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = h.split_once(':') {
                            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
                        }
                    }
                    let len: usize = headers
                        .get("content-length")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    let mut body = vec![0; len];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let ack = |status: &str, extra: &[(&str, String)]| {
                        let mut r = format!(
                            "HTTP/1.1 {status}\r\nBITS-Packet-Type: Ack\r\nContent-Length: 0\r\n"
                        );
                        for (k, v) in extra {
                            r.push_str(&format!("{k}: {v}\r\n"));
                        }
                        r + "\r\n"
                    };
                    let packet = headers
                        .get("bits-packet-type")
                        .cloned()
                        .unwrap_or_default()
                        .to_ascii_lowercase();
                    let session = headers.get("bits-session-id").cloned().unwrap_or_default();
                    let bad = || {
                        ack(
                            "400 Bad Request",
                            &[
                                ("BITS-Error-Code", "0x80070057".into()),
                                ("BITS-Error-Context", "0x5".into()),
                            ],
                        )
                    };
                    let answer = match packet.as_str() {
                        "ping" => ack("200 OK", &[]),
                        "create-session" => {
                            if headers
                                .get("bits-supported-protocols")
                                .is_some_and(|p| p.to_ascii_lowercase().contains("7df0354d"))
                            {
                                next += 1;
                                let id = format!("{{{n:08X}-0000-0000-0000-{next:012X}}}");
                                sessions.insert(id.clone(), 0);
                                ack(
                                    "200 OK",
                                    &[
                                        (
                                            "BITS-Protocol",
                                            "{7df0354d-249b-430f-820d-3d2a9bef4931}".into(),
                                        ),
                                        ("BITS-Session-Id", id),
                                        ("Accept-Encoding", "Identity".into()),
                                    ],
                                )
                            } else {
                                bad()
                            }
                        }
                        "fragment" => {
                            match (sessions.get_mut(&session), headers.get("content-range")) {
                                (None, _) => ack(
                                    "500 Internal Server Error",
                                    &[
                                        ("BITS-Error-Code", "0x8020001F".into()),
                                        ("BITS-Error-Context", "0x5".into()),
                                    ],
                                ),
                                (Some(_), None) => bad(),
                                (Some(held), Some(r)) => {
                                    // "bytes a-b/t": take it, whatever `a` is.
                                    let end: u64 = r
                                        .trim_start_matches("bytes ")
                                        .split(['-', '/'])
                                        .nth(1)
                                        .and_then(|e| e.parse().ok())
                                        .unwrap_or(0);
                                    *held = (*held).max(end + 1);
                                    ack(
                                        "200 OK",
                                        &[
                                            ("BITS-Session-Id", session.clone()),
                                            ("BITS-Received-Content-Range", held.to_string()),
                                        ],
                                    )
                                }
                            }
                        }
                        "close-session" | "cancel-session" => {
                            if sessions.remove(&session).is_some() {
                                ack("200 OK", &[("BITS-Session-Id", session.clone())])
                            } else {
                                ack(
                                    "500 Internal Server Error",
                                    &[("BITS-Error-Code", "0x8020001F".into())],
                                )
                            }
                        }
                        _ => bad(),
                    };
                    if out.write_all(answer.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}
