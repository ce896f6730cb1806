//! Serving HTTP/1.1 on one accepted connection.

use std::{convert::Infallible, future::Future, io, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::task::JoinSet;

use crate::{Body, BoxIo, Listen};

/// How a server treats its connections.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// How long a connection may sit without sending a complete request head before the server
    /// closes it. Covers idle kept-alive connections too, like IIS's `connectionTimeout`
    /// (default 120 s).
    pub idle_timeout: Duration,
    /// Most connections served at once; `None`: no limit (the simulator). A connection beyond
    /// the limit gets `503 Service Unavailable` with `Retry-After` and is closed, so a flood of
    /// connections cannot exhaust the process's file descriptors.
    pub max_connections: Option<usize>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            idle_timeout: Duration::from_secs(120),
            max_connections: None,
        }
    }
}

/// Most connections being turned away (answered 503) at once; beyond it they are closed at
/// once without an answer.
const MAX_SHEDDING: usize = 64;

/// Serves requests on `io` until the peer closes it, it idles out, or it breaks.
///
/// Never writes a `Date` header (it would read the OS clock inside a simulation); timers are
/// tokio timers.
pub async fn serve<F, Fut>(io: BoxIo, options: &ServerOptions, handler: F) -> hyper::Result<()>
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let fut = handler(req);
        async move { Ok::<_, Infallible>(fut.await) }
    });
    hyper::server::conn::http1::Builder::new()
        .auto_date_header(false)
        .timer(TokioTimer::new())
        .header_read_timeout(options.idle_timeout)
        .serve_connection(TokioIo::new(io), service)
        .await
}

/// The error a listener ends with when it handed its address over to another server (an IIS
/// worker process recycled with overlap): [`serve_all`] then stops accepting and serves the
/// connections it has until they end (their requests go wherever its handler sends them), and
/// returns `Ok` once they have.
pub const HANDED_OVER: io::ErrorKind = io::ErrorKind::ConnectionAborted;

/// The answer to a connection over the limit: a 503 that a BITS client retries after its retry
/// delay, and that tells a person what happened.
fn overloaded() -> Vec<u8> {
    let body =
        "too many connections: this server serves a limited number at once; try again later\n";
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Type: text/plain\r\n\
         Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Accepts connections from `listener` and serves each on a task in `tasks` (which may already
/// hold the server's own background tasks) until accepting fails. Every task is owned by this
/// future: dropping or aborting it stops them all. `handler` gets each request with its
/// connection's number and peer. With `max_connections`, connections over the limit are
/// answered 503 and closed.
pub async fn serve_all<F, Fut>(
    mut listener: Box<dyn Listen>,
    options: ServerOptions,
    mut tasks: JoinSet<()>,
    handler: F,
) -> io::Result<()>
where
    F: Fn(Request<Incoming>, u64, Arc<str>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let limit = options
        .max_connections
        .map(|n| Arc::new(tokio::sync::Semaphore::new(n)));
    let shedding = Arc::new(tokio::sync::Semaphore::new(MAX_SHEDDING));
    let options = Arc::new(options);
    let mut turned_away = 0u64;
    // Held by every connection task: the count of connections still served.
    let alive = Arc::new(());
    loop {
        tokio::select! {
            biased;
            Some(_) = tasks.join_next() => {}
            accepted = listener.accept() => {
                let accepted = match accepted {
                    Ok(a) => a,
                    Err(e) if e.kind() == HANDED_OVER => break,
                    Err(e) => return Err(e),
                };
                let permit = match &limit {
                    None => None,
                    Some(sem) => match sem.clone().try_acquire_owned() {
                        Ok(p) => Some(p),
                        Err(_) => {
                            turned_away += 1;
                            if turned_away.is_power_of_two() {
                                tracing::warn!(addr = %listener.local_addr(), turned_away,
                                    "connection limit reached: answering 503");
                            }
                            if let Ok(p) = shedding.clone().try_acquire_owned() {
                                tasks.spawn(async move {
                                    turn_away(accepted.io).await;
                                    drop(p);
                                });
                            }
                            continue;
                        }
                    },
                };
                let handler = handler.clone();
                let options = options.clone();
                let alive = alive.clone();
                tasks.spawn(async move {
                    let (conn, peer) = (accepted.conn, Arc::<str>::from(accepted.peer));
                    tracing::trace!(conn, peer = %peer, "connection");
                    let per_request = move |req| handler(req, conn, peer.clone());
                    if let Err(e) = serve(accepted.io, &options, per_request).await {
                        tracing::debug!(conn, error = %e, "connection ended");
                    }
                    drop(permit);
                    drop(alive);
                });
            }
        }
    }
    // Handed over: the connections are served until they end (the server's own background
    // tasks would run for ever, so the last connection's end is the end).
    while Arc::strong_count(&alive) > 1 {
        if tasks.join_next().await.is_none() {
            break;
        }
    }
    Ok(())
}

/// Answers a connection over the limit with [`overloaded`], then reads (and discards) what the
/// peer sends for a moment so that closing does not reset the answer away.
async fn turn_away(mut io: BoxIo) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let answer = async {
        io.write_all(&overloaded()).await?;
        io.flush().await?;
        io.shutdown().await?;
        let mut buf = [0u8; 4096];
        let mut left = 64 << 10;
        while left > 0 {
            match io.read(&mut buf).await? {
                0 => break,
                n => left -= n.min(left),
            }
        }
        io::Result::Ok(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), answer).await;
}

/// How long a request body may take (IIS's entity-body timeout and `minBytesPerSecond`): a
/// peer that stops sending mid-body, or sends a byte now and then, must not hold the request
/// (and what it locked, and the bytes it buffered) for ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyTiming {
    /// Longest wait for the next piece of the body. Default 120 s.
    pub idle: Duration,
    /// Slowest average rate accepted once the `idle` grace period is over, bytes per second:
    /// a body of `n` bytes must be in after `idle + n / min_bytes_per_s`. Default 240 (IIS).
    pub min_bytes_per_s: u64,
}

impl Default for BodyTiming {
    fn default() -> Self {
        BodyTiming {
            idle: Duration::from_secs(120),
            min_bytes_per_s: 240,
        }
    }
}

impl BodyTiming {
    /// When a body of `len` bytes must be complete, counted from its start.
    pub fn budget(&self, len: u64) -> Duration {
        let rate = self.min_bytes_per_s.max(1);
        self.idle
            .saturating_add(Duration::from_secs(len / rate))
            .min(Duration::from_secs(100 * 365 * 86_400))
    }
}

/// Why a request body could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// Longer than the limit.
    TooLong,
    /// The connection broke while the body was arriving.
    Broken(String),
    /// Nothing arrived for [`BodyTiming::idle`], or the body came slower than
    /// [`BodyTiming::min_bytes_per_s`].
    TooSlow,
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::TooLong => f.write_str("the body is longer than declared"),
            BodyError::Broken(why) => write!(f, "the connection broke: {why}"),
            BodyError::TooSlow => f.write_str("the body stalled or came too slowly"),
        }
    }
}

/// Reads a whole request body as the chunks hyper delivered (no copy), up to `limit` bytes,
/// within `timing` (the budget of a `limit`-byte body).
pub async fn read_body(
    mut body: Incoming,
    limit: u64,
    timing: &BodyTiming,
) -> Result<Vec<Bytes>, BodyError> {
    let all = async {
        let mut chunks = Vec::new();
        let mut len = 0u64;
        loop {
            let frame = match tokio::time::timeout(timing.idle, body.frame()).await {
                Err(_) => return Err(BodyError::TooSlow),
                Ok(None) => return Ok(chunks),
                Ok(Some(frame)) => frame.map_err(|e| BodyError::Broken(e.to_string()))?,
            };
            if let Ok(data) = frame.into_data() {
                len += data.len() as u64;
                if len > limit {
                    return Err(BodyError::TooLong);
                }
                if !data.is_empty() {
                    chunks.push(data);
                }
            }
        }
    };
    tokio::time::timeout(timing.budget(limit), all)
        .await
        .unwrap_or(Err(BodyError::TooSlow))
}

/// Reads and discards a request body, so the connection can be kept alive after an early
/// answer. Stops (and lets hyper close the connection) after `limit` bytes, or when the body
/// stalls or crawls (`timing`).
pub async fn drain_body(mut body: Incoming, limit: u64, timing: &BodyTiming) {
    let all = async {
        let mut len = 0u64;
        while let Ok(Some(Ok(frame))) = tokio::time::timeout(timing.idle, body.frame()).await {
            if let Ok(data) = frame.into_data() {
                len += data.len() as u64;
                if len > limit {
                    return;
                }
            }
        }
    };
    let _ = tokio::time::timeout(timing.budget(limit), all).await;
}
