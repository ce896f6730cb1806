//! The server under test: a node and its application (by value, dedupe, token), over
//! in-memory streams or loopback TCP.

use std::{io, path::PathBuf, sync::Arc};

use backend::{Backend, BackendConfig, Ledger};
use node::{DiskStore, MemStore, Node, NodeConfig, NotificationType, Storage};
use probe::Clock;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::task::JoinSet;
use transport::{
    BoxFuture, BoxIo, Connect, Listen,
    tcp::{TcpConnect, TcpListen},
};

use crate::Dial;

/// Settings of the server under test.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The node's idle and body timeout, seconds.
    pub idle_timeout_s: u64,
    /// Most open sessions.
    pub max_sessions: u64,
    /// Most bytes held by open sessions.
    pub max_session_bytes: u64,
    /// Sessions without progress expire after this long (sessions without a byte after a
    /// fifth of it), checked this often: a long campaign opens sessions it never finishes,
    /// and must not fill the node up for good.
    pub session_timeout_s: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            idle_timeout_s: 120,
            max_sessions: 1000,
            max_session_bytes: 256 << 20,
            session_timeout_s: 60,
        }
    }
}

/// Dials the server through a [`Dial`], whatever the job asks for.
struct DialConnect(Dial);

impl Connect for DialConnect {
    fn connect<'a>(&'a self, _authority: &'a str) -> BoxFuture<'a, io::Result<BoxIo>> {
        (self.0)()
    }
}

/// A running node and application.
pub struct Server {
    dial: Dial,
    store: Arc<dyn Storage>,
    ledger: Ledger,
    root: Option<PathBuf>,
    node_addr: Option<String>,
    _tasks: JoinSet<()>,
}

fn node_config(cfg: &ServerConfig, app: &str) -> NodeConfig {
    NodeConfig {
        name: "node".into(),
        notification: NotificationType::ByValue,
        notification_url: Some(format!("http://{app}/bits/notify")),
        idle_timeout_s: cfg.idle_timeout_s,
        max_sessions: Some(cfg.max_sessions),
        max_session_bytes: Some(cfg.max_session_bytes),
        session_timeout_s: cfg.session_timeout_s,
        empty_session_timeout_s: Some((cfg.session_timeout_s / 5).max(1)),
        cleanup_interval_s: (cfg.session_timeout_s / 5).max(1),
        max_buffered_bytes: 64 << 20,
        app_token: Some("fuzz-token".into()),
        ..NodeConfig::default()
    }
}

fn app(ledger: Ledger, clock: Clock) -> Arc<Backend> {
    Backend::new(
        BackendConfig {
            name: "app".into(),
            token: Some("fuzz-token".into()),
            ..BackendConfig::default()
        },
        ledger,
        backend::Env {
            files: Arc::new(NoFiles),
            probe: probe::none(),
            clock,
        },
    )
}

struct NoFiles;

impl backend::Files for NoFiles {
    fn read(&self, path: &str, _: &mut dyn FnMut(&[u8])) -> io::Result<u64> {
        Err(io::Error::new(io::ErrorKind::NotFound, path.to_owned()))
    }

    fn write(&self, path: &str, _: bytes::Bytes) -> io::Result<()> {
        Err(io::Error::new(io::ErrorKind::NotFound, path.to_owned()))
    }
}

fn start(
    tasks: &mut JoinSet<()>,
    node: Arc<Node>,
    node_listener: Box<dyn Listen>,
    app: Arc<Backend>,
    app_listener: Box<dyn Listen>,
) {
    tasks.spawn(async move {
        let _ = node.run(node_listener).await;
    });
    tasks.spawn(async move {
        let _ = app.run(app_listener).await;
    });
}

impl Server {
    /// A node with in-memory storage over in-memory streams.
    pub async fn in_memory(cfg: ServerConfig) -> Server {
        let clock = Clock::starting_now();
        let (app_connect, app_listen) = transport::mem::pair("app");
        let (node_connect, node_listen) = transport::mem::pair("node");
        let store = Arc::new(MemStore::new("node"));
        let node = Node::new(
            node_config(&cfg, "app"),
            node::Env {
                store: store.clone(),
                connector: Arc::new(app_connect),
                probe: probe::none(),
                rng: ChaCha8Rng::seed_from_u64(1),
                clock,
            },
        )
        .expect("valid settings");
        let ledger = Ledger::new(true);
        let mut tasks = JoinSet::new();
        start(
            &mut tasks,
            node,
            Box::new(node_listen),
            app(ledger.clone(), clock),
            Box::new(app_listen),
        );
        let dial: Dial = Arc::new(move || {
            let c = node_connect.clone();
            Box::pin(async move { c.open() })
        });
        Server {
            dial,
            store,
            ledger,
            root: None,
            node_addr: None,
            _tasks: tasks,
        }
    }

    /// A node with a disk store in a fresh temporary directory, and its application, on
    /// loopback TCP.
    pub async fn loopback(cfg: ServerConfig) -> Result<Server, String> {
        let clock = Clock::starting_now();
        let root = std::env::temp_dir().join(format!(
            "bitsfarm-fuzz-{}-{}",
            std::process::id(),
            clock.epoch().elapsed().as_nanos()
        ));
        let disk = DiskStore::open(&root).map_err(|e| format!("upload root: {e}"))?;
        let app_listener = TcpListen::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let node_listener = TcpListen::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let app_addr = app_listener.local_addr();
        let node_addr = node_listener.local_addr();
        let store: Arc<dyn Storage> = Arc::new(disk);
        let node = Node::new(
            node_config(&cfg, &app_addr),
            node::Env {
                store: store.clone(),
                connector: Arc::new(TcpConnect),
                probe: probe::none(),
                rng: ChaCha8Rng::seed_from_u64(2),
                clock,
            },
        )
        .map_err(|e| e.to_string())?;
        let ledger = Ledger::new(true);
        let mut tasks = JoinSet::new();
        start(
            &mut tasks,
            node,
            Box::new(node_listener),
            app(ledger.clone(), clock),
            Box::new(app_listener),
        );
        let addr_for_dial = node_addr.clone();
        let dial: Dial = Arc::new(move || {
            let addr = addr_for_dial.clone();
            Box::pin(async move { TcpConnect.connect(&addr).await })
        });
        Ok(Server {
            dial,
            store,
            ledger,
            root: Some(root),
            node_addr: Some(node_addr),
            _tasks: tasks,
        })
    }

    /// The node's TCP address (loopback servers only).
    pub fn node_addr(&self) -> Option<String> {
        self.node_addr.clone()
    }

    /// Opens connections to the node.
    pub fn dial(&self) -> Dial {
        self.dial.clone()
    }

    /// The application's ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The node's store.
    pub fn store(&self) -> &Arc<dyn Storage> {
        &self.store
    }

    /// A connector for client jobs (every connection goes to the node).
    pub fn connector(&self) -> Arc<dyn Connect> {
        Arc::new(DialConnect(self.dial.clone()))
    }

    /// After a campaign: the node still serves an ordinary upload, delivered once with the
    /// right bytes.
    pub async fn check_after(&self) -> Result<(), String> {
        let payload: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
        let cfg = client::JobConfig {
            name: "after".into(),
            url: "http://node/after/check.bin".into(),
            fragment_size: 16 << 10,
            transaction_id: true,
            min_retry_delay_s: 5,
            no_progress_timeout_s: 600,
            ..client::JobConfig::default()
        };
        let job = client::Job::new(
            cfg,
            payload,
            client::Env {
                connector: self.connector(),
                probe: probe::none(),
                rng: ChaCha8Rng::seed_from_u64(3),
                clock: Clock::starting_now(),
            },
        )
        .map_err(|e| e.to_string())?;
        let report = job.run().await;
        if report.state != client::JobState::Acknowledged {
            return Err(format!(
                "after the campaign an ordinary upload failed: {:?}",
                report.error
            ));
        }
        let delivered: Vec<_> = self
            .ledger
            .deliveries()
            .into_iter()
            .filter(|d| d.file == "/after/check.bin")
            .collect();
        match delivered.as_slice() {
            [d] if d.verification == backend::Verification::Verified => Ok(()),
            other => Err(format!(
                "after the campaign the check upload was delivered as {other:?}"
            )),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(root) = &self.root {
            let _ = std::fs::remove_dir_all(root);
        }
    }
}
