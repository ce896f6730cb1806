//! `bitsfarm farm`: a scenario's farm live on loopback sockets gives the totals the simulation
//! gives for the same settings.

use crate::*;

/// crash-after-forward with timers a test can wait for: retry 5 s, fallback 20 s, restart
/// after 60 s, 3 clients of 64 KiB.
pub(crate) const SHORT: [&str; 14] = [
    "--set",
    "clients.retry_delay_s=5",
    "--set",
    "farm.fallback_timeout_s=20",
    "--set",
    "fault[0].restart_after_s=60",
    "--set",
    "clients.count=3",
    "--set",
    "clients.start_spread_s=0",
    "--set",
    "clients.file_size=65536",
    "--set",
    "deadline_days=0.01",
];

const TOTALS: [&str; 9] = [
    "files",
    "acknowledged",
    "failed",
    "deliveries",
    "duplicate_deliveries",
    "files_duplicated",
    "lost",
    "restarts",
    "host_fallbacks",
];

#[test]
fn crash_after_forward_live_gives_the_simulations_totals() {
    let root = tempdir("farm");
    // --timeout-s 110 bounds it: a run cut short fails `completed`.
    let (_, live) = sim_and_live(&root, "crash-after-forward", &SHORT, &[]);
    // The scenario's own expectations are for its two-day timers: with these short ones the
    // run is a what-if, they are set aside unchecked, and the invariants decide.
    assert_eq!(live["ok"], true, "{live}");
    assert!(
        live["unchecked_expectations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "virtual_time_s >= 86400"),
        "{live}"
    );
    let live_dir = root.join("live");
    assert_eq!(live["duplicate_deliveries"], 1);
    for inv in live["invariants"].as_array().unwrap() {
        assert_eq!(inv["held"], true, "{inv}");
    }
    let chain = &live["duplicates"][0]["chains"][0];
    assert_eq!(
        chain["rule"], 0,
        "the duplicate is explained by the crash: {chain}"
    );
    let nodes = live["duplicates"][0]["nodes"].as_array().unwrap();
    assert_ne!(
        nodes[0], nodes[1],
        "another node delivered it again after the fallback"
    );
    // The same report set as a simulated run.
    for f in ["events.jsonl", "summary.json", "report.md", "report.html"] {
        assert!(live_dir.join(f).is_file(), "{f}");
    }
}

/// --upload-root: the nodes keep their sessions on disk. crash-after-forward with node-2 back
/// after 3 s: it reopens its directory and finds the session (node_started with 1 session),
/// the retried final fragment is forwarded again, and the built-in application reads both
/// deliveries by reference from the disk, with the client's bytes (integrity holds). Totals
/// as simulated. A directory that is not empty is refused.
#[test]
fn a_live_farm_keeps_sessions_on_disk_and_recovers_them() {
    let root = tempdir("farm-disk");
    let uploads = root.join("uploads");
    let mut sets = SHORT.to_vec();
    sets[5] = "fault[0].restart_after_s=3";
    let (_, live) = sim_and_live(
        &root,
        "crash-after-forward",
        &sets,
        &["--upload-root", uploads.to_str().unwrap()],
    );
    assert_eq!(live["duplicate_deliveries"], 1, "{live}");
    for inv in live["invariants"].as_array().unwrap() {
        assert_eq!(inv["held"], true, "{inv}");
    }
    let events = std::fs::read_to_string(root.join("live/events.jsonl")).unwrap();
    assert!(
        events.contains(r#""type":"node_started","node":"node-2","sessions":1"#),
        "node-2 did not recover its session from the disk: {events}"
    );
    assert!(uploads.join("node-2/BITS-Sessions").is_dir());
    // The same directory again: not empty, refused.
    let o = bitsfarm(&[
        "farm",
        "happy-path",
        "--control",
        "none",
        "--listen",
        "127.0.0.1:0",
        "--upload-root",
        uploads.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("is not empty"), "{}", stderr(&o));
}

/// Node i listens on the port i above --listen: when that port is taken, the farm says which
/// and for whom, and exits 2 (no panic, nothing half started).
#[test]
fn a_taken_node_port_is_a_clear_error() {
    // Two free consecutive ports: the shared address's, and node-1's (held here).
    let (shared, _held) = (0..50)
        .find_map(|_| {
            let a = std::net::TcpListener::bind("127.0.0.1:0").ok()?;
            let port = a.local_addr().ok()?.port();
            let b = std::net::TcpListener::bind(("127.0.0.1", port.checked_add(1)?)).ok()?;
            drop(a);
            Some((port, b))
        })
        .expect("two consecutive free ports");
    let listen = format!("127.0.0.1:{shared}");
    let o = bitsfarm(&[
        "farm",
        "happy-path",
        "--listen",
        &listen,
        "--control",
        "none",
    ]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    let want = format!("cannot listen on 127.0.0.1:{} for node-1", shared + 1);
    assert!(stderr(&o).contains(&want), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
}

#[test]
fn farm_refuses_what_it_cannot_do_yet() {
    let root = tempdir("farm-refuses");
    let sc = root.join("client-partition.toml");
    std::fs::write(
        &sc,
        "[[fault]]\nat_s = 1\nnode = \"node-1\"\naction = \"partition\"\npeer = \"c00\"\nduration_s = 5\n",
    )
    .unwrap();
    let o = bitsfarm(&["farm", sc.to_str().unwrap(), "--clients"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("fault #0: a partition with client c00"),
        "{}",
        stderr(&o)
    );
}

/// Runs `scenario` simulated and live (`--clients`, and `live_args`) with the same `--set`s,
/// the reports in `root/sim` and `root/live`; both summaries.
pub(crate) fn sim_and_live(
    root: &std::path::Path,
    scenario: &str,
    sets: &[&str],
    live_args: &[&str],
) -> (serde_json::Value, serde_json::Value) {
    let (sim_dir, live_dir) = (root.join("sim"), root.join("live"));
    let mut sim_args = vec![
        "scenario",
        scenario,
        "--json",
        "--out",
        sim_dir.to_str().unwrap(),
    ];
    sim_args.extend(sets);
    let sim = bitsfarm(&sim_args);
    let sim: serde_json::Value = serde_json::from_slice(&sim.stdout).unwrap();
    let mut args = vec!["farm", scenario, "--clients", "--listen", "127.0.0.1:0"];
    args.extend(["--control", "none", "--json", "--timeout-s", "110"]);
    args.extend(["--out", live_dir.to_str().unwrap()]);
    args.extend(sets);
    args.extend(live_args);
    let o = bitsfarm(&args);
    let out = stdout(&o);
    let (_, rest) = out
        .split_once('\n')
        .unwrap_or_else(|| panic!("{}", stderr(&o)));
    let live: serde_json::Value = serde_json::from_str(rest).unwrap();
    for name in TOTALS.iter().chain(&["bytes_resent"]) {
        assert_eq!(
            live[name], sim[name],
            "{scenario} {name}: live {} vs simulated {}",
            live[name], sim[name]
        );
    }
    assert_eq!(live["ok"], sim["ok"], "{live}");
    (sim, live)
}

/// drop-response on real sockets: the node's side of the connection is cut after the 3rd
/// fragment is stored. Without BITSHostId the retry lands on another node and restarts from
/// byte 0; with it, the client goes back and resumes. Live and simulated totals agree, and
/// each scenario's own expectations hold.
#[test]
fn drop_response_is_carried_out_live() {
    let short = [
        "--set",
        "clients.retry_delay_s=2",
        "--set",
        "deadline_days=0.01",
    ];
    let (_, live) = sim_and_live(&tempdir("farm-drop-1"), "no-hostid-reconnect", &short, &[]);
    assert_eq!(
        (live["ok"].as_bool(), live["restarts"].as_u64()),
        (Some(true), Some(1)),
        "{live}"
    );
    let (_, live) = sim_and_live(&tempdir("farm-drop-2"), "hostid-resume", &short, &[]);
    assert_eq!(
        (live["ok"].as_bool(), live["restarts"].as_u64()),
        (Some(true), Some(0)),
        "{live}"
    );
}

/// delay on real sockets: the application sleeps 4 s after recording its effect, past the
/// node's 2 s deadline; the node fails the final fragment, the client retries and the file is
/// delivered again, as simulated, and slow-backend's expectations hold.
#[test]
fn a_delay_past_the_application_deadline_is_carried_out_live() {
    let sets = [
        "--set",
        "farm.app_deadline_s=2",
        "--set",
        "fault[0].duration_s=4",
        "--set",
        "clients.retry_delay_s=5",
        "--set",
        "deadline_days=0.01",
    ];
    let (_, live) = sim_and_live(&tempdir("farm-delay"), "slow-backend", &sets, &[]);
    assert_eq!(live["ok"], true, "{live}");
    assert_eq!(live["duplicate_deliveries"], 1, "{live}");
}

/// A partition between the node and the application on real sockets: the notification's
/// connect goes unanswered past the application deadline, the client retries, and after the
/// heal the file is delivered once, as in the simulation.
#[test]
fn a_partition_from_the_application_is_carried_out_live() {
    let root = tempdir("farm-partition");
    let sc = root.join("partition.toml");
    std::fs::write(
        &sc,
        "deadline_days = 0.01\n[farm]\nnodes = 1\nnotification = \"by-value\"\napp_deadline_s = 3\n\
         [clients]\nfile_size = 65536\nretry_delay_s = 5\n\
         [[fault]]\npoint = \"before-forward\"\naction = \"partition\"\npeer = \"backend\"\nduration_s = 8\n\
         [expect]\ndeliveries = 1\nbytes_resent = 65536\n",
    )
    .unwrap();
    let (_, live) = sim_and_live(&root, sc.to_str().unwrap(), &[], &[]);
    assert_eq!(live["ok"], true, "{live}");
    let events = std::fs::read_to_string(root.join("live/events.jsonl")).unwrap();
    for kind in ["\"partitioned\"", "\"healed\""] {
        assert!(events.contains(kind), "{kind} missing: {events}");
    }
}

/// A `bitsfarm farm` serving outside clients (`--listen 127.0.0.1:0 --control 127.0.0.1:0
/// --json` and `args`), its addresses read from its first line. Dropping it kills it.
pub(crate) struct OutsideFarm {
    child: std::process::Child,
    lines: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
    /// `{"shared", "nodes", "app", "control"}`.
    pub(crate) addrs: serde_json::Value,
}

impl OutsideFarm {
    pub(crate) fn start(args: &[&str]) -> OutsideFarm {
        use std::io::BufRead as _;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_bitsfarm"))
            .arg("farm")
            .args(args)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--control",
                "127.0.0.1:0",
                "--json",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines
            .next()
            .expect("the farm prints its addresses")
            .unwrap();
        let addrs = serde_json::from_str(&first).unwrap();
        OutsideFarm {
            child,
            lines,
            addrs,
        }
    }

    pub(crate) fn shared(&self) -> String {
        self.addrs["shared"].as_str().unwrap().to_owned()
    }

    pub(crate) fn control(&self) -> String {
        self.addrs["control"].as_str().unwrap().to_owned()
    }

    /// Stops it (`POST /stop`, or Ctrl-C) and waits: its exit code and the summary it printed.
    pub(crate) fn stop(mut self, ctrl_c: bool) -> (Option<i32>, serde_json::Value) {
        if ctrl_c {
            let killed = std::process::Command::new("kill")
                .args(["-INT", &self.child.id().to_string()])
                .status()
                .unwrap();
            assert!(killed.success());
        } else {
            let (status, r) = control(&self.control(), "POST", "/stop", "");
            assert_eq!(status, 202, "{r}");
        }
        let status = self.child.wait().unwrap();
        let rest: Vec<String> = self.lines.by_ref().map_while(Result::ok).collect();
        let summary = serde_json::from_str(&rest.join("\n")).unwrap_or(serde_json::Value::Null);
        (status.code(), summary)
    }
}

impl Drop for OutsideFarm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Uploads 100,000 bytes to `/upload/report.bin` through `shared` with `bitsfarm upload`
/// (retry delay `retry_s`); the bytes.
fn upload_report(root: &std::path::Path, shared: &str, retry_s: &str) -> Vec<u8> {
    let file = root.join("report.bin");
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 249) as u8).collect();
    std::fs::write(&file, &data).unwrap();
    let o = bitsfarm(&[
        "upload",
        file.to_str().unwrap(),
        &format!("http://{shared}/upload/report.bin"),
        "--retry-delay-s",
        retry_s,
        "--no-progress-timeout-s",
        "60",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    data
}

/// A farm serving an outside client: `bitsfarm upload` through the shared address, a crash of
/// the node after the application processed the file, the node back 3 s later with its
/// sessions: the retried final fragment delivers the file again. Ctrl-C ends the farm, which
/// writes the reports: the file it never ran a job for is followed, its duplicate explained.
#[test]
fn a_farm_serves_outside_clients_until_ctrl_c() {
    let root = tempdir("farm-outside");
    let sc = root.join("outside.toml");
    std::fs::write(
        &sc,
        "[farm]\nnodes = 1\nhost_id = true\nnotification = \"by-value\"\nsession_state = \"durable\"\n\
         [[fault]]\npoint = \"after-forward\"\nnode = \"node-1\"\naction = \"crash\"\nrestart_after_s = 3\n",
    )
    .unwrap();
    let out = root.join("reports");
    let farm = OutsideFarm::start(&[
        sc.to_str().unwrap(),
        "--advertise",
        "localhost",
        "--timeout-s",
        "90",
        "--out",
        out.to_str().unwrap(),
    ]);
    // The node's BITS-Host-Id, which the client follows after the crash, is the name given.
    let node = farm.addrs["nodes"]["node-1"].clone();
    assert!(
        node.as_str().is_some_and(|a| a.starts_with("localhost:")),
        "{node}"
    );
    upload_report(&root, &farm.shared(), "5");
    // Ctrl-C: the farm stops and writes its reports.
    let (status, summary) = farm.stop(true);
    assert_eq!(status, Some(0), "{summary}");
    assert_eq!(summary["files"], 1);
    assert_eq!(summary["duplicate_deliveries"], 1, "{summary}");
    assert_eq!(summary["duplicates"][0]["file"], "/upload/report.bin");
    assert_eq!(summary["duplicates"][0]["chains"][0]["rule"], 0);
    for inv in summary["invariants"].as_array().unwrap() {
        assert_eq!(inv["held"], true, "{inv}");
    }
    assert!(out.join("report.html").is_file());
}

/// `farm --app-url`: the nodes notify an application written in the test (it counts what it
/// gets); the crash after it processed a file makes it receive that file twice, and the farm's
/// report, which counts the application's 2xx answers from the nodes' side, says so.
#[test]
fn a_live_farm_puts_your_own_application_under_the_faults() {
    let root = tempdir("farm-app");
    let (app, seen) = crate::live::counting_app();
    let dir = root.join("live");
    let url = format!("http://{app}/notify");
    let mut args = vec![
        "farm",
        "crash-after-forward",
        "--clients",
        "--listen",
        "127.0.0.1:0",
        "--control",
        "none",
        "--app-url",
        &url,
        "--json",
        "--timeout-s",
        "110",
        "--out",
        dir.to_str().unwrap(),
    ];
    args.extend(SHORT);
    // The scenario says by reference: the application would get paths of files in memory.
    let o = bitsfarm(&args);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("add --upload-root"), "{}", stderr(&o));
    assert!(seen.lock().unwrap().is_empty());
    args.extend(["--set", "farm.notification=by-value"]);
    let o = bitsfarm(&args);
    // A what-if run (--set): the invariants decide, and they hold.
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let summary: serde_json::Value = serde_json::from_str(out.split_once('\n').unwrap().1).unwrap();
    let seen = seen.lock().unwrap().clone();
    // 3 files, one of them twice: the application's own count.
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert!(
        seen.iter()
            .all(|(path, len)| path == "/notify" && *len == 65536),
        "{seen:?}"
    );
    assert_eq!(summary["deliveries"], 4, "{summary}");
    assert_eq!(summary["duplicate_deliveries"], 1);
    assert_eq!(summary["duplicates"][0]["chains"][0]["rule"], 0);
    for inv in summary["invariants"].as_array().unwrap() {
        assert_eq!(inv["held"], true, "{inv}");
    }
}

/// One request to the control API: its status and its JSON answer.
pub(crate) fn control(
    addr: &str,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    let (status, text) = crate::live::http(
        addr,
        &format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"));
    (status, value)
}

/// The control API steering a live farm in front of the user's own application: a crash rule
/// added with POST /faults makes an outside `bitsfarm upload` deliver its file twice; the
/// application counted 2, the nodes' ledger says 2, and the report explains the duplicate by
/// that rule. Bad requests get 400/404 with a JSON error that names the problem; a node crashed
/// and restarted through the API goes down and comes back; POST /stop writes the reports.
#[test]
fn the_control_api_puts_a_fault_on_your_application_while_the_farm_runs() {
    let root = tempdir("farm-control");
    let sc = root.join("two.toml");
    std::fs::write(&sc, "[farm]\nnodes = 2\nnotification = \"by-value\"\n").unwrap();
    let (app, seen) = crate::live::counting_app();
    let out = root.join("reports");
    let app_url = format!("http://{app}/notify");
    let farm = OutsideFarm::start(&[
        sc.to_str().unwrap(),
        "--timeout-s",
        "90",
        "--app-url",
        &app_url,
        "--out",
        out.to_str().unwrap(),
    ]);
    let (addrs, shared, ctl) = (farm.addrs.clone(), farm.shared(), farm.control());

    let (status, hosts) = control(&ctl, "GET", "/nodes", "");
    assert_eq!(status, 200, "{hosts}");
    let hosts = hosts.as_array().unwrap().clone();
    assert_eq!(
        hosts.len(),
        2,
        "two nodes, no built-in application: {hosts:?}"
    );
    assert!(
        hosts.iter().all(|h| h["up"] == true && h["sessions"] == 0),
        "{hosts:?}"
    );
    assert_eq!(hosts[0]["address"], addrs["nodes"]["node-1"]);

    // Bad rules are refused with what is wrong, and change nothing.
    let (status, e) = control(&ctl, "POST", "/faults", r#"{"pont": "after-forward"}"#);
    assert_eq!(status, 400, "{e}");
    assert!(e["error"].as_str().unwrap().contains("pont"), "{e}");
    let (status, e) = control(
        &ctl,
        "POST",
        "/faults",
        r#"{"point": "after-forward", "action": "crash", "node": "node-9"}"#,
    );
    assert_eq!(status, 400, "{e}");
    assert!(
        e["error"].as_str().unwrap().contains("node: no such node"),
        "{e}"
    );
    let (status, e) = control(&ctl, "POST", "/faults", "{not json");
    assert_eq!(status, 400, "{e}");
    let (status, e) = control(&ctl, "POST", "/nodes/node-7/crash", "");
    assert_eq!(status, 404, "{e}");
    let (status, e) = control(&ctl, "DELETE", "/faults/0", "");
    assert_eq!(status, 404, "no rule yet: {e}");

    let (status, added) = control(
        &ctl,
        "POST",
        "/faults",
        r#"{"point": "after-forward", "action": "crash", "restart_after_s": 3}"#,
    );
    assert_eq!(status, 201, "{added}");
    assert_eq!(added["id"], 0);

    let data = upload_report(&root, &shared, "3");

    // The application's own count, and the nodes' ledger.
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            ("/notify".to_owned(), data.len()),
            ("/notify".to_owned(), data.len())
        ],
        "the application received the file twice"
    );
    let (status, ledger) = control(&ctl, "GET", "/ledger", "");
    assert_eq!(status, 200, "{ledger}");
    let ledger = ledger.as_array().unwrap().clone();
    assert_eq!(ledger.len(), 2, "{ledger:?}");
    let hash = format!("{:016x}", crate::live::xxh3(&data));
    for n in &ledger {
        assert_eq!(n["file"], "/upload/report.bin", "{n}");
        assert_eq!(n["bytes"], data.len() as u64, "{n}");
        assert_eq!(n["hash"], hash.as_str(), "{n}");
        assert_eq!(n["status"], 200, "{n}");
    }
    assert_ne!(ledger[0]["session"], ledger[1]["session"], "{ledger:?}");
    let (_, faults) = control(&ctl, "GET", "/faults", "");
    assert_eq!(faults[0]["fired"], 1, "{faults}");
    assert_eq!(faults[0]["rule"]["action"], "crash", "{faults}");

    // A node crashed through the API is down until restarted through it.
    let (status, r) = control(&ctl, "POST", "/nodes/node-2/power-cut", "");
    assert_eq!(status, 200, "{r}");
    let node2_up = || {
        let (_, hosts) = control(&ctl, "GET", "/nodes", "");
        hosts[1]["up"] == true
    };
    assert!(!node2_up());
    let (status, r) = control(&ctl, "POST", "/nodes/node-2/restart", "");
    assert_eq!(status, 200, "{r}");
    let back = std::time::Instant::now();
    while !node2_up() {
        assert!(
            back.elapsed() < std::time::Duration::from_secs(10),
            "node-2 never came back"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // A rule removed before it fires is not held against the run.
    let (status, r) = control(
        &ctl,
        "POST",
        "/faults",
        r#"{"point": "request", "action": "delay", "duration_s": 1}"#,
    );
    assert_eq!((status, r["id"].as_u64()), (201, Some(3)), "{r}");
    let (status, r) = control(&ctl, "DELETE", "/faults/3", "");
    assert_eq!(status, 200, "{r}");

    let (status, events) = {
        let (status, text) = crate::live::http(
            &ctl,
            &format!("GET /events HTTP/1.1\r\nHost: {ctl}\r\nConnection: close\r\n\r\n"),
        );
        (status, text)
    };
    assert_eq!(status, 200);
    let fired = events
        .lines()
        .filter(|l| l.contains("\"fault_fired\""))
        .count();
    assert_eq!(
        fired, 3,
        "the crash, the power cut and the restart: {events}"
    );

    let (status, summary) = farm.stop(false);
    assert_eq!(status, Some(0), "{summary}");
    assert_eq!(summary["deliveries"], 2, "{summary}");
    assert_eq!(summary["duplicate_deliveries"], 1, "{summary}");
    assert_eq!(summary["duplicates"][0]["file"], "/upload/report.bin");
    assert_eq!(summary["duplicates"][0]["chains"][0]["rule"], 0);
    for inv in summary["invariants"].as_array().unwrap() {
        assert_eq!(inv["held"], true, "{inv}");
    }
    // Its client is outside: the report does not pretend to know its acknowledgment.
    assert_eq!(summary["outside_files"], 1, "{summary}");
    assert_eq!(summary["acknowledged"], 0, "{summary}");
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("removed while the farm ran"), "{report}");
    assert!(
        report.contains("1 file(s) came from outside clients"),
        "{report}"
    );
}
