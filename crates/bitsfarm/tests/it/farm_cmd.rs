//! `bitsfarm farm`: a scenario's farm live on loopback sockets gives the totals the simulation
//! gives for the same settings.

use crate::*;

/// crash-after-forward with timers a test can wait for: retry 5 s, fallback 20 s, restart
/// after 60 s, 3 clients of 64 KiB.
const SHORT: [&str; 14] = [
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
    let mut sim_args = vec!["scenario", "crash-after-forward", "--json", "--out"];
    let sim_dir = root.join("sim");
    sim_args.push(sim_dir.to_str().unwrap());
    sim_args.extend(SHORT);
    let sim = bitsfarm(&sim_args);
    let sim: serde_json::Value = serde_json::from_slice(&sim.stdout).unwrap();

    let live_dir = root.join("live");
    let mut live_args = vec![
        "farm",
        "crash-after-forward",
        "--clients",
        "--json",
        "--timeout-s",
        "110",
        "--out",
        live_dir.to_str().unwrap(),
    ];
    live_args.extend(SHORT);
    let started = std::time::Instant::now();
    let o = bitsfarm(&live_args);
    let took = started.elapsed();
    // The scenario's own expectations are for its two-day timers; with these they fail (exit 1).
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let live: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for name in TOTALS {
        assert_eq!(
            live[name], sim[name],
            "{name}: live {} vs simulated {}",
            live[name], sim[name]
        );
    }
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
    assert!(took < std::time::Duration::from_secs(120), "took {took:?}");
}

#[test]
fn farm_refuses_what_it_cannot_do_yet() {
    let o = bitsfarm(&["farm", "crash-after-forward"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("--clients"), "{}", stderr(&o));
    let o = bitsfarm(&["farm", "hostid-resume", "--clients"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("drop-response"), "{}", stderr(&o));
}
