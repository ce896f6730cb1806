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
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            idle_timeout: Duration::from_secs(120),
        }
    }
}

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

/// Accepts connections from `listener` and serves each on a task in `tasks` (which may already
/// hold the server's own background tasks) until accepting fails. Every task is owned by this
/// future: dropping or aborting it stops them all. `handler` gets each request with its
/// connection's number and peer.
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
    let options = Arc::new(options);
    loop {
        tokio::select! {
            biased;
            Some(_) = tasks.join_next() => {}
            accepted = listener.accept() => {
                let accepted = accepted?;
                let handler = handler.clone();
                let options = options.clone();
                tasks.spawn(async move {
                    let (conn, peer) = (accepted.conn, Arc::<str>::from(accepted.peer));
                    tracing::trace!(conn, peer = %peer, "connection");
                    let per_request = move |req| handler(req, conn, peer.clone());
                    if let Err(e) = serve(accepted.io, &options, per_request).await {
                        tracing::debug!(conn, error = %e, "connection ended");
                    }
                });
            }
        }
    }
}

/// Why a request body could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// Longer than the limit.
    TooLong,
    /// The connection broke while the body was arriving.
    Broken(String),
}

/// Reads a whole request body as the chunks hyper delivered (no copy), up to `limit` bytes.
pub async fn read_body(mut body: Incoming, limit: u64) -> Result<Vec<Bytes>, BodyError> {
    let mut chunks = Vec::new();
    let mut len = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Broken(e.to_string()))?;
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
    Ok(chunks)
}

/// Reads and discards a request body, so the connection can be kept alive after an early
/// answer. Stops (and lets hyper close the connection) after `limit` bytes.
pub async fn drain_body(mut body: Incoming, limit: u64) {
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
