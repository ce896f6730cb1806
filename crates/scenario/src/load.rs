//! Reading scenario files: TOML syntax, unknown keys, and the checks serde cannot do, each
//! reported as `file:line: key: what is wrong`.

use std::{fmt, path::Path};

use toml::de::{DeTable, DeValue};

use crate::{
    expect::{Expr, PER_FILE, TOTALS},
    spec::{Action, ExpectValue, Scenario},
};

/// Why a scenario cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// The file (or `<name>` for an embedded scenario).
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The key, dotted (`fault[2].status`), when known.
    pub key: Option<String>,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        write!(f, ": ")?;
        if let Some(k) = &self.key {
            write!(f, "{k}: ")?;
        }
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for LoadError {}

/// A key path inside the document.
#[derive(Debug, Clone)]
enum Seg {
    Key(&'static str),
    Index(usize),
    Name(String),
}

struct Problem {
    path: Vec<Seg>,
    message: String,
}

fn problem(path: Vec<Seg>, message: impl Into<String>) -> Problem {
    Problem {
        path,
        message: message.into(),
    }
}

/// Reads a scenario file.
pub fn load_path(path: &Path) -> Result<Scenario, LoadError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| LoadError {
        file: file.clone(),
        line: None,
        key: None,
        message: format!("cannot read the scenario: {e}"),
    })?;
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    load_str(&text, &file, &stem)
}

/// Reads a scenario from text; `origin` names it in errors, `default_name` is used when the
/// file sets no `name`.
pub fn load_str(text: &str, origin: &str, default_name: &str) -> Result<Scenario, LoadError> {
    let mut scenario: Scenario = toml::from_str(text).map_err(|e| LoadError {
        file: origin.to_owned(),
        line: e.span().map(|s| line_of(text, s.start)),
        key: None,
        message: e.message().trim().to_owned(),
    })?;
    if scenario.name.is_empty() {
        scenario.name = default_name.to_owned();
    }
    if let Some(p) = validate(&scenario).into_iter().next() {
        let key = render(&p.path);
        return Err(LoadError {
            file: origin.to_owned(),
            line: locate(text, &p.path),
            key: Some(key),
            message: p.message,
        });
    }
    Ok(scenario)
}

/// Checks a fault rule added to a running farm (the live farm's control API) as the loader
/// would check it as the next `[[fault]]` table of `s`: each problem as `key: what is wrong`.
/// Times are bounded by the loader's longest deadline, not the scenario's (a live farm runs
/// until it is stopped).
pub fn check_added_fault(s: &Scenario, f: &crate::spec::Fault) -> Result<(), String> {
    if s.faults.len() >= limits::FAULTS {
        return Err(format!("at most {} rules", limits::FAULTS));
    }
    let mut with = s.clone();
    with.deadline_days = limits::DEADLINE_DAYS;
    with.expect.clear();
    let index = with.faults.len();
    with.faults.push(f.clone());
    let problems: Vec<String> = validate(&with)
        .into_iter()
        .filter(
            |p| matches!(p.path.get(..2), Some([Seg::Key("fault"), Seg::Index(i)]) if *i == index),
        )
        .map(|p| match p.path.get(2..) {
            Some(rest) if !rest.is_empty() => format!("{}: {}", render(rest), p.message),
            _ => p.message,
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

fn render(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Name(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|&b| b == b'\n')
        .count()
        + 1
}

/// The line of the deepest part of `path` present in the document.
fn locate(text: &str, path: &[Seg]) -> Option<usize> {
    let doc = DeTable::parse(text).ok()?;
    let mut table: &DeTable<'_> = doc.get_ref();
    let mut best: Option<usize> = None;
    let mut pending_array: Option<&[toml::Spanned<DeValue<'_>>]> = None;
    for seg in path {
        match seg {
            Seg::Index(i) => {
                let item = pending_array?.get(*i)?;
                best = Some(item.span().start);
                match item.get_ref() {
                    DeValue::Table(t) => table = t,
                    _ => return best.map(|o| line_of(text, o)),
                }
                pending_array = None;
            }
            Seg::Key(_) | Seg::Name(_) => {
                let name = match seg {
                    Seg::Key(k) => *k,
                    Seg::Name(k) => k.as_str(),
                    Seg::Index(_) => unreachable!(),
                };
                let Some((k, v)) = table.iter().find(|(k, _)| k.get_ref().as_ref() == name) else {
                    break;
                };
                best = Some(k.span().start);
                match v.get_ref() {
                    DeValue::Table(t) => table = t,
                    DeValue::Array(a) => pending_array = Some(a),
                    _ => break,
                }
            }
        }
    }
    best.map(|o| line_of(text, o))
}

/// The upper bounds a scenario file must respect, so that memory and time stay bounded for any
/// file the loader accepts (see the "Limits" section of [`crate::spec`]).
pub mod limits {
    /// Longest `name`, characters.
    pub const NAME_LEN: usize = 64;
    /// Longest `description`, bytes.
    pub const DESCRIPTION_LEN: usize = 1000;
    /// Longest `deadline_days`.
    pub const DEADLINE_DAYS: f64 = 3650.0;
    /// Longest timeout or interval in whole seconds (`*_s` keys of `[farm]` and `[clients]`):
    /// 10 years.
    pub const SECONDS: u64 = 3650 * 86_400;
    /// Most clients, and most files per client.
    pub const CLIENTS: u32 = 100_000;
    /// Most files in a run (`count` × `files_per_client`).
    pub const FILES: u64 = 1_000_000;
    /// Largest file and largest fragment, bytes.
    pub const FILE_SIZE: u64 = 1 << 30;
    /// Most fragments per file (the largest file size over the fragment size).
    pub const FRAGMENTS_PER_FILE: u64 = 1 << 20;
    /// Most fragments in a run (every file, each sent once).
    pub const FRAGMENTS: u64 = 10_000_000;
    /// Most bytes the clients may have in flight at once (`count` × the largest file size):
    /// nodes hold a session's bytes until it completes.
    pub const BYTES_IN_FLIGHT: u64 = 4 << 30;
    /// Most fault rules.
    pub const FAULTS: usize = 1000;
    /// Largest network window, bytes.
    pub const WINDOW_BYTES: u64 = 64 << 20;
}

fn node_names(s: &Scenario) -> Vec<String> {
    (1..=s.farm.nodes).map(|i| format!("node-{i}")).collect()
}

fn validate(s: &Scenario) -> Vec<Problem> {
    use Seg::{Index, Key};
    let mut out = Vec::new();
    let mut check = |ok: bool, path: Vec<Seg>, msg: &str| {
        if !ok {
            out.push(problem(path, msg));
        }
    };
    check(
        !s.name.is_empty()
            && s.name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        vec![Key("name")],
        "use letters, digits, - and _ only",
    );
    check(
        s.name.chars().count() <= limits::NAME_LEN,
        vec![Key("name")],
        &format!("must be at most {} characters", limits::NAME_LEN),
    );
    check(
        s.description.len() <= limits::DESCRIPTION_LEN,
        vec![Key("description")],
        &format!(
            "must be at most {} bytes (one line)",
            limits::DESCRIPTION_LEN
        ),
    );
    check(
        s.deadline_days > 0.0 && s.deadline_days <= limits::DEADLINE_DAYS,
        vec![Key("deadline_days")],
        "must be in (0, 3650]",
    );
    let deadline_s = if s.deadline_days > 0.0 && s.deadline_days <= limits::DEADLINE_DAYS {
        s.deadline_days * 86_400.0
    } else {
        limits::DEADLINE_DAYS * 86_400.0
    };
    let seconds_msg = format!("must be at most {} (10 years)", thousands(limits::SECONDS));
    let f = &s.farm;
    check(
        (1..=64).contains(&f.nodes),
        vec![Key("farm"), Key("nodes")],
        "must be 1 to 64",
    );
    check(
        !(f.upload_reply && f.notification == node::NotificationType::None),
        vec![Key("farm"), Key("upload_reply")],
        "upload-reply needs notification = \"by-reference\" or \"by-value\" (an application produces the reply)",
    );
    for (k, v) in [
        ("app_deadline_s", f.app_deadline_s),
        ("cleanup_interval_s", f.cleanup_interval_s),
        ("idle_timeout_s", f.idle_timeout_s),
    ] {
        check(v > 0, vec![Key("farm"), Key(k)], "must be greater than 0");
    }
    for (k, v) in [
        ("fallback_timeout_s", f.fallback_timeout_s),
        ("session_timeout_s", f.session_timeout_s),
        ("cleanup_interval_s", f.cleanup_interval_s),
        ("app_deadline_s", f.app_deadline_s),
        ("idle_timeout_s", f.idle_timeout_s),
    ] {
        check(
            v <= limits::SECONDS,
            vec![Key("farm"), Key(k)],
            &seconds_msg,
        );
    }
    let c = &s.clients;
    check(
        (1..=limits::CLIENTS).contains(&c.count),
        vec![Key("clients"), Key("count")],
        "must be 1 to 100,000",
    );
    check(
        (1..=limits::CLIENTS).contains(&c.files_per_client),
        vec![Key("clients"), Key("files_per_client")],
        "must be 1 to 100,000",
    );
    let files = u64::from(c.count) * u64::from(c.files_per_client);
    check(
        files <= limits::FILES,
        vec![Key("clients"), Key("files_per_client")],
        "count × files_per_client must be at most 1,000,000",
    );
    check(
        c.file_size <= limits::FILE_SIZE,
        vec![Key("clients"), Key("file_size")],
        "must be at most 1 GiB",
    );
    if let Some(max) = c.file_size_max {
        check(
            max >= c.file_size && max <= limits::FILE_SIZE,
            vec![Key("clients"), Key("file_size_max")],
            "must be at least file_size and at most 1 GiB",
        );
    }
    check(
        c.fragment_size > 0 && c.fragment_size <= limits::FILE_SIZE,
        vec![Key("clients"), Key("fragment_size")],
        "must be 1 byte to 1 GiB",
    );
    if let Some(max) = c.fragment_size_max {
        check(
            max >= c.fragment_size && max <= limits::FILE_SIZE,
            vec![Key("clients"), Key("fragment_size_max")],
            "must be at least fragment_size and at most 1 GiB",
        );
    }
    let largest = c.file_size_max.unwrap_or(c.file_size).max(c.file_size);
    if c.fragment_size > 0 && largest <= limits::FILE_SIZE {
        let per_file = largest.div_ceil(c.fragment_size).max(1);
        if per_file > limits::FRAGMENTS_PER_FILE {
            check(
                false,
                vec![Key("clients"), Key("fragment_size")],
                &format!(
                    "{} fragments per file: at most {} (use larger fragments)",
                    thousands(per_file),
                    thousands(limits::FRAGMENTS_PER_FILE)
                ),
            );
        } else if files <= limits::FILES && files * per_file > limits::FRAGMENTS {
            check(
                false,
                vec![Key("clients"), Key("fragment_size")],
                &format!(
                    "{} fragments in all (files × fragments per file): at most {} per run (use fewer files or larger fragments)",
                    thousands(files * per_file),
                    thousands(limits::FRAGMENTS)
                ),
            );
        }
        if c.count <= limits::CLIENTS && u64::from(c.count) * largest > limits::BYTES_IN_FLIGHT {
            check(
                false,
                vec![Key("clients"), Key("count")],
                &format!(
                    "{} clients × {} bytes may hold {} bytes at once: at most 4 GiB (use fewer clients or smaller files)",
                    thousands(u64::from(c.count)),
                    thousands(largest),
                    thousands(u64::from(c.count) * largest)
                ),
            );
        }
    }
    check(
        c.start_spread_s >= 0.0 && c.start_spread_s <= deadline_s,
        vec![Key("clients"), Key("start_spread_s")],
        "must be 0 or more, and at most the deadline",
    );
    for p in client_timeouts(
        "clients",
        [
            c.retry_delay_s,
            c.no_progress_timeout_s,
            c.connect_timeout_s,
            c.request_timeout_s,
        ],
    ) {
        check(false, p.path, &p.message);
    }
    check(
        s.network.latency_ms <= 60_000,
        vec![Key("network"), Key("latency_ms")],
        "must be at most 60,000",
    );
    if let Some(url) = &s.backend.reply_url {
        check(
            s.farm.upload_reply,
            vec![Key("backend"), Key("reply_url")],
            "needs farm.upload_reply = true",
        );
        check(
            url.len() <= 2048 && transport::url::parse(url).is_ok(),
            vec![Key("backend"), Key("reply_url")],
            "must be an http:// URL of at most 2,048 characters",
        );
    }
    check(
        s.rogues.count <= 16,
        vec![Key("rogues"), Key("count")],
        "must be at most 16",
    );
    check(
        s.rogues.requests <= 10_000,
        vec![Key("rogues"), Key("requests")],
        "must be at most 10,000",
    );
    check(
        s.network.jitter_ms <= 60_000,
        vec![Key("network"), Key("jitter_ms")],
        "must be at most 60,000",
    );
    check(
        (1024..=limits::WINDOW_BYTES).contains(&s.network.window_bytes),
        vec![Key("network"), Key("window_bytes")],
        "must be 1024 to 67,108,864",
    );
    check(
        s.faults.len() <= limits::FAULTS,
        vec![Key("fault")],
        "at most 1,000 rules",
    );

    let nodes = node_names(s);
    let is_host = |n: &str| nodes.iter().any(|x| x == n) || n == "backend";
    for (i, r) in s.faults.iter().enumerate() {
        let at = |k: &'static str| vec![Key("fault"), Index(i), Key(k)];
        let here = vec![Key("fault"), Index(i)];
        match (r.point, r.at_s) {
            (None, None) => out.push(problem(
                here.clone(),
                "needs a trigger: point = \"<fault point>\" or at_s = <seconds>",
            )),
            (Some(_), Some(_)) => out.push(problem(
                at("at_s"),
                "a rule has one trigger: point or at_s, not both",
            )),
            _ => {}
        }
        let Some(action) = r.action else {
            out.push(problem(here, "needs action = crash | power-cut | drop-response | delay | fail | page | partition | restart | host-id | cancel | panic | disk-full | io-error"));
            continue;
        };
        if let Some(t) = r.at_s
            && !(t >= 0.0 && t <= deadline_s)
        {
            out.push(problem(
                at("at_s"),
                "must be 0 or more, and at most the deadline",
            ));
        }
        if let Some(n) = &r.node
            && !is_host(n)
            && action != Action::Cancel
        {
            out.push(problem(
                at("node"),
                format!(
                    "no such node: {n:?} (this farm has {} and backend)",
                    nodes.join(", ")
                ),
            ));
        }
        if let Some(point) = r.point
            && let Some(n) = &r.node
        {
            if point.is_backend() && n != "backend" {
                out.push(problem(
                    at("node"),
                    format!("{point} happens on the backend, not on {n}"),
                ));
            }
            if !point.is_backend() && n == "backend" && action != Action::Partition {
                out.push(problem(
                    at("node"),
                    format!("{point} happens on nodes, not on the backend"),
                ));
            }
        }
        if r.nth == Some(0) {
            out.push(problem(at("nth"), "counts from 1"));
        }
        if let Some(code) = &r.code {
            let parsed = code
                .strip_prefix("0x")
                .and_then(|h| u32::from_str_radix(h, 16).ok());
            if parsed.is_none() {
                out.push(problem(
                    at("code"),
                    "must be an HRESULT in hex, like \"0x80200020\"",
                ));
            }
            if action != Action::Fail || r.point.is_some_and(|p| p.is_backend()) {
                out.push(problem(at("code"), "code goes with fail at a node's point"));
            }
        }
        if r.nth.is_some() && r.probability.is_some() {
            out.push(problem(
                at("probability"),
                "use nth or probability, not both",
            ));
        }
        if let Some(p) = r.probability
            && !(p > 0.0 && p <= 1.0)
        {
            out.push(problem(at("probability"), "must be in (0, 1]"));
        }
        if r.at_s.is_some()
            && (r.nth.is_some()
                || r.probability.is_some()
                || r.packet.is_some()
                || r.file.is_some())
        {
            out.push(problem(here.clone(), "nth, probability, packet and file filter fault-point hits; a timed rule fires once"));
        }
        let needs_duration = matches!(action, Action::Delay | Action::Partition | Action::DiskFull);
        match r.duration_s {
            Some(d) if !(d > 0.0 && d <= deadline_s) => out.push(problem(
                at("duration_s"),
                "must be greater than 0, and at most the deadline",
            )),
            None if needs_duration => out.push(problem(
                at("duration_s"),
                format!("{} needs duration_s", action.name()),
            )),
            _ => {}
        }
        if let Some(d) = r.restart_after_s
            && !(d >= 0.0 && d <= deadline_s)
        {
            out.push(problem(
                at("restart_after_s"),
                "must be 0 or more, and at most the deadline",
            ));
        }
        match action {
            Action::Crash | Action::PowerCut | Action::Restart
                if r.at_s.is_some() && r.node.is_none() =>
            {
                out.push(problem(
                    at("node"),
                    format!("a timed {} needs node = \"<name>\"", action.name()),
                ));
            }
            Action::DropResponse | Action::Delay | Action::Fail | Action::Page
                if r.point.is_none() =>
            {
                out.push(problem(
                    at("point"),
                    format!("{} acts on a request: give a point", action.name()),
                ));
            }
            Action::DropResponse if r.point.is_some_and(|p| p.is_backend()) => {
                out.push(problem(
                    at("point"),
                    "drop-response cuts a client's connection: use a node fault point",
                ));
            }
            Action::Fail | Action::Page => match r.status {
                Some(st) if (100..=599).contains(&st) => {}
                Some(_) => out.push(problem(at("status"), "must be an HTTP status, 100 to 599")),
                None => out.push(problem(
                    at("status"),
                    format!("{} needs status = <HTTP status>", action.name()),
                )),
            },
            Action::Cancel => match (&r.node, r.at_s) {
                (_, None) => out.push(problem(at("at_s"), "cancel is timed: give at_s")),
                (Some(c), _) if is_client(s, c) => {}
                _ => out.push(problem(
                    at("node"),
                    "cancel needs node = \"<client>\" (c00, c01, ...)",
                )),
            },
            Action::Partition => {
                if r.point.is_none() && r.node.is_none() {
                    out.push(problem(
                        at("node"),
                        "a timed partition needs node = \"<name>\"",
                    ));
                }
                match &r.peer {
                    None => out.push(problem(
                        at("peer"),
                        "partition needs peer = \"<name>\" (a node, backend, or a client like c00)",
                    )),
                    Some(p) if !(is_host(p) || is_client(s, p)) => {
                        out.push(problem(at("peer"), format!("no such party: {p:?}")))
                    }
                    _ => {}
                }
            }
            Action::DiskFull => match (r.point, &r.node) {
                (Some(p), _) if p.is_backend() => out.push(problem(
                    at("point"),
                    "disk-full fills a node's disk: use a node fault point",
                )),
                (None, None) => out.push(problem(
                    at("node"),
                    "a timed disk-full needs node = \"<name>\"",
                )),
                (None, Some(n)) if n == "backend" => out.push(problem(
                    at("node"),
                    "disk-full fills a node's disk, not the backend's",
                )),
                _ => {}
            },
            Action::IoError
                if !matches!(
                    r.point,
                    Some(probe::FaultPoint::StorageWrite | probe::FaultPoint::StorageRead)
                ) =>
            {
                out.push(problem(
                    at("point"),
                    "io-error fails a storage access: point = \"storage-write\" or \"storage-read\"",
                ))
            }
            Action::HostId if r.enabled.is_none() => out.push(problem(
                at("enabled"),
                "host-id needs enabled = true or false",
            )),
            _ => {}
        }
    }
    validate_workload(s, deadline_s, &mut out);
    validate_failures(s, deadline_s, &mut out);
    for (k, v) in &s.expect {
        let path = vec![Key("expect"), Seg::Name(k.clone())];
        if !TOTALS.contains(&k.as_str()) && !PER_FILE.contains(&k.as_str()) {
            out.push(problem(
                path.clone(),
                format!(
                    "unknown metric; use one of {}, {}",
                    TOTALS.join(", "),
                    PER_FILE.join(", ")
                ),
            ));
        }
        if let ExpectValue::Expr(e) = v
            && let Err(why) = Expr::parse(e)
        {
            out.push(problem(path, why.to_string()));
        }
    }
    out
}

/// Most uploads a `[workload]` may bring in one run.
pub const MAX_UPLOADS: f64 = 10_000_000.0;

fn validate_workload(s: &Scenario, deadline_s: f64, out: &mut Vec<Problem>) {
    use Seg::Key;
    let Some(w) = &s.workload else {
        return;
    };
    let at = |k: &'static str| vec![Key("workload"), Key(k)];
    let mut check = |ok: bool, k: &'static str, msg: String| {
        if !ok {
            out.push(problem(at(k), msg));
        }
    };
    check(
        w.duration_days > 0.0 && w.duration_days * 86_400.0 <= deadline_s,
        "duration_days",
        format!(
            "must be greater than 0 and at most deadline_days ({}): uploads still running at the deadline fail the run",
            s.deadline_days
        ),
    );
    check(
        w.uploads_per_hour > 0.0 && w.uploads_per_hour <= 1_000_000.0,
        "uploads_per_hour",
        "must be greater than 0 and at most 1,000,000".into(),
    );
    let expected = w.uploads_per_hour * 24.0 * w.duration_days;
    check(
        expected <= MAX_UPLOADS,
        "uploads_per_hour",
        format!(
            "{} uploads expected (uploads_per_hour × 24 × duration_days): at most {} per run",
            thousands(expected as u64),
            thousands(MAX_UPLOADS as u64)
        ),
    );
    if let Some(p) = &w.daily_profile {
        check(
            p.len() == 24
                && p.iter().all(|x| x.is_finite() && *x >= 0.0)
                && p.iter().sum::<f64>() > 0.0,
            "daily_profile",
            format!(
                "needs 24 weights (hours 0-23), none negative, not all 0 (has {})",
                p.len()
            ),
        );
    }
    check(
        (1..=1_000_000).contains(&w.machines),
        "machines",
        "must be 1 to 1,000,000".into(),
    );
    if let Err(why) = crate::dist::check(&w.file_size, 0.0, limits::FILE_SIZE as f64) {
        check(false, "file_size", format!("{why} (bytes, at most 1 GiB)"));
    }
    check(
        w.fragment_size > 0 && w.fragment_size <= limits::FILE_SIZE,
        "fragment_size",
        "must be 1 byte to 1 GiB".into(),
    );
    if let Some(max) = w.fragment_size_max {
        check(
            max >= w.fragment_size && max <= limits::FILE_SIZE,
            "fragment_size_max",
            "must be at least fragment_size and at most 1 GiB".into(),
        );
    }
    if w.fragment_size > 0
        && crate::dist::check(&w.file_size, 0.0, limits::FILE_SIZE as f64).is_ok()
    {
        let high = crate::dist::Sampler::of(&w.file_size)
            .high()
            .min(limits::FILE_SIZE as f64) as u64;
        let per_file = high.div_ceil(w.fragment_size).max(1);
        check(
            per_file <= limits::FRAGMENTS_PER_FILE,
            "fragment_size",
            format!(
                "{} fragments per file: at most {} (use larger fragments)",
                thousands(per_file),
                thousands(limits::FRAGMENTS_PER_FILE)
            ),
        );
    }
    out.extend(client_timeouts(
        "workload",
        [
            w.retry_delay_s,
            w.no_progress_timeout_s,
            w.connect_timeout_s,
            w.request_timeout_s,
        ],
    ));
}

/// The client timeouts of `[clients]` or `[workload]` (`retry_delay_s`,
/// `no_progress_timeout_s`, `connect_timeout_s`, `request_timeout_s`, in that order): the
/// last two above 0, all at most 10 years.
fn client_timeouts(section: &'static str, values: [u64; 4]) -> Vec<Problem> {
    let mut out = Vec::new();
    const NAMES: [&str; 4] = [
        "retry_delay_s",
        "no_progress_timeout_s",
        "connect_timeout_s",
        "request_timeout_s",
    ];
    for (i, (k, v)) in NAMES.into_iter().zip(values).enumerate() {
        let at = || vec![Seg::Key(section), Seg::Key(k)];
        if i >= 2 && v == 0 {
            out.push(problem(at(), "must be greater than 0"));
        }
        if v > limits::SECONDS {
            out.push(problem(
                at(),
                format!("must be at most {} (10 years)", thousands(limits::SECONDS)),
            ));
        }
    }
    out
}

/// Most `[[failure]]` processes in one scenario.
pub const MAX_FAILURES: usize = 100;

fn validate_failures(s: &Scenario, deadline_s: f64, out: &mut Vec<Problem>) {
    use crate::spec::FailureKind as K;
    use Seg::{Index, Key};
    if s.failures.len() > MAX_FAILURES {
        out.push(problem(vec![Key("failure")], "at most 100 processes"));
    }
    let nodes = node_names(s);
    for (i, f) in s.failures.iter().enumerate() {
        let at = |k: &'static str| vec![Key("failure"), Index(i), Key(k)];
        let Some(kind) = f.kind else {
            out.push(problem(
                vec![Key("failure"), Index(i)],
                "needs kind = node-crash | power-cut | app-error | app-slow | app-crash | connection-reset | partition | pool-recycle",
            ));
            continue;
        };
        let given: Vec<&'static str> = [
            ("node", f.node.is_some()),
            ("mtbf_h", f.mtbf_h.is_some()),
            ("repair_s", f.repair_s.is_some()),
            ("probability", f.probability.is_some()),
            ("status", f.status.is_some()),
            ("per_request", f.per_request.is_some()),
            ("per_mib", f.per_mib.is_some()),
            ("duration_s", f.duration_s.is_some()),
            ("every_min", f.every_min.is_some()),
            ("overlap", f.overlap.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, on)| on.then_some(k))
        .collect();
        // (keys it takes, keys it needs; a `|` entry needs one of them)
        let (takes, needs): (&[&str], &[&str]) = match kind {
            K::NodeCrash | K::PowerCut => (&["node", "mtbf_h", "repair_s"], &["mtbf_h"]),
            K::AppError => (&["probability", "status"], &["probability"]),
            K::AppSlow => (&["probability", "duration_s"], &["duration_s"]),
            K::AppCrash => (
                &["probability", "mtbf_h", "repair_s"],
                &["probability|mtbf_h"],
            ),
            K::ConnectionReset => (
                &["node", "per_request", "per_mib"],
                &["per_request|per_mib"],
            ),
            K::Partition => (&["node", "mtbf_h", "duration_s"], &["mtbf_h", "duration_s"]),
            K::PoolRecycle => (&["node", "every_min", "overlap", "duration_s"], &[]),
        };
        for k in &given {
            if !takes.contains(k) {
                out.push(problem(
                    at(k),
                    format!(
                        "{k} does not go with kind = \"{}\" (it takes {})",
                        kind.name(),
                        takes.join(", ")
                    ),
                ));
            }
        }
        for need in needs {
            if !need.split('|').any(|k| given.contains(&k)) {
                out.push(problem(
                    vec![Key("failure"), Index(i)],
                    format!("{} needs {}", kind.name(), need.replace('|', " or ")),
                ));
            }
        }
        if let Some(n) = &f.node
            && !nodes.contains(n)
        {
            out.push(problem(
                at("node"),
                format!("no such node: {n:?} (this farm has {})", nodes.join(", ")),
            ));
        }
        if let Some(h) = f.mtbf_h
            && !(h > 0.0 && h <= 1_000_000.0)
        {
            out.push(problem(
                at("mtbf_h"),
                "must be greater than 0 and at most 1,000,000 hours",
            ));
        }
        for (k, p) in [
            ("probability", f.probability),
            ("per_request", f.per_request),
            ("per_mib", f.per_mib),
        ] {
            if let Some(p) = p
                && !(p > 0.0 && p <= 1.0)
            {
                out.push(problem(at(k), "must be in (0, 1]"));
            }
        }
        if let Some(st) = f.status
            && !(400..=599).contains(&st)
        {
            out.push(problem(
                at("status"),
                "must be an HTTP error status, 400 to 599",
            ));
        }
        for (k, d) in [("repair_s", &f.repair_s), ("duration_s", &f.duration_s)] {
            if let Some(d) = d
                && let Err(why) = crate::dist::check(d, 0.0, deadline_s)
            {
                out.push(problem(
                    at(k),
                    format!("{why} (seconds, at most the deadline)"),
                ));
            }
        }
        if let Some(m) = f.every_min
            && !(1.0..=1_000_000.0).contains(&m)
        {
            out.push(problem(at("every_min"), "must be 1 to 1,000,000 minutes"));
        }
    }
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// Client names: `c00`, `c01`, ... (at least two digits).
pub fn client_name(i: u32, count: u32) -> String {
    let width = count.saturating_sub(1).to_string().len().max(2);
    format!("c{i:0width$}")
}

fn is_client(s: &Scenario, name: &str) -> bool {
    (0..s.clients.count).any(|i| client_name(i, s.clients.count) == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> LoadError {
        load_str(text, "t.toml", "t").unwrap_err()
    }

    #[test]
    fn defaults_are_windows_and_iis_defaults() {
        let s = load_str("", "t.toml", "t").unwrap();
        assert_eq!(s.name, "t");
        assert_eq!(s.farm.fallback_timeout_s, 86_400);
        assert_eq!(s.farm.notification, node::NotificationType::None);
        assert!(!s.farm.host_id);
        assert_eq!(s.clients.retry_delay_s, 600);
        assert_eq!(s.clients.no_progress_timeout_s, 1_209_600);
        assert_eq!(s.farm.app_deadline_s, 300);
    }

    #[test]
    fn a_rule_added_to_a_running_farm_is_checked_like_a_table() {
        let s = load_str("deadline_days = 0.01\n[farm]\nnodes = 2\n", "t.toml", "t").unwrap();
        let rule = |json: &str| -> crate::spec::Fault { serde_json::from_str(json).unwrap() };
        // Past the scenario's deadline is fine: a live farm runs until it is stopped.
        let late = rule(r#"{"at_s": 5000, "node": "node-2", "action": "crash"}"#);
        assert_eq!(check_added_fault(&s, &late), Ok(()));
        let e = check_added_fault(
            &s,
            &rule(r#"{"point": "after-forward", "action": "crash", "node": "node-3"}"#),
        )
        .unwrap_err();
        assert!(e.starts_with("node: no such node"), "{e}");
        let e =
            check_added_fault(&s, &rule(r#"{"point": "request", "action": "delay"}"#)).unwrap_err();
        assert_eq!(e, "duration_s: delay needs duration_s");
        let e = check_added_fault(&s, &rule(r#"{"action": "crash"}"#)).unwrap_err();
        assert!(e.contains("needs a trigger"), "{e}");
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e = err("[farm]\nnodez = 3\n");
        assert_eq!((e.file.as_str(), e.line), ("t.toml", Some(2)));
        assert!(e.message.contains("nodez"), "{e}");
        let e = err("[farm]\nnodes = \"three\"\n");
        assert_eq!(e.line, Some(2));
        let e = err("[farm]\nnodes = 0\n");
        assert_eq!((e.line, e.key.as_deref()), (Some(2), Some("farm.nodes")));
        let e = err(
            "[[fault]]\npoint = \"after-forward\"\naction = \"crash\"\n\n[[fault]]\npoint = \"request\"\naction = \"fail\"\nstatus = 999\n",
        );
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(8), Some("fault[1].status"))
        );
        assert_eq!(
            e.to_string(),
            "t.toml:8: fault[1].status: must be an HTTP status, 100 to 599"
        );
        let e =
            err("[[fault]]\npoint = \"after-forward\"\nnode = \"node-9\"\naction = \"crash\"\n");
        assert_eq!(e.key.as_deref(), Some("fault[0].node"));
        assert!(e.message.contains("node-1, node-2, node-3"), "{e}");
        let e = err("[[fault]]\npoint = \"nowhere\"\naction = \"crash\"\n");
        assert_eq!(e.line, Some(2));
        let e = err("[expect]\nduplicates = 1\n");
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(2), Some("expect.duplicates"))
        );
        let e = err("[expect]\nlost = \"about none\"\n");
        assert_eq!(e.key.as_deref(), Some("expect.lost"));
        let e = err("[[fault]]\naction = \"crash\"\n");
        assert_eq!((e.line, e.key.as_deref()), (Some(1), Some("fault[0]")));
        let e = err("[farm]\nupload_reply = true\n");
        assert_eq!(e.key.as_deref(), Some("farm.upload_reply"));
        let e = err("this is not toml");
        assert_eq!(e.line, Some(1));
    }

    #[test]
    fn client_names_sort_and_pad() {
        assert_eq!(client_name(3, 10), "c03");
        assert_eq!(client_name(3, 1000), "c003");
    }
}
