//! `bitsfarm serve` + `bitsfarm upload` over loopback: the two-terminal example of the README.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
};

use crate::*;

struct Server {
    child: Child,
    node: String,
    app: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(extra: &[&str], root: &std::path::Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bitsfarm"))
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
            return url
                .trim_start_matches("http://")
                .split('/')
                .next()
                .unwrap()
                .to_owned();
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

fn ledger(app: &str) -> serde_json::Value {
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
