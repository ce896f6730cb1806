//! JUnit XML (`--junit FILE`), the format CI systems render as test results (GitLab, Jenkins,
//! GitHub actions that read test reports, Azure Pipelines): a run's expectations and
//! invariants, a sweep's settings (and, built by the command line, an explorer's properties),
//! each a test case that passed,
//! failed (with the reason and the replay command) or was skipped (a what-if run's
//! expectations).

use std::fmt::Write as _;

use scenario::summary::{Aggregate, Summary};

use crate::{escape, sweep::SweepSummary};

/// One test case.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// The group it belongs to (`crash-after-forward.seed-1`).
    pub classname: String,
    /// What it checks.
    pub name: String,
    /// Failed: a one-line message and the details.
    pub failure: Option<(String, String)>,
    /// Not checked, and why.
    pub skipped: Option<String>,
}

impl Case {
    /// A case that passed (`failure` `None`) or failed.
    pub fn new(classname: &str, name: String, failure: Option<(String, String)>) -> Case {
        Case {
            classname: classname.to_owned(),
            name,
            failure,
            skipped: None,
        }
    }
}

/// One suite of cases, with its wall time in seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Suite {
    /// Its name (`bitsfarm scenario crash-after-forward`).
    pub name: String,
    /// Wall time, seconds.
    pub time_s: f64,
    /// The cases.
    pub cases: Vec<Case>,
}

impl Suite {
    /// The JUnit XML document of this suite.
    pub fn to_xml(&self) -> String {
        let failures = self.cases.iter().filter(|c| c.failure.is_some()).count();
        let skipped = self.cases.iter().filter(|c| c.skipped.is_some()).count();
        let mut o = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let head = format!(
            "name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{:.3}\"",
            escape(&self.name),
            self.cases.len(),
            self.time_s
        );
        let _ = writeln!(o, "<testsuites {head}>");
        let _ = writeln!(o, "  <testsuite {head}>");
        for c in &self.cases {
            let _ = write!(
                o,
                "    <testcase classname=\"{}\" name=\"{}\" time=\"0\"",
                escape(&c.classname),
                escape(&c.name)
            );
            match (&c.failure, &c.skipped) {
                (Some((message, text)), _) => {
                    let _ = writeln!(
                        o,
                        ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>",
                        escape(message),
                        escape(text)
                    );
                }
                (None, Some(why)) => {
                    let _ = writeln!(
                        o,
                        ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                        escape(why)
                    );
                }
                (None, None) => o.push_str("/>\n"),
            }
        }
        o.push_str("  </testsuite>\n</testsuites>\n");
        o
    }
}

/// A run: one case per expectation (skipped when set aside) and invariant.
pub fn run(s: &Summary) -> Suite {
    let class = format!("{}.seed-{}", s.scenario, s.seed);
    let mut cases = Vec::new();
    for e in &s.expectations {
        let actual = if e.detail.is_empty() {
            format!("actual {}", e.actual)
        } else {
            e.detail.clone()
        };
        cases.push(Case::new(
            &class,
            format!("expectation {} {}", e.name, e.expected),
            (!e.held).then(|| (actual.clone(), format!("{actual}\nreplay: {}", s.replay))),
        ));
    }
    for name in &s.unchecked_expectations {
        cases.push(Case {
            skipped: Some(
                "written for the scenario's shipped settings, which --set changed (--expect checks it)"
                    .into(),
            ),
            ..Case::new(&class, format!("expectation {name}"), None)
        });
    }
    for i in &s.invariants {
        cases.push(Case::new(
            &class,
            format!("invariant {}", i.name),
            (!i.held).then(|| {
                (
                    i.detail.clone(),
                    format!("{}\nreplay: {}", i.detail, s.replay),
                )
            }),
        ));
    }
    Suite {
        name: format!("bitsfarm scenario {}", s.scenario),
        time_s: s.wall_time_ms / 1000.0,
        cases,
    }
}

/// Several runs of one scenario: one case per failed run, and one for all that passed.
pub fn aggregate(a: &Aggregate) -> Suite {
    let class = a.scenario.clone();
    let mut cases: Vec<Case> = a
        .failed_runs
        .iter()
        .map(|f| {
            Case::new(
                &class,
                format!("seed {}", f.seed),
                Some((
                    f.failed.join("; "),
                    format!("{}\nreplay: {}", f.failed.join("\n"), f.replay),
                )),
            )
        })
        .collect();
    cases.push(Case::new(
        &class,
        format!("{} of {} runs passed", a.passed, a.runs),
        None,
    ));
    Suite {
        name: format!("bitsfarm scenario {} --runs {}", a.scenario, a.runs),
        time_s: a.wall_time_ms / 1000.0,
        cases,
    }
}

/// A sweep: one case per setting, failed when an invariant failed in one of its runs.
pub fn sweep(s: &SweepSummary, time_s: f64) -> Suite {
    let class = format!("sweep.{}", s.plan.scenario);
    let cases = s
        .settings
        .iter()
        .map(|st| {
            let failure = (st.invariants_held < st.runs).then(|| {
                (
                    format!(
                        "invariants failed in {} of {} runs",
                        st.runs - st.invariants_held,
                        st.runs
                    ),
                    st.broken_runs.join("\n"),
                )
            });
            Case::new(&class, st.label.clone(), failure)
        })
        .collect();
    Suite {
        name: format!("bitsfarm sweep {}", s.plan.scenario),
        time_s,
        cases,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_suite_counts_and_escapes() {
        let suite = Suite {
            name: "bitsfarm scenario x".into(),
            time_s: 0.5,
            cases: vec![
                Case::new("x.seed-1", "invariant a".into(), None),
                Case::new(
                    "x.seed-1",
                    "expectation b == 1".into(),
                    Some(("actual 2 <&>".into(), "details".into())),
                ),
                Case {
                    skipped: Some("set aside".into()),
                    ..Case::new("x.seed-1", "expectation c".into(), None)
                },
            ],
        };
        let xml = suite.to_xml();
        assert!(
            xml.contains(r#"tests="3" failures="1" errors="0" skipped="1" time="0.500""#),
            "{xml}"
        );
        assert!(xml.contains(r#"<failure message="actual 2 &lt;&amp;&gt;">details</failure>"#));
        assert!(xml.contains(r#"<skipped message="set aside"/>"#));
        assert!(xml.contains(r#"<testcase classname="x.seed-1" name="invariant a" time="0"/>"#));
    }
}
