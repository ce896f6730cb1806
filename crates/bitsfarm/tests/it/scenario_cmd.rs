//! `bitsfarm scenario` and `bitsfarm scenarios`.

use crate::*;

#[test]
fn the_main_job_passes_and_its_json_has_the_documented_keys() {
    let o = bitsfarm(&["scenario", "crash-after-forward", "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for key in [
        "scenario",
        "seed",
        "files",
        "acknowledged",
        "deliveries",
        "duplicate_deliveries",
        "files_duplicated",
        "effects",
        "lost",
        "restarts",
        "virtual_time_s",
        "wall_time_ms",
        "expectations",
        "replay",
        "event_log_hash",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    assert_eq!(v["scenario"], "crash-after-forward");
    assert!(v["duplicate_deliveries"].as_u64().unwrap() >= 1);
    for e in v["expectations"].as_array().unwrap() {
        assert!(
            e["name"].is_string() && e["held"].as_bool() == Some(true),
            "{e}"
        );
    }
    assert_eq!(
        v["replay"],
        "bitsfarm scenario crash-after-forward --seed 1"
    );
}

#[test]
fn text_output_names_the_duplicate_and_its_cause() {
    let o = bitsfarm(&["scenario", "crash-after-forward"]);
    assert_eq!(code(&o), 0);
    let out = stdout(&o);
    assert!(out.contains("files delivered more than once"), "{out}");
    assert!(out.contains("cause: fault #0"), "{out}");
    assert!(out.contains("result: PASS"), "{out}");
    assert!(
        out.contains("replay: bitsfarm scenario crash-after-forward --seed 1"),
        "{out}"
    );
}

#[test]
fn the_canary_exits_1() {
    let o = bitsfarm(&["scenario", "canary"]);
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    assert!(stdout(&o).contains("FAILED duplicate_deliveries"));
}

#[test]
fn bad_input_exits_2_with_a_located_message() {
    let dir = tempdir("bad");
    let path = dir.join("bad.toml");
    std::fs::write(&path, "[farm]\nnodes = 3\n\n[[fault]]\npoint = \"after-forward\"\naction = \"fail\"\nstatus = 42\n").unwrap();
    let o = bitsfarm(&["scenario", path.to_str().unwrap()]);
    assert_eq!(code(&o), 2);
    let err = stderr(&o);
    assert!(
        err.contains("bad.toml:7: fault[0].status: must be an HTTP status"),
        "{err}"
    );
    for args in [
        vec!["scenario", "no-such-scenario"],
        vec!["scenario", "crash-after-forward", "--runs", "0"],
        vec!["scenario", "crash-after-forward", "--seed", "minus-one"],
        vec!["scenario"],
        vec!["frobnicate"],
        vec!["upload", "/nonexistent/file", "http://127.0.0.1:1/x"],
    ] {
        let o = bitsfarm(&args);
        assert_eq!(code(&o), 2, "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{args:?}");
    }
}

#[test]
fn the_same_seed_gives_the_same_event_log_in_another_process() {
    let hash = |o: &std::process::Output| {
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["event_log_hash"].as_str().unwrap().to_owned()
    };
    for (name, seed) in [("crash-after-forward", "9"), ("happy-path", "4")] {
        let a = bitsfarm(&["scenario", name, "--seed", seed, "--json"]);
        let b = bitsfarm(&["scenario", name, "--seed", seed, "--json"]);
        assert_eq!(hash(&a), hash(&b), "{name}");
        // And the same as this (test) process computes in-process.
        let text = scenario::catalog::get(name).unwrap();
        let s = scenario::load_str(text, name, name).unwrap();
        let r = scenario::farm::run(&s, seed.parse().unwrap(), None);
        assert_eq!(hash(&a), r.event_hash, "{name}: binary vs library");
    }
}

#[test]
fn runs_aggregate_over_seeds() {
    let o = bitsfarm(&["scenario", "transaction-id-dedup", "--runs", "6", "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["runs"], 6);
    assert_eq!(v["passed"], 6);
    assert_eq!(v["files"], 60);
    assert_eq!(v["effects"], 60);
    assert!(v["duplicate_deliveries"].as_u64().unwrap() >= 6);
    let o = bitsfarm(&["scenario", "canary", "--runs", "3"]);
    assert_eq!(code(&o), 1);
    assert!(
        stdout(&o).contains("replay: bitsfarm scenario canary --seed 1"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn out_writes_the_summary_and_the_event_log() {
    let dir = tempdir("out");
    let o = bitsfarm(&["scenario", "slow-backend", "--out", dir.to_str().unwrap()]);
    assert_eq!(code(&o), 0);
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap();
    let events = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    assert_eq!(
        events.lines().count() as u64,
        summary["events"].as_u64().unwrap()
    );
    let first: serde_json::Value = serde_json::from_str(events.lines().next().unwrap()).unwrap();
    assert_eq!(
        (first["v"].as_u64(), first["seq"].as_u64()),
        (Some(1), Some(0))
    );
    assert!(events.contains("\"type\":\"delivered\""));
}

#[test]
fn scenarios_lists_every_shipped_scenario() {
    let o = bitsfarm(&["scenarios"]);
    assert_eq!(code(&o), 0);
    let out = stdout(&o);
    for (name, _) in scenario::catalog::SHIPPED {
        assert!(
            out.lines().any(|l| l.starts_with(name)),
            "{name} missing from:\n{out}"
        );
    }
}

#[test]
fn a_closed_stdout_ends_every_command_quietly() {
    // `bitsfarm scenarios | head -1`: the reader goes away after one line.
    use std::io::{BufRead, BufReader};
    for args in [
        &["scenarios"][..],
        &["scenario", "happy-path", "--out", "closed-pipe-report"],
        &["scenario", "happy-path", "--runs", "4", "--json"],
    ] {
        let cwd = tempdir("closed-pipe");
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_bitsfarm"))
            .args(args)
            .current_dir(&cwd)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(!first.is_empty(), "{args:?}");
        // The pipe is closed now; the rest of the output has nowhere to go.
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(!err.contains("Broken pipe"), "{args:?}: {err}");
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{args:?}: {:?}",
            out.status
        );
    }
}

#[test]
fn progress_in_a_log_is_one_line_per_update() {
    let cwd = tempdir("progress");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_bitsfarm"))
        .args(["scenario", "crash-after-forward", "--runs", "400", "--json"])
        .env("BITSFARM_PROGRESS", "always")
        .current_dir(&cwd)
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("runs [")).collect();
    assert!(!lines.is_empty(), "no progress lines: {err:?}");
    for l in &lines {
        assert_eq!(l.matches("runs [").count(), 1, "one update per line: {l:?}");
        assert_eq!(*l, l.trim_end(), "no terminal padding: {l:?}");
    }
    // The last update says every run is done.
    assert!(err.contains("400/400"), "{err}");
}

#[test]
fn a_workload_run_prints_its_rates_first_and_keeps_them_in_the_summary() {
    let dir = tempdir("rates");
    let out = dir.join("run");
    let o = bitsfarm(&[
        "scenario",
        "farm-week",
        "--set",
        "workload.duration_days=0.5",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = stdout(&o);
    let first_rate = text
        .find("duplicate deliveries per million uploads")
        .expect(&text);
    assert!(
        first_rate < text.find("files ").unwrap(),
        "rates first:\n{text}"
    );
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    let r = &v["rates"];
    for key in [
        "duplicate_deliveries_per_million",
        "duplicate_effects_per_million",
    ] {
        let i = &r[key];
        let (value, low, high) = (
            i["value"].as_f64().unwrap(),
            i["low"].as_f64().unwrap(),
            i["high"].as_f64().unwrap(),
        );
        assert!(low <= value && value <= high && high > 0.0, "{key}: {i}");
    }
    assert_eq!(r["uploads"], v["files"]);
    for c in r["causes"].as_array().unwrap() {
        assert!(
            c["cause"].is_string() && c["share"].is_f64() && c["per_million"]["value"].is_f64(),
            "{c}"
        );
    }
    // A week's event log is hashed, not written; the reports still are, rates first.
    assert!(!out.join("events.jsonl").exists());
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.find("## How often").unwrap() < md.find("## Totals").unwrap());
    // And `report` regenerates them from the summary alone.
    let o = bitsfarm(&["report", out.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

#[test]
fn pooled_runs_give_rates_with_intervals_over_runs() {
    let dir = tempdir("pooled");
    let o = bitsfarm(&[
        "scenario",
        "farm-week",
        "--set",
        "workload.duration_days=0.25",
        "--runs",
        "3",
        "--json",
        "--out",
        dir.join("runs").to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["rates"]["runs"], 3);
    assert_eq!(v["rates"]["uploads"], v["files"]);
    assert!(
        v["rates"]["method"]
            .as_str()
            .unwrap()
            .contains("bootstrap over the 3 runs"),
        "{}",
        v["rates"]
    );
}

#[test]
fn the_live_farm_refuses_a_workload_with_what_to_run_instead() {
    let o = bitsfarm(&["farm", "farm-week", "--control", "none"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("use `bitsfarm scenario farm-week`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_what_if_run_checks_invariants_not_the_shipped_expectations() {
    // Without BITSHostId the crash scenario has no Host-Id fallback, which it expects.
    let what_if = [
        "scenario",
        "crash-after-forward",
        "--set",
        "farm.host_id=false",
    ];
    let o = bitsfarm(&what_if);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    let text = stdout(&o);
    assert!(
        text.contains("not checked (") && text.contains("host_fallbacks >= 1"),
        "{text}"
    );
    assert!(text.contains("result: PASS"), "{text}");
    // --expect checks them: the fallback is missing.
    let mut checked = what_if.to_vec();
    checked.push("--expect");
    let o = bitsfarm(&checked);
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    assert!(
        stdout(&o).contains("FAILED host_fallbacks"),
        "{}",
        stdout(&o)
    );
    assert!(
        stdout(&o).contains("--set farm.host_id=false --expect --seed 1"),
        "{}",
        stdout(&o)
    );
    // The JSON says which were set aside; the shipped run still checks them.
    let mut json = what_if.to_vec();
    json.push("--json");
    let v: serde_json::Value = serde_json::from_slice(&bitsfarm(&json).stdout).unwrap();
    assert!(
        v["unchecked_expectations"].as_array().unwrap().len() >= 5,
        "{v}"
    );
    assert_eq!(v["expectations"].as_array().unwrap().len(), 0);
    let o = bitsfarm(&["scenario", "crash-after-forward", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v.get("unchecked_expectations").is_none());
}

/// The README's sample output is what the quick start's command prints: every line shown is
/// a line of the output (`(...)` stands for any text inside a line, `...` for lines left out),
/// in the same order.
#[test]
fn the_readme_sample_is_what_the_main_job_prints() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let start = readme
        .find("The first prints a summary like this")
        .expect("the README has its sample");
    let block = readme[start..]
        .split("```text\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .unwrap();
    let o = bitsfarm(&["scenario", "crash-after-forward"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    let mut at = 0;
    let mut shown = 0;
    for want in block.lines() {
        if want.trim() == "..." || want.trim().is_empty() {
            continue;
        }
        let parts: Vec<&str> = want.split("(...)").collect();
        let matches = |line: &str| {
            let mut rest = line;
            for (i, p) in parts.iter().enumerate() {
                let found = if i == 0 {
                    rest.starts_with(p).then_some(0)
                } else {
                    rest.find(p)
                };
                match found {
                    Some(k) => rest = &rest[k + p.len()..],
                    None => return false,
                }
            }
            parts.len() > 1 || rest.is_empty()
        };
        let k = lines[at..]
            .iter()
            .position(|l| matches(l))
            .unwrap_or_else(|| {
                panic!("README sample line not in the output (in order): {want:?}\n{out}")
            });
        at += k + 1;
        shown += 1;
    }
    assert!(shown >= 10, "the sample shows {shown} lines");
}
