//! Client integration tests over real loopback TCP, on tokio's paused clock where timers matter.

mod conformance;
mod farm;
mod hostile;
mod property;
mod support;
