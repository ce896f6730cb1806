//! The deterministic simulated network bitsfarm's farm runs on.
//!
//! One current-thread tokio runtime per run with a paused clock: virtual time jumps to the next
//! timer whenever every task is idle, so days of farm time take milliseconds. Connections are
//! in-memory [`pipe`]s with per-link latency, backpressure, reset and silence; the [`net`] gives
//! hosts names, balances shared addresses per connection, crashes hosts and partitions them.
//! Unmodified hyper 1.x runs over it through the transport seam.
//!
//! **Invariants.** Nothing here reads the OS clock or OS randomness; iteration is over ordered
//! collections only; a crash breaks connections synchronously, never through `Drop`.

pub mod net;
pub mod panics;
pub mod pipe;
pub mod shared;

use std::{future::Future, time::Duration};

pub use net::{CrashKind, Net, NetConfig, Policy, SimConnect, SimListen};
pub use panics::{Panics, capture};

/// Runs `fut` on a fresh current-thread runtime with a paused clock, bounded by a virtual
/// `deadline` (so a run whose tasks all wait on something other than a timer still ends).
/// `None` when the deadline passed first.
pub fn run<F: Future>(deadline: Duration, fut: F) -> Option<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime builds");
    rt.block_on(async { tokio::time::timeout(deadline, fut).await.ok() })
}
