//! The scenario's expectations (`[expect]`), evaluated on the run's totals and files.

use crate::{
    expect::{Expr, PER_FILE},
    spec::{ExpectValue, Scenario},
    summary::{ExpectationResult, Summary},
};

use super::tally::Tally;

/// Every expectation's result, in the scenario's order.
pub(super) fn check(scenario: &Scenario, tally: &Tally, s: &Summary) -> Vec<ExpectationResult> {
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
            let by = if name == "effects_per_file" {
                &tally.by_effects
            } else {
                &tally.by_deliveries
            };
            let failing_files: u64 = by
                .iter()
                .filter(|(v, _)| !expr.holds(**v as f64))
                .map(|(_, (n, _))| n)
                .sum();
            let named: Vec<String> = by
                .iter()
                .filter(|(v, _)| !expr.holds(**v as f64))
                .flat_map(|(_, (_, files))| files.iter().cloned())
                .take(5)
                .collect();
            ExpectationResult {
                name: name.clone(),
                expected: expr.to_string(),
                actual: (s.metrics.files - failing_files) as f64,
                held: failing_files == 0,
                detail: if failing_files == 0 {
                    format!("all {} files", s.metrics.files)
                } else {
                    format!(
                        "{} of {} files do not: {}",
                        failing_files,
                        s.metrics.files,
                        named.join(", ")
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
