//! A storage whose writes pass a fault point first: the failing disk of simulations and fault
//! rules (`storage-write`), in front of any [`Storage`].
//!
//! Every write (`save`, `append`, `put_reply`, `commit`, `remove`) asks the probe at
//! [`FaultPoint::StorageWrite`], every read (`sessions`, `get`, `entity`, `reply`,
//! `destination_exists`) at [`FaultPoint::StorageRead`]. A failing verdict makes the write fail with an I/O error before
//! it changes anything, except an append, which first writes the first half of its bytes (a
//! torn write: what a disk holds after a write that failed or lost its power midway). A full
//! disk ([`Verdict::DiskFull`]) fails every write that adds bytes with `StorageFull`, and lets
//! removals and reads through. The node wraps its store in this at start, so the
//! live modes have the same points (their probe answers `Continue`).
//!
//! It also checks session state both ways ([`SessionRecord::check`]): on write (a state the
//! node must never write: it panics, a bug) and on read (stored state that cannot be: the
//! store is corrupt, an error).

use std::io;

use bytes::Bytes;
use probe::{FaultCtx, FaultPoint, SharedProbe, Verdict};
use transport::ChunkSource;

use crate::{Placement, SessionRecord, Storage, StorageError};

/// An access, as the fault points see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Write {
    /// Adds bytes (state, entity, reply, placement).
    Grows,
    /// Frees bytes.
    Frees,
    /// Reads (`storage-read`).
    Reads,
}

/// A [`Storage`] that asks a probe before each write.
pub(crate) struct Probed {
    inner: std::sync::Arc<dyn Storage>,
    probe: SharedProbe,
    node: String,
}

impl Probed {
    pub(crate) fn new(
        inner: std::sync::Arc<dyn Storage>,
        probe: SharedProbe,
        node: &str,
    ) -> Probed {
        Probed {
            inner,
            probe,
            node: node.to_owned(),
        }
    }

    /// The probe's answer for a write to `session` (of `file`): `Ok` to go on, or the error.
    fn ask(&self, write: Write, session: &str, file: Option<&str>) -> Result<(), StorageError> {
        let ctx = FaultCtx {
            point: if write == Write::Reads {
                FaultPoint::StorageRead
            } else {
                FaultPoint::StorageWrite
            },
            actor: &self.node,
            conn: 0,
            packet: None,
            session: (!session.is_empty()).then_some(session),
            file,
            len: None,
        };
        match self.probe.fault(&ctx) {
            Verdict::Continue | Verdict::Delay(_) => Ok(()),
            Verdict::DiskFull if write != Write::Grows => Ok(()),
            Verdict::DiskFull => Err(StorageError::Io(io::Error::new(
                io::ErrorKind::StorageFull,
                "no space left on the device (injected: disk-full)",
            ))),
            Verdict::Fail(_) | Verdict::FailWith { .. } | Verdict::Page(_) => Err(
                StorageError::Io(io::Error::other("input/output error (injected: io-error)")),
            ),
        }
    }
}

/// Session state read back must be state the node could have written; otherwise it is corrupt.
fn read_back(rec: &SessionRecord) -> Result<(), StorageError> {
    rec.check()
        .map_err(|why| StorageError::Corrupt(format!("session {}: {why}", rec.id)))
}

impl Storage for Probed {
    fn sessions(&self) -> Result<Vec<SessionRecord>, StorageError> {
        self.ask(Write::Reads, "", None)?;
        let all = self.inner.sessions()?;
        for rec in &all {
            read_back(rec)?;
        }
        Ok(all)
    }

    fn get(&self, id: &str) -> Result<Option<SessionRecord>, StorageError> {
        self.ask(Write::Reads, id, None)?;
        let rec = self.inner.get(id)?;
        if let Some(r) = &rec {
            read_back(r)?;
        }
        Ok(rec)
    }

    fn save(&self, rec: &SessionRecord) -> Result<(), StorageError> {
        if let Err(why) = rec.check() {
            panic!(
                "node bug: saving session {} in a state that cannot be: {why}",
                rec.id
            );
        }
        self.ask(Write::Grows, &rec.id, Some(&rec.path))?;
        self.inner.save(rec)
    }

    fn append(&self, id: &str, at: u64, data: &[Bytes]) -> Result<(), StorageError> {
        if let Err(e) = self.ask(Write::Grows, id, None) {
            let len: u64 = data.iter().map(|c| c.len() as u64).sum();
            let torn = crate::storage::take_prefix(data, len / 2);
            if !torn.is_empty() {
                // What reached the disk before the failure; nothing counts it.
                let _ = self.inner.append(id, at, &torn);
            }
            return Err(e);
        }
        self.inner.append(id, at, data)
    }

    fn entity(&self, id: &str, len: u64) -> Result<ChunkSource, StorageError> {
        self.ask(Write::Reads, id, None)?;
        self.inner.entity(id, len)
    }

    fn entity_digest(
        &self,
        id: &str,
        len: u64,
    ) -> Result<Option<protocol::txid::Digested>, StorageError> {
        // A read, as `entity` is: a failing disk fails it.
        self.ask(Write::Reads, id, None)?;
        self.inner.entity_digest(id, len)
    }

    fn entity_path(&self, id: &str) -> String {
        self.inner.entity_path(id)
    }

    fn reply_path(&self, id: &str) -> String {
        self.inner.reply_path(id)
    }

    fn put_reply(&self, id: &str, reply: Bytes) -> Result<(), StorageError> {
        self.ask(Write::Grows, id, None)?;
        self.inner.put_reply(id, reply)
    }

    fn reply(&self, id: &str) -> Result<Option<Bytes>, StorageError> {
        self.ask(Write::Reads, id, None)?;
        self.inner.reply(id)
    }

    fn remove(&self, id: &str) -> Result<(), StorageError> {
        self.ask(Write::Frees, id, None)?;
        self.inner.remove(id)
    }

    fn sweep_litter(&self) -> Result<u64, StorageError> {
        self.inner.sweep_litter()
    }

    fn destination_exists(&self, path: &str) -> Result<bool, StorageError> {
        self.ask(Write::Reads, "", Some(path))?;
        self.inner.destination_exists(path)
    }

    fn commit(
        &self,
        id: &str,
        len: u64,
        path: &str,
        overwrite: bool,
    ) -> Result<Placement, StorageError> {
        self.ask(Write::Grows, id, Some(path))?;
        self.inner.commit(id, len, path, overwrite)
    }
}
