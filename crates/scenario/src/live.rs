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
    /// The single-member balancer in front of each host.
    fronts: BTreeMap<String, live::Balancer>,
    /// The shared address's balancer and its members.
    shared: Option<(live::Balancer, Vec<String>)>,
    up: BTreeSet<String>,
    boots: BTreeMap<String, u64>,
    partitions: BTreeSet<(String, String)>,
    /// Where the shared address listens (`None`: a free loopback port).
    shared_at: Option<SocketAddr>,
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
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    l.set_nonblocking(true)?;
    tokio::net::TcpListener::from_std(l)
}

impl LiveNet {
    /// A network whose shared address listens at `shared_at` (or a free loopback port).
    pub fn new(shared_at: Option<SocketAddr>) -> LiveNet {
        LiveNet {
            inner: Arc::new(Mutex::new(Inner {
                shared_at,
                ..Inner::default()
            })),
            ready: tokio::sync::watch::channel(false).0,
        }
    }

    /// Waits until every host and the shared address are up.
    pub async fn ready(&self) {
        let _ = self.ready.subscribe().wait_for(|r| *r).await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every host's address and the shared one, by name (for banners and `--json`).
    pub fn addresses(&self) -> BTreeMap<String, SocketAddr> {
        self.lock().addrs.clone()
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
                let front_listener = bind().expect("a loopback port for a farm host's front");
                let front_addr = front_listener.local_addr().expect("a bound address");
                let serving = front.clone();
                tokio::spawn(async move { serving.serve_front(front_listener).await });
                inner.addrs.insert(host.to_owned(), front_addr);
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
        let listener = match inner.shared_at {
            Some(at) => std::net::TcpListener::bind(at)
                .and_then(|l| {
                    l.set_nonblocking(true)?;
                    tokio::net::TcpListener::from_std(l)
                })
                .unwrap_or_else(|e| panic!("cannot listen on {at} for the shared address: {e}")),
            None => bind().expect("a loopback port for the shared address"),
        };
        inner.addrs.insert(
            name.to_owned(),
            listener.local_addr().expect("a bound address"),
        );
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
            .addrs
            .get(host)
            .map_or_else(|| host.to_owned(), ToString::to_string)
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
                // A name (`node-2`), or a host's advertised address (its Host-Id).
                let by_addr: Option<(String, SocketAddr)> = authority.parse().ok().and_then(|a| {
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
