//! The scenario's expectations (`[expect]`), evaluated on the run's totals and files.

use crate::{
    expect::{Expr, PER_FILE},
    spec::{ExpectValue, Scenario},
    summary::{ExpectationResult, Summary},
    track::Tracker,
};

/// Every expectation's result, in the scenario's order.
pub(super) fn check(scenario: &Scenario, tracker: &Tracker, s: &Summary) -> Vec<ExpectationResult> {
    let files = tracker.files();
    let mut out = Vec::with_capacity(scenario.expect.len());
    for (name, value) in &scenario.expect {
        let expr = match value {
            ExpectValue::Number(n) => Expr {
                op: crate::expect::Op::Eq,
                value: *n,
            },
            ExpectValue::Expr(e) => Expr::parse(e).expect("validated when loaded"),
        };
        let result = if PER_FILE.contains(&name.as_str()) {
            let failing: Vec<String> = files
                .values()
                .filter(|t| {
                    let v = if name == "effects_per_file" {
                        t.effects()
                    } else {
                        t.deliveries.len() as u64
                    };
                    !expr.holds(v as f64)
                })
                .map(|t| t.file.clone())
                .collect();
            ExpectationResult {
                name: name.clone(),
                expected: expr.to_string(),
                actual: (s.metrics.files - failing.len() as u64) as f64,
                held: failing.is_empty(),
                detail: if failing.is_empty() {
                    format!("all {} files", s.metrics.files)
                } else {
                    format!(
                        "{} of {} files do not: {}",
                        failing.len(),
                        s.metrics.files,
                        failing
                            .iter()
                            .take(5)
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                },
            }
        } else {
            let actual = s.metrics.get(name).expect("validated metric name");
            ExpectationResult {
                name: name.clone(),
                expected: expr.to_string(),
                actual,
                held: expr.holds(actual),
                detail: String::new(),
            }
        };
        out.push(result);
    }
    out
}
