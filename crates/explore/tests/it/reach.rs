//! The generator reaches the paths mutation testing found untouched by 3,000 explorer runs:
//! overlapping fragments that span several body chunks, cancelled jobs, error pages without a
//! BITS Ack, and unusual pairs of status and error code.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use explore::Space;
use probe::Event;

#[derive(Default)]
struct Reached {
    /// Fragments that started inside what the node held and ended past it. (The simulated
    /// network delivers a body in pieces, so the old prefix can span whole chunks: with the
    /// audit's mutant of that path, `bitsfarm explore --runs 3000` fails.)
    overlaps: u64,
    cancelled_sessions: u64,
    pages_without_ack: u64,
    odd_pairs: u64,
}

#[test]
fn the_generator_reaches_the_paths_the_audit_found_untouched() {
    let reached = Arc::new(Mutex::new(Reached::default()));
    for seed in 0..3000 {
        let knobs = explore::generate(seed, &Space::default());
        let sc = knobs.scenario("reach");
        let r = reached.clone();
        let mut held: BTreeMap<String, u64> = BTreeMap::new();
        let sink: scenario::log::Sink = Box::new(move |rec| {
            let mut r = r.lock().unwrap();
            match &rec.event {
                Event::FragmentAcked {
                    session,
                    start,
                    end,
                    status: 200,
                    received,
                    ..
                } => {
                    let before = held.get(session).copied().unwrap_or(0);
                    if *start < before && *end > before {
                        r.overlaps += 1;
                    }
                    held.insert(session.clone(), *received);
                }
                Event::SessionCancelled { .. } => r.cancelled_sessions += 1,
                Event::ClientFailure { error, .. } if error.contains("without a BITS Ack") => {
                    r.pages_without_ack += 1
                }
                Event::ClientAck {
                    status,
                    code: Some(code),
                    ..
                } if (*status == 413 && code == "0x80200020")
                    || (*status >= 500 && code == "0x80070057")
                    || (*status == 404 && code == "0x80004005") =>
                {
                    r.odd_pairs += 1
                }
                _ => {}
            }
        });
        scenario::farm::run(&sc, sc.seed, Some(sink));
    }
    let r = reached.lock().unwrap();
    eprintln!(
        "3,000 generated runs: {} overlapping fragments, {} cancelled sessions, {} pages without an Ack, {} unusual status/code pairs",
        r.overlaps, r.cancelled_sessions, r.pages_without_ack, r.odd_pairs
    );
    assert!(r.overlaps > 0, "no overlapping fragment");
    assert!(r.cancelled_sessions > 0, "no cancelled job");
    assert!(r.pages_without_ack > 0, "no error page without an Ack");
    assert!(r.odd_pairs > 0, "no unusual status/code pair");
}
