//! The same scenario and seed give the same event log (hash) and the same numbers; different
//! seeds explore different runs.

use crate::{run, shipped};

#[test]
fn same_seed_same_event_log() {
    for name in [
        "crash-after-forward",
        "happy-path",
        "hostid-toggle",
        "slow-backend",
    ] {
        let s = shipped(name);
        for seed in [1, 7, 12345] {
            let a = run(&s, seed);
            let b = run(&s, seed);
            assert_eq!(a.event_log_hash, b.event_log_hash, "{name} seed {seed}");
            assert_eq!(a.events, b.events);
            assert_eq!(
                (
                    a.metrics.deliveries,
                    a.metrics.duplicate_deliveries,
                    a.metrics.restarts,
                    a.metrics.bytes_resent,
                    a.metrics.virtual_time_s
                ),
                (
                    b.metrics.deliveries,
                    b.metrics.duplicate_deliveries,
                    b.metrics.restarts,
                    b.metrics.bytes_resent,
                    b.metrics.virtual_time_s
                ),
                "{name} seed {seed}"
            );
            assert_eq!(
                serde_json::to_string(&a.duplicates).unwrap(),
                serde_json::to_string(&b.duplicates).unwrap()
            );
        }
    }
}

#[test]
fn different_seeds_give_different_runs() {
    let s = shipped("happy-path");
    let hashes: std::collections::BTreeSet<String> =
        (1..=5).map(|seed| run(&s, seed).event_log_hash).collect();
    assert_eq!(
        hashes.len(),
        5,
        "seeds must change the run (start times, sizes, session ids)"
    );
}

#[test]
fn the_event_log_written_out_hashes_like_the_oracle() {
    use std::sync::{Arc, Mutex};
    let s = shipped("crash-after-forward");
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let l = lines.clone();
    let result = scenario::farm::run(
        &s,
        3,
        Some(Box::new(move |rec| {
            l.lock().unwrap().push(serde_json::to_string(rec).unwrap())
        })),
    );
    let lines = lines.lock().unwrap();
    assert_eq!(lines.len() as u64, result.events);
    // Every line reads back as a versioned record, in sequence.
    for (i, line) in lines.iter().enumerate() {
        let rec: scenario::log::Record = serde_json::from_str(line).unwrap();
        assert_eq!((rec.v, rec.seq), (1, i as u64));
    }
    assert_eq!(run(&s, 3).event_log_hash, result.event_hash);
}

#[test]
fn latency_jitter_comes_from_the_seed_within_its_bound() {
    let plain = crate::scenario("[clients]\ncount = 5\nstart_spread_s = 0\n");
    let jittery =
        crate::scenario("[network]\njitter_ms = 200\n[clients]\ncount = 5\nstart_spread_s = 0\n");
    let base = crate::run(&plain, 3);
    let a = crate::run(&jittery, 3);
    assert_eq!(a.event_log_hash, crate::run(&jittery, 3).event_log_hash);
    assert_ne!(a.event_log_hash, crate::run(&jittery, 4).event_log_hash);
    assert!(a.metrics.virtual_time_s > base.metrics.virtual_time_s);
    // A job makes a handful of round trips; none may take longer than 2 x (1 + 200) ms.
    let requests = a.events as f64;
    assert!(a.metrics.virtual_time_s <= base.metrics.virtual_time_s + requests * 0.402);
    assert_eq!(a.metrics.acknowledged, 5);
}
