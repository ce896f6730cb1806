//! The simulated network: named hosts, shared addresses behind a balancer, connections as
//! [`crate::pipe`]s, crashes, restarts and partitions.
//!
//! Like an L4 load balancer, a shared address picks a member per *connection*: every request
//! on a kept-alive connection reaches the same node, and a reconnect may land elsewhere. Each
//! node also keeps its own address, which is what `BITS-Host-Id` names.

use std::{
    collections::{BTreeMap, BTreeSet},
    io,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use probe::{Event, SharedProbe};
use rand::RngExt as _;
use rand_chacha::ChaCha8Rng;
use tokio::sync::mpsc;
use transport::{Accepted, BoxFuture, BoxIo, Connect, Listen};

use crate::pipe::{Break, Pipe};

/// How a shared address chooses a member for a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Policy {
    /// Members in turn.
    RoundRobin,
    /// A member drawn from the run's seeded generator.
    Random,
    /// The member with the fewest open connections through this address (ties: first).
    LeastConnections,
    /// The same member for the same source while it is up (hash of the source name).
    SourceAffinity,
}

pub use probe::CrashKind;

/// Link settings.
#[derive(Debug, Clone, Copy)]
pub struct NetConfig {
    /// One-way latency of every link (whole milliseconds: the timer resolution).
    pub latency: Duration,
    /// Each connection's latency is `latency` plus a whole number of milliseconds up to this,
    /// drawn from the network's generator when the connection opens (0: no draw at all).
    pub jitter: Duration,
    /// Bytes in flight per direction before writers wait.
    pub window: usize,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            latency: Duration::from_millis(1),
            jitter: Duration::ZERO,
            window: 256 << 10,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HostState {
    Up,
    Down(CrashKind),
}

struct Host {
    state: HostState,
    boot: u64,
    listener: Option<mpsc::UnboundedSender<Accepted>>,
    /// Set when the current listener is handed over to a new one ([`Net::hand_over`]).
    handed: Arc<std::sync::atomic::AtomicBool>,
}

struct Shared {
    members: Vec<String>,
    policy: Policy,
    next: usize,
}

struct Conn {
    a: String,
    b: String,
    via: Option<String>,
    pipe: Pipe,
}

struct Inner {
    cfg: NetConfig,
    hosts: BTreeMap<String, Host>,
    shared: BTreeMap<String, Shared>,
    partitions: BTreeSet<(String, String)>,
    conns: BTreeMap<u64, Conn>,
    /// Connections whose pipes stopped carrying bytes since the last connect.
    closed: crate::pipe::Closed,
    next_conn: u64,
    rng: ChaCha8Rng,
    probe: SharedProbe,
}

/// The network of one simulation. Clones share it.
#[derive(Clone)]
pub struct Net {
    inner: Arc<Mutex<Inner>>,
}

enum Decision {
    Connected(BoxIo),
    Refused(String),
    Unanswered,
}

fn pair_key(a: &str, b: &str) -> (String, String) {
    if a <= b {
        (a.to_owned(), b.to_owned())
    } else {
        (b.to_owned(), a.to_owned())
    }
}

fn host_of(authority: &str) -> &str {
    match authority.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    }
}

impl Net {
    /// An empty network; `rng` drives the random balancer; `probe` receives connection events.
    pub fn new(cfg: NetConfig, rng: ChaCha8Rng, probe: SharedProbe) -> Net {
        Net {
            inner: Arc::new(Mutex::new(Inner {
                cfg,
                hosts: BTreeMap::new(),
                shared: BTreeMap::new(),
                partitions: BTreeSet::new(),
                conns: BTreeMap::new(),
                closed: Default::default(),
                next_conn: 0,
                rng,
                probe,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a host that only connects (a client); it is up.
    pub fn add_client(&self, name: &str) {
        self.lock().hosts.insert(
            name.to_owned(),
            Host {
                state: HostState::Up,
                boot: 0,
                listener: None,
                handed: Arc::default(),
            },
        );
    }

    /// Brings a host up listening on its name (first start or restart) and returns its
    /// listener.
    pub fn listen(&self, name: &str) -> SimListen {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut inner = self.lock();
        let host = inner.hosts.entry(name.to_owned()).or_insert(Host {
            state: HostState::Up,
            boot: 0,
            listener: None,
            handed: Arc::default(),
        });
        host.state = HostState::Up;
        host.listener = Some(tx);
        host.handed = Arc::default();
        SimListen {
            rx,
            addr: name.to_owned(),
            handed: host.handed.clone(),
        }
    }

    /// A new listener for a host that is up, taking over its address from the current one
    /// (an IIS worker process recycled with overlap): new connections go to it, the old
    /// listener ends with [`transport::server::HANDED_OVER`], and connections already open
    /// stay with whoever accepted them. `None` if the host is down.
    pub fn hand_over(&self, name: &str) -> Option<SimListen> {
        let mut inner = self.lock();
        let host = inner.hosts.get_mut(name)?;
        if host.state != HostState::Up {
            return None;
        }
        host.handed.store(true, std::sync::atomic::Ordering::SeqCst);
        let (tx, rx) = mpsc::unbounded_channel();
        host.listener = Some(tx);
        host.handed = Arc::default();
        Some(SimListen {
            rx,
            addr: name.to_owned(),
            handed: host.handed.clone(),
        })
    }

    /// Declares a shared address balancing over `members`.
    pub fn add_shared(&self, name: &str, members: Vec<String>, policy: Policy) {
        self.lock().shared.insert(
            name.to_owned(),
            Shared {
                members,
                policy,
                next: 0,
            },
        );
    }

    /// A connector for `from`, valid while `from` stays in its current boot: after a crash, a
    /// dead host's leftover tasks cannot open connections.
    pub fn connector(&self, from: &str) -> SimConnect {
        let boot = self.lock().hosts.get(from).map_or(0, |h| h.boot);
        SimConnect {
            net: self.clone(),
            from: from.to_owned(),
            boot,
        }
    }

    /// Whether a host is up.
    pub fn is_up(&self, name: &str) -> bool {
        self.lock()
            .hosts
            .get(name)
            .is_some_and(|h| h.state == HostState::Up)
    }

    /// The host's boot number (incremented by each crash).
    pub fn boot(&self, name: &str) -> u64 {
        self.lock().hosts.get(name).map_or(0, |h| h.boot)
    }

    /// Takes a host down now: it stops accepting, and every connection it is part of breaks
    /// (reset or silence) at once.
    pub fn crash(&self, name: &str, kind: CrashKind) {
        let mut inner = self.lock();
        let Some(host) = inner.hosts.get_mut(name) else {
            return;
        };
        host.state = HostState::Down(kind);
        host.boot += 1;
        host.listener = None;
        let how = match kind {
            CrashKind::Kill => Break::Reset,
            CrashKind::PowerCut => Break::Silence,
        };
        for c in inner.conns.values().filter(|c| c.a == name || c.b == name) {
            c.pipe.sever(how);
        }
        inner.probe.event(Event::Crashed {
            host: name.to_owned(),
            kind,
        });
    }

    /// Cuts one connection (reset): bytes the peer has not read are lost.
    pub fn cut(&self, conn: u64, reason: &str) -> bool {
        let inner = self.lock();
        let Some(c) = inner.conns.get(&conn) else {
            return false;
        };
        c.pipe.sever(Break::Reset);
        inner.probe.event(Event::ConnectionCut {
            conn,
            reason: reason.to_owned(),
        });
        true
    }

    /// Stops traffic between two parties: their connections go silent and new connects go
    /// unanswered until [`Net::heal`].
    pub fn partition(&self, a: &str, b: &str) {
        let mut inner = self.lock();
        inner.partitions.insert(pair_key(a, b));
        for c in inner
            .conns
            .values()
            .filter(|c| pair_key(&c.a, &c.b) == pair_key(a, b))
        {
            c.pipe.sever(Break::Silence);
        }
        inner.probe.event(Event::Partitioned {
            a: a.to_owned(),
            b: b.to_owned(),
        });
    }

    /// Lets traffic between two parties resume (for new connections).
    pub fn heal(&self, a: &str, b: &str) {
        let mut inner = self.lock();
        inner.partitions.remove(&pair_key(a, b));
        inner.probe.event(Event::Healed {
            a: a.to_owned(),
            b: b.to_owned(),
        });
    }

    /// Open connections whose accepting side is `name`.
    pub fn open_connections(&self, name: &str) -> usize {
        self.lock()
            .conns
            .values()
            .filter(|c| c.b == name && c.pipe.is_open())
            .count()
    }

    fn decide(&self, from: &str, boot: u64, authority: &str) -> Decision {
        let mut inner = self.lock();
        let inner = &mut *inner;
        match inner.hosts.get(from) {
            Some(h) if h.boot == boot && h.state == HostState::Up => {}
            _ => return Decision::Refused(format!("{from} is down")),
        }
        // Closed connections are forgotten; the registry stays as small as what is open. The
        // pipes report their closing, so this costs what closed, not what is open.
        let closed = std::mem::take(&mut *inner.closed.lock().unwrap_or_else(|p| p.into_inner()));
        for id in closed {
            inner.conns.remove(&id);
        }
        let name = host_of(authority);
        let (target, via) = match inner.shared.get_mut(name) {
            Some(shared) => {
                let hosts = &inner.hosts;
                let healthy: Vec<&String> = shared
                    .members
                    .iter()
                    .filter(|m| {
                        hosts
                            .get(*m)
                            .is_some_and(|h| h.state == HostState::Up && h.listener.is_some())
                    })
                    .collect();
                if healthy.is_empty() {
                    inner.probe.event(Event::ConnectFailed {
                        from: from.to_owned(),
                        to: name.to_owned(),
                        reason: "no live member".into(),
                    });
                    return Decision::Refused(format!("no live member behind {name}"));
                }
                let pick = match shared.policy {
                    Policy::RoundRobin => {
                        // The next member in order that is up.
                        let n = shared.members.len();
                        let mut chosen = None;
                        for i in 0..n {
                            let m = &shared.members[(shared.next + i) % n];
                            if healthy.contains(&m) {
                                chosen = Some(m.clone());
                                shared.next = (shared.next + i + 1) % n;
                                break;
                            }
                        }
                        chosen.expect("a healthy member exists")
                    }
                    Policy::Random => healthy[inner.rng.random_range(0..healthy.len())].clone(),
                    Policy::LeastConnections => {
                        let open = |m: &str| {
                            inner
                                .conns
                                .values()
                                .filter(|c| {
                                    c.b == m && c.via.as_deref() == Some(name) && c.pipe.is_open()
                                })
                                .count()
                        };
                        healthy
                            .iter()
                            .min_by_key(|m| open(m))
                            .map(|m| (*m).clone())
                            .expect("non-empty")
                    }
                    Policy::SourceAffinity => {
                        let h = protocol_hash(from);
                        healthy[(h % healthy.len() as u64) as usize].clone()
                    }
                };
                (pick, Some(name.to_owned()))
            }
            None => (name.to_owned(), None),
        };
        if inner.partitions.contains(&pair_key(from, &target)) {
            return Decision::Unanswered;
        }
        let Some(host) = inner.hosts.get(&target) else {
            return Decision::Refused(format!("unknown host {target}"));
        };
        match (host.state, &host.listener) {
            (HostState::Down(CrashKind::PowerCut), _) => Decision::Unanswered,
            (HostState::Up, Some(tx)) => {
                inner.next_conn += 1;
                let conn = inner.next_conn;
                let jitter_ms = inner.cfg.jitter.as_millis() as u64;
                let latency = if jitter_ms == 0 {
                    inner.cfg.latency
                } else {
                    inner.cfg.latency + Duration::from_millis(inner.rng.random_range(0..=jitter_ms))
                };
                let (pipe, client_end, server_end) = Pipe::pair_reporting(
                    latency,
                    inner.cfg.window,
                    Some((inner.closed.clone(), conn)),
                );
                let accepted = Accepted {
                    io: Box::new(server_end),
                    peer: from.to_owned(),
                    conn,
                };
                if tx.send(accepted).is_err() {
                    return Decision::Refused(format!("{target} is not accepting"));
                }
                inner.conns.insert(
                    conn,
                    Conn {
                        a: from.to_owned(),
                        b: target.clone(),
                        via: via.clone(),
                        pipe,
                    },
                );
                inner.probe.event(Event::Connected {
                    from: from.to_owned(),
                    to: target,
                    via,
                    conn,
                });
                Decision::Connected(Box::new(client_end))
            }
            _ => Decision::Refused(format!("{target} refused the connection")),
        }
    }

    async fn connect(&self, from: &str, boot: u64, authority: &str) -> io::Result<BoxIo> {
        let rtt = self.lock().cfg.latency * 2;
        match self.decide(from, boot, authority) {
            Decision::Connected(io) => {
                tokio::time::sleep(rtt).await;
                Ok(io)
            }
            Decision::Refused(why) => {
                tokio::time::sleep(rtt).await;
                self.lock().probe.event(Event::ConnectFailed {
                    from: from.to_owned(),
                    to: authority.to_owned(),
                    reason: why.clone(),
                });
                Err(io::Error::new(io::ErrorKind::ConnectionRefused, why))
            }
            // The SYN is never answered; the caller's connect timeout ends the wait.
            Decision::Unanswered => std::future::pending().await,
        }
    }
}

/// A stable hash of a name (FNV-1a), for source affinity.
fn protocol_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Accepts simulated connections for one host.
pub struct SimListen {
    rx: mpsc::UnboundedReceiver<Accepted>,
    addr: String,
    handed: Arc<std::sync::atomic::AtomicBool>,
}

impl Listen for SimListen {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<Accepted>> {
        Box::pin(async move {
            self.rx.recv().await.ok_or_else(|| {
                if self.handed.load(std::sync::atomic::Ordering::SeqCst) {
                    io::Error::from(transport::server::HANDED_OVER)
                } else {
                    io::Error::from(io::ErrorKind::NotConnected)
                }
            })
        })
    }

    fn local_addr(&self) -> String {
        self.addr.clone()
    }
}

/// Opens simulated connections on behalf of one host.
#[derive(Clone)]
pub struct SimConnect {
    net: Net,
    from: String,
    boot: u64,
}

impl Connect for SimConnect {
    fn connect<'a>(&'a self, authority: &'a str) -> BoxFuture<'a, io::Result<BoxIo>> {
        Box::pin(self.net.connect(&self.from, self.boot, authority))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use hyper::body as hyper_body;
    use rand::SeedableRng;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn net() -> Net {
        Net::new(
            NetConfig::default(),
            ChaCha8Rng::seed_from_u64(1),
            probe::none(),
        )
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
    }

    #[test]
    fn connects_cost_a_round_trip_and_carry_bytes() {
        rt().block_on(async {
            let net = net();
            net.add_client("c");
            let mut l = net.listen("node-1");
            let t0 = tokio::time::Instant::now();
            let mut io = net.connector("c").connect("node-1:80").await.unwrap();
            assert_eq!(t0.elapsed(), Duration::from_millis(2));
            let mut acc = l.accept().await.unwrap();
            assert_eq!(acc.peer, "c");
            io.write_all(b"ping").await.unwrap();
            let mut buf = [0u8; 4];
            acc.io.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"ping");
        });
    }

    #[test]
    fn a_down_node_refuses_and_a_power_cut_node_is_silent() {
        rt().block_on(async {
            let net = net();
            net.add_client("c");
            let _l = net.listen("n");
            net.crash("n", CrashKind::Kill);
            let e = net.connector("c").connect("n").await.err().unwrap();
            assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
            let _l = net.listen("n");
            net.crash("n", CrashKind::PowerCut);
            let r = tokio::time::timeout(Duration::from_secs(60), net.connector("c").connect("n"))
                .await;
            assert!(r.is_err(), "a power-cut host never answers");
            assert!(net.connector("c").connect("nowhere").await.is_err());
        });
    }

    #[test]
    fn a_kill_resets_open_connections_and_a_crashed_host_cannot_connect() {
        rt().block_on(async {
            let net = net();
            net.add_client("c");
            let mut l = net.listen("n");
            let _app = net.listen("app");
            let zombie = net.connector("n");
            let mut io = net.connector("c").connect("n").await.unwrap();
            let mut acc = l.accept().await.unwrap();
            acc.io.write_all(b"ack").await.unwrap();
            net.crash("n", CrashKind::Kill);
            let mut buf = [0u8; 3];
            assert_eq!(
                io.read(&mut buf).await.unwrap_err().kind(),
                io::ErrorKind::ConnectionReset
            );
            assert!(
                zombie.connect("app").await.is_err(),
                "a crashed host's tasks cannot connect"
            );
            let _l = net.listen("n");
            assert!(
                zombie.connect("app").await.is_err(),
                "not even after its restart"
            );
            assert!(net.connector("n").connect("app").await.is_ok());
        });
    }

    #[test]
    fn a_partition_silences_and_heals() {
        rt().block_on(async {
            let net = net();
            net.add_client("c");
            let mut l = net.listen("n");
            let mut io = net.connector("c").connect("n").await.unwrap();
            let _acc = l.accept().await.unwrap();
            net.partition("n", "c");
            let mut buf = [0u8; 1];
            assert!(
                tokio::time::timeout(Duration::from_secs(60), io.read(&mut buf))
                    .await
                    .is_err()
            );
            assert!(
                tokio::time::timeout(Duration::from_secs(60), net.connector("c").connect("n"))
                    .await
                    .is_err()
            );
            net.heal("c", "n");
            assert!(net.connector("c").connect("n").await.is_ok());
        });
    }

    async fn spread(
        policy: Policy,
        sources: &[&str],
        down: Option<&str>,
    ) -> BTreeMap<String, usize> {
        let net = net();
        let mut listeners: Vec<SimListen> =
            ["n1", "n2", "n3"].iter().map(|n| net.listen(n)).collect();
        net.add_shared("farm", vec!["n1".into(), "n2".into(), "n3".into()], policy);
        if let Some(d) = down {
            net.crash(d, CrashKind::Kill);
        }
        let mut held = Vec::new();
        for s in sources {
            net.add_client(s);
            held.push(net.connector(s).connect("farm").await.unwrap());
        }
        let mut got = BTreeMap::new();
        for l in &mut listeners {
            while let Ok(a) = l.rx.try_recv() {
                *got.entry(l.addr.clone()).or_insert(0) += 1;
                drop(a);
            }
        }
        got
    }

    #[test]
    fn balancer_policies_spread_connections() {
        rt().block_on(async {
            let many: Vec<String> = (0..30).map(|i| format!("c{i}")).collect();
            let many: Vec<&str> = many.iter().map(String::as_str).collect();
            let rr = spread(Policy::RoundRobin, &many, None).await;
            assert_eq!(rr.values().copied().collect::<Vec<_>>(), vec![10, 10, 10]);
            let rr_down = spread(Policy::RoundRobin, &many, Some("n2")).await;
            assert_eq!(rr_down.get("n2"), None, "a dead member gets nothing");
            assert_eq!(rr_down.values().sum::<usize>(), 30);
            let random = spread(Policy::Random, &many, None).await;
            assert_eq!(random.len(), 3, "random reaches every member: {random:?}");
            assert!(random.values().all(|&n| n >= 4), "{random:?}");
            // Least connections with every connection held open: perfectly even.
            let lc = spread(Policy::LeastConnections, &many, None).await;
            assert_eq!(lc.values().copied().collect::<Vec<_>>(), vec![10, 10, 10]);
            // Source affinity: one source always lands on the same member.
            let same = spread(Policy::SourceAffinity, &["c7"; 12], None).await;
            assert_eq!(same.len(), 1, "{same:?}");
            let sa = spread(Policy::SourceAffinity, &many, None).await;
            assert!(sa.len() >= 2, "different sources spread: {sa:?}");
        });
    }

    #[test]
    fn hyper_runs_unmodified_over_the_network() {
        rt().block_on(async {
            let net = net();
            net.add_client("c");
            let mut l = net.listen("srv");
            tokio::spawn(async move {
                let acc = l.accept().await.unwrap();
                let handler = |req: http::Request<hyper_body::Incoming>| async move {
                    let n =
                        transport::server::read_body(req.into_body(), 1 << 20, &Default::default())
                            .await
                            .unwrap()
                            .concat()
                            .len();
                    http::Response::new(transport::Body::from(format!("got {n}")))
                };
                transport::server::serve(acc.io, &Default::default(), handler)
                    .await
                    .unwrap();
            });
            let mut conn =
                transport::HttpConn::open(&net.connector("c"), "srv", Duration::from_secs(5))
                    .await
                    .unwrap();
            for size in [0usize, 10, 300_000] {
                let mut req = http::Request::new(transport::Body::from(vec![7u8; size]));
                *req.method_mut() = http::Method::POST;
                req.headers_mut().insert("host", "srv".parse().unwrap());
                let resp = conn.send(req, Duration::from_secs(5)).await.unwrap();
                assert_eq!(resp.into_body(), bytes::Bytes::from(format!("got {size}")));
            }
        });
    }
}
