//! The scenarios shipped in `scenarios/`, compiled in so `bitsfarm scenario <name>` works from
//! any directory.

/// `(name, file text)` of every shipped scenario, in name order.
pub const SHIPPED: &[(&str, &str)] = &[
    ("canary", include_str!("../../../scenarios/canary.toml")),
    (
        "crash-after-forward",
        include_str!("../../../scenarios/crash-after-forward.toml"),
    ),
    (
        "crash-no-hostid",
        include_str!("../../../scenarios/crash-no-hostid.toml"),
    ),
    (
        "happy-path",
        include_str!("../../../scenarios/happy-path.toml"),
    ),
    (
        "hostid-resume",
        include_str!("../../../scenarios/hostid-resume.toml"),
    ),
    (
        "hostid-toggle",
        include_str!("../../../scenarios/hostid-toggle.toml"),
    ),
    (
        "lost-ack-single-node",
        include_str!("../../../scenarios/lost-ack-single-node.toml"),
    ),
    (
        "no-hostid-reconnect",
        include_str!("../../../scenarios/no-hostid-reconnect.toml"),
    ),
    (
        "slow-backend",
        include_str!("../../../scenarios/slow-backend.toml"),
    ),
    (
        "transaction-id-dedup",
        include_str!("../../../scenarios/transaction-id-dedup.toml"),
    ),
];

/// Finds a scenario by argument: a path (anything ending in `.toml` or containing `/`), else
/// `scenarios/<name>.toml` under the current directory (so local edits count), else a shipped
/// scenario. Returns it with the argument to use in replay commands.
pub fn find(arg: &str) -> Result<crate::Scenario, crate::LoadError> {
    let path = std::path::Path::new(arg);
    if arg.ends_with(".toml") || arg.contains('/') || arg.contains('\\') {
        return crate::load_path(path);
    }
    let local = std::path::Path::new("scenarios").join(format!("{arg}.toml"));
    if local.is_file() {
        return crate::load_path(&local);
    }
    match get(arg) {
        Some(text) => crate::load_str(text, &format!("<shipped scenario {arg}>"), arg),
        None => Err(crate::LoadError {
            file: arg.to_owned(),
            line: None,
            key: None,
            message: format!(
                "no such scenario (give a .toml path, or one of: {}; `bitsfarm scenarios` lists them)",
                SHIPPED
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

/// The text of a shipped scenario.
pub fn get(name: &str) -> Option<&'static str> {
    SHIPPED.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_scenario_loads_and_is_sorted() {
        for (name, text) in SHIPPED {
            let s = crate::load_str(text, name, name).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(&s.name, name);
            assert!(!s.description.is_empty(), "{name} needs a description");
        }
        assert!(SHIPPED.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn every_file_in_scenarios_is_shipped() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| {
                let name = e.unwrap().file_name().to_string_lossy().into_owned();
                name.strip_suffix(".toml").map(str::to_owned)
            })
            .collect();
        files.sort();
        let shipped: Vec<&str> = SHIPPED.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            files, shipped,
            "scenarios/*.toml and the compiled-in catalog differ"
        );
    }
}
