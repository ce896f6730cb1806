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
