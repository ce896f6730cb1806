//! A campaign: the verdicts of many generated runs turned into one result per property, each
//! failure shrunk and saved as a scenario file, and the result in words. `bitsfarm explore`
//! runs the seeds and hands the verdicts here.

use std::{collections::BTreeMap, path::Path};

use serde::Serialize;

use crate::{Property, Search, Verdicts, shrink_failure};

/// An unknown property name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown property {name:?}; use {}", Property::ALL.iter().map(|p| p.name()).collect::<Vec<_>>().join(", "))]
pub struct UnknownProperty {
    /// The name given.
    pub name: String,
}

/// The properties named (every one when none is), sorted, each once.
pub fn properties(names: &[String]) -> Result<Vec<Property>, UnknownProperty> {
    let mut props: Vec<Property> = if names.is_empty() {
        Property::ALL.to_vec()
    } else {
        names
            .iter()
            .map(|n| Property::parse(n).ok_or_else(|| UnknownProperty { name: n.clone() }))
            .collect::<Result<_, _>>()?
    };
    props.sort_unstable();
    props.dedup();
    Ok(props)
}

/// One run's verdicts, with when (seconds into the campaign) they came.
#[derive(Debug, Clone)]
pub struct Run {
    /// The verdicts.
    pub v: Verdicts,
    /// Seconds since the campaign started.
    pub at_s: f64,
}

/// What a campaign found for one property.
#[derive(Debug, Serialize)]
pub struct PropertyResult {
    /// Its name.
    pub property: &'static str,
    /// Whether it is the canary (false on purpose: it must be falsified).
    pub canary: bool,
    /// Runs in its domain.
    pub checked: u64,
    /// Runs that broke it.
    pub failed: u64,
    /// The first failing seed.
    pub first_failure_seed: Option<u64>,
    /// Seconds into the campaign when it first failed.
    pub first_failure_after_s: Option<f64>,
    /// The scenario files saved.
    pub saved: Vec<String>,
    /// Fault rules of the first shrunk failure.
    pub shrunk_fault_rules: Option<usize>,
    /// Why the first shrunk failure fails, in words.
    pub example: Option<String>,
}

impl PropertyResult {
    /// Whether the property came out as it should (held; the canary: falsified, or never
    /// checked).
    pub fn good(&self) -> bool {
        if self.canary {
            self.checked == 0 || self.failed > 0
        } else {
            self.failed == 0
        }
    }
}

/// A campaign's result (`bitsfarm explore --json`).
#[derive(Debug, Serialize)]
pub struct Results {
    /// Runs.
    pub runs: u64,
    /// Wall time, seconds.
    pub wall_s: f64,
    /// Runs per second.
    pub runs_per_s: f64,
    /// One result per property.
    pub properties: Vec<PropertyResult>,
    /// Whether every property came out as it should.
    pub ok: bool,
}

/// Where and how hard to shrink failures.
#[derive(Debug, Clone, Copy)]
pub struct Shrinking<'a> {
    /// Directory for the scenario files of failures.
    pub out: &'a Path,
    /// Candidates to try per failure.
    pub budget: usize,
}

/// Concludes a campaign: per property, how often it was checked and failed; the first
/// failures (3, the canary's 1) shrunk and saved as `<out>/<property>-<seed>.toml`.
pub fn conclude(
    search: &Search,
    props: &[Property],
    runs: &[Run],
    wall_ms: f64,
    shrinking: Shrinking<'_>,
) -> std::io::Result<Results> {
    let mut out = Vec::new();
    for &p in props {
        let checked = runs.iter().filter(|r| r.v.checked.contains(&p)).count() as u64;
        let failures: Vec<&Run> = runs
            .iter()
            .filter(|r| r.v.failed.iter().any(|(q, _)| *q == p))
            .collect();
        let mut result = PropertyResult {
            property: p.name(),
            canary: p.is_canary(),
            checked,
            failed: failures.len() as u64,
            first_failure_seed: failures.first().map(|r| r.v.seed),
            first_failure_after_s: failures.iter().map(|r| r.at_s).reduce(f64::min),
            saved: Vec::new(),
            shrunk_fault_rules: None,
            example: None,
        };
        let keep = if p.is_canary() { 1 } else { 3 };
        for r in failures.iter().take(keep) {
            let (small, why) = shrink_failure(p, search.knobs(r.v.seed), shrinking.budget);
            let name = format!("{}-{}", p.name(), r.v.seed);
            std::fs::create_dir_all(shrinking.out)?;
            let path = shrinking.out.join(format!("{name}.toml"));
            std::fs::write(&path, crate::found_file(p, &small, &why, &name))?;
            result.saved.push(path.display().to_string());
            if result.shrunk_fault_rules.is_none() {
                result.shrunk_fault_rules = Some(small.faults.len());
                result.example = Some(why);
            }
        }
        out.push(result);
    }
    let n = runs.len() as u64;
    Ok(Results {
        runs: n,
        wall_s: wall_ms / 1000.0,
        runs_per_s: n as f64 * 1000.0 / wall_ms.max(1e-9),
        ok: out.iter().all(PropertyResult::good),
        properties: out,
    })
}

impl Results {
    /// The result for a terminal.
    pub fn to_text(&self) -> String {
        let mut o = format!(
            "explored {} generated scenarios in {:.1} s ({:.0}/s)\n\n",
            self.runs, self.wall_s, self.runs_per_s
        );
        o += &format!(
            "  {:<24} {:>8} {:>8}  result\n",
            "property", "checked", "failed"
        );
        let mut by: BTreeMap<usize, String> = BTreeMap::new();
        for (i, p) in self.properties.iter().enumerate() {
            let verdict = match (p.canary, p.failed) {
                (_, 0) if p.checked == 0 => "not checked: no run was in its domain".to_owned(),
                (false, 0) => "held".to_owned(),
                (false, _) => format!("FAILED (first: seed {})", p.first_failure_seed.unwrap_or(0)),
                (true, 0) => "NOT FALSIFIED: the search did not find a duplicate".to_owned(),
                (true, _) => format!(
                    "falsified as expected after {:.2} s (shrunk to {} fault rule(s))",
                    p.first_failure_after_s.unwrap_or(0.0),
                    p.shrunk_fault_rules.unwrap_or(0)
                ),
            };
            o += &format!(
                "  {:<24} {:>8} {:>8}  {verdict}\n",
                p.property, p.checked, p.failed
            );
            if !p.saved.is_empty() {
                by.insert(
                    i,
                    format!(
                        "  {}: {}\n    saved: {}\n",
                        p.property,
                        p.example.as_deref().unwrap_or(""),
                        p.saved.join(", ")
                    ),
                );
            }
        }
        if !by.is_empty() {
            o += "\n";
            for v in by.values() {
                o += v;
            }
        }
        o += &format!("\nresult: {}\n", if self.ok { "PASS" } else { "FAIL" });
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn property_names_parse_or_say_which_exist() {
        assert_eq!(properties(&[]).unwrap(), Property::ALL.to_vec());
        let two = properties(&["liveness".into(), "no-loss".into(), "liveness".into()]).unwrap();
        assert_eq!(two.len(), 2);
        let err = properties(&["no-lost".into()]).unwrap_err().to_string();
        assert!(
            err.contains("\"no-lost\"") && err.contains("no-loss"),
            "{err}"
        );
    }

    #[test]
    fn the_canary_is_good_only_when_falsified() {
        let r = |canary, checked, failed| PropertyResult {
            property: "x",
            canary,
            checked,
            failed,
            first_failure_seed: None,
            first_failure_after_s: None,
            saved: Vec::new(),
            shrunk_fault_rules: None,
            example: None,
        };
        assert!(r(false, 10, 0).good() && !r(false, 10, 1).good());
        assert!(r(true, 10, 1).good() && !r(true, 10, 0).good() && r(true, 0, 0).good());
    }
}
