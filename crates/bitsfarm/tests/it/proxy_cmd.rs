//! `bitsfarm proxy` in front of two `bitsfarm serve` nodes: a drop-response at the moment the
//! seed document names makes a duplicate without BITSHostId, and none with it.

use std::io::{BufRead, BufReader};

use crate::{
    live::{ledger, serve},
    *,
};

/// Deliveries of `file` in a `serve` application's ledger.
fn delivered(app: &str, file: &str) -> usize {
    ledger(app)["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["file"] == file)
        .count()
}

/// A `bitsfarm proxy` over `n1` and `n2` with `faults` (`--listen` and `--control` on free
/// ports, `--json`, reports into `out`): the process, its stdout after the first line, and
/// the addresses that line gave.
fn start_proxy(
    n1: &str,
    n2: &str,
    faults: &std::path::Path,
    out: &std::path::Path,
    extra: &[&str],
) -> (
    std::process::Child,
    std::io::Lines<BufReader<std::process::ChildStdout>>,
    serde_json::Value,
) {
    let mut proxy = std::process::Command::new(env!("CARGO_BIN_EXE_bitsfarm"))
        .args([
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--json",
            "--timeout-s",
            "90",
        ])
        .args(["--control", "127.0.0.1:0"])
        .args(["--upstream", &format!("n1=http://{n1}")])
        .args(["--upstream", &format!("n2=http://{n2}")])
        .args(["--faults", faults.to_str().unwrap()])
        .args(["--out", out.to_str().unwrap()])
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(proxy.stdout.take().unwrap()).lines();
    let addrs = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    (proxy, lines, addrs)
}

/// Two serve nodes (with `node_args`) behind a proxy whose rule drops the final Ack of
/// /upload/a.bin; uploads a.bin and b.bin through it. The ledgers' deliveries of each file
/// (both nodes together), the proxy's exit code, its summary, its deliveries.json, and its
/// events.jsonl.
fn drop_final_ack(
    tag: &str,
    node_args: &[&str],
) -> (
    usize,
    usize,
    Option<i32>,
    serde_json::Value,
    serde_json::Value,
    String,
) {
    let root = tempdir(tag);
    let n1 = serve(node_args, &root.join("n1"));
    let n2 = serve(node_args, &root.join("n2"));
    let faults = root.join("faults.toml");
    std::fs::write(
        &faults,
        "[[fault]]\npoint = \"final-fragment-answered\"\naction = \"drop-response\"\nfile = \"/upload/a.bin\"\n",
    )
    .unwrap();
    let (mut proxy, lines, addrs) =
        start_proxy(&n1.node, &n2.node, &faults, &root.join("reports"), &[]);
    let shared = addrs["shared"].as_str().unwrap().to_owned();
    for name in ["a.bin", "b.bin"] {
        let file = root.join(name);
        std::fs::write(&file, vec![name.as_bytes()[0]; 150_000]).unwrap();
        let o = bitsfarm(&[
            "upload",
            file.to_str().unwrap(),
            &format!("http://{shared}/upload/{name}"),
            "--retry-delay-s",
            "5",
            "--no-progress-timeout-s",
            "60",
        ]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
    }
    let a = delivered(&n1.app, "/upload/a.bin") + delivered(&n2.app, "/upload/a.bin");
    let b = delivered(&n1.app, "/upload/b.bin") + delivered(&n2.app, "/upload/b.bin");
    let killed = std::process::Command::new("kill")
        .args(["-INT", &proxy.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = proxy.wait().unwrap().code();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let summary = serde_json::from_str(&rest.join("\n")).unwrap();
    let seen = std::fs::read(root.join("reports/deliveries.json")).unwrap();
    for f in ["events.jsonl", "summary.json", "report.md", "report.html"] {
        assert!(root.join("reports").join(f).is_file(), "{f}");
    }
    (
        a,
        b,
        status,
        summary,
        serde_json::from_slice(&seen).unwrap(),
        std::fs::read_to_string(root.join("reports/events.jsonl")).unwrap(),
    )
}

fn proxy_count(seen: &serde_json::Value, file: &str) -> usize {
    seen["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["file"] == file)
        .count()
}

/// BITSHostId unset: the client's retry of the final fragment goes to the other node, which
/// does not know the session; the upload starts over there and the file is delivered twice.
/// The proxy infers the same from the wire, and its report explains the duplicate by the rule;
/// the file without the fault is delivered once.
#[test]
fn a_dropped_final_ack_without_host_id_delivers_twice() {
    let (a, b, status, summary, seen, _) = drop_final_ack("proxy-no-hostid", &[]);
    assert_eq!((a, b), (2, 1), "the nodes' own ledgers");
    assert_eq!(status, Some(0), "{summary}");
    assert_eq!(
        (summary["files"].as_u64(), summary["deliveries"].as_u64()),
        (Some(2), Some(3)),
        "{summary}"
    );
    assert_eq!(summary["duplicate_deliveries"], 1, "{summary}");
    let dup = &summary["duplicates"][0];
    assert_eq!(dup["file"], "/upload/a.bin", "{summary}");
    assert_eq!(dup["chains"][0]["rule"], 0, "explained by the drop: {dup}");
    let sentence = dup["chains"][0]["sentence"].as_str().unwrap();
    assert!(sentence.contains("did not know the session"), "{sentence}");
    for inv in summary["invariants"].as_array().unwrap() {
        assert_eq!(inv["held"], true, "{inv}");
    }
    assert_eq!(proxy_count(&seen, "/upload/a.bin"), 2, "{seen}");
    assert_eq!(proxy_count(&seen, "/upload/b.bin"), 1, "{seen}");
    assert_eq!(
        seen["duplicates"],
        serde_json::json!([["/upload/a.bin", 2]])
    );
    assert_eq!(seen["fired"], serde_json::json!([1]));
    let ups: Vec<&str> = seen["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["file"] == "/upload/a.bin")
        .map(|d| d["upstream"].as_str().unwrap())
        .collect();
    assert_ne!(ups[0], ups[1], "delivered by both nodes: {seen}");
    // The bytes the client sent, the same in both sessions.
    let hashes: Vec<&serde_json::Value> = seen["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["hash"])
        .collect();
    assert!(hashes[0].is_string() && hashes[0] == hashes[1], "{seen}");
}

/// BITSHostId set on both nodes: the proxy rewrites it to the node's own proxy address, the
/// client's retried final fragment reaches the same node, whose cached Ack answers it: one
/// delivery, and the proxy says so.
#[test]
fn a_dropped_final_ack_with_host_id_is_answered_from_the_cache() {
    let (a, b, status, summary, seen, events) =
        drop_final_ack("proxy-hostid", &["--host-id", "unreachable.invalid"]);
    assert_eq!((a, b), (1, 1), "the nodes' own ledgers");
    assert_eq!(status, Some(0), "{summary}");
    assert_eq!(summary["duplicate_deliveries"], 0, "{summary}");
    assert_eq!(summary["deliveries"], 2, "{summary}");
    assert!(events.contains("\"cached_ack_replayed\""), "{events}");
    assert_eq!(proxy_count(&seen, "/upload/a.bin"), 1, "{seen}");
    assert_eq!(seen["duplicates"], serde_json::json!([]));
    assert_eq!(seen["fired"], serde_json::json!([1]));
}

/// Rules before forwarding: a Create-Session answered 503 without forwarding (the client
/// retries and the upload goes through), and an upstream taken down at a fragment (its client
/// connection is closed; the retry goes to the other upstream, which does not know the
/// session: the upload restarts there and is delivered once, by the other).
#[test]
fn faults_before_forwarding_and_an_upstream_down() {
    let root = tempdir("proxy-down");
    let n1 = serve(&[], &root.join("n1"));
    let n2 = serve(&[], &root.join("n2"));
    let faults = root.join("faults.toml");
    std::fs::write(
        &faults,
        "[[fault]]\npoint = \"create-session\"\naction = \"fail\"\nstatus = 503\nfile = \"/upload/c.bin\"\n",
    )
    .unwrap();
    let out = root.join("reports");
    let (mut proxy, _lines, addrs) =
        start_proxy(&n1.node, &n2.node, &faults, &out, &["--seed", "7"]);
    let shared = addrs["shared"].as_str().unwrap().to_owned();
    let ctl = addrs["control"].as_str().unwrap().to_owned();
    // The second rule through the control API; a bad one is refused with what is wrong.
    let (status, e) = crate::farm_cmd::control(
        &ctl,
        "POST",
        "/faults",
        r#"{"point": "fragment", "action": "down"}"#,
    );
    assert_eq!(status, 400, "{e}");
    assert!(e["error"].as_str().unwrap().contains("duration_s"), "{e}");
    let (status, r) = crate::farm_cmd::control(
        &ctl,
        "POST",
        "/faults",
        r#"{"point": "fragment", "action": "down", "duration_s": 60, "file": "/upload/e.bin"}"#,
    );
    assert_eq!((status, r["id"].as_u64()), (201, Some(1)), "{r}");
    for name in ["c.bin", "e.bin"] {
        let file = root.join(name);
        std::fs::write(&file, vec![b'x'; 120_000]).unwrap();
        let o = bitsfarm(&[
            "upload",
            file.to_str().unwrap(),
            &format!("http://{shared}/upload/{name}"),
            "--retry-delay-s",
            "5",
            "--fragment-size",
            "40000",
            "--no-progress-timeout-s",
            "60",
        ]);
        assert_eq!(code(&o), 0, "{name}: {}", stderr(&o));
    }
    let (status, ledger) = crate::farm_cmd::control(&ctl, "GET", "/ledger", "");
    assert_eq!(status, 200);
    assert_eq!(
        ledger["deliveries"].as_array().unwrap().len(),
        2,
        "{ledger}"
    );
    let (status, r) = crate::farm_cmd::control(&ctl, "POST", "/stop", "");
    assert_eq!(status, 202, "{r}");
    assert_eq!(proxy.wait().unwrap().code(), Some(0));
    let seen: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("deliveries.json")).unwrap()).unwrap();
    assert_eq!(seen["fired"], serde_json::json!([1, 1]), "{seen}");
    assert_eq!(seen["duplicates"], serde_json::json!([]), "{seen}");
    for f in ["/upload/c.bin", "/upload/e.bin"] {
        assert_eq!(
            delivered(&n1.app, f) + delivered(&n2.app, f),
            1,
            "{f} in the nodes' ledgers"
        );
    }
    // e.bin was delivered by the upstream that did not go down.
    let events = std::fs::read_to_string(out.join("events.jsonl")).unwrap();
    let down: serde_json::Value = events
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["type"] == "fault_fired" && e["rule"] == 1)
        .expect("the down rule fired");
    let by = seen["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["file"] == "/upload/e.bin")
        .unwrap()["upstream"]
        .clone();
    assert_ne!(down["actor"], by, "{down} / {seen}");
}

/// Bad flags and rule files are refused with what is wrong (exit 2), before anything listens;
/// --node-listen puts an upstream's own address where it says.
#[test]
fn proxy_flags_are_checked() {
    let root = tempdir("proxy-flags");
    let bad = root.join("bad.toml");
    std::fs::write(
        &bad,
        "[[fault]]\npoint = \"fragment\"\naction = \"delay\"\n",
    )
    .unwrap();
    let unknown = root.join("unknown.toml");
    std::fs::write(
        &unknown,
        "[[fault]]\npoint = \"fragment\"\naction = \"explode\"\n",
    )
    .unwrap();
    let base = ["proxy", "--listen", "127.0.0.1:0", "--control", "none"];
    for (extra, says) in [
        (vec!["--upstream", "n1"], "give NAME=URL"),
        (
            vec!["--upstream", "n1=ftp://x/"],
            "only http:// and https://",
        ),
        (
            vec!["--upstream", "n1=http://a/", "--upstream", "n2=https://b/"],
            "same scheme",
        ),
        (
            vec![
                "--upstream",
                "n1=http://a/",
                "--node-listen",
                "n9=127.0.0.1:1",
            ],
            "no upstream named n9",
        ),
        (
            vec![
                "--upstream",
                "n1=http://a/",
                "--faults",
                bad.to_str().unwrap(),
            ],
            "fault[0]: delay: duration_s",
        ),
        (
            vec![
                "--upstream",
                "n1=http://a/",
                "--faults",
                unknown.to_str().unwrap(),
            ],
            "explode",
        ),
        (
            vec!["--upstream", "n1=http://a/", "--balancer", "fastest"],
            "round-robin, random",
        ),
    ] {
        let mut args = base.to_vec();
        args.extend(extra);
        let o = bitsfarm(&args);
        assert_eq!(code(&o), 2, "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{says:?} not in: {}", stderr(&o));
    }
    // --node-listen: upstream n1 served alone where it says.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let at = format!("127.0.0.1:{port}");
    let mut proxy = std::process::Command::new(env!("CARGO_BIN_EXE_bitsfarm"))
        .args(base)
        .args([
            "--upstream",
            "n1=http://127.0.0.1:9/",
            "--json",
            "--timeout-s",
            "1",
        ])
        .args(["--node-listen", &format!("n1={at}")])
        .args(["--out", root.join("out").to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(proxy.stdout.take().unwrap()).lines();
    let addrs: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(addrs["upstreams"]["n1"], at.as_str(), "{addrs}");
    assert!(proxy.wait().unwrap().code().is_some());
}

/// Reads one HTTP response head from `s`: its status and the value of `header` (lower case).
fn response_head(s: &mut std::net::TcpStream, header: &str) -> (u16, Option<String>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match std::io::Read::read(s, &mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let value = text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(header)
            .then(|| v.trim().to_owned())
    });
    (status, value)
}

/// The proxy relays a fragment's body to the upstream as it arrives. A client that sends half
/// a fragment and stops gets 400 (the body broke), the upstream never stores or acknowledges
/// the half (its request was cut, not completed), nothing is delivered, and the proxy goes on
/// serving: the same session then takes the whole fragment and the file is delivered once.
#[test]
fn a_fragment_body_that_breaks_while_relayed_is_not_taken_for_a_whole_one() {
    use std::io::Write as _;
    let root = tempdir("proxy-relay");
    let n1 = serve(&[], &root.join("n1"));
    let n2 = serve(&[], &root.join("n2"));
    let faults = root.join("faults.toml");
    std::fs::write(&faults, "").unwrap();
    let out = root.join("reports");
    let (mut proxy, _lines, addrs) = start_proxy(&n1.node, &n2.node, &faults, &out, &[]);
    let shared = addrs["shared"].as_str().unwrap().to_owned();
    let ctl = addrs["control"].as_str().unwrap().to_owned();
    const LEN: usize = 2 << 20;
    let data: Vec<u8> = (0..LEN).map(|i| (i * 31 % 251) as u8).collect();
    let request = |session: Option<&str>, kind: &str, len: usize| {
        let mut head = format!(
            "BITS_POST /upload/r.bin HTTP/1.1\r\nHost: {shared}\r\nBITS-Packet-Type: {kind}\r\nContent-Length: {len}\r\n"
        );
        match session {
            None => head
                .push_str("BITS-Supported-Protocols: {7df0354d-249b-430f-820d-3d2a9bef4931}\r\n"),
            Some(id) => head.push_str(&format!("BITS-Session-Id: {id}\r\n")),
        }
        if kind == "Fragment" {
            head.push_str(&format!("Content-Range: bytes 0-{}/{LEN}\r\n", LEN - 1));
        }
        head + "\r\n"
    };
    // One connection: the proxy keeps it on one upstream, the one holding the session.
    let mut s = std::net::TcpStream::connect(&shared).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    s.write_all(request(None, "Create-Session", 0).as_bytes())
        .unwrap();
    let (status, id) = response_head(&mut s, "bits-session-id");
    assert_eq!(status, 200);
    let id = id.expect("a session id");
    s.write_all(request(Some(&id), "Fragment", LEN).as_bytes())
        .unwrap();
    s.write_all(&data[..LEN / 2]).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let (status, _) = response_head(&mut s, "bits-received-content-range");
    assert_eq!(status, 400, "a half body is refused");
    // A new connection may reach the other upstream: ask each upstream (through the proxy's
    // address for it) for the second half alone. The one holding the session answers 416 with
    // what it holds: nothing, had it kept the half, it would take the second half.
    let send = |addr: &str, head: String, body: &[u8]| {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
            .unwrap();
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        response_head(&mut s, "bits-received-content-range")
    };
    let second_half =
        request(Some(&id), "Fragment", LEN / 2).replace("bytes 0-", &format!("bytes {}-", LEN / 2));
    let mut owner = None;
    for up in ["n1", "n2"] {
        let addr = addrs["upstreams"][up].as_str().unwrap().to_owned();
        let (status, held) = send(&addr, second_half.clone(), &data[LEN / 2..]);
        if let Some(held) = held {
            assert_eq!(
                (status, held.as_str()),
                (416, "0"),
                "{up} held the broken half"
            );
            owner = Some(addr);
        }
    }
    let owner = owner.expect("an upstream knows the session");
    let (status, held) = send(&owner, request(Some(&id), "Fragment", LEN), &data);
    assert_eq!((status, held), (200, Some(LEN.to_string())));
    assert_eq!(
        delivered(&n1.app, "/upload/r.bin") + delivered(&n2.app, "/upload/r.bin"),
        1
    );
    let (status, r) = crate::farm_cmd::control(&ctl, "POST", "/stop", "");
    assert_eq!(status, 202, "{r}");
    assert_eq!(proxy.wait().unwrap().code(), Some(0));
}
