//! The node's own delivery ledger: every notification it sent to the server application, with
//! the application's answer. It needs nothing from the application, so a user whose own
//! application receives the same file twice sees it here ("your application answered 200 twice
//! for `/upload/a.bin`").
//!
//! [`NotificationLog`] is a [`Probe`] in front of another: it passes every event on, and builds
//! a [`Notification`] from each `forwarded` event and the `app_answered` that follows it. The
//! content hash is read back from the node's store (the bytes the application was given).

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{Arc, Mutex},
};

use probe::{Clock, Event, FaultCtx, Probe, SharedProbe, Verdict};
use serde::Serialize;

use crate::Storage;

/// Most notifications kept (the oldest go first); `total` counts them all.
pub const KEPT: usize = 100_000;

/// One notification the node sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notification {
    /// 0-based, in the order the notifications were sent.
    pub seq: u64,
    /// When it was sent, milliseconds on the node's clock.
    pub at_ms: u64,
    /// The node.
    pub node: String,
    /// The session.
    pub session: String,
    /// The upload's URL path.
    pub file: String,
    /// Bytes given to the application.
    pub bytes: u64,
    /// XXH3-64 of those bytes, hex (`None` when the store could not read them back).
    pub hash: Option<String>,
    /// The application's HTTP status (`None`: it did not answer).
    pub status: Option<u16>,
    /// Why there was no answer (timeout, connection error).
    pub error: Option<String>,
}

#[derive(Default)]
struct Inner {
    kept: VecDeque<Notification>,
    total: u64,
    /// Sent, not answered yet: session → position in `kept`'s numbering.
    pending: BTreeMap<String, u64>,
}

/// A node's store, by the node's name (a farm's ledger covers every node).
pub type StoreOf = Box<dyn Fn(&str) -> Option<Arc<dyn Storage>> + Send + Sync>;

/// The node's notification ledger, and a probe that fills it.
pub struct NotificationLog {
    store_of: StoreOf,
    clock: Clock,
    inner_probe: SharedProbe,
    inner: Mutex<Inner>,
}

impl NotificationLog {
    /// A ledger reading hashes from `store` (the node's), passing events on to `inner`.
    pub fn new(store: Arc<dyn Storage>, clock: Clock, inner: SharedProbe) -> Arc<NotificationLog> {
        NotificationLog::of_nodes(Box::new(move |_| Some(store.clone())), clock, inner)
    }

    /// A ledger of several nodes, reading each node's hashes from `store_of(node)`.
    pub fn of_nodes(store_of: StoreOf, clock: Clock, inner: SharedProbe) -> Arc<NotificationLog> {
        Arc::new(NotificationLog {
            store_of,
            clock,
            inner_probe: inner,
            inner: Mutex::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The notifications kept, oldest first.
    pub fn snapshot(&self) -> Vec<Notification> {
        self.lock().kept.iter().cloned().collect()
    }

    /// Notifications sent so far (kept or not).
    pub fn total(&self) -> u64 {
        self.lock().total
    }

    /// XXH3-64 of a session's first `len` bytes: the store's kept digest, or read back.
    fn hash(&self, node: &str, session: &str, len: u64) -> Option<String> {
        let store = (self.store_of)(node)?;
        if let Some(d) = store.entity_digest(session, len).ok()? {
            return Some(format!("{:016x}", d.hash));
        }
        let mut h = twox_hash::XxHash3_64::new();
        for chunk in store.entity(session, len).ok()? {
            std::hash::Hasher::write(&mut h, &chunk.ok()?);
        }
        Some(format!("{:016x}", std::hash::Hasher::finish(&h)))
    }

    fn sent(&self, node: &str, session: &str, file: &str, bytes: u64) {
        let hash = self.hash(node, session, bytes);
        let mut inner = self.lock();
        let seq = inner.total;
        inner.total += 1;
        inner.pending.insert(session.to_owned(), seq);
        if inner.kept.len() == KEPT {
            inner.kept.pop_front();
        }
        inner.kept.push_back(Notification {
            seq,
            at_ms: self.clock.now_ms(),
            node: node.to_owned(),
            session: session.to_owned(),
            file: file.to_owned(),
            bytes,
            hash,
            status: None,
            error: None,
        });
    }

    fn answered(&self, session: &str, status: Option<u16>, error: Option<String>) {
        let mut inner = self.lock();
        let Some(seq) = inner.pending.remove(session) else {
            return;
        };
        if let Some(n) = inner.kept.iter_mut().rev().find(|n| n.seq == seq) {
            n.status = status;
            n.error = error;
        }
    }
}

impl Probe for NotificationLog {
    fn event(&self, event: Event) {
        match &event {
            Event::Forwarded {
                node,
                session,
                file,
                bytes,
            } => self.sent(node, session, file, *bytes),
            Event::AppAnswered {
                session,
                status,
                error,
                ..
            } => self.answered(session, *status, error.clone()),
            _ => {}
        }
        self.inner_probe.event(event);
    }

    fn fault(&self, ctx: &FaultCtx<'_>) -> Verdict {
        self.inner_probe.fault(ctx)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::{MemStore, SessionRecord};

    #[test]
    fn each_notification_with_its_answer_and_the_bytes_hash() {
        let store = MemStore::new("n");
        let mut rec = SessionRecord::new(
            "{a}".into(),
            "/up/a".into(),
            "http://f/up/a".into(),
            None,
            0,
        );
        rec.total = Some(3);
        store.save(&rec).unwrap();
        store
            .append("{a}", 0, &[Bytes::from_static(b"abc")])
            .unwrap();
        let log = NotificationLog::new(Arc::new(store), Clock::starting_now(), probe::none());
        let sent = |log: &NotificationLog| {
            log.event(Event::Forwarded {
                node: "n".into(),
                session: "{a}".into(),
                file: "/up/a".into(),
                bytes: 3,
            })
        };
        sent(&log);
        log.event(Event::AppAnswered {
            node: "n".into(),
            session: "{a}".into(),
            file: "/up/a".into(),
            status: Some(200),
            error: None,
        });
        sent(&log);
        log.event(Event::AppAnswered {
            node: "n".into(),
            session: "{a}".into(),
            file: "/up/a".into(),
            status: None,
            error: Some("timed out".into()),
        });
        let all = log.snapshot();
        assert_eq!(log.total(), 2);
        let want = format!("{:016x}", twox_hash::XxHash3_64::oneshot(b"abc"));
        assert_eq!(
            all.iter()
                .map(|n| (
                    n.seq,
                    n.bytes,
                    n.hash.as_deref(),
                    n.status,
                    n.error.as_deref()
                ))
                .collect::<Vec<_>>(),
            [
                (0, 3, Some(want.as_str()), Some(200), None),
                (1, 3, Some(want.as_str()), None, Some("timed out")),
            ]
        );
    }
}
