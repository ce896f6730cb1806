//! One proptest per property, each over scenarios focused on the property's domain. A failure
//! shrinks to a minimal scenario; the message carries it as a TOML file (also written under
//! the target directory) and the command that replays it.

use explore::{Knobs, Property, Space, property, shrink::KnobsStrategy};
use proptest::{prelude::*, test_runner::TestCaseError};

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(4096);
    ProptestConfig {
        cases,
        max_shrink_iters: 2000,
        ..ProptestConfig::default()
    }
}

/// Generated knobs in `p`'s domain.
fn knobs_for(p: Property) -> impl Strategy<Value = Knobs> {
    KnobsStrategy::new(Space::default()).prop_map(move |k| p.focus(k))
}

/// Runs `k` and checks `p`, with the replayable scenario in the failure message.
fn holds(p: Property, k: &Knobs) -> Result<(), TestCaseError> {
    prop_assert!(
        p.applies(k),
        "focus put the knobs outside {}'s domain: {k:?}",
        p.name()
    );
    let outcome = property::run(k, p == Property::Determinism);
    // Every run of every property's suite must also be free of panics: a panicking run shows
    // nothing about the property.
    let checked = Property::NoPanics
        .check(&outcome)
        .and_then(|()| p.check(&outcome));
    match checked {
        Ok(()) => Ok(()),
        Err(why) => {
            let name = format!("{}-{}", p.name(), k.seed);
            let text = explore::found_file(p, k, &why, &name);
            let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("found");
            let path = dir.join(format!("{name}.toml"));
            let saved = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, &text));
            let replay = match saved {
                Ok(()) => format!("replay: cargo run --release -- scenario {}", path.display()),
                Err(e) => format!(
                    "(could not save {}: {e}; save the TOML above and replay it with `bitsfarm scenario`)",
                    path.display()
                ),
            };
            Err(TestCaseError::fail(format!(
                "{} failed: {why}\n\n{text}\n{replay}",
                p.name()
            )))
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn no_loss(k in knobs_for(Property::NoLoss)) {
        holds(Property::NoLoss, &k)?;
    }

    #[test]
    fn integrity(k in knobs_for(Property::Integrity)) {
        holds(Property::Integrity, &k)?;
    }

    #[test]
    fn dedupe_gives_one_effect(k in knobs_for(Property::DedupeOneEffect)) {
        holds(Property::DedupeOneEffect, &k)?;
    }

    #[test]
    fn no_faults_one_delivery(k in knobs_for(Property::NoFaultsOneDelivery)) {
        holds(Property::NoFaultsOneDelivery, &k)?;
    }

    #[test]
    fn hostid_durable_resumes(k in knobs_for(Property::HostIdDurableResumes)) {
        holds(Property::HostIdDurableResumes, &k)?;
    }

    #[test]
    fn duplicates_are_explained(k in knobs_for(Property::DuplicatesExplained)) {
        holds(Property::DuplicatesExplained, &k)?;
    }

    #[test]
    fn liveness(k in knobs_for(Property::Liveness)) {
        holds(Property::Liveness, &k)?;
    }

    #[test]
    fn no_needless_give_up(k in knobs_for(Property::NoNeedlessGiveUp)) {
        holds(Property::NoNeedlessGiveUp, &k)?;
    }

    #[test]
    fn determinism(k in knobs_for(Property::Determinism)) {
        holds(Property::Determinism, &k)?;
    }
}

#[test]
fn focus_moves_knobs_into_each_domain() {
    for p in Property::ALL {
        for seed in 0..200 {
            let k = p.focus(explore::generate(seed, &Space::default()));
            assert!(k.is_consistent(), "{p:?} seed {seed}");
            assert!(
                p.applies(&k),
                "{p:?} does not apply to its focused knobs (seed {seed}): {k:?}"
            );
        }
    }
}

#[test]
fn the_hostid_domain_keeps_outages() {
    // Focusing must not strip every fault, or the property says nothing about outages.
    let with_outages = (0..200)
        .map(|s| Property::HostIdDurableResumes.focus(explore::generate(s, &Space::default())))
        .filter(|k| !k.faults.is_empty())
        .count();
    assert!(
        with_outages >= 50,
        "only {with_outages} of 200 focused scenarios have a fault"
    );
}

#[test]
fn a_run_in_which_anything_panicked_fails_no_panics() {
    // Audit D12: the explorer counts a panicking run as a failure, never as a pass.
    let text =
        "[clients]\nretry_delay_s = 5\n[[fault]]\npoint = \"after-forward\"\naction = \"panic\"\n";
    let sc = scenario::load_str(text, "panicky.toml", "panicky").unwrap();
    let result = scenario::farm::run(&sc, 1, None);
    let outcome = property::Outcome {
        knobs: explore::generate(0, &Space::default()),
        summary: scenario::check::summarize(&sc, 1, &result, String::new()),
        jobs: Vec::new(),
        faults_end_ms: 0,
        replay_hash: None,
        unexcused_duplicates: Vec::new(),
    };
    let why = Property::NoPanics.check(&outcome).unwrap_err();
    assert!(why.contains("1 panic(s)"), "{why}");
    assert!(Property::NoPanics.applies(&outcome.knobs));
}
