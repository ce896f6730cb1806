//! Report writers on fixed small runs and sweeps.

mod html_check;
mod run_report;
mod sweeps;

/// A fresh scratch directory under the system's temporary directory, removed when the
/// test that made it ends, unless it ends by panicking: then it is kept and named, to look at.
pub struct Scratch(std::path::PathBuf);

impl std::ops::Deref for Scratch {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl AsRef<std::path::Path> for Scratch {
    fn as_ref(&self) -> &std::path::Path {
        &self.0
    }
}

impl From<&Scratch> for std::path::PathBuf {
    fn from(s: &Scratch) -> Self {
        s.0.clone()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept for a look: {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A fresh [`Scratch`] directory named after `tag`.
pub fn tempdir(tag: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!("bitsfarm-report-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}
