//! Report writers on fixed small runs and sweeps.

mod html_check;
mod run_report;
mod sweeps;

pub use testkit::Scratch;

/// A fresh [`Scratch`] directory named after `tag`.
pub fn tempdir(tag: &str) -> Scratch {
    Scratch::new("bitsfarm-report", tag)
}
