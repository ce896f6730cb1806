//! `bitsfarm serve` + `bitsfarm upload` over loopback: the two-terminal example of the README.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
};

use crate::*;

pub(crate) struct Server {
    child: Child,
    pub(crate) node: String,
    pub(crate) app: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn serve(extra: &[&str], root: &std::path::Path) -> Server {
    serve_limited(None, extra, root)
}

/// `serve`, under an open-file limit when `nofile` is set (a shell sets it, then execs).
fn serve_limited(nofile: Option<u32>, extra: &[&str], root: &std::path::Path) -> Server {
    let bin = env!("CARGO_BIN_EXE_bitsfarm");
    let mut cmd = match nofile {
        None => Command::new(bin),
        Some(n) => {
            let mut c = Command::new("sh");
            c.args(["-c", &format!("ulimit -n {n} && exec \"$0\" \"$@\""), bin]);
            c
        }
    };
    let mut child = cmd
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--backend-listen",
            "127.0.0.1:0",
            "--upload-root",
        ])
        .arg(root)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut addr = |prefix: &str| loop {
        let line = lines.next().expect("serve prints its addresses").unwrap();
        if let Some(rest) = line.trim().strip_prefix(prefix) {
            let url = rest.split_whitespace().next().unwrap();
            let url = url.split_once("://").map_or(url, |(_, rest)| rest);
            return url.split('/').next().unwrap().to_owned();
        }
    };
    let node = addr("BITS node");
    let app = addr("application");
    // Keep reading: the server's output must not back up or break while the test runs.
    std::thread::spawn(move || for _ in lines {});
    Server { child, node, app }
}

#[test]
fn serve_and_upload_over_loopback() {
    let root = tempdir("serve");
    let srv = serve(&["--dedupe"], &root.join("uploads"));
    let file = root.join("report.bin");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&file, &data).unwrap();
    let url = format!("http://{}/upload/report.bin", srv.node);
    for _ in 0..2 {
        let o = bitsfarm(&[
            "upload",
            file.to_str().unwrap(),
            &url,
            "--fragment-size",
            "65536",
            "--transaction-id",
            "--json",
        ]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(report["state"], "acknowledged");
        assert_eq!(report["restarts"], 0);
        assert!(
            stderr(&o).contains("acknowledged"),
            "final line: {}",
            stderr(&o)
        );
    }
    // Two jobs uploading the same file draw different transaction ids: two deliveries, two
    // effects even with dedupe on. The ledger is served as JSON.
    let ledger = ledger(&srv.app);
    assert_eq!(ledger["total_deliveries"], 2);
    assert_eq!(ledger["total_effects"], 2);
    assert_ne!(
        ledger["deliveries"][0]["txid"],
        ledger["deliveries"][1]["txid"]
    );
    assert_eq!(ledger["deliveries"][0]["verification"], "verified");
    assert_eq!(
        ledger["deliveries"][0]["len"].as_u64().unwrap(),
        300_000 + ledger_header_len(&ledger)
    );
}

fn ledger_header_len(ledger: &serde_json::Value) -> u64 {
    // The envelope header: "bitsfarm-txid:1 <32 hex> 300000 <16 hex>\n".
    let txid = ledger["deliveries"][0]["txid"].as_str().unwrap();
    format!("bitsfarm-txid:1 {txid} 300000 0000000000000000\n").len() as u64
}

pub(crate) fn ledger(app: &str) -> serde_json::Value {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(app).unwrap();
    write!(
        s,
        "GET /ledger HTTP/1.1\r\nHost: {app}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let body = resp.split_once("\r\n\r\n").unwrap().1;
    serde_json::from_str(body).unwrap()
}

#[test]
fn serve_survives_its_output_being_closed() {
    let root = tempdir("closed-stdout");
    let mut child = Command::new(env!("CARGO_BIN_EXE_bitsfarm"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--backend-listen",
            "127.0.0.1:0",
            "--volatile",
        ])
        .current_dir(&root)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "serve exited when its stdout closed"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn upload_to_a_dead_server_fails_with_exit_1_when_retries_are_off() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let root = tempdir("dead");
    let file = root.join("f.bin");
    std::fs::write(&file, b"hello").unwrap();
    let o = bitsfarm(&[
        "upload",
        file.to_str().unwrap(),
        &format!("http://127.0.0.1:{port}/f.bin"),
        "--no-progress-timeout-s",
        "0",
    ]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("error"), "{}", stderr(&o));
}

/// Opens `n` TCP connections to `addr` and keeps them (those that the server accepts).
fn hold_connections(addr: &str, n: usize) -> Vec<std::net::TcpStream> {
    (0..n)
        .filter_map(|_| {
            std::net::TcpStream::connect_timeout(
                &addr.parse().unwrap(),
                std::time::Duration::from_millis(500),
            )
            .ok()
        })
        .collect()
}

fn upload_ok(node: &str, root: &std::path::Path, name: &str) {
    let file = root.join(name);
    std::fs::write(&file, b"still serving").unwrap();
    let o = bitsfarm(&[
        "upload",
        file.to_str().unwrap(),
        &format!("http://{node}/up/{name}"),
        "--retry-delay-s",
        "5",
        "--no-progress-timeout-s",
        "60",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

#[test]
fn serve_answers_503_over_its_connection_limit_and_keeps_serving() {
    // Audit D1 with the default cap: 64 open files allow 16 connections; the rest get a 503.
    let root = tempdir("fd-cap");
    let mut srv = serve_limited(Some(64), &["--volatile"], &root.join("up"));
    let held = hold_connections(&srv.node, 100);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let turned_away = held
        .iter()
        .filter(|s| {
            use std::io::Read;
            let mut s = *s;
            s.set_read_timeout(Some(std::time::Duration::from_millis(200)))
                .unwrap();
            let mut buf = [0u8; 64];
            matches!(s.read(&mut buf), Ok(n) if n > 0 && buf.starts_with(b"HTTP/1.1 503"))
        })
        .count();
    assert!(
        turned_away >= 50,
        "only {turned_away} of 100 were answered 503"
    );
    assert!(srv.child.try_wait().unwrap().is_none(), "serve died");
    drop(held);
    upload_ok(&srv.node, &root, "after-flood.bin");
}

#[test]
fn serve_survives_running_out_of_file_descriptors() {
    // Audit D1 itself: a cap above what the fd limit allows, so accept() fails with EMFILE.
    let root = tempdir("fd-exhaust");
    let mut srv = serve_limited(
        Some(64),
        &["--volatile", "--max-connections", "10000"],
        &root.join("up"),
    );
    // More than the 64 descriptors allow, fewer than those plus the listen backlog (128), so
    // every connect completes at once.
    let held = hold_connections(&srv.node, 150);
    assert!(held.len() >= 140, "{} connections", held.len());
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        srv.child.try_wait().unwrap().is_none(),
        "serve exited when it ran out of file descriptors"
    );
    drop(held);
    std::thread::sleep(std::time::Duration::from_millis(300));
    upload_ok(&srv.node, &root, "after-emfile.bin");
}

/// A raw HTTP exchange; the status and the body.
pub(crate) fn http(addr: &str, request: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp[9..12].parse().unwrap();
    (status, resp.split_once("\r\n\r\n").unwrap().1.to_owned())
}

#[test]
fn the_application_refuses_notifications_that_do_not_come_from_its_node() {
    // Audit D6: a forged notification naming /etc/shadow and a reply path outside the root.
    let root = tempdir("forged");
    let srv = serve(
        &["--notification", "by-reference", "--upload-reply"],
        &root.join("up"),
    );
    let outside = root.join("anywhere.json");
    let (status, _) = http(
        &srv.app,
        &format!(
            "POST /bits/notify HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             BITS-Original-Request-URL: http://x/forged.bin\r\n\
             BITS-Request-DataFile-Name: /etc/shadow\r\n\
             BITS-Response-DataFile-Name: {}\r\nContent-Length: 0\r\n\r\n",
            outside.display()
        ),
    );
    assert_eq!(status, 403);
    assert!(!outside.exists());
    assert_eq!(ledger(&srv.app)["total_deliveries"], 0);
    // The node's own by-reference notifications, with the token, go through.
    let file = root.join("real.bin");
    std::fs::write(&file, b"real upload").unwrap();
    let o = bitsfarm(&[
        "upload",
        file.to_str().unwrap(),
        &format!("http://{}/up/real.bin", srv.node),
        "--upload-reply",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let l = ledger(&srv.app);
    assert_eq!(l["total_deliveries"], 1);
    assert_eq!(l["deliveries"][0]["len"], 11);
}

#[test]
fn the_ledger_and_dedupe_survive_kill_9() {
    // Audit D8: a delivery recorded before a kill -9 is still in the ledger after the restart,
    // and the same transaction id delivered again has no second effect.
    let root = tempdir("kill9");
    let up = root.join("up");
    let payload = b"one order, applied once";
    let mut data = format!(
        "bitsfarm-txid:1 order-42 {} {:016x}\n",
        payload.len(),
        xxh3(payload)
    )
    .into_bytes();
    data.extend_from_slice(payload);
    let file = root.join("order.bin");
    std::fs::write(&file, &data).unwrap();
    let send = |node: &str| {
        let o = bitsfarm(&[
            "upload",
            file.to_str().unwrap(),
            &format!("http://{node}/orders/42.bin"),
        ]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
    };
    let srv = serve(&["--dedupe"], &up);
    send(&srv.node);
    assert_eq!(ledger(&srv.app)["total_effects"], 1);
    drop(srv); // SIGKILL: no chance to flush anything
    let srv = serve(&["--dedupe"], &up);
    let l = ledger(&srv.app);
    assert_eq!(l["total_deliveries"], 1, "the recorded delivery survived");
    assert_eq!(l["deliveries"][0]["txid"], "order-42");
    send(&srv.node);
    let l = ledger(&srv.app);
    assert_eq!(l["total_deliveries"], 2);
    assert_eq!(
        l["total_effects"], 1,
        "the repeated transaction id had no effect"
    );
    assert_eq!(l["deliveries"][1]["effect"], false);
}

pub(crate) fn xxh3(data: &[u8]) -> u64 {
    protocol::txid::hash(data)
}

#[test]
fn the_applications_size_limit_fails_the_upload_at_once() {
    // Audit D14: refused at the first fragment with BG_E_TOO_LARGE, not after the whole file
    // and a dozen halvings of the fragment size.
    let root = tempdir("app-limit");
    let srv = serve(&["--app-max-size", "1000"], &root.join("up"));
    let file = root.join("big.bin");
    std::fs::write(&file, vec![7u8; 8000]).unwrap();
    let o = bitsfarm(&[
        "upload",
        file.to_str().unwrap(),
        &format!("http://{}/up/big.bin", srv.node),
        "--fragment-size",
        "2000",
        "--json",
    ]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("0x80200020"), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        report["bytes_sent"], 2000,
        "one fragment, then the job stopped"
    );
    assert_eq!(ledger(&srv.app)["total_deliveries"], 0);
}

#[test]
fn a_413_shrinks_fragments_below_the_starting_size() {
    // Found by peer implementations: serve's fragment limit is a flag, and a job that starts
    // with 1,000-byte fragments halves them below that instead of failing at the first 413.
    let root = tempdir("shrink");
    let srv = serve(&["--max-fragment-size", "400"], &root.join("up"));
    let file = root.join("f.bin");
    std::fs::write(&file, vec![3u8; 3000]).unwrap();
    let o = bitsfarm(&[
        "upload",
        file.to_str().unwrap(),
        &format!("http://{}/up/f.bin", srv.node),
        "--fragment-size",
        "1000",
        "--json",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let l = ledger(&srv.app);
    assert_eq!(l["total_deliveries"], 1);
    assert_eq!(l["deliveries"][0]["len"], 3000);
}

/// What the test's application saw: each notification's path and body length.
pub(crate) type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, usize)>>>;

/// A server application of the test's own (not bitsfarm's backend): counts the notifications
/// it gets, with their path and body length, and answers each 200.
pub(crate) fn counting_app() -> (String, Seen) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { continue };
            let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(30)));
            let mut buf = Vec::new();
            let mut chunk = [0u8; 65536];
            let (head, body_start) = loop {
                let Ok(n) = s.read(&mut chunk) else {
                    break (String::new(), 0);
                };
                if n == 0 {
                    break (String::new(), 0);
                }
                buf.extend_from_slice(&chunk[..n]);
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break (String::from_utf8_lossy(&buf[..i]).into_owned(), i + 4);
                }
            };
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            while buf.len() < body_start + len {
                match s.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
            log.lock()
                .unwrap()
                .push((path, buf.len().saturating_sub(body_start)));
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (addr, seen)
}

/// `serve --app-url`: the node notifies the user's own application instead of the built-in
/// one, and keeps a ledger of its own (GET /ledger on --control): what it sent, the bytes'
/// hash, and how the application answered.
#[test]
fn serve_notifies_your_own_application_and_keeps_its_own_ledger() {
    let root = tempdir("app-url");
    let (app, seen) = counting_app();
    let bin = env!("CARGO_BIN_EXE_bitsfarm");
    let mut child = Command::new(bin)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--control",
            "127.0.0.1:0",
            "--upload-root",
        ])
        .arg(root.join("uploads"))
        .args(["--app-url", &format!("http://{app}/collect?tenant=7")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut addrs = std::collections::BTreeMap::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.starts_with("Ctrl-C") {
            break;
        }
        if let Some((k, v)) = line.trim().split_once("  ") {
            let url = v.split_whitespace().next().unwrap_or("");
            addrs.insert(
                k.trim().to_owned(),
                url.trim_start_matches("http://")
                    .split('/')
                    .next()
                    .unwrap()
                    .to_owned(),
            );
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let srv = Server {
        child,
        node: addrs["BITS node"].clone(),
        app: app.clone(),
    };
    let control = addrs["node's ledger"].clone();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 13 % 251) as u8).collect();
    let file = root.join("crash.dmp");
    std::fs::write(&file, &data).unwrap();
    let o = bitsfarm(&[
        "upload",
        file.to_str().unwrap(),
        &format!("http://{}/upload/crash.dmp", srv.node),
        "--fragment-size",
        "65536",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [("/collect?tenant=7".to_owned(), data.len())],
        "the application's own count"
    );
    let (status, body) = http(
        &control,
        &format!("GET /ledger HTTP/1.1\r\nHost: {control}\r\nConnection: close\r\n\r\n"),
    );
    assert_eq!(status, 200, "{body}");
    let ledger: serde_json::Value = serde_json::from_str(&body).unwrap();
    let entries = ledger.as_array().unwrap();
    assert_eq!(entries.len(), 1, "{body}");
    let n = &entries[0];
    assert_eq!(n["file"], "/upload/crash.dmp");
    assert_eq!(n["bytes"], data.len() as u64);
    assert_eq!(n["status"], 200);
    assert_eq!(n["hash"], format!("{:016x}", xxh3(&data)));
    // Anything else on the control address is refused with a JSON error.
    let (status, _) = http(
        &control,
        &format!(
            "POST /ledger HTTP/1.1\r\nHost: {control}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
    );
    assert_eq!(status, 405);
    drop(srv);
}

#[test]
fn app_url_is_checked() {
    let root = tempdir("app-url-bad");
    for (args, words) in [
        (vec!["--app-url", "ftp://x/y"], "--app-url"),
        (
            vec![
                "--app-url",
                "http://127.0.0.1:9/n",
                "--notification",
                "none",
            ],
            "needs --notification",
        ),
    ] {
        let mut all = vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--upload-root",
            root.to_str().unwrap(),
        ];
        all.extend(args);
        let o = bitsfarm(&all);
        assert_eq!(code(&o), 2, "{}", stderr(&o));
        assert!(stderr(&o).contains(words), "{}", stderr(&o));
    }
}
