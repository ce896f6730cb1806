//! The `bitsfarm` binary: exit codes, output formats, determinism across processes, and the
//! real-socket commands end to end.

mod browser;
mod deploy;
mod explore_cmd;
mod farm_cmd;
mod kept_cmd;
mod live;
mod probe_cmd;
mod proxy_cmd;
mod scenario_cmd;
mod schema_cmd;
mod sweep_cmd;
mod tls;

use std::process::{Command, Output};

/// Runs the binary in a scratch directory of its own (its default report directories land
/// there and go with it).
pub(crate) fn bitsfarm(args: &[&str]) -> Output {
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let cwd = tempdir(&format!("cwd-{call}"));
    bitsfarm_in(&cwd, args)
}

/// Runs the binary in `cwd` (a test's own, when it looks at the default report directories).
pub(crate) fn bitsfarm_in(cwd: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bitsfarm"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the binary runs")
}

pub(crate) fn code(o: &Output) -> i32 {
    o.status.code().expect("exited normally")
}

pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A fresh scratch directory under the system's temporary directory, removed when the
/// test that made it ends, unless it ends by panicking: then it is kept and named, to look at.
pub(crate) struct Scratch(std::path::PathBuf);

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

pub(crate) fn tempdir(tag: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!("bitsfarm-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}
