//! Many runs at once: a parallel map over seeds (or any items) on scoped threads, results in
//! item order, and [`run_many`] for a scenario's seeds.
//!
//! A run that panics outside the simulation's own capture (the checker, a summary) stops the
//! batch loudly: the error names the item's replay command before the panic goes on.

use std::{
    panic::AssertUnwindSafe,
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Instant,
};

use crate::{check::summarize, farm, spec::Scenario, summary::Summary};

/// Applies `f` to every item on `jobs` threads; results come back in item order. `done` is
/// called after each item (a progress bar). If `f` panics, the item's `replay` command is
/// logged as an error and the panic continues (the batch fails).
pub fn par_map<T: Sync, R: Send>(
    items: &[T],
    jobs: usize,
    f: impl Fn(&T) -> R + Sync,
    done: &(dyn Fn() + Sync),
    replay: &(dyn Fn(&T) -> String + Sync),
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<(usize, R)>> = Mutex::new(Vec::with_capacity(items.len()));
    std::thread::scope(|s| {
        for _ in 0..jobs.min(items.len()).max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let r = match std::panic::catch_unwind(AssertUnwindSafe(|| f(item))) {
                        Ok(r) => r,
                        Err(payload) => {
                            tracing::error!(replay = %replay(item), "a run panicked; replay it with: {}", replay(item));
                            std::panic::resume_unwind(payload);
                        }
                    };
                    out.lock().unwrap_or_else(|p| p.into_inner()).push((i, r));
                    done();
                }
            });
        }
    });
    let mut all = out.into_inner().unwrap_or_else(|p| p.into_inner());
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, r)| r).collect()
}

/// Runs seeds `first..first + runs` of a scenario on `jobs` threads and summarises each (with
/// its wall time); `replay_base` is the command without `--seed`. Returns the summaries in
/// seed order and the wall time of the batch, milliseconds.
pub fn run_many(
    sc: &Scenario,
    first: u64,
    runs: u64,
    jobs: usize,
    replay_base: &str,
    done: &(dyn Fn() + Sync),
) -> (Vec<Summary>, f64) {
    let seeds: Vec<u64> = (first..first.saturating_add(runs)).collect();
    let replay = |seed: &u64| format!("{replay_base} --seed {seed}");
    let started = Instant::now();
    let all = par_map(
        &seeds,
        jobs,
        |&seed| {
            let t0 = Instant::now();
            let result = farm::run(sc, seed, None);
            let mut summary = summarize(sc, seed, &result, replay(&seed));
            summary.wall_time_ms = t0.elapsed().as_secs_f64() * 1000.0;
            summary
        },
        done,
        &replay,
    );
    (all, started.elapsed().as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_item_order_whatever_the_threads() {
        let items: Vec<u64> = (0..200).collect();
        let count = AtomicUsize::new(0);
        let got = par_map(
            &items,
            4,
            |&i| i * i,
            &|| {
                count.fetch_add(1, Ordering::Relaxed);
            },
            &|i| format!("item {i}"),
        );
        assert_eq!(got, items.iter().map(|i| i * i).collect::<Vec<_>>());
        assert_eq!(count.load(Ordering::Relaxed), 200);
    }

    #[test]
    fn a_panicking_item_fails_the_batch() {
        let items: Vec<u64> = (0..10).collect();
        let r = std::panic::catch_unwind(|| {
            par_map(
                &items,
                2,
                |&i| assert_ne!(i, 7, "item 7 breaks"),
                &|| {},
                &|i| format!("item {i}"),
            )
        });
        assert!(r.is_err(), "the panic of item 7 must reach the caller");
    }
}
