//! Report writers on fixed small runs and sweeps.

mod html_check;
mod run_report;
mod sweeps;

/// A fresh scratch directory.
pub fn tempdir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("bitsfarm-report-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
