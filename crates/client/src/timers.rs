//! A job's timers, in one table: the retry delay (fixed or doubling), the no-progress timeout
//! and the Host-Id fallback timer. Pure: the time is passed in, the engine sleeps.

use std::time::Duration;

use tokio::time::Instant;

use crate::config::{Growth, JobConfig};

/// The Host-Id fallback timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fallback {
    /// Not running.
    Idle,
    /// Running; `None` is infinite (no `BITS-Host-Id-Fallback-Timeout` was sent).
    Running(Option<Instant>),
}

/// What to do after a transient error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Give up at once: retries are off (the reason).
    NoRetries(&'static str),
    /// Wait until the no-progress timeout expires, then give up.
    GiveUpAt(Instant),
    /// Retry after `delay`; `fall_back` when the fallback timer expires before then (the retry
    /// goes to the original address).
    After {
        /// The retry delay.
        delay: Duration,
        /// Whether the retry goes back to the original address.
        fall_back: bool,
    },
}

/// The timer table.
#[derive(Debug)]
pub(crate) struct Timers {
    /// The first transient error since the last progress: the no-progress timeout runs from it.
    first_error: Option<Instant>,
    /// Transient errors since the last progress (the doubling retry delay grows with them).
    consecutive_errors: u32,
    /// The Host-Id fallback timer.
    fallback: Fallback,
    /// `BITS-Host-Id-Fallback-Timeout` of the Host-Id in use; `None`: infinite.
    fallback_timeout: Option<Duration>,
}

impl Timers {
    /// No timer running.
    pub fn new() -> Timers {
        Timers {
            first_error: None,
            consecutive_errors: 0,
            fallback: Fallback::Idle,
            fallback_timeout: None,
        }
    }

    /// The server acknowledged new bytes: the no-progress timeout and the retry growth start
    /// over.
    pub fn on_progress(&mut self) {
        self.first_error = None;
        self.consecutive_errors = 0;
    }

    /// A Host-Id was learned, with its fallback timeout (seconds; `None`: infinite).
    pub fn on_host_id(&mut self, timeout_s: Option<u64>) {
        self.fallback_timeout = timeout_s.map(probe::clock::secs);
        self.fallback = Fallback::Idle;
    }

    /// A connection to the Host-Id succeeded, or the job fell back: the fallback timer stops.
    pub fn stop_fallback(&mut self) {
        self.fallback = Fallback::Idle;
    }

    /// A transient error at `now`: what the job does next. `host_id` says whether a Host-Id
    /// is in use (its fallback timer starts with the first error).
    pub fn on_transient(&mut self, now: Instant, cfg: &JobConfig, host_id: bool) -> Retry {
        self.consecutive_errors += 1;
        let npt = probe::clock::secs(cfg.no_progress_timeout_s);
        if npt.is_zero() {
            return Retry::NoRetries("no-progress timeout is 0: no retries");
        }
        let first = *self.first_error.get_or_insert(now);
        if host_id && self.fallback == Fallback::Idle {
            self.fallback = Fallback::Running(self.fallback_timeout.map(|t| now + t));
        }
        let delay = self.retry_delay(cfg);
        if delay > npt {
            return Retry::NoRetries("retry delay exceeds the no-progress timeout");
        }
        let give_up = first + npt;
        if now + delay > give_up {
            return Retry::GiveUpAt(give_up);
        }
        let fall_back = matches!(self.fallback, Fallback::Running(Some(t)) if now + delay >= t);
        Retry::After { delay, fall_back }
    }

    /// Whether the fallback timer has expired at `now`.
    pub fn fallback_expired(&self, now: Instant) -> bool {
        matches!(self.fallback, Fallback::Running(Some(t)) if now >= t)
    }

    /// The retry delay after the errors so far.
    fn retry_delay(&self, cfg: &JobConfig) -> Duration {
        let min = cfg.effective_retry_delay_s();
        let secs = match cfg.retry_growth {
            Growth::Fixed => min,
            Growth::Doubling { max_delay_s } => {
                let shift = self.consecutive_errors.saturating_sub(1).min(32);
                min.saturating_mul(1u64 << shift).min(max_delay_s.max(min))
            }
        };
        probe::clock::secs(secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(retry_s: u64, npt_s: u64, growth: Growth) -> JobConfig {
        JobConfig {
            min_retry_delay_s: retry_s,
            no_progress_timeout_s: npt_s,
            retry_growth: growth,
            ..JobConfig::default()
        }
    }

    const fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn after(delay_s: u64, fall_back: bool) -> Retry {
        Retry::After {
            delay: s(delay_s),
            fall_back,
        }
    }

    #[test]
    fn retries_until_the_no_progress_timeout() {
        let t0 = Instant::now();
        let c = cfg(600, 1800, Growth::Fixed);
        let mut t = Timers::new();
        assert_eq!(t.on_transient(t0, &c, false), after(600, false));
        assert_eq!(t.on_transient(t0 + s(600), &c, false), after(600, false));
        assert_eq!(t.on_transient(t0 + s(1200), &c, false), after(600, false));
        // The next retry would start after the timeout: wait it out and give up.
        assert_eq!(
            t.on_transient(t0 + s(1201), &c, false),
            Retry::GiveUpAt(t0 + s(1800))
        );
        // Progress starts the timeout over.
        t.on_progress();
        assert_eq!(t.on_transient(t0 + s(1300), &c, false), after(600, false));
    }

    #[test]
    fn retries_off() {
        let t0 = Instant::now();
        assert_eq!(
            Timers::new().on_transient(t0, &cfg(600, 0, Growth::Fixed), false),
            Retry::NoRetries("no-progress timeout is 0: no retries")
        );
        assert_eq!(
            Timers::new().on_transient(t0, &cfg(600, 599, Growth::Fixed), false),
            Retry::NoRetries("retry delay exceeds the no-progress timeout")
        );
        // Windows' 5-second floor on the retry delay.
        assert_eq!(
            Timers::new().on_transient(t0, &cfg(1, 60, Growth::Fixed), false),
            after(5, false)
        );
    }

    #[test]
    fn doubling_delay_grows_to_its_cap_and_resets_on_progress() {
        let t0 = Instant::now();
        let c = cfg(10, 100_000, Growth::Doubling { max_delay_s: 70 });
        let mut t = Timers::new();
        let delays: Vec<u64> = (0..6)
            .map(|_| match t.on_transient(t0, &c, false) {
                Retry::After { delay, .. } => delay.as_secs(),
                r => panic!("{r:?}"),
            })
            .collect();
        assert_eq!(delays, [10, 20, 40, 70, 70, 70]);
        t.on_progress();
        assert_eq!(t.on_transient(t0, &c, false), after(10, false));
    }

    #[test]
    fn host_id_fallback_timer() {
        let t0 = Instant::now();
        let c = cfg(600, 100_000, Growth::Fixed);
        // Timeout 300 s < retry delay: the first retry already goes back to the origin.
        let mut t = Timers::new();
        t.on_host_id(Some(300));
        assert_eq!(t.on_transient(t0, &c, true), after(600, true));
        assert!(!t.fallback_expired(t0 + s(299)));
        assert!(t.fallback_expired(t0 + s(300)));
        // Timeout 1000 s: the timer runs from the first error, not from each.
        let mut t = Timers::new();
        t.on_host_id(Some(1000));
        assert_eq!(t.on_transient(t0, &c, true), after(600, false));
        assert_eq!(t.on_transient(t0 + s(600), &c, true), after(600, true));
        // Reaching the Host-Id stops the timer; the next error starts it again.
        t.stop_fallback();
        assert!(!t.fallback_expired(t0 + s(5000)));
        assert_eq!(t.on_transient(t0 + s(5000), &c, true), after(600, false));
        // No timeout sent: infinite, the job never falls back.
        let mut t = Timers::new();
        t.on_host_id(None);
        assert_eq!(t.on_transient(t0, &c, true), after(600, false));
        assert!(!t.fallback_expired(t0 + s(10_000_000)));
        // Without a Host-Id there is no timer.
        let mut t = Timers::new();
        t.on_host_id(Some(1));
        assert_eq!(t.on_transient(t0, &c, false), after(600, false));
        assert!(!t.fallback_expired(t0 + s(100)));
    }
}
