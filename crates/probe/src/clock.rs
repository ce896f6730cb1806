//! Milliseconds since an epoch, read from tokio's clock.

use tokio::time::Instant;

/// Turns tokio time into milliseconds since an epoch.
///
/// In a simulation the epoch is the start of the run and `base_ms` is 0, so every timestamp is
/// virtual. On real sockets the binary sets `base_ms` to the wall-clock milliseconds at start,
/// so timestamps written to disk stay meaningful across process restarts.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    epoch: Instant,
    base_ms: u64,
}

impl Clock {
    /// A clock whose `now_ms()` is `base_ms` at `epoch`.
    pub fn new(epoch: Instant, base_ms: u64) -> Clock {
        Clock { epoch, base_ms }
    }

    /// A clock starting at 0 now.
    pub fn starting_now() -> Clock {
        Clock::new(Instant::now(), 0)
    }

    /// Milliseconds since the epoch (plus the base).
    pub fn now_ms(&self) -> u64 {
        let elapsed = Instant::now().saturating_duration_since(self.epoch);
        self.base_ms + u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
    }

    /// The tokio instant of the epoch.
    pub fn epoch(&self) -> Instant {
        self.epoch
    }
}

/// The longest duration any timer of bitsfarm's runs: 100 years. Timeouts from flags, scenario
/// files and servers (`BITS-Host-Id-Fallback-Timeout`) are capped to it, so adding one to an
/// instant can never overflow; a timer that long never fires in practice ("never").
pub const LONGEST_S: u64 = 100 * 365 * 86_400;

/// `s` seconds as a [`std::time::Duration`], capped at [`LONGEST_S`].
pub fn secs(s: u64) -> std::time::Duration {
    std::time::Duration::from_secs(s.min(LONGEST_S))
}
