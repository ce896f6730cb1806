//! The job engine: one upload job from Create-Session to Close-Session, with Windows BITS'
//! states, recovery rules, Host-Id handling and timers.

use std::sync::Arc;

use bytes::Bytes;
use probe::{Clock, Event, JobState, SharedProbe};
use protocol::{Ack, ByteRange, Packet, PacketType, header, packet::Fragment};
use rand::Rng as _;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use tokio::{sync::watch, time::Instant};
use transport::{Body, Connect, HttpConn};

use crate::{
    Entity,
    classify::status_is_transient,
    config::{ConfigError, JobConfig, JobKind},
    state::{Failure, Next, Step, Upload, describe},
    timers::{Retry, Timers},
};

/// What a job is given rather than reaching for itself.
pub struct Env {
    /// How the job opens connections.
    pub connector: Arc<dyn Connect>,
    /// Events.
    pub probe: SharedProbe,
    /// The transaction id is drawn from this generator.
    pub rng: ChaCha8Rng,
    /// Timestamps in the job's history.
    pub clock: Clock,
}

/// Most bytes of an Ack's body the client reads: Acks have empty bodies, and a server that
/// sends more (a hostile one, or an error page) must not make the client buffer without bound.
pub const ACK_BODY_LIMIT: u64 = 64 << 10;

/// Attempts a job's history keeps (the first half and the most recent half).
pub const HISTORY_KEPT: usize = 100;

/// Answers in a row without progress after which the job treats the server as failing (a
/// transient error: retry delay, no-progress timeout).
pub const MAX_IDLE_ROUND_TRIPS: u32 = 4;

/// The job's progress, as the owner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Current state.
    pub state: JobState,
    /// Bytes the server acknowledged in the current session.
    pub acknowledged: u64,
    /// Bytes to upload.
    pub total: u64,
    /// The last transient error, in words (kept after the retry, until the next one).
    pub last_error: Option<std::sync::Arc<str>>,
    /// In transient error: when the next retry goes out (the job's clock), or when the job
    /// gives up (`giving_up`: the no-progress timeout ends before another retry).
    pub retry_at: Option<Instant>,
    /// `retry_at` is when the job gives up, not a retry.
    pub giving_up: bool,
}

/// The owner's handle on a running job.
#[derive(Clone)]
pub struct JobControl {
    /// Shared by the control's copies, so that they count as one receiver (`Engine::update`).
    progress: Arc<watch::Receiver<Progress>>,
    cancel: Arc<watch::Sender<bool>>,
}

impl JobControl {
    /// Cancels the job: it sends Cancel-Session and ends in the cancelled state.
    pub fn cancel(&self) {
        self.cancel.send_replace(true);
    }

    /// A receiver of progress updates.
    pub fn progress(&self) -> watch::Receiver<Progress> {
        (*self.progress).clone()
    }
}

/// One step of the job's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt {
    /// When the attempt started, milliseconds on the job's clock.
    pub at_ms: u64,
    /// Where it went.
    pub target: String,
    /// How it ended.
    pub outcome: String,
}

/// How a job ended.
#[derive(Debug, Clone, Serialize)]
pub struct JobReport {
    /// Job name.
    pub name: String,
    /// The upload's URL path (its identity in the ledger).
    pub file: String,
    /// Final state: acknowledged, error or cancelled.
    pub state: JobState,
    /// Why the job failed, if it did (serialized as its text).
    pub error: Option<JobError>,
    /// Bytes uploaded (with the transaction-id envelope, if any).
    pub total: u64,
    /// The uploaded bytes (shared, not copied); [`JobReport::hash`] hashes them.
    #[serde(skip)]
    pub entity: Entity,
    /// Transaction id, when the job used one.
    pub txid: Option<String>,
    /// Whether the final fragment's success Ack reached the client: the file counts as
    /// delivered from the client's side.
    pub final_acked: bool,
    /// Bytes the server acknowledged in the last session.
    pub acknowledged: u64,
    /// Times the server lost the session and the upload started over from byte 0.
    pub restarts: u32,
    /// Attempts (the first try and every retry after a transient error).
    pub attempts: u32,
    /// Transient errors.
    pub transient_errors: u32,
    /// Times the Host-Id fallback timer expired and the job returned to the original address.
    pub host_fallbacks: u32,
    /// Fragment bytes sent, re-sent ones included.
    pub bytes_sent: u64,
    /// Sessions the job created, in order.
    pub sessions: Vec<String>,
    /// Whether Close-Session was acknowledged (or the session was already gone).
    pub closed: bool,
    /// When the final fragment was acknowledged, milliseconds on the job's clock.
    pub transferred_ms: Option<u64>,
    /// When the job ended.
    pub finished_ms: u64,
    /// The reply of an upload-reply job.
    #[serde(skip)]
    pub reply: Option<Bytes>,
    /// The attempts: all of them up to [`HISTORY_KEPT`], then the first and the most recent
    /// halves of that many.
    pub history: Vec<Attempt>,
}

impl JobReport {
    /// XXH3-64 of the uploaded bytes, to compare with what the application received (a file
    /// is read again for it).
    pub fn hash(&self) -> std::io::Result<u64> {
        self.entity.hash()
    }

    /// Bytes sent beyond one copy of the upload.
    pub fn bytes_resent(&self) -> u64 {
        self.bytes_sent.saturating_sub(self.total)
    }

    /// The job in one line: how it ended and what it took.
    pub fn to_text(&self) -> String {
        let r = self;
        let how = match r.state {
            JobState::Acknowledged => "acknowledged".to_owned(),
            JobState::Cancelled => "cancelled".to_owned(),
            _ => format!(
                "error: {}",
                r.error
                    .as_ref()
                    .map_or_else(|| "unknown".to_owned(), ToString::to_string)
            ),
        };
        let txid = r
            .txid
            .as_deref()
            .map(|t| format!(", transaction id {t}"))
            .unwrap_or_default();
        format!(
            "{} {how}: {} bytes, {} session(s), {} restart(s), {} attempt(s), {} transient error(s), {} Host-Id fallback(s), {} bytes re-sent{txid}",
            r.file,
            r.total,
            r.sessions.len(),
            r.restarts,
            r.attempts,
            r.transient_errors,
            r.host_fallbacks,
            r.bytes_resent(),
        )
    }
}

/// A job ready to run.
pub struct Job {
    cfg: JobConfig,
    entity: Entity,
    txid: Option<String>,
    origin: String,
    path: String,
    file: String,
    env: Env,
    progress: watch::Sender<Progress>,
    cancel: watch::Receiver<bool>,
    control: JobControl,
}

impl Job {
    /// A job uploading `payload` (bytes in memory, or an [`Entity::file`]), wrapped in the
    /// transaction-id envelope if configured.
    pub fn new(
        cfg: JobConfig,
        payload: impl Into<Entity>,
        mut env: Env,
    ) -> Result<Job, ConfigError> {
        cfg.validate()?;
        let (target, _) = transport::url::parse_web(&cfg.url).expect("validated");
        let payload = payload.into();
        let (entity, txid) = if cfg.transaction_id {
            let id = format!("{:016x}{:016x}", env.rng.next_u64(), env.rng.next_u64());
            let entity = payload
                .with_transaction_id(&id)
                .map_err(|e| ConfigError::Unreadable(e.to_string()))?;
            (entity, Some(id))
        } else {
            (payload, None)
        };
        let total = entity.len();
        let (progress, progress_rx) = watch::channel(Progress {
            state: JobState::Queued,
            acknowledged: 0,
            total,
            last_error: None,
            retry_at: None,
            giving_up: false,
        });
        let (cancel_tx, cancel) = watch::channel(false);
        let control = JobControl {
            progress: Arc::new(progress_rx),
            cancel: Arc::new(cancel_tx),
        };
        Ok(Job {
            file: transport::url::file_path(&cfg.url),
            origin: target.authority,
            path: target.path_and_query,
            cfg,
            entity,
            txid,
            env,
            progress,
            cancel,
            control,
        })
    }

    /// The owner's handle (progress, cancel).
    pub fn control(&self) -> JobControl {
        self.control.clone()
    }

    /// The bytes the job uploads.
    pub fn entity(&self) -> &Entity {
        &self.entity
    }

    /// Runs the job to its end.
    pub async fn run(self) -> JobReport {
        let mut cancel = self.cancel.clone();
        let mut engine = Engine::new(&self);
        engine.set_state(JobState::Connecting);
        loop {
            let result = tokio::select! {
                biased;
                _ = cancel.wait_for(|c| *c) => Err(Failure::Cancelled),
                r = engine.attempt() => r,
            };
            let why = match result {
                Ok(()) => break,
                Err(Failure::Cancelled) => {
                    engine.cancelled().await;
                    break;
                }
                Err(Failure::Fatal(why)) => {
                    engine.fail(JobError::Fatal(why));
                    break;
                }
                Err(Failure::Transient(why)) => why,
            };
            let waited = tokio::select! {
                biased;
                _ = cancel.wait_for(|c| *c) => Waited::Cancelled,
                r = engine.wait_for_retry(&why) => match r {
                    Ok(()) => Waited::Retry,
                    Err(e) => Waited::GaveUp(e),
                },
            };
            match waited {
                Waited::Retry => {}
                Waited::Cancelled => {
                    engine.cancelled().await;
                    break;
                }
                Waited::GaveUp(stop) => {
                    engine.give_up(stop);
                    break;
                }
            }
        }
        engine.report()
    }
}

/// Why a job ended in error. Its text is what `error` says in reports and JSON; tools decide by
/// the variant, never by the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobError {
    /// The server or the application refused for good (a fatal status or code), or broke the
    /// protocol in a way no retry mends.
    Fatal(String),
    /// Transient errors went on for the whole no-progress timeout without progress.
    NoProgress {
        /// The last transient error.
        last: String,
        /// The no-progress timeout, seconds.
        timeout_s: u64,
    },
    /// A transient error with retries off: a no-progress timeout of 0, or a retry delay longer
    /// than it.
    NoRetries {
        /// The transient error.
        last: String,
        /// Why no retry was allowed.
        because: &'static str,
    },
}

impl JobError {
    /// Whether the job gave up for lack of progress (a timeout, not a refusal).
    pub fn is_give_up(&self) -> bool {
        matches!(
            self,
            JobError::NoProgress { .. } | JobError::NoRetries { .. }
        )
    }
}

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobError::Fatal(why) => f.write_str(why),
            JobError::NoProgress { last, timeout_s } => {
                write!(f, "{last} (no progress for {timeout_s} s)")
            }
            JobError::NoRetries { last, because } => write!(f, "{last} ({because})"),
        }
    }
}

impl Serialize for JobError {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// How waiting for a retry ended.
enum Waited {
    /// The retry delay passed: try again.
    Retry,
    /// The owner cancelled meanwhile.
    Cancelled,
    /// The job must give up.
    GaveUp(JobError),
}

/// What a job counts for its report.
#[derive(Debug, Default)]
struct Counters {
    restarts: u32,
    attempts: u32,
    transient_errors: u32,
    host_fallbacks: u32,
    bytes_sent: u64,
    sessions: Vec<String>,
    closed: bool,
    transferred_ms: Option<u64>,
    history: Vec<Attempt>,
}

/// The job engine: carries out what the protocol state asks (send, wait), keeps the timers
/// and the counters.
struct Engine<'j> {
    job: &'j Job,
    state: JobState,
    up: Upload,
    timers: Timers,
    conn: Option<(String, HttpConn)>,
    reply: Option<Bytes>,
    error: Option<JobError>,
    counts: Counters,
}

impl<'j> Engine<'j> {
    fn new(job: &'j Job) -> Engine<'j> {
        Engine {
            job,
            state: JobState::Queued,
            up: Upload::new(&job.cfg, job.origin.clone(), job.entity.len(), &job.env.rng),
            timers: Timers::new(),
            conn: None,
            reply: None,
            error: None,
            counts: Counters::default(),
        }
    }

    /// Keeps an attempt in the history: the first and the last [`HISTORY_KEPT`]` / 2` of them
    /// (a job that retries for weeks must not grow without bound; `attempts` counts them all).
    fn record(&mut self, a: Attempt) {
        let history = &mut self.counts.history;
        if history.len() == HISTORY_KEPT {
            history.remove(HISTORY_KEPT / 2);
        }
        history.push(a);
    }

    fn event(&self, e: Event) {
        self.job.env.probe.event(e);
    }

    fn set_state(&mut self, state: JobState) {
        if self.state == state {
            return;
        }
        self.state = state;
        tracing::info!(job = %self.job.cfg.name, state = state.name(), target = %self.up.target, "job state");
        self.event(Event::JobState {
            job: self.job.cfg.name.clone(),
            file: self.job.file.clone(),
            state,
        });
        self.publish();
    }

    fn publish(&self) {
        self.update(|p| {
            p.state = self.state;
            p.acknowledged = self.up.acknowledged;
            p.total = self.up.total;
            if self.state != JobState::TransientError {
                p.retry_at = None;
            }
        });
    }

    /// Changes the progress the job's owner sees. Waking watchers costs eight locks (tokio's
    /// watch notifies in shards), on every state change and acknowledged fragment; with no
    /// receiver but the controls' own (kept to hand out copies, never awaited), the value is
    /// changed without waking anyone: a copy taken later reads it, and is woken by the
    /// changes after it.
    fn update(&self, change: impl FnOnce(&mut Progress)) {
        let watched = self.job.progress.receiver_count() > 1;
        self.job.progress.send_if_modified(|p| {
            change(p);
            watched
        });
    }

    fn fail(&mut self, why: JobError) {
        tracing::warn!(job = %self.job.cfg.name, error = %why, "job failed");
        self.error = Some(why);
        self.set_state(JobState::Error);
    }

    /// The job gave up retrying.
    fn give_up(&mut self, why: JobError) {
        if self.up.final_acked && self.reply_done() {
            // Only Close-Session kept failing: the file is delivered.
            self.set_state(JobState::Acknowledged);
        } else {
            self.fail(why);
        }
    }

    /// The owner cancelled: Cancel-Session, then the cancelled state.
    async fn cancelled(&mut self) {
        self.cancel_session().await;
        self.set_state(JobState::Cancelled);
    }

    fn reply_done(&self) -> bool {
        self.job.cfg.kind == JobKind::Upload || self.reply.is_some()
    }

    /// One attempt: does what is left of the job, and records it in the history.
    async fn attempt(&mut self) -> Result<(), Failure> {
        self.counts.attempts += 1;
        let at_ms = self.job.env.clock.now_ms();
        let target = self.up.target.clone();
        let result = self.advance().await;
        let outcome = match &result {
            Ok(()) => "acknowledged".to_owned(),
            Err(f) => f.to_string(),
        };
        self.record(Attempt {
            at_ms,
            target,
            outcome,
        });
        result
    }

    /// Does what is left of the job: upload, reply download, Close-Session.
    async fn advance(&mut self) -> Result<(), Failure> {
        if !self.up.final_acked {
            self.upload().await?;
        }
        if !self.reply_done() {
            self.download_reply().await?;
        }
        self.set_state(JobState::Transferred);
        self.close_session().await?;
        self.set_state(JobState::Acknowledged);
        Ok(())
    }

    /// Create-Session (if needed), Ping to the Host-Id, then fragments until the final Ack.
    async fn upload(&mut self) -> Result<(), Failure> {
        loop {
            match self.up.next_request() {
                Next::CreateSession => {
                    self.set_state(JobState::Connecting);
                    self.create_session().await?;
                }
                Next::Ping => {
                    let ack = self.send(Packet::Ping, Body::empty()).await?;
                    self.up.on_ping_ack(&ack)?;
                }
                Next::Fragment(range) => {
                    if self.fragment(range).await? == Step::Done {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Sends one fragment and takes its Ack.
    async fn fragment(&mut self, range: ByteRange) -> Result<Step, Failure> {
        let (start, end) = (range.start, range.end);
        let fragment = Fragment {
            session_id: self.up.session.clone().expect("session exists"),
            range,
            content_name: if start == 0 {
                self.job.cfg.content_name.clone()
            } else {
                None
            },
        };
        let body = self.job.entity.body(start, end).map_err(|e| {
            Failure::Fatal(format!(
                "cannot read bytes {start}-{end} of the upload: {e}"
            ))
        })?;
        let ack = self.send(Packet::Fragment(fragment), body).await?;
        // A fragment got an answer: the job is transferring (a retry whose connect fails goes
        // from connecting straight back to transient error, as on Windows).
        self.set_state(JobState::Transferring);
        let before = self.up.acknowledged;
        let step = self.up.on_fragment_ack(range, &ack);
        if self.up.acknowledged > before {
            self.timers.on_progress();
            self.publish();
        }
        if self.up.final_acked && self.counts.transferred_ms.is_none() {
            self.counts.transferred_ms = Some(self.job.env.clock.now_ms());
        }
        let step = step?;
        match &step {
            Step::Restart {
                lost,
                acknowledged,
                stalled,
            } => {
                self.counts.restarts += 1;
                tracing::info!(job = %self.job.cfg.name, session = %lost, acknowledged, "session not found: restarting from byte 0");
                self.event(Event::UploadRestart {
                    job: self.job.cfg.name.clone(),
                    file: self.job.file.clone(),
                    session: lost.clone(),
                    acknowledged: *acknowledged,
                });
                self.publish();
                if let Some(f) = stalled {
                    return Err(f.clone());
                }
            }
            Step::Shrunk(size) => {
                tracing::info!(job = %self.job.cfg.name, fragment_size = size, "413: smaller fragments");
            }
            Step::Next | Step::Done => {}
        }
        Ok(step)
    }

    async fn create_session(&mut self) -> Result<(), Failure> {
        let ack = self
            .send(
                Packet::CreateSession {
                    protocols: vec![header::PROTOCOL_GUID.to_owned()],
                },
                Body::empty(),
            )
            .await?;
        let created = self.up.on_create_ack(&ack)?;
        tracing::info!(job = %self.job.cfg.name, session = %created.session, target = %self.up.target, "session created");
        self.counts.sessions.push(created.session);
        if let Some((host_id, fallback_timeout_s)) = created.host_id {
            self.timers.on_host_id(fallback_timeout_s);
            self.event(Event::HostIdLearned {
                job: self.job.cfg.name.clone(),
                host_id,
                fallback_timeout_s,
            });
        }
        Ok(())
    }

    /// The reply of an upload-reply job, fetched with an ordinary GET.
    async fn download_reply(&mut self) -> Result<(), Failure> {
        let url = self.up.reply_url.clone().unwrap_or_default();
        let (target, _) = transport::url::parse_web(&url)
            .map_err(|e| Failure::Fatal(format!("BITS-Reply-URL {url:?}: {e}")))?;
        let mut req = http::Request::new(Body::empty());
        *req.uri_mut() = target
            .path_and_query
            .parse()
            .map_err(|_| Failure::Fatal(format!("bad reply URL {url:?}")))?;
        req.headers_mut()
            .insert(http::header::HOST, header_value(&target.authority));
        if let Some(c) = &self.job.cfg.credentials {
            req.headers_mut()
                .insert(http::header::AUTHORIZATION, c.header());
        }
        let timeouts = transport::client::Timeouts {
            connect: probe::clock::secs(self.job.cfg.connect_timeout_s),
            request: probe::clock::secs(self.job.cfg.request_timeout_s),
        };
        match transport::client::fetch(
            self.job.env.connector.as_ref(),
            &target.authority,
            req,
            timeouts,
            self.job.cfg.max_reply_size,
        )
        .await
        {
            Ok(resp) if resp.status().is_success() => {
                self.reply = Some(resp.into_body());
                Ok(())
            }
            Ok(resp) => {
                let s = resp.status().as_u16();
                let why = format!(
                    "reply download: HTTP {s} ({})",
                    protocol::HResult::from_http_status(s)
                );
                Err(if status_is_transient(s) {
                    Failure::Transient(why)
                } else {
                    Failure::Fatal(why)
                })
            }
            Err(e @ transport::Error::TooLarge(_)) => {
                Err(Failure::Fatal(format!("reply download: {e}")))
            }
            Err(e) => Err(Failure::Transient(format!("reply download: {e}"))),
        }
    }

    /// Close-Session: resent on 5xx unless the session is already gone; never on 1xx–4xx.
    async fn close_session(&mut self) -> Result<(), Failure> {
        let Some(id) = self.up.session.clone() else {
            return Ok(());
        };
        let ack = self
            .send(Packet::CloseSession { session_id: id }, Body::empty())
            .await?;
        if ack.is_success() || ack.code() == Some(protocol::HResult::SESSION_NOT_FOUND) {
            self.counts.closed = true;
        } else if (500..600).contains(&ack.status) {
            return Err(Failure::Transient(format!(
                "Close-Session: {}",
                describe(&ack)
            )));
        } else {
            tracing::warn!(job = %self.job.cfg.name, status = ack.status, "Close-Session refused; not resent");
        }
        self.up.session = None;
        self.conn = None;
        Ok(())
    }

    /// Cancel-Session, resent on a 5xx Ack unless the session is gone, while the no-progress
    /// timeout allows; not resent when no answer comes at all.
    async fn cancel_session(&mut self) {
        let Some(id) = self.up.session.take() else {
            return;
        };
        let started = Instant::now();
        loop {
            match self
                .send(
                    Packet::CancelSession {
                        session_id: id.clone(),
                    },
                    Body::empty(),
                )
                .await
            {
                Ok(ack) if !(500..600).contains(&ack.status) => return,
                Ok(ack) if ack.code() == Some(protocol::HResult::SESSION_NOT_FOUND) => return,
                Ok(_) => {}
                // No answer at all (the server is down or unreachable): cancelling is done on
                // the client's side, and the server expires the session (BITSSessionTimeout).
                // Trying a dead server for the whole no-progress timeout would keep a
                // cancelled job alive for days.
                Err(_) => return,
            }
            let delay = probe::clock::secs(self.job.cfg.effective_retry_delay_s());
            if started.elapsed().saturating_add(delay)
                > probe::clock::secs(self.job.cfg.no_progress_timeout_s)
            {
                return;
            }
            tokio::time::sleep(delay).await;
        }
    }

    /// After a transient error: start the Host-Id fallback timer if needed, wait the retry
    /// delay, fall back to the original address if the timer expired. `Err` when the job must
    /// give up (no-progress timeout).
    async fn wait_for_retry(&mut self, why: &str) -> Result<(), JobError> {
        self.counts.transient_errors += 1;
        self.up.idle_round_trips = 0;
        self.conn = None;
        if !self.up.final_acked || !self.reply_done() {
            self.set_state(JobState::TransientError);
        }
        tracing::info!(job = %self.job.cfg.name, error = why, "transient error");
        let host_id = self.up.host_id.is_some();
        let (delay, fall_back) =
            match self
                .timers
                .on_transient(Instant::now(), &self.job.cfg, host_id)
            {
                Retry::After { delay, fall_back } => (delay, fall_back),
                Retry::NoRetries(because) => {
                    return Err(JobError::NoRetries {
                        last: why.to_owned(),
                        because,
                    });
                }
                Retry::GiveUpAt(at) => {
                    let last: std::sync::Arc<str> = why.into();
                    self.update(|p| {
                        p.last_error = Some(last);
                        p.retry_at = Some(at);
                        p.giving_up = true;
                    });
                    tokio::time::sleep_until(at).await;
                    return Err(JobError::NoProgress {
                        last: why.to_owned(),
                        timeout_s: probe::clock::secs(self.job.cfg.no_progress_timeout_s).as_secs(),
                    });
                }
            };
        let last: std::sync::Arc<str> = why.into();
        self.update(|p| {
            p.last_error = Some(last);
            p.retry_at = Some(Instant::now() + delay);
            p.giving_up = false;
        });
        self.event(Event::RetryScheduled {
            job: self.job.cfg.name.clone(),
            delay_ms: delay.as_millis() as u64,
            target: if fall_back {
                self.up.origin.clone()
            } else {
                self.up.target.clone()
            },
        });
        tokio::time::sleep(delay).await;
        if self.timers.fallback_expired(Instant::now()) {
            let from = self.up.fall_back();
            self.counts.host_fallbacks += 1;
            tracing::info!(job = %self.job.cfg.name, from = %from, to = %self.up.origin, "Host-Id fallback timer expired");
            self.event(Event::HostFallback {
                job: self.job.cfg.name.clone(),
                from,
                to: self.up.origin.clone(),
            });
            self.timers.stop_fallback();
        }
        if !self.up.final_acked {
            self.set_state(JobState::Connecting);
        }
        Ok(())
    }

    /// Sends one packet to the current target and reads its Ack.
    async fn send(&mut self, packet: Packet, body: Body) -> Result<Ack, Failure> {
        let kind = packet.packet_type();
        let target = self.up.target.clone();
        let job = self.job;
        self.connection(&target, kind).await?;
        // Counted once a connection carries them: a fragment whose Ack is lost was still sent.
        self.counts.bytes_sent += body.len();
        let conn = &mut self.conn.as_mut().expect("connection just ensured").1;
        let mut req = packet
            .to_request(job.path.parse().expect("validated URL path"))
            .map(|()| body);
        req.headers_mut()
            .insert(http::header::HOST, header_value(&target));
        if let Some(c) = &job.cfg.credentials {
            req.headers_mut()
                .insert(http::header::AUTHORIZATION, c.header());
        }
        let timeout = probe::clock::secs(job.cfg.request_timeout_s);
        let resp = match conn.send_limited(req, timeout, ACK_BODY_LIMIT).await {
            Ok(r) => r,
            Err(e) => {
                self.conn = None;
                tracing::info!(job = %job.cfg.name, packet = %kind, target = %target, error = %e, "request failed");
                self.event(Event::ClientFailure {
                    job: job.cfg.name.clone(),
                    target,
                    packet: kind,
                    error: e.to_string(),
                });
                return Err(Failure::Transient(format!(
                    "{kind} to {}: {e}",
                    self.up.target
                )));
            }
        };
        let status = resp.status().as_u16();
        if resp
            .headers()
            .get(http::header::CONNECTION)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"))
        {
            self.conn = None;
        }
        match Ack::parse(resp.status(), resp.headers()) {
            Ok(ack) => {
                tracing::debug!(job = %job.cfg.name, packet = %kind, status, received = ?ack.received, "ack");
                self.event(Event::ClientAck {
                    job: job.cfg.name.clone(),
                    target,
                    packet: kind,
                    status,
                    code: ack.code().map(|c| c.to_string()),
                    received: ack.received,
                });
                Ok(ack)
            }
            Err(e) => {
                // Not a BITS Ack: a proxy's error page, or IIS answering 404 for a directory
                // without uploads. Judge it by its HTTP status.
                let mut why = format!(
                    "{kind} to {target}: HTTP {status} without a BITS Ack ({e}; {})",
                    protocol::HResult::from_http_status(status)
                );
                if status == 401 {
                    let wants = resp
                        .headers()
                        .get_all(http::header::WWW_AUTHENTICATE)
                        .iter()
                        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                        .collect::<Vec<_>>()
                        .join(", ");
                    why.push_str(&format!(
                        ": the server asks for authentication ({}); bitsfarm sends Basic credentials only when given some",
                        if wants.is_empty() { "no scheme named" } else { &wants }
                    ));
                }
                self.event(Event::ClientFailure {
                    job: job.cfg.name.clone(),
                    target,
                    packet: kind,
                    error: why.clone(),
                });
                self.conn = None;
                Err(
                    if (200..300).contains(&status) || !status_is_transient(status) {
                        Failure::Fatal(why)
                    } else {
                        Failure::Transient(why)
                    },
                )
            }
        }
    }

    /// The connection to `target`, reusing a kept-alive one when the peer has not closed it.
    async fn connection(&mut self, target: &str, kind: PacketType) -> Result<(), Failure> {
        let reusable = match &mut self.conn {
            Some((t, c)) if t == target => c.is_reusable().await,
            _ => false,
        };
        if !reusable {
            self.conn = None;
            let timeout = probe::clock::secs(self.job.cfg.connect_timeout_s);
            match HttpConn::open(self.job.env.connector.as_ref(), target, timeout).await {
                Ok(c) => {
                    // A connection to the Host-Id succeeded: the fallback timer resets.
                    if self.up.host_id.is_some() {
                        self.timers.stop_fallback();
                    }
                    self.conn = Some((target.to_owned(), c));
                }
                Err(e) => {
                    tracing::info!(job = %self.job.cfg.name, target, error = %e, "cannot connect");
                    self.event(Event::ClientFailure {
                        job: self.job.cfg.name.clone(),
                        target: target.to_owned(),
                        packet: kind,
                        error: e.to_string(),
                    });
                    let why = format!("{kind} to {target}: {e}");
                    // A refused certificate would be refused again: no retry.
                    return Err(if matches!(e, transport::client::Error::Tls(_)) {
                        Failure::Fatal(why)
                    } else {
                        Failure::Transient(why)
                    });
                }
            }
        }
        Ok(())
    }

    fn report(self) -> JobReport {
        let c = self.counts;
        JobReport {
            name: self.job.cfg.name.clone(),
            file: self.job.file.clone(),
            state: self.state,
            error: self.error,
            total: self.up.total,
            entity: self.job.entity.clone(),
            txid: self.job.txid.clone(),
            final_acked: self.up.final_acked,
            acknowledged: self.up.acknowledged,
            restarts: c.restarts,
            attempts: c.attempts,
            transient_errors: c.transient_errors,
            host_fallbacks: c.host_fallbacks,
            bytes_sent: c.bytes_sent,
            sessions: c.sessions,
            closed: c.closed,
            transferred_ms: c.transferred_ms,
            finished_ms: self.job.env.clock.now_ms(),
            reply: self.reply,
            history: c.history,
        }
    }
}

fn header_value(s: &str) -> http::HeaderValue {
    http::HeaderValue::from_str(s).unwrap_or_else(|_| http::HeaderValue::from_static("invalid"))
}
