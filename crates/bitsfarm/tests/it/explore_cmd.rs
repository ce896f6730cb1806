//! `bitsfarm explore`: the canary is found and saved as a scenario that replays the duplicate;
//! bad flags exit 2.

use crate::*;

#[test]
fn explore_finds_the_canary_and_saves_a_replayable_scenario() {
    let out = tempdir("explore");
    let found = out.join("found");
    let o = bitsfarm(&[
        "explore",
        "--runs",
        "300",
        "--property",
        "canary",
        "--property",
        "no-loss",
        "--out",
        found.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let r: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("one JSON document");
    assert_eq!(r["runs"], 300);
    assert_eq!(r["ok"], true);
    let props = r["properties"].as_array().unwrap();
    let canary = props.iter().find(|p| p["property"] == "canary").unwrap();
    assert!(canary["failed"].as_u64().unwrap() > 0, "{canary}");
    assert!(
        canary["shrunk_fault_rules"].as_u64().unwrap() <= 2,
        "{canary}"
    );
    let no_loss = props.iter().find(|p| p["property"] == "no-loss").unwrap();
    assert_eq!(
        (no_loss["checked"].as_u64(), no_loss["failed"].as_u64()),
        (Some(300), Some(0))
    );

    // The saved file replays with `bitsfarm scenario`: the duplicate and its chain show, and
    // the expectation that states the canary fails (exit 1).
    let saved = canary["saved"][0].as_str().unwrap();
    assert!(
        saved.ends_with(".toml") && saved.contains("canary-"),
        "{saved}"
    );
    let replay = bitsfarm(&[
        "scenario",
        saved,
        "--out",
        out.join("replay").to_str().unwrap(),
    ]);
    assert_eq!(code(&replay), 1, "{}", stdout(&replay));
    let text = stdout(&replay);
    assert!(text.contains("was delivered a 2nd time"), "{text}");
    assert!(text.contains("cause:"), "{text}");
    assert!(text.contains("FAILED duplicate_deliveries == 0"), "{text}");
    assert!(text.contains("held   duplicates_explained"), "{text}");
}

#[test]
fn explore_shards_split_the_runs() {
    let out = tempdir("explore-shard");
    let run = |shard: &str| {
        let o = bitsfarm(&[
            "explore",
            "--runs",
            "40",
            "--shard",
            shard,
            "--property",
            "no-loss",
            "--out",
            out.to_str().unwrap(),
            "--json",
        ]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let r: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        r["runs"].as_u64().unwrap()
    };
    assert_eq!(run("1/3") + run("2/3") + run("3/3"), 40);
}

#[test]
fn bad_explore_input_exits_2() {
    let dir = tempdir("explore-bad");
    let space = dir.join("space.toml");
    std::fs::write(&space, "nodes = [3, 1]\n").unwrap();
    let typo = dir.join("typo.toml");
    std::fs::write(&typo, "nodez = [1, 2]\n").unwrap();
    for (args, want) in [
        (vec!["explore", "--property", "no-such"], "unknown property"),
        (vec!["explore", "--shard", "4/3"], "K must be 1 to M"),
        (vec!["explore", "--runs", "0"], "--runs"),
        (
            vec!["explore", "--space", space.to_str().unwrap()],
            "nodes = [3, 1]",
        ),
        (
            vec!["explore", "--space", typo.to_str().unwrap()],
            "typo.toml:1: unknown field `nodez`",
        ),
        (
            vec!["explore", "--space", "/no/such/space.toml"],
            "cannot read",
        ),
    ] {
        let o = bitsfarm(&args);
        assert_eq!(code(&o), 2, "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    }
}

#[test]
fn explore_help_and_the_readme_name_every_property_space_key_and_fault_kind() {
    let o = bitsfarm(&["explore", "--help"]);
    assert_eq!(code(&o), 0);
    let help = stdout(&o);
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    for p in explore::property::Property::ALL {
        assert!(
            help.contains(&format!("\n  {} ", p.name())),
            "--help lacks property {}",
            p.name()
        );
        assert!(
            readme.contains(&format!("`{}`", p.name())),
            "README lacks property {}",
            p.name()
        );
    }
    let space = toml::Value::try_from(explore::Space::default()).unwrap();
    let keys: Vec<&String> = space.as_table().unwrap().keys().collect();
    assert!(keys.len() >= 10, "{keys:?}");
    for k in keys {
        assert!(
            help.contains(&format!("{k} = ")),
            "--help lacks space key {k}"
        );
        assert!(
            readme.contains(&format!("{k} = ")),
            "README lacks space key {k}"
        );
    }
    for kind in explore::space::FaultKind::ALL {
        let name = serde_json::to_string(&kind).unwrap();
        assert!(help.contains(&name), "--help lacks fault kind {name}");
        assert!(readme.contains(&name), "README lacks fault kind {name}");
    }
}
