//! The seam between bitsfarm's actors (server node, backend, client) and whatever runs them.
//!
//! Actors never name the simulator. They report what they do as typed [`Event`]s and ask at
//! named [`FaultPoint`]s what to do next, both through one small trait, [`Probe`]. With
//! [`NoProbe`] (what `bitsfarm serve` and `bitsfarm upload` use) both cost one virtual call and
//! do nothing. The scenario engine implements [`Probe`] to record the event log and to inject
//! faults: a rule sees a [`FaultCtx`] and returns a [`Verdict`], in the spirit of turmoil's
//! `Rule::on_packet`.
//!
//! Time comes from tokio (`tokio::time`), which a simulation pauses and auto-advances; [`Clock`]
//! turns it into milliseconds since an epoch the caller chooses.

pub mod clock;
pub mod event;
pub mod fault;
pub mod recorder;

pub use clock::Clock;
pub use event::{CrashKind, Event, JobState};
pub use fault::{FaultCtx, FaultPoint, Verdict};
pub use recorder::Recorder;

use std::sync::Arc;

/// Receives an actor's events and answers its fault points.
///
/// Implementations must be cheap when nothing is installed: the node calls [`Probe::fault`] on
/// every protocol step.
pub trait Probe: Send + Sync + 'static {
    /// Records one event. The probe stamps the time itself.
    fn event(&self, event: Event);

    /// Whether [`Probe::event`] keeps anything; actors skip building events when it does not.
    fn records(&self) -> bool {
        true
    }

    /// Decides what the actor does at a fault point.
    fn fault(&self, ctx: &FaultCtx<'_>) -> Verdict;
}

/// A probe that records nothing and never injects a fault.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProbe;

impl Probe for NoProbe {
    fn event(&self, _event: Event) {}

    fn records(&self) -> bool {
        false
    }

    fn fault(&self, _ctx: &FaultCtx<'_>) -> Verdict {
        Verdict::Continue
    }
}

/// A shared probe handle, as actors hold it.
pub type SharedProbe = Arc<dyn Probe>;

/// Records the event `make` builds, building it only if the probe records events.
pub fn emit(probe: &dyn Probe, make: impl FnOnce() -> Event) {
    if probe.records() {
        probe.event(make());
    }
}

/// A [`SharedProbe`] that does nothing.
pub fn none() -> SharedProbe {
    Arc::new(NoProbe)
}
