//! The cluster recipe and the CI outputs: the exact commands of `deploy/k8s/sweep-job.yaml`
//! run as its M shards in local processes, merged, give the unsharded sweep's report; `--junit`
//! writes JUnit XML that says what failed.

use std::{path::Path, process::Command};

use super::{bitsfarm, code, stderr, tempdir};

fn repo_file(rel: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(rel),
    )
    .unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The one-line shell command of the manifest's container whose `args` line contains `needle`.
fn command_with(manifest: &str, needle: &str) -> String {
    manifest
        .lines()
        .find(|l| !l.trim_start().starts_with('#') && l.contains(needle))
        .unwrap_or_else(|| panic!("no args line with {needle:?}"))
        .trim()
        .strip_prefix("- ")
        .expect("an args list item")
        .to_owned()
}

/// `key: value` of the first line that sets `key`.
fn value_of(manifest: &str, key: &str) -> String {
    manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{key}: ")))
        .unwrap_or_else(|| panic!("no {key}"))
        .trim_matches('"')
        .to_owned()
}

/// `sh -c command` in `dir`, with `bitsfarm` on PATH and `env` set.
fn shell(command: &str, dir: &Path, env: &[(&str, String)]) -> Command {
    let bin = Path::new(env!("CARGO_BIN_EXE_bitsfarm")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut c = Command::new("sh");
    c.arg("-c").arg(command).current_dir(dir).env("PATH", path);
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

#[test]
fn the_kubernetes_indexed_job_commands_merge_into_the_unsharded_report() {
    let manifest = repo_file("deploy/k8s/sweep-job.yaml");
    let shards: u64 = value_of(&manifest, "completions").parse().unwrap();
    assert_eq!(value_of(&manifest, "completionMode"), "Indexed");
    // SHARDS must equal completions: the manifest sets it beside them.
    let shards_env = manifest
        .split("name: SHARDS")
        .nth(1)
        .and_then(|r| r.lines().nth(1))
        .and_then(|l| l.trim().strip_prefix("value: "))
        .map(|v| v.trim_matches('"').to_owned())
        .expect("SHARDS is set");
    assert_eq!(shards_env, shards.to_string());
    let sweep = command_with(&manifest, "bitsfarm sweep");
    let merge = command_with(&manifest, "bitsfarm report merge");
    let dir = tempdir("k8s");
    let results = dir.join("results");
    std::fs::create_dir_all(&results).unwrap();
    let env = |k: u64| {
        vec![
            ("JOB_COMPLETION_INDEX", k.to_string()),
            ("SHARDS", shards.to_string()),
            ("RESULTS", results.display().to_string()),
        ]
    };
    // The M pods, as M processes at once.
    let children: Vec<_> = (0..shards)
        .map(|k| {
            shell(&sweep, &dir, &env(k))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (k, child) in children.into_iter().enumerate() {
        let o = child.wait_with_output().unwrap();
        assert!(
            o.status.success(),
            "shard {k}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let o = shell(&merge, &dir, &env(0)).output().unwrap();
    assert!(
        o.status.success(),
        "merge: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    // The same sweep unsharded: the command without its --shard and -o flags (each runs to
    // the next flag or the end; the shard's value has spaces in its shell arithmetic).
    let without = |cmd: &str, flag: &str| -> String {
        let at = cmd
            .find(&format!(" {flag} "))
            .unwrap_or_else(|| panic!("{flag} in {cmd}"));
        let rest = &cmd[at + flag.len() + 2..];
        let end = rest
            .find(" -")
            .map_or(cmd.len(), |e| at + flag.len() + 2 + e);
        format!("{}{}", &cmd[..at], &cmd[end..])
    };
    let whole = without(&without(&sweep, "--shard"), "-o");
    assert!(
        whole.starts_with("bitsfarm sweep ") && !whole.contains("$"),
        "{whole}"
    );
    let whole_dir = dir.join("whole");
    let o = shell(
        &format!("{whole} -o {}", whole_dir.display()),
        &dir,
        &env(0),
    )
    .output()
    .unwrap();
    assert!(
        o.status.success(),
        "unsharded: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let merged = std::fs::read_to_string(results.join("merged/report.md")).unwrap();
    let unsharded = std::fs::read_to_string(whole_dir.join("report.md")).unwrap();
    assert!(merged.contains("## What to change"), "{merged}");
    assert_eq!(
        merged, unsharded,
        "the merged report differs from the unsharded one"
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(results.join("merged/summary.json")).unwrap())
            .unwrap();
    assert_eq!(
        summary["runs"],
        summary["plan"]["seeds"].as_u64().unwrap() * 8
    );
}

#[test]
fn the_ci_matrix_example_runs_the_same_kind_of_sweep_and_merge() {
    let workflow = repo_file("deploy/ci/github-sweep.yml");
    assert!(
        workflow.contains("--shard ${{ matrix.shard }}/4"),
        "{workflow}"
    );
    assert!(
        workflow.contains("bitsfarm report merge shard-* -o merged"),
        "{workflow}"
    );
    let containerfile = repo_file("Containerfile");
    assert!(containerfile.contains("cargo build --release --locked -p bitsfarm"));
    assert!(containerfile.contains("ENTRYPOINT [\"bitsfarm\"]"));
}

fn junit(args: &[&str], tag: &str) -> (i32, String) {
    let dir = tempdir(tag);
    let file = dir.join("junit.xml");
    let mut all = args.to_vec();
    all.extend(["--junit", file.to_str().unwrap(), "-q"]);
    let o = bitsfarm(&all);
    let xml = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}: {}", stderr(&o)));
    (code(&o), xml)
}

#[test]
fn junit_says_which_expectation_failed_and_which_were_set_aside() {
    let (c, xml) = junit(&["scenario", "canary"], "junit-canary");
    assert_eq!(c, 1);
    assert!(xml.starts_with("<?xml"), "{xml}");
    assert!(xml.contains(r#"failures="1""#), "{xml}");
    assert!(
        xml.contains(r#"name="expectation duplicate_deliveries == 0" time="0">"#)
            && xml.contains("<failure message=\"actual 1\">"),
        "{xml}"
    );
    assert!(
        xml.contains("replay: bitsfarm scenario canary --seed 1"),
        "{xml}"
    );
    let (c, xml) = junit(
        &[
            "scenario",
            "crash-after-forward",
            "--set",
            "farm.host_id=false",
        ],
        "junit-whatif",
    );
    assert_eq!(c, 0);
    assert!(xml.contains(r#"failures="0""#), "{xml}");
    assert!(xml.contains(r#"skipped="7""#), "{xml}");
    assert!(
        xml.contains("<skipped message=\"written for the scenario"),
        "{xml}"
    );
    let (c, xml) = junit(&["explore", "--runs", "300"], "junit-explore");
    assert_eq!(c, 0);
    for p in explore::property::Property::ALL {
        assert!(
            xml.contains(&format!(r#"classname="explore" name="{}""#, p.name())),
            "{xml}"
        );
    }
    assert!(xml.contains(r#"failures="0""#), "{xml}");
}
