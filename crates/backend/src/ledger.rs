//! The ledger: every delivery the server application received, and which had an effect.
//!
//! The ledger is the application's database: it survives the application's crash (the
//! simulator keeps it across restarts), and so does the set of transaction ids already applied.
//! On real sockets ([`Ledger::open`]) it is also a journal on disk: one JSON line per delivery,
//! appended and synced before the application answers, and replayed at start, so a `kill -9`
//! never loses a recorded delivery and never lets a repeated transaction id have a second
//! effect.

use std::{
    collections::{BTreeMap, HashSet},
    fs::File,
    io::{BufRead, BufReader, Seek, Write},
    path::{Path, PathBuf},
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
    /// The journal on disk, if the ledger has one.
    journal: Option<File>,
    /// Deliveries recorded (kept or not).
    recorded: u64,
    /// Deliveries without a transaction id.
    without_txid: u64,
    /// A counting ledger keeps no deliveries: it counts those whose file passes the filter.
    counting: Option<(Counts, u64)>,
}

/// Which files a counting ledger counts.
type Counts = fn(&str) -> bool;

/// Why the ledger could not be opened or a delivery recorded.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The journal could not be read or written.
    #[error("ledger journal {path}: {source}")]
    Io {
        /// The journal.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// A line of the journal (not the last, which a crash may have cut) is not a delivery.
    #[error(
        "ledger journal {path}:{line}: not a delivery record ({why}); move the file away to start a new ledger"
    )]
    Corrupt {
        /// The journal.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The parse error.
        why: String,
    },
}

/// The delivery ledger. Clones share one ledger.
#[derive(Debug, Clone)]
pub struct Ledger {
    dedupe: bool,
    inner: Arc<Mutex<Inner>>,
    path: Option<PathBuf>,
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
            path: None,
        }
    }

    /// A ledger that keeps no list of deliveries, only the transaction ids it applied and
    /// counts: a simulated application over weeks of uploads, whose memory must follow the
    /// uploads in flight. [`Ledger::counted`] counts the deliveries of files `counts` accepts;
    /// [`Ledger::deliveries`] and [`Ledger::snapshot`] list none.
    pub fn counting(dedupe: bool, counts: fn(&str) -> bool) -> Ledger {
        let inner = Inner {
            counting: Some((counts, 0)),
            ..Inner::default()
        };
        Ledger {
            dedupe,
            inner: Arc::new(Mutex::new(inner)),
            path: None,
        }
    }

    /// Deliveries of the files a counting ledger counts (for a listing ledger, every one).
    pub fn counted(&self) -> u64 {
        let inner = self.lock();
        match inner.counting {
            Some((_, n)) => n,
            None => inner.deliveries.len() as u64,
        }
    }

    /// A ledger kept in the journal at `path` (created if missing): every delivery recorded
    /// there before is replayed (with the transaction ids it applied), and every new one is
    /// appended and synced before [`Ledger::record`] returns. A last line cut short by a crash
    /// is dropped (it was never answered).
    pub fn open(path: &Path, dedupe: bool) -> Result<Ledger, LedgerError> {
        let io = |source| LedgerError::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io)?;
        let mut inner = Inner::default();
        let mut good_len = 0u64;
        let mut lines = BufReader::new(&file).split(b'\n').enumerate().peekable();
        while let Some((i, line)) = lines.next() {
            let line = line.map_err(io)?;
            let last = lines.peek().is_none();
            match serde_json::from_slice::<Delivery>(&line) {
                Ok(d) => {
                    if let Some(t) = d.txid.as_ref().filter(|_| d.effect) {
                        inner.applied.insert(t.clone());
                    }
                    inner.effects += u64::from(d.effect);
                    inner.recorded += 1;
                    inner.without_txid += u64::from(d.txid.is_none());
                    inner.deliveries.push(Delivery {
                        seq: inner.deliveries.len() as u64,
                        ..d
                    });
                    good_len += line.len() as u64 + 1;
                }
                Err(_) if last => break,
                Err(e) => {
                    return Err(LedgerError::Corrupt {
                        path: path.to_owned(),
                        line: i + 1,
                        why: e.to_string(),
                    });
                }
            }
        }
        // Drop a torn last line (and make sure the file ends after the last whole one).
        if file.metadata().map_err(io)?.len() != good_len {
            file.set_len(good_len).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        file.seek(std::io::SeekFrom::End(0)).map_err(io)?;
        inner.journal = Some(file);
        Ok(Ledger {
            dedupe,
            inner: Arc::new(Mutex::new(inner)),
            path: Some(path.to_owned()),
        })
    }

    /// Whether dedupe is on.
    pub fn dedupe(&self) -> bool {
        self.dedupe
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a delivery and returns it numbered, with its effect decided: with dedupe on, a
    /// transaction id seen before has no effect; data without one always has. With a journal,
    /// the delivery is on disk when this returns; if it cannot be written, nothing is recorded.
    pub fn record(&self, d: NewDelivery) -> Result<Delivery, LedgerError> {
        let mut inner = self.lock();
        let effect = match (&d.txid, self.dedupe) {
            (Some(txid), true) => !inner.applied.contains(txid),
            _ => true,
        };
        let delivery = Delivery {
            seq: inner.recorded,
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
        if let Some(journal) = inner.journal.as_mut() {
            let mut line = serde_json::to_vec(&delivery).unwrap_or_default();
            line.push(b'\n');
            let written = journal.write_all(&line).and_then(|()| journal.sync_data());
            if let Err(source) = written {
                return Err(LedgerError::Io {
                    path: self.path.clone().unwrap_or_default(),
                    source,
                });
            }
        }
        if effect {
            inner.effects += 1;
            if let (Some(txid), true) = (&delivery.txid, self.dedupe) {
                inner.applied.insert(txid.clone());
            }
        }
        inner.recorded += 1;
        inner.without_txid += u64::from(delivery.txid.is_none());
        match &mut inner.counting {
            Some((counts, n)) => *n += u64::from(counts(&delivery.file)),
            None => inner.deliveries.push(delivery.clone()),
        }
        // Invariant: with dedupe on, effects never exceed distinct transaction ids plus
        // deliveries without one.
        debug_assert!(
            !self.dedupe || inner.effects == inner.applied.len() as u64 + inner.without_txid
        );
        Ok(delivery)
    }

    /// Number of deliveries so far.
    pub fn len(&self) -> usize {
        self.lock().recorded as usize
    }

    /// Whether nothing was delivered yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every delivery, in order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.lock().deliveries.clone()
    }

    /// How many deliveries kept so far pass `keep` (without copying them).
    pub fn count(&self, keep: impl Fn(&Delivery) -> bool) -> u64 {
        self.lock().deliveries.iter().filter(|d| keep(d)).count() as u64
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

    /// A ledger whose `record` cannot fail (no journal).
    struct Recorder(Ledger);

    impl Recorder {
        fn record(&self, d: NewDelivery) -> Delivery {
            self.0.record(d).unwrap()
        }
        fn snapshot(&self) -> Snapshot {
            self.0.snapshot()
        }
    }

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
        let l = Recorder(l);
        let l = &l;
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
        let l = Recorder(Ledger::new(false));
        l.record(new("/a", Some("t1")));
        l.record(new("/a", Some("t1")));
        assert_eq!(l.snapshot().total_effects, 2);
    }
}
