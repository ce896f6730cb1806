//! Serving HTTP/1.1 on one accepted connection.

use std::{
    convert::Infallible,
    future::Future,
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Frame;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    task::JoinSet,
    time::{Instant, Sleep},
};

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

pin_project_lite::pin_project! {
    /// A body held to a [`BodyTiming`]: once asked for a frame, it must have one within `idle`
    /// (one timer, moved when the body first waits after a frame, not a timer per frame), and
    /// the whole body within `budget(len)` of the start. Its errors are [`BodyError::Broken`]
    /// (the body's own) and [`BodyError::TooSlow`]. A frame that is ready is taken even if a
    /// timer has run out.
    pub struct Timed<B> {
        #[pin]
        body: B,
        idle_for: Duration,
        // A frame came since the idle timer was last set.
        moved: bool,
        #[pin]
        idle: Sleep,
        #[pin]
        deadline: Sleep,
    }
}

impl<B> Timed<B> {
    /// Holds `body`, of at most `len` bytes, to `timing` from now (inside a tokio runtime).
    pub fn new(body: B, len: u64, timing: &BodyTiming) -> Timed<B> {
        let now = Instant::now();
        Timed {
            body,
            idle_for: timing.idle,
            moved: false,
            idle: tokio::time::sleep_until(now + timing.idle),
            deadline: tokio::time::sleep_until(now + timing.budget(len)),
        }
    }
}

impl<B> http_body::Body for Timed<B>
where
    B: http_body::Body,
    B::Error: std::fmt::Display,
{
    type Data = B::Data;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, BodyError>>> {
        let this = self.project();
        match this.body.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                *this.moved = true;
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(BodyError::Broken(e.to_string())))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let mut idle = this.idle;
                if std::mem::take(this.moved) {
                    idle.as_mut().reset(Instant::now() + *this.idle_for);
                }
                if idle.poll(cx).is_ready() || this.deadline.poll(cx).is_ready() {
                    Poll::Ready(Some(Err(BodyError::TooSlow)))
                } else {
                    Poll::Pending
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Reads a whole request body as the chunks hyper delivered (no copy), up to `limit` bytes,
/// within `timing` (the budget of a `limit`-byte body).
pub async fn read_body(
    body: Incoming,
    limit: u64,
    timing: &BodyTiming,
) -> Result<Vec<Bytes>, BodyError> {
    let mut body = std::pin::pin!(Timed::new(body, limit, timing));
    let mut chunks = Vec::new();
    let mut len = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            len += data.len() as u64;
            if len > limit {
                return Err(BodyError::TooLong);
            }
            if !data.is_empty() {
                chunks.push(data);
            }
        }
    }
    Ok(chunks)
}

/// Reads and discards a request body, so the connection can be kept alive after an early
/// answer. Stops (and lets hyper close the connection) after `limit` bytes, or when the body
/// stalls or crawls (`timing`).
pub async fn drain_body(body: Incoming, limit: u64, timing: &BodyTiming) {
    let mut body = std::pin::pin!(Timed::new(body, limit, timing));
    let mut len = 0u64;
    while let Some(Ok(frame)) = body.frame().await {
        if let Ok(data) = frame.into_data() {
            len += data.len() as u64;
            if len > limit {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    /// A body that sends one byte after each gap, then ends.
    struct Gaps {
        gaps: VecDeque<Duration>,
        wait: Option<Pin<Box<Sleep>>>,
    }

    impl http_body::Body for Gaps {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            loop {
                if let Some(wait) = &mut self.wait {
                    if wait.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    self.wait = None;
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"x")))));
                }
                match self.gaps.pop_front() {
                    None => return Poll::Ready(None),
                    Some(gap) => self.wait = Some(Box::pin(tokio::time::sleep(gap))),
                }
            }
        }
    }

    /// How many bytes a body with these gaps (seconds) gives through [`Timed`] for a limit of
    /// `len` bytes, and when it ends.
    async fn timed(
        gaps: &[u64],
        len: u64,
        idle_s: u64,
        min_bytes_per_s: u64,
    ) -> (Result<usize, BodyError>, u64) {
        let timing = BodyTiming {
            idle: Duration::from_secs(idle_s),
            min_bytes_per_s,
        };
        let started = Instant::now();
        let body = Gaps {
            gaps: gaps.iter().map(|&s| Duration::from_secs(s)).collect(),
            wait: None,
        };
        let mut body = std::pin::pin!(Timed::new(body, len, &timing));
        let mut got = 0;
        let outcome = loop {
            match body.frame().await {
                None => break Ok(got),
                Some(Ok(_)) => got += 1,
                Some(Err(e)) => break Err(e),
            }
        };
        (outcome, started.elapsed().as_secs())
    }

    #[tokio::test(start_paused = true)]
    async fn a_timed_body_fails_when_it_stalls_or_crawls_and_not_before() {
        // Twelve bytes 9 s apart, each within the 10 s idle limit: 108 s in all (the one idle
        // timer moves at every frame), well within the budget of 10 + 1000 / 1 s.
        assert_eq!(timed(&[9; 12], 1000, 10, 1).await, (Ok(12), 108));
        // A gap of 11 s fails the body 10 s after its last byte.
        assert_eq!(
            timed(&[5, 11], 1000, 10, 1).await,
            (Err(BodyError::TooSlow), 15)
        );
        // Bytes 5 s apart, each in time, but a 100-byte body at 10 B/s has 10 + 10 s in all.
        assert_eq!(
            timed(&[5; 100], 100, 10, 10).await,
            (Err(BodyError::TooSlow), 20)
        );
    }
}
