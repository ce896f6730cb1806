//! `bitsfarm sweep` and `bitsfarm report`.

use std::process::Command;

use crate::*;

/// The arguments that reproduce a recorded sweep plan.
fn args_of(plan: &serde_json::Value) -> Vec<String> {
    let mut args = vec![
        "sweep".to_owned(),
        plan["scenario_arg"].as_str().unwrap().to_owned(),
    ];
    for f in plan["fixed"].as_array().unwrap() {
        args.extend(["--set".to_owned(), f.as_str().unwrap().to_owned()]);
    }
    for key in plan["varied"].as_array().unwrap() {
        let key = key.as_str().unwrap();
        let mut values: Vec<String> = Vec::new();
        for s in plan["settings"].as_array().unwrap() {
            for kv in s["values"].as_array().unwrap() {
                let (k, v) = (kv[0].as_str().unwrap(), kv[1].as_str().unwrap().to_owned());
                if k == key && !values.contains(&v) {
                    values.push(v);
                }
            }
        }
        args.extend(["--vary".to_owned(), format!("{key}={}", values.join(","))]);
    }
    args.extend([
        "--seeds".to_owned(),
        plan["seeds"].to_string(),
        "--seed".to_owned(),
        plan["first_seed"].to_string(),
    ]);
    args
}

/// Re-runs the plan of `reports/golden/NAME.sweep.json` and checks its report is still
/// `reports/golden/NAME.md`, byte for byte.
fn golden_is_true(name: &str, regenerate: &str) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../reports/golden");
    let plan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join(format!("{name}.sweep.json"))).unwrap())
            .unwrap();
    let golden = std::fs::read_to_string(root.join(format!("{name}.md"))).unwrap();
    let out = tempdir(&format!("golden-{name}"));
    let mut args = args_of(&plan);
    args.extend([
        "--out".to_owned(),
        out.to_str().unwrap().to_owned(),
        "--json".to_owned(),
    ]);
    let o = Command::new(env!("CARGO_BIN_EXE_bitsfarm"))
        .args(&args)
        .env("BITSFARM_PROGRESS", "always")
        .current_dir(&out)
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // Progress went to stderr; stdout is one JSON document.
    assert!(
        stderr(&o).contains("sweep"),
        "progress was drawn: {}",
        stderr(&o)
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&o.stdout).expect("stdout is pure JSON");
    assert_eq!(
        summary["runs"],
        plan["seeds"].as_u64().unwrap() * plan["settings"].as_array().unwrap().len() as u64
    );
    let fresh = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert_eq!(
        fresh, golden,
        "reports/golden/{name}.md is stale: regenerate it with `{regenerate}`"
    );
}

#[test]
fn the_golden_sweep_report_is_true() {
    golden_is_true("crash-settings", "just sweep");
}

#[test]
fn the_farm_week_golden_sweep_is_true() {
    // A simulated week per run, 16 runs: the longest test (a few minutes on 2 cores).
    golden_is_true("farm-week-settings", "just sweep-week");
}

#[test]
fn sharded_sweeps_merge_and_reports_regenerate() {
    let base = tempdir("shards");
    let run = |extra: &[&str]| {
        // The client must wait longer than the node, or its own 360 s timeout re-posts anyway.
        let mut args = vec![
            "sweep",
            "slow-backend",
            "--vary",
            "farm.app_deadline_s=300,600",
            "--set",
            "clients.request_timeout_s=900",
            "--seeds",
            "4",
        ];
        args.extend_from_slice(extra);
        let o = bitsfarm(&args);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        o
    };
    let whole = base.join("whole");
    run(&["--out", whole.to_str().unwrap()]);
    let mut shards = Vec::new();
    for k in 1..=2 {
        let d = base.join(format!("s{k}"));
        run(&["--shard", &format!("{k}/2"), "--out", d.to_str().unwrap()]);
        shards.push(d);
    }
    let merged = base.join("merged");
    let o = bitsfarm(&[
        "report",
        "merge",
        shards[0].to_str().unwrap(),
        shards[1].to_str().unwrap(),
        "--out",
        merged.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        std::fs::read(whole.join("report.md")).unwrap(),
        std::fs::read(merged.join("report.md")).unwrap()
    );
    // A deadline longer than the application's 400 s delay removes the duplicate.
    let md = std::fs::read_to_string(merged.join("report.md")).unwrap();
    assert!(md.contains("| 1 | farm.app_deadline_s=600 |"), "{md}");
    assert!(
        md.contains("- `farm.app_deadline_s=600` removes duplicate effects"),
        "{md}"
    );
    // Regeneration rewrites the same report from the saved lines.
    std::fs::remove_file(merged.join("report.md")).unwrap();
    assert_eq!(code(&bitsfarm(&["report", merged.to_str().unwrap()])), 0);
    assert_eq!(
        std::fs::read(whole.join("report.md")).unwrap(),
        std::fs::read(merged.join("report.md")).unwrap()
    );
}

#[test]
fn bad_sweep_input_exits_2() {
    for args in [
        vec!["sweep", "crash-after-forward"],
        vec!["sweep", "crash-after-forward", "--vary", "farm.nodes"],
        vec!["sweep", "crash-after-forward", "--vary", "farm.nodez=1,2"],
        vec!["sweep", "crash-after-forward", "--vary", "farm.nodes=3,0"],
        vec!["sweep", "crash-after-forward", "--vary", "farm.nodes=1,2"],
        vec![
            "sweep",
            "crash-after-forward",
            "--vary",
            "farm.nodes=3,4",
            "--shard",
            "3/2",
        ],
        vec!["report", "/nonexistent/dir"],
        vec!["report", "merge", "--out", "/tmp/x"],
    ] {
        let o = bitsfarm(&args);
        assert_eq!(code(&o), 2, "{args:?}: {}", stderr(&o));
    }
    let o = bitsfarm(&["sweep", "crash-after-forward", "--vary", "farm.nodes=3,0"]);
    assert!(
        stderr(&o).contains("farm.nodes=0") && stderr(&o).contains("must be 1 to 64"),
        "{}",
        stderr(&o)
    );
    let o = bitsfarm(&["sweep", "crash-after-forward", "--vary", "farm.nodes=1,2"]);
    assert!(
        stderr(&o).contains("no such node: \"node-2\""),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_panic_inside_a_run_fails_the_sweep_and_the_scenario_command() {
    // Audit D12: a run in which anything panicked counts as a failure everywhere.
    let dir = tempdir("panic-sweep");
    let file = dir.join("panicky.toml");
    std::fs::write(
        &file,
        "[clients]\nretry_delay_s = 5\n[[fault]]\npoint = \"after-forward\"\naction = \"panic\"\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let o = bitsfarm(&["scenario", path, "--out", dir.join("run").to_str().unwrap()]);
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    let text = stdout(&o);
    assert!(text.contains("FAILED no_panics"), "{text}");
    assert!(
        text.contains("fault #0 injected a panic in node-"),
        "{text}"
    );
    assert!(text.contains("replay: bitsfarm scenario"), "{text}");
    let o = bitsfarm(&[
        "sweep",
        path,
        "--seeds",
        "3",
        "--vary",
        "farm.nodes=1,2",
        "--out",
        dir.join("sweep").to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["invariants_held"], false);
}
