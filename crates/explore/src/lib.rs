//! Searching for duplicate chains nobody wrote down: generated scenarios ([`knobs`] drawn from
//! a [`space::Space`], swarm-style), the properties every run must satisfy ([`property`]), and
//! shrinking to a minimal scenario ([`shrink`]). The same generator and shrinker back the
//! proptest suite and `bitsfarm explore`.
//!
//! **Invariant:** a generated scenario is a plain [`scenario::Scenario`]: a failure is saved as
//! a TOML file that `bitsfarm scenario` replays exactly.

pub mod campaign;
pub mod knobs;
pub mod property;
pub mod search;
pub mod shrink;
pub mod space;

pub use knobs::{Knobs, generate};
pub use property::{Outcome, Property};
pub use search::{Search, Verdicts, shrink_failure};
pub use space::Space;

/// The TOML file that replays a failing run, with a header saying what failed. Its `[expect]`
/// table states the property where a metric can (the canary's "no duplicate", one delivery per
/// file without faults, ...), so replaying it exits 1 while the failure is there; the built-in
/// invariants (no loss, integrity, explained duplicates, one effect per transaction) need none.
pub fn found_file(property: Property, knobs: &Knobs, why: &str, name: &str) -> String {
    let mut sc = knobs.scenario(name);
    sc.expect = property.expectations();
    let mut out = String::new();
    out.push_str(&format!(
        "# Found by bitsfarm explore: property {} failed.\n",
        property.name()
    ));
    out.push_str(&format!("# {}\n", property.describe()));
    for line in why.lines() {
        out.push_str(&format!("#   {line}\n"));
    }
    out.push_str(&format!(
        "# Replay: bitsfarm scenario scenarios/found/{name}.toml\n"
    ));
    if let Some(how) = property.replay_note() {
        out.push_str(&format!("# {how}\n"));
    }
    out.push('\n');
    out.push_str(&toml::to_string(&sc).expect("scenarios serialize"));
    out
}
