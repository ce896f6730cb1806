//! Progress bars that share stderr with the logs: log lines are printed above the bars instead
//! of through them.

use std::{io, sync::OnceLock};

use indicatif::MultiProgress;

fn bars() -> &'static MultiProgress {
    static BARS: OnceLock<MultiProgress> = OnceLock::new();
    BARS.get_or_init(MultiProgress::new)
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
