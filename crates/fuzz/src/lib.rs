//! Hostile input for the live side of bitsfarm, so the audit's findings stay fixed.
//!
//! * [`request`] generates BITS and HTTP requests from a seed: mostly valid packets with one
//!   thing wrong, extreme numbers, traversal paths, truncated heads and bodies, chunked bodies.
//! * [`answer`] reads answers off the wire and checks them: every complete BITS request gets a
//!   well-formed Ack, every answer has a status line and a `Content-Length`.
//! * [`in_memory`] fuzzes a node over in-memory streams on a paused clock (deterministic,
//!   thousands of requests per second); [`loopback`] runs a campaign against a node and its
//!   application on real loopback sockets; [`soak`] runs many real client jobs at once through
//!   a connection-cutting proxy and checks every file was delivered with one effect.
//!
//! Each returns `Err` with the seed and the request on the first violation, and fails on any
//! panic inside the server (captured with [`sim::capture`]).

pub mod answer;
pub mod request;
mod server;
pub mod soak;

use std::{collections::BTreeMap, time::Duration};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use transport::BoxIo;

pub use server::{Server, ServerConfig};
pub use soak::{SoakConfig, SoakStats, soak};

/// What a campaign saw.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Requests sent.
    pub requests: u64,
    /// Answers by status.
    pub statuses: BTreeMap<u16, u64>,
    /// Answers that were BITS Acks.
    pub acks: u64,
    /// Requests the server closed without answering (truncated ones only).
    pub closed: u64,
    /// Sessions the server created.
    pub sessions_created: u64,
}

impl Stats {
    fn add(&mut self, other: &Stats) {
        self.requests += other.requests;
        self.acks += other.acks;
        self.closed += other.closed;
        self.sessions_created += other.sessions_created;
        for (k, v) in &other.statuses {
            *self.statuses.entry(*k).or_default() += v;
        }
    }
}

/// Opens a new connection to the server under test.
pub type Dial =
    std::sync::Arc<dyn Fn() -> transport::BoxFuture<'static, std::io::Result<BoxIo>> + Send + Sync>;

/// Sends `n` generated requests from `seed` over connections from `dial` (a new one after any
/// request that leaves the connection in doubt), checking every answer.
pub async fn drive(dial: Dial, seed: u64, n: u64, wait: Duration) -> Result<Stats, String> {
    drive_with(dial, seed, n, wait, false).await
}

/// [`drive`] against a server that faults may take down: a refused connection, a connection
/// closed without an answer, no answer in time, or an HTML error page from a proxy in front
/// only move on to the next request (they are counted in [`Stats::closed`]); every answer from
/// the server itself is still checked.
pub async fn drive_through_faults(
    dial: Dial,
    seed: u64,
    n: u64,
    wait: Duration,
) -> Result<Stats, String> {
    drive_with(dial, seed, n, wait, true).await
}

async fn drive_with(
    dial: Dial,
    seed: u64,
    n: u64,
    wait: Duration,
    through_faults: bool,
) -> Result<Stats, String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut sessions: Vec<String> = Vec::new();
    let mut stats = Stats::default();
    let mut conn: Option<(BoxIo, Vec<u8>)> = None;
    for i in 0..n {
        let req = request::generate(&mut rng, &sessions);
        let (mut io, mut buf) = match conn.take() {
            Some(c) => c,
            None => match dial().await {
                Ok(io) => (io, Vec::new()),
                Err(_) if through_faults => {
                    stats.closed += 1;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                Err(e) => return Err(format!("request {i}: cannot connect: {e}")),
            },
        };
        let fail = |why: String| {
            format!(
                "seed {seed}, request {i}: {why}\n--- request ---\n{}",
                String::from_utf8_lossy(&req.bytes[..req.bytes.len().min(2000)])
            )
        };
        // The server may answer and close before reading everything (an early refusal).
        let _ = io.write_all(&req.bytes).await;
        let _ = io.flush().await;
        if req.truncated {
            let _ = io.shutdown().await;
        }
        let mut answer = None;
        let mut eof = false;
        let read = tokio::time::timeout(wait, async {
            let mut chunk = vec![0u8; 16 << 10];
            loop {
                if let Some((a, used)) = answer::parse(&buf)? {
                    buf.drain(..used);
                    return Ok(Some(a));
                }
                match io.read(&mut chunk).await {
                    Ok(0) | Err(_) => {
                        eof = true;
                        return Ok(None);
                    }
                    Ok(k) => buf.extend_from_slice(&chunk[..k]),
                }
            }
        })
        .await;
        match read {
            Err(_) if through_faults => {
                stats.closed += 1;
                continue;
            }
            Err(_) => return Err(fail(format!("no answer within {wait:?}"))),
            Ok(Err(e)) => return Err(fail(e)),
            Ok(Ok(a)) => answer = a.or(answer),
        }
        if answer.is_none() && through_faults {
            stats.closed += 1;
            continue;
        }
        // A proxy or balancer in front of the server may answer with an HTML error page of its
        // own (the `page` fault); only answers from the server itself are checked.
        if through_faults
            && answer
                .as_ref()
                .is_some_and(|a| a.header("content-type") == Some("text/html"))
        {
            stats.closed += 1;
            conn = None;
            continue;
        }
        answer::check(&req, answer.as_ref()).map_err(fail)?;
        stats.requests += 1;
        match &answer {
            None => stats.closed += 1,
            Some(a) => {
                *stats.statuses.entry(a.status).or_default() += 1;
                if a.header("bits-packet-type") == Some("Ack") {
                    stats.acks += 1;
                }
                if req.creates_session
                    && a.status == 200
                    && let Some(id) = a.header("bits-session-id")
                {
                    stats.sessions_created += 1;
                    if sessions.len() < 64 {
                        sessions.push(id.to_owned());
                    } else {
                        let k = (i as usize) % sessions.len();
                        sessions[k] = id.to_owned();
                    }
                }
            }
        }
        let closes = answer
            .as_ref()
            .is_some_and(|a| a.header("connection") == Some("close"));
        // Keep the connection only after a clean exchange.
        if !eof && !closes && !req.truncated && answer.is_some() && buf.is_empty() {
            conn = Some((io, buf));
        }
    }
    Ok(stats)
}

/// Fuzzes a node with `requests` requests over in-memory streams, on a paused clock (the idle
/// and body timeouts pass in virtual time). Deterministic for a seed.
pub fn in_memory(seed: u64, requests: u64) -> Result<Stats, String> {
    let (result, panics) = sim::capture(|| {
        sim::run(Duration::from_secs(365 * 86_400), async move {
            let server = Server::in_memory(ServerConfig::default()).await;
            let r = drive(server.dial(), seed, requests, Duration::from_secs(3600)).await;
            server.check_after().await.and(r)
        })
    });
    if !panics.is_empty() {
        return Err(format!(
            "seed {seed}: {} panic(s) in the node: {:?}",
            panics.count, panics.messages
        ));
    }
    match result {
        Ok(Some(r)) => r,
        Ok(None) => Err(format!("seed {seed}: the campaign did not end")),
        Err(e) => Err(format!("seed {seed}: the campaign itself panicked: {e}")),
    }
}

/// A campaign against a node and its application on real loopback sockets: `connections`
/// clients at once, `requests` requests in all. The node's idle timeout is 2 s so truncated
/// bodies end quickly.
pub fn loopback(seed: u64, requests: u64, connections: u64) -> Result<Stats, String> {
    let (result, panics) = sim::capture(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async move {
            let server = Server::loopback(ServerConfig {
                idle_timeout_s: 2,
                ..ServerConfig::default()
            })
            .await?;
            let per = requests.div_ceil(connections.max(1));
            let mut workers = tokio::task::JoinSet::new();
            for c in 0..connections.max(1) {
                let dial = server.dial();
                workers.spawn(drive(
                    dial,
                    seed.wrapping_add(c),
                    per,
                    Duration::from_secs(30),
                ));
            }
            let mut total = Stats::default();
            while let Some(r) = workers.join_next().await {
                total.add(&r.map_err(|e| e.to_string())??);
            }
            server.check_after().await?;
            Ok(total)
        })
    });
    if !panics.is_empty() {
        return Err(format!(
            "seed {seed}: {} panic(s) in the node: {:?}",
            panics.count, panics.messages
        ));
    }
    result.map_err(|e| format!("seed {seed}: the campaign panicked: {e}"))?
}
