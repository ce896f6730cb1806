//! Durable storage on a real disk, in the IIS layout: `<root>/BITS-Sessions/{id}/state.json`,
//! `.../request` (the entity) and `.../response` (the reply); committed uploads at
//! `<root>/<upload path>`.
//!
//! Crash safety: entity bytes are written and synced before the state that counts them, and the
//! state is replaced by rename; bytes beyond what the state counts are discarded on the next
//! append. A committed file is written under a temporary name and renamed into place, so a crash
//! never leaves a destination file that looks complete but is not.
//!
//! Used only on real sockets (`bitsfarm serve`); a simulation uses [`crate::MemStore`].

use std::{
    fs,
    io::{Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
};

use bytes::Bytes;

use crate::storage::{SessionRecord, Storage, StorageError};

/// The directory IIS keeps sessions in, under the virtual directory's physical path.
pub const SESSIONS_DIR: &str = "BITS-Sessions";

/// Durable storage under an upload root.
#[derive(Debug, Clone)]
pub struct DiskStore {
    root: PathBuf,
}

impl DiskStore {
    /// Opens (creating if needed) an upload root.
    pub fn open(root: impl Into<PathBuf>) -> std::io::Result<DiskStore> {
        let root = root.into();
        fs::create_dir_all(root.join(SESSIONS_DIR))?;
        let root = fs::canonicalize(root)?;
        Ok(DiskStore { root })
    }

    /// The upload root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of a session, if `id` is a name the node could have issued (session ids
    /// come from clients and must never name a path outside the store).
    fn dir(&self, id: &str) -> Option<PathBuf> {
        let ok = !id.is_empty()
            && id.len() <= 100
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"{}-".contains(&b));
        ok.then(|| self.root.join(SESSIONS_DIR).join(id))
    }

    fn dir_or_err(&self, id: &str) -> Result<PathBuf, StorageError> {
        self.dir(id)
            .ok_or_else(|| StorageError::NoSession(id.into()))
    }

    /// The destination file of an upload path (already checked by [`crate::path`]).
    fn destination(&self, path: &str) -> PathBuf {
        let mut p = self.root.clone();
        for seg in path.split('/').filter(|s| !s.is_empty()) {
            p.push(seg);
        }
        p
    }
}

fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)
}

fn read_prefix(path: &Path, len: u64) -> std::io::Result<Bytes> {
    let mut f = fs::File::open(path)?;
    let mut buf = Vec::with_capacity(len as usize);
    (&mut f).take(len).read_to_end(&mut buf)?;
    if (buf.len() as u64) < len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "entity shorter than its state",
        ));
    }
    Ok(Bytes::from(buf))
}

impl Storage for DiskStore {
    fn sessions(&self) -> Result<Vec<SessionRecord>, StorageError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(self.root.join(SESSIONS_DIR))? {
            let state = entry?.path().join("state.json");
            // A directory without state is a session whose creation was cut short: nothing
            // was acknowledged for it.
            let Ok(text) = fs::read(&state) else { continue };
            match serde_json::from_slice(&text) {
                Ok(rec) => out.push(rec),
                Err(e) => {
                    tracing::warn!(path = %state.display(), error = %e, "skipping corrupt session state")
                }
            }
        }
        out.sort_by(|a: &SessionRecord, b| a.id.cmp(&b.id));
        Ok(out)
    }

    fn get(&self, id: &str) -> Result<Option<SessionRecord>, StorageError> {
        let Some(dir) = self.dir(id) else {
            return Ok(None);
        };
        match fs::read(dir.join("state.json")) {
            Ok(text) => serde_json::from_slice(&text)
                .map(Some)
                .map_err(|e| StorageError::Corrupt(e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn save(&self, rec: &SessionRecord) -> Result<(), StorageError> {
        let dir = self.dir_or_err(&rec.id)?;
        fs::create_dir_all(&dir)?;
        let json =
            serde_json::to_vec_pretty(rec).map_err(|e| StorageError::Corrupt(e.to_string()))?;
        write_atomically(&dir.join("state.json"), &json)?;
        Ok(())
    }

    fn append(&self, id: &str, at: u64, data: &[Bytes]) -> Result<(), StorageError> {
        let dir = self.dir_or_err(id)?;
        let mut f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(dir.join("request"))?;
        let len = f.metadata()?.len();
        if len < at {
            return Err(StorageError::NotContiguous { at, len });
        }
        // Bytes past `at` were written before a crash and never counted: drop them.
        f.set_len(at)?;
        f.seek(SeekFrom::Start(at))?;
        for d in data {
            f.write_all(d)?;
        }
        f.sync_data()?;
        Ok(())
    }

    fn entity(&self, id: &str, len: u64) -> Result<Vec<Bytes>, StorageError> {
        let dir = self.dir_or_err(id)?;
        if len == 0 {
            return Ok(Vec::new());
        }
        Ok(vec![read_prefix(&dir.join("request"), len)?])
    }

    fn entity_path(&self, id: &str) -> String {
        self.root
            .join(SESSIONS_DIR)
            .join(id)
            .join("request")
            .display()
            .to_string()
    }

    fn reply_path(&self, id: &str) -> String {
        self.root
            .join(SESSIONS_DIR)
            .join(id)
            .join("response")
            .display()
            .to_string()
    }

    fn put_reply(&self, id: &str, reply: Bytes) -> Result<(), StorageError> {
        let dir = self.dir_or_err(id)?;
        write_atomically(&dir.join("response"), &reply)?;
        Ok(())
    }

    fn reply(&self, id: &str) -> Result<Option<Bytes>, StorageError> {
        let Some(dir) = self.dir(id) else {
            return Ok(None);
        };
        match fs::read(dir.join("response")) {
            Ok(b) => Ok(Some(Bytes::from(b))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn remove(&self, id: &str) -> Result<(), StorageError> {
        let Some(dir) = self.dir(id) else {
            return Ok(());
        };
        match fs::remove_dir_all(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    fn destination_exists(&self, path: &str) -> Result<bool, StorageError> {
        Ok(self.destination(path).exists())
    }

    fn commit(&self, id: &str, len: u64, path: &str) -> Result<(), StorageError> {
        let src = self.dir_or_err(id)?.join("request");
        let dest = self.destination(path);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent)?;
        }
        let tmp = dest.with_file_name(format!(
            ".{}.bitsfarm-partial",
            dest.file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        ));
        {
            let mut out = fs::File::create(&tmp)?;
            if len > 0 {
                let mut f = fs::File::open(&src)?;
                let copied = std::io::copy(&mut (&mut f).take(len), &mut out)?;
                if copied < len {
                    return Err(StorageError::Corrupt(format!(
                        "entity of {id} is shorter than {len} bytes"
                    )));
                }
            }
            out.sync_all()?;
        }
        fs::rename(&tmp, &dest)?;
        Ok(())
    }
}
