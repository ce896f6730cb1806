//! A session's state machine (MC-BUP 3.2.1.4, 3.2.5.3), apart from IO.
//!
//! [`SessionRecord`] is what a node stores per session; its [`Phase`] says how far the upload
//! got. [`on_fragment`] decides what a Fragment does to a session and [`apply`] carries the
//! decision out on the record: pure functions, so each MC-BUP rule is a unit test that runs in
//! microseconds. `handler.rs` reads the body, asks, and does the IO the answer names.

use protocol::{Ack, ByteRange, ErrorContext, HResult, packet::Fragment};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The Ack a node replays when a final fragment arrives again after the application was
/// notified (MC-BUP's `NotifyCache`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedAck {
    /// `BITS-Reply-URL` of the final Ack, for upload-reply.
    pub reply_url: Option<String>,
}

/// How far a session's upload got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// `RECEIVE_FRAGMENTS`: bytes are missing.
    Receiving,
    /// `UploadComplete`: every byte is here, and the application has not accepted the upload
    /// (not yet, or it was not reached): a final fragment sent again notifies again.
    Complete,
    /// `NotifyCache`: the application accepted the upload (or the file was committed); a final
    /// fragment sent again gets this Ack replayed.
    Notified(CachedAck),
}

/// A session's state, as stored. Its text never changes once set, and is shared: a copy of the
/// record (the node reads one per request) costs no allocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StoredRecord", into = "StoredRecord")]
pub struct SessionRecord {
    /// `BITS-Session-Id`.
    pub id: Arc<str>,
    /// The upload's decoded URL path (`/upload/a.bin`): the file's identity.
    pub path: Arc<str>,
    /// The job's remote URL as the client sent it (`http://farm/upload/a.bin?x=1`).
    pub original_url: Arc<str>,
    /// The query string of the remote URL, appended to the notification URL.
    pub query: Option<Arc<str>>,
    /// `Content-Name` of the first fragment.
    pub content_name: Option<Arc<str>>,
    /// Upload size, known from the first fragment.
    pub total: Option<u64>,
    /// Bytes held: the next byte the node wants.
    pub received: u64,
    /// How far the upload got.
    pub phase: Phase,
    /// Whether the upload was placed at its destination.
    pub committed: bool,
    /// Last progress, milliseconds on the node's clock.
    pub touched_ms: u64,
}

impl SessionRecord {
    /// A session just created: nothing received.
    pub fn new(
        id: String,
        path: String,
        original_url: String,
        query: Option<String>,
        now_ms: u64,
    ) -> SessionRecord {
        SessionRecord {
            id: id.into(),
            path: path.into(),
            original_url: original_url.into(),
            query: query.map(Into::into),
            content_name: None,
            total: None,
            received: 0,
            phase: Phase::Receiving,
            committed: false,
            touched_ms: now_ms,
        }
    }

    /// What must hold of any session state: bytes only within the upload's size, a complete
    /// or notified upload holds every byte, only a notified upload is committed. Checked when
    /// state is written (a failure is a node bug: it asserts) and when it is read back (stored
    /// state that fails is corrupt: an error, never a panic).
    pub fn check(&self) -> Result<(), String> {
        match self.total {
            None if self.received > 0 => {
                return Err(format!(
                    "{} bytes held of an upload of unknown size",
                    self.received
                ));
            }
            Some(t) if self.received > t => {
                return Err(format!("{} bytes held of a {t}-byte upload", self.received));
            }
            _ => {}
        }
        if self.phase != Phase::Receiving && Some(self.received) != self.total {
            return Err(format!(
                "complete with {} of {:?} bytes",
                self.received, self.total
            ));
        }
        if self.committed && self.notified().is_none() {
            return Err("committed before the upload was recorded as notified".into());
        }
        Ok(())
    }

    /// The cached final Ack, once the application has accepted the upload.
    pub fn notified(&self) -> Option<&CachedAck> {
        match &self.phase {
            Phase::Notified(ack) => Some(ack),
            _ => None,
        }
    }
}

/// The stored layout of a [`SessionRecord`]: MC-BUP's flags as fields, so that state written
/// by earlier versions still loads.
#[derive(Serialize, Deserialize)]
struct StoredRecord {
    id: String,
    path: String,
    original_url: String,
    query: Option<String>,
    content_name: Option<String>,
    total: Option<u64>,
    received: u64,
    upload_complete: bool,
    notified: Option<CachedAck>,
    committed: bool,
    touched_ms: u64,
}

impl From<StoredRecord> for SessionRecord {
    fn from(s: StoredRecord) -> SessionRecord {
        let phase = match (s.notified, s.upload_complete) {
            (Some(ack), _) => Phase::Notified(ack),
            (None, true) => Phase::Complete,
            (None, false) => Phase::Receiving,
        };
        SessionRecord {
            id: s.id.into(),
            path: s.path.into(),
            original_url: s.original_url.into(),
            query: s.query.map(Into::into),
            content_name: s.content_name.map(Into::into),
            total: s.total,
            received: s.received,
            phase,
            committed: s.committed,
            touched_ms: s.touched_ms,
        }
    }
}

impl From<SessionRecord> for StoredRecord {
    fn from(r: SessionRecord) -> StoredRecord {
        let (upload_complete, notified) = match r.phase {
            Phase::Receiving => (false, None),
            Phase::Complete => (true, None),
            Phase::Notified(ack) => (true, Some(ack)),
        };
        StoredRecord {
            id: r.id.to_string(),
            path: r.path.to_string(),
            original_url: r.original_url.to_string(),
            query: r.query.as_deref().map(str::to_owned),
            content_name: r.content_name.as_deref().map(str::to_owned),
            total: r.total,
            received: r.received,
            upload_complete,
            notified,
            committed: r.committed,
            touched_ms: r.touched_ms,
        }
    }
}

/// The node's limits a fragment is checked against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// `BITSMaximumUploadSize`.
    pub max_upload_size: u64,
    /// Largest fragment body the node reads.
    pub max_fragment_size: u64,
    /// Most bytes all open sessions hold together.
    pub max_session_bytes: Option<u64>,
}

/// Why a fragment is refused whatever its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `Content-Range` names another total than the session's first fragment did.
    TotalDiffers,
    /// The upload is larger than `BITSMaximumUploadSize`.
    UploadTooLarge,
    /// The fragment is larger than the node reads.
    FragmentTooLarge,
    /// Open sessions hold the most bytes the node keeps.
    SessionBytesFull {
        /// The limit.
        max: u64,
    },
}

impl Refusal {
    /// The Ack that refuses, for a session holding `received` bytes.
    pub fn ack(self, id: &str, received: u64) -> Ack {
        let ack = match self {
            Refusal::TotalDiffers => Ack::invalid_arg(),
            // Never 413: that tells the client to shrink its fragments, which cannot help.
            Refusal::UploadTooLarge => {
                return Ack::error(400, HResult::TOO_LARGE, ErrorContext::REMOTE_FILE)
                    .with_session(id);
            }
            Refusal::FragmentTooLarge => Ack::error(
                413,
                HResult::from_http_status(413),
                ErrorContext::REMOTE_FILE,
            ),
            Refusal::SessionBytesFull { .. } => busy(),
        };
        ack.with_session(id).with_received(received)
    }

    /// Why, in words for the event log.
    pub fn reason(self) -> String {
        match self {
            Refusal::TotalDiffers => "Content-Range total differs from the session's".into(),
            Refusal::UploadTooLarge => "upload larger than BITSMaximumUploadSize".into(),
            Refusal::FragmentTooLarge => "fragment larger than the node accepts".into(),
            Refusal::SessionBytesFull { max } => format!(
                "open sessions hold {max} bytes, the most this node keeps (--max-session-bytes)"
            ),
        }
    }
}

/// The answer of a node at one of its limits: 503, which clients retry after their retry delay.
pub(crate) fn busy() -> Ack {
    Ack::error(
        503,
        HResult::from_http_status(503),
        ErrorContext::REMOTE_FILE,
    )
}

/// What a Fragment does to a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// The application already accepted the upload: answer with the cached final Ack.
    Replay(CachedAck),
    /// Refuse it, whatever its body.
    Refuse(Refusal),
    /// Take it (which may store nothing).
    Take(Take),
}

/// A fragment taken: what to store and how to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Take {
    /// Append the body from this offset on (the bytes before it are held already); `None`:
    /// store nothing.
    pub append_from: Option<u64>,
    /// Bytes held after the step.
    pub received: u64,
    /// The Ack's status: 200 (progress, or a final fragment to notify again) or 416 (out of
    /// sync: a gap, or nothing new; the Ack says where the node is).
    pub status: u16,
    /// Every byte is here after the step.
    pub complete: bool,
}

impl Take {
    /// Whether the application is to be notified now (`STATE_NOTIFY`).
    pub fn notifies(&self) -> bool {
        self.status == 200 && self.complete
    }
}

/// Decides what a Fragment with `range` does to the session `rec`, given the node's limits and
/// the bytes all open sessions hold (`held`).
pub(crate) fn on_fragment(
    rec: &SessionRecord,
    range: ByteRange,
    limits: &Limits,
    held: u64,
) -> Step {
    if let Phase::Notified(ack) = &rec.phase {
        return Step::Replay(ack.clone());
    }
    if rec.total.is_some_and(|t| t != range.total) {
        return Step::Refuse(Refusal::TotalDiffers);
    }
    if range.total > limits.max_upload_size {
        return Step::Refuse(Refusal::UploadTooLarge);
    }
    if range.len() > limits.max_fragment_size {
        return Step::Refuse(Refusal::FragmentTooLarge);
    }
    let new_bytes = range.end.saturating_sub(rec.received);
    if let Some(max) = limits.max_session_bytes
        && new_bytes > 0
        && held.saturating_add(new_bytes) > max
    {
        return Step::Refuse(Refusal::SessionBytesFull { max });
    }
    let held = rec.received;
    // The zero-byte upload is complete with its first (and only) fragment.
    let complete = rec.phase == Phase::Complete || (rec.total.is_none() && range.total == 0);
    let (status, append_from, received) = if range.start > held {
        // A gap: the node keeps no non-contiguous ranges.
        (416, None, held)
    } else if range.end > held {
        // Contiguous or overlapping: only the bytes past what is held are stored; held bytes
        // are never rewritten.
        (200, Some(held - range.start), range.end)
    } else if range.is_final() && complete {
        // The final fragment again, after the application was not reached: notify again.
        (200, None, held)
    } else {
        // Nothing new.
        (416, None, held)
    };
    Step::Take(Take {
        append_from,
        received,
        status,
        complete: complete || received == range.total,
    })
}

/// Carries out a taken fragment on the record (after its bytes are stored).
pub(crate) fn apply(rec: &mut SessionRecord, f: &Fragment, take: &Take, now_ms: u64) {
    if rec.total.is_none() {
        rec.total = Some(f.range.total);
        rec.content_name = f.content_name.as_deref().map(Into::into);
    }
    if take.append_from.is_some() {
        rec.received = take.received;
        rec.touched_ms = now_ms;
    }
    if take.complete && rec.phase == Phase::Receiving {
        rec.phase = Phase::Complete;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_upload_size: 1000,
        max_fragment_size: 100,
        max_session_bytes: None,
    };

    fn rec(total: Option<u64>, received: u64, phase: Phase) -> SessionRecord {
        SessionRecord {
            total,
            received,
            phase,
            ..SessionRecord::new(
                "{s}".into(),
                "/up/a".into(),
                "http://farm/up/a".into(),
                None,
                0,
            )
        }
    }

    fn range(start: u64, end: u64, total: u64) -> ByteRange {
        ByteRange { start, end, total }
    }

    fn take(status: u16, append_from: Option<u64>, received: u64, complete: bool) -> Step {
        Step::Take(Take {
            append_from,
            received,
            status,
            complete,
        })
    }

    /// MC-BUP 3.2.5.3.x, one row per rule: the session before, the fragment, the decision.
    #[test]
    fn each_fragment_rule() {
        use Phase::*;
        let cached = CachedAck {
            reply_url: Some("http://app/r".into()),
        };
        #[rustfmt::skip]
        let rows: Vec<(&str, SessionRecord, ByteRange, Step)> = vec![
            ("first fragment from zero", rec(None, 0, Receiving), range(0, 10, 30), take(200, Some(0), 10, false)),
            ("first fragment not at zero is a gap", rec(None, 0, Receiving), range(5, 10, 30), take(416, None, 0, false)),
            ("next contiguous fragment", rec(Some(30), 10, Receiving), range(10, 20, 30), take(200, Some(0), 20, false)),
            ("overlap: only new bytes are stored", rec(Some(30), 10, Receiving), range(5, 20, 30), take(200, Some(5), 20, false)),
            ("resume exactly at the held byte", rec(Some(30), 10, Receiving), range(10, 11, 30), take(200, Some(0), 11, false)),
            ("gap by one byte", rec(Some(30), 10, Receiving), range(11, 20, 30), take(416, None, 10, false)),
            ("nothing new", rec(Some(30), 10, Receiving), range(0, 10, 30), take(416, None, 10, false)),
            ("last bytes complete the upload", rec(Some(30), 20, Receiving), range(20, 30, 30), take(200, Some(0), 30, true)),
            ("final overlapping the held tail", rec(Some(30), 25, Receiving), range(20, 30, 30), take(200, Some(5), 30, true)),
            ("final again, application not reached: notify again", rec(Some(30), 30, Complete), range(20, 30, 30), take(200, None, 30, true)),
            ("non-final again after completion: nothing new", rec(Some(30), 30, Complete), range(0, 10, 30), take(416, None, 30, true)),
            ("zero-byte upload", rec(None, 0, Receiving), range(0, 0, 0), take(200, None, 0, true)),
            ("notified: cached Ack replayed", rec(Some(30), 30, Notified(cached.clone())), range(20, 30, 30), Step::Replay(cached.clone())),
            ("notified: replayed for any range", rec(Some(30), 30, Notified(cached.clone())), range(0, 10, 30), Step::Replay(cached.clone())),
            ("total differs", rec(Some(30), 10, Receiving), range(10, 20, 31), Step::Refuse(Refusal::TotalDiffers)),
            ("upload too large", rec(None, 0, Receiving), range(0, 10, 1001), Step::Refuse(Refusal::UploadTooLarge)),
            ("upload at the limit", rec(None, 0, Receiving), range(0, 10, 1000), take(200, Some(0), 10, false)),
            ("fragment too large", rec(None, 0, Receiving), range(0, 101, 1000), Step::Refuse(Refusal::FragmentTooLarge)),
            ("fragment at the limit", rec(None, 0, Receiving), range(0, 100, 1000), take(200, Some(0), 100, false)),
        ];
        for (rule, rec, range, want) in rows {
            assert_eq!(on_fragment(&rec, range, &LIMITS, 0), want, "{rule}");
        }
    }

    #[test]
    fn the_session_byte_budget_counts_only_new_bytes() {
        let limits = Limits {
            max_session_bytes: Some(100),
            ..LIMITS
        };
        let r = rec(Some(300), 50, Phase::Receiving);
        // 40 new bytes on top of 60 held elsewhere: at the limit, taken.
        assert!(matches!(
            on_fragment(&r, range(50, 90, 300), &limits, 60),
            Step::Take(_)
        ));
        // 41: over.
        assert_eq!(
            on_fragment(&r, range(50, 91, 300), &limits, 60),
            Step::Refuse(Refusal::SessionBytesFull { max: 100 })
        );
        // A resend of held bytes adds nothing, even with the budget spent.
        assert!(matches!(
            on_fragment(&r, range(0, 50, 300), &limits, 100),
            Step::Take(_)
        ));
    }

    #[test]
    fn apply_moves_the_record_as_decided() {
        let f = |start, end, total| Fragment {
            session_id: "{s}".into(),
            range: range(start, end, total),
            content_name: Some("a.bin".into()),
        };
        let mut r = rec(None, 0, Phase::Receiving);
        // A gap on the first fragment still fixes the total and name; no progress.
        let frag = f(5, 10, 30);
        let Step::Take(t) = on_fragment(&r, frag.range, &LIMITS, 0) else {
            panic!()
        };
        apply(&mut r, &frag, &t, 7);
        assert_eq!(
            (r.total, r.content_name.as_deref(), r.received, r.touched_ms),
            (Some(30), Some("a.bin"), 0, 0)
        );
        let frag = f(0, 30, 30);
        let Step::Take(t) = on_fragment(&r, frag.range, &LIMITS, 0) else {
            panic!()
        };
        apply(&mut r, &frag, &t, 9);
        assert_eq!(
            (r.received, r.touched_ms, &r.phase),
            (30, 9, &Phase::Complete)
        );
        assert!(t.notifies());
        // Complete stays complete; a 416 never notifies.
        let frag = f(0, 10, 30);
        let Step::Take(t) = on_fragment(&r, frag.range, &LIMITS, 0) else {
            panic!()
        };
        apply(&mut r, &frag, &t, 11);
        assert!(!t.notifies());
        assert_eq!(
            (r.received, r.touched_ms, &r.phase),
            (30, 9, &Phase::Complete)
        );
    }

    #[test]
    fn record_invariants() {
        let ok = [
            rec(None, 0, Phase::Receiving),
            rec(Some(30), 10, Phase::Receiving),
            rec(Some(30), 30, Phase::Complete),
            rec(Some(0), 0, Phase::Complete),
        ];
        for r in ok {
            assert_eq!(r.check(), Ok(()), "{r:?}");
        }
        let mut committed_early = rec(Some(30), 30, Phase::Complete);
        committed_early.committed = true;
        let bad = [
            rec(None, 5, Phase::Receiving),
            rec(Some(30), 31, Phase::Receiving),
            rec(Some(30), 29, Phase::Complete),
            rec(Some(30), 29, Phase::Notified(CachedAck { reply_url: None })),
            committed_early,
        ];
        for r in bad {
            assert!(r.check().is_err(), "{r:?}");
        }
    }

    #[test]
    fn stored_layout_keeps_the_mc_bup_flags() {
        let mut r = rec(Some(3), 3, Phase::Notified(CachedAck { reply_url: None }));
        r.committed = true;
        let text = serde_json::to_string(&r).unwrap();
        assert!(
            text.contains(r#""upload_complete":true"#) && text.contains(r#""notified":{"#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<SessionRecord>(&text).unwrap(), r);
        for phase in [Phase::Receiving, Phase::Complete] {
            let r = rec(Some(3), 1, phase);
            assert_eq!(
                serde_json::from_str::<SessionRecord>(&serde_json::to_string(&r).unwrap()).unwrap(),
                r
            );
        }
    }
}
