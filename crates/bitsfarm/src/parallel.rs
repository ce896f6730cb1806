//! Running many simulations on all cores, with a progress bar on stderr (stdout stays clean
//! for `--json`).

use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use crate::progress;

/// Worker threads: `jobs`, or one per core.
pub fn threads(jobs: Option<usize>) -> usize {
    jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1)
}

/// Applies `f` to every item on `jobs` threads with a progress bar; results come back in item
/// order, with the wall time in milliseconds. A panicking item fails the command, its `replay`
/// command logged first.
pub fn map<T: Sync, R: Send>(
    items: &[T],
    jobs: usize,
    what: &str,
    f: impl Fn(&T) -> R + Sync,
    replay: &(dyn Fn(&T) -> String + Sync),
) -> (Vec<R>, f64) {
    let bar = bar(items.len() as u64, what);
    let started = Instant::now();
    let all = scenario::batch::par_map(items, jobs, f, &|| bar.inc(1), replay);
    progress::done(&bar);
    (all, started.elapsed().as_secs_f64() * 1000.0)
}

/// A progress bar on stderr for `len` items of `what`.
pub fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = progress::add(ProgressBar::new(len));
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} {what} [{{bar:30}}] {{pos}}/{{len}} {{per_sec}} eta {{eta}}"
        ))
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar
}
