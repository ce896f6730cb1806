//! What only real-socket modes need: an entropy seed and a wall-clock base for timestamps.
//! Simulations never call these.

use std::time::{SystemTime, UNIX_EPOCH};

use probe::Clock;

/// Milliseconds since the Unix epoch, now (live mode only).
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A clock whose timestamps are wall-clock milliseconds, so state on disk stays meaningful
/// across restarts (live mode only).
pub fn clock() -> Clock {
    Clock::new(tokio::time::Instant::now(), wall_ms())
}

/// A seed for session ids that differs between runs (live mode only): wall-clock nanoseconds
/// mixed with the process id.
pub fn entropy_seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32) ^ 0x9E37_79B9_7F4A_7C15
}
