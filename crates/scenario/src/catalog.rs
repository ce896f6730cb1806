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
        "farm-week",
        include_str!("../../../scenarios/farm-week.toml"),
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

/// A scenario's text and where it came from.
pub struct Source {
    /// The TOML text.
    pub text: String,
    /// How errors name it (a path, or `<shipped scenario NAME>`).
    pub origin: String,
    /// The name used when the file sets none (the file name).
    pub default_name: String,
}

/// Finds a scenario by argument: a path (anything ending in `.toml` or containing `/`), else
/// `scenarios/<name>.toml` under the current directory (so local edits count), else a shipped
/// scenario.
pub fn source(arg: &str) -> Result<Source, crate::LoadError> {
    let read = |path: &std::path::Path| -> Result<Source, crate::LoadError> {
        let text = std::fs::read_to_string(path).map_err(|e| crate::LoadError {
            file: path.display().to_string(),
            line: None,
            key: None,
            message: format!("cannot read the scenario: {e}"),
        })?;
        let default_name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Source {
            text,
            origin: path.display().to_string(),
            default_name,
        })
    };
    let path = std::path::Path::new(arg);
    if arg.ends_with(".toml") || arg.contains('/') || arg.contains('\\') {
        return read(path);
    }
    let local = std::path::Path::new("scenarios").join(format!("{arg}.toml"));
    if local.is_file() {
        return read(&local);
    }
    match get(arg) {
        Some(text) => Ok(Source {
            text: text.to_owned(),
            origin: format!("<shipped scenario {arg}>"),
            default_name: arg.to_owned(),
        }),
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

/// Finds and loads a scenario by argument (see [`source`]), with overrides applied.
pub fn find(
    arg: &str,
    overrides: &[crate::overrides::Override],
) -> Result<crate::Scenario, crate::LoadError> {
    let src = source(arg)?;
    crate::overrides::apply(&src.text, &src.origin, &src.default_name, overrides)
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
