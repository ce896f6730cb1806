//! HTTPS and Basic authentication end to end: `serve --tls-cert --tls-key --require-user` and
//! `upload https://...` with a certificate authority made by the test.

use std::path::{Path, PathBuf};

use crate::{
    live::{ledger, serve},
    *,
};

/// A test CA and a server certificate it signed for `localhost` only, as PEM files in `dir`:
/// (the CA's certificate, the server's certificate, the server's key).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "bitsfarm test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server_cert = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let paths = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&paths.0, ca_cert.pem()).unwrap();
    std::fs::write(&paths.1, server_cert.pem()).unwrap();
    std::fs::write(&paths.2, server_key.serialize_pem()).unwrap();
    let sha = ring::digest::digest(&ring::digest::SHA256, server_cert.der());
    let hex: Vec<String> = sha.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    std::fs::write(dir.join("cert.sha256"), hex.join(":")).unwrap();
    (paths.0, paths.1, paths.2)
}

/// `bitsfarm upload` with `args` and BITSFARM_PASSWORD set to `password`.
fn upload(args: &[&str], password: &str) -> std::process::Output {
    upload_like("upload", args, password)
}

/// `bitsfarm COMMAND` with `args` and BITSFARM_PASSWORD set to `password`.
fn upload_like(command: &str, args: &[&str], password: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_bitsfarm"))
        .arg(command)
        .args(args)
        .env("BITSFARM_PASSWORD", password)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

/// HTTPS with a CA given by --ca-cert and Basic authentication (the password from
/// BITSFARM_PASSWORD) uploads the file, which the application receives once with its bytes.
/// Each way of getting it wrong ends at once with exit 1 and says what is wrong, without a
/// retry: an unknown authority, a name the certificate does not list, a missing or wrong
/// password. --insecure uploads without checking, and warns.
#[test]
fn upload_over_https_with_basic_authentication() {
    let root = tempdir("tls");
    let (ca, cert, key) = certificates(&root);
    let srv = serve(
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--require-user",
            "alice:s3cret pass",
        ],
        &root.join("uploads"),
    );
    let port = srv.node.rsplit(':').next().unwrap().to_owned();
    let file = root.join("a.bin");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(&file, &data).unwrap();
    let f = file.to_str().unwrap();
    let url = format!("https://localhost:{port}/upload/a.bin");
    let ca = ca.to_str().unwrap();
    let quick = [
        "--retry-delay-s",
        "5",
        "--no-progress-timeout-s",
        "20",
        "--json",
    ];
    let ok = |o: &std::process::Output| {
        assert_eq!(code(o), 0, "{}", stderr(o));
    };
    // Refused without a retry: the job's report says how many transient errors it met.
    let refused = |o: &std::process::Output, says: &str| {
        assert_eq!(code(o), 1, "{}", stderr(o));
        assert!(stderr(o).contains(says), "{says:?} not in: {}", stderr(o));
        assert!(!stderr(o).contains("panicked"), "{}", stderr(o));
        let report: serde_json::Value = serde_json::from_str(&stdout(o)).unwrap();
        assert_eq!(report["transient_errors"], 0, "retried: {report}");
    };

    let mut args = vec![f, url.as_str(), "--ca-cert", ca, "--user", "alice"];
    args.extend(quick);
    ok(&upload(&args, "s3cret pass"));
    let l = ledger(&srv.app);
    assert_eq!(l["total_deliveries"], 1, "{l}");
    assert_eq!(l["deliveries"][0]["len"], data.len() as u64);

    // The system's trust store does not know the test's CA.
    let mut args = vec![f, url.as_str(), "--user", "alice"];
    args.extend(quick);
    let o = upload(&args, "s3cret pass");
    refused(
        &o,
        "TLS with localhost: its certificate is signed by an authority this machine does not trust",
    );
    // Which certificate: its SHA-256 fingerprint.
    let sha = std::fs::read_to_string(root.join("cert.sha256")).unwrap();
    assert!(
        stderr(&o).contains(&format!("[the certificate presented: SHA-256 {sha}]")),
        "{}",
        stderr(&o)
    );
    // The certificate names localhost, not 127.0.0.1.
    let by_ip = format!("https://127.0.0.1:{port}/upload/b.bin");
    let mut args = vec![f, by_ip.as_str(), "--ca-cert", ca, "--user", "alice"];
    args.extend(quick);
    refused(
        &upload(&args, "s3cret pass"),
        "its certificate is not valid for the name \"127.0.0.1\"",
    );
    // No credentials, then a wrong password: 401, with the scheme the server asks for.
    let mut args = vec![f, url.as_str(), "--ca-cert", ca];
    args.extend(quick);
    refused(
        &upload(&args, ""),
        "the server asks for authentication (Basic realm=\"bitsfarm\")",
    );
    let mut args = vec![f, url.as_str(), "--ca-cert", ca, "--user", "alice"];
    args.extend(quick);
    let o = upload(&args, "wrong");
    refused(&o, "HTTP 401");
    assert!(!stderr(&o).contains("wrong"), "the password was printed");
    // --insecure: no check, a loud warning.
    let mut args = vec![f, url.as_str(), "--insecure", "--user", "alice"];
    args.extend(quick);
    let o = upload(&args, "s3cret pass");
    ok(&o);
    assert!(stderr(&o).contains("WARNING: --insecure"), "{}", stderr(&o));
    assert_eq!(ledger(&srv.app)["total_deliveries"], 2);

    // probe over HTTPS with Basic authentication: every checkable fact holds; without the
    // credentials it says the server wants them (exit 2).
    let base = format!("https://localhost:{port}/upload/");
    let o = upload_like(
        "probe",
        &[&base, "--ca-cert", ca, "--user", "alice", "--json"],
        "s3cret pass",
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let f: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(
        f["facts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["holds"] != false),
        "{f}"
    );
    let o = upload_like("probe", &[&base, "--ca-cert", ca], "");
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("wants authentication"),
        "{}",
        stderr(&o)
    );
}

/// `farm --tls-cert --tls-key`: every node speaks HTTPS behind the L4 balancer, the scenario's
/// clients upload over TLS (to the shared address and to the Host-Id they are given), and
/// crash-after-forward gives the simulation's totals.
#[test]
fn a_live_farm_over_https_gives_the_simulations_totals() {
    let root = tempdir("tls-farm");
    let (_, cert, key) = certificates(&root);
    let (_, live) = crate::farm_cmd::sim_and_live(
        &root,
        "crash-after-forward",
        &crate::farm_cmd::SHORT,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert_eq!(live["duplicate_deliveries"], 1, "{live}");
    assert_eq!(live["acknowledged"], 3, "{live}");

    // The same farm for outside clients: HTTPS with the CA uploads, plain HTTP does not.
    let ca = root.join("ca.pem");
    let out = root.join("outside");
    let farm = crate::farm_cmd::OutsideFarm::start(&[
        "happy-path",
        "--timeout-s",
        "60",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let port = farm.shared().rsplit(':').next().unwrap().to_owned();
    let file = root.join("b.bin");
    std::fs::write(&file, vec![7u8; 50_000]).unwrap();
    let quick = ["--retry-delay-s", "5", "--no-progress-timeout-s", "6"];
    let https = format!("https://localhost:{port}/upload/b.bin");
    let mut args = vec![
        file.to_str().unwrap(),
        https.as_str(),
        "--ca-cert",
        ca.to_str().unwrap(),
    ];
    args.extend(quick);
    let o = upload(&args, "");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let http = format!("http://localhost:{port}/upload/c.bin");
    let mut args = vec![file.to_str().unwrap(), http.as_str()];
    args.extend(quick);
    let o = upload(&args, "");
    assert_eq!(code(&o), 1, "plain HTTP to a TLS node: {}", stderr(&o));
    let (status, _) = farm.stop(false);
    assert!(status.is_some());
}

/// The proxy over HTTPS both ways: it serves its addresses with a certificate and reaches a
/// TLS `serve` upstream trusting the test CA; an https:// upload through it is delivered once.
#[test]
fn the_proxy_speaks_https_both_ways() {
    use std::io::{BufRead, BufReader};
    let root = tempdir("tls-proxy");
    let (ca, cert, key) = certificates(&root);
    let (cert, key, ca) = (
        cert.to_str().unwrap(),
        key.to_str().unwrap(),
        ca.to_str().unwrap(),
    );
    let srv = serve(
        &["--tls-cert", cert, "--tls-key", key],
        &root.join("uploads"),
    );
    let port = srv.node.rsplit(':').next().unwrap().to_owned();
    let mut proxy = std::process::Command::new(env!("CARGO_BIN_EXE_bitsfarm"))
        .args([
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--control",
            "none",
            "--json",
        ])
        .args([
            "--timeout-s",
            "60",
            "--out",
            root.join("proxy").to_str().unwrap(),
        ])
        .args(["--upstream", &format!("n1=https://localhost:{port}/")])
        .args(["--ca-cert", ca, "--tls-cert", cert, "--tls-key", key])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(proxy.stdout.take().unwrap()).lines();
    let addrs: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    let proxy_port = addrs["shared"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    let file = root.join("p.bin");
    std::fs::write(&file, vec![3u8; 80_000]).unwrap();
    let url = format!("https://localhost:{proxy_port}/upload/p.bin");
    let o = upload(&[file.to_str().unwrap(), &url, "--ca-cert", ca], "");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(ledger(&srv.app)["total_deliveries"], 1);
    let killed = std::process::Command::new("kill")
        .args(["-INT", &proxy.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert_eq!(proxy.wait().unwrap().code(), Some(0));
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let summary: serde_json::Value = serde_json::from_str(&rest.join("\n")).unwrap();
    assert_eq!(summary["deliveries"], 1, "{summary}");
}
