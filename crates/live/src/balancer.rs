//! The TCP balancer.

use std::{
    io,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use probe::CrashKind;
use rand::{RngExt as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use sim::Policy;
use tokio::{
    io::AsyncReadExt as _,
    net::{TcpListener, TcpStream},
    sync::watch,
};

/// How long connecting to a member may take before the client's connection is closed.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Bytes a forwarded connection holds in flight from the client to the member (uploads flow
/// this way): its pipe's size, or its buffer's where bytes are copied (`crate::relay`). With
/// tokio's default copy buffer (8 KiB), when an upload through the live farm crossed two
/// balancers, it ran at half the rate it did with this (docs/performance.md).
const UPLOAD_BUF: usize = 256 << 10;
/// Bytes a forwarded connection holds in flight from the member to the client (Acks, error
/// pages).
const ANSWER_BUF: usize = 16 << 10;

/// A member's state, as its connections watch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Up,
    Down(CrashKind),
}

struct Member {
    name: String,
    addr: SocketAddr,
    state: watch::Sender<State>,
    open: usize,
}

struct Inner {
    picker: Picker,
    members: Vec<Member>,
    /// Bumped whenever a member goes down or comes back.
    changed: watch::Sender<u64>,
}

/// Picks a member for each new connection with the simulator's policies (`sim::Policy`),
/// among those up: in turn, at random (seeded), the one with the fewest open connections, or
/// by a hash of the client's IP. The live balancer and the proxy share it.
pub struct Picker {
    policy: Policy,
    next: usize,
    rng: ChaCha8Rng,
}

impl Picker {
    /// A picker with `policy`; `seed` drives the random policy.
    pub fn new(policy: Policy, seed: u64) -> Picker {
        Picker {
            policy,
            next: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// The member, of `members`, for a connection from `source`: one of `up` (not empty);
    /// `open(i)` is the connections open to member `i`.
    pub fn pick(
        &mut self,
        members: usize,
        up: &[usize],
        open: impl Fn(usize) -> usize,
        source: &SocketAddr,
    ) -> usize {
        match self.policy {
            Policy::RoundRobin => {
                let start = self.next;
                let i = (0..members)
                    .map(|k| (start + k) % members)
                    .find(|i| up.contains(i))
                    .expect("one is up");
                self.next = (i + 1) % members;
                i
            }
            Policy::Random => up[self.rng.random_range(0..up.len())],
            Policy::LeastConnections => *up.iter().min_by_key(|&&i| open(i)).expect("one is up"),
            Policy::SourceAffinity => {
                let h = source
                    .ip()
                    .to_string()
                    .bytes()
                    .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
                    });
                up[(h % up.len() as u64) as usize]
            }
        }
    }
}

/// An L4 balancer over named members (see the crate docs). Clones share it.
#[derive(Clone)]
pub struct Balancer {
    inner: Arc<Mutex<Inner>>,
}

impl Balancer {
    /// A balancer over `members` (name, address), all up; `seed` drives the random policy.
    pub fn new(policy: Policy, members: &[(String, SocketAddr)], seed: u64) -> Balancer {
        Balancer {
            inner: Arc::new(Mutex::new(Inner {
                picker: Picker::new(policy, seed),
                members: members
                    .iter()
                    .map(|(name, addr)| Member {
                        name: name.clone(),
                        addr: *addr,
                        state: watch::channel(State::Up).0,
                        open: 0,
                    })
                    .collect(),
                changed: watch::channel(0).0,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a member down: a kill resets its open connections, a power cut silences them;
    /// either way new connections avoid it. Unknown names are ignored.
    pub fn down(&self, name: &str, kind: CrashKind) {
        let inner = self.lock();
        if let Some(m) = inner.members.iter().find(|m| m.name == name) {
            m.state.send_replace(State::Down(kind));
            inner.changed.send_modify(|n| *n += 1);
        }
    }

    /// Whether every member is down.
    fn all_down(&self) -> bool {
        self.lock()
            .members
            .iter()
            .all(|m| *m.state.borrow() != State::Up)
    }

    /// Brings a member back, at `addr` if it moved (a restarted node on a new port).
    pub fn up(&self, name: &str, addr: Option<SocketAddr>) {
        let mut inner = self.lock();
        if let Some(m) = inner.members.iter_mut().find(|m| m.name == name) {
            if let Some(a) = addr {
                m.addr = a;
            }
            // A fresh channel: connections of the old life stay down.
            m.state = watch::channel(State::Up).0;
            inner.changed.send_modify(|n| *n += 1);
        }
    }

    /// Connections open through the balancer to `name`.
    pub fn open(&self, name: &str) -> usize {
        self.lock()
            .members
            .iter()
            .find(|m| m.name == name)
            .map_or(0, |m| m.open)
    }

    /// The member for a new connection from `source`, among those up: its index, name, address
    /// and state channel. `None` when every member is down.
    fn pick(&self, source: &SocketAddr) -> Option<(String, SocketAddr, watch::Receiver<State>)> {
        let mut inner = self.lock();
        let up: Vec<usize> = (0..inner.members.len())
            .filter(|&i| *inner.members[i].state.borrow() == State::Up)
            .collect();
        if up.is_empty() {
            return None;
        }
        let Inner {
            picker, members, ..
        } = &mut *inner;
        let i = picker.pick(members.len(), &up, |i| members[i].open, source);
        let m = &mut inner.members[i];
        m.open += 1;
        Some((m.name.clone(), m.addr, m.state.subscribe()))
    }

    fn closed(&self, name: &str) {
        if let Some(m) = self.lock().members.iter_mut().find(|m| m.name == name) {
            m.open = m.open.saturating_sub(1);
        }
    }

    /// Accepts on `listener` and forwards each connection until the listener fails.
    pub async fn serve(&self, listener: TcpListener) -> io::Result<()> {
        let mut tasks = tokio::task::JoinSet::new();
        let addr = listener.local_addr()?.to_string();
        let mut errors = 0;
        loop {
            let (client, source) =
                transport::tcp::accept_patiently(&listener, &addr, &mut errors).await?;
            while tasks.try_join_next().is_some() {}
            let this = self.clone();
            tasks.spawn(async move { this.forward(client, source).await });
        }
    }

    /// Like [`Balancer::serve`], for a host's own address: while every member is down the port
    /// is closed, so connects are refused as they are to a host whose process is dead (a BITS
    /// client's Host-Id fallback timer must not see a connection succeed), and it is opened
    /// again at the same address when a member comes back.
    pub async fn serve_front(&self, listener: TcpListener) -> io::Result<()> {
        let addr = listener.local_addr()?;
        let shown = addr.to_string();
        let mut errors = 0;
        let mut changed = self.lock().changed.subscribe();
        let mut listener = Some(listener);
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            while tasks.try_join_next().is_some() {}
            if self.all_down() {
                listener = None;
                changed.changed().await.map_err(io::Error::other)?;
                continue;
            }
            let l = match listener.take() {
                Some(l) => l,
                None => rebind(addr)?,
            };
            tokio::select! {
                biased;
                r = changed.changed() => r.map_err(io::Error::other)?,
                r = transport::tcp::accept_patiently(&l, &shown, &mut errors) => {
                    let (client, source) = r?;
                    let this = self.clone();
                    tasks.spawn(async move { this.forward(client, source).await });
                }
            }
            listener = Some(l);
        }
    }

    async fn forward(self, mut client: TcpStream, source: SocketAddr) {
        let Some((name, addr, mut state)) = self.pick(&source) else {
            // Nobody to take it: closed at once, as a balancer with no healthy member does.
            reset(&client);
            return;
        };
        let upstream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await;
        let Ok(Ok(mut upstream)) = upstream else {
            self.closed(&name);
            reset(&client);
            return;
        };
        // The member's state first: bytes it wrote as it was taken down must not get out.
        let ended = tokio::select! {
            biased;
            r = state.wait_for(|s| *s != State::Up) => r.ok().map(|s| *s),
            r = crate::relay::both_ways(&mut client, &mut upstream, UPLOAD_BUF, ANSWER_BUF) => {
                if let Err(e) = r {
                    tracing::debug!(member = %name, error = %e, "connection ended");
                }
                None
            }
        };
        self.closed(&name);
        match ended {
            Some(State::Down(CrashKind::Kill)) => {
                // The process died: its peers see a reset.
                reset(&client);
            }
            Some(State::Down(CrashKind::PowerCut)) => {
                // The machine went dark: nothing more arrives, nothing is answered; the
                // client's own timeout ends it.
                drop(upstream);
                let mut sink = [0u8; 4096];
                while matches!(client.read(&mut sink).await, Ok(n) if n > 0) {}
            }
            _ => {}
        }
    }
}

/// Listens at `addr` again (the port of a host coming back).
fn rebind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Makes closing `stream` a reset (SO_LINGER 0): what peers of a killed process see.
fn reset(stream: &TcpStream) {
    let _ = rustix::net::sockopt::set_socket_linger(stream, Some(Duration::ZERO));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(n: usize) -> Vec<(String, SocketAddr)> {
        (1..=n)
            .map(|i| {
                (
                    format!("node-{i}"),
                    format!("127.0.0.1:{}", 9000 + i).parse().unwrap(),
                )
            })
            .collect()
    }

    fn source() -> SocketAddr {
        "127.0.0.1:50000".parse().unwrap()
    }

    fn picks(b: &Balancer, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| b.pick(&source()).map(|p| p.0).unwrap_or_default())
            .collect()
    }

    #[test]
    fn round_robin_skips_members_that_are_down_and_takes_them_back() {
        let b = Balancer::new(Policy::RoundRobin, &members(3), 1);
        assert_eq!(picks(&b, 4), ["node-1", "node-2", "node-3", "node-1"]);
        b.down("node-2", CrashKind::Kill);
        assert_eq!(picks(&b, 3), ["node-3", "node-1", "node-3"]);
        b.up("node-2", None);
        assert_eq!(picks(&b, 3), ["node-1", "node-2", "node-3"]);
        for name in ["node-1", "node-2", "node-3"] {
            b.down(name, CrashKind::PowerCut);
        }
        assert!(b.pick(&source()).is_none());
    }

    #[test]
    fn least_connections_counts_what_is_open() {
        let b = Balancer::new(Policy::LeastConnections, &members(2), 1);
        assert_eq!(picks(&b, 3), ["node-1", "node-2", "node-1"]);
        assert_eq!((b.open("node-1"), b.open("node-2")), (2, 1));
        b.closed("node-1");
        b.closed("node-1");
        assert_eq!(picks(&b, 1), ["node-1"]);
    }

    #[test]
    fn source_affinity_and_random_stay_among_members_that_are_up() {
        let b = Balancer::new(Policy::SourceAffinity, &members(3), 1);
        let first = picks(&b, 1)[0].clone();
        assert!(picks(&b, 5).iter().all(|p| *p == first));
        let r = Balancer::new(Policy::Random, &members(3), 7);
        r.down("node-3", CrashKind::Kill);
        let got = picks(&r, 60);
        assert!(got.iter().all(|p| p != "node-3"));
        assert!(got.contains(&"node-1".to_owned()) && got.contains(&"node-2".to_owned()));
    }
}
