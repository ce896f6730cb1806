//! The live farm: a scenario's farm on real sockets in real time. The same farm code as the
//! simulation ([`crate::farm`]) over a [`Network`] of loopback TCP: every host listens on a
//! port of its own behind a single-member [`live::Balancer`] (so a crash can reset or silence
//! its connections), and the shared address `farm` is a balancer over the nodes with the
//! scenario's policy. Hosts reach each other by name through [`NameConnect`].
//!
//! Not carried out live yet: `drop-response` (a node's connection number does not name a
//! forwarded connection) and `partition`; [`unsupported`] names such rules and `farm` refuses
//! them. One difference from the simulation: a powered-off host's port is closed, so connects
//! to it are refused at once where the simulator leaves them unanswered until the client's
//! connect timeout (a loopback port cannot drop SYNs without privileges).
//!
//! **Invariant:** real time and OS randomness enter here and in the CLI's live commands only.

use std::{
    collections::{BTreeMap, BTreeSet},
    io,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use probe::{CrashKind, SharedProbe};
use transport::{BoxFuture, BoxIo, Connect, Listen, tcp::TcpConnect};

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
    /// The shared address's balancer and its members.
    shared: Option<(live::Balancer, Vec<String>)>,
    up: BTreeSet<String>,
    boots: BTreeMap<String, u64>,
    partitions: BTreeSet<(String, String)>,
    /// The shared address's listener, until the farm puts its balancer on it.
    shared_listener: Option<std::net::TcpListener>,
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
    }

    fn cut(&self, _conn: u64, _reason: &str) -> bool {
        false
    }

    fn partition(&self, a: &str, b: &str) {
        self.lock().partitions.insert(pair(a, b));
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
            shared.up(host, None);
        }
        Box::new(transport::tcp::TcpListen::from_tokio(listener))
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
            .filter_map(|m| inner.addrs.get(m).map(|a| (m.clone(), *a)))
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
        self.lock().partitions.remove(&pair(a, b));
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
            let (addr, cut) = {
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
                    None => (host.to_owned(), inner.addrs.get(host).copied()),
                };
                (addr, inner.partitions.contains(&pair(&self.from, &name)))
            };
            let addr = match addr {
                Some(a) => a,
                // An address outside the farm (the user's application): dialled as it is.
                None if authority.parse::<SocketAddr>().is_ok() => {
                    return TcpConnect.connect(authority).await;
                }
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
            TcpConnect.connect(&addr.to_string()).await
        })
    }
}

/// The fault rules of a scenario the live farm cannot carry out yet, in words (empty: none).
pub fn unsupported(scenario: &Scenario) -> Vec<String> {
    scenario
        .faults
        .iter()
        .enumerate()
        .filter(|(_, f)| matches!(f.action, Some(Action::DropResponse | Action::Partition)))
        .map(|(i, f)| {
            format!(
                "fault #{i} ({}): not carried out on real sockets yet",
                f.action.map_or("?", Action::name)
            )
        })
        .collect()
}

pub use crate::farm::{Extras, Hold};

/// Runs a scenario's farm live on the current tokio runtime (real time, not paused) until its
/// clients are done and `extras.hold` has ended, or `deadline` passes. `net` is the network to
/// run on ([`LiveNet::new`]); keep a clone to read its addresses once [`LiveNet::ready`].
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
        crate::fault::MAX_EVENTS,
        move |_probe: SharedProbe| Arc::new(net) as Arc<dyn Network>,
        extras,
    )
    .await
}
