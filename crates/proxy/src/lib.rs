//! `bitsfarm proxy`: a BITS-aware HTTP/1.1 reverse proxy that is a farm's shared address in
//! front of real BITS servers. It picks an upstream per client connection (the simulator's
//! balancer policies, [`live::Picker`]), and
//! serves each upstream on an address of its own too, to which it rewrites the upstream's
//! `BITS-Host-Id`, so clients that follow a Host-Id stay inside the proxy. It understands the
//! exchange on the wire (packets, sessions, Content-Range, final fragments, Acks), carries out
//! fault rules on the protocol steps it sees, and infers deliveries: a final fragment answered
//! with success is a delivery of that file by that upstream, once per session (the same
//! success again within a session is the node's cached Ack, not a new delivery).
//!
//! **Invariants.** A request body of a declared length up to [`MAX_BODY`] is relayed to the
//! upstream as it arrives (its chunks kept, shared, until the upstream's answer says what it
//! holds: memory O(fragment)), within the body's time budget; any other body, and the body of
//! a request a rule answers itself, is read whole first (at most [`MAX_BODY`] bytes, within
//! the budget). The upstream has the proxy's timeout to answer once the body is in; a client
//! connection and its upstream connection live in one task, so nothing outlives the client's
//! connection.

use std::{
    collections::BTreeMap,
    hash::Hasher as _,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use protocol::{Packet, header};
use serde::{Deserialize, Serialize};
use transport::{Body, BoxIo, Connect, client::HttpConn, server::BodyTiming};

/// Largest request body forwarded (IIS's default request limit is 30,000,000 bytes).
pub const MAX_BODY: u64 = 64 << 20;

/// One real BITS server behind the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// Its name in reports (`iis-1`).
    pub name: String,
    /// Where it is (`10.0.0.11:80`).
    pub authority: String,
    /// Where the proxy serves it alone (what its rewritten `BITS-Host-Id` names).
    pub advertised: String,
}

/// Where on the wire a rule acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WirePoint {
    /// Any request, before it is forwarded.
    Request,
    /// A Create-Session.
    CreateSession,
    /// A Fragment.
    Fragment,
    /// The upstream answered a final fragment with success: the file is delivered and its
    /// final Ack is on the way (the seed document's moment).
    FinalFragmentAnswered,
    /// A Close-Session.
    CloseSession,
}

impl WirePoint {
    /// The point a packet passes before it is forwarded (besides `request`).
    fn of(packet: Option<&Packet>) -> Option<WirePoint> {
        match packet? {
            Packet::CreateSession { .. } => Some(WirePoint::CreateSession),
            Packet::Fragment(_) => Some(WirePoint::Fragment),
            Packet::CloseSession { .. } => Some(WirePoint::CloseSession),
            _ => None,
        }
    }
}

/// What a rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WireAction {
    /// The upstream processed it; the client never hears (its connection is closed).
    DropResponse,
    /// The client's connection is closed before the request is forwarded.
    Reset,
    /// The client gets this HTTP status with a BITS error Ack, the request is not forwarded.
    Fail,
    /// The request waits `duration_s` before it is forwarded.
    Delay,
    /// The upstream is unreachable through the proxy for `duration_s`: its open client
    /// connections are closed, new ones go to the others (or are closed, on its own address).
    Down,
}

/// A fault rule on the wire: the keys of a `[[fault]]` table where they apply, and `upstream`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireRule {
    /// Where it acts.
    pub point: WirePoint,
    /// What it does.
    pub action: WireAction,
    /// Only for this upstream.
    #[serde(default)]
    pub upstream: Option<String>,
    /// Only for this file (`/upload/a.bin`).
    #[serde(default)]
    pub file: Option<String>,
    /// Fire on the n-th matching hit (default 1).
    #[serde(default)]
    pub nth: Option<u64>,
    /// Most firings (default 1; 0: no limit).
    #[serde(default)]
    pub times: Option<u64>,
    /// Status for `fail` (default 500).
    #[serde(default)]
    pub status: Option<u16>,
    /// Only this packet type (`Fragment`, `Create-Session`, ...).
    #[serde(default)]
    pub packet: Option<protocol::PacketType>,
    /// Fire on each matching hit with this probability (seeded; then `times` defaults to no
    /// limit).
    #[serde(default)]
    pub probability: Option<f64>,
    /// Seconds, for `delay` and `down`.
    #[serde(default)]
    pub duration_s: Option<f64>,
}

impl WireRule {
    /// What is wrong with the rule, if anything.
    pub fn check(&self) -> Result<(), String> {
        if matches!(self.action, WireAction::Delay | WireAction::Down)
            && !self.duration_s.is_some_and(|d| d > 0.0 && d <= 86_400.0)
        {
            return Err(format!(
                "{}: duration_s must be in (0, 86400]",
                kebab(&self.action)
            ));
        }
        if let Some(p) = self.probability
            && !(p > 0.0 && p <= 1.0)
        {
            return Err("probability must be in (0, 1]".into());
        }
        if self.nth == Some(0) {
            return Err("nth counts from 1".into());
        }
        if self.nth.is_some() && self.probability.is_some() {
            return Err("use nth or probability, not both".into());
        }
        if let Some(s) = self.status
            && !(100..=599).contains(&s)
        {
            return Err("status must be an HTTP status, 100 to 599".into());
        }
        if self.action != WireAction::DropResponse
            && self.action != WireAction::Down
            && self.point == WirePoint::FinalFragmentAnswered
        {
            return Err(format!(
                "{} acts before forwarding; at final-fragment-answered use drop-response or down",
                kebab(&self.action)
            ));
        }
        Ok(())
    }
}

/// A delivery inferred from the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// The upload path.
    pub file: String,
    /// The upstream that answered the final fragment with success.
    pub upstream: String,
    /// The session.
    pub session: String,
    /// The upload's size.
    pub len: u64,
    /// XXH3-64 of the bytes the client sent in that session, hex (`None` when the proxy did
    /// not see them all, e.g. the session began before the proxy).
    pub hash: Option<String>,
}

/// What the proxy saw: every delivery, and the files delivered more than once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Seen {
    /// Every delivery, in order.
    pub deliveries: Vec<Delivery>,
    /// Files delivered by more than one session: (file, deliveries).
    pub duplicates: Vec<(String, usize)>,
    /// Times each rule fired, by position.
    pub fired: Vec<u64>,
}

/// A session seen on the wire.
struct Session {
    upstream: usize,
    file: String,
    /// Bytes the upstream holds, as its Acks said.
    held: u64,
    /// XXH3 of the bytes `0..held`, while the proxy saw them all in order.
    hash: Option<twox_hash::XxHash3_64>,
    delivered: bool,
}

struct Armed {
    rule: WireRule,
    hits: u64,
    fired: u64,
    removed: bool,
}

/// A rule as the proxy's control API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleState {
    /// Its id (its position).
    pub id: usize,
    /// The rule in words.
    pub description: String,
    /// Matching hits.
    pub hits: u64,
    /// Firings.
    pub fired: u64,
    /// Whether it was removed.
    pub removed: bool,
    /// The rule's keys.
    pub rule: WireRule,
}

struct State {
    rng: rand_chacha::ChaCha8Rng,
    /// Client connections open to each upstream.
    open: Vec<usize>,
    /// Each upstream's down window (until then: unreachable through the proxy).
    down_until: Vec<Option<tokio::time::Instant>>,
    sessions: BTreeMap<String, Session>,
    deliveries: Vec<Delivery>,
    rules: Vec<Armed>,
    /// Every exchange as the simulator's typed events.
    log: scenario::log::EventLog,
    /// Every file seen, from its first session.
    tracker: scenario::track::Tracker,
}

impl State {
    fn record(&mut self, t_ms: u64, event: probe::Event) {
        let rec = self.log.record(t_ms, event);
        self.tracker.observe(&rec);
    }
}

impl WireRule {
    /// The rule in words: `drop-response at final-fragment-answered for /upload/a.bin`.
    pub fn describe(&self) -> String {
        let mut s = format!("{} at {}", kebab(&self.action), kebab(&self.point));
        if let Some(u) = &self.upstream {
            s.push_str(&format!(" on {u}"));
        }
        if let Some(f) = &self.file {
            s.push_str(&format!(" for {f}"));
        }
        if let Some(n) = self.nth.filter(|n| *n > 1) {
            s.push_str(&format!(" (hit {n})"));
        }
        s
    }
}

/// The name a value has in a rule file (`drop-response`).
fn kebab<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The proxy. Clones share it.
#[derive(Clone)]
pub struct Proxy {
    inner: Arc<Inner>,
}

struct Inner {
    upstreams: Vec<Upstream>,
    connector: Arc<dyn Connect>,
    picker: Mutex<live::Picker>,
    /// Bumped when an upstream goes down: its client connections close.
    downs: tokio::sync::watch::Sender<u64>,
    timeout: Duration,
    state: Mutex<State>,
    started: std::time::Instant,
}

/// What a rule makes of an exchange.
enum Verdict {
    Forward,
    Cut,
    Fail(u16),
    /// Forward, then cut instead of answering.
    CutAfter,
    Delay(Duration),
}

impl Proxy {
    /// A proxy over `upstreams` (reached with `connector`), with `rules`.
    pub fn new(
        upstreams: Vec<Upstream>,
        connector: Arc<dyn Connect>,
        rules: Vec<WireRule>,
        (policy, seed): (sim::Policy, u64),
        timeout: Duration,
        sink: Option<scenario::log::Sink>,
    ) -> Proxy {
        use rand::SeedableRng as _;
        let n = upstreams.len();
        Proxy {
            inner: Arc::new(Inner {
                upstreams,
                connector,
                picker: Mutex::new(live::Picker::new(policy, seed)),
                downs: tokio::sync::watch::channel(0).0,
                timeout,
                started: std::time::Instant::now(),
                state: Mutex::new(State {
                    rng: rand_chacha::ChaCha8Rng::seed_from_u64(seed),
                    open: vec![0; n],
                    down_until: vec![None; n],
                    log: scenario::log::EventLog::new(sink),
                    tracker: scenario::track::Tracker::adopting(false),
                    sessions: BTreeMap::new(),
                    deliveries: Vec::new(),
                    rules: rules
                        .into_iter()
                        .map(|rule| Armed {
                            rule,
                            hits: 0,
                            fired: 0,
                            removed: false,
                        })
                        .collect(),
                }),
            }),
        }
    }

    /// What the proxy saw so far.
    pub fn seen(&self) -> Seen {
        let state = self.inner.lock();
        let mut per_file: BTreeMap<&str, usize> = BTreeMap::new();
        for d in &state.deliveries {
            *per_file.entry(&d.file).or_default() += 1;
        }
        Seen {
            deliveries: state.deliveries.clone(),
            duplicates: per_file
                .into_iter()
                .filter(|(_, n)| *n > 1)
                .map(|(f, n)| (f.to_owned(), n))
                .collect(),
            fired: state.rules.iter().map(|r| r.fired).collect(),
        }
    }

    /// Every rule with its counters.
    pub fn rules(&self) -> Vec<RuleState> {
        self.inner
            .lock()
            .rules
            .iter()
            .enumerate()
            .map(|(id, r)| RuleState {
                id,
                description: r.rule.describe(),
                hits: r.hits,
                fired: r.fired,
                removed: r.removed,
                rule: r.rule.clone(),
            })
            .collect()
    }

    /// Adds a rule while the proxy runs; its id, or what is wrong with it.
    pub fn add_rule(&self, rule: WireRule) -> Result<usize, String> {
        rule.check()?;
        let mut state = self.inner.lock();
        if state.rules.len() >= 1000 {
            return Err("at most 1,000 rules".into());
        }
        state.rules.push(Armed {
            rule,
            hits: 0,
            fired: 0,
            removed: false,
        });
        Ok(state.rules.len() - 1)
    }

    /// Removes rule `id`: it matches and fires no more.
    pub fn remove_rule(&self, id: usize) -> Result<(), String> {
        match self.inner.lock().rules.get_mut(id) {
            Some(r) if !r.removed => {
                r.removed = true;
                Ok(())
            }
            _ => Err(format!("no rule {id} to remove (GET /faults lists them)")),
        }
    }

    /// What the proxy saw as the result of a run, for the simulator's checker and reports:
    /// every file followed from its first session, every delivery inferred, every rule's
    /// counters. Takes the files out (call once, at the end).
    pub fn result(&self) -> scenario::farm::RunResult {
        let mut state = self.inner.lock();
        let tracker = std::mem::replace(
            &mut state.tracker,
            scenario::track::Tracker::adopting(false),
        );
        scenario::farm::RunResult {
            completed: true,
            virtual_time_ms: self.inner.now_ms(),
            events: state.log.len(),
            event_hash: state.log.hash(),
            tracker,
            rules: state
                .rules
                .iter()
                .enumerate()
                .map(|(index, r)| scenario::fault::RuleReport {
                    index,
                    description: if r.removed {
                        format!("{} (removed while the proxy ran)", r.rule.describe())
                    } else {
                        r.rule.describe()
                    },
                    hits: r.hits,
                    fired: r.fired,
                    optional: r.removed,
                })
                .collect(),
            ledger_deliveries: state.deliveries.len() as u64,
            panics: Default::default(),
            harness_failure: None,
        }
    }

    /// Serves client connections from `listener`: each goes to the upstream `pinned` names
    /// (an upstream's own address), or to the next in turn (the shared address).
    pub async fn serve(
        self,
        listener: Box<dyn transport::Listen>,
        pinned: Option<usize>,
    ) -> std::io::Result<()> {
        let mut listener = listener;
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                Some(_) = tasks.join_next() => {}
                accepted = listener.accept() => {
                    let accepted = accepted?;
                    let source: std::net::SocketAddr = accepted
                        .peer
                        .parse()
                        .unwrap_or_else(|_| std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
                    // None: every upstream (or the pinned one) is down: the connection closes.
                    if let Some(upstream) = self.inner.choose(pinned, &source) {
                        tasks.spawn(self.inner.clone().client(accepted.io, upstream));
                    }
                }
            }
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The upstream for a new client connection: `pinned` if it is up, else one picked among
    /// those up; counted as open.
    fn choose(&self, pinned: Option<usize>, source: &std::net::SocketAddr) -> Option<usize> {
        let now = tokio::time::Instant::now();
        let mut state = self.lock();
        let up: Vec<usize> = (0..self.upstreams.len())
            .filter(|&i| state.down_until[i].is_none_or(|until| now >= until))
            .collect();
        let i = match pinned {
            Some(p) => up.contains(&p).then_some(p)?,
            None if up.is_empty() => return None,
            None => {
                let mut picker = self.picker.lock().unwrap_or_else(|p| p.into_inner());
                let open = state.open.clone();
                picker.pick(self.upstreams.len(), &up, |i| open[i], source)
            }
        };
        state.open[i] += 1;
        Some(i)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn record(&self, event: probe::Event) {
        let t = self.now_ms();
        self.lock().record(t, event);
    }

    /// One client connection, forwarded to `upstream` on a connection of its own.
    async fn client(self: Arc<Self>, io: BoxIo, upstream: usize) {
        let mut downs = self.downs.subscribe();
        let down_now = {
            let me = self.clone();
            async move {
                loop {
                    if downs.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                    let until = me.lock().down_until[upstream];
                    if until.is_some_and(|u| tokio::time::Instant::now() < u) {
                        return;
                    }
                }
            }
        };
        let (cut_tx, mut cut_rx) = tokio::sync::mpsc::channel::<()>(1);
        let conn: Arc<tokio::sync::Mutex<Option<HttpConn>>> = Arc::default();
        let me = self.clone();
        let handler = move |req: Request<Incoming>| {
            let (me, conn, cut) = (me.clone(), conn.clone(), cut_tx.clone());
            async move {
                match me.forward(req, upstream, &conn).await {
                    Ok(resp) => resp,
                    Err(Verdict::Cut) => {
                        let _ = cut.send(()).await;
                        std::future::pending().await
                    }
                    Err(Verdict::Fail(status)) => bits_error(status),
                    Err(_) => bits_error(502),
                }
            }
        };
        let options = transport::server::ServerOptions::default();
        tokio::select! {
            _ = transport::server::serve(io, &options, handler) => {}
            _ = cut_rx.recv() => {}
            () = down_now => {}
        }
        let mut state = self.lock();
        state.open[upstream] = state.open[upstream].saturating_sub(1);
    }

    /// The rules at `point` for this exchange: the first that fires decides.
    fn verdict(
        &self,
        point: WirePoint,
        upstream: usize,
        file: &str,
        session: Option<&str>,
        packet: Option<protocol::PacketType>,
    ) -> Verdict {
        use rand::RngExt as _;
        let name = &self.upstreams[upstream].name;
        let t = self.now_ms();
        let mut state = self.lock();
        let mut fired = None;
        let State { rules, rng, .. } = &mut *state;
        for (index, r) in rules.iter_mut().enumerate() {
            let rule = &r.rule;
            if r.removed
                || rule.point != point
                || rule.upstream.as_ref().is_some_and(|u| u != name)
                || rule.file.as_deref().is_some_and(|f| f != file)
                || rule.packet.is_some_and(|p| Some(p) != packet)
            {
                continue;
            }
            r.hits += 1;
            let limit = rule
                .times
                .unwrap_or(if rule.probability.is_some() { 0 } else { 1 });
            if limit != 0 && r.fired >= limit {
                continue;
            }
            let fire = match rule.probability {
                Some(p) => rng.random_bool(p),
                None => r.hits >= rule.nth.unwrap_or(1),
            };
            if !fire {
                continue;
            }
            r.fired += 1;
            tracing::info!(?point, action = ?rule.action, upstream = %name, file, "fault fired");
            fired = Some((
                index,
                rule.action,
                rule.status.unwrap_or(500),
                Duration::from_secs_f64(rule.duration_s.unwrap_or(0.0)),
            ));
            break;
        }
        let Some((index, action, status, duration)) = fired else {
            return Verdict::Forward;
        };
        let text = match action {
            WireAction::DropResponse => format!("drop {name}'s answer: the client never hears it"),
            WireAction::Reset => "close the client's connection before forwarding".to_owned(),
            WireAction::Fail => format!("answer HTTP {status} without forwarding"),
            WireAction::Delay => format!("hold the request {} s", duration.as_secs_f64()),
            WireAction::Down => format!("take {name} down for {} s", duration.as_secs_f64()),
        };
        state.record(
            t,
            probe::Event::FaultFired {
                rule: index,
                point: None,
                actor: name.clone(),
                action: text,
                session: session.map(str::to_owned),
                file: Some(file.to_owned()),
            },
        );
        match action {
            WireAction::DropResponse if point == WirePoint::FinalFragmentAnswered => Verdict::Cut,
            WireAction::DropResponse => Verdict::CutAfter,
            WireAction::Reset => Verdict::Cut,
            WireAction::Fail => Verdict::Fail(status),
            WireAction::Delay => Verdict::Delay(duration),
            WireAction::Down => {
                state.down_until[upstream] = Some(tokio::time::Instant::now() + duration);
                drop(state);
                self.downs.send_modify(|n| *n += 1);
                Verdict::Cut
            }
        }
    }

    /// Forwards one request and its answer, keeping track of sessions and deliveries.
    async fn forward(
        &self,
        req: Request<Incoming>,
        upstream: usize,
        conn: &tokio::sync::Mutex<Option<HttpConn>>,
    ) -> Result<Response<Body>, Verdict> {
        let (parts, body) = req.into_parts();
        let timing = BodyTiming::default();
        let whole = |body| async move {
            transport::server::read_body(body, MAX_BODY, &timing)
                .await
                .map_err(|_| Verdict::Fail(400))
        };
        let packet = Packet::parse(&parts.method, &parts.headers).ok();
        // The decoded path without its query, as every actor names a file.
        let file = transport::url::file_path(parts.uri.path());
        let session = packet.as_ref().and_then(Packet::session_id);
        let kind = packet.as_ref().map(Packet::packet_type);
        let mut cut_after = false;
        for point in std::iter::once(WirePoint::Request).chain(WirePoint::of(packet.as_ref())) {
            match self.verdict(point, upstream, &file, session, kind) {
                Verdict::Forward => {}
                Verdict::CutAfter => cut_after = true,
                Verdict::Delay(d) => tokio::time::sleep(d).await,
                other => {
                    // The rule answers instead of the upstream, once the body is in.
                    whole(body).await?;
                    return Err(other);
                }
            }
        }
        // A body of a declared length within the limit is relayed as it arrives, so receiving
        // it and forwarding it overlap; the chunks are kept (shared) until the upstream's
        // answer says how many of them it holds. Any other body is read whole first. The
        // length is hyper's, from the framing it reads the body by (not a header re-read).
        let declared = hyper::body::Body::size_hint(&body)
            .exact()
            .filter(|&n| n <= MAX_BODY);
        let (out_body, relay, read) = match declared {
            Some(len) => {
                let tap = transport::body::Tap::new();
                let out = Body::relayed(len, body, &timing, tap.clone());
                (out, Some((tap, len)), Vec::new())
            }
            None => {
                let chunks = whole(body).await?;
                (Body::from_chunks(chunks.iter().cloned()), None, chunks)
            }
        };
        let up = &self.upstreams[upstream];
        let mut out = Request::new(out_body);
        *out.method_mut() = parts.method.clone();
        *out.uri_mut() = parts.uri.clone();
        *out.headers_mut() = parts.headers.clone();
        if let Ok(host) = HeaderValue::from_str(&up.authority) {
            out.headers_mut().insert(http::header::HOST, host);
        }
        let resp = {
            let mut slot = conn.lock().await;
            let reusable = match slot.as_mut() {
                Some(c) => c.is_reusable().await,
                None => false,
            };
            if !reusable {
                *slot = Some(
                    HttpConn::open(self.connector.as_ref(), &up.authority, self.timeout)
                        .await
                        .map_err(|e| {
                            tracing::warn!(upstream = %up.name, error = %e, "upstream not reached");
                            Verdict::Fail(502)
                        })?,
                );
            }
            let c = slot.as_mut().expect("opened above");
            // The upstream has `timeout` to answer once the body is in (a relayed body's own
            // timing bounds its arrival).
            let body_time = relay
                .as_ref()
                .map_or(Duration::ZERO, |(_, len)| timing.budget(*len));
            let answer_by = async {
                if let Some((tap, _)) = &relay {
                    tap.ended().await;
                }
                tokio::time::sleep(self.timeout).await;
            };
            let sent = tokio::select! {
                r = c.send(out, body_time + self.timeout) => Some(r),
                () = answer_by => None,
            };
            let client_failed = relay
                .as_ref()
                .and_then(|(tap, _)| tap.lock().failed.clone());
            match sent {
                Some(Ok(r)) => {
                    // An upstream that answered before the whole body was relayed leaves its
                    // connection mid-request: it is not used again.
                    if relay.as_ref().is_some_and(|(tap, _)| !tap.lock().complete) {
                        *slot = None;
                    }
                    r
                }
                _ if client_failed.is_some() => {
                    *slot = None;
                    tracing::warn!(upstream = %up.name, error = ?client_failed, "the client's body failed while relayed");
                    return Err(Verdict::Fail(400));
                }
                Some(Err(e)) => {
                    *slot = None;
                    tracing::warn!(upstream = %up.name, error = %e, "upstream exchange failed");
                    return Err(Verdict::Fail(502));
                }
                None => {
                    *slot = None;
                    tracing::warn!(upstream = %up.name, "upstream did not answer in time");
                    return Err(Verdict::Fail(502));
                }
            }
        };
        let chunks: Vec<Bytes> = match &relay {
            Some((tap, _)) => std::mem::take(&mut tap.lock().chunks),
            None => read,
        };
        let (mut rparts, rbody) = resp.into_parts();
        let status = rparts.status.as_u16();
        let mut cut = false;
        match &packet {
            Some(Packet::CreateSession { .. }) if status == 200 || status == 201 => {
                if let Some(id) = header_text(&rparts.headers, &header::SESSION_ID) {
                    self.record(probe::Event::SessionCreated {
                        node: up.name.clone(),
                        session: id.clone(),
                        file: file.clone(),
                    });
                    self.lock().sessions.insert(
                        id,
                        Session {
                            upstream,
                            file: file.clone(),
                            held: 0,
                            hash: Some(twox_hash::XxHash3_64::new()),
                            delivered: false,
                        },
                    );
                }
                // Clients that follow the Host-Id come back through the proxy.
                if rparts.headers.contains_key(&header::HOST_ID)
                    && let Ok(v) = HeaderValue::from_str(&up.advertised)
                {
                    rparts.headers.insert(header::HOST_ID, v);
                }
            }
            Some(Packet::Fragment(f))
                if header_text(&rparts.headers, &header::ERROR_CODE)
                    .is_some_and(|c| c.eq_ignore_ascii_case("0x8020001f")) =>
            {
                self.record(probe::Event::SessionNotFound {
                    node: up.name.clone(),
                    session: f.session_id.clone(),
                    packet: protocol::PacketType::Fragment,
                });
            }
            Some(Packet::CloseSession { session_id }) if status == 200 => {
                let known = self.lock().sessions.remove(session_id);
                if let Some(s) = known {
                    self.record(probe::Event::SessionClosed {
                        node: up.name.clone(),
                        session: session_id.clone(),
                        file: s.file,
                        complete: s.delivered,
                    });
                }
            }
            Some(Packet::CancelSession { session_id }) if status == 200 => {
                let known = self.lock().sessions.remove(session_id);
                if let Some(s) = known {
                    self.record(probe::Event::SessionCancelled {
                        node: up.name.clone(),
                        session: session_id.clone(),
                        file: s.file,
                    });
                }
            }
            Some(Packet::Fragment(f)) if status == 200 || status == 416 => {
                let received = header_text(&rparts.headers, &header::RECEIVED_CONTENT_RANGE)
                    .and_then(|v| v.trim().parse::<u64>().ok());
                if let Some(received) = received {
                    let delivered = self.on_fragment_ack(f, &chunks, received, status, upstream);
                    if delivered
                        && matches!(
                            self.verdict(
                                WirePoint::FinalFragmentAnswered,
                                upstream,
                                &file,
                                Some(&f.session_id),
                                kind,
                            ),
                            Verdict::Cut
                        )
                    {
                        cut = true;
                    }
                }
            }
            _ => {}
        }
        if cut || cut_after {
            return Err(Verdict::Cut);
        }
        Ok(Response::from_parts(rparts, Body::from(rbody)))
    }

    /// Takes a fragment's Ack into account: bytes held, their hash, a delivery when the
    /// final fragment is answered with success for the first time in the session. Whether this
    /// Ack is that delivery (or its cached replay: also the final Ack).
    fn on_fragment_ack(
        &self,
        f: &protocol::packet::Fragment,
        chunks: &[Bytes],
        received: u64,
        status: u16,
        upstream: usize,
    ) -> bool {
        let t = self.now_ms();
        let mut state = self.lock();
        let State {
            sessions,
            deliveries,
            log,
            tracker,
            ..
        } = &mut *state;
        let mut record = |event: probe::Event| {
            let rec = log.record(t, event);
            tracker.observe(&rec);
        };
        let Some(s) = sessions.get_mut(&f.session_id) else {
            return false;
        };
        record(probe::Event::FragmentAcked {
            node: self.upstreams[upstream].name.clone(),
            session: f.session_id.clone(),
            file: s.file.clone(),
            start: f.range.start,
            end: f.range.end,
            total: f.range.total,
            status,
            received,
        });
        if s.upstream != upstream {
            // The same session id from another upstream: not one the proxy can follow.
            return false;
        }
        if status == 200 && received > s.held {
            let (start, held) = (f.range.start, s.held);
            match s.hash.as_mut() {
                Some(h) if start <= held => {
                    let mut skip = (held - start) as usize;
                    let mut take = (received - held) as usize;
                    for c in chunks {
                        if take == 0 {
                            break;
                        }
                        if skip >= c.len() {
                            skip -= c.len();
                            continue;
                        }
                        let part = &c[skip..c.len().min(skip + take)];
                        h.write(part);
                        take -= part.len();
                        skip = 0;
                    }
                    if take > 0 {
                        s.hash = None;
                    }
                }
                _ => s.hash = None,
            }
            s.held = received;
        }
        let is_final = status == 200 && received == f.range.total;
        let node = self.upstreams[upstream].name.clone();
        if is_final && s.delivered {
            record(probe::Event::CachedAckReplayed {
                node,
                session: f.session_id.clone(),
                file: s.file.clone(),
            });
            return false;
        }
        if is_final {
            s.delivered = true;
            let hash = s.hash.as_ref().map(|h| h.finish());
            record(probe::Event::Delivered {
                file: s.file.clone(),
                txid: None,
                node: node.clone(),
                session: Some(f.session_id.clone()),
                len: f.range.total,
                hash: hash.unwrap_or(0),
                effect: true,
            });
            deliveries.push(Delivery {
                file: s.file.clone(),
                upstream: node,
                session: f.session_id.clone(),
                len: f.range.total,
                hash: hash.map(|h| format!("{h:016x}")),
            });
            return true;
        }
        false
    }
}

fn header_text(h: &http::HeaderMap, name: &http::HeaderName) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_owned())
}

/// A BITS error Ack with this status (`E_FAIL`).
fn bits_error(status: u16) -> Response<Body> {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_GATEWAY);
    let h = resp.headers_mut();
    h.insert(header::PACKET_TYPE, HeaderValue::from_static("Ack"));
    h.insert(header::ERROR_CODE, HeaderValue::from_static("0x80004005"));
    h.insert(header::ERROR_CONTEXT, HeaderValue::from_static("0x5"));
    resp
}
