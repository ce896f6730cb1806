//! Named fault points and the verdicts a probe can return at them.

use std::time::Duration;

use protocol::PacketType;
use serde::{Deserialize, Serialize};

/// A protocol step at which the harness may inject a fault.
///
/// The names are part of the scenario-file format (`point = "after-forward"`).
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
#[serde(rename_all = "kebab-case")]
pub enum FaultPoint {
    /// Node: a request arrived and was parsed, before any state changed.
    Request,
    /// Node: a session was created, before its Ack is written.
    SessionCreated,
    /// Node: a fragment was stored, before its Ack is written (not the final fragment of a
    /// notified upload: see `BeforeForward` / `AfterForward`).
    FragmentStored,
    /// Node: the upload is complete and the node is about to notify the server application
    /// (or, with notification type 0, to commit the file).
    BeforeForward,
    /// Node: the server application accepted the upload (or the file was committed), and the
    /// node has not yet recorded that (`NotifyCache`). A crash here is the seed document's
    /// "terminates after the file is processed but before the acknowledgment is sent": a node
    /// that comes back with durable state forwards the file again when the client retries.
    AfterForward,
    /// Node: the final fragment's Ack is about to be written, the application's answer
    /// recorded (`NotifyCache`). A durable node that crashes here and comes back replays the
    /// cached Ack to the retried final fragment instead of forwarding again.
    FinalAckReady,
    /// Node: any Ack is about to be returned to the client ("mid-reply"), every state change
    /// already recorded.
    AckReady,
    /// Node: Close-Session released the session, before its Ack is written.
    SessionClosed,
    /// Backend: a notification arrived, before the backend looks at it.
    NotificationReceived,
    /// Backend: the delivery and its effect are recorded, the answer is about to be written.
    EffectRecorded,
    /// Node: a write to its storage (session state, entity bytes, reply, placement, removal)
    /// is about to happen. `fail` (and `io-error`) make the write fail with an I/O error; a
    /// failed append may leave the first half of its bytes on the disk (a torn write).
    /// (Last in the enum: event-log hashes hash a point by its position.)
    StorageWrite,
    /// Node: a read of its storage (session state, entity bytes, reply, a destination check)
    /// is about to happen; `io-error` makes it fail.
    StorageRead,
}

impl FaultPoint {
    /// Every fault point.
    pub const ALL: [FaultPoint; 12] = [
        FaultPoint::Request,
        FaultPoint::SessionCreated,
        FaultPoint::FragmentStored,
        FaultPoint::BeforeForward,
        FaultPoint::AfterForward,
        FaultPoint::FinalAckReady,
        FaultPoint::AckReady,
        FaultPoint::SessionClosed,
        FaultPoint::StorageWrite,
        FaultPoint::StorageRead,
        FaultPoint::NotificationReceived,
        FaultPoint::EffectRecorded,
    ];

    /// The scenario-file name (`after-forward`).
    pub fn name(self) -> &'static str {
        match self {
            FaultPoint::Request => "request",
            FaultPoint::SessionCreated => "session-created",
            FaultPoint::FragmentStored => "fragment-stored",
            FaultPoint::BeforeForward => "before-forward",
            FaultPoint::AfterForward => "after-forward",
            FaultPoint::FinalAckReady => "final-ack-ready",
            FaultPoint::AckReady => "ack-ready",
            FaultPoint::SessionClosed => "session-closed",
            FaultPoint::StorageWrite => "storage-write",
            FaultPoint::StorageRead => "storage-read",
            FaultPoint::NotificationReceived => "notification-received",
            FaultPoint::EffectRecorded => "effect-recorded",
        }
    }

    /// Whether the point is on the backend (the others are on a node).
    pub fn is_backend(self) -> bool {
        matches!(
            self,
            FaultPoint::NotificationReceived | FaultPoint::EffectRecorded
        )
    }
}

impl std::fmt::Display for FaultPoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What the actor knows at a fault point.
#[derive(Debug, Clone, Copy)]
pub struct FaultCtx<'a> {
    /// The point.
    pub point: FaultPoint,
    /// The actor's name (`node-2`, `backend`).
    pub actor: &'a str,
    /// The connection the current request arrived on, as numbered by the listener.
    pub conn: u64,
    /// The packet being handled (node points).
    pub packet: Option<PacketType>,
    /// The BITS session, when known.
    pub session: Option<&'a str>,
    /// The file (the upload's URL path), when known.
    pub file: Option<&'a str>,
    /// Bytes of the request's body, when known (a fragment's `Content-Length`, at `request`).
    pub len: Option<u64>,
}

/// What the actor does after a fault point.
///
/// Side effects that are not the actor's own (crash the node, cut a connection, partition) are
/// carried out by the probe itself; the actor then simply continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Carry on.
    Continue,
    /// Sleep this long (virtual time in a simulation), then carry on.
    Delay(Duration),
    /// Answer the current request with this HTTP status instead of carrying on. A node answers
    /// with an error Ack (`E_FAIL`, context 0x5); the backend answers the notification with the
    /// status (context 0x7 on the client's side).
    Fail(u16),
    /// Like [`Verdict::Fail`], with this `BITS-Error-Code` in the node's Ack (an unusual pair
    /// of status and code, such as 413 with `BG_E_TOO_LARGE`).
    FailWith {
        /// The HTTP status.
        status: u16,
        /// The HRESULT.
        code: u32,
    },
    /// Answer with a plain HTTP error page, no BITS Ack: what a proxy or load balancer in front
    /// of the node sends. Honoured where a request enters and leaves a node (`request`,
    /// `ack-ready`); elsewhere, and on the backend, it acts as [`Verdict::Fail`].
    Page(u16),
    /// The disk is full: a storage write that adds bytes fails with `StorageFull` (removals
    /// still work). Only at `storage-write`; elsewhere it acts as [`Verdict::Continue`].
    DiskFull,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_serde_spelling() {
        for p in FaultPoint::ALL {
            let json = format!("\"{}\"", p.name());
            assert_eq!(serde_json::from_str::<FaultPoint>(&json).unwrap(), p);
        }
    }
}
