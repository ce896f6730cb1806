//! Running many simulations on all cores, with a progress bar on stderr (stdout stays clean
//! for `--json`).

use std::{
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Instant,
};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};

use crate::progress;

/// Worker threads: `jobs`, or one per core.
pub fn threads(jobs: Option<usize>) -> usize {
    jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1)
}

/// Applies `f` to every item on `jobs` threads; results come back in item order, with the wall
/// time in milliseconds.
pub fn map<T: Sync, R: Send>(
    items: &[T],
    jobs: usize,
    what: &str,
    f: impl Fn(&T) -> R + Sync,
) -> (Vec<R>, f64) {
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<(usize, R)>> = Mutex::new(Vec::with_capacity(items.len()));
    let bar = progress::add(ProgressBar::new(items.len() as u64));
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} {what} [{{bar:30}}] {{pos}}/{{len}} {{per_sec}} eta {{eta}}"
        ))
        .expect("valid template")
        .progress_chars("=> "),
    );
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..jobs.min(items.len()).max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let r = f(item);
                    done.lock().unwrap_or_else(|p| p.into_inner()).push((i, r));
                    bar.inc(1);
                }
            });
        }
    });
    progress::done(&bar);
    let mut all = done.into_inner().unwrap_or_else(|p| p.into_inner());
    all.sort_by_key(|(i, _)| *i);
    (
        all.into_iter().map(|(_, r)| r).collect(),
        started.elapsed().as_secs_f64() * 1000.0,
    )
}

/// Parses `--shard K/M` (1-based K).
pub fn parse_shard(s: &str) -> anyhow::Result<(u64, u64)> {
    let (k, m) = s.split_once('/').context("--shard is K/M, e.g. 2/8")?;
    let (k, m): (u64, u64) = (
        k.trim().parse().context("--shard K is a number")?,
        m.trim().parse().context("--shard M is a number")?,
    );
    anyhow::ensure!(
        m >= 1 && (1..=m).contains(&k),
        "--shard {k}/{m}: K must be 1 to M"
    );
    Ok((k, m))
}
