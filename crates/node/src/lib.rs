//! A BITS upload server node: what the IIS BITS extension does for one virtual directory.
//!
//! [`Node`] is a hyper 1.x service behind the transport seam: [`Node::run`] serves every
//! connection a [`transport::Listen`] accepts (real TCP or the simulator's pipes). It keeps
//! sessions with the MC-BUP state (`UploadComplete`, `NotifyCache`) in a [`Storage`], notifies
//! the server application per `BITSServerNotificationType` through a [`transport::Connect`], and
//! answers every request with a well-formed Ack.
//!
//! **Invariants.**
//! * The node never touches the file system, the OS clock or OS randomness itself: storage,
//!   connector, probe, clock and RNG are handed in ([`Env`]).
//! * Every task the node starts lives in the `JoinSet` owned by [`Node::run`], so aborting that
//!   future stops all of the node's work (the simulator's crash).
//! * Every answer to a BITS request is an Ack with `BITS-Packet-Type: Ack` and
//!   `Content-Length`; malformed input gives a 400 Ack, never a dropped connection or a panic.
//! * Faults enter only at the named [`probe::FaultPoint`]s.

pub mod config;
pub mod disk;
mod handler;
pub mod notifications;
mod notify;
pub mod path;
mod probed;
mod reply;
pub mod session;
pub mod storage;

use std::{
    collections::HashMap,
    io,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use probe::{Clock, Event, SharedProbe};
use rand::Rng as _;
use rand_chacha::ChaCha8Rng;
use tokio::task::JoinSet;
use transport::{
    Connect, Listen,
    server::{BodyTiming, ServerOptions},
};

pub use config::{CommitPoint, ConfigError, NodeConfig, NotificationType};
pub use disk::DiskStore;
pub use notifications::{Notification, NotificationLog, StoreOf};
pub use session::{CachedAck, Phase, SessionRecord};
pub use storage::{MemStore, Placement, Storage, StorageError};

/// What a node is given rather than reaching for itself.
pub struct Env {
    /// Session state and upload bytes.
    pub store: Arc<dyn Storage>,
    /// How the node reaches the server application.
    pub connector: Arc<dyn Connect>,
    /// Events and fault points.
    pub probe: SharedProbe,
    /// Session ids are drawn from this generator.
    pub rng: ChaCha8Rng,
    /// Timestamps for session progress (cleanup).
    pub clock: Clock,
}

/// One BITS server node.
pub struct Node {
    cfg: NodeConfig,
    host_id: Mutex<Option<String>>,
    store: Arc<dyn Storage>,
    connector: Arc<dyn Connect>,
    probe: SharedProbe,
    rng: Mutex<ChaCha8Rng>,
    clock: Clock,
    /// One lock per live session: a session's requests are handled one at a time, even when a
    /// client's retry overlaps its own earlier request. Lookup only; never iterated.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Fragment bodies being held in memory, in KiB (`max_buffered_bytes`).
    buffered: Room,
    /// Open sessions (for `max_sessions`), counted from the store at boot.
    open_sessions: AtomicU64,
    /// Bytes held by open sessions (for `max_session_bytes`), counted from the store at boot.
    held_bytes: AtomicU64,
    /// The worker this one handed its requests to (`hand_to`).
    successor: Mutex<Option<Arc<Node>>>,
}

impl Node {
    /// A node with these settings; fails if they cannot work together.
    pub fn new(cfg: NodeConfig, env: Env) -> Result<Arc<Node>, ConfigError> {
        cfg.validate()?;
        Ok(Arc::new(Node {
            host_id: Mutex::new(cfg.host_id.clone()),
            // Every write passes the `storage-write` fault point.
            store: Arc::new(probed::Probed::new(env.store, env.probe.clone(), &cfg.name)),
            connector: env.connector,
            probe: env.probe,
            rng: Mutex::new(env.rng),
            clock: env.clock,
            locks: Mutex::default(),
            buffered: Room::new(kib(cfg.max_buffered_bytes)),
            open_sessions: AtomicU64::new(0),
            held_bytes: AtomicU64::new(0),
            successor: Mutex::default(),
            cfg,
        }))
    }

    /// The node's settings.
    pub fn config(&self) -> &NodeConfig {
        &self.cfg
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// Sets or clears `BITSHostId` while the node runs; later Create-Session Acks follow it.
    pub fn set_host_id(&self, host_id: Option<String>) {
        *lock(&self.host_id) = host_id;
    }

    /// Sessions open on the node (created, not yet closed, cancelled or cleaned up).
    pub fn open_sessions(&self) -> u64 {
        self.open_sessions
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The current `BITSHostId`.
    pub fn host_id(&self) -> Option<String> {
        lock(&self.host_id).clone()
    }

    /// Serves connections from `listener` until it fails. Every connection and the cleanup task
    /// run in a `JoinSet` owned by this future: dropping or aborting it stops them all.
    pub async fn run(self: Arc<Self>, listener: Box<dyn Listen>) -> io::Result<()> {
        match self.store.sweep_litter() {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(node = %self.cfg.name, removed = n, "removed unfinished session directories")
            }
            Err(e) => {
                tracing::warn!(node = %self.cfg.name, error = %e, "cannot sweep the session store")
            }
        }
        // A store that cannot list its sessions still serves each one it can read; only the
        // limits' counts start from zero.
        let sessions = self.store.sessions().unwrap_or_else(|e| {
            tracing::warn!(node = %self.cfg.name, error = %e, "cannot list stored sessions; limits count from zero");
            Vec::new()
        });
        let recovered = sessions.len() as u64;
        self.open_sessions.store(recovered, Ordering::Relaxed);
        self.held_bytes
            .store(sessions.iter().map(|s| s.received).sum(), Ordering::Relaxed);
        tracing::info!(node = %self.cfg.name, addr = %listener.local_addr(), sessions = recovered, "node started");
        probe::emit(&*self.probe, || Event::NodeStarted {
            node: self.cfg.name.clone(),
            sessions: recovered,
        });
        let options = ServerOptions {
            idle_timeout: probe::clock::secs(self.cfg.idle_timeout_s),
            max_connections: self.cfg.max_connections,
        };
        let mut tasks = JoinSet::new();
        tasks.spawn(self.clone().cleanup_loop());
        // Each request goes to the node's newest worker (see `hand_to`).
        let handler = move |req, conn, _peer| {
            let node = self.current();
            async move { node.handle(req, conn).await }
        };
        transport::server::serve_all(listener, options, tasks, handler).await
    }

    async fn cleanup_loop(self: Arc<Self>) {
        let every = probe::clock::secs(self.cfg.cleanup_interval_s);
        loop {
            tokio::time::sleep(every).await;
            self.cleanup().await;
        }
    }

    /// Deletes sessions without progress for longer than `BITSSessionTimeout` (or, for sessions
    /// that never received a byte, `empty_session_timeout_s`); returns how many.
    pub async fn cleanup(&self) -> usize {
        let timeout_ms = self.cfg.session_timeout_s.saturating_mul(1000);
        let empty_ms = self
            .cfg
            .empty_session_timeout_s
            .map_or(timeout_ms, |s| s.saturating_mul(1000).min(timeout_ms));
        let stale = |r: &SessionRecord| {
            let idle = self.clock.now_ms().saturating_sub(r.touched_ms);
            idle >= if r.received == 0 {
                empty_ms
            } else {
                timeout_ms
            }
        };
        let sessions = match self.store.sessions() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(node = %self.cfg.name, error = %e, "cleanup cannot list sessions");
                return 0;
            }
        };
        let mut removed = 0;
        for rec in sessions {
            if !stale(&rec) {
                continue;
            }
            // A request holding the session is working on it: it is not stale, and waiting
            // for it would stop the expiry of every other session.
            let Some(guard) = self.try_lock_session(&rec.id) else {
                continue;
            };
            // Re-read under the lock: a fragment may have made progress meanwhile.
            let stale = matches!(self.store.get(&rec.id), Ok(Some(r)) if stale(&r));
            if stale && self.store.remove(&rec.id).is_ok() {
                removed += 1;
                self.forget_session(&rec);
                tracing::info!(node = %self.cfg.name, session = %rec.id, file = %rec.path, "session expired");
                probe::emit(&*self.probe, || Event::SessionExpired {
                    node: self.cfg.name.clone(),
                    session: rec.id.to_string(),
                    file: rec.path.to_string(),
                });
            }
            drop(guard);
            self.forget_lock(&rec.id);
        }
        removed
    }

    /// A session left the store: it no longer counts toward the limits.
    fn forget_session(&self, rec: &SessionRecord) {
        let _ = self
            .open_sessions
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(1))
            });
        let _ = self
            .held_bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(rec.received))
            });
    }

    /// How long a request body may take.
    fn timing(&self) -> BodyTiming {
        BodyTiming {
            idle: probe::clock::secs(self.cfg.idle_timeout_s),
            min_bytes_per_s: self.cfg.min_bytes_per_s,
        }
    }

    /// Hands this worker's requests to `next` (an IIS application pool recycled with
    /// overlap): requests in flight finish here; every later request, on a connection this
    /// worker accepted too, goes to `next` (or to whoever `next` hands over to), as HTTP.sys
    /// keeps the connections and routes requests to the newest worker process.
    pub fn hand_to(&self, next: Arc<Node>) {
        *lock(&self.successor) = Some(next);
    }

    /// The newest worker: this one, or the last one it was handed to.
    fn current(self: &Arc<Self>) -> Arc<Node> {
        let mut node = self.clone();
        loop {
            let next = lock(&node.successor).clone();
            match next {
                Some(n) => node = n,
                None => return node,
            }
        }
    }

    /// The session's lock, made on first use (the id is copied only then).
    fn session_mutex(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = lock(&self.locks);
        match locks.get(id) {
            Some(m) => m.clone(),
            None => locks.entry(id.to_owned()).or_default().clone(),
        }
    }

    fn try_lock_session(&self, id: &str) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        self.session_mutex(id).try_lock_owned().ok()
    }

    async fn lock_session(&self, id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        self.session_mutex(id).lock_owned().await
    }

    fn forget_lock(&self, id: &str) {
        let mut locks = lock(&self.locks);
        // Keep the entry while another request holds or waits for it.
        if locks.get(id).is_some_and(|m| Arc::strong_count(m) == 1) {
            locks.remove(id);
        }
    }

    /// A fresh session id: a version-4 GUID in braces, from the node's RNG.
    fn new_session_id(&self) -> String {
        let (a, b) = {
            let mut rng = lock(&self.rng);
            (rng.next_u64(), rng.next_u64())
        };
        let a = (a & !0xF000) | 0x4000; // version 4
        let b = (b & !(0xC000 << 48)) | (0x8000 << 48); // RFC 4122 variant
        format!(
            "{{{:08X}-{:04X}-{:04X}-{:04X}-{:012X}}}",
            a >> 32,
            (a >> 16) & 0xFFFF,
            a & 0xFFFF,
            b >> 48,
            b & 0xFFFF_FFFF_FFFF
        )
    }
}

/// Room for what a node holds in memory, in units it counts (KiB of fragment bodies): taken
/// before the thing is held, given back when its [`Taken`] drops. Nobody waits for room: a
/// request that finds too little is refused at once, so a counter is all it needs.
struct Room {
    free: AtomicU64,
}

impl Room {
    fn new(units: u64) -> Room {
        Room {
            free: AtomicU64::new(units),
        }
    }

    /// `units` of room, or `None` if less is free.
    fn take(&self, units: u64) -> Option<Taken<'_>> {
        self.free
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |f| {
                f.checked_sub(units)
            })
            .ok()
            .map(|_| Taken { room: self, units })
    }
}

/// Room taken from a [`Room`], given back on drop.
struct Taken<'a> {
    room: &'a Room,
    units: u64,
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        self.room.free.fetch_add(self.units, Ordering::AcqRel);
    }
}

/// Bytes as KiB, rounded up.
fn kib(bytes: u64) -> u64 {
    bytes.div_ceil(1024)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
