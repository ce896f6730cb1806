//! What bitsfarm's test suites share (a dev-dependency only): [`Scratch`] directories.

use std::path::{Path, PathBuf};

/// A fresh scratch directory under the system's temporary directory, removed when the test
/// that made it ends, unless it ends by panicking: then it is kept and named, to look at.
pub struct Scratch(PathBuf);

impl Scratch {
    /// `<temp>/<prefix>-<tag>-<pid>`, emptied if a former run left it.
    pub fn new(prefix: &str, tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("{prefix}-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a scratch directory can be made");
        Scratch(dir)
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl From<&Scratch> for PathBuf {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scratch_directory_goes_when_its_test_ends_and_stays_when_it_panics() {
        let s = Scratch::new("testkit", "ends");
        std::fs::write(s.join("f"), b"x").unwrap();
        let path = s.to_path_buf();
        drop(s);
        assert!(!path.exists());
        let kept = std::thread::spawn(|| {
            let s = Scratch::new("testkit", "panics");
            std::fs::write(s.join("f"), b"x").unwrap();
            let path = s.to_path_buf();
            std::panic::panic_any(path);
        })
        .join()
        .unwrap_err();
        let path = kept.downcast::<PathBuf>().unwrap();
        assert!(path.join("f").is_file());
        std::fs::remove_dir_all(*path).unwrap();
    }
}
