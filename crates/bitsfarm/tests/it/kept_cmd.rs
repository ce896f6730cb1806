//! Kept runs: every run its own directory, an index that links them all, `bitsfarm runs`, and
//! `bitsfarm report --serve` for a browser.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    path::Path,
    process::{Command, Output, Stdio},
};

use super::{bitsfarm_in, code, stderr, stdout, tempdir};

/// The run directory a run's `report:` line names.
fn report_dir(o: &Output) -> String {
    let out = stdout(o);
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("report: "))
        .unwrap_or_else(|| panic!("no report line in:\n{out}"));
    Path::new(line)
        .parent()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned()
}

#[test]
fn two_runs_and_a_what_if_keep_three_directories_and_an_index_that_links_them() {
    let cwd = tempdir("kept");
    let a = bitsfarm_in(&cwd, &["scenario", "crash-after-forward"]);
    let b = bitsfarm_in(&cwd, &["scenario", "crash-after-forward"]);
    // A what-if run: its expectations are not checked, the invariants hold: exit 0.
    let c = bitsfarm_in(
        &cwd,
        &[
            "scenario",
            "crash-after-forward",
            "--set",
            "farm.host_id=false",
        ],
    );
    for o in [&a, &b, &c] {
        assert_eq!(code(o), 0, "{}{}", stdout(o), stderr(o));
    }
    let dirs = [report_dir(&a), report_dir(&b), report_dir(&c)];
    assert_ne!(dirs[0], dirs[1], "a rerun keeps the first run");
    assert_ne!(dirs[0], dirs[2]);
    for d in &dirs {
        assert!(d.starts_with("reports/crash-after-forward/"), "{d}");
        assert!(cwd.join(d).join("summary.json").is_file(), "{d}");
    }
    // The what-if's directory carries the hash of its settings, the baseline's does not.
    assert!(dirs[0].ends_with("-s1"), "{}", dirs[0]);
    let hash = dirs[2].rsplit("-s1-").next().unwrap();
    assert!(
        hash.len() == 6 && hash.chars().all(|c| c.is_ascii_hexdigit()),
        "{}",
        dirs[2]
    );
    let index = std::fs::read_to_string(cwd.join("reports/index.html")).unwrap();
    for d in &dirs {
        let rel = d.strip_prefix("reports/").unwrap();
        assert!(
            index.contains(&format!("href=\"{rel}/report.html\"")),
            "index lacks {rel}:\n{index}"
        );
    }
    assert!(index.contains("farm.host_id=false"), "{index}");
    // `latest` is the newest run.
    let latest = std::fs::read_link(cwd.join("reports/latest")).unwrap();
    assert_eq!(Path::new("reports").join(latest).to_str().unwrap(), dirs[2]);
    // `bitsfarm runs`: newest first, every one.
    let o = bitsfarm_in(&cwd, &["runs"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let listed = stdout(&o);
    let rows: Vec<&str> = listed.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "{listed}");
    assert!(rows[0].contains("farm.host_id=false"), "{listed}");
    let o = bitsfarm_in(&cwd, &["runs", "--json", "-n", "2"]);
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let runs = json.as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["dir"], dirs[2].strip_prefix("reports/").unwrap());
    assert_eq!(runs[0]["duplicate_deliveries"], 1);
    assert_eq!(runs[0]["ok"], true);
    // A deleted run leaves the list.
    std::fs::remove_dir_all(cwd.join(&dirs[0])).unwrap();
    let o = bitsfarm_in(&cwd, &["runs", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);
}

#[test]
fn runs_given_a_directory_outside_reports_are_not_indexed() {
    let cwd = tempdir("kept-out");
    let o = bitsfarm_in(&cwd, &["scenario", "happy-path", "-o", "elsewhere"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(cwd.join("elsewhere/summary.json").is_file());
    assert!(!cwd.join("reports").exists());
    let o = bitsfarm_in(&cwd, &["runs"]);
    assert_eq!(code(&o), 0);
    assert!(stdout(&o).contains("no runs kept"), "{}", stdout(&o));
}

/// One raw HTTP/1.1 request; the status code and the body.
fn get(addr: &str, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let status = raw[9..12].parse().unwrap();
    let body = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    (status, body)
}

/// Kills the server when the test ends, however it ends.
struct Kill(std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn report_serve_gives_a_browser_the_index_and_nothing_outside_it() {
    let cwd = tempdir("kept-serve");
    let o = bitsfarm_in(&cwd, &["scenario", "crash-after-forward"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    std::fs::write(cwd.join("secret.txt"), "not a report").unwrap();
    let mut child = Kill(
        Command::new(env!("CARGO_BIN_EXE_bitsfarm"))
            .args(["report", "--serve", "127.0.0.1:0"])
            .current_dir(&cwd)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut first = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr = first
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_owned();
    let (status, index) = get(&addr, "/");
    assert_eq!(status, 200);
    let rel = report_dir(&o);
    let rel = rel.strip_prefix("reports/").unwrap();
    assert!(
        index.contains(&format!("href=\"{rel}/report.html\"")),
        "{index}"
    );
    let (status, page) = get(&addr, &format!("/{rel}/report.html"));
    assert_eq!(status, 200);
    assert!(page.contains("crash-after-forward"), "{}", &page[..200]);
    let (status, _) = get(&addr, "/latest/summary.json");
    assert_eq!(status, 200);
    for outside in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/latest/../../secret.txt",
    ] {
        let (status, body) = get(&addr, outside);
        assert_eq!(status, 404, "{outside}: {body}");
    }
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        s,
        "DELETE /index.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    assert!(raw.starts_with("HTTP/1.1 405"), "{raw}");
    assert!(cwd.join("reports/index.html").is_file());
}
