//! Where a farm's nodes keep their sessions: in memory (the simulator, and the live farm by
//! default) or on disk under an upload root (the live farm with `--upload-root`: real files a
//! by-reference application can open, and durable state that really survives the process of
//! a node). The built-in application reads by-reference uploads through [`Stores::files`],
//! which resolves a path to a node's own session files only.

use std::{
    collections::BTreeMap,
    io,
    path::PathBuf,
    sync::{Arc, Mutex, MutexGuard},
};

use bytes::Bytes;
use node::{DiskStore, MemStore, Storage, disk::SessionFile};

/// The nodes' stores, by node name. Clones share them.
#[derive(Clone)]
pub(crate) enum Stores {
    /// In memory.
    Memory(Arc<Mutex<BTreeMap<String, MemStore>>>),
    /// On disk: `<root>/<node>` for durable state, `<root>/<node>.boot-<n>` for a volatile
    /// node's boot `n` (what it held before a crash is left on disk, unseen).
    Disk {
        /// The upload root.
        root: PathBuf,
        /// Each node's current store.
        open: Arc<Mutex<BTreeMap<String, DiskStore>>>,
    },
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Stores {
    /// Stores in memory.
    pub(crate) fn memory() -> Stores {
        Stores::Memory(Arc::default())
    }

    /// Stores on disk under `root`.
    pub(crate) fn disk(root: PathBuf) -> Stores {
        Stores::Disk {
            root,
            open: Arc::default(),
        }
    }

    /// The store node `name` boots with (its `boot`-th start): the one it had if `keep`
    /// (durable session state), else a new, empty one.
    pub(crate) fn boot(&self, name: &str, boot: u64, keep: bool) -> Arc<dyn Storage> {
        match self {
            Stores::Memory(stores) => {
                let mut stores = lock(stores);
                match stores.get(name) {
                    Some(s) if keep => Arc::new(s.clone()),
                    _ => {
                        let s = MemStore::new(name);
                        stores.insert(name.to_owned(), s.clone());
                        Arc::new(s)
                    }
                }
            }
            Stores::Disk { root, open } => {
                let dir = if keep {
                    root.join(name)
                } else {
                    root.join(format!("{name}.boot-{boot}"))
                };
                match DiskStore::open(&dir) {
                    Ok(s) => {
                        lock(open).insert(name.to_owned(), s.clone());
                        Arc::new(s)
                    }
                    Err(e) => {
                        // The node still runs, on a memory store, and says so.
                        tracing::error!(node = name, dir = %dir.display(), error = %e, "cannot open the node's upload root; its sessions are in memory");
                        lock(open).remove(name);
                        Arc::new(MemStore::new(name))
                    }
                }
            }
        }
    }

    /// A node's current store.
    pub(crate) fn of(&self, name: &str) -> Option<Arc<dyn Storage>> {
        match self {
            Stores::Memory(stores) => lock(stores)
                .get(name)
                .map(|s| Arc::new(s.clone()) as Arc<dyn Storage>),
            Stores::Disk { open, .. } => lock(open)
                .get(name)
                .map(|s| Arc::new(s.clone()) as Arc<dyn Storage>),
        }
    }

    /// The by-reference files of every node, for the built-in application.
    pub(crate) fn files(&self) -> Arc<dyn backend::Files> {
        match self {
            Stores::Memory(stores) => Arc::new(MemFiles(stores.clone())),
            Stores::Disk { open, .. } => Arc::new(DiskFiles::shared(open.clone())),
        }
    }
}

/// The application reads by-reference uploads from the nodes' memory stores, by their
/// UNC-like paths.
struct MemFiles(Arc<Mutex<BTreeMap<String, MemStore>>>);

impl backend::Files for MemFiles {
    fn read(&self, path: &str, each: &mut dyn FnMut(&[u8])) -> io::Result<u64> {
        let chunks = {
            let stores = lock(&self.0);
            stores
                .values()
                .find(|s| s.owns_path(path))
                .and_then(|s| s.read_path(path))
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, path.to_owned()))?
        };
        let mut len = 0;
        for c in &chunks {
            each(c);
            len += c.len() as u64;
        }
        Ok(len)
    }

    fn digest(&self, path: &str) -> Option<protocol::txid::Digested> {
        let stores = lock(&self.0);
        stores
            .values()
            .find(|s| s.owns_path(path))?
            .digest_path(path)
    }

    fn write(&self, path: &str, data: Bytes) -> io::Result<()> {
        let stores = lock(&self.0);
        match stores.values().find(|s| s.owns_path(path)) {
            Some(s) if s.write_path(path, data) => Ok(()),
            _ => Err(io::Error::new(io::ErrorKind::NotFound, path.to_owned())),
        }
    }
}

/// The application's by-reference files on disk: only the session files of the nodes' own
/// stores, read and written through them (they follow no symbolic link). Any other path is
/// refused.
pub struct DiskFiles(Arc<Mutex<BTreeMap<String, DiskStore>>>);

impl DiskFiles {
    /// The session files of one node (`serve`).
    pub fn of_one(store: DiskStore) -> DiskFiles {
        DiskFiles(Arc::new(Mutex::new(BTreeMap::from([(
            String::new(),
            store,
        )]))))
    }

    fn shared(stores: Arc<Mutex<BTreeMap<String, DiskStore>>>) -> DiskFiles {
        DiskFiles(stores)
    }

    /// The store that owns `path`, the session and which of its files.
    fn find(&self, path: &str) -> io::Result<(DiskStore, String, SessionFile)> {
        lock(&self.0)
            .values()
            .find_map(|s| {
                s.session_file(path)
                    .map(|(id, which)| (s.clone(), id, which))
            })
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!("{path:?} is not a file of this node's sessions"),
                )
            })
    }
}

impl backend::Files for DiskFiles {
    fn read(&self, path: &str, each: &mut dyn FnMut(&[u8])) -> io::Result<u64> {
        let (store, id, which) = self.find(path)?;
        let (_, chunks) = store
            .read_session_file(&id, which)
            .map_err(|e| io::Error::other(e.to_string()))?;
        let mut len = 0;
        for c in chunks {
            let c = c?;
            len += c.len() as u64;
            each(&c);
        }
        Ok(len)
    }

    fn digest(&self, path: &str) -> Option<protocol::txid::Digested> {
        match self.find(path).ok()? {
            (store, id, SessionFile::Request) => store.kept_digest(&id),
            _ => None,
        }
    }

    fn write(&self, path: &str, data: Bytes) -> io::Result<()> {
        match self.find(path)? {
            (store, id, SessionFile::Response) => store
                .put_reply(&id, data)
                .map_err(|e| io::Error::other(e.to_string())),
            _ => Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{path:?} is not a reply file of this node's sessions"),
            )),
        }
    }
}
