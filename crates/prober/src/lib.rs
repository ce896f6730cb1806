//! `bitsfarm probe URL`: a black-box check of a BITS upload server or farm, safe to point at
//! production. It uploads only small probe files under `<URL>/bitsfarm-probe/`, closes or
//! cancels every session it opens, and sends at most a bounded number of requests.
//!
//! What it reports ([`Findings`], the `--json` schema):
//! ```json
//! {"url": "https://farm.example/upload/",
//!  "requests": 63,
//!  "facts": [{"id": "S6", "title": "...", "holds": true, "evidence": "BITS_POST ... → 416 [...]"}],
//!  "settings": {"host_id": null, "fallback_timeout_s": null, "max_upload_size": 1844674407370955,
//!               "max_upload_size_range": [.., ..], "max_fragment_size": null,
//!               "upload_reply": false, "sessions_shared": false, "sessions_found": 4,
//!               "connections_tried": 12, "nodes_seen": 3, "nodes_estimated": true,
//!               "session_id_format": "guid"},
//!  "risks": [{"id": "no-host-id", "severity": "high", "text": "..."}]}
//! ```
//! `holds` is `true`, `false` (with the exchange that shows it) or `null` (not checkable from
//! outside, or the budget ran out). Facts are numbered as in the conformance list of the
//! protocol reference (§6, server side).

mod wire;

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use protocol::header;
use serde::Serialize;
use transport::{Connect, auth::Credentials};

pub use wire::Stop;
use wire::{Answer, Bits, Conn, Wire};

/// What to probe and how.
pub struct Options {
    /// The BITS upload URL (`http://` or `https://`), a directory uploads may go to.
    pub url: String,
    /// How to connect (TLS for `https://`).
    pub connector: Arc<dyn Connect>,
    /// Basic credentials, if the server wants them.
    pub credentials: Option<Credentials>,
    /// Most requests sent.
    pub max_requests: u64,
    /// Fresh connections tried to see whether a session is found through the URL.
    pub connections: u32,
    /// Longest wait for each answer.
    pub timeout: Duration,
    /// Names the probe files (`<tag>-1.bin`, ...): give something unique per run.
    pub tag: String,
}

/// A conformance fact and whether it held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Fact {
    /// `S1` ... `S16` (the protocol reference's numbering), or `S-visible`.
    pub id: String,
    /// What must hold.
    pub title: String,
    /// Holds, fails, or `None`: not checkable here.
    pub holds: Option<bool>,
    /// The exchange that shows it, or why it could not be checked.
    pub evidence: String,
}

/// What the probe found out about the farm's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Settings {
    /// `BITSHostId` as the Create-Session Ack gave it.
    pub host_id: Option<String>,
    /// `BITSHostIdFallbackTimeout`, seconds.
    pub fallback_timeout_s: Option<u64>,
    /// `BITSMaximumUploadSize`, bytes: the largest total accepted (`None`: no limit found
    /// below 2^62, or not probed).
    pub max_upload_size: Option<u64>,
    /// The largest total accepted and the smallest refused.
    pub max_upload_size_range: Option<(u64, u64)>,
    /// The largest fragment accepted (IIS's `maxAllowedContentLength`), found with heads
    /// only (`None`: no limit found up to 4 GiB or BITSMaximumUploadSize, or not probed).
    pub max_fragment_size: Option<u64>,
    /// The largest fragment accepted and the smallest answered 413.
    pub max_fragment_size_range: Option<(u64, u64)>,
    /// Whether the final fragment's Ack carried `BITS-Reply-URL` (upload-reply offered).
    pub upload_reply: Option<bool>,
    /// Whether every fresh connection through the URL found a session.
    pub sessions_shared: Option<bool>,
    /// How many of the fresh connections found it.
    pub sessions_found: u32,
    /// Fresh connections tried.
    pub connections_tried: u32,
    /// Distinct nodes seen (from Host-Ids), or estimated from session visibility.
    pub nodes_seen: Option<u32>,
    /// Whether `nodes_seen` is an estimate.
    pub nodes_estimated: bool,
    /// `guid` (`{8-4-4-4-12}` hex, as IIS), or the first session id seen.
    pub session_id_format: Option<String>,
}

/// A risk, in plain words, with what to change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Risk {
    /// A stable name.
    pub id: String,
    /// `high`, `medium` or `info`.
    pub severity: String,
    /// The chain it leads to and what to change.
    pub text: String,
}

/// Everything the probe found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Findings {
    /// The URL probed.
    pub url: String,
    /// Requests sent.
    pub requests: u64,
    /// The budget.
    pub max_requests: u64,
    /// Conformance facts.
    pub facts: Vec<Fact>,
    /// Settings discovered.
    pub settings: Settings,
    /// Risks.
    pub risks: Vec<Risk>,
}

impl Findings {
    /// Whether a checkable fact failed.
    pub fn any_failed(&self) -> bool {
        self.facts.iter().any(|f| f.holds == Some(false))
    }
}

/// Why the probe could not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeError {
    /// The URL is not usable.
    Url(String),
    /// The server does not speak BITS there (what it answered).
    NotBits(String),
    /// It cannot be reached.
    Unreachable(String),
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeError::Url(why) | ProbeError::NotBits(why) | ProbeError::Unreachable(why) => {
                f.write_str(why)
            }
        }
    }
}

impl std::error::Error for ProbeError {}

const SESSION_NOT_FOUND: &str = "0x8020001f";
const INVALID_ARG: &str = "0x80070057";
const TOO_LARGE: &str = "0x80200020";
/// A session id no server gave out.
const NO_SESSION: &str = "{00000000-0000-0000-0000-000000000000}";
/// The probe file's size: three 100-byte fragments.
const PROBE_SIZE: u64 = 300;
/// The largest total tried for BITSMaximumUploadSize.
const TOTAL_CEILING: u64 = 1 << 62;

/// The probe file's bytes.
fn probe_bytes() -> Bytes {
    let line = b"bitsfarm probe file: safe to delete. ";
    Bytes::from(
        (0..PROBE_SIZE as usize)
            .map(|i| line[i % line.len()])
            .collect::<Vec<u8>>(),
    )
}

fn range(start: u64, end: u64, total: u64) -> String {
    format!("bytes {start}-{}/{total}", end - 1)
}

/// The facts and settings as they are being found.
struct Run {
    wire: Wire,
    authority: String,
    dir: String,
    tag: String,
    files: u32,
    facts: Vec<Fact>,
    settings: Settings,
    /// Sessions opened and not yet closed or cancelled: (where to reach them, path, id).
    open: Vec<(String, String, String)>,
}

impl Run {
    fn fact(&mut self, id: &str, title: &str, holds: Option<bool>, evidence: impl Into<String>) {
        self.facts.push(Fact {
            id: id.to_owned(),
            title: title.to_owned(),
            holds,
            evidence: evidence.into(),
        });
    }

    /// A fact judged on one answer.
    fn judge(&mut self, id: &str, title: &str, answer: &Answer, holds: bool) {
        let evidence = answer.evidence.clone();
        self.fact(id, title, Some(holds), evidence);
    }

    fn next_path(&mut self) -> String {
        self.files += 1;
        format!("{}bitsfarm-probe/{}-{}.bin", self.dir, self.tag, self.files)
    }

    /// Create-Session for a new probe file on `conn`; the answer, the path, and the session
    /// id if one was given (then recorded as open).
    async fn create(&mut self, conn: &mut Conn) -> Result<(Answer, String, Option<String>), Stop> {
        let path = self.next_path();
        let a = self
            .wire
            .send(
                conn,
                &path,
                &Bits::packet("Create-Session").with(
                    header::SUPPORTED_PROTOCOLS,
                    header::PROTOCOL_GUID.to_uppercase(),
                ),
            )
            .await?;
        let id = a
            .get(&header::SESSION_ID)
            .filter(|_| a.status == 200 || a.status == 201)
            .map(str::to_owned);
        if let Some(id) = &id {
            self.open
                .push((conn.authority().to_owned(), path.clone(), id.clone()));
        }
        Ok((a, path, id))
    }

    /// A fragment of `data` (`start..end` of `total`) for session `id`.
    async fn fragment(
        &mut self,
        conn: &mut Conn,
        path: &str,
        id: &str,
        (start, end, total): (u64, u64, u64),
        data: &Bytes,
    ) -> Result<Answer, Stop> {
        let bits = Bits::packet("Fragment")
            .with(header::SESSION_ID, id)
            .with(http::header::CONTENT_RANGE, range(start, end, total))
            .body(data.slice(start as usize..end as usize));
        self.wire.send(conn, path, &bits).await
    }

    /// Closes (after the whole file) or cancels every session still open, best effort.
    async fn tidy(&mut self) {
        for (authority, path, id) in std::mem::take(&mut self.open) {
            let mut conn = self.wire.conn(&authority);
            let _ = self.cancel(&mut conn, &path, &id).await;
        }
    }

    /// Cancel-Session for `id` (the probe file at `path`) on `conn`; once sent, the session
    /// is no longer counted as open.
    async fn cancel(&mut self, conn: &mut Conn, path: &str, id: &str) -> Result<(), Stop> {
        self.wire
            .send(
                conn,
                path,
                &Bits::packet("Cancel-Session").with(header::SESSION_ID, id),
            )
            .await?;
        self.forget(id);
        Ok(())
    }

    fn forget(&mut self, id: &str) {
        self.open.retain(|(_, _, i)| i != id);
    }
}

/// Probes `opts.url`. Facts that could not be checked because the budget ran out or a
/// connection broke are reported as not checkable, with why.
pub async fn probe(opts: Options) -> Result<Findings, ProbeError> {
    let (target, _) = transport::url::parse_web(&opts.url)
        .map_err(|e| ProbeError::Url(format!("{:?}: {e}", opts.url)))?;
    let path = target.path_and_query.split('?').next().unwrap_or("/");
    let dir = if path.ends_with('/') {
        path.to_owned()
    } else {
        format!("{path}/")
    };
    let mut run = Run {
        wire: Wire::new(
            opts.connector.clone(),
            opts.credentials.clone(),
            opts.timeout,
            opts.max_requests,
        ),
        authority: target.authority.clone(),
        dir,
        tag: opts.tag.clone(),
        files: 0,
        facts: Vec::new(),
        settings: Settings::default(),
        open: Vec::new(),
    };
    let outcome = checks(&mut run, &opts).await;
    run.tidy().await;
    match &outcome {
        Err(Checks::Stopped(Stop::Wire(why))) if run.facts.is_empty() => {
            return Err(ProbeError::Unreachable(why.clone()));
        }
        Err(Checks::NotBits(why)) => return Err(ProbeError::NotBits(why.clone())),
        _ => {}
    }
    if let Err(stop) = outcome {
        let why = match stop {
            Checks::Stopped(Stop::Budget) => format!(
                "the request budget ({}) ran out; raise --max-requests",
                opts.max_requests
            ),
            Checks::Stopped(Stop::Wire(why)) => format!("the probe stopped: {why}"),
            Checks::NotBits(_) => unreachable!("returned above"),
        };
        for (id, title) in FACTS {
            if !run.facts.iter().any(|f| f.id == *id) {
                run.fact(id, title, None, why.clone());
            }
        }
    }
    let risks = risks(&run.settings, &run.facts);
    Ok(Findings {
        url: opts.url.clone(),
        requests: run.wire.sent(),
        max_requests: opts.max_requests,
        facts: sorted(run.facts),
        settings: run.settings,
        risks,
    })
}

/// Every server-side fact, in the reference's order.
const FACTS: &[(&str, &str)] = &[
    (
        "S1",
        "Create-Session without a common protocol → 400 Ack, 0x80070057, context 0x5, no BITS-Protocol",
    ),
    (
        "S2",
        "Create-Session with the upload protocol → 200/201 Ack, BITS-Protocol echoed, a session id, Accept-Encoding: Identity",
    ),
    (
        "S3",
        "BITS-Host-Id only on the Create-Session Ack, the fallback timeout only with it",
    ),
    (
        "S4",
        "An unknown BITS-Packet-Type → 400 Ack with 0x80070057 (not a dropped connection)",
    ),
    (
        "S5",
        "Every Fragment Ack carries BITS-Received-Content-Range",
    ),
    (
        "S6",
        "A fragment beyond the bytes held → 416, BITS-Received-Content-Range = bytes held",
    ),
    (
        "S7",
        "An overlapping fragment → only the new bytes taken, BITS-Received-Content-Range = its end",
    ),
    ("S8", "A fragment without Content-Range → 400, 0x80070057"),
    ("S9", "A fragment for an unknown session → 0x8020001F"),
    (
        "S10",
        "The final fragment sent again (its Ack lost) → the same Ack replayed, no new notification",
    ),
    (
        "S11",
        "One notification per completed upload, with the MC-BUP headers",
    ),
    (
        "S12",
        "An application error → an error Ack with context 0x7, notified again on retry",
    ),
    ("S13", "BITS-Reply-URL only on the final fragment's Ack"),
    (
        "S14",
        "Close-Session → 200 Ack echoing BITS-Session-Id; the session is unknown afterwards",
    ),
    (
        "S15",
        "Cancel-Session after the final fragment neither un-delivers nor re-delivers",
    ),
    (
        "S16",
        "A total over BITSMaximumUploadSize → 0x80200020, never HTTP 413",
    ),
    (
        "S-visible",
        "A session is found again on a fresh connection (to its Host-Id, or on some of several through the URL)",
    ),
];

fn title(id: &str) -> &'static str {
    FACTS.iter().find(|(i, _)| *i == id).map_or("", |(_, t)| t)
}

fn sorted(mut facts: Vec<Fact>) -> Vec<Fact> {
    facts.sort_by_key(|f| {
        FACTS
            .iter()
            .position(|(i, _)| *i == f.id)
            .unwrap_or(usize::MAX)
    });
    facts
}

/// Why the checks ended early.
enum Checks {
    Stopped(Stop),
    NotBits(String),
}

impl From<Stop> for Checks {
    fn from(s: Stop) -> Checks {
        Checks::Stopped(s)
    }
}

async fn checks(run: &mut Run, opts: &Options) -> Result<(), Checks> {
    let authority = run.authority.clone();
    let mut main = run.wire.conn(&authority);
    // Is it a BITS server at all?
    let ping = run
        .wire
        .send(&mut main, &run.dir.clone(), &Bits::packet("Ping"))
        .await?;
    if ping.status == 401 {
        return Err(Checks::NotBits(format!(
            "answered 401 to BITS_POST Ping: the server wants authentication ({}); give --user",
            ping.get(&http::header::WWW_AUTHENTICATE)
                .unwrap_or("no scheme named")
        )));
    }
    if !ping.is_ack() {
        return Err(Checks::NotBits(format!(
            "answered {} to BITS_POST without a BITS Ack: not a BITS upload endpoint ({})",
            ping.status, ping.evidence
        )));
    }
    for id in ["S11", "S12", "S15"] {
        run.fact(
            id,
            title(id),
            None,
            "not checkable from outside: the server application is not visible to the probe",
        );
    }

    // S1: no common protocol.
    let path = run.next_path();
    let a = run
        .wire
        .send(
            &mut main,
            &path,
            &Bits::packet("Create-Session").with(
                header::SUPPORTED_PROTOCOLS,
                "{00000000-1111-2222-3333-444444444444}",
            ),
        )
        .await?;
    let holds = a.status == 400
        && a.is_ack()
        && a.code().as_deref() == Some(INVALID_ARG)
        && a.get(&header::ERROR_CONTEXT)
            .is_some_and(|c| c.trim() == "0x5")
        && a.get(&header::PROTOCOL).is_none();
    run.judge("S1", title("S1"), &a, holds);
    if let Some(id) = a.get(&header::SESSION_ID).filter(|_| a.status < 300) {
        run.open.push((authority.clone(), path, id.to_owned()));
    }

    // S4: an unknown packet type.
    let a = run
        .wire
        .send(&mut main, &run.dir.clone(), &Bits::packet("Bogus-Packet"))
        .await?;
    let holds = a.status == 400 && a.is_ack() && a.code().as_deref() == Some(INVALID_ARG);
    run.judge("S4", title("S4"), &a, holds);

    // S2, S3: the session the rest works on.
    let (a, path, id) = run.create(&mut main).await?;
    let holds = (a.status == 200 || a.status == 201)
        && a.is_ack()
        && a.get(&header::PROTOCOL)
            .is_some_and(|p| p.trim().eq_ignore_ascii_case(header::PROTOCOL_GUID))
        && id.is_some()
        && a.get(&http::header::ACCEPT_ENCODING)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("identity"))
        && a.code().is_none();
    run.judge("S2", title("S2"), &a, holds);
    let Some(id) = id else {
        return Err(Stop::Wire(format!("no session was created: {}", a.evidence)).into());
    };
    run.settings.session_id_format = Some(if is_guid(&id) {
        "guid".into()
    } else {
        id.clone()
    });
    let host_id = a.get(&header::HOST_ID).map(|h| h.trim().to_owned());
    let fallback = a.get(&header::HOST_ID_FALLBACK_TIMEOUT);
    run.settings.host_id = host_id.clone();
    run.settings.fallback_timeout_s = fallback.and_then(|f| f.trim().parse().ok());
    let mut s3 = (fallback.is_none() || host_id.is_some(), a.evidence.clone());
    // The session's requests go where its Host-Id says.
    let session_at = host_id.as_deref().map_or(authority.clone(), |h| {
        transport::url::with_host(&authority, h)
    });
    let mut sc = if session_at == authority {
        main
    } else {
        run.wire.conn(&session_at)
    };
    let data = probe_bytes();
    let total = PROBE_SIZE;

    // S5, S3, S13 on a first fragment.
    let a = run
        .fragment(&mut sc, &path, &id, (0, 100, total), &data)
        .await?;
    let mut s5 = (a.received() == Some(100), a.evidence.clone());
    if a.get(&header::HOST_ID).is_some() || a.get(&header::HOST_ID_FALLBACK_TIMEOUT).is_some() {
        s3 = (false, a.evidence.clone());
    }
    let mut s13 = (a.get(&header::REPLY_URL).is_none(), a.evidence.clone());
    // S6: a gap.
    let a = run
        .fragment(&mut sc, &path, &id, (200, 300, total), &data)
        .await?;
    run.judge(
        "S6",
        title("S6"),
        &a,
        a.status == 416 && a.received() == Some(100),
    );
    s5.0 &= a.received().is_some();
    // S7: an overlap.
    let a = run
        .fragment(&mut sc, &path, &id, (50, 200, total), &data)
        .await?;
    run.judge(
        "S7",
        title("S7"),
        &a,
        a.status == 200 && a.received() == Some(200),
    );
    s5.0 &= a.received().is_some();
    if a.get(&header::REPLY_URL).is_some() {
        s13 = (false, a.evidence.clone());
    }
    // S8: no Content-Range.
    let a = run
        .wire
        .send(
            &mut sc,
            &path,
            &Bits::packet("Fragment")
                .with(header::SESSION_ID, id.clone())
                .body(data.slice(200..210)),
        )
        .await?;
    run.judge(
        "S8",
        title("S8"),
        &a,
        a.status == 400 && a.code().as_deref() == Some(INVALID_ARG),
    );
    // S9: an unknown session.
    let a = run
        .fragment(&mut sc, &path, NO_SESSION, (0, 100, total), &data)
        .await?;
    run.judge(
        "S9",
        title("S9"),
        &a,
        a.code().as_deref() == Some(SESSION_NOT_FOUND),
    );

    // Is the session found on fresh connections?
    visibility(run, opts, &path, &id, &data, host_id.as_deref()).await?;

    // The final fragment, then the same again as after a lost Ack.
    let first = run
        .fragment(&mut sc, &path, &id, (200, 300, total), &data)
        .await?;
    s5.0 &= first.received().is_some();
    let reply = first.get(&header::REPLY_URL).map(str::to_owned);
    run.settings.upload_reply = Some(reply.is_some() && first.status == 200);
    let again = run
        .fragment(&mut sc, &path, &id, (200, 300, total), &data)
        .await?;
    let holds = first.status == 200
        && again.status == 200
        && again.received() == Some(total)
        && again.get(&header::REPLY_URL).map(str::to_owned) == reply;
    run.fact(
        "S10",
        title("S10"),
        Some(holds),
        format!(
            "{}; then {} (that no second notification went out is not visible from here)",
            first.evidence, again.evidence
        ),
    );
    s5.0 &= again.received().is_some();
    run.fact("S5", title("S5"), Some(s5.0), s5.1);
    run.fact("S3", title("S3"), Some(s3.0), s3.1);
    run.fact("S13", title("S13"), Some(s13.0), s13.1);

    // S14: Close-Session, then the session is gone.
    let close = run
        .wire
        .send(
            &mut sc,
            &path,
            &Bits::packet("Close-Session").with(header::SESSION_ID, id.clone()),
        )
        .await?;
    run.forget(&id);
    let after = run
        .fragment(&mut sc, &path, &id, (200, 300, total), &data)
        .await?;
    let holds = close.status == 200
        && close.get(&header::SESSION_ID).map(str::trim) == Some(id.as_str())
        && after.code().as_deref() == Some(SESSION_NOT_FOUND);
    run.fact(
        "S14",
        title("S14"),
        Some(holds),
        format!("{}; then {}", close.evidence, after.evidence),
    );

    nodes_seen(run, opts, &authority).await?;
    max_upload_size(run, &authority, host_id.as_deref()).await?;
    max_fragment_size(run, &authority, host_id.as_deref()).await?;
    Ok(())
}

/// The smallest fragment tried, and the largest.
const FRAGMENT_FLOOR: u64 = 64 << 10;
const FRAGMENT_CEILING: u64 = 4 << 30;

/// The largest fragment accepted (IIS's maxAllowedContentLength answers 413 above it): heads
/// of ever larger fragments with `Expect: 100-continue` for a fresh session, never their
/// bytes; `100 Continue` is acceptance. A server that does not answer the head (it ignores
/// `Expect` and waits for the bytes) leaves the size unknown.
async fn max_fragment_size(
    run: &mut Run,
    authority: &str,
    host_id: Option<&str>,
) -> Result<(), Checks> {
    let at = host_id.map_or(authority.to_owned(), |h| {
        transport::url::with_host(authority, h)
    });
    let cap = run
        .settings
        .max_upload_size
        .unwrap_or(FRAGMENT_CEILING)
        .min(FRAGMENT_CEILING);
    if cap < FRAGMENT_FLOOR {
        return Ok(());
    }
    let mut conn = run.wire.conn(&at);
    let (_, path, Some(id)) = run.create(&mut conn).await? else {
        return Ok(());
    };
    // Some(true): accepted, Some(false): 413, None: the session was not found there (another
    // node) or something else.
    let ask = async |run: &mut Run, len: u64| -> Result<Option<bool>, Checks> {
        for _ in 0..4 {
            match run.wire.head_only(&at, &path, &id, len).await? {
                // No answer: the server ignores Expect and waits for the bytes; waiting out
                // each size would take too long, so the search ends.
                None => return Ok(None),
                Some(a) if a.status == 100 => return Ok(Some(true)),
                Some(a) if a.status == 413 => return Ok(Some(false)),
                Some(a) if a.code().as_deref() == Some(SESSION_NOT_FOUND) => continue,
                Some(_) => return Ok(None),
            }
        }
        Ok(None)
    };
    let mut lo = 0;
    let mut len = FRAGMENT_FLOOR;
    let mut hi = loop {
        match ask(run, len).await? {
            Some(true) => lo = len,
            Some(false) => break len,
            None => return Ok(()),
        }
        if len == cap {
            // Every size up to the cap was accepted.
            return Ok(());
        }
        len = (len * 4).min(cap);
    };
    if lo == 0 {
        run.settings.max_fragment_size_range = Some((0, hi));
        return Ok(());
    }
    for _ in 0..10 {
        if hi - lo <= (lo / 100).max(1) {
            break;
        }
        let mid = lo + (hi - lo) / 2;
        match ask(run, mid).await? {
            Some(true) => lo = mid,
            Some(false) => hi = mid,
            None => break,
        }
    }
    run.settings.max_fragment_size = Some(lo);
    run.settings.max_fragment_size_range = Some((lo, hi));
    Ok(())
}

/// Whether a Fragment's answer shows the server knows the session (a 200 or 416 Ack with
/// the bytes it holds, not `0x8020001F`).
fn knows(a: &Answer) -> bool {
    a.received().is_some() && a.code().as_deref() != Some(SESSION_NOT_FOUND)
}

fn is_guid(id: &str) -> bool {
    let inner = id.trim().trim_start_matches('{').trim_end_matches('}');
    let parts: Vec<&str> = inner.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Sends the session's first 100 bytes again on fresh connections through the URL (and one to
/// its Host-Id): how many find it.
async fn visibility(
    run: &mut Run,
    opts: &Options,
    path: &str,
    id: &str,
    data: &Bytes,
    host_id: Option<&str>,
) -> Result<(), Checks> {
    let authority = run.authority.clone();
    let mut found = 0;
    let mut evidence = Vec::new();
    let mut tried = 0;
    for _ in 0..opts.connections {
        let mut fresh = run.wire.conn(&authority);
        let a = run
            .fragment(&mut fresh, path, id, (0, 100, PROBE_SIZE), data)
            .await?;
        tried += 1;
        if knows(&a) {
            found += 1;
        }
        if evidence.len() < 2 {
            evidence.push(a.evidence.clone());
        }
    }
    run.settings.sessions_found = found;
    run.settings.connections_tried = tried;
    run.settings.sessions_shared = Some(found == tried);
    let (holds, why) = match host_id {
        Some(h) => {
            let at = transport::url::with_host(&authority, h);
            let mut fresh = run.wire.conn(&at);
            let a = run
                .fragment(&mut fresh, path, id, (0, 100, PROBE_SIZE), data)
                .await?;
            (knows(&a), a.evidence)
        }
        None => (
            found > 0,
            format!(
                "found on {found} of {tried} fresh connections through the URL: {}",
                evidence.join("; ")
            ),
        ),
    };
    run.fact("S-visible", title("S-visible"), Some(holds), why);
    Ok(())
}

/// Distinct Host-Ids over a few sessions opened on fresh connections, or an estimate from how
/// often a session was found.
async fn nodes_seen(run: &mut Run, opts: &Options, authority: &str) -> Result<(), Checks> {
    let mut ids = std::collections::BTreeSet::new();
    if let Some(h) = &run.settings.host_id {
        ids.insert(h.clone());
        for _ in 0..opts.connections.clamp(1, 6) {
            let mut fresh = run.wire.conn(authority);
            let (a, path, id) = run.create(&mut fresh).await?;
            if let Some(h) = a.get(&header::HOST_ID) {
                ids.insert(h.trim().to_owned());
            }
            if let Some(id) = id {
                run.cancel(&mut fresh, &path, &id).await?;
            }
        }
        run.settings.nodes_seen = Some(ids.len() as u32);
        run.settings.nodes_estimated = false;
    } else {
        let s = &mut run.settings;
        s.nodes_estimated = true;
        s.nodes_seen = match s.sessions_found {
            0 => None,
            found if found == s.connections_tried => Some(1),
            found => Some(((s.connections_tried as f64 / found as f64).round() as u32).max(2)),
        };
    }
    Ok(())
}

/// BITSMaximumUploadSize: totals declared in Content-Range on a 1-byte first fragment, from
/// 2^62 down by factors of 16 until one is accepted, then bisected; an accepted total fixes a
/// session's size, so each acceptance costs a new session.
async fn max_upload_size(
    run: &mut Run,
    authority: &str,
    host_id: Option<&str>,
) -> Result<(), Checks> {
    let at = host_id.map_or(authority.to_owned(), |h| {
        transport::url::with_host(authority, h)
    });
    let one = Bytes::from_static(b"b");
    let mut conn = run.wire.conn(&at);
    let (_, mut path, mut id) = run.create(&mut conn).await?;
    let mut refused_413: Option<String> = None;
    let mut first_refusal: Option<String> = None;
    // Some(true): accepted, Some(false): refused as too large, None: something else.
    let mut try_total = async |run: &mut Run,
                               total: u64,
                               conn: &mut Conn,
                               path: &mut String,
                               id: &mut Option<String>|
           -> Result<Option<bool>, Checks> {
        let Some(sid) = id.clone() else {
            return Ok(None);
        };
        let a = run.fragment(conn, path, &sid, (0, 1, total), &one).await?;
        if a.status == 413 {
            refused_413.get_or_insert(a.evidence.clone());
        }
        if a.code().as_deref() == Some(TOO_LARGE) || a.status == 413 {
            first_refusal.get_or_insert(a.evidence.clone());
            return Ok(Some(false));
        }
        if a.status == 200 {
            // The session now has this total: the next try needs a new one.
            run.cancel(conn, path, &sid).await?;
            let (_, p, i) = run.create(conn).await?;
            *path = p;
            *id = i;
            return Ok(Some(true));
        }
        Ok(None)
    };
    let mut hi = TOTAL_CEILING;
    match try_total(run, hi, &mut conn, &mut path, &mut id).await? {
        Some(true) => {
            run.settings.max_upload_size = None;
            run.fact(
                "S16",
                title("S16"),
                None,
                format!("no limit found: a total of {TOTAL_CEILING} bytes was accepted"),
            );
            return Ok(());
        }
        None => return Ok(()),
        Some(false) => {}
    }
    let mut lo = hi;
    loop {
        if lo < 16 {
            return Ok(());
        }
        lo /= 16;
        match try_total(run, lo, &mut conn, &mut path, &mut id).await? {
            Some(true) => break,
            Some(false) => hi = lo,
            None => return Ok(()),
        }
    }
    // lo accepted, hi refused: bisect to within 1/1000 or 14 steps.
    for _ in 0..14 {
        if hi - lo <= (lo / 1000).max(1) {
            break;
        }
        let mid = lo + (hi - lo) / 2;
        match try_total(run, mid, &mut conn, &mut path, &mut id).await? {
            Some(true) => lo = mid,
            Some(false) => hi = mid,
            None => break,
        }
    }
    run.settings.max_upload_size = Some(lo);
    run.settings.max_upload_size_range = Some((lo, hi));
    match refused_413 {
        Some(e) => run.fact("S16", title("S16"), Some(false), e),
        None => run.fact(
            "S16",
            title("S16"),
            Some(true),
            first_refusal.unwrap_or_default(),
        ),
    }
    Ok(())
}

/// The risks the settings and facts point to.
fn risks(s: &Settings, facts: &[Fact]) -> Vec<Risk> {
    let mut out = Vec::new();
    let mut risk = |id: &str, severity: &str, text: String| {
        out.push(Risk {
            id: id.to_owned(),
            severity: severity.to_owned(),
            text,
        });
    };
    let nodes = match (s.nodes_seen, s.nodes_estimated) {
        (Some(n), false) => format!("the {n} nodes seen"),
        (Some(n), true) => format!("the ~{n} nodes estimated"),
        (None, _) => "the nodes".to_owned(),
    };
    match (&s.host_id, s.sessions_shared) {
        (None, Some(false)) => risk(
            "no-host-id",
            "high",
            format!(
                "BITSHostId unset and sessions not shared between {nodes} (a session was found on {} of {} fresh connections): a reconnect that lands on another node restarts the upload from byte 0, and a lost final Ack makes the application receive the file twice. Set BITSHostId on every node, or share the BITS-Sessions storage between them.",
                s.sessions_found, s.connections_tried
            ),
        ),
        (Some(_), _) => match s.fallback_timeout_s {
            Some(t) if t <= 600 => risk(
                "fallback-short",
                "high",
                format!(
                    "BITSHostIdFallbackTimeout is {t} s, not more than a Windows client's 600 s retry delay: a client whose node does not answer falls back to the farm's address at its first retry, so BITSHostId cannot help; a file whose final Ack was lost is delivered again by another node. Raise the fallback timeout well above the clients' retry delay."
                ),
            ),
            t => risk(
                "fallback",
                "medium",
                format!(
                    "BITSHostId is set{}: if a node dies after its application processed a file but before the client got the final Ack, the client retries that node until the fallback timeout and then uploads the file again through the farm: the application receives it twice. Make the application deduplicate (a transaction id in the data), and keep nodes' downtime below the fallback timeout.",
                    t.map_or(
                        " without a fallback timeout (the client then never falls back)".to_owned(),
                        |t| format!(" with a {t} s fallback timeout")
                    )
                ),
            ),
        },
        _ => {}
    }
    if facts
        .iter()
        .any(|f| f.id == "S10" && f.holds == Some(false))
    {
        risk(
            "no-replay",
            "high",
            "The final fragment sent again was not answered with the cached Ack: every lost final Ack may deliver the file again. Check the server's notification cache (NotifyCache).".to_owned(),
        );
    }
    risk(
        "lost-ack",
        "info",
        "Any BITS farm delivers a file twice when the node that forwarded it dies before the client gets its final Ack (the node, or another after the fallback, forwards the file again). Only the application can make that harmless: deduplicate by a transaction id carried in the data.".to_owned(),
    );
    out
}

/// A scenario file that mirrors the probed farm, so that `bitsfarm sweep FILE` predicts its
/// duplicate rate: its nodes, Host-Id and fallback timeout, its upload limit, and the seed
/// document's fault (a node dies after its application processed a file).
pub fn mirror_scenario(f: &Findings) -> String {
    let s = &f.settings;
    let nodes = s.nodes_seen.unwrap_or(3).clamp(1, 64);
    let mut out = format!(
        "# Mirrors {} as `bitsfarm probe` saw it ({} requests).\n",
        f.url, f.requests
    );
    if s.nodes_estimated {
        out.push_str(&format!(
            "# nodes: estimated from sessions found on {} of {} fresh connections.\n",
            s.sessions_found, s.connections_tried
        ));
    }
    if s.sessions_shared == Some(true) && s.host_id.is_none() && nodes > 1 {
        out.push_str("# Sessions looked shared between nodes; bitsfarm models nodes with their own sessions.\n");
    }
    out.push_str("description = \"a farm mirrored by bitsfarm probe: a node dies after its application processed a file\"\n\n[farm]\n");
    out.push_str(&format!("nodes = {nodes}\n"));
    out.push_str(&format!("host_id = {}\n", s.host_id.is_some()));
    if let Some(t) = s.fallback_timeout_s {
        out.push_str(&format!("fallback_timeout_s = {t}\n"));
    }
    if let Some(m) = s.max_upload_size {
        out.push_str(&format!("max_upload_size = {m}\n"));
    }
    out.push_str(&format!(
        "upload_reply = {}\nnotification = \"by-value\"\nsession_state = \"durable\"\n\n",
        s.upload_reply == Some(true)
    ));
    out.push_str("[clients]\ncount = 10\nfile_size = 1048576\nstart_spread_s = 10\n\n");
    out.push_str("[[fault]]\npoint = \"after-forward\"\nnode = \"node-1\"\naction = \"crash\"\nrestart_after_s = 3600\noptional = true\n");
    out
}

/// The findings in words, for a terminal or `report.md`.
pub fn to_text(f: &Findings) -> String {
    let mut o = format!(
        "bitsfarm probe {}: {} of at most {} requests\n\nfacts\n",
        f.url, f.requests, f.max_requests
    );
    for fact in &f.facts {
        let mark = match fact.holds {
            Some(true) => "holds",
            Some(false) => "FAILS",
            None => "  n/a",
        };
        o.push_str(&format!("  {mark}  {:<9} {}\n", fact.id, fact.title));
        if fact.holds != Some(true) {
            o.push_str(&format!("                   {}\n", fact.evidence));
        }
    }
    let s = &f.settings;
    let opt = |v: Option<String>| v.unwrap_or_else(|| "unknown".into());
    o.push_str("\nsettings\n");
    o.push_str(&format!(
        "  BITSHostId                 {}\n",
        s.host_id.clone().unwrap_or_else(|| "unset".into())
    ));
    o.push_str(&format!(
        "  BITSHostIdFallbackTimeout  {}\n",
        opt(s.fallback_timeout_s.map(|t| format!("{t} s")))
    ));
    o.push_str(&format!(
        "  BITSMaximumUploadSize      {}\n",
        match s.max_upload_size_range {
            Some((lo, hi)) => format!("{lo} bytes (refused at {hi})"),
            None => "no limit found (or not probed)".into(),
        }
    ));
    o.push_str(&format!(
        "  largest fragment           {}\n",
        match s.max_fragment_size_range {
            Some((lo, hi)) => format!("{lo} bytes (413 at {hi})"),
            None => "no limit found (or not probed)".into(),
        }
    ));
    o.push_str(&format!(
        "  upload-reply offered       {}\n",
        opt(s.upload_reply.map(|b| b.to_string()))
    ));
    o.push_str(&format!(
        "  sessions across connections found on {} of {} fresh connections ({})\n",
        s.sessions_found,
        s.connections_tried,
        match s.sessions_shared {
            Some(true) => "shared, or one node",
            Some(false) => "not shared",
            None => "unknown",
        }
    ));
    o.push_str(&format!(
        "  nodes seen                 {}\n",
        match (s.nodes_seen, s.nodes_estimated) {
            (Some(n), false) => format!("{n} (distinct Host-Ids)"),
            (Some(n), true) => format!("~{n} (estimated from session visibility)"),
            (None, _) => "unknown".into(),
        }
    ));
    o.push_str(&format!(
        "  session ids                {}\n",
        opt(s.session_id_format.clone())
    ));
    o.push_str("\nrisks\n");
    for r in &f.risks {
        o.push_str(&format!("  [{}] {}\n", r.severity, r.text));
    }
    o
}
