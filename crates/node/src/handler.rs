//! Request handling: one BITS packet in, one Ack out (MC-BUP 3.2.5).

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode, request::Parts};
use hyper::body::Incoming;
use probe::{Event, FaultCtx, FaultPoint, Verdict};
use protocol::{
    Ack, ErrorContext, HResult, Packet, PacketType, header, packet::Fragment,
    packet::is_bits_request,
};
use transport::{
    Body,
    server::{drain_body, read_body},
};

use crate::{
    CommitPoint, Node, NotificationType, SessionRecord, notify, path, reply, storage::StorageError,
};

/// Where a request stands, for fault points and events.
#[derive(Clone, Copy)]
struct At<'a> {
    conn: u64,
    packet: Option<PacketType>,
    session: Option<&'a str>,
    file: Option<&'a str>,
}

/// Most a node reads and discards of a body it answers early, so the connection stays usable.
const DRAIN_LIMIT: u64 = 256 << 20;

impl Node {
    /// Answers one request.
    pub(crate) async fn handle(
        self: &Arc<Self>,
        req: Request<Incoming>,
        conn: u64,
    ) -> Response<Body> {
        let (parts, body) = req.into_parts();
        if parts.method == Method::GET || parts.method == Method::HEAD {
            drain_body(body, DRAIN_LIMIT).await;
            return reply::serve(self, &parts);
        }
        if !is_bits_request(&parts.method, &parts.headers) {
            drain_body(body, DRAIN_LIMIT).await;
            let mut resp = Response::new(Body::empty());
            *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            resp.headers_mut().insert(
                http::header::ALLOW,
                http::HeaderValue::from_static("BITS_POST, GET, HEAD"),
            );
            return resp;
        }
        if !self.cfg.uploads_enabled {
            drain_body(body, DRAIN_LIMIT).await;
            let ack = Ack::error(501, HResult::ACCESS_DENIED, ErrorContext::REMOTE_FILE);
            return self
                .reject(None, ack, "uploads are disabled on this virtual directory")
                .to_response()
                .map(|()| Body::empty());
        }
        let packet = match Packet::parse(&parts.method, &parts.headers) {
            Ok(p) => p,
            Err(e) => {
                drain_body(body, DRAIN_LIMIT).await;
                let mut ack = self.reject(None, Ack::invalid_arg(), &e.to_string());
                // Echo a readable session id, as MC-BUP allows on errors.
                ack.session_id = parts
                    .headers
                    .get(header::SESSION_ID)
                    .and_then(|v| v.to_str().ok())
                    .filter(|s| s.len() <= 100)
                    .map(str::to_owned);
                return ack.to_response().map(|()| Body::empty());
            }
        };
        let kind = packet.packet_type();
        let session = packet.session_id().map(str::to_owned);
        let at = At {
            conn,
            packet: Some(kind),
            session: session.as_deref(),
            file: None,
        };
        let ack = match self.checkpoint(FaultPoint::Request, at).await {
            Some(ack) => {
                drain_body(body, DRAIN_LIMIT).await;
                ack
            }
            None => match packet {
                Packet::Ping => {
                    drain_body(body, DRAIN_LIMIT).await;
                    Ack::ok()
                }
                Packet::CreateSession { protocols } => {
                    drain_body(body, DRAIN_LIMIT).await;
                    self.create_session(&protocols, &parts, conn).await
                }
                Packet::Fragment(f) => self.fragment(f, body, conn).await,
                Packet::CloseSession { session_id } => {
                    drain_body(body, DRAIN_LIMIT).await;
                    self.close_session(&session_id, conn).await
                }
                Packet::CancelSession { session_id } => {
                    drain_body(body, DRAIN_LIMIT).await;
                    self.cancel_session(&session_id).await
                }
            },
        };
        let ack = self
            .checkpoint(FaultPoint::AckReady, at)
            .await
            .unwrap_or(ack);
        tracing::debug!(node = %self.cfg.name, conn, packet = %kind, status = ack.status,
            session = session.as_deref().unwrap_or(""), "ack");
        ack.to_response().map(|()| Body::empty())
    }

    /// Asks the probe what to do at a fault point; `Some` is the Ack to answer instead.
    async fn checkpoint(&self, point: FaultPoint, at: At<'_>) -> Option<Ack> {
        let ctx = FaultCtx {
            point,
            actor: &self.cfg.name,
            conn: at.conn,
            packet: at.packet,
            session: at.session,
            file: at.file,
        };
        match self.probe.fault(&ctx) {
            Verdict::Continue => None,
            Verdict::Delay(d) => {
                tokio::time::sleep(d).await;
                None
            }
            Verdict::Fail(status) => {
                let mut ack = Ack::error(status, HResult::FAIL, ErrorContext::REMOTE_FILE);
                ack.session_id = at.session.map(str::to_owned);
                Some(ack)
            }
        }
    }

    /// Records a refused request and returns its Ack.
    fn reject(&self, packet: Option<PacketType>, ack: Ack, reason: &str) -> Ack {
        tracing::info!(node = %self.cfg.name, status = ack.status, reason, "request rejected");
        probe::emit(&*self.probe, || Event::RequestRejected {
            node: self.cfg.name.clone(),
            packet,
            status: ack.status,
            code: ack.code().unwrap_or(HResult::OK).to_string(),
            reason: reason.to_owned(),
        });
        ack
    }

    fn storage_failed(&self, packet: PacketType, session: &str, e: &StorageError) -> Ack {
        tracing::error!(node = %self.cfg.name, session, error = %e, "storage failed");
        self.reject(
            Some(packet),
            Ack::error(500, HResult::FAIL, ErrorContext::REMOTE_FILE),
            &e.to_string(),
        )
        .with_session(session)
    }

    fn not_found(&self, packet: PacketType, session: &str) -> Ack {
        tracing::info!(node = %self.cfg.name, session, packet = %packet, "session not found");
        probe::emit(&*self.probe, || Event::SessionNotFound {
            node: self.cfg.name.clone(),
            session: session.to_owned(),
            packet,
        });
        Ack::session_not_found().with_session(session)
    }

    async fn create_session(&self, protocols: &[String], parts: &Parts, conn: u64) -> Ack {
        const P: Option<PacketType> = Some(PacketType::CreateSession);
        let Some(protocol) = protocols.iter().find(|p| header::is_upload_protocol(p)) else {
            return self.reject(
                P,
                Ack::invalid_arg(),
                "no protocol in common with the client",
            );
        };
        let path = match path::upload_path(parts.uri.path()) {
            Ok(p) => p,
            Err(e) => return self.reject(P, Ack::invalid_arg(), e.reason()),
        };
        if self.cfg.notification == NotificationType::None && !self.cfg.allow_overwrites {
            match self.store.destination_exists(&path) {
                Ok(false) => {}
                Ok(true) => {
                    return self.reject(
                        P,
                        Ack::error(403, HResult::ACCESS_DENIED, ErrorContext::REMOTE_FILE),
                        "the destination exists and BITSAllowOverwrites is off",
                    );
                }
                Err(e) => return self.storage_failed(PacketType::CreateSession, "", &e),
            }
        }
        let id = self.new_session_id();
        let rec = SessionRecord {
            id: id.clone(),
            path,
            original_url: original_url(parts, &self.cfg.name),
            query: parts.uri.query().map(str::to_owned),
            content_name: None,
            total: None,
            received: 0,
            upload_complete: false,
            notified: None,
            committed: false,
            touched_ms: self.clock.now_ms(),
        };
        if let Err(e) = self.store.save(&rec) {
            return self.storage_failed(PacketType::CreateSession, &id, &e);
        }
        tracing::info!(node = %self.cfg.name, session = %id, file = %rec.path, "session created");
        probe::emit(&*self.probe, || Event::SessionCreated {
            node: self.cfg.name.clone(),
            session: id.clone(),
            file: rec.path.clone(),
        });
        let at = At {
            conn,
            packet: P,
            session: Some(&id),
            file: Some(&rec.path),
        };
        if let Some(ack) = self.checkpoint(FaultPoint::SessionCreated, at).await {
            return ack;
        }
        let mut ack = Ack::ok().with_session(id);
        ack.protocol = Some(protocol.clone());
        if let Some(host) = self.host_id() {
            ack.host_id = Some(host);
            ack.host_id_fallback_timeout_s = Some(self.cfg.host_id_fallback_timeout_s);
        }
        ack
    }

    async fn fragment(&self, f: Fragment, body: Incoming, conn: u64) -> Ack {
        const P: PacketType = PacketType::Fragment;
        let id = f.session_id.as_str();
        let _guard = self.lock_session(id).await;
        let mut rec = match self.store.get(id) {
            Ok(Some(rec)) => rec,
            Ok(None) => {
                drain_body(body, DRAIN_LIMIT).await;
                drop(_guard);
                self.forget_lock(id);
                return self.not_found(P, id);
            }
            Err(e) => {
                drain_body(body, DRAIN_LIMIT).await;
                return self.storage_failed(P, id, &e);
            }
        };
        let at = At {
            conn,
            packet: Some(P),
            session: Some(id),
            file: None,
        };
        let file = rec.path.clone();
        let at = At {
            file: Some(&file),
            ..at
        };

        // NotifyCache: the application already has this upload; replay the final Ack.
        if let Some(cached) = &rec.notified {
            drain_body(body, DRAIN_LIMIT).await;
            tracing::info!(node = %self.cfg.name, session = id, file = %file, "final ack replayed from cache");
            probe::emit(&*self.probe, || Event::CachedAckReplayed {
                node: self.cfg.name.clone(),
                session: id.to_owned(),
                file: file.clone(),
            });
            let mut ack = Ack::ok().with_session(id).with_received(rec.received);
            ack.reply_url = cached.reply_url.clone();
            return ack;
        }

        let range = f.range;
        if rec.total.is_some_and(|t| t != range.total) {
            drain_body(body, DRAIN_LIMIT).await;
            return self
                .reject(
                    Some(P),
                    Ack::invalid_arg(),
                    "Content-Range total differs from the session's",
                )
                .with_session(id)
                .with_received(rec.received);
        }
        if range.total > self.cfg.max_upload_size {
            drain_body(body, DRAIN_LIMIT).await;
            // Never 413: that tells the client to shrink its fragments, which cannot help.
            return self
                .reject(
                    Some(P),
                    Ack::error(400, HResult::TOO_LARGE, ErrorContext::REMOTE_FILE),
                    "upload larger than BITSMaximumUploadSize",
                )
                .with_session(id);
        }
        if range.len() > self.cfg.max_fragment_size {
            drain_body(body, DRAIN_LIMIT).await;
            return self
                .reject(
                    Some(P),
                    Ack::error(
                        413,
                        HResult::from_http_status(413),
                        ErrorContext::REMOTE_FILE,
                    ),
                    "fragment larger than the node accepts",
                )
                .with_session(id)
                .with_received(rec.received);
        }
        let chunks = match read_body(body, range.len()).await {
            Ok(c) => c,
            Err(e) => {
                // The client is gone or sent more than it declared; nothing is stored.
                return self
                    .reject(
                        Some(P),
                        Ack::invalid_arg(),
                        &format!("fragment body: {e:?}"),
                    )
                    .with_session(id)
                    .with_received(rec.received);
            }
        };
        let got: u64 = chunks.iter().map(|c| c.len() as u64).sum();
        if got != range.len() {
            return self
                .reject(
                    Some(P),
                    Ack::invalid_arg(),
                    "fragment body shorter than Content-Length",
                )
                .with_session(id)
                .with_received(rec.received);
        }

        let held = rec.received;
        if rec.total.is_none() {
            rec.total = Some(range.total);
            rec.content_name = f.content_name.clone();
            rec.upload_complete = range.total == 0;
        }
        let status = if range.start > held {
            // A gap: the node keeps no non-contiguous ranges.
            416
        } else if range.end > held {
            // Contiguous or overlapping: append only the bytes past what is held; existing
            // bytes are never rewritten.
            let tail = skip_prefix(&chunks, (held - range.start) as usize);
            if let Err(e) = self.store.append(id, held, &tail) {
                return self.storage_failed(P, id, &e);
            }
            rec.received = range.end;
            rec.touched_ms = self.clock.now_ms();
            200
        } else if range.is_final() && rec.upload_complete {
            // The final fragment again, after the application was not reached: notify again.
            200
        } else {
            // Nothing new: tell the client where the node is.
            416
        };
        if rec.received == range.total {
            rec.upload_complete = true;
        }
        if let Err(e) = self.store.save(&rec) {
            return self.storage_failed(P, id, &e);
        }
        probe::emit(&*self.probe, || Event::FragmentAcked {
            node: self.cfg.name.clone(),
            session: id.to_owned(),
            file: file.clone(),
            start: range.start,
            end: range.end,
            total: range.total,
            status,
            received: rec.received,
        });
        tracing::debug!(node = %self.cfg.name, session = id, range = %range, status, received = rec.received, "fragment");
        if status == 200 && rec.upload_complete {
            return self.complete(rec, at).await;
        }
        if let Some(ack) = self.checkpoint(FaultPoint::FragmentStored, at).await {
            return ack;
        }
        fragment_ack(status, id, rec.received)
    }

    /// STATE_NOTIFY: the upload is complete; hand it to the application (or commit it) and
    /// answer the final fragment.
    async fn complete(&self, mut rec: SessionRecord, at: At<'_>) -> Ack {
        const P: PacketType = PacketType::Fragment;
        let id = rec.id.clone();
        if let Some(ack) = self.checkpoint(FaultPoint::BeforeForward, at).await {
            return ack;
        }
        let total = rec.received;
        let cached = match self.cfg.notification {
            NotificationType::None => {
                if self.cfg.commit_point == CommitPoint::LastFragment
                    && let Err(ack) = self.commit(&mut rec)
                {
                    return ack;
                }
                crate::storage::CachedAck { reply_url: None }
            }
            NotificationType::ByReference | NotificationType::ByValue => {
                match notify::notify(self, &rec).await {
                    Ok(accepted) => {
                        if accepted.copy_to_destination
                            && let Err(ack) = self.commit(&mut rec)
                        {
                            return ack;
                        }
                        crate::storage::CachedAck {
                            reply_url: accepted.reply_url,
                        }
                    }
                    // The session stays in RECEIVE_FRAGMENTS: a retried final fragment
                    // notifies again.
                    Err(ack) => return ack.with_session(&id).with_received(total),
                }
            }
        };
        // The application has the file but the node has not recorded it yet: a crash here
        // leaves UploadComplete without NotifyCache, so a retried final fragment notifies again.
        if let Some(ack) = self.checkpoint(FaultPoint::AfterForward, at).await {
            return ack;
        }
        rec.notified = Some(cached.clone());
        if let Err(e) = self.store.save(&rec) {
            return self.storage_failed(P, &id, &e);
        }
        if let Some(ack) = self.checkpoint(FaultPoint::FinalAckReady, at).await {
            return ack;
        }
        let mut ack = Ack::ok().with_session(&id).with_received(total);
        ack.reply_url = cached.reply_url;
        ack
    }

    /// Places the upload at its destination, honouring `BITSAllowOverwrites`.
    fn commit(&self, rec: &mut SessionRecord) -> Result<(), Ack> {
        if rec.committed {
            return Ok(());
        }
        match self.store.destination_exists(&rec.path) {
            Ok(true) if !self.cfg.allow_overwrites => {
                return Err(self
                    .reject(
                        Some(PacketType::Fragment),
                        Ack::error(403, HResult::ACCESS_DENIED, ErrorContext::REMOTE_FILE),
                        "the destination exists and BITSAllowOverwrites is off",
                    )
                    .with_session(&rec.id));
            }
            Ok(_) => {}
            Err(e) => return Err(self.storage_failed(PacketType::Fragment, &rec.id, &e)),
        }
        if let Err(e) = self.store.commit(&rec.id, rec.received, &rec.path) {
            return Err(self.storage_failed(PacketType::Fragment, &rec.id, &e));
        }
        rec.committed = true;
        tracing::info!(node = %self.cfg.name, session = %rec.id, file = %rec.path, "committed to destination");
        probe::emit(&*self.probe, || Event::Committed {
            node: self.cfg.name.clone(),
            session: rec.id.clone(),
            file: rec.path.clone(),
        });
        Ok(())
    }

    async fn close_session(&self, id: &str, conn: u64) -> Ack {
        const P: PacketType = PacketType::CloseSession;
        let guard = self.lock_session(id).await;
        let mut rec = match self.store.get(id) {
            Ok(Some(r)) => r,
            Ok(None) => {
                drop(guard);
                self.forget_lock(id);
                return self.not_found(P, id);
            }
            Err(e) => return self.storage_failed(P, id, &e),
        };
        let complete = rec.notified.is_some();
        if complete
            && self.cfg.notification == NotificationType::None
            && self.cfg.commit_point == CommitPoint::Close
            && let Err(ack) = self.commit(&mut rec)
        {
            return ack;
        }
        // Close before the last byte deletes the partial upload: nothing is delivered.
        if let Err(e) = self.store.remove(id) {
            return self.storage_failed(P, id, &e);
        }
        drop(guard);
        self.forget_lock(id);
        tracing::info!(node = %self.cfg.name, session = id, file = %rec.path, complete, "session closed");
        probe::emit(&*self.probe, || Event::SessionClosed {
            node: self.cfg.name.clone(),
            session: id.to_owned(),
            file: rec.path.clone(),
            complete,
        });
        let at = At {
            conn,
            packet: Some(P),
            session: Some(id),
            file: Some(&rec.path),
        };
        if let Some(ack) = self.checkpoint(FaultPoint::SessionClosed, at).await {
            return ack;
        }
        Ack::ok().with_session(id)
    }

    async fn cancel_session(&self, id: &str) -> Ack {
        const P: PacketType = PacketType::CancelSession;
        let guard = self.lock_session(id).await;
        let rec = match self.store.get(id) {
            Ok(Some(r)) => r,
            Ok(None) => {
                drop(guard);
                self.forget_lock(id);
                return self.not_found(P, id);
            }
            Err(e) => return self.storage_failed(P, id, &e),
        };
        // After the last fragment the file is already delivered: cancelling only drops the
        // session and its reply.
        if let Err(e) = self.store.remove(id) {
            return self.storage_failed(P, id, &e);
        }
        drop(guard);
        self.forget_lock(id);
        tracing::info!(node = %self.cfg.name, session = id, file = %rec.path, "session cancelled");
        probe::emit(&*self.probe, || Event::SessionCancelled {
            node: self.cfg.name.clone(),
            session: id.to_owned(),
            file: rec.path,
        });
        Ack::ok().with_session(id)
    }
}

/// A 200 or 416 Fragment Ack; a 416 carries code 0 ("out of sync") with context 0x5.
fn fragment_ack(status: u16, session: &str, received: u64) -> Ack {
    let mut ack = Ack::new(status)
        .with_session(session)
        .with_received(received);
    if status == 416 {
        ack.error = Some(protocol::AckError {
            code: HResult::OK,
            context: ErrorContext::REMOTE_FILE,
        });
    }
    ack
}

/// The job's remote URL as the client addressed it.
fn original_url(parts: &Parts, fallback_host: &str) -> String {
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| parts.uri.authority().map(|a| a.to_string()))
        .unwrap_or_else(|| fallback_host.to_owned());
    let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    format!("http://{host}{pq}")
}

/// `chunks` without their first `skip` bytes, sharing memory.
fn skip_prefix(chunks: &[bytes::Bytes], mut skip: usize) -> Vec<bytes::Bytes> {
    let mut out = Vec::with_capacity(chunks.len());
    for c in chunks {
        if skip >= c.len() {
            skip -= c.len();
            continue;
        }
        out.push(c.slice(skip..));
        skip = 0;
    }
    out
}
