//! A BITS upload client: a job engine that behaves like the Windows BITS service.
//!
//! A [`Job`] uploads one file to one remote URL and moves through Windows' job states
//! ([`probe::JobState`]). It follows the MC-BUP client rules: Create-Session with protocol
//! negotiation, a Ping to the `BITS-Host-Id` before fragments, fragments resynchronised on
//! `BITS-Received-Content-Range` (200 and 416 alike), smaller fragments after 413, a restart from
//! byte 0 when the server lost the session, transient errors retried after the minimum retry
//! delay until the no-progress timeout, fatal errors stop the job, Close-Session and
//! Cancel-Session resent on 5xx unless the session is gone. With a Host-Id every later request
//! goes to it; when it cannot be reached the fallback timer runs and, once expired, the job
//! returns to the original address.
//!
//! **Invariants.** The client never reads the OS clock or OS randomness: time is tokio's (a
//! simulation pauses it), randomness comes from the [`Env`]'s seeded generator, connections from
//! its [`transport::Connect`]. One request is outstanding per job at any time.

pub mod classify;
pub mod config;
pub mod entity;
pub mod job;
mod state;
mod timers;

pub use config::{ConfigError, Growth, JobConfig, JobKind};
pub use entity::Entity;
pub use job::{
    ACK_BODY_LIMIT, Attempt, Env, Job, JobControl, JobError, JobReport, MAX_IDLE_ROUND_TRIPS,
    Progress,
};
pub use probe::JobState;
