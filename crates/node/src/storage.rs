//! The storage seam: where a node keeps session state and upload bytes.
//!
//! The node never touches a file system directly. [`MemStore`] keeps everything in memory: used
//! as volatile storage (drop it with the node) and, by the simulator, as a node's simulated disk
//! (keep it across the node's crash and hand it to the restarted node: durable).
//! [`crate::disk::DiskStore`] keeps the IIS layout on a real disk (`BITS-Sessions/{id}/...`).
//!
//! Calls are synchronous: in-memory stores finish at once, and the disk store's writes are small
//! (one fragment) on a multi-threaded runtime.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use transport::ChunkSource;

pub use crate::session::{CachedAck, Phase, SessionRecord};

/// A storage failure. The node answers it with a 500 Ack (`E_FAIL`) and keeps the session as it
/// was before the failed step.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The file system failed.
    #[error("storage io: {0}")]
    Io(#[from] std::io::Error),
    /// Stored state could not be read back.
    #[error("stored session state is corrupt: {0}")]
    Corrupt(String),
    /// An append that does not continue the stored bytes (a harness bug, never a client's).
    #[error("append at {at} but {len} bytes are stored")]
    NotContiguous {
        /// Offset asked for.
        at: u64,
        /// Bytes stored.
        len: u64,
    },
    /// The session does not exist.
    #[error("no session {0}")]
    NoSession(String),
    /// The operation would follow a symbolic link or leave the upload root; refused.
    #[error("refused: {0}")]
    Unsafe(String),
}

/// How [`Storage::commit`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// The upload is at its destination now.
    Placed,
    /// This session had placed it already (the node died before recording that).
    AlreadyPlaced,
    /// Another file is at the destination and overwrites are off; nothing changed.
    Exists,
}

/// Where a node keeps sessions and upload bytes.
pub trait Storage: Send + Sync + 'static {
    /// Every stored session (at boot, and for cleanup).
    fn sessions(&self) -> Result<Vec<SessionRecord>, StorageError>;
    /// One session.
    fn get(&self, id: &str) -> Result<Option<SessionRecord>, StorageError>;
    /// Creates or replaces a session's state, atomically.
    fn save(&self, rec: &SessionRecord) -> Result<(), StorageError>;
    /// Appends bytes to a session's entity at `at`, the bytes stored so far according to its
    /// saved state; bytes a failed write or a crash left beyond `at` are discarded first. `at`
    /// beyond the stored bytes is [`StorageError::NotContiguous`].
    fn append(&self, id: &str, at: u64, data: &[Bytes]) -> Result<(), StorageError>;
    /// The first `len` bytes of a session's entity, read as they are consumed (a large upload
    /// is never held in memory whole).
    fn entity(&self, id: &str, len: u64) -> Result<ChunkSource, StorageError>;
    /// The digest (length, hash, transaction-id envelope) of a session's first `len` entity
    /// bytes, if the store kept one as they were written, so nobody reads them again to hash
    /// them; `None`: read them with [`Storage::entity`] (which asks the disk again). An error
    /// is what [`Storage::entity`] would have failed with.
    fn entity_digest(
        &self,
        id: &str,
        len: u64,
    ) -> Result<Option<protocol::txid::Digested>, StorageError> {
        let _ = (id, len);
        Ok(None)
    }
    /// The path of the entity, as given to a by-reference application.
    fn entity_path(&self, id: &str) -> String;
    /// The path where a by-reference application writes its reply.
    fn reply_path(&self, id: &str) -> String;
    /// Stores a reply (by-value applications answer it in the body).
    fn put_reply(&self, id: &str, reply: Bytes) -> Result<(), StorageError>;
    /// The reply, if one is stored.
    fn reply(&self, id: &str) -> Result<Option<Bytes>, StorageError>;
    /// Deletes a session: state, entity and reply.
    fn remove(&self, id: &str) -> Result<(), StorageError>;
    /// Removes what failed steps and crashes left behind (a session directory without
    /// state); returns how many were removed. Called at boot.
    fn sweep_litter(&self) -> Result<u64, StorageError> {
        Ok(0)
    }
    /// Whether a file exists at the upload path (`/upload/a.bin`).
    fn destination_exists(&self, path: &str) -> Result<bool, StorageError>;
    /// Places the session's first `len` entity bytes at the upload path, atomically: the
    /// destination is either absent, the old file, or the whole new file. Unless `overwrite`,
    /// an existing destination is left alone ([`Placement::Exists`]): the check and the
    /// placement are one step, so two sessions placing one path never mix their bytes.
    fn commit(
        &self,
        id: &str,
        len: u64,
        path: &str,
        overwrite: bool,
    ) -> Result<Placement, StorageError>;
}

/// What a [`MemStore`] keeps of a committed destination file: its size and hash. (A simulation
/// places thousands of files; keeping their bytes would make memory grow with uploads done.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DestinationFile {
    /// Size in bytes.
    pub len: u64,
    /// xxh3-64 of the bytes.
    pub hash: u64,
}

#[derive(Debug, Clone)]
struct Destination {
    file: DestinationFile,
    /// The session that placed it.
    session: String,
}

#[derive(Debug, Default)]
struct MemSession {
    rec: Option<SessionRecord>,
    data: Vec<Bytes>,
    len: u64,
    /// The digest of all of `data`, once someone asked for it (forgotten by every append): an
    /// upload is hashed once however many ask (the notification ledger, the commit, the
    /// application), and one that never completes is never hashed.
    digest: Option<protocol::txid::Digested>,
    reply: Option<Bytes>,
}

impl MemSession {
    /// The digest of the first `len` bytes (kept when `len` is all of them).
    fn digest_of(&mut self, len: u64) -> protocol::txid::Digested {
        if len == self.len
            && let Some(d) = &self.digest
        {
            return d.clone();
        }
        let d = protocol::txid::digest(take_prefix(&self.data, len).iter().map(|b| &b[..]));
        if len == self.len {
            self.digest = Some(d.clone());
        }
        d
    }
}

#[derive(Debug, Default)]
struct MemInner {
    sessions: BTreeMap<String, MemSession>,
    destinations: BTreeMap<String, Destination>,
}

/// Storage in memory. Clone it to share one store (the simulator keeps a clone as the node's
/// disk). Paths are `//<name>/BITS-Sessions/{id}/request` and `.../response`, like the UNC paths
/// IIS gives an application on another host.
#[derive(Debug, Clone)]
pub struct MemStore {
    name: Arc<str>,
    inner: Arc<Mutex<MemInner>>,
}

impl MemStore {
    /// An empty store; `name` appears in its paths.
    pub fn new(name: &str) -> MemStore {
        MemStore {
            name: name.into(),
            inner: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemInner> {
        // A panic while holding the lock is a harness bug; the data is still consistent because
        // every method finishes its update before it can panic.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The session id and kind (`request`/`response`) a path of this store names.
    fn parse_path<'p>(&self, path: &'p str) -> Option<(&'p str, &'p str)> {
        let rest = path.strip_prefix("//")?.strip_prefix(&*self.name)?;
        let rest = rest.strip_prefix("/BITS-Sessions/")?;
        let (id, kind) = rest.split_once('/')?;
        Some((id, kind))
    }

    /// Reads a file by path, as an application given a path does.
    pub fn read_path(&self, path: &str) -> Option<Vec<Bytes>> {
        let (id, kind) = self.parse_path(path)?;
        let inner = self.lock();
        let s = inner.sessions.get(id)?;
        match kind {
            "request" => Some(s.data.clone()),
            "response" => s.reply.clone().map(|r| vec![r]),
            _ => None,
        }
    }

    /// The digest of the file at `path` (a session's request file), kept as it was written.
    pub fn digest_path(&self, path: &str) -> Option<protocol::txid::Digested> {
        let (id, "request") = self.parse_path(path)? else {
            return None;
        };
        let mut inner = self.lock();
        let s = inner.sessions.get_mut(id)?;
        let len = s.len;
        Some(s.digest_of(len))
    }

    /// Writes the reply file by path, as a by-reference application does. False if the path
    /// names no session's reply.
    pub fn write_path(&self, path: &str, data: Bytes) -> bool {
        let Some((id, "response")) = self.parse_path(path) else {
            return false;
        };
        let mut inner = self.lock();
        match inner.sessions.get_mut(id) {
            Some(s) => {
                s.reply = Some(data);
                true
            }
            None => false,
        }
    }

    /// Whether this store's paths start with `//<name>/`.
    pub fn owns_path(&self, path: &str) -> bool {
        self.parse_path(path).is_some()
    }

    /// The committed destination file at `path`.
    pub fn destination(&self, path: &str) -> Option<DestinationFile> {
        self.lock().destinations.get(path).map(|d| d.file)
    }

    /// Bytes held for sessions (entities and replies): what a crash of a volatile node loses.
    pub fn bytes_held(&self) -> u64 {
        self.lock()
            .sessions
            .values()
            .map(|s| s.len + s.reply.as_ref().map_or(0, |r| r.len() as u64))
            .sum()
    }
}

impl Storage for MemStore {
    fn sessions(&self) -> Result<Vec<SessionRecord>, StorageError> {
        Ok(self
            .lock()
            .sessions
            .values()
            .filter_map(|s| s.rec.clone())
            .collect())
    }

    fn get(&self, id: &str) -> Result<Option<SessionRecord>, StorageError> {
        Ok(self.lock().sessions.get(id).and_then(|s| s.rec.clone()))
    }

    fn save(&self, rec: &SessionRecord) -> Result<(), StorageError> {
        let mut inner = self.lock();
        // The id is copied only for a session stored the first time.
        if let Some(s) = inner.sessions.get_mut(&*rec.id) {
            s.rec = Some(rec.clone());
        } else {
            inner.sessions.entry(rec.id.to_string()).or_default().rec = Some(rec.clone());
        }
        Ok(())
    }

    fn append(&self, id: &str, at: u64, data: &[Bytes]) -> Result<(), StorageError> {
        let mut inner = self.lock();
        let s = inner
            .sessions
            .get_mut(id)
            .ok_or_else(|| StorageError::NoSession(id.into()))?;
        if at > s.len {
            return Err(StorageError::NotContiguous { at, len: s.len });
        }
        // Bytes past `at` were written before a failure or a crash and never counted: drop
        // them (as the disk store does).
        if at < s.len {
            s.data = take_prefix(&s.data, at);
            s.len = at;
        }
        s.digest = None;
        for d in data {
            s.len += d.len() as u64;
            s.data.push(d.clone());
        }
        Ok(())
    }

    fn entity(&self, id: &str, len: u64) -> Result<ChunkSource, StorageError> {
        let inner = self.lock();
        let s = inner
            .sessions
            .get(id)
            .ok_or_else(|| StorageError::NoSession(id.into()))?;
        Ok(Box::new(take_prefix(&s.data, len).into_iter().map(Ok)))
    }

    fn entity_digest(
        &self,
        id: &str,
        len: u64,
    ) -> Result<Option<protocol::txid::Digested>, StorageError> {
        let mut inner = self.lock();
        let s = inner
            .sessions
            .get_mut(id)
            .ok_or_else(|| StorageError::NoSession(id.into()))?;
        Ok(Some(s.digest_of(len)))
    }

    fn entity_path(&self, id: &str) -> String {
        format!("//{}/BITS-Sessions/{id}/request", self.name)
    }

    fn reply_path(&self, id: &str) -> String {
        format!("//{}/BITS-Sessions/{id}/response", self.name)
    }

    fn put_reply(&self, id: &str, reply: Bytes) -> Result<(), StorageError> {
        let mut inner = self.lock();
        let s = inner
            .sessions
            .get_mut(id)
            .ok_or_else(|| StorageError::NoSession(id.into()))?;
        s.reply = Some(reply);
        Ok(())
    }

    fn reply(&self, id: &str) -> Result<Option<Bytes>, StorageError> {
        Ok(self.lock().sessions.get(id).and_then(|s| s.reply.clone()))
    }

    fn remove(&self, id: &str) -> Result<(), StorageError> {
        self.lock().sessions.remove(id);
        Ok(())
    }

    fn destination_exists(&self, path: &str) -> Result<bool, StorageError> {
        Ok(self.lock().destinations.contains_key(path))
    }

    fn commit(
        &self,
        id: &str,
        len: u64,
        path: &str,
        overwrite: bool,
    ) -> Result<Placement, StorageError> {
        let mut inner = self.lock();
        match inner.destinations.get(path) {
            Some(d) if d.session == id => return Ok(Placement::AlreadyPlaced),
            Some(_) if !overwrite => return Ok(Placement::Exists),
            _ => {}
        }
        let s = inner
            .sessions
            .get_mut(id)
            .ok_or_else(|| StorageError::NoSession(id.into()))?;
        let file = DestinationFile {
            len,
            hash: s.digest_of(len).hash,
        };
        inner.destinations.insert(
            path.to_owned(),
            Destination {
                file,
                session: id.to_owned(),
            },
        );
        Ok(Placement::Placed)
    }
}

/// The first `len` bytes of `chunks`, sharing their memory.
pub fn take_prefix(chunks: &[Bytes], len: u64) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut left = len;
    for c in chunks {
        if left == 0 {
            break;
        }
        let n = (c.len() as u64).min(left) as usize;
        out.push(c.slice(..n));
        left -= n as u64;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str) -> SessionRecord {
        SessionRecord {
            id: id.into(),
            path: "/up/a".into(),
            original_url: "http://farm/up/a".into(),
            query: None,
            content_name: None,
            total: Some(6),
            received: 0,
            phase: Phase::Receiving,
            committed: false,
            touched_ms: 0,
        }
    }

    fn digest_of(data: &[u8]) -> protocol::txid::Digested {
        protocol::txid::digest([data])
    }

    #[test]
    fn the_kept_digest_follows_every_append_and_truncation() {
        let s = MemStore::new("node-1");
        s.save(&rec("{a}")).unwrap();
        let head = protocol::txid::header_for("tx-1", 6, protocol::txid::hash(b"abcdef"));
        s.append("{a}", 0, &[Bytes::from(head.clone())]).unwrap();
        let h = head.len() as u64;
        s.append(
            "{a}",
            h,
            &[Bytes::from_static(b"abX"), Bytes::from_static(b"Y")],
        )
        .unwrap();
        // A torn write's bytes past `at` go, and the digest forgets them.
        s.append("{a}", h + 2, &[Bytes::from_static(b"cdef")])
            .unwrap();
        let whole = [head.as_slice(), b"abcdef"].concat();
        let kept = s.entity_digest("{a}", whole.len() as u64).unwrap().unwrap();
        assert_eq!(kept, digest_of(&whole));
        assert!(kept.payload_matches, "the envelope was checked");
        // A prefix, and the path an application reads, agree with the bytes.
        assert_eq!(
            s.entity_digest("{a}", 5).unwrap().unwrap(),
            digest_of(&whole[..5])
        );
        let path = s.entity_path("{a}");
        assert_eq!(s.digest_path(&path).unwrap(), digest_of(&whole));
        assert_eq!(s.digest_path(&s.reply_path("{a}")), None);
        assert!(matches!(
            s.entity_digest("{zz}", 1),
            Err(StorageError::NoSession(_))
        ));
        // The destination's hash is the whole file's.
        s.commit("{a}", whole.len() as u64, "/up/a", false).unwrap();
        assert_eq!(
            s.destination("/up/a").unwrap().hash,
            protocol::txid::hash(&whole)
        );
    }

    #[test]
    fn mem_store_keeps_sessions_bytes_and_paths() {
        let s = MemStore::new("node-1");
        s.save(&rec("{a}")).unwrap();
        s.append("{a}", 0, &[Bytes::from_static(b"abc")]).unwrap();
        // Past the stored bytes: refused.
        assert!(matches!(
            s.append("{a}", 4, &[Bytes::from_static(b"x")]),
            Err(StorageError::NotContiguous { at: 4, len: 3 })
        ));
        // Before them: what lies past `at` was never counted (a torn or failed write) and
        // goes, as on the disk store.
        s.append("{a}", 2, &[Bytes::from_static(b"X")]).unwrap();
        s.append("{a}", 2, &[Bytes::from_static(b"c")]).unwrap();
        s.append("{a}", 3, &[Bytes::from_static(b"def")]).unwrap();
        let e: Vec<u8> = s
            .entity("{a}", 4)
            .unwrap()
            .map(Result::unwrap)
            .collect::<Vec<_>>()
            .concat();
        assert_eq!(e, b"abcd");
        let p = s.entity_path("{a}");
        assert_eq!(p, "//node-1/BITS-Sessions/{a}/request");
        assert_eq!(s.read_path(&p).unwrap().concat(), b"abcdef");
        assert!(s.write_path(&s.reply_path("{a}"), Bytes::from_static(b"ok")));
        assert_eq!(s.reply("{a}").unwrap().unwrap(), "ok");
        assert!(!s.write_path("//node-2/BITS-Sessions/{a}/response", Bytes::new()));
        assert_eq!(
            s.commit("{a}", 6, "/up/a", false).unwrap(),
            Placement::Placed
        );
        // Placed before a crash: the same session finds it its own.
        assert_eq!(
            s.commit("{a}", 6, "/up/a", false).unwrap(),
            Placement::AlreadyPlaced
        );
        s.save(&rec("{b}")).unwrap();
        assert_eq!(
            s.commit("{b}", 0, "/up/a", false).unwrap(),
            Placement::Exists
        );
        assert_eq!(
            s.destination("/up/a").unwrap().hash,
            protocol::txid::hash(b"abcdef")
        );
        s.remove("{a}").unwrap();
        assert!(s.get("{a}").unwrap().is_none());
        assert!(s.destination_exists("/up/a").unwrap());
    }
}
