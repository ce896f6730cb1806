//! Starting nodes, applications and a raw BITS client for the tests.

use std::{
    io,
    sync::{Arc, Mutex},
};

use backend::{Backend, BackendConfig, Ledger};
use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use node::{Env, MemStore, Node, NodeConfig, NotificationType, Storage};
use probe::{Clock, SharedProbe};
use protocol::{Ack, ByteRange, Packet, packet::Fragment};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::task::JoinSet;
use transport::{
    Body, HttpConn, Listen,
    tcp::{TcpConnect, TcpListen},
};

pub const GUID: &str = protocol::header::PROTOCOL_GUID;

/// A probe that records events and answers fault points with a rule.
pub type TestProbe = probe::Recorder;

/// A running node (stopped when dropped).
pub struct NodeHandle {
    pub addr: String,
    pub node: Arc<Node>,
    pub probe: Arc<TestProbe>,
    _tasks: JoinSet<()>,
}

/// Starts a node on 127.0.0.1 with a given store.
pub async fn start_node_with(cfg: NodeConfig, store: Arc<dyn Storage>, seed: u64) -> NodeHandle {
    start_node_on(cfg, store, seed, TestProbe::quiet()).await
}

pub async fn start_node_on(
    cfg: NodeConfig,
    store: Arc<dyn Storage>,
    seed: u64,
    probe: Arc<TestProbe>,
) -> NodeHandle {
    let listener = TcpListen::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr();
    let env = Env {
        store,
        connector: Arc::new(TcpConnect),
        probe: probe.clone() as SharedProbe,
        rng: ChaCha8Rng::seed_from_u64(seed),
        clock: Clock::starting_now(),
    };
    let node = Node::new(cfg, env).expect("valid config");
    let mut tasks = JoinSet::new();
    let n = node.clone();
    tasks.spawn(async move {
        let _ = n.run(Box::new(listener)).await;
    });
    NodeHandle {
        addr,
        node,
        probe,
        _tasks: tasks,
    }
}

/// A node with in-memory storage; returns the store too.
pub async fn start_node(cfg: NodeConfig) -> (NodeHandle, MemStore) {
    let store = MemStore::new("node");
    let h = start_node_with(cfg, Arc::new(store.clone()), 1).await;
    (h, store)
}

/// A running bitsfarm backend.
pub struct AppHandle {
    pub addr: String,
    pub ledger: Ledger,
    _tasks: JoinSet<()>,
}

pub async fn start_backend(
    cfg: BackendConfig,
    dedupe: bool,
    files: Arc<dyn backend::Files>,
    probe: Arc<TestProbe>,
) -> AppHandle {
    let listener = TcpListen::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr();
    let ledger = Ledger::new(dedupe);
    let env = backend::Env {
        files,
        probe: probe.clone() as SharedProbe,
        clock: Clock::starting_now(),
    };
    let app = Backend::new(cfg, ledger.clone(), env);
    let mut tasks = JoinSet::new();
    tasks.spawn(async move {
        let _ = app.run(Box::new(listener)).await;
    });
    AppHandle {
        addr,
        ledger,
        _tasks: tasks,
    }
}

/// A backend reading by-reference paths from a MemStore.
pub struct MemFiles(pub MemStore);

impl backend::Files for MemFiles {
    fn read(&self, path: &str, each: &mut dyn FnMut(&[u8])) -> io::Result<u64> {
        let chunks = self
            .0
            .read_path(path)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, path.to_owned()))?;
        chunks.iter().for_each(|c| each(c));
        Ok(chunks.iter().map(|c| c.len() as u64).sum())
    }

    fn write(&self, path: &str, data: Bytes) -> io::Result<()> {
        if self.0.write_path(path, data) {
            Ok(())
        } else {
            Err(io::ErrorKind::NotFound.into())
        }
    }
}

/// Node + bitsfarm backend, notification by value or by reference.
pub struct Farm {
    pub node: NodeHandle,
    pub store: MemStore,
    pub app: AppHandle,
}

pub async fn farm(notification: NotificationType, tweak: impl FnOnce(&mut NodeConfig)) -> Farm {
    farm_with(
        notification,
        tweak,
        BackendConfig::default(),
        TestProbe::quiet(),
    )
    .await
}

pub async fn farm_with(
    notification: NotificationType,
    tweak: impl FnOnce(&mut NodeConfig),
    app_cfg: BackendConfig,
    app_probe: Arc<TestProbe>,
) -> Farm {
    let store = MemStore::new("node");
    let app = start_backend(app_cfg, false, Arc::new(MemFiles(store.clone())), app_probe).await;
    let mut cfg = NodeConfig {
        name: "node-1".into(),
        notification,
        notification_url: Some(format!("http://{}/bits/notify", app.addr)),
        ..NodeConfig::default()
    };
    tweak(&mut cfg);
    let node = start_node_with(cfg, Arc::new(store.clone()), 7).await;
    Farm { node, store, app }
}

/// A request an application received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A test application that records notifications and answers with a fixed response.
pub struct Recorder {
    pub addr: String,
    pub seen: Arc<Mutex<Vec<Recorded>>>,
    _tasks: JoinSet<()>,
}

pub async fn start_recorder(
    answer: impl Fn() -> Response<Body> + Send + Sync + 'static,
) -> Recorder {
    let mut listener = TcpListen::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr();
    let seen: Arc<Mutex<Vec<Recorded>>> = Arc::default();
    let answer = Arc::new(answer);
    let mut tasks = JoinSet::new();
    let s = seen.clone();
    tasks.spawn(async move {
        while let Ok(acc) = listener.accept().await {
            let (s, answer) = (s.clone(), answer.clone());
            tokio::spawn(async move {
                let handler = move |req: Request<hyper::body::Incoming>| {
                    let (s, answer) = (s.clone(), answer.clone());
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = transport::server::read_body(body, 1 << 30, &Default::default())
                            .await
                            .unwrap()
                            .concat();
                        s.lock().unwrap().push(Recorded {
                            uri: parts.uri.to_string(),
                            headers: parts.headers,
                            body: body.into(),
                        });
                        answer()
                    }
                };
                let _ = transport::server::serve(acc.io, &Default::default(), handler).await;
            });
        }
    });
    Recorder {
        addr,
        seen,
        _tasks: tasks,
    }
}

/// A raw BITS client on one connection.
pub struct Client {
    pub conn: HttpConn,
    pub host: String,
}

impl Client {
    pub async fn connect(addr: &str) -> Client {
        let conn = HttpConn::open(&TcpConnect, addr, std::time::Duration::from_secs(5))
            .await
            .unwrap();
        Client {
            conn,
            host: addr.to_owned(),
        }
    }

    pub async fn raw(&mut self, mut req: Request<Body>) -> Response<Bytes> {
        req.headers_mut()
            .insert(http::header::HOST, self.host.parse().unwrap());
        self.conn
            .send(req, std::time::Duration::from_secs(30))
            .await
            .expect("response")
    }

    /// Sends a packet and returns the raw response (asserting it is an Ack).
    pub async fn send(&mut self, url: &str, packet: &Packet, body: Bytes) -> Response<Bytes> {
        let req = packet
            .to_request(url.parse().unwrap())
            .map(|()| Body::from(body));
        let resp = self.raw(req).await;
        assert_eq!(
            resp.headers().get("bits-packet-type").map(|v| v.as_bytes()),
            Some(&b"Ack"[..]),
            "not an Ack: {resp:?}"
        );
        assert!(
            resp.headers().contains_key("content-length"),
            "Ack without Content-Length: {resp:?}"
        );
        resp
    }

    pub async fn ack(&mut self, url: &str, packet: &Packet, body: Bytes) -> Ack {
        let resp = self.send(url, packet, body).await;
        Ack::parse(resp.status(), resp.headers()).unwrap()
    }

    pub async fn create(&mut self, url: &str) -> String {
        let ack = self
            .ack(
                url,
                &Packet::CreateSession {
                    protocols: vec![GUID.into()],
                },
                Bytes::new(),
            )
            .await;
        assert_eq!(ack.status, 200, "{ack:?}");
        ack.session_id.unwrap()
    }

    /// Sends bytes `start..end` of `data` as one fragment.
    pub async fn fragment(
        &mut self,
        url: &str,
        session: &str,
        data: &[u8],
        start: usize,
        end: usize,
    ) -> Ack {
        let range = ByteRange::new(start as u64, end as u64, data.len() as u64).unwrap();
        let p = Packet::Fragment(Fragment {
            session_id: session.into(),
            range,
            content_name: None,
        });
        self.ack(url, &p, Bytes::copy_from_slice(&data[start..end]))
            .await
    }

    /// Uploads `data` in `frag`-byte fragments; returns the final Ack.
    pub async fn upload(&mut self, url: &str, session: &str, data: &[u8], frag: usize) -> Ack {
        let mut at = 0;
        loop {
            let end = (at + frag).min(data.len());
            let ack = self.fragment(url, session, data, at, end).await;
            if end == data.len() || ack.status != 200 {
                return ack;
            }
            at = ack.received.unwrap() as usize;
        }
    }

    pub async fn close(&mut self, url: &str, session: &str) -> Ack {
        self.ack(
            url,
            &Packet::CloseSession {
                session_id: session.into(),
            },
            Bytes::new(),
        )
        .await
    }
}

/// Deterministic test data.
pub fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
}

// ---- in-memory transport with tokio's paused clock, for timer tests --------------------------

/// Connections over in-memory pipes, for tests that advance a paused clock.
pub fn duplex() -> (transport::mem::MemConnect, transport::mem::MemListen) {
    transport::mem::pair("duplex")
}
