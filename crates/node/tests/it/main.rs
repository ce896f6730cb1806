//! Node integration tests over real loopback TCP (and, for timers, tokio's paused clock over
//! in-memory streams).

mod conformance;
mod hardening;
mod storage;
mod support;
mod timers;
mod upload;
