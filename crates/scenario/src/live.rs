//! The live farm: a scenario's farm on real sockets in real time. The same farm code as the
//! simulation ([`crate::farm`]) over a [`Network`] of TCP: every host listens on a loopback
//! port of its own behind a single-member [`live::Balancer`] (its front, on the address the
//! farm gives it: so a crash can reset or silence its connections and close its port), and the
//! shared address `farm` is a balancer over the nodes with the scenario's policy. The shared
//! address forwards to a node's own port, not to its front (one relay between a client and a
//! node, not two; a crash is told to both balancers, so either resets or silences what it
//! forwards). Hosts reach each other by name, or by the address they advertise, through
//! [`NameConnect`].
//!
//! The network keeps a handle on every connection a host accepted (numbered across the farm:
//! `drop-response` cuts the node's side of one, so the client never hears the answer) and on
//! every connection a host opened by name (a partition silences those between the two sides,
//! and new connects between them go unanswered). It reports crashes, cuts and partitions to
//! the run's probe, like the simulator.
//!
//! Not carried out live: partitions with a client ([`cannot`]; clients reach the nodes through
//! the balancer, which cannot tell whose connection it forwards). One difference from the
//! simulation: a powered-off host's port is closed, so connects to it are refused at once
//! where the simulator leaves them unanswered until the client's connect timeout (a port
//! cannot drop SYNs without privileges).
//!
//! **Invariant:** real time and OS randomness enter here and in the CLI's live commands only.

use std::{
    collections::{BTreeMap, BTreeSet},
    io,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use std::{
    os::fd::{AsFd as _, OwnedFd},
    pin::Pin,
    sync::{
        Weak,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
};

use probe::{CrashKind, Event, SharedProbe};
use transport::{BoxFuture, BoxIo, Connect, Listen};

use crate::{
    farm::{Network, RunResult, run_farm},
    fault::Fabric,
    log::Sink,
    spec::{Action, Scenario},
};

#[derive(Default)]
struct Inner {
    /// What a name dials: a host's front, or the shared address.
    addrs: BTreeMap<String, SocketAddr>,
    /// What a host is called where clients reach it (its `BITS-Host-Id`), by name.
    advertised: BTreeMap<String, String>,
    /// Front listeners bound up front, taken when their host first listens.
    unclaimed: BTreeMap<String, std::net::TcpListener>,
    /// The single-member balancer in front of each host.
    fronts: BTreeMap<String, live::Balancer>,
    /// Each host's own port in its current life (behind its front), where the shared address
    /// forwards.
    listening: BTreeMap<String, SocketAddr>,
    /// The shared address's balancer and its members.
    shared: Option<(live::Balancer, Vec<String>)>,
    up: BTreeSet<String>,
    boots: BTreeMap<String, u64>,
    partitions: BTreeSet<(String, String)>,
    /// The shared address's listener, until the farm puts its balancer on it.
    shared_listener: Option<std::net::TcpListener>,
    /// Where the network's own events go (crashes, cuts, partitions).
    probe: Option<SharedProbe>,
    /// Connection numbers, unique across the farm (a fault names a connection by it).
    next_conn: u64,
    /// Connections the hosts accepted and have open: their host, and a handle to cut them.
    accepted: BTreeMap<u64, (String, OwnedFd)>,
    /// Connections hosts opened by name and have open: who dialled whom, and the switch that
    /// silences them when the two are partitioned.
    dialed: BTreeMap<u64, (String, String, Arc<AtomicBool>)>,
    /// HTTPS on the nodes: their certificate, and how the farm's own clients speak to them
    /// (without checking it: they are bitsfarm's clients, the certificate is the user's).
    tls: Option<(
        Arc<transport::tls::ServerSettings>,
        Arc<transport::tls::ClientSettings>,
    )>,
}

impl Inner {
    fn event(&self, event: Event) {
        if let Some(p) = &self.probe {
            p.event(event);
        }
    }
}

/// A connection the live farm keeps a handle on: it forgets it when dropped, and goes silent
/// (reads and writes never complete, like packets dropped) when its switch is set.
struct Tracked {
    io: tokio::net::TcpStream,
    conn: u64,
    silenced: Option<Arc<AtomicBool>>,
    net: Weak<Mutex<Inner>>,
}

impl Tracked {
    fn silent(&self) -> bool {
        self.silenced
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if let Some(net) = self.net.upgrade() {
            let mut inner = net.lock().unwrap_or_else(|p| p.into_inner());
            inner.accepted.remove(&self.conn);
            inner.dialed.remove(&self.conn);
        }
    }
}

impl tokio::io::AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.silent() {
            return Poll::Pending;
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.silent() {
            return Poll::Pending;
        }
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.silent() {
            return Poll::Pending;
        }
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Where a live farm listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The shared address. With a port other than 0, node `i` listens on the port `i` above
    /// it and the built-in application on the one after the last node, on the same IP; with
    /// port 0, each on a free port.
    pub shared: SocketAddr,
    /// Nodes (`node-1` ... `node-N`).
    pub nodes: u32,
    /// Whether the built-in application runs (not with `--app-url`).
    pub app: bool,
    /// The host name or IP clients use to reach this machine, for the nodes' `BITS-Host-Id`
    /// (default: the shared address's IP, or the machine's name when that is 0.0.0.0).
    pub advertise: Option<String>,
}

/// Loopback TCP as a farm's network. Clones share it.
#[derive(Clone)]
pub struct LiveNet {
    inner: Arc<Mutex<Inner>>,
    /// Turns true once the shared address is up (every host has started).
    ready: tokio::sync::watch::Sender<bool>,
}

fn pair(a: &str, b: &str) -> (String, String) {
    if a <= b {
        (a.to_owned(), b.to_owned())
    } else {
        (b.to_owned(), a.to_owned())
    }
}

/// Binds a loopback listener at once (the farm's code is synchronous where it starts hosts).
fn bind() -> io::Result<tokio::net::TcpListener> {
    tokio_listener(std::net::TcpListener::bind("127.0.0.1:0")?)
}

fn tokio_listener(l: std::net::TcpListener) -> io::Result<tokio::net::TcpListener> {
    l.set_nonblocking(true)?;
    tokio::net::TcpListener::from_std(l)
}

/// A bound address as others on this machine dial it (0.0.0.0 is dialled on loopback).
fn dialable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    }
}

/// This machine's name (for `BITS-Host-Id` when the farm listens on every interface).
fn machine_name() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

impl LiveNet {
    /// Binds every address of `layout` (the shared address and each host's), so that an
    /// address in use is an error here rather than later; the hosts start with the farm.
    pub fn bind(layout: &Layout) -> io::Result<LiveNet> {
        let shared = std::net::TcpListener::bind(layout.shared).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot listen on {}: {e}", layout.shared))
        })?;
        let shared_addr = shared.local_addr()?;
        let fixed = layout.shared.port() != 0;
        let host = match &layout.advertise {
            Some(h) => h.clone(),
            None if shared_addr.ip().is_unspecified() => machine_name(),
            None => shared_addr.ip().to_string(),
        };
        let mut inner = Inner {
            shared_listener: Some(shared),
            ..Inner::default()
        };
        inner
            .addrs
            .insert(crate::farm::SHARED.to_owned(), dialable(shared_addr));
        inner.advertised.insert(
            crate::farm::SHARED.to_owned(),
            format!("{host}:{}", shared_addr.port()),
        );
        let mut hosts: Vec<String> = (1..=layout.nodes).map(|i| format!("node-{i}")).collect();
        if layout.app {
            hosts.push(crate::farm::BACKEND.to_owned());
        }
        for (i, name) in hosts.into_iter().enumerate() {
            let at = if fixed {
                let port =
                    u16::try_from(usize::from(layout.shared.port()) + i + 1).map_err(|_| {
                        io::Error::new(
                            io::ErrorKind::InvalidInput,
                            format!(
                                "{name} would listen past port 65535 (use a lower --listen port)"
                            ),
                        )
                    })?;
                SocketAddr::new(layout.shared.ip(), port)
            } else {
                SocketAddr::new(layout.shared.ip(), 0)
            };
            let l = std::net::TcpListener::bind(at).map_err(|e| {
                io::Error::new(e.kind(), format!("cannot listen on {at} for {name}: {e}"))
            })?;
            let addr = l.local_addr()?;
            inner.addrs.insert(name.clone(), dialable(addr));
            inner
                .advertised
                .insert(name.clone(), format!("{host}:{}", addr.port()));
            inner.unclaimed.insert(name, l);
        }
        Ok(LiveNet {
            inner: Arc::new(Mutex::new(inner)),
            ready: tokio::sync::watch::channel(false).0,
        })
    }

    /// Serves HTTPS on every node (the shared address forwards TLS connections whole, as an L4
    /// balancer does); the application stays on HTTP.
    pub fn serve_tls(&self, server: Arc<transport::tls::ServerSettings>) -> io::Result<()> {
        let client = transport::tls::client_config(&transport::tls::Trust {
            ca_files: Vec::new(),
            insecure: true,
        })
        .map_err(|e| io::Error::other(e.to_string()))?;
        self.lock().tls = Some((server, client));
        Ok(())
    }

    /// Reports the network's own events (crashes, cuts, partitions) to `probe`.
    fn set_probe(&self, probe: SharedProbe) {
        self.lock().probe = Some(probe);
    }

    /// Numbers an accepted connection and keeps a handle to cut it.
    fn track_accepted(&self, host: &str, stream: tokio::net::TcpStream) -> (BoxIo, u64) {
        let mut inner = self.lock();
        inner.next_conn += 1;
        let conn = inner.next_conn;
        if let Ok(fd) = stream.as_fd().try_clone_to_owned() {
            inner.accepted.insert(conn, (host.to_owned(), fd));
        }
        let io = Tracked {
            io: stream,
            conn,
            silenced: None,
            net: Arc::downgrade(&self.inner),
        };
        (Box::new(io), conn)
    }

    /// Keeps a handle on a connection `from` opened to `to`, silenced while they are
    /// partitioned.
    fn track_dialed(&self, from: &str, to: &str, stream: tokio::net::TcpStream) -> BoxIo {
        let mut inner = self.lock();
        inner.next_conn += 1;
        let conn = inner.next_conn;
        let silenced = Arc::new(AtomicBool::new(false));
        inner
            .dialed
            .insert(conn, (from.to_owned(), to.to_owned(), silenced.clone()));
        Box::new(Tracked {
            io: stream,
            conn,
            silenced: Some(silenced),
            net: Arc::downgrade(&self.inner),
        })
    }

    /// Waits until every host and the shared address are up.
    pub async fn ready(&self) {
        let _ = self.ready.subscribe().wait_for(|r| *r).await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every host's address and the shared one as clients reach them (`host:port`), by name
    /// (for banners and `--json`).
    pub fn addresses(&self) -> BTreeMap<String, String> {
        self.lock().advertised.clone()
    }
}

impl Fabric for LiveNet {
    fn crash(&self, host: &str, kind: CrashKind) {
        let mut inner = self.lock();
        inner.up.remove(host);
        if let Some(front) = inner.fronts.get(host) {
            front.down(host, kind);
        }
        if let Some((shared, _)) = &inner.shared {
            shared.down(host, kind);
        }
        inner.event(Event::Crashed {
            host: host.to_owned(),
            kind,
        });
    }

    /// Shuts the node's side of the connection down: what the node writes next goes nowhere,
    /// and the client's side ends without an answer.
    fn cut(&self, conn: u64, reason: &str) -> bool {
        let inner = self.lock();
        let Some((_, fd)) = inner.accepted.get(&conn) else {
            return false;
        };
        let _ = rustix::net::shutdown(fd, rustix::net::Shutdown::Both);
        inner.event(Event::ConnectionCut {
            conn,
            reason: reason.to_owned(),
        });
        true
    }

    /// New connections between the two go unanswered, and those they have open go silent.
    fn partition(&self, a: &str, b: &str) {
        let mut inner = self.lock();
        let key = pair(a, b);
        for (from, to, silenced) in inner.dialed.values() {
            if pair(from, to) == key {
                silenced.store(true, Ordering::Relaxed);
            }
        }
        inner.partitions.insert(key);
        inner.event(Event::Partitioned {
            a: a.to_owned(),
            b: b.to_owned(),
        });
    }
}

impl Network for LiveNet {
    fn boot(&self, host: &str) -> u64 {
        self.lock().boots.get(host).copied().unwrap_or(0)
    }

    fn listen(&self, host: &str) -> Box<dyn Listen> {
        let listener = bind().expect("a loopback port for a farm host");
        let addr = listener.local_addr().expect("a bound address");
        let mut inner = self.lock();
        *inner.boots.entry(host.to_owned()).or_default() += 1;
        inner.up.insert(host.to_owned());
        inner.listening.insert(host.to_owned(), addr);
        match inner.fronts.get(host) {
            Some(front) => front.up(host, Some(addr)),
            None => {
                let front =
                    live::Balancer::new(sim::Policy::RoundRobin, &[(host.to_owned(), addr)], 0);
                let front_listener = match inner.unclaimed.remove(host) {
                    Some(l) => tokio_listener(l),
                    None => bind(),
                }
                .expect("a listener for a farm host's front");
                let front_addr = front_listener.local_addr().expect("a bound address");
                let serving = front.clone();
                tokio::spawn(async move { serving.serve_front(front_listener).await });
                inner
                    .addrs
                    .entry(host.to_owned())
                    .or_insert_with(|| dialable(front_addr));
                inner
                    .advertised
                    .entry(host.to_owned())
                    .or_insert_with(|| front_addr.to_string());
                inner.fronts.insert(host.to_owned(), front);
            }
        }
        if let Some((shared, members)) = &inner.shared
            && members.iter().any(|m| m == host)
        {
            shared.up(host, Some(addr));
        }
        let tls = inner
            .tls
            .as_ref()
            .filter(|_| host != crate::farm::BACKEND)
            .map(|(server, _)| server.clone());
        drop(inner);
        let net = self.clone();
        let name = host.to_owned();
        let tcp = Box::new(
            transport::tcp::TcpListen::from_tokio(listener)
                .with_hook(Box::new(move |stream| net.track_accepted(&name, stream))),
        );
        match tls {
            Some(server) => Box::new(transport::tls::TlsListen::new(tcp, server)),
            None => tcp,
        }
    }

    fn connector(&self, from: &str) -> Arc<dyn Connect> {
        Arc::new(NameConnect {
            net: self.clone(),
            from: from.to_owned(),
        })
    }

    fn is_up(&self, host: &str) -> bool {
        self.lock().up.contains(host)
    }

    fn add_client(&self, _name: &str) {}

    fn add_shared(&self, name: &str, members: Vec<String>, policy: sim::Policy) {
        let mut inner = self.lock();
        let targets: Vec<(String, SocketAddr)> = members
            .iter()
            .filter_map(|m| inner.listening.get(m).map(|a| (m.clone(), *a)))
            .collect();
        let seed = u64::from(std::process::id());
        let shared = live::Balancer::new(policy, &targets, seed);
        let listener = match inner.shared_listener.take() {
            Some(l) => tokio_listener(l),
            None => bind(),
        }
        .expect("a listener for the shared address");
        let addr = listener.local_addr().expect("a bound address");
        inner
            .addrs
            .entry(name.to_owned())
            .or_insert_with(|| dialable(addr));
        inner
            .advertised
            .entry(name.to_owned())
            .or_insert_with(|| addr.to_string());
        let serving = shared.clone();
        tokio::spawn(async move { serving.serve(listener).await });
        inner.shared = Some((shared, members));
        self.ready.send_replace(true);
    }

    fn heal(&self, a: &str, b: &str) {
        let mut inner = self.lock();
        inner.partitions.remove(&pair(a, b));
        inner.event(Event::Healed {
            a: a.to_owned(),
            b: b.to_owned(),
        });
    }

    fn advertise(&self, host: &str) -> String {
        self.lock()
            .advertised
            .get(host)
            .cloned()
            .unwrap_or_else(|| host.to_owned())
    }
}

/// Connects by host name (`node-2`, `farm`, `backend`): a partitioned pair gets no answer (the
/// caller's connect timeout ends the wait), an unknown name is refused.
pub struct NameConnect {
    net: LiveNet,
    from: String,
}

impl Connect for NameConnect {
    fn connect<'a>(&'a self, authority: &'a str) -> BoxFuture<'a, io::Result<BoxIo>> {
        Box::pin(async move {
            let (name, addr, cut, tls) = {
                let inner = self.net.lock();
                // A name (`node-2`), or a host's advertised address (its Host-Id) or bound one.
                let advertised = inner
                    .advertised
                    .iter()
                    .find(|(_, x)| x.as_str() == authority)
                    .and_then(|(n, _)| Some((n.clone(), *inner.addrs.get(n)?)));
                let by_addr: Option<(String, SocketAddr)> = advertised.or_else(|| {
                    let a: SocketAddr = authority.parse().ok()?;
                    inner
                        .addrs
                        .iter()
                        .find(|(_, x)| **x == a)
                        .map(|(n, x)| (n.clone(), *x))
                });
                let host = authority.split(':').next().unwrap_or(authority);
                let (name, addr) = match by_addr {
                    Some((n, a)) => (n, Some(a)),
                    // An address outside the farm is the user's application, in the built-in
                    // one's place (for partitions).
                    None if authority.parse::<SocketAddr>().is_ok() => {
                        (crate::farm::BACKEND.to_owned(), None)
                    }
                    None => (host.to_owned(), inner.addrs.get(host).copied()),
                };
                let cut = inner.partitions.contains(&pair(&self.from, &name));
                // The nodes (directly, or through the shared address) speak HTTPS.
                let tls = inner
                    .tls
                    .as_ref()
                    .filter(|_| name == crate::farm::SHARED || name.starts_with("node-"))
                    .map(|(_, client)| client.clone());
                (name, addr, cut, tls)
            };
            let addr = match addr.or_else(|| authority.parse().ok()) {
                Some(a) => a,
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionRefused,
                        format!("unknown host {authority}"),
                    ));
                }
            };
            if cut {
                std::future::pending::<()>().await;
            }
            let stream = tokio::net::TcpStream::connect(addr).await?;
            let _ = stream.set_nodelay(true);
            let io = self.net.track_dialed(&self.from, &name, stream);
            match tls {
                Some(client) => transport::tls::connect_over(client, "localhost", io).await,
                None => Ok(io),
            }
        })
    }
}

/// Why the live farm cannot carry out a rule, if it cannot: a partition between a client and
/// a node (clients reach the nodes through the shared balancer, which cannot tell whose
/// connection it forwards).
pub fn cannot(fault: &crate::spec::Fault) -> Option<String> {
    let is_host = |n: &str| {
        n == crate::farm::BACKEND
            || n.strip_prefix("node-")
                .is_some_and(|i| i.bytes().all(|b| b.is_ascii_digit()))
    };
    let client = [&fault.node, &fault.peer]
        .into_iter()
        .flatten()
        .find(|n| !is_host(n));
    match (fault.action, client) {
        (Some(Action::Partition), Some(c)) => Some(format!(
            "a partition with client {c} is not carried out on real sockets (clients reach the nodes through the shared balancer); partitions between nodes and the application are"
        )),
        _ => None,
    }
}

/// The fault rules of a scenario the live farm cannot carry out, in words (empty: none).
pub fn unsupported(scenario: &Scenario) -> Vec<String> {
    scenario
        .faults
        .iter()
        .enumerate()
        .filter_map(|(i, f)| cannot(f).map(|why| format!("fault #{i}: {why}")))
        .collect()
}

pub use crate::farm::{Extras, Hold};

/// Runs a scenario's farm live on the current tokio runtime (real time, not paused) until its
/// clients are done and `extras.hold` has ended, or `deadline` passes. `net` is the network to
/// run on ([`LiveNet::bind`]); keep a clone to read its addresses once [`LiveNet::ready`].
pub async fn run(
    scenario: &Scenario,
    seed: u64,
    sink: Option<Sink>,
    deadline: Duration,
    net: LiveNet,
    extras: Extras,
) -> RunResult {
    run_farm(
        scenario,
        seed,
        sink,
        deadline,
        crate::fault::event_budget(scenario),
        move |probe: SharedProbe| {
            net.set_probe(probe);
            Arc::new(net) as Arc<dyn Network>
        },
        crate::farm::Ledgers::Listed,
        extras,
    )
    .await
}
