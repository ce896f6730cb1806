//! Writing to stdout and stderr without panicking when they are closed (`bitsfarm scenarios |
//! head -1`): `println!` panics on a broken pipe. Output to a closed pipe is dropped quietly and
//! the command ends with its own exit code; any other write error is reported once on stderr.

use std::{
    fmt,
    io::{self, Write as _},
    sync::atomic::{AtomicBool, Ordering},
};

static REPORTED: AtomicBool = AtomicBool::new(false);

fn write(mut w: impl io::Write, args: fmt::Arguments<'_>, newline: bool) {
    let r = w
        .write_fmt(args)
        .and_then(|()| if newline { w.write_all(b"\n") } else { Ok(()) })
        .and_then(|()| w.flush());
    if let Err(e) = r
        && e.kind() != io::ErrorKind::BrokenPipe
        && !REPORTED.swap(true, Ordering::Relaxed)
    {
        let _ = writeln!(io::stderr(), "error: cannot write the output: {e}");
    }
}

/// `print!` that survives a closed stdout.
pub fn stdout(args: fmt::Arguments<'_>, newline: bool) {
    write(io::stdout().lock(), args, newline);
}

/// `eprint!` that survives a closed stderr.
pub fn stderr(args: fmt::Arguments<'_>, newline: bool) {
    write(io::stderr().lock(), args, newline);
}

/// `println!` to stdout that survives a closed pipe.
macro_rules! outln {
    ($($t:tt)*) => { $crate::out::stdout(format_args!($($t)*), true) };
}

/// `print!` to stdout that survives a closed pipe.
macro_rules! out {
    ($($t:tt)*) => { $crate::out::stdout(format_args!($($t)*), false) };
}

/// `eprintln!` that survives a closed stderr.
macro_rules! errln {
    ($($t:tt)*) => { $crate::out::stderr(format_args!($($t)*), true) };
}

pub(crate) use {errln, out, outln};

/// Colours on stdout: only when it is a terminal and `NO_COLOR` is unset (no-color.org).
pub fn colour_on() -> bool {
    use std::io::IsTerminal as _;
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| {
        io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
    })
}

/// `line` in the colour of a verdict class (`pass` green, `fail` red, `expected` and `warn`
/// yellow), or as it is when colours are off.
pub fn paint(line: &str, class: &str) -> String {
    if !colour_on() {
        return line.to_owned();
    }
    let code = match class {
        "pass" => "32",
        "fail" => "31;1",
        _ => "33",
    };
    format!("\x1b[{code}m{line}\x1b[0m")
}
