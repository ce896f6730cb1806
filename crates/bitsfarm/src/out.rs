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
