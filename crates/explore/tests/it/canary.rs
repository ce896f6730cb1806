//! The canary: "without dedupe there is never a duplicate delivery" is false, and the search
//! must show it. This is the proof that the explorer finds what it looks for.

use explore::{Property, Search, Space, shrink_failure};
use scenario::{check::summarize, farm};

/// Runs the seeds in order until the canary fails; returns the seed.
fn first_falsifying_seed(search: &Search, limit: u64) -> Option<u64> {
    (1..=limit).find(|&seed| {
        search
            .check(seed)
            .failed
            .iter()
            .any(|(p, _)| *p == Property::Canary)
    })
}

#[test]
fn the_canary_is_falsified_and_shrinks_to_a_replayable_duplicate_chain() {
    let search = Search::new(Space::default(), vec![Property::Canary]);
    let seed = first_falsifying_seed(&search, 500)
        .expect("500 generated scenarios without a single duplicate delivery");
    let (small, why) = shrink_failure(Property::Canary, search.knobs(seed), 400);
    assert!(
        small.faults.len() <= 2,
        "shrunk to {} fault rules: {small:?}",
        small.faults.len()
    );
    assert!(!small.dedupe);

    // The saved file is a scenario `bitsfarm scenario` replays: same run, a duplicate with a
    // causal chain from an injected fault, and an expectation that fails while it is there.
    let name = format!("canary-{seed}");
    let text = explore::found_file(Property::Canary, &small, &why, &name);
    assert!(
        text.contains(&format!(
            "# Replay: bitsfarm scenario scenarios/found/{name}.toml"
        )),
        "{text}"
    );
    let sc = scenario::load_str(&text, "found.toml", &name).expect("the found file loads");
    let run = farm::run(&sc, sc.seed, None);
    let s = summarize(&sc, sc.seed, &run, String::new());
    assert!(
        s.metrics.duplicate_deliveries > 0,
        "the replay has no duplicate:\n{}",
        s.to_text()
    );
    let chain = s
        .duplicates
        .iter()
        .flat_map(|d| &d.chains)
        .next()
        .expect("a duplicate has a chain");
    assert!(
        chain.rule.is_some(),
        "the chain starts at a fault rule: {chain:?}"
    );
    assert!(
        s.invariants.iter().all(|i| i.held),
        "the replay breaks no real invariant:\n{}",
        s.to_text()
    );
    assert!(
        !s.ok,
        "the expectation `duplicate_deliveries = 0` fails on replay"
    );
    let explored = explore::property::run(&small, false);
    assert_eq!(
        s.event_log_hash, explored.summary.event_log_hash,
        "the file replays the shrunk run"
    );
}

#[test]
fn the_canary_holds_where_there_is_nothing_to_find() {
    // Without faults nothing is ever delivered twice: the canary's failures come from faults,
    // not from the check itself.
    let space = Space {
        faults: (0, 0),
        ..Space::default()
    };
    let search = Search::new(space, vec![Property::Canary]);
    assert_eq!(first_falsifying_seed(&search, 200), None);
}
