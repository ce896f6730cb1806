//! Durable storage on a real disk, in the IIS layout: `<root>/BITS-Sessions/{id}/state.json`,
//! `.../request` (the entity) and `.../response` (the reply); committed uploads at
//! `<root>/<upload path>`.
//!
//! **Crash safety.** Entity bytes are written and synced before the state that counts them, and
//! the state is replaced by rename; bytes beyond what the state counts are discarded on the next
//! append. A type-0 upload is placed by renaming the session's own entity file to its
//! destination with `RENAME_NOREPLACE` (or `link` + `unlink` where the file system lacks it): the
//! existence check and the placement are one atomic step, two sessions placing the same path
//! cannot mix their bytes, and nothing is ever written under a name that belongs to the
//! destination's namespace. Before placing, the session records `placed.json` (the destination
//! and the file's inode), so a node that dies between placing the file and recording it knows
//! the file at the destination is its own.
//!
//! **Nothing is followed through a symbolic link.** Every path under the root is opened one
//! component at a time from a descriptor of the root, with `O_NOFOLLOW`: a link planted inside
//! the upload root (by a local user, or another application sharing it) makes the operation
//! fail with [`StorageError::Unsafe`] instead of reading or writing where it points.
//!
//! Used only on real sockets (`bitsfarm serve`); a simulation uses [`crate::MemStore`].

use std::{
    fs::File,
    io::{Read, Write},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    sync::Arc,
};

use bytes::Bytes;
use rustix::{
    fd::{AsFd, OwnedFd},
    fs::{AtFlags, FileType, Mode, OFlags, RenameFlags},
    io::Errno,
};
use serde::{Deserialize, Serialize};
use transport::ChunkSource;

use crate::storage::{Placement, SessionRecord, Storage, StorageError};

/// The directory IIS keeps sessions in, under the virtual directory's physical path.
pub const SESSIONS_DIR: &str = "BITS-Sessions";

const STATE: &str = "state.json";
const REQUEST: &str = "request";
const RESPONSE: &str = "response";
const PLACED: &str = "placed.json";
/// Largest state or marker file read back (they are a few hundred bytes).
const SMALL_FILE_MAX: u64 = 1 << 20;
/// Bytes per chunk when an entity is streamed.
const CHUNK: u64 = 1 << 20;

/// Which file of a session a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionFile {
    /// The uploaded entity (`request`).
    Request,
    /// The application's reply (`response`).
    Response,
}

/// Durable storage under an upload root.
#[derive(Debug, Clone)]
pub struct DiskStore {
    root: PathBuf,
    root_fd: Arc<OwnedFd>,
    /// Each session's entity digest, fed as its fragments are written (while they are still
    /// in memory), so the application need not read the file back to hash it. Kept only in
    /// this process: a session written before a restart, or truncated, has none (readers then
    /// read the file).
    digests: Arc<std::sync::Mutex<std::collections::HashMap<String, Kept>>>,
}

/// A session entity's digest and the length it covers.
#[derive(Debug, Clone)]
struct Kept {
    len: u64,
    digest: protocol::txid::Digest,
}

/// What a session records before placing its upload.
#[derive(Debug, Serialize, Deserialize)]
struct Placed {
    path: String,
    inode: u64,
    dev: u64,
}

fn flags_dir() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// An open error of a path component: a symbolic link or something that is not a directory.
fn unsafe_or(e: Errno, what: &str) -> StorageError {
    if e == Errno::LOOP || e == Errno::NOTDIR || e == Errno::MLINK {
        StorageError::Unsafe(format!(
            "{what} is a symbolic link or not a directory; bitsfarm does not follow links under the upload root"
        ))
    } else {
        StorageError::Io(e.into())
    }
}

fn open_dir(parent: impl AsFd, name: &str) -> Result<Option<OwnedFd>, StorageError> {
    match rustix::fs::openat(parent, name, flags_dir(), Mode::empty()) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(unsafe_or(e, name)),
    }
}

fn open_or_create_dir(parent: impl AsFd, name: &str) -> Result<OwnedFd, StorageError> {
    let parent = parent.as_fd();
    match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o755)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(unsafe_or(e, name)),
    }
    open_dir(parent, name)?.ok_or_else(|| {
        StorageError::Io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{name} vanished while it was being created"),
        ))
    })
}

fn open_file(dir: impl AsFd, name: &str, flags: OFlags) -> Result<Option<File>, StorageError> {
    match rustix::fs::openat(
        dir,
        name,
        flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    ) {
        Ok(fd) => Ok(Some(File::from(fd))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(unsafe_or(e, name)),
    }
}

fn read_small(dir: impl AsFd, name: &str) -> Result<Option<Vec<u8>>, StorageError> {
    let Some(f) = open_file(dir, name, OFlags::RDONLY)? else {
        return Ok(None);
    };
    let mut buf = Vec::new();
    f.take(SMALL_FILE_MAX).read_to_end(&mut buf)?;
    Ok(Some(buf))
}

/// Writes `name` in `dir` through a temporary name, synced, then renamed over it.
fn write_atomically(dir: impl AsFd, name: &str, data: &[u8]) -> Result<(), StorageError> {
    let dir = dir.as_fd();
    let tmp = format!("{name}.tmp");
    let mut f = open_file(dir, &tmp, OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC)?
        .ok_or_else(|| StorageError::Io(std::io::ErrorKind::NotFound.into()))?;
    f.write_all(data)?;
    f.sync_all()?;
    rustix::fs::renameat(dir, tmp.as_str(), dir, name).map_err(std::io::Error::from)?;
    rustix::fs::fsync(dir).map_err(std::io::Error::from)?;
    Ok(())
}

/// Removes `name` in `parent` and everything under it, following no link.
fn remove_tree(parent: impl AsFd, name: &str) -> Result<(), StorageError> {
    let parent = parent.as_fd();
    let Some(dir) = open_dir(parent, name)? else {
        return Ok(());
    };
    let mut entries = rustix::fs::Dir::read_from(&dir).map_err(std::io::Error::from)?;
    let mut names = Vec::new();
    while let Some(entry) = entries.read() {
        let entry = entry.map_err(std::io::Error::from)?;
        let n = entry.file_name().to_string_lossy().into_owned();
        if n != "." && n != ".." {
            names.push((n, entry.file_type()));
        }
    }
    for (n, kind) in names {
        let is_dir = match kind {
            FileType::Directory => true,
            FileType::Unknown => rustix::fs::statat(&dir, n.as_str(), AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|s| FileType::from_raw_mode(s.st_mode) == FileType::Directory),
            _ => false,
        };
        if is_dir {
            remove_tree(&dir, &n)?;
        } else {
            match rustix::fs::unlinkat(&dir, n.as_str(), AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => return Err(StorageError::Io(e.into())),
            }
        }
    }
    match rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(StorageError::Io(e.into())),
    }
}

/// Whether `id` is a name the node could have issued (session ids come from clients and must
/// never name a path outside the store).
pub fn valid_session_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 100
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"{}-".contains(&b))
}

impl DiskStore {
    /// Opens (creating if needed) an upload root.
    pub fn open(root: impl Into<PathBuf>) -> std::io::Result<DiskStore> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        let root = std::fs::canonicalize(root)?;
        let root_fd = rustix::fs::open(
            &root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        open_or_create_dir(&root_fd, SESSIONS_DIR).map_err(|e| match e {
            StorageError::Io(e) => e,
            other => std::io::Error::other(other.to_string()),
        })?;
        Ok(DiskStore {
            root,
            root_fd: Arc::new(root_fd),
            digests: Arc::default(),
        })
    }

    /// The upload root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn sessions_dir(&self) -> Result<OwnedFd, StorageError> {
        open_or_create_dir(&*self.root_fd, SESSIONS_DIR)
    }

    /// A session's directory; `None` if the id is not one the node issues or it does not exist.
    fn session_dir(&self, id: &str) -> Result<Option<OwnedFd>, StorageError> {
        if !valid_session_id(id) {
            return Ok(None);
        }
        open_dir(self.sessions_dir()?, id)
    }

    fn session_dir_or_err(&self, id: &str) -> Result<OwnedFd, StorageError> {
        self.session_dir(id)?
            .ok_or_else(|| StorageError::NoSession(id.into()))
    }

    /// The directory that holds the destination of an upload path (already checked by
    /// [`crate::path`]), and the file's name in it; with `create`, missing directories are
    /// made. `None`: a directory on the way does not exist.
    fn destination_dir(
        &self,
        path: &str,
        create: bool,
    ) -> Result<Option<(OwnedFd, String)>, StorageError> {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let Some((name, dirs)) = segments.split_last() else {
            return Err(StorageError::Unsafe(format!("{path:?} names no file")));
        };
        let mut dir = rustix::io::dup(&*self.root_fd).map_err(std::io::Error::from)?;
        for seg in dirs {
            dir = if create {
                open_or_create_dir(&dir, seg)?
            } else {
                match open_dir(&dir, seg)? {
                    Some(d) => d,
                    None => return Ok(None),
                }
            };
        }
        Ok(Some((dir, (*name).to_owned())))
    }

    /// The session and file a path given to the application names (`<root>/BITS-Sessions/{id}/
    /// request` or `.../response`), if it names one; any other path is refused, so an
    /// application handed this store reads and writes only its own sessions' files.
    pub fn session_file(&self, path: &str) -> Option<(String, SessionFile)> {
        let rest = Path::new(path)
            .strip_prefix(self.root.join(SESSIONS_DIR))
            .ok()?;
        let mut parts = rest.components().map(|c| c.as_os_str().to_str());
        let (Some(Some(id)), Some(Some(kind)), None) = (parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let kind = match kind {
            REQUEST => SessionFile::Request,
            RESPONSE => SessionFile::Response,
            _ => return None,
        };
        valid_session_id(id).then(|| (id.to_owned(), kind))
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Kept>> {
        self.digests.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The digest of a session's whole entity, hashed as this process wrote it: `None` unless
    /// it wrote every byte and the file on disk is still exactly that long.
    pub fn kept_digest(&self, id: &str) -> Option<protocol::txid::Digested> {
        let kept = self.kept().get(id)?.clone();
        let dir = self.session_dir(id).ok()??;
        let on_disk = open_file(&dir, REQUEST, OFlags::RDONLY)
            .ok()??
            .metadata()
            .ok()?
            .len();
        (on_disk == kept.len).then(|| kept.digest.finish())
    }

    /// Streams a session's whole file (the entity or the reply).
    pub fn read_session_file(
        &self,
        id: &str,
        which: SessionFile,
    ) -> Result<(u64, ChunkSource), StorageError> {
        let dir = self.session_dir_or_err(id)?;
        let name = match which {
            SessionFile::Request => REQUEST,
            SessionFile::Response => RESPONSE,
        };
        let f = open_file(&dir, name, OFlags::RDONLY)?
            .ok_or_else(|| StorageError::Io(std::io::ErrorKind::NotFound.into()))?;
        let len = f.metadata()?.len();
        Ok((len, transport::file_chunks(f, len, CHUNK)))
    }
}

fn inode(f: &File) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = f.metadata()?;
    Ok((m.dev(), m.ino()))
}

impl Storage for DiskStore {
    fn sessions(&self) -> Result<Vec<SessionRecord>, StorageError> {
        let sessions = self.sessions_dir()?;
        let mut entries = rustix::fs::Dir::read_from(&sessions).map_err(std::io::Error::from)?;
        let mut out = Vec::new();
        while let Some(entry) = entries.read() {
            let entry = entry.map_err(std::io::Error::from)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !valid_session_id(&name) {
                continue;
            }
            let Ok(Some(dir)) = open_dir(&sessions, &name) else {
                continue;
            };
            // A directory without state is a session whose creation was cut short: nothing
            // was acknowledged for it ([`Storage::sweep_litter`] removes it).
            let Ok(Some(text)) = read_small(&dir, STATE) else {
                continue;
            };
            match serde_json::from_slice(&text) {
                Ok(rec) => out.push(rec),
                Err(e) => {
                    tracing::warn!(session = %name, error = %e, "skipping corrupt session state")
                }
            }
        }
        out.sort_by(|a: &SessionRecord, b| a.id.cmp(&b.id));
        Ok(out)
    }

    fn get(&self, id: &str) -> Result<Option<SessionRecord>, StorageError> {
        let Some(dir) = self.session_dir(id)? else {
            return Ok(None);
        };
        match read_small(&dir, STATE)? {
            Some(text) => serde_json::from_slice(&text)
                .map(Some)
                .map_err(|e| StorageError::Corrupt(e.to_string())),
            None => Ok(None),
        }
    }

    fn save(&self, rec: &SessionRecord) -> Result<(), StorageError> {
        if !valid_session_id(&rec.id) {
            return Err(StorageError::NoSession(rec.id.to_string()));
        }
        let dir = open_or_create_dir(self.sessions_dir()?, &rec.id)?;
        let json =
            serde_json::to_vec_pretty(rec).map_err(|e| StorageError::Corrupt(e.to_string()))?;
        write_atomically(&dir, STATE, &json)
    }

    fn append(&self, id: &str, at: u64, data: &[Bytes]) -> Result<(), StorageError> {
        let dir = self.session_dir_or_err(id)?;
        let f = open_file(&dir, REQUEST, OFlags::RDWR | OFlags::CREATE)?
            .ok_or_else(|| StorageError::NoSession(id.into()))?;
        let len = f.metadata()?.len();
        if len < at {
            return Err(StorageError::NotContiguous { at, len });
        }
        // Bytes past `at` were written before a crash and never counted: drop them.
        f.set_len(at)?;
        // The digest continues only from exactly where it stopped; otherwise it is forgotten
        // (until the write succeeds, too: a failed write leaves none).
        let mut kept = match self.kept().remove(id) {
            Some(k) if k.len == at => Some(k),
            _ if at == 0 => Some(Kept {
                len: 0,
                digest: protocol::txid::Digest::new(),
            }),
            _ => None,
        };
        let mut pos = at;
        for d in data {
            f.write_all_at(d, pos)?;
            pos += d.len() as u64;
        }
        f.sync_data()?;
        if let Some(mut k) = kept.take() {
            for d in data {
                k.digest.feed(d);
            }
            k.len = pos;
            self.kept().insert(id.to_owned(), k);
        }
        Ok(())
    }

    fn entity(&self, id: &str, len: u64) -> Result<ChunkSource, StorageError> {
        if len == 0 {
            return Ok(Box::new(std::iter::empty()));
        }
        let dir = self.session_dir_or_err(id)?;
        let f = open_file(&dir, REQUEST, OFlags::RDONLY)?
            .ok_or_else(|| StorageError::Corrupt(format!("session {id} has no entity")))?;
        let have = f.metadata()?.len();
        if have < len {
            return Err(StorageError::Corrupt(format!(
                "entity of {id} holds {have} of {len} bytes"
            )));
        }
        Ok(transport::file_chunks(f, len, CHUNK))
    }

    fn entity_digest(
        &self,
        id: &str,
        len: u64,
    ) -> Result<Option<protocol::txid::Digested>, StorageError> {
        Ok(self.kept_digest(id).filter(|d| d.len == len))
    }

    fn entity_path(&self, id: &str) -> String {
        self.root
            .join(SESSIONS_DIR)
            .join(id)
            .join(REQUEST)
            .display()
            .to_string()
    }

    fn reply_path(&self, id: &str) -> String {
        self.root
            .join(SESSIONS_DIR)
            .join(id)
            .join(RESPONSE)
            .display()
            .to_string()
    }

    fn put_reply(&self, id: &str, reply: Bytes) -> Result<(), StorageError> {
        let dir = self.session_dir_or_err(id)?;
        write_atomically(&dir, RESPONSE, &reply)
    }

    fn reply(&self, id: &str) -> Result<Option<Bytes>, StorageError> {
        let Some(dir) = self.session_dir(id)? else {
            return Ok(None);
        };
        let Some(f) = open_file(&dir, RESPONSE, OFlags::RDONLY)? else {
            return Ok(None);
        };
        let mut buf = Vec::new();
        f.take(transport::client::DEFAULT_MAX_BODY)
            .read_to_end(&mut buf)?;
        Ok(Some(Bytes::from(buf)))
    }

    fn remove(&self, id: &str) -> Result<(), StorageError> {
        if !valid_session_id(id) {
            return Ok(());
        }
        self.kept().remove(id);
        remove_tree(self.sessions_dir()?, id)
    }

    fn sweep_litter(&self) -> Result<u64, StorageError> {
        let sessions = self.sessions_dir()?;
        let mut entries = rustix::fs::Dir::read_from(&sessions).map_err(std::io::Error::from)?;
        let mut litter = Vec::new();
        while let Some(entry) = entries.read() {
            let entry = entry.map_err(std::io::Error::from)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !valid_session_id(&name) {
                continue;
            }
            if let Ok(Some(dir)) = open_dir(&sessions, &name)
                && matches!(read_small(&dir, STATE), Ok(None))
            {
                litter.push(name);
            }
        }
        for name in &litter {
            tracing::info!(session = %name, "removing a session directory without state");
            remove_tree(&sessions, name)?;
        }
        Ok(litter.len() as u64)
    }

    fn destination_exists(&self, path: &str) -> Result<bool, StorageError> {
        let Some((dir, name)) = self.destination_dir(path, false)? else {
            return Ok(false);
        };
        match rustix::fs::statat(&dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(_) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(StorageError::Io(e.into())),
        }
    }

    fn commit(
        &self,
        id: &str,
        len: u64,
        path: &str,
        overwrite: bool,
    ) -> Result<Placement, StorageError> {
        let session = self.session_dir_or_err(id)?;
        // Placed before a crash? The entity is gone from the session and the marker says where.
        if let Some(text) = read_small(&session, PLACED)?
            && let Ok(placed) = serde_json::from_slice::<Placed>(&text)
            && placed.path == path
            && open_file(&session, REQUEST, OFlags::RDONLY)?.is_none()
        {
            return Ok(Placement::AlreadyPlaced);
        }
        let entity = open_file(&session, REQUEST, OFlags::RDWR | OFlags::CREATE)?
            .ok_or_else(|| StorageError::NoSession(id.into()))?;
        let have = entity.metadata()?.len();
        if have < len {
            return Err(StorageError::Corrupt(format!(
                "entity of {id} holds {have} of {len} bytes"
            )));
        }
        entity.set_len(len)?;
        entity.sync_all()?;
        let (dev, inode) = inode(&entity)?;
        drop(entity);
        let marker = serde_json::to_vec(&Placed {
            path: path.to_owned(),
            inode,
            dev,
        })
        .map_err(|e| StorageError::Corrupt(e.to_string()))?;
        write_atomically(&session, PLACED, &marker)?;
        let Some((dest, name)) = self.destination_dir(path, true)? else {
            return Err(StorageError::Unsafe(format!("{path:?} has no directory")));
        };
        let placed = if overwrite {
            rustix::fs::renameat(&session, REQUEST, &dest, name.as_str())
        } else {
            match rustix::fs::renameat_with(
                &session,
                REQUEST,
                &dest,
                name.as_str(),
                RenameFlags::NOREPLACE,
            ) {
                // Not every file system has RENAME_NOREPLACE; link(2) never replaces either.
                Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => {
                    rustix::fs::linkat(&session, REQUEST, &dest, name.as_str(), AtFlags::empty())
                        .and_then(|()| rustix::fs::unlinkat(&session, REQUEST, AtFlags::empty()))
                }
                other => other,
            }
        };
        match placed {
            Ok(()) => {
                rustix::fs::fsync(&dest).map_err(std::io::Error::from)?;
                rustix::fs::fsync(&session).map_err(std::io::Error::from)?;
                Ok(Placement::Placed)
            }
            Err(Errno::EXIST) => {
                let _ = rustix::fs::unlinkat(&session, PLACED, AtFlags::empty());
                Ok(Placement::Exists)
            }
            Err(e) => Err(unsafe_or(e, &name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_files_are_only_the_stores_own() {
        let dir = std::env::temp_dir().join(format!("bitsfarm-disk-{}", std::process::id()));
        let store = DiskStore::open(&dir).unwrap();
        let id = "{0A1B-2C}";
        let req = store.entity_path(id);
        assert_eq!(
            store.session_file(&req),
            Some((id.to_owned(), SessionFile::Request))
        );
        assert_eq!(
            store.session_file(&store.reply_path(id)),
            Some((id.to_owned(), SessionFile::Response))
        );
        for bad in [
            "/etc/shadow".to_owned(),
            format!("{}/BITS-Sessions/{id}/state.json", store.root().display()),
            format!("{}/BITS-Sessions/../x/request", store.root().display()),
            format!("{}/BITS-Sessions/{id}/request/x", store.root().display()),
            format!("{}/BITS-Sessions/a.b/request", store.root().display()),
            format!("{}/other/{id}/request", store.root().display()),
        ] {
            assert_eq!(store.session_file(&bad), None, "{bad}");
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
