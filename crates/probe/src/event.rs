//! Typed events: everything an actor or the harness does that a report may need.
//!
//! Reports, the ledger's causal chains and the determinism oracle are built from these events,
//! never from log text. Each variant serializes as a JSON object tagged by `type`
//! (`{"type":"forwarded","node":"node-2",...}`); the envelope with time and sequence number is
//! added by whoever records them.

use protocol::PacketType;
use serde::{Deserialize, Serialize};

use crate::FaultPoint;

/// The Windows BITS job states (`BG_JOB_STATE_*`) an upload job moves through.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Created, not started.
    Queued,
    /// Opening a connection / creating a session.
    Connecting,
    /// Sending fragments.
    Transferring,
    /// The final fragment was acknowledged (and the reply fetched, for upload-reply).
    Transferred,
    /// Close-Session done: the job is finished.
    Acknowledged,
    /// A transient error; the job retries after the retry delay.
    TransientError,
    /// A fatal error; the job stops.
    Error,
    /// Cancelled by its owner.
    Cancelled,
}

impl Event {
    /// The server node that emitted the event, for node events.
    pub fn node(&self) -> Option<&str> {
        match self {
            Event::NodeStarted { node, .. }
            | Event::SessionCreated { node, .. }
            | Event::FragmentAcked { node, .. }
            | Event::SessionNotFound { node, .. }
            | Event::RequestRejected { node, .. }
            | Event::Forwarded { node, .. }
            | Event::AppAnswered { node, .. }
            | Event::Committed { node, .. }
            | Event::CachedAckReplayed { node, .. }
            | Event::SessionClosed { node, .. }
            | Event::SessionCancelled { node, .. }
            | Event::SessionExpired { node, .. } => Some(node),
            _ => None,
        }
    }

    /// The event's `type` tag (`forwarded`).
    pub fn kind(&self) -> &'static str {
        match self {
            Event::NodeStarted { .. } => "node_started",
            Event::SessionCreated { .. } => "session_created",
            Event::FragmentAcked { .. } => "fragment_acked",
            Event::SessionNotFound { .. } => "session_not_found",
            Event::RequestRejected { .. } => "request_rejected",
            Event::Forwarded { .. } => "forwarded",
            Event::AppAnswered { .. } => "app_answered",
            Event::Committed { .. } => "committed",
            Event::CachedAckReplayed { .. } => "cached_ack_replayed",
            Event::SessionClosed { .. } => "session_closed",
            Event::SessionCancelled { .. } => "session_cancelled",
            Event::SessionExpired { .. } => "session_expired",
            Event::Delivered { .. } => "delivered",
            Event::JobState { .. } => "job_state",
            Event::ClientAck { .. } => "client_ack",
            Event::ClientFailure { .. } => "client_failure",
            Event::RetryScheduled { .. } => "retry_scheduled",
            Event::HostIdLearned { .. } => "host_id_learned",
            Event::HostFallback { .. } => "host_fallback",
            Event::UploadRestart { .. } => "upload_restart",
            Event::Connected { .. } => "connected",
            Event::ConnectFailed { .. } => "connect_failed",
            Event::ConnectionCut { .. } => "connection_cut",
            Event::Crashed { .. } => "crashed",
            Event::Restarted { .. } => "restarted",
            Event::Partitioned { .. } => "partitioned",
            Event::Healed { .. } => "healed",
            Event::HostIdToggled { .. } => "host_id_toggled",
            Event::FaultFired { .. } => "fault_fired",
            Event::FailureStruck { .. } => "failure_struck",
        }
    }
}

impl JobState {
    /// The state's name (`transient_error`).
    pub fn name(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Connecting => "connecting",
            JobState::Transferring => "transferring",
            JobState::Transferred => "transferred",
            JobState::Acknowledged => "acknowledged",
            JobState::TransientError => "transient_error",
            JobState::Error => "error",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Whether the job can no longer change state.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Acknowledged | JobState::Error | JobState::Cancelled
        )
    }
}

/// How a host goes down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CrashKind {
    /// Process killed: peers see connections reset; connects are refused.
    Kill,
    /// Power cut: peers see silence and learn only from their own timeouts; connects go
    /// unanswered.
    PowerCut,
}

impl CrashKind {
    /// `kill` / `power-cut`.
    pub fn name(self) -> &'static str {
        match self {
            CrashKind::Kill => "kill",
            CrashKind::PowerCut => "power-cut",
        }
    }
}

impl std::fmt::Display for CrashKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A crash kind hashes as its name, as it did when it was a string: event logs (and the
/// determinism oracle's hashes) are the same as before it was typed.
impl std::hash::Hash for CrashKind {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name().hash(state);
    }
}

/// One thing that happened. `node`, `job` and other names are the actors' own names; `file` is
/// the upload's URL path (`/upload/c00-f000.bin`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    // ---- server node -------------------------------------------------------------------------
    /// A node started serving; `sessions` were recovered from durable storage.
    NodeStarted {
        /// Node name.
        node: String,
        /// Sessions found in storage at boot.
        sessions: u64,
    },
    /// A Create-Session succeeded.
    SessionCreated {
        /// Node name.
        node: String,
        /// New session id.
        session: String,
        /// Upload path.
        file: String,
    },
    /// A Fragment was answered 200 or 416.
    FragmentAcked {
        /// Node name.
        node: String,
        /// Session id.
        session: String,
        /// Upload path.
        file: String,
        /// First byte of the fragment.
        start: u64,
        /// One past its last byte.
        end: u64,
        /// Upload size.
        total: u64,
        /// 200 or 416.
        status: u16,
        /// `BITS-Received-Content-Range` sent back.
        received: u64,
    },
    /// A request named a session this node does not know (`0x8020001F`).
    SessionNotFound {
        /// Node name.
        node: String,
        /// The unknown session id.
        session: String,
        /// The packet that named it.
        packet: PacketType,
    },
    /// A request was answered with an error Ack for its form or the node's policy (400, 403,
    /// 413, 501, ...), not for an unknown session.
    RequestRejected {
        /// Node name.
        node: String,
        /// The packet, when it could be read.
        packet: Option<PacketType>,
        /// HTTP status of the Ack.
        status: u16,
        /// `BITS-Error-Code` of the Ack.
        code: String,
        /// Why, in words.
        reason: String,
    },
    /// The node sent the completed upload to the server application.
    Forwarded {
        /// Node name.
        node: String,
        /// Session id.
        session: String,
        /// Upload path.
        file: String,
        /// Upload size.
        bytes: u64,
    },
    /// The server application's answer (or the failure to get one).
    AppAnswered {
        /// Node name.
        node: String,
        /// Session id.
        session: String,
        /// Upload path.
        file: String,
        /// The application's HTTP status, when it answered.
        status: Option<u16>,
        /// What went wrong when it did not answer (timeout, connection error).
        error: Option<String>,
    },
    /// The node placed the upload at its destination (notification type 0, or the application
    /// asked for a copy).
    Committed {
        /// Node name.
        node: String,
        /// Session id.
        session: String,
        /// Upload path.
        file: String,
    },
    /// A re-sent final fragment got the cached Ack; the application was not notified again.
    CachedAckReplayed {
        /// Node name.
        node: String,
        /// Session id.
        session: String,
        /// Upload path.
        file: String,
    },
    /// Close-Session released a session.
    SessionClosed {
        /// Node name.
        node: String,
        /// Session id.
        session: String,
        /// Upload path.
        file: String,
        /// Whether the upload was complete (an incomplete one is deleted).
        complete: bool,
    },
    /// Cancel-Session released a session.
    SessionCancelled {
        /// Node name.
        node: String,
        /// Session id.
        session: String,
        /// Upload path.
        file: String,
    },
    /// The cleanup task deleted a session idle longer than the session timeout.
    SessionExpired {
        /// Node name.
        node: String,
        /// Session id.
        session: String,
        /// Upload path.
        file: String,
    },

    // ---- server application ------------------------------------------------------------------
    /// The server application received a file.
    Delivered {
        /// Upload path (from `BITS-Original-Request-URL`).
        file: String,
        /// Transaction id read from the data.
        txid: Option<String>,
        /// Delivering node.
        node: String,
        /// BITS session id, when the notification tells it.
        session: Option<String>,
        /// Bytes received.
        len: u64,
        /// xxh3-64 of the bytes.
        hash: u64,
        /// Whether this delivery had an effect (false: deduplicated by transaction id).
        effect: bool,
    },

    // ---- client ------------------------------------------------------------------------------
    /// A job changed state.
    JobState {
        /// Job name.
        job: String,
        /// Upload path.
        file: String,
        /// New state.
        state: JobState,
    },
    /// The client read an Ack.
    ClientAck {
        /// Job name.
        job: String,
        /// Address the request went to.
        target: String,
        /// The request's packet.
        packet: PacketType,
        /// HTTP status.
        status: u16,
        /// Error code, when the Ack carried one.
        code: Option<String>,
        /// `BITS-Received-Content-Range`, when present.
        received: Option<u64>,
    },
    /// A request failed without an Ack (connect error, reset, timeout, not a BITS response).
    ClientFailure {
        /// Job name.
        job: String,
        /// Address the request went to.
        target: String,
        /// The request's packet.
        packet: PacketType,
        /// What happened.
        error: String,
    },
    /// The job will retry after this delay.
    RetryScheduled {
        /// Job name.
        job: String,
        /// Delay, milliseconds.
        delay_ms: u64,
        /// Where the retry will go.
        target: String,
    },
    /// A Create-Session Ack named a `BITS-Host-Id`.
    HostIdLearned {
        /// Job name.
        job: String,
        /// The Host-Id.
        host_id: String,
        /// `BITS-Host-Id-Fallback-Timeout`, when sent.
        fallback_timeout_s: Option<u64>,
    },
    /// The Host-Id fallback timer expired; the job returns to the original address.
    HostFallback {
        /// Job name.
        job: String,
        /// The Host-Id given up on.
        from: String,
        /// The original address.
        to: String,
    },
    /// The server lost the session; the job starts over with Create-Session from byte 0.
    UploadRestart {
        /// Job name.
        job: String,
        /// Upload path.
        file: String,
        /// The lost session.
        session: String,
        /// Bytes the server had acknowledged in the lost session.
        acknowledged: u64,
    },

    // ---- harness -----------------------------------------------------------------------------
    /// A connection was opened (`via` is the shared address when the balancer chose `to`).
    Connected {
        /// Connecting party.
        from: String,
        /// Accepting party.
        to: String,
        /// The shared address dialled, if any.
        via: Option<String>,
        /// Connection number.
        conn: u64,
    },
    /// A connection attempt failed.
    ConnectFailed {
        /// Connecting party.
        from: String,
        /// Address dialled.
        to: String,
        /// Why.
        reason: String,
    },
    /// A connection was cut by a fault.
    ConnectionCut {
        /// Connection number.
        conn: u64,
        /// Why.
        reason: String,
    },
    /// A node (or the backend) crashed.
    Crashed {
        /// The party.
        host: String,
        /// How it went down.
        kind: CrashKind,
    },
    /// A crashed party started again.
    Restarted {
        /// The party.
        host: String,
        /// Whether its session state survived.
        durable: bool,
    },
    /// Traffic between two parties stopped.
    Partitioned {
        /// One side.
        a: String,
        /// The other side.
        b: String,
    },
    /// Traffic between two parties resumed.
    Healed {
        /// One side.
        a: String,
        /// The other side.
        b: String,
    },
    /// `BITSHostId` was switched on or off on every node.
    HostIdToggled {
        /// Whether nodes now advertise a Host-Id.
        enabled: bool,
    },
    /// A fault rule fired.
    FaultFired {
        /// Index of the rule in the scenario.
        rule: usize,
        /// The fault point, for point rules.
        point: Option<FaultPoint>,
        /// The actor at the point, or the rule's target.
        actor: String,
        /// What the rule did, in words.
        action: String,
        /// The session at the point, when known.
        session: Option<String>,
        /// The file at the point, when known.
        file: Option<String>,
    },
    /// A failure process (`[[failure]]`: a rate, not a script) struck.
    FailureStruck {
        /// Index of the process in the scenario's `[[failure]]` list.
        process: usize,
        /// Its kind (`node-crash`, `app-slow`, `pool-recycle`, ...).
        kind: String,
        /// Whom it struck (`node-2`, `backend`).
        target: String,
        /// What it did, in words.
        what: String,
        /// The session at hand, when known.
        session: Option<String>,
        /// The file at hand, when known.
        file: Option<String>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_with_a_type_tag() {
        let e = Event::ClientAck {
            job: "c0".into(),
            target: "farm".into(),
            packet: PacketType::CreateSession,
            status: 200,
            code: None,
            received: None,
        };
        let json = serde_json::to_string(&e).unwrap();
        assert!(
            json.starts_with(r#"{"type":"client_ack","job":"c0""#),
            "{json}"
        );
        assert!(json.contains(r#""packet":"Create-Session""#), "{json}");
        assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), e);
        assert_eq!(e.kind(), "client_ack");
    }
}
