//! Progress bars that share stderr with the logs: log lines are printed above the bars instead
//! of through them. Bars show on a terminal; `BITSFARM_PROGRESS=always` also prints them, one
//! line per update, when stderr is a file or a pipe (CI logs). Stdout is never touched.

use std::{io, sync::OnceLock};

use indicatif::{MultiProgress, ProgressDrawTarget, TermLike};

fn always() -> bool {
    std::env::var("BITSFARM_PROGRESS").is_ok_and(|v| v == "always")
}

/// Ends a bar: on a terminal it disappears; in a log its last line says where it ended.
pub fn done(bar: &indicatif::ProgressBar) {
    if always() {
        bar.finish();
    } else {
        bar.finish_and_clear();
    }
}

fn bars() -> &'static MultiProgress {
    static BARS: OnceLock<MultiProgress> = OnceLock::new();
    BARS.get_or_init(|| {
        if always() {
            MultiProgress::with_draw_target(ProgressDrawTarget::term_like_with_hz(
                Box::new(PlainStderr),
                2,
            ))
        } else {
            MultiProgress::new()
        }
    })
}

/// Progress as plain lines on stderr, for logs that are not terminals.
#[derive(Debug)]
struct PlainStderr;

impl TermLike for PlainStderr {
    fn width(&self) -> u16 {
        100
    }

    fn move_cursor_up(&self, _n: usize) -> io::Result<()> {
        Ok(())
    }

    fn move_cursor_down(&self, _n: usize) -> io::Result<()> {
        Ok(())
    }

    fn move_cursor_right(&self, _n: usize) -> io::Result<()> {
        Ok(())
    }

    fn move_cursor_left(&self, _n: usize) -> io::Result<()> {
        Ok(())
    }

    fn write_line(&self, s: &str) -> io::Result<()> {
        use io::Write as _;
        writeln!(io::stderr(), "{s}")
    }

    /// indicatif draws a bar with `write_str` and expects the cursor to stay on its line; in a
    /// log each drawing is one line of its own, without the padding a terminal needs.
    fn write_str(&self, s: &str) -> io::Result<()> {
        use io::Write as _;
        let line = s.trim_end();
        if line.is_empty() {
            return Ok(());
        }
        writeln!(io::stderr(), "{line}")
    }

    fn clear_line(&self) -> io::Result<()> {
        Ok(())
    }

    fn flush(&self) -> io::Result<()> {
        use io::Write as _;
        io::stderr().flush()
    }
}

/// Adds a bar (hidden when stderr is not a terminal).
pub fn add(bar: indicatif::ProgressBar) -> indicatif::ProgressBar {
    bars().add(bar)
}

/// The writer the tracing subscriber logs through.
#[derive(Clone, Copy, Default)]
pub struct LogWriter;

impl io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        bars().suspend(|| io::stderr().write_all(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}
