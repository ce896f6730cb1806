//! The ledger: every delivery the server application received, and which had an effect.
//!
//! The ledger is the application's database: it survives the application's crash (the
//! simulator keeps it across restarts), and so does the set of transaction ids already applied.

use std::{
    collections::{BTreeMap, HashSet},
    sync::{Arc, Mutex},
};

use serde::{Deserialize, Serialize};

/// What the application could check about the bytes it got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verification {
    /// No transaction-id envelope: nothing to check against.
    Plain,
    /// The envelope's length and hash match the payload.
    Verified,
    /// The envelope's length or hash does not match the payload: corrupted data.
    Mismatch,
    /// The data starts like an envelope but its header is malformed.
    Malformed,
}

/// One notification the application accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// 0-based position in the ledger.
    pub seq: u64,
    /// When, in milliseconds on the application's clock.
    pub at_ms: u64,
    /// The upload's URL path (`/upload/c00-f000.bin`).
    pub file: String,
    /// Transaction id from the data, if any.
    pub txid: Option<String>,
    /// The delivering node.
    pub node: String,
    /// The BITS session, when the notification told it.
    pub session: Option<String>,
    /// Bytes received.
    pub len: u64,
    /// xxh3-64 of the bytes received.
    pub hash: u64,
    /// What the check of the bytes found.
    pub verification: Verification,
    /// Whether the delivery had an effect (false: its transaction id was already applied and
    /// dedupe is on).
    pub effect: bool,
}

/// Per-file counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileTally {
    /// Notifications received for the file.
    pub deliveries: u64,
    /// Of those, how many had an effect.
    pub effects: u64,
}

/// A copy of the ledger, as served at `GET /ledger`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Whether dedupe by transaction id is on.
    pub dedupe: bool,
    /// Every delivery, in order.
    pub deliveries: Vec<Delivery>,
    /// Per-file counts, by file.
    pub files: BTreeMap<String, FileTally>,
    /// Total deliveries.
    pub total_deliveries: u64,
    /// Total effects.
    pub total_effects: u64,
}

#[derive(Debug, Default)]
struct Inner {
    deliveries: Vec<Delivery>,
    /// Transaction ids already applied. Lookup only.
    applied: HashSet<String>,
    effects: u64,
}

/// The delivery ledger. Clones share one ledger.
#[derive(Debug, Clone)]
pub struct Ledger {
    dedupe: bool,
    inner: Arc<Mutex<Inner>>,
}

/// A delivery before the ledger numbers it and decides its effect.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    /// See [`Delivery::at_ms`].
    pub at_ms: u64,
    /// See [`Delivery::file`].
    pub file: String,
    /// See [`Delivery::txid`].
    pub txid: Option<String>,
    /// See [`Delivery::node`].
    pub node: String,
    /// See [`Delivery::session`].
    pub session: Option<String>,
    /// See [`Delivery::len`].
    pub len: u64,
    /// See [`Delivery::hash`].
    pub hash: u64,
    /// See [`Delivery::verification`].
    pub verification: Verification,
}

impl Ledger {
    /// An empty ledger; `dedupe` turns on deduplication by transaction id.
    pub fn new(dedupe: bool) -> Ledger {
        Ledger {
            dedupe,
            inner: Arc::default(),
        }
    }

    /// Whether dedupe is on.
    pub fn dedupe(&self) -> bool {
        self.dedupe
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a delivery and returns it numbered, with its effect decided: with dedupe on, a
    /// transaction id seen before has no effect; data without one always has.
    pub fn record(&self, d: NewDelivery) -> Delivery {
        let mut inner = self.lock();
        let effect = match (&d.txid, self.dedupe) {
            (Some(txid), true) => inner.applied.insert(txid.clone()),
            _ => true,
        };
        if effect {
            inner.effects += 1;
        }
        let delivery = Delivery {
            seq: inner.deliveries.len() as u64,
            at_ms: d.at_ms,
            file: d.file,
            txid: d.txid,
            node: d.node,
            session: d.session,
            len: d.len,
            hash: d.hash,
            verification: d.verification,
            effect,
        };
        inner.deliveries.push(delivery.clone());
        // Invariant: with dedupe on, effects never exceed distinct transaction ids plus
        // deliveries without one.
        debug_assert!(
            !self.dedupe
                || inner.effects
                    == inner.applied.len() as u64
                        + inner.deliveries.iter().filter(|d| d.txid.is_none()).count() as u64
        );
        delivery
    }

    /// Number of deliveries so far.
    pub fn len(&self) -> usize {
        self.lock().deliveries.len()
    }

    /// Whether nothing was delivered yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every delivery, in order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.lock().deliveries.clone()
    }

    /// A copy with per-file counts.
    pub fn snapshot(&self) -> Snapshot {
        let inner = self.lock();
        let mut files: BTreeMap<String, FileTally> = BTreeMap::new();
        for d in &inner.deliveries {
            let t = files.entry(d.file.clone()).or_default();
            t.deliveries += 1;
            t.effects += u64::from(d.effect);
        }
        Snapshot {
            dedupe: self.dedupe,
            deliveries: inner.deliveries.clone(),
            files,
            total_deliveries: inner.deliveries.len() as u64,
            total_effects: inner.effects,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(file: &str, txid: Option<&str>) -> NewDelivery {
        NewDelivery {
            at_ms: 0,
            file: file.into(),
            txid: txid.map(str::to_owned),
            node: "node-1".into(),
            session: None,
            len: 1,
            hash: 2,
            verification: Verification::Plain,
        }
    }

    #[test]
    fn dedupe_suppresses_repeated_transaction_ids_only() {
        let l = Ledger::new(true);
        assert!(l.record(new("/a", Some("t1"))).effect);
        assert!(!l.record(new("/a", Some("t1"))).effect);
        assert!(l.record(new("/b", Some("t2"))).effect);
        assert!(l.record(new("/c", None)).effect);
        assert!(l.record(new("/c", None)).effect);
        let s = l.snapshot();
        assert_eq!((s.total_deliveries, s.total_effects), (5, 4));
        assert_eq!(
            s.files["/a"],
            FileTally {
                deliveries: 2,
                effects: 1
            }
        );
        assert_eq!(s.deliveries[1].seq, 1);
    }

    #[test]
    fn without_dedupe_every_delivery_has_an_effect() {
        let l = Ledger::new(false);
        l.record(new("/a", Some("t1")));
        l.record(new("/a", Some("t1")));
        assert_eq!(l.snapshot().total_effects, 2);
    }
}
