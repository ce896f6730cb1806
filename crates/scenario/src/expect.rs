//! Expectations: `metric = "<op> <number>"`, checked against a run's summary.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum Op {
    /// `==`
    #[serde(rename = "==")]
    Eq,
    /// `!=`
    #[serde(rename = "!=")]
    Ne,
    /// `>=`
    #[serde(rename = ">=")]
    Ge,
    /// `>`
    #[serde(rename = ">")]
    Gt,
    /// `<=`
    #[serde(rename = "<=")]
    Le,
    /// `<`
    #[serde(rename = "<")]
    Lt,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Ge => ">=",
            Op::Gt => ">",
            Op::Le => "<=",
            Op::Lt => "<",
        }
    }
}

/// Why an expectation does not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExprError {
    /// Not an operator followed by a number.
    #[error("{0:?} is not \"<op> <number>\" (ops: >=, >, <=, <, ==, !=)")]
    NotAnExpression(String),
    /// The number is infinite or not a number.
    #[error("{0:?}: the number must be finite")]
    NotFinite(String),
}

/// A parsed expectation: `op value`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Expr {
    /// The comparison.
    pub op: Op,
    /// The number compared with.
    pub value: f64,
}

impl Expr {
    /// Reads `">= 1"`, `"== 0"`, `"< 2.5"`, or a bare number (`==`).
    pub fn parse(s: &str) -> Result<Expr, ExprError> {
        let s = s.trim();
        let ops = [
            (">=", Op::Ge),
            ("<=", Op::Le),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            (">", Op::Gt),
            ("<", Op::Lt),
            ("=", Op::Eq),
        ];
        let (op, rest) = ops
            .iter()
            .find_map(|(t, op)| s.strip_prefix(t).map(|r| (*op, r)))
            .unwrap_or((Op::Eq, s));
        let value: f64 = rest
            .trim()
            .parse()
            .map_err(|_| ExprError::NotAnExpression(s.to_owned()))?;
        if !value.is_finite() {
            return Err(ExprError::NotFinite(s.to_owned()));
        }
        Ok(Expr { op, value })
    }

    /// Whether `actual` satisfies the expectation.
    pub fn holds(&self, actual: f64) -> bool {
        match self.op {
            Op::Eq => actual == self.value,
            Op::Ne => actual != self.value,
            Op::Ge => actual >= self.value,
            Op::Gt => actual > self.value,
            Op::Le => actual <= self.value,
            Op::Lt => actual < self.value,
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.op.as_str(), self.value)
    }
}

/// The expectations a scenario sets aside, each as `metric expression` (`lost == 0`).
pub fn unchecked(s: &crate::spec::Scenario) -> Vec<String> {
    s.unchecked_expect
        .iter()
        .map(|(name, v)| match v {
            crate::spec::ExpectValue::Number(n) => format!("{name} == {n}"),
            crate::spec::ExpectValue::Expr(e) => format!("{name} {}", e.trim()),
        })
        .collect()
}

/// Metrics an expectation may name (run totals).
pub const TOTALS: &[&str] = &crate::metrics::Metrics::NAMES;

/// Metrics every file must satisfy.
pub const PER_FILE: &[&str] = &["deliveries_per_file", "effects_per_file"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_evaluates() {
        let e = Expr::parse(">= 1").unwrap();
        assert!(e.holds(1.0) && e.holds(5.0) && !e.holds(0.0));
        assert!(Expr::parse("0").unwrap().holds(0.0));
        assert!(Expr::parse("!=0").unwrap().holds(2.0));
        assert!(Expr::parse("< 2.5").unwrap().holds(2.0));
        assert!(Expr::parse("=3").unwrap().holds(3.0));
        assert!(Expr::parse("about 3").is_err());
        assert!(Expr::parse(">= inf").is_err());
        assert_eq!(Expr::parse(">=  1").unwrap().to_string(), ">= 1");
    }
}
