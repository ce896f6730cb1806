//! Request handling: one BITS packet in, one Ack out (MC-BUP 3.2.5).

use std::sync::{Arc, atomic::Ordering};

use http::{Method, Request, Response, StatusCode, request::Parts};
use hyper::body::Incoming;
use probe::{Event, FaultCtx, FaultPoint, Verdict};
use protocol::{
    Ack, ErrorContext, HResult, Packet, PacketType, header, packet::Fragment,
    packet::is_bits_request,
};
use transport::{
    Body,
    server::{BodyError, drain_body, read_body},
};

use crate::{
    CommitPoint, Node, NotificationType, Placement, SessionRecord, kib, notify, path, reply,
    storage::StorageError,
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
        let timing = self.timing();
        let drain = |body| drain_body(body, DRAIN_LIMIT, &timing);
        if parts.method == Method::GET || parts.method == Method::HEAD {
            drain(body).await;
            return reply::serve(self, &parts);
        }
        if !is_bits_request(&parts.method, &parts.headers) {
            drain(body).await;
            let mut resp = Response::new(Body::empty());
            *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            resp.headers_mut().insert(
                http::header::ALLOW,
                http::HeaderValue::from_static("BITS_POST, GET, HEAD"),
            );
            return resp;
        }
        if !self.cfg.uploads_enabled {
            drain(body).await;
            let ack = Ack::error(501, HResult::ACCESS_DENIED, ErrorContext::REMOTE_FILE);
            return self
                .reject(None, ack, "uploads are disabled on this virtual directory")
                .to_response()
                .map(|()| Body::empty());
        }
        let packet = match Packet::parse(&parts.method, &parts.headers) {
            Ok(p) => p,
            Err(e) => {
                drain(body).await;
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
        // Only a Fragment carries a body (MC-BUP 2.2.2.3, 2.2.4.3): another packet with one is
        // malformed, not something to ignore.
        if kind != PacketType::Fragment && http_body::Body::size_hint(&body).upper() != Some(0) {
            drain(body).await;
            let mut ack = self.reject(
                Some(kind),
                Ack::invalid_arg(),
                &format!("{kind} must not have a body"),
            );
            ack.session_id = session;
            return ack.to_response().map(|()| Body::empty());
        }
        let at = At {
            conn,
            packet: Some(kind),
            session: session.as_deref(),
            file: None,
        };
        // Where a request enters (and below, leaves) the node, a proxy in front of it could
        // answer with a plain error page instead.
        let ack = match self.verdict(FaultPoint::Request, at).await {
            Verdict::Page(status) => {
                drain(body).await;
                return page(status);
            }
            v => instead(v, at),
        };
        let ack = if let Some(ack) = ack {
            drain(body).await;
            ack
        } else {
            match packet {
                Packet::Ping => Ack::ok(),
                Packet::CreateSession { protocols } => {
                    self.create_session(&protocols, &parts, conn).await
                }
                Packet::Fragment(f) => self.fragment(f, body, conn).await,
                Packet::CloseSession { session_id } => self.close_session(&session_id, conn).await,
                Packet::CancelSession { session_id } => self.cancel_session(&session_id).await,
            }
        };
        let ack = match self.verdict(FaultPoint::AckReady, at).await {
            Verdict::Page(status) => return page(status),
            v => instead(v, at).unwrap_or(ack),
        };
        tracing::debug!(node = %self.cfg.name, conn, packet = %kind, status = ack.status,
            session = session.as_deref().unwrap_or(""), "ack");
        ack.to_response().map(|()| Body::empty())
    }

    /// Asks the probe what to do at a fault point (sleeping out a delay); `Continue` or an
    /// answer to give instead.
    async fn verdict(&self, point: FaultPoint, at: At<'_>) -> Verdict {
        let ctx = FaultCtx {
            point,
            actor: &self.cfg.name,
            conn: at.conn,
            packet: at.packet,
            session: at.session,
            file: at.file,
        };
        match self.probe.fault(&ctx) {
            Verdict::Delay(d) => {
                tokio::time::sleep(d).await;
                Verdict::Continue
            }
            v => v,
        }
    }

    /// Asks the probe what to do at a fault point; `Some` is the Ack to answer instead.
    async fn checkpoint(&self, point: FaultPoint, at: At<'_>) -> Option<Ack> {
        instead(self.verdict(point, at).await, at)
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
        if let Some(max) = self.cfg.max_sessions
            && self.open_sessions.load(Ordering::Relaxed) >= max
        {
            return self.reject(
                P,
                busy(),
                &format!("{max} sessions are open, the most this node keeps (--max-sessions)"),
            );
        }
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
            // Leave nothing behind: no client knows this session.
            let _ = self.store.remove(&id);
            return self.storage_failed(PacketType::CreateSession, &id, &e);
        }
        self.open_sessions.fetch_add(1, Ordering::Relaxed);
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
        let range = f.range;
        let timing = self.timing();
        // First what needs no lock and no body: the session's state as it stands.
        let peek = match self.store.get(id) {
            Ok(Some(rec)) => rec,
            Ok(None) => {
                drain_body(body, DRAIN_LIMIT, &timing).await;
                return self.not_found(P, id);
            }
            Err(e) => {
                drain_body(body, DRAIN_LIMIT, &timing).await;
                return self.storage_failed(P, id, &e);
            }
        };
        if let Some(ack) = self.replay_cached(&peek) {
            drain_body(body, DRAIN_LIMIT, &timing).await;
            return ack;
        }
        if let Some(ack) = self.refuse_fragment(&peek, &f) {
            drain_body(body, DRAIN_LIMIT, &timing).await;
            return ack;
        }
        // The body is read before the session is locked, within its time budget, so a client
        // whose connection stalls mid-fragment never holds the session (its retry, its
        // Close-Session, the cleanup) and its buffered bytes are freed when it times out.
        let want = u32::try_from(kib(range.len()))
            .unwrap_or(u32::MAX)
            .min(u32::try_from(kib(self.cfg.max_buffered_bytes)).unwrap_or(u32::MAX));
        let Ok(_buffer) = self.buffered.clone().try_acquire_many_owned(want) else {
            // The body is not read: hyper closes the connection after this answer.
            return self
                .reject(
                    Some(P),
                    busy(),
                    "too many fragment bytes in memory already (max_buffered_bytes)",
                )
                .with_session(id)
                .with_received(peek.received);
        };
        let chunks = match read_body(body, range.len(), &timing).await {
            Ok(c) => c,
            Err(e) => {
                // The client is gone, too slow, or sent more than it declared; nothing is
                // stored.
                let ack = match e {
                    BodyError::TooSlow => Ack::error(
                        408,
                        HResult::from_http_status(408),
                        ErrorContext::REMOTE_FILE,
                    ),
                    BodyError::TooLong | BodyError::Broken(_) => Ack::invalid_arg(),
                };
                return self
                    .reject(Some(P), ack, &format!("fragment body: {e}"))
                    .with_session(id)
                    .with_received(peek.received);
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
                .with_received(peek.received);
        }

        let _guard = self.lock_session(id).await;
        // Again under the lock: another request may have moved the session on meanwhile.
        let mut rec = match self.store.get(id) {
            Ok(Some(rec)) => rec,
            Ok(None) => {
                drop(_guard);
                self.forget_lock(id);
                return self.not_found(P, id);
            }
            Err(e) => return self.storage_failed(P, id, &e),
        };
        if let Some(ack) = self.replay_cached(&rec) {
            return ack;
        }
        if let Some(ack) = self.refuse_fragment(&rec, &f) {
            return ack;
        }
        let file = rec.path.clone();
        let at = At {
            conn,
            packet: Some(P),
            session: Some(id),
            file: Some(&file),
        };

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
            self.held_bytes
                .fetch_add(range.end - held, Ordering::Relaxed);
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

    /// NotifyCache: the application already has this upload; the final Ack, replayed.
    fn replay_cached(&self, rec: &SessionRecord) -> Option<Ack> {
        let cached = rec.notified.as_ref()?;
        tracing::info!(node = %self.cfg.name, session = %rec.id, file = %rec.path, "final ack replayed from cache");
        probe::emit(&*self.probe, || Event::CachedAckReplayed {
            node: self.cfg.name.clone(),
            session: rec.id.clone(),
            file: rec.path.clone(),
        });
        let mut ack = Ack::ok().with_session(&rec.id).with_received(rec.received);
        ack.reply_url = cached.reply_url.clone();
        Some(ack)
    }

    /// A fragment the session cannot take, whatever its body: its Ack.
    fn refuse_fragment(&self, rec: &SessionRecord, f: &Fragment) -> Option<Ack> {
        const P: Option<PacketType> = Some(PacketType::Fragment);
        let (id, range) = (rec.id.as_str(), f.range);
        if rec.total.is_some_and(|t| t != range.total) {
            return Some(
                self.reject(
                    P,
                    Ack::invalid_arg(),
                    "Content-Range total differs from the session's",
                )
                .with_session(id)
                .with_received(rec.received),
            );
        }
        if range.total > self.cfg.max_upload_size {
            // Never 413: that tells the client to shrink its fragments, which cannot help.
            return Some(
                self.reject(
                    P,
                    Ack::error(400, HResult::TOO_LARGE, ErrorContext::REMOTE_FILE),
                    "upload larger than BITSMaximumUploadSize",
                )
                .with_session(id),
            );
        }
        if range.len() > self.cfg.max_fragment_size {
            return Some(
                self.reject(
                    P,
                    Ack::error(
                        413,
                        HResult::from_http_status(413),
                        ErrorContext::REMOTE_FILE,
                    ),
                    "fragment larger than the node accepts",
                )
                .with_session(id)
                .with_received(rec.received),
            );
        }
        let new_bytes = range.end.saturating_sub(rec.received);
        if let Some(max) = self.cfg.max_session_bytes
            && new_bytes > 0
            && self
                .held_bytes
                .load(Ordering::Relaxed)
                .saturating_add(new_bytes)
                > max
        {
            return Some(
                self.reject(
                    P,
                    busy(),
                    &format!("open sessions hold {max} bytes, the most this node keeps (--max-session-bytes)"),
                )
                .with_session(id)
                .with_received(rec.received),
            );
        }
        None
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
        let refuse = |ack: Ack, why: &str| {
            Err(self
                .reject(Some(PacketType::Fragment), ack, why)
                .with_session(&rec.id))
        };
        let denied = || Ack::error(403, HResult::ACCESS_DENIED, ErrorContext::REMOTE_FILE);
        match self
            .store
            .commit(&rec.id, rec.received, &rec.path, self.cfg.allow_overwrites)
        {
            Ok(Placement::Placed) => {
                tracing::info!(node = %self.cfg.name, session = %rec.id, file = %rec.path, "committed to destination");
                probe::emit(&*self.probe, || Event::Committed {
                    node: self.cfg.name.clone(),
                    session: rec.id.clone(),
                    file: rec.path.clone(),
                });
            }
            // The node died after placing the file and before recording it: the file at the
            // destination is this upload's own, delivered once.
            Ok(Placement::AlreadyPlaced) => {
                tracing::info!(node = %self.cfg.name, session = %rec.id, file = %rec.path, "already committed before a restart");
            }
            Ok(Placement::Exists) => {
                return refuse(
                    denied(),
                    "the destination exists and BITSAllowOverwrites is off",
                );
            }
            Err(e @ StorageError::Unsafe(_)) => return refuse(denied(), &e.to_string()),
            Err(e) => return Err(self.storage_failed(PacketType::Fragment, &rec.id, &e)),
        }
        rec.committed = true;
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
        self.forget_session(&rec);
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
        self.forget_session(&rec);
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

/// The Ack a fault verdict answers with instead of carrying on (`None`: carry on).
fn instead(v: Verdict, at: At<'_>) -> Option<Ack> {
    let (status, code) = match v {
        Verdict::Continue | Verdict::Delay(_) => return None,
        Verdict::Fail(status) | Verdict::Page(status) => (status, HResult::FAIL),
        Verdict::FailWith { status, code } => (status, HResult(code)),
    };
    let mut ack = Ack::error(status, code, ErrorContext::REMOTE_FILE);
    ack.session_id = at.session.map(str::to_owned);
    Some(ack)
}

/// A plain HTTP error page, as a proxy in front of the node would send.
fn page(status: u16) -> Response<Body> {
    let mut resp = Response::new(Body::from(format!(
        "<html><body>{status} (an error page injected in front of the node)</body></html>\n"
    )));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/html"),
    );
    resp
}

/// The answer of a node at one of its limits: 503, which clients retry after their retry delay.
fn busy() -> Ack {
    Ack::error(
        503,
        HResult::from_http_status(503),
        ErrorContext::REMOTE_FILE,
    )
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
