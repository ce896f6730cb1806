//! One HTTP/1.1 client connection, used one request at a time.

use std::{future::Future, pin::Pin, task::Poll, time::Duration};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use crate::{Body, BoxIo, Connect};

/// Why a request got no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The connection could not be opened (refused, unreachable, connect timeout).
    Connect(String),
    /// The server's TLS certificate was refused or the handshake failed: a retry would meet
    /// the same certificate.
    Tls(String),
    /// No complete response arrived within the request timeout.
    Timeout,
    /// The connection broke before a complete response arrived (reset, closed).
    Broken(String),
    /// The peer answered with something that is not HTTP/1.1.
    Protocol(String),
    /// The response body is longer than the caller accepts (the connection is dropped, so a
    /// hostile or broken peer cannot make the caller buffer without bound).
    TooLarge(u64),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Connect(why) => write!(f, "cannot connect: {why}"),
            Error::Tls(why) => f.write_str(why),
            Error::Timeout => f.write_str("timed out waiting for the response"),
            Error::Broken(why) => write!(f, "connection broken: {why}"),
            Error::Protocol(why) => write!(f, "not an HTTP/1.1 response: {why}"),
            Error::TooLarge(limit) => write!(f, "response body longer than {limit} bytes"),
        }
    }
}

impl std::error::Error for Error {}

type Driver = Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>>;

/// A client connection. The connection's driver runs inside [`HttpConn::send`], in the
/// caller's task: nothing is spawned, so a party's connections die with the party's task.
pub struct HttpConn {
    sender: SendRequest<Body>,
    driver: Driver,
    /// Why the driver finished, once it has.
    ended: Option<String>,
}

impl HttpConn {
    /// Starts HTTP/1.1 on an open stream.
    pub async fn handshake(io: BoxIo) -> Result<HttpConn, Error> {
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| Error::Broken(e.to_string()))?;
        Ok(HttpConn {
            sender,
            driver: Box::pin(conn),
            ended: None,
        })
    }

    /// Connects to `authority` and starts HTTP/1.1, within `timeout`.
    pub async fn open(
        connector: &dyn Connect,
        authority: &str,
        timeout: Duration,
    ) -> Result<HttpConn, Error> {
        let io = match tokio::time::timeout(timeout, connector.connect(authority)).await {
            Ok(Ok(io)) => io,
            Ok(Err(e)) => {
                return Err(
                    match e
                        .get_ref()
                        .and_then(|i| i.downcast_ref::<crate::tls::Refused>())
                    {
                        Some(refused) => Error::Tls(refused.0.clone()),
                        None => Error::Connect(e.to_string()),
                    },
                );
            }
            Err(_) => return Err(Error::Connect("connect timed out".into())),
        };
        HttpConn::handshake(io).await
    }

    /// Whether the connection can carry another request: polls the driver once, so a close by
    /// the peer (an idle timeout) that has already arrived is noticed before sending.
    pub async fn is_reusable(&mut self) -> bool {
        if self.ended.is_none() {
            let polled =
                std::future::poll_fn(|cx| Poll::Ready(self.driver.as_mut().poll(cx))).await;
            if let Poll::Ready(r) = polled {
                self.ended = Some(describe_end(r));
            }
        }
        self.ended.is_none() && !self.sender.is_closed()
    }

    /// Sends one request and reads the whole response, within `timeout`; a body longer than
    /// [`DEFAULT_MAX_BODY`] is an error.
    pub async fn send(
        &mut self,
        req: Request<Body>,
        timeout: Duration,
    ) -> Result<Response<Bytes>, Error> {
        self.send_limited(req, timeout, DEFAULT_MAX_BODY).await
    }

    /// Sends one request and reads the whole response, within `timeout`. A response whose body
    /// is (or declares to be) longer than `max_body` bytes is [`Error::TooLarge`], and the
    /// connection is not used again.
    pub async fn send_limited(
        &mut self,
        req: Request<Body>,
        timeout: Duration,
        max_body: u64,
    ) -> Result<Response<Bytes>, Error> {
        let result = tokio::time::timeout(timeout, self.exchange(req, max_body)).await;
        if let Ok(Err(Error::TooLarge(_))) = &result {
            self.ended
                .get_or_insert_with(|| "response body too long".into());
        }
        match result {
            Ok(r) => r,
            Err(_) => {
                // A response that did not arrive in time leaves the connection unusable.
                self.ended.get_or_insert_with(|| "request timed out".into());
                Err(Error::Timeout)
            }
        }
    }

    async fn exchange(
        &mut self,
        req: Request<Body>,
        max_body: u64,
    ) -> Result<Response<Bytes>, Error> {
        if let Some(why) = &self.ended {
            return Err(Error::Broken(why.clone()));
        }
        let sender = &mut self.sender;
        let request = async move {
            let resp = sender.send_request(req).await?;
            let (parts, body) = resp.into_parts();
            let bytes = match read_limited(&parts.headers, body, max_body).await? {
                Some(b) => b,
                None => return Ok(Err(Error::TooLarge(max_body))),
            };
            Ok::<_, hyper::Error>(Ok(Response::from_parts(parts, bytes)))
        };
        tokio::pin!(request);
        let mut driver_done = false;
        loop {
            tokio::select! {
                biased;
                r = &mut request => {
                    let e = match r {
                        Ok(inner) => return inner,
                        Err(e) => e,
                    };
                    // The driver's error names the io failure behind hyper's "closed".
                    let why = self.ended.clone().unwrap_or_else(|| e.to_string());
                    return Err(if e.is_parse() || e.is_parse_status() {
                        Error::Protocol(why)
                    } else {
                        Error::Broken(why)
                    });
                }
                r = &mut self.driver, if !driver_done => {
                    driver_done = true;
                    self.ended = Some(describe_end(r));
                }
            }
        }
    }
}

/// Most bytes a response body may have unless the caller says otherwise: 16 MiB. BITS Acks
/// have empty bodies; callers that expect more (a reply download) pass their own limit.
pub const DEFAULT_MAX_BODY: u64 = 16 << 20;

/// Reads a body of at most `max` bytes; `None` if it declares or turns out to be longer.
async fn read_limited(
    headers: &http::HeaderMap,
    mut body: hyper::body::Incoming,
    max: u64,
) -> hyper::Result<Option<Bytes>> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return Ok(None);
    }
    let mut out = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            if out.len() as u64 + data.len() as u64 > max {
                return Ok(None);
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(Some(out.freeze()))
}

fn describe_end(r: hyper::Result<()>) -> String {
    match r {
        Ok(()) => "connection closed by peer".into(),
        Err(e) => {
            let mut why = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                why.push_str(": ");
                why.push_str(&s.to_string());
                source = s.source();
            }
            why
        }
    }
}

/// Timeouts of a one-shot request.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Connecting.
    pub connect: Duration,
    /// Waiting for the whole response once connected.
    pub request: Duration,
}

/// Opens a connection, sends one request, reads the response (at most `max_body` bytes of
/// body), closes.
pub async fn fetch(
    connector: &dyn Connect,
    authority: &str,
    req: Request<Body>,
    timeouts: Timeouts,
    max_body: u64,
) -> Result<Response<Bytes>, Error> {
    let mut conn = HttpConn::open(connector, authority, timeouts.connect).await?;
    conn.send_limited(req, timeouts.request, max_body).await
}
