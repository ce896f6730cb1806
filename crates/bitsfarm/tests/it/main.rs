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

/// Runs the binary in a scratch directory (its default report directories land there).
pub(crate) fn bitsfarm(args: &[&str]) -> Output {
    let cwd = std::env::temp_dir().join(format!("bitsfarm-cli-cwd-{}", std::process::id()));
    std::fs::create_dir_all(&cwd).unwrap();
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

pub(crate) fn tempdir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("bitsfarm-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
