//! A job's protocol state, apart from IO: what to send next and what an Ack means
//! (MC-BUP 3.1.5). [`Upload::next_request`] names the next packet; `on_*_ack` take its Ack and
//! say what happened. The job engine (`job.rs`) sends, waits and records; every client rule is a
//! unit test of this module that runs in microseconds.

use protocol::{Ack, ByteRange, PacketType, header};
use rand::RngExt as _;
use rand_chacha::ChaCha8Rng;

use crate::{
    MAX_IDLE_ROUND_TRIPS,
    classify::{Reaction, reaction},
    config::{JobConfig, JobKind},
};

/// Why an attempt stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Retry after the retry delay.
    Transient(String),
    /// Give up.
    Fatal(String),
    /// The owner cancelled.
    Cancelled,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Transient(w) => write!(f, "transient error: {w}"),
            Failure::Fatal(w) => write!(f, "fatal error: {w}"),
            Failure::Cancelled => f.write_str("cancelled"),
        }
    }
}

/// The packet to send next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// No session: open one.
    CreateSession,
    /// A Host-Id was learned: Ping it before fragments.
    Ping,
    /// Send these bytes.
    Fragment(ByteRange),
}

/// What a Create-Session Ack did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Created {
    /// The new session.
    pub session: String,
    /// `BITS-Host-Id` and `BITS-Host-Id-Fallback-Timeout`, when the server sent one.
    pub host_id: Option<(String, Option<u64>)>,
}

/// What a Fragment Ack did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Send the next fragment.
    Next,
    /// The final fragment's success Ack: every byte is delivered.
    Done,
    /// The server lost the session: start over from byte 0 with a new session.
    Restart {
        /// The lost session.
        lost: String,
        /// Bytes it had acknowledged.
        acknowledged: u64,
        /// Too many answers in a row moved nothing: treat it as a transient error.
        stalled: Option<Failure>,
    },
    /// 413: the same offset again with smaller fragments (the new size).
    Shrunk(u64),
}

/// A job's protocol state.
#[derive(Debug)]
pub(crate) struct Upload {
    /// Bytes to upload.
    pub total: u64,
    /// The original address (`host:port`).
    pub origin: String,
    /// Where requests go: the origin, or the Host-Id.
    pub target: String,
    /// The Host-Id in use.
    pub host_id: Option<String>,
    /// The current session.
    pub session: Option<String>,
    /// A Ping to the Host-Id is due before fragments.
    pub need_ping: bool,
    /// The next byte to send.
    pub offset: u64,
    /// Bytes the server acknowledged in the current session.
    pub acknowledged: u64,
    /// Fragment size (halved on 413, never below the floor).
    pub fragment_size: u64,
    /// Largest fragment when sizes are drawn (`fragment_size_max`).
    fragment_size_max: Option<u64>,
    /// Smallest fragment a 413 may shrink to.
    floor: u64,
    /// Draws fragment sizes; `None` when sizes are fixed (or once a 413 fixed them).
    sizes: Option<ChaCha8Rng>,
    /// An upload-reply job: the final Ack must name a reply URL.
    wants_reply: bool,
    /// The final fragment's success Ack arrived.
    pub final_acked: bool,
    /// `BITS-Reply-URL` of the final Ack.
    pub reply_url: Option<String>,
    /// Answers in a row that moved the upload nowhere.
    pub idle_round_trips: u32,
}

impl Upload {
    /// The state of a job that has sent nothing; `rng` draws fragment sizes when they vary.
    pub fn new(cfg: &JobConfig, origin: String, total: u64, rng: &ChaCha8Rng) -> Upload {
        Upload {
            total,
            target: origin.clone(),
            origin,
            host_id: None,
            session: None,
            need_ping: false,
            offset: 0,
            acknowledged: 0,
            fragment_size: cfg.fragment_size,
            fragment_size_max: cfg.fragment_size_max,
            floor: cfg.fragment_floor(),
            sizes: cfg
                .fragment_size_max
                .filter(|&m| m > cfg.fragment_size)
                .map(|_| rng.clone()),
            wants_reply: cfg.kind == JobKind::UploadReply,
            final_acked: false,
            reply_url: None,
            idle_round_trips: 0,
        }
    }

    /// What must hold after every step: positions within the upload, a final Ack only with
    /// every byte acknowledged, a Ping due only to a Host-Id of a live session. A failure is a
    /// client bug; it panics (in a simulation, the run fails `no_panics`).
    fn check(&self) {
        assert!(
            self.offset <= self.total && self.acknowledged <= self.total,
            "client state: offset {} / acknowledged {} of a {}-byte upload",
            self.offset,
            self.acknowledged,
            self.total
        );
        assert!(
            !self.final_acked || self.acknowledged == self.total,
            "client state: final Ack with {} of {} bytes acknowledged",
            self.acknowledged,
            self.total
        );
        assert!(
            !self.need_ping || (self.session.is_some() && self.host_id.is_some()),
            "client state: a Ping due without a session and a Host-Id"
        );
    }

    /// The packet to send next, until the final Ack.
    pub fn next_request(&mut self) -> Next {
        self.check();
        if self.session.is_none() {
            Next::CreateSession
        } else if self.need_ping {
            Next::Ping
        } else {
            Next::Fragment(self.next_range())
        }
    }

    /// The next fragment: from the offset, one fragment long; when the server holds every byte
    /// but the final Ack was lost, the last fragment again (its Ack completes the upload).
    fn next_range(&mut self) -> ByteRange {
        let total = self.total;
        let size = match (&mut self.sizes, self.fragment_size_max) {
            (Some(rng), Some(max)) => rng.random_range(self.fragment_size..=max),
            _ => self.fragment_size,
        };
        let (start, end) = if self.offset < total {
            (self.offset, self.offset.saturating_add(size).min(total))
        } else {
            (total.saturating_sub(self.fragment_size.min(total)), total)
        };
        ByteRange::new(start, end, total).expect("start < end <= total")
    }

    /// A Create-Session Ack.
    pub fn on_create_ack(&mut self, ack: &Ack) -> Result<Created, Failure> {
        if !ack.is_success() {
            return Err(react(ack, PacketType::CreateSession));
        }
        let Some(id) = ack.session_id.clone() else {
            return Err(Failure::Fatal(
                "Create-Session Ack without BITS-Session-Id".into(),
            ));
        };
        if ack
            .protocol
            .as_deref()
            .is_some_and(|p| !header::is_upload_protocol(p))
        {
            return Err(Failure::Fatal(format!(
                "server chose an unknown protocol ({})",
                protocol::HResult::PROTOCOL_MISMATCH
            )));
        }
        self.session = Some(id.clone());
        self.offset = 0;
        self.acknowledged = 0;
        let host_id = ack.host_id.clone().filter(|h| !h.is_empty());
        if let Some(host) = &host_id {
            self.target = transport::url::with_host(&self.origin, host);
            self.host_id = Some(host.clone());
            self.need_ping = true;
        }
        Ok(Created {
            session: id,
            host_id: host_id.map(|h| (h, ack.host_id_fallback_timeout_s)),
        })
    }

    /// The Ack of the Ping to the Host-Id.
    pub fn on_ping_ack(&mut self, ack: &Ack) -> Result<(), Failure> {
        if !ack.is_success() {
            return Err(react(ack, PacketType::Ping));
        }
        self.need_ping = false;
        Ok(())
    }

    /// The Ack of the fragment `range`.
    pub fn on_fragment_ack(&mut self, range: ByteRange, ack: &Ack) -> Result<Step, Failure> {
        let step = self.fragment_step(range, ack);
        self.check();
        step
    }

    fn fragment_step(&mut self, range: ByteRange, ack: &Ack) -> Result<Step, Failure> {
        if ack.is_success() || ack.status == 416 {
            return self.on_position(range, ack);
        }
        match reaction(ack) {
            Reaction::Restart => {
                let lost = self.session.take().unwrap_or_default();
                let acknowledged = self.acknowledged;
                self.offset = 0;
                self.acknowledged = 0;
                Ok(Step::Restart {
                    lost,
                    acknowledged,
                    stalled: self
                        .idle_round_trip("the server lost the session again")
                        .err(),
                })
            }
            Reaction::Shrink => {
                if self.fragment_size <= self.floor {
                    return Err(Failure::Fatal("413 at the smallest fragment size".into()));
                }
                self.fragment_size = (self.fragment_size / 2).max(self.floor);
                self.sizes = None;
                Ok(Step::Shrunk(self.fragment_size))
            }
            Reaction::Transient => Err(Failure::Transient(describe(ack))),
            Reaction::Fatal => Err(Failure::Fatal(describe(ack))),
        }
    }

    /// A 200 or 416 Fragment Ack: the server says where it is (`BITS-Received-Content-Range`).
    fn on_position(&mut self, range: ByteRange, ack: &Ack) -> Result<Step, Failure> {
        let total = self.total;
        let Some(received) = ack.received else {
            return Err(Failure::Fatal(
                "Fragment Ack without BITS-Received-Content-Range".into(),
            ));
        };
        if received > total {
            return Err(Failure::Fatal(format!(
                "server claims {received} bytes of a {total}-byte upload"
            )));
        }
        let advanced = received > self.acknowledged;
        if advanced {
            self.acknowledged = received;
            self.idle_round_trips = 0;
        }
        self.offset = received;
        if ack.is_success() && range.end == total && received == total {
            self.final_acked = true;
            self.reply_url = ack.reply_url.clone();
            if self.wants_reply && self.reply_url.is_none() {
                return Err(Failure::Fatal(
                    "upload-reply final Ack without BITS-Reply-URL".into(),
                ));
            }
            return Ok(Step::Done);
        }
        if !advanced {
            self.idle_round_trip(&format!(
                "the server acknowledged no new bytes (HTTP {}, BITS-Received-Content-Range {received})",
                ack.status
            ))?;
        }
        Ok(Step::Next)
    }

    /// Counts an answer that moved the upload nowhere (a Fragment Ack whose
    /// `BITS-Received-Content-Range` did not advance, a lost session). A few are normal (a
    /// resync, a reconnect landing on another node); more in a row make a transient error, so
    /// the retry delay and the no-progress timeout apply instead of a tight loop against a
    /// server that never moves.
    fn idle_round_trip(&mut self, why: &str) -> Result<(), Failure> {
        self.idle_round_trips += 1;
        if self.idle_round_trips >= MAX_IDLE_ROUND_TRIPS {
            return Err(Failure::Transient(format!(
                "{why}: {} answers in a row without progress",
                self.idle_round_trips
            )));
        }
        Ok(())
    }

    /// The Host-Id fallback timer expired: back to the original address (the Host-Id it
    /// leaves).
    pub fn fall_back(&mut self) -> String {
        self.target = self.origin.clone();
        self.need_ping = false;
        self.host_id.take().unwrap_or_default()
    }
}

/// The failure a non-success Ack to Create-Session or Ping means.
fn react(ack: &Ack, packet: PacketType) -> Failure {
    match reaction(ack) {
        Reaction::Fatal | Reaction::Shrink => {
            Failure::Fatal(format!("{packet}: {}", describe(ack)))
        }
        // A lost session outside a fragment (Ping after Create-Session): retry later.
        Reaction::Restart | Reaction::Transient => {
            Failure::Transient(format!("{packet}: {}", describe(ack)))
        }
    }
}

/// An error Ack in words.
pub(crate) fn describe(ack: &Ack) -> String {
    match ack.error {
        Some(e) => format!("HTTP {} {} (context {})", ack.status, e.code, e.context),
        None => format!("HTTP {}", ack.status),
    }
}

#[cfg(test)]
mod tests {
    use protocol::{ErrorContext, HResult};
    use rand::SeedableRng as _;

    use super::*;

    const TOTAL: u64 = 100;

    fn cfg() -> JobConfig {
        JobConfig {
            fragment_size: 30,
            min_fragment_size: 4,
            ..JobConfig::default()
        }
    }

    /// A job with session `{s}` that has sent `acknowledged` bytes.
    fn at(acknowledged: u64) -> Upload {
        let mut up = Upload::new(
            &cfg(),
            "farm:80".into(),
            TOTAL,
            &ChaCha8Rng::seed_from_u64(1),
        );
        up.session = Some("{s}".into());
        up.offset = acknowledged;
        up.acknowledged = acknowledged;
        up
    }

    fn range(start: u64, end: u64) -> ByteRange {
        ByteRange::new(start, end, TOTAL).unwrap()
    }

    fn ack(status: u16, received: Option<u64>) -> Ack {
        Ack {
            received,
            ..Ack::new(status)
        }
    }

    fn transient(why: &str) -> Result<Step, Failure> {
        Err(Failure::Transient(why.into()))
    }

    fn fatal(why: &str) -> Result<Step, Failure> {
        Err(Failure::Fatal(why.into()))
    }

    /// (rule, acknowledged before, fragment sent, Ack, step, offset after, acknowledged after).
    type Row = (
        &'static str,
        u64,
        ByteRange,
        Ack,
        Result<Step, Failure>,
        u64,
        u64,
    );

    /// MC-BUP client rules for Fragment Acks, one row each.
    #[test]
    fn each_fragment_ack_rule() {
        let lost = Ack::session_not_found();
        let e413 = Ack::error(
            413,
            HResult::from_http_status(413),
            ErrorContext::REMOTE_FILE,
        );
        #[rustfmt::skip]
        let rows: Vec<Row> = vec![
            ("200 moves the offset to what the server holds", 0, range(0, 30), ack(200, Some(30)), Ok(Step::Next), 30, 30),
            ("416 resyncs forward to the server's position", 30, range(30, 60), ack(416, Some(45)), Ok(Step::Next), 45, 45),
            ("416 resyncs backward; acknowledged never shrinks", 60, range(60, 90), ack(416, Some(45)), Ok(Step::Next), 45, 60),
            ("200 short of the range: resend from there", 30, range(30, 60), ack(200, Some(40)), Ok(Step::Next), 40, 40),
            ("final fragment's 200 with every byte: done", 70, range(70, 100), ack(200, Some(100)), Ok(Step::Done), 100, 100),
            ("201 counts as success", 70, range(70, 100), ack(201, Some(100)), Ok(Step::Done), 100, 100),
            ("every byte held but a non-final fragment: not done", 30, range(30, 60), ack(200, Some(100)), Ok(Step::Next), 100, 100),
            ("416 on the final fragment is not done", 70, range(70, 100), ack(416, Some(100)), Ok(Step::Next), 100, 100),
            ("Ack without a received range is fatal", 0, range(0, 30), ack(200, None), fatal("Fragment Ack without BITS-Received-Content-Range"), 0, 0),
            ("server claiming more than the upload is fatal", 0, range(0, 30), ack(200, Some(101)), fatal("server claims 101 bytes of a 100-byte upload"), 0, 0),
            ("session lost: restart from byte 0", 60, range(60, 90), lost.clone(), Ok(Step::Restart { lost: "{s}".into(), acknowledged: 60, stalled: None }), 0, 0),
            ("413: same offset, half the fragment", 30, range(30, 60), e413, Ok(Step::Shrunk(15)), 30, 30),
            ("503: transient", 30, range(30, 60), Ack::error(503, HResult::from_http_status(503), ErrorContext::REMOTE_FILE), transient("HTTP 503 0x801901F7 (context 0x5)"), 30, 30),
            ("500 without a code: transient", 30, range(30, 60), ack(500, None), transient("HTTP 500"), 30, 30),
            ("400 E_INVALIDARG: fatal", 30, range(30, 60), Ack::invalid_arg(), fatal("HTTP 400 0x80070057 (context 0x5)"), 30, 30),
            ("404 without a BITS code: fatal", 30, range(30, 60), ack(404, None), fatal("HTTP 404"), 30, 30),
            ("BG_E_TOO_LARGE: fatal", 0, range(0, 30), Ack::error(400, HResult::TOO_LARGE, ErrorContext::REMOTE_FILE), fatal("HTTP 400 0x80200020 (context 0x5)"), 0, 0),
        ];
        for (rule, before, sent, ack, want, offset, acknowledged) in rows {
            let mut up = at(before);
            let got = up.on_fragment_ack(sent, &ack);
            assert_eq!(got, want, "{rule}");
            assert_eq!(
                (up.offset, up.acknowledged),
                (offset, acknowledged),
                "{rule}"
            );
            assert_eq!(up.final_acked, got == Ok(Step::Done), "{rule}");
        }
    }

    #[test]
    fn next_request_follows_session_host_id_and_offset() {
        let mut up = at(0);
        up.session = None;
        assert_eq!(up.next_request(), Next::CreateSession);
        let mut created = Ack::ok().with_session("{n}");
        created.host_id = Some("node-2:80".into());
        created.host_id_fallback_timeout_s = Some(300);
        let c = up.on_create_ack(&created).unwrap();
        assert_eq!(
            c,
            Created {
                session: "{n}".into(),
                host_id: Some(("node-2:80".into(), Some(300)))
            }
        );
        assert_eq!((up.target.as_str(), up.need_ping), ("node-2:80", true));
        assert_eq!(up.next_request(), Next::Ping);
        // A Ping that fails is judged like any Ack; a session lost there is retried later.
        assert_eq!(
            up.on_ping_ack(&Ack::session_not_found()),
            Err(Failure::Transient(
                "Ping: HTTP 500 0x8020001F (context 0x5)".into()
            ))
        );
        assert_eq!(up.next_request(), Next::Ping);
        up.on_ping_ack(&Ack::ok()).unwrap();
        assert_eq!(up.next_request(), Next::Fragment(range(0, 30)));
        up.offset = 90;
        assert_eq!(up.next_request(), Next::Fragment(range(90, 100)));
        // Every byte held but no final Ack: the last fragment again.
        up.offset = 100;
        assert_eq!(up.next_request(), Next::Fragment(range(70, 100)));
        // Falling back leaves the Host-Id for the origin, without a Ping.
        assert_eq!(up.fall_back(), "node-2:80");
        assert_eq!(
            (up.target.as_str(), up.need_ping, up.host_id.as_deref()),
            ("farm:80", false, None)
        );
    }

    #[test]
    fn create_session_acks_that_cannot_work() {
        let mut up = at(0);
        assert_eq!(
            up.on_create_ack(&Ack::ok()),
            Err(Failure::Fatal(
                "Create-Session Ack without BITS-Session-Id".into()
            ))
        );
        let mut odd = Ack::ok().with_session("{n}");
        odd.protocol = Some("{00000000-0000-0000-0000-000000000000}".into());
        assert!(
            matches!(up.on_create_ack(&odd), Err(Failure::Fatal(w)) if w.contains("unknown protocol"))
        );
        assert!(matches!(
            up.on_create_ack(&ack(503, None)),
            Err(Failure::Transient(_))
        ));
        assert!(matches!(
            up.on_create_ack(&Ack::invalid_arg()),
            Err(Failure::Fatal(_))
        ));
        // A new session starts from byte 0; without a Host-Id the target stays.
        let mut up = at(60);
        up.on_create_ack(&Ack::ok().with_session("{m}")).unwrap();
        assert_eq!(
            (up.offset, up.acknowledged, up.target.as_str(), up.need_ping),
            (0, 0, "farm:80", false)
        );
    }

    #[test]
    fn answers_without_progress_become_a_transient_error() {
        let mut up = at(30);
        for _ in 1..MAX_IDLE_ROUND_TRIPS {
            assert_eq!(
                up.on_fragment_ack(range(30, 60), &ack(416, Some(30))),
                Ok(Step::Next)
            );
        }
        assert!(
            matches!(up.on_fragment_ack(range(30, 60), &ack(416, Some(30))), Err(Failure::Transient(w)) if w.contains("answers in a row without progress"))
        );
        // Progress resets the count.
        let mut up = at(30);
        for _ in 1..MAX_IDLE_ROUND_TRIPS {
            up.on_fragment_ack(range(30, 60), &ack(416, Some(30)))
                .unwrap();
        }
        up.on_fragment_ack(range(30, 60), &ack(200, Some(60)))
            .unwrap();
        assert_eq!(up.idle_round_trips, 0);
        // Lost sessions count too: the last restart says the job stalled.
        let mut up = at(30);
        for i in 1..=MAX_IDLE_ROUND_TRIPS {
            up.session = Some("{s}".into());
            let Ok(Step::Restart { stalled, .. }) =
                up.on_fragment_ack(range(0, 30), &Ack::session_not_found())
            else {
                panic!()
            };
            assert_eq!(stalled.is_some(), i == MAX_IDLE_ROUND_TRIPS);
        }
    }

    #[test]
    fn shrinking_stops_at_the_floor() {
        let e413 = Ack::error(
            413,
            HResult::from_http_status(413),
            ErrorContext::REMOTE_FILE,
        );
        let mut up = at(0);
        // Floor: min(min_fragment_size 4, 30 / 8 = 3) = 3.
        let sizes: Vec<_> = std::iter::from_fn(|| match up.on_fragment_ack(range(0, 30), &e413) {
            Ok(Step::Shrunk(n)) => Some(n),
            _ => None,
        })
        .collect();
        assert_eq!(sizes, [15, 7, 3]);
        assert_eq!(
            up.on_fragment_ack(range(0, 3), &e413),
            fatal("413 at the smallest fragment size")
        );
    }

    #[test]
    fn an_upload_reply_job_needs_a_reply_url() {
        let c = JobConfig {
            kind: JobKind::UploadReply,
            ..cfg()
        };
        let mut up = Upload::new(&c, "farm:80".into(), TOTAL, &ChaCha8Rng::seed_from_u64(1));
        up.session = Some("{s}".into());
        assert_eq!(
            up.on_fragment_ack(range(0, 100), &ack(200, Some(100))),
            fatal("upload-reply final Ack without BITS-Reply-URL")
        );
        let mut with_url = ack(200, Some(100));
        with_url.reply_url = Some("http://farm/r".into());
        up.session = Some("{s}".into());
        assert_eq!(up.on_fragment_ack(range(0, 100), &with_url), Ok(Step::Done));
        assert_eq!(up.reply_url.as_deref(), Some("http://farm/r"));
    }

    #[test]
    fn drawn_fragment_sizes_stay_within_bounds_until_a_413() {
        let c = JobConfig {
            fragment_size: 10,
            fragment_size_max: Some(40),
            ..cfg()
        };
        let mut up = Upload::new(&c, "farm:80".into(), 1000, &ChaCha8Rng::seed_from_u64(7));
        up.session = Some("{s}".into());
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..50 {
            let Next::Fragment(r) = up.next_request() else {
                panic!()
            };
            assert!((10..=40).contains(&r.len()), "{r:?}");
            seen.insert(r.len());
        }
        assert!(seen.len() > 5, "sizes vary: {seen:?}");
        let e413 = Ack::error(
            413,
            HResult::from_http_status(413),
            ErrorContext::REMOTE_FILE,
        );
        up.on_fragment_ack(ByteRange::new(0, 10, 1000).unwrap(), &e413)
            .unwrap();
        for _ in 0..10 {
            assert_eq!(
                up.next_request(),
                Next::Fragment(ByteRange::new(0, 5, 1000).unwrap())
            );
        }
    }
}

#[cfg(test)]
mod assertions {
    use rand::SeedableRng as _;

    use super::*;

    #[test]
    fn a_final_ack_without_every_byte_is_a_bug_that_stops_the_job() {
        let mut up = Upload::new(
            &JobConfig::default(),
            "farm:80".into(),
            100,
            &ChaCha8Rng::seed_from_u64(1),
        );
        up.session = Some("{s}".into());
        up.acknowledged = 10;
        up.final_acked = true;
        let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| up.next_request()))
            .expect_err("the state check must stop the job");
        let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(
            message.contains("final Ack with 10 of 100 bytes"),
            "{message}"
        );
    }
}
