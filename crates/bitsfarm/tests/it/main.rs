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

pub use testkit::Scratch;

/// A fresh [`Scratch`] directory named after `tag`.
pub(crate) fn tempdir(tag: &str) -> Scratch {
    Scratch::new("bitsfarm-cli", tag)
}
