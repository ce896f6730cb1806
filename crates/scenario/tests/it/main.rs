//! Scenario engine tests: shipped scenarios, determinism, fault mechanics, loading.

mod chains;
mod checker;
mod determinism;
mod faults;
mod hardening;
mod loading;
mod rates;
mod shipped;
mod storage;

use scenario::{Scenario, check::summarize, farm, summary::Summary};

/// Runs a scenario once and summarises it.
pub fn run(s: &Scenario, seed: u64) -> Summary {
    let result = farm::run(s, seed, None);
    summarize(s, seed, &result, format!("test {} --seed {seed}", s.name))
}

/// Loads scenario text (panics on a load error: test inputs are valid).
pub fn scenario(text: &str) -> Scenario {
    scenario::load_str(text, "test.toml", "test").unwrap_or_else(|e| panic!("{e}"))
}

/// A shipped scenario by name.
pub fn shipped(name: &str) -> Scenario {
    let text = scenario::catalog::get(name).unwrap_or_else(|| panic!("no shipped scenario {name}"));
    scenario::load_str(text, name, name).unwrap()
}
