//! The server application behind a BITS farm: it receives the nodes' notifications (by value
//! and by reference), verifies the bytes, records every delivery in a [`Ledger`], and can
//! deduplicate by transaction id (the mitigation Microsoft documents).
//!
//! Routes: `POST <any path>` is a notification; `GET /ledger` returns the ledger as JSON.
//!
//! **Invariants.** The backend reads files only through [`Files`] (real paths on real sockets,
//! the simulator's disks in a simulation) and never reads the OS clock or randomness. Its
//! ledger outlives its HTTP service, like an application's database outlives its process.

pub mod files;
pub mod ledger;

use std::{io, sync::Arc};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header as h};
use hyper::body::Incoming;
use probe::{Clock, Event, FaultCtx, FaultPoint, SharedProbe, Verdict};
use protocol::{header, txid};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use transport::{Body, Listen, server::ServerOptions};

pub use files::Files;
pub use ledger::{Delivery, Ledger, LedgerError, Snapshot, Verification};

/// The application's behaviour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackendConfig {
    /// Name in events and logs.
    pub name: String,
    /// Produce a reply for upload-reply jobs: a small JSON document describing the delivery
    /// (in the body by value; written to `BITS-Response-DataFile-Name` by reference).
    pub reply: bool,
    /// Answer with `BITS-Static-Response-URL: <url>` instead of a reply of its own.
    pub static_reply_url: Option<String>,
    /// Ask the node to also place the upload at its destination
    /// (`BITS-Copy-File-To-Destination`).
    pub copy_to_destination: bool,
    /// Largest upload accepted, bytes (the application's own limit); a larger one is answered
    /// 413, which the node turns into a fatal `BG_E_TOO_LARGE` for the client. Uploads are
    /// streamed (memory does not grow with their size). Default: no limit.
    pub max_body: u64,
    /// The secret a notification must carry in `X-Bitsfarm-App-Token` (the nodes send it);
    /// others are answered 403. Default none: any caller is accepted (the simulator).
    pub token: Option<String>,
}

impl Default for BackendConfig {
    fn default() -> Self {
        BackendConfig {
            name: "backend".into(),
            reply: true,
            static_reply_url: None,
            copy_to_destination: false,
            max_body: u64::MAX,
            token: None,
        }
    }
}

/// What the application is given rather than reaching for itself.
pub struct Env {
    /// How it reads uploads and writes replies named by path.
    pub files: Arc<dyn Files>,
    /// Events and fault points.
    pub probe: SharedProbe,
    /// Timestamps of ledger entries.
    pub clock: Clock,
}

/// The server application.
pub struct Backend {
    cfg: BackendConfig,
    ledger: Ledger,
    files: Arc<dyn Files>,
    probe: SharedProbe,
    clock: Clock,
}

impl Backend {
    /// An application recording into `ledger` (whose dedupe setting it follows).
    pub fn new(cfg: BackendConfig, ledger: Ledger, env: Env) -> Arc<Backend> {
        Arc::new(Backend {
            cfg,
            ledger,
            files: env.files,
            probe: env.probe,
            clock: env.clock,
        })
    }

    /// The ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Serves connections until the listener fails; all work lives in a `JoinSet` owned by
    /// this future.
    pub async fn run(self: Arc<Self>, listener: Box<dyn Listen>) -> io::Result<()> {
        tracing::info!(app = %self.cfg.name, addr = %listener.local_addr(), dedupe = self.ledger.dedupe(), "application started");
        let handler = move |req, conn, peer: Arc<str>| {
            let app = self.clone();
            async move { app.handle(req, conn, &peer).await }
        };
        transport::server::serve_all(listener, ServerOptions::default(), JoinSet::new(), handler)
            .await
    }

    async fn handle(&self, req: Request<Incoming>, conn: u64, peer: &str) -> Response<Body> {
        let (parts, body) = req.into_parts();
        match (&parts.method, parts.uri.path()) {
            (&Method::GET, "/ledger") => {
                let json = serde_json::to_vec_pretty(&self.ledger.snapshot()).unwrap_or_default();
                let mut resp = Response::new(Body::from(json));
                resp.headers_mut().insert(
                    h::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json"),
                );
                resp
            }
            (&Method::POST, _) => self.notification(parts, body, conn, peer).await,
            _ => status(
                StatusCode::NOT_FOUND,
                "POST a BITS notification, or GET /ledger",
            ),
        }
    }

    async fn checkpoint(
        &self,
        point: FaultPoint,
        conn: u64,
        session: Option<&str>,
        file: Option<&str>,
    ) -> Option<u16> {
        let ctx = FaultCtx {
            point,
            actor: &self.cfg.name,
            conn,
            packet: None,
            session,
            file,
            len: None,
        };
        match self.probe.fault(&ctx) {
            Verdict::Continue | Verdict::DiskFull => None,
            Verdict::Delay(d) => {
                tokio::time::sleep(d).await;
                None
            }
            Verdict::Fail(status) | Verdict::FailWith { status, .. } | Verdict::Page(status) => {
                Some(status)
            }
        }
    }

    async fn notification(
        &self,
        parts: http::request::Parts,
        body: Incoming,
        conn: u64,
        peer: &str,
    ) -> Response<Body> {
        let text = |name: &http::HeaderName| header_text(&parts.headers, name);
        let timing = transport::server::BodyTiming::default();
        let drain = |body| transport::server::drain_body(body, 64 << 10, &timing);
        if let Some(token) = &self.cfg.token
            && text(&header::X_APP_TOKEN) != Some(token.as_str())
        {
            drain(body).await;
            tracing::warn!(app = %self.cfg.name, peer, "notification without the nodes' token refused");
            return status(
                StatusCode::FORBIDDEN,
                "this application accepts notifications from its BITS nodes only (X-Bitsfarm-App-Token)",
            );
        }
        let Some(original) = text(&header::ORIGINAL_REQUEST_URL) else {
            drain(body).await;
            return status(StatusCode::BAD_REQUEST, "missing BITS-Original-Request-URL");
        };
        let file = transport::url::file_path(original);
        let by_reference = text(&header::REQUEST_DATAFILE_NAME);
        let session = text(&header::X_SESSION_ID)
            .map(str::to_owned)
            .or_else(|| by_reference.and_then(session_from_path));
        let node = text(&header::X_NODE).unwrap_or(peer).to_owned();
        if let Some(code) = self
            .checkpoint(
                FaultPoint::NotificationReceived,
                conn,
                session.as_deref(),
                Some(&file),
            )
            .await
        {
            drain(body).await;
            return status(
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                "fault injected",
            );
        }

        // The bytes, streamed past a digest (never held whole): in the body (by value) or in
        // the file the node names (by reference).
        let mut digest = txid::Digest::new();
        let mut kept = None;
        match by_reference {
            None => {
                if let Err(e) = read_into(body, self.cfg.max_body, &timing, &mut digest).await {
                    return match e {
                        transport::server::BodyError::TooLong => status(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            &format!(
                                "the upload is larger than this application's limit of {} bytes",
                                self.cfg.max_body
                            ),
                        ),
                        other => status(StatusCode::BAD_REQUEST, &format!("body: {other}")),
                    };
                }
            }
            Some(path) => {
                drain(body).await;
                let max = self.cfg.max_body;
                let mut too_long = false;
                // The file's kept digest if its store has one, else the file read through ours.
                let read = match self.files.digest(path) {
                    Some(d) => {
                        too_long = d.len > max;
                        kept = Some(d);
                        Ok(())
                    }
                    None => self
                        .files
                        .read(path, &mut |piece| {
                            if digest.len() + piece.len() as u64 > max {
                                too_long = true;
                            } else {
                                digest.feed(piece);
                            }
                        })
                        .map(drop),
                };
                if too_long {
                    return status(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        &format!(
                            "the upload is larger than this application's limit of {max} bytes"
                        ),
                    );
                }
                if let Err(e) = read {
                    tracing::warn!(app = %self.cfg.name, path, error = %e, "cannot read the uploaded file");
                    return status(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "cannot read BITS-Request-DataFile-Name",
                    );
                }
            }
        }
        let digested = kept.unwrap_or_else(|| digest.finish());
        let (len, hash) = (digested.len, digested.hash);
        let (txid, verification) = verification(digested);
        let recorded = self.ledger.record(ledger::NewDelivery {
            at_ms: self.clock.now_ms(),
            file: file.clone(),
            txid: txid.clone(),
            node: node.clone(),
            session: session.clone(),
            len,
            hash,
            verification,
        });
        let delivery = match recorded {
            Ok(d) => d,
            Err(e) => {
                // Not recorded, not applied: the node's retry delivers it again.
                tracing::error!(app = %self.cfg.name, file = %file, error = %e, "cannot record the delivery");
                return status(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "cannot record the delivery",
                );
            }
        };
        tracing::info!(app = %self.cfg.name, file = %file, node = %node, txid = txid.as_deref().unwrap_or(""),
            effect = delivery.effect, seq = delivery.seq, "delivery");
        probe::emit(&*self.probe, || Event::Delivered {
            file: file.clone(),
            txid,
            node,
            session: session.clone(),
            len,
            hash,
            effect: delivery.effect,
        });
        if let Some(code) = self
            .checkpoint(
                FaultPoint::EffectRecorded,
                conn,
                session.as_deref(),
                Some(&file),
            )
            .await
        {
            return status(
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                "fault injected",
            );
        }

        let mut resp = Response::new(Body::empty());
        if let Some(url) = &self.cfg.static_reply_url {
            resp.headers_mut()
                .insert(header::STATIC_RESPONSE_URL, value(url));
        } else if self.cfg.reply {
            let reply = serde_json::to_vec(&Reply {
                file: &file,
                txid: delivery.txid.as_deref(),
                len,
                xxh3: format!("{hash:016x}"),
                delivery: delivery.seq,
                effect: delivery.effect,
            })
            .unwrap_or_default();
            match text(&header::RESPONSE_DATAFILE_NAME) {
                Some(path) if by_reference.is_some() => {
                    if let Err(e) = self.files.write(path, Bytes::from(reply)) {
                        tracing::warn!(app = %self.cfg.name, path, error = %e, "cannot write the reply file");
                        return status(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "cannot write BITS-Response-DataFile-Name",
                        );
                    }
                }
                _ => *resp.body_mut() = Body::from(reply),
            }
        }
        if self.cfg.copy_to_destination {
            resp.headers_mut().insert(
                header::COPY_FILE_TO_DESTINATION,
                http::HeaderValue::from_static("1"),
            );
        }
        let len = resp.body().len();
        resp.headers_mut()
            .insert(h::CONTENT_LENGTH, http::HeaderValue::from(len));
        resp
    }
}

/// The reply an upload-reply job downloads.
#[derive(Serialize)]
struct Reply<'a> {
    file: &'a str,
    txid: Option<&'a str>,
    len: u64,
    xxh3: String,
    delivery: u64,
    effect: bool,
}

/// The transaction id of an upload and what checking its payload against the envelope found.
fn verification(d: txid::Digested) -> (Option<String>, Verification) {
    match d.parsed {
        txid::Parsed::Plain => (None, Verification::Plain),
        txid::Parsed::Malformed => (None, Verification::Malformed),
        txid::Parsed::Envelope(e) => (
            Some(e.txid),
            if d.payload_matches {
                Verification::Verified
            } else {
                Verification::Mismatch
            },
        ),
    }
}

/// Streams a by-value body into `digest`, at most `max` bytes, within `timing`.
async fn read_into(
    body: Incoming,
    max: u64,
    timing: &transport::server::BodyTiming,
    digest: &mut txid::Digest,
) -> Result<(), transport::server::BodyError> {
    use http_body_util::BodyExt as _;
    use transport::server::{BodyError, Timed};
    let declared = http_body::Body::size_hint(&body).exact();
    if declared.is_some_and(|n| n > max) {
        return Err(BodyError::TooLong);
    }
    let mut body = std::pin::pin!(Timed::new(body, declared.unwrap_or(0), timing));
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            if digest.len() + data.len() as u64 > max {
                return Err(BodyError::TooLong);
            }
            digest.feed(&data);
        }
    }
    Ok(())
}

/// The session id in a by-reference path (`.../BITS-Sessions/{id}/request`).
fn session_from_path(path: &str) -> Option<String> {
    let mut parts = path.rsplit(['/', '\\']);
    let _file = parts.next()?;
    let id = parts.next()?;
    (id.starts_with('{') && id.ends_with('}')).then(|| id.to_owned())
}

fn header_text<'a>(headers: &'a http::HeaderMap, name: &http::HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn status(code: StatusCode, why: &str) -> Response<Body> {
    let mut resp = Response::new(Body::from(format!("{why}\n")));
    *resp.status_mut() = code;
    resp
}

fn value(s: &str) -> http::HeaderValue {
    http::HeaderValue::from_str(s).unwrap_or_else(|_| http::HeaderValue::from_static("invalid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verify(chunks: &[Bytes], len: u64) -> (Option<String>, Verification) {
        let mut d = txid::Digest::new();
        for c in chunks {
            d.feed(c);
        }
        assert_eq!(d.len(), len);
        verification(d.finish())
    }

    #[test]
    fn verifies_enveloped_data_across_chunks() {
        let payload = b"0123456789abcdef";
        let mut data = txid::header("t-1", payload);
        data.extend_from_slice(payload);
        let whole = Bytes::from(data);
        let chunks = vec![whole.slice(..5), whole.slice(5..40), whole.slice(40..)];
        assert_eq!(
            verify(&chunks, whole.len() as u64),
            (Some("t-1".into()), Verification::Verified)
        );
        let mut bad = whole.to_vec();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(
            verify(&[Bytes::from(bad)], whole.len() as u64).1,
            Verification::Mismatch
        );
        assert_eq!(
            verify(&[Bytes::from_static(b"plain")], 5),
            (None, Verification::Plain)
        );
    }

    #[test]
    fn file_and_session_from_headers() {
        assert_eq!(
            session_from_path("/srv/BITS-Sessions/{AB}/request"),
            Some("{AB}".into())
        );
        assert_eq!(
            session_from_path(r"C:\v\BITS-Sessions\{AB}\request"),
            Some("{AB}".into())
        );
        assert_eq!(session_from_path("/x/request"), None);
    }
}
