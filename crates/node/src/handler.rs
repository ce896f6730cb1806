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
    CommitPoint, Node, NotificationType, Placement, kib, notify, path, reply,
    session::{self, CachedAck, Limits, Phase, SessionRecord, Step, Take, busy},
    storage::StorageError,
};

/// Where a request stands, for fault points and events.
#[derive(Clone, Copy)]
struct At<'a> {
    conn: u64,
    packet: Option<PacketType>,
    session: Option<&'a str>,
    file: Option<&'a str>,
    /// The request body's declared length (set where a request enters the node).
    len: Option<u64>,
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
        let packet = match self.admit(&parts, &body) {
            Ok(packet) => packet,
            Err(turned) => {
                drain(body).await;
                return self.turn_away(turned, &parts);
            }
        };
        let kind = packet.packet_type();
        let session = packet.session_id().map(str::to_owned);
        let at = At {
            conn,
            packet: Some(kind),
            session: session.as_deref(),
            file: None,
            len: parts
                .headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse().ok()),
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
                Packet::Fragment(f) => {
                    // A client that waits for 100 Continue has not sent the body: an early
                    // answer (413, too large, unknown session) goes out without reading it.
                    let waits = parts
                        .headers
                        .get(http::header::EXPECT)
                        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
                    self.fragment(f, body, conn, waits).await
                }
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

    /// The BITS packet a request carries, or why the node turns it away before looking further.
    fn admit(&self, parts: &Parts, body: &Incoming) -> Result<Packet, Turned> {
        if let Some(c) = &self.cfg.basic_auth
            && !c.admits(parts.headers.get(http::header::AUTHORIZATION))
        {
            return Err(Turned::Unauthenticated);
        }
        if parts.method == Method::GET || parts.method == Method::HEAD {
            return Err(Turned::Get);
        }
        if !is_bits_request(&parts.method, &parts.headers) {
            return Err(Turned::NotBits);
        }
        if !self.cfg.uploads_enabled {
            return Err(Turned::Disabled);
        }
        let packet = Packet::parse(&parts.method, &parts.headers).map_err(Turned::Malformed)?;
        // Only a Fragment carries a body (MC-BUP 2.2.2.3, 2.2.4.3): another packet with one is
        // malformed, not something to ignore.
        let kind = packet.packet_type();
        if kind != PacketType::Fragment && http_body::Body::size_hint(body).upper() != Some(0) {
            return Err(Turned::BodyNotAllowed(
                kind,
                packet.session_id().map(str::to_owned),
            ));
        }
        Ok(packet)
    }

    /// The answer to a request turned away (its body drained).
    fn turn_away(self: &Arc<Self>, turned: Turned, parts: &Parts) -> Response<Body> {
        let ack = match turned {
            Turned::Get => return reply::serve(self, parts),
            Turned::Unauthenticated => {
                let mut resp = Response::new(Body::empty());
                *resp.status_mut() = StatusCode::UNAUTHORIZED;
                resp.headers_mut().insert(
                    http::header::WWW_AUTHENTICATE,
                    http::HeaderValue::from_static("Basic realm=\"bitsfarm\""),
                );
                return resp;
            }
            Turned::NotBits => {
                let mut resp = Response::new(Body::empty());
                *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
                resp.headers_mut().insert(
                    http::header::ALLOW,
                    http::HeaderValue::from_static("BITS_POST, GET, HEAD"),
                );
                return resp;
            }
            Turned::Disabled => self.reject(
                None,
                Ack::error(501, HResult::ACCESS_DENIED, ErrorContext::REMOTE_FILE),
                "uploads are disabled on this virtual directory",
            ),
            Turned::Malformed(e) => {
                let mut ack = self.reject(None, Ack::invalid_arg(), &e.to_string());
                // Echo a readable session id, as MC-BUP allows on errors.
                ack.session_id = parts
                    .headers
                    .get(header::SESSION_ID)
                    .and_then(|v| v.to_str().ok())
                    .filter(|s| s.len() <= 100)
                    .map(str::to_owned);
                ack
            }
            Turned::BodyNotAllowed(kind, session) => {
                let mut ack = self.reject(
                    Some(kind),
                    Ack::invalid_arg(),
                    &format!("{kind} must not have a body"),
                );
                ack.session_id = session;
                ack
            }
        };
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
            len: at.len,
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
        let rec = SessionRecord::new(
            id.clone(),
            path,
            original_url(parts, &self.cfg.name),
            parts.uri.query().map(str::to_owned),
            self.clock.now_ms(),
        );
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
            file: rec.path.to_string(),
        });
        let at = At {
            conn,
            packet: P,
            session: Some(&id),
            file: Some(&rec.path),
            len: None,
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

    async fn fragment(&self, f: Fragment, body: Incoming, conn: u64, waits: bool) -> Ack {
        const P: PacketType = PacketType::Fragment;
        let id = f.session_id.as_str();
        let timing = self.timing();
        // First what needs no lock and no body: the session's state as it stands.
        let peek = match self.fragment_step(id, &f) {
            Ok((rec, _)) => rec,
            Err(early) => {
                if !waits {
                    drain_body(body, DRAIN_LIMIT, &timing).await;
                }
                return self.answer_early(id, early);
            }
        };
        // The body is read before the session is locked, within its time budget, so a client
        // whose connection stalls mid-fragment never holds the session (its retry, its
        // Close-Session, the cleanup) and its buffered bytes are freed when it times out.
        let (chunks, _buffer) = match self.read_fragment(&f, body, peek.received).await {
            Ok(read) => read,
            Err(ack) => return ack,
        };
        let guard = self.lock_session(id).await;
        // Again under the lock: another request may have moved the session on meanwhile.
        let (mut rec, take) = match self.fragment_step(id, &f) {
            Ok(step) => step,
            Err(early) => {
                if matches!(early, Early::NotFound) {
                    drop(guard);
                    self.forget_lock(id);
                }
                return self.answer_early(id, early);
            }
        };
        if let Some(skip) = take.append_from {
            let held = rec.received;
            if let Err(e) = self
                .store
                .append(id, held, &skip_prefix(&chunks, skip as usize))
            {
                return self.storage_failed(P, id, &e);
            }
            self.held_bytes
                .fetch_add(take.received - held, Ordering::Relaxed);
        }
        session::apply(&mut rec, &f, &take, self.clock.now_ms());
        if let Err(e) = self.store.save(&rec) {
            return self.storage_failed(P, id, &e);
        }
        let range = f.range;
        probe::emit(&*self.probe, || Event::FragmentAcked {
            node: self.cfg.name.clone(),
            session: id.to_owned(),
            file: rec.path.to_string(),
            start: range.start,
            end: range.end,
            total: range.total,
            status: take.status,
            received: rec.received,
        });
        tracing::debug!(node = %self.cfg.name, session = id, range = %range, status = take.status, received = rec.received, "fragment");
        let file = rec.path.clone();
        let at = At {
            conn,
            packet: Some(P),
            session: Some(id),
            file: Some(&file),
            len: None,
        };
        if take.notifies() {
            return self.complete(rec, at).await;
        }
        if let Some(ack) = self.checkpoint(FaultPoint::FragmentStored, at).await {
            return ack;
        }
        fragment_ack(take.status, id, rec.received)
    }

    /// The session a fragment names and what its state machine makes of the fragment (its
    /// body not looked at), or why the fragment ends early.
    fn fragment_step(&self, id: &str, f: &Fragment) -> Result<(SessionRecord, Take), Early> {
        let rec = match self.store.get(id) {
            Ok(Some(rec)) => rec,
            Ok(None) => return Err(Early::NotFound),
            Err(e) => return Err(Early::Storage(e)),
        };
        let limits = Limits {
            max_upload_size: self.cfg.max_upload_size,
            max_fragment_size: self.cfg.max_fragment_size,
            max_session_bytes: self.cfg.max_session_bytes,
        };
        let held = self.held_bytes.load(Ordering::Relaxed);
        match session::on_fragment(&rec, f.range, &limits, held) {
            Step::Take(take) => Ok((rec, take)),
            Step::Replay(cached) => Err(Early::Replay(Box::new(rec), cached)),
            Step::Refuse(why) => Err(Early::Refuse(Box::new(rec), why)),
        }
    }

    /// The Ack of a fragment that ends early (recorded as it goes out).
    fn answer_early(&self, id: &str, early: Early) -> Ack {
        const P: PacketType = PacketType::Fragment;
        match early {
            Early::NotFound => self.not_found(P, id),
            Early::Storage(e) => self.storage_failed(P, id, &e),
            Early::Replay(rec, cached) => self.replay(&rec, cached),
            Early::Refuse(rec, why) => {
                self.reject(Some(P), why.ack(&rec.id, rec.received), &why.reason())
            }
        }
    }

    /// Reads a fragment's body within the node's time and memory budgets; the chunks and the
    /// room they hold, or the Ack to answer.
    async fn read_fragment(
        &self,
        f: &Fragment,
        body: Incoming,
        received: u64,
    ) -> Result<(Vec<bytes::Bytes>, crate::Taken<'_>), Ack> {
        const P: Option<PacketType> = Some(PacketType::Fragment);
        let (id, range) = (f.session_id.as_str(), f.range);
        let refuse = |ack: Ack, why: &str| {
            Err(self
                .reject(P, ack, why)
                .with_session(id)
                .with_received(received))
        };
        let want = kib(range.len()).min(kib(self.cfg.max_buffered_bytes));
        let Some(room) = self.buffered.take(want) else {
            // The body is not read: hyper closes the connection after this answer.
            return refuse(
                busy(),
                "too many fragment bytes in memory already (max_buffered_bytes)",
            );
        };
        let chunks = match read_body(body, range.len(), &self.timing()).await {
            Ok(c) => c,
            // The client is gone, too slow, or sent more than it declared; nothing is stored.
            Err(e @ BodyError::TooSlow) => {
                let ack = Ack::error(
                    408,
                    HResult::from_http_status(408),
                    ErrorContext::REMOTE_FILE,
                );
                return refuse(ack, &format!("fragment body: {e}"));
            }
            Err(e @ (BodyError::TooLong | BodyError::Broken(_))) => {
                return refuse(Ack::invalid_arg(), &format!("fragment body: {e}"));
            }
        };
        let got: u64 = chunks.iter().map(|c| c.len() as u64).sum();
        if got != range.len() {
            return refuse(
                Ack::invalid_arg(),
                "fragment body shorter than Content-Length",
            );
        }
        Ok((chunks, room))
    }

    /// NotifyCache: the application already has this upload; the final Ack, replayed.
    fn replay(&self, rec: &SessionRecord, cached: CachedAck) -> Ack {
        tracing::info!(node = %self.cfg.name, session = %rec.id, file = %rec.path, "final ack replayed from cache");
        probe::emit(&*self.probe, || Event::CachedAckReplayed {
            node: self.cfg.name.clone(),
            session: rec.id.to_string(),
            file: rec.path.to_string(),
        });
        let mut ack = Ack::ok().with_session(&*rec.id).with_received(rec.received);
        ack.reply_url = cached.reply_url;
        ack
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
                CachedAck { reply_url: None }
            }
            NotificationType::ByReference | NotificationType::ByValue => {
                match notify::notify(self, &rec).await {
                    Ok(accepted) => {
                        if accepted.copy_to_destination
                            && let Err(ack) = self.commit(&mut rec)
                        {
                            return ack;
                        }
                        CachedAck {
                            reply_url: accepted.reply_url,
                        }
                    }
                    // The session stays in RECEIVE_FRAGMENTS: a retried final fragment
                    // notifies again.
                    Err(ack) => return ack.with_session(&*id).with_received(total),
                }
            }
        };
        // The application has the file but the node has not recorded it yet: a crash here
        // leaves UploadComplete without NotifyCache, so a retried final fragment notifies again.
        if let Some(ack) = self.checkpoint(FaultPoint::AfterForward, at).await {
            return ack;
        }
        rec.phase = Phase::Notified(cached.clone());
        if let Err(e) = self.store.save(&rec) {
            return self.storage_failed(P, &id, &e);
        }
        if let Some(ack) = self.checkpoint(FaultPoint::FinalAckReady, at).await {
            return ack;
        }
        let mut ack = Ack::ok().with_session(&*id).with_received(total);
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
                .with_session(&*rec.id))
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
                    session: rec.id.to_string(),
                    file: rec.path.to_string(),
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
        let complete = rec.notified().is_some();
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
            file: rec.path.to_string(),
            complete,
        });
        let at = At {
            conn,
            packet: Some(P),
            session: Some(id),
            file: Some(&rec.path),
            len: None,
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
            file: rec.path.to_string(),
        });
        Ack::ok().with_session(id)
    }
}

/// Why a request is answered before it reaches a packet handler.
enum Turned {
    /// GET or HEAD: a reply download.
    Get,
    /// Not a BITS request at all.
    NotBits,
    /// Authentication is required and the request's does not match.
    Unauthenticated,
    /// Uploads are off on this virtual directory.
    Disabled,
    /// The packet's headers do not parse.
    Malformed(protocol::ParseError),
    /// A packet other than Fragment came with a body.
    BodyNotAllowed(PacketType, Option<String>),
}

/// Why a fragment ends before its bytes are taken.
enum Early {
    /// No such session.
    NotFound,
    /// The session's state could not be read.
    Storage(StorageError),
    /// The application has the upload already: replay its final Ack.
    Replay(Box<SessionRecord>, CachedAck),
    /// The session cannot take the fragment.
    Refuse(Box<SessionRecord>, session::Refusal),
}

/// The Ack a fault verdict answers with instead of carrying on (`None`: carry on).
fn instead(v: Verdict, at: At<'_>) -> Option<Ack> {
    let (status, code) = match v {
        Verdict::Continue | Verdict::Delay(_) | Verdict::DiskFull => return None,
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
