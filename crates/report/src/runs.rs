//! Kept runs: every run under the reports root gets a directory of its own and a line in
//! `runs.jsonl`, from which `index.html` (every run and sweep, newest first, linked) is
//! rewritten, and `latest` points at the newest run.
//!
//! A run id is `YYYYMMDD-HHMMSS-<what>` (UTC, the time the run started), `<what>` being the seed
//! (`s7`), the seed range (`s1-100`) or `live`, followed by a short hash of the `--set`
//! overrides when there are any, so a baseline and its what-if variants never share a
//! directory; a second run in the same second gets `-2`, `-3`, ...
//!
//! **Concurrency:** several processes may finish runs at once (a sharded sweep, tests): each
//! appends its line with one `write` to a file opened for appending, and replaces `index.html`
//! and `latest` by renaming a file of its own over them, so readers never see half a file.

use std::{
    fs,
    io::{self, Write as _},
    path::{Component, Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::{ReportError, escape, files::io};

/// The index's file of records, one JSON object per line.
pub const RECORDS: &str = "runs.jsonl";

/// What a kept directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunKind {
    /// One simulated run.
    Run,
    /// Several seeds of one scenario (`--runs N`), aggregated.
    Runs,
    /// A live farm (`bitsfarm farm`).
    Live,
    /// A proxy in front of real servers.
    Proxy,
    /// A sweep over settings.
    Sweep,
}

impl RunKind {
    fn name(self) -> &'static str {
        match self {
            RunKind::Run => "run",
            RunKind::Runs => "runs",
            RunKind::Live => "live",
            RunKind::Proxy => "proxy",
            RunKind::Sweep => "sweep",
        }
    }
}

/// One kept run, as `runs.jsonl` records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The directory's name.
    pub id: String,
    /// The directory, relative to the reports root, `/`-separated.
    pub dir: String,
    /// What it holds.
    pub kind: RunKind,
    /// The scenario's name.
    pub scenario: String,
    /// When it started, seconds since the Unix epoch (UTC).
    pub started_unix_s: u64,
    /// The `--set` overrides (a sweep: its varied keys).
    pub settings: Vec<String>,
    /// The seed, or the range of seeds (`1-100`).
    pub seeds: String,
    /// Every checked expectation and invariant held.
    pub ok: bool,
    /// Files uploaded.
    pub uploads: u64,
    /// Deliveries beyond the first of each file.
    pub duplicate_deliveries: u64,
    /// Effects beyond the first of each file (what dedupe prevents).
    pub duplicate_effects: u64,
    /// The report to open, relative to the run's directory.
    pub report: String,
    /// The command that replays it (empty for live runs, which do not replay).
    pub replay: String,
}

/// A run id: `YYYYMMDD-HHMMSS-<what>[-<hash of settings>]`.
pub fn run_id(started_unix_s: u64, what: &str, settings: &[String]) -> String {
    let mut id = format!("{}-{what}", compact_time(started_unix_s));
    if !settings.is_empty() {
        id.push_str(&format!("-{:06x}", fnv1a(&settings.join("\n")) & 0xff_ffff));
    }
    id
}

/// FNV-1a, 32 bits: a short stable hash (never changes between versions or machines).
fn fnv1a(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// Creates a new directory `parent/id` (or `parent/id-2`, ...) and returns it: a run never
/// writes into another run's directory.
pub fn fresh_dir(parent: &Path, id: &str) -> Result<PathBuf, ReportError> {
    fs::create_dir_all(parent).map_err(io(parent))?;
    for n in 1u32.. {
        let dir = if n == 1 {
            parent.join(id)
        } else {
            parent.join(format!("{id}-{n}"))
        };
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(&dir)(e)),
        }
    }
    unreachable!("u32 suffixes run out only after 4 billion runs in one second")
}

/// The reports root `dir` lies in, when it lies in `root` (its path relative to the root,
/// `/`-separated). Runs written elsewhere (`--out /tmp/x`) are not indexed.
pub fn relative_to(root: &Path, dir: &Path) -> Option<String> {
    let root = fs::canonicalize(root).ok()?;
    let dir = fs::canonicalize(dir).ok()?;
    let rel = dir.strip_prefix(&root).ok()?;
    let parts: Vec<String> = rel
        .components()
        .map(|c| match c {
            Component::Normal(s) => s.to_str().map(str::to_owned),
            _ => None,
        })
        .collect::<Option<_>>()?;
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Records a finished run: appends its line to `root/runs.jsonl`, points `root/latest` at it
/// (runs only, not sweeps) and rewrites `root/index.html`.
pub fn record(root: &Path, entry: &Entry) -> Result<(), ReportError> {
    let records = root.join(RECORDS);
    let mut line = serde_json::to_vec(entry).expect("entries serialize");
    line.push(b'\n');
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&records)
        .and_then(|mut f| f.write_all(&line))
        .map_err(io(&records))?;
    if entry.kind != RunKind::Sweep {
        point_latest(root, &entry.dir)?;
    }
    let (entries, _) = list(root)?;
    replace(&root.join("index.html"), index_html(&entries).as_bytes())
}

/// Writes `path` whole or not at all: a file of this process's own, renamed over it.
fn replace(path: &Path, text: &[u8]) -> Result<(), ReportError> {
    let tmp = tmp_name(path);
    fs::write(&tmp, text).map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))
}

fn tmp_name(path: &Path) -> PathBuf {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// `root/latest` becomes a symbolic link to `dir` (relative, so the tree can move).
fn point_latest(root: &Path, dir: &str) -> Result<(), ReportError> {
    let latest = root.join("latest");
    let tmp = tmp_name(&latest);
    let _ = fs::remove_file(&tmp);
    #[cfg(unix)]
    std::os::unix::fs::symlink(dir, &tmp).map_err(io(&tmp))?;
    #[cfg(not(unix))]
    fs::write(&tmp, dir).map_err(io(&tmp))?;
    fs::rename(&tmp, &latest).map_err(io(&latest))
}

/// Every recorded run whose directory still exists, oldest first, and how many lines of
/// `runs.jsonl` could not be read (a line cut short by a full disk, say): they are skipped,
/// never fatal.
pub fn list(root: &Path) -> Result<(Vec<Entry>, usize), ReportError> {
    let records = root.join(RECORDS);
    let text = match fs::read_to_string(&records) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(io(&records)(e)),
    };
    let mut entries = Vec::new();
    let mut unreadable = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<Entry>(line) {
            Ok(e) if safe_relative(&e.dir) && root.join(&e.dir).is_dir() => entries.push(e),
            Ok(_) => {}
            Err(_) => unreadable += 1,
        }
    }
    Ok((entries, unreadable))
}

/// A recorded directory names a place inside the root (the index links to it).
fn safe_relative(dir: &str) -> bool {
    !dir.is_empty()
        && Path::new(dir)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

/// `YYYYMMDD-HHMMSS`, UTC.
fn compact_time(unix_s: u64) -> String {
    let (y, m, d, hh, mm, ss) = civil(unix_s);
    format!("{y:04}{m:02}{d:02}-{hh:02}{mm:02}{ss:02}")
}

/// `YYYY-MM-DD HH:MM:SS UTC`.
pub fn readable_time(unix_s: u64) -> String {
    let (y, m, d, hh, mm, ss) = civil(unix_s);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02} UTC")
}

/// The UTC calendar date and time of a Unix time (the proleptic Gregorian calendar, from
/// Howard Hinnant's `civil_from_days`).
fn civil(unix_s: u64) -> (i64, u32, u32, u64, u64, u64) {
    let days = (unix_s / 86_400) as i64;
    let secs = unix_s % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, secs / 3600, secs / 60 % 60, secs % 60)
}

/// The verdict word of an entry.
pub fn verdict(e: &Entry) -> &'static str {
    if e.ok { "PASS" } else { "FAIL" }
}

/// The terminal listing of `bitsfarm runs`: newest first, aligned columns.
pub fn to_text(entries: &[Entry]) -> String {
    let header = [
        "started (UTC)",
        "kind",
        "scenario",
        "verdict",
        "uploads",
        "dup deliv",
        "dup effects",
        "settings",
        "directory",
    ];
    let rows: Vec<[String; 9]> = entries
        .iter()
        .rev()
        .map(|e| {
            [
                readable_time(e.started_unix_s)
                    .trim_end_matches(" UTC")
                    .to_owned(),
                e.kind.name().to_owned(),
                e.scenario.clone(),
                verdict(e).to_owned(),
                e.uploads.to_string(),
                e.duplicate_deliveries.to_string(),
                e.duplicate_effects.to_string(),
                if e.settings.is_empty() {
                    "-".to_owned()
                } else {
                    e.settings.join(" ")
                },
                e.dir.clone(),
            ]
        })
        .collect();
    let mut width = header.map(str::len);
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(width).enumerate() {
            // Numbers right-aligned; the last column unpadded.
            if i == cells.len() - 1 {
                s.push_str(c);
            } else if (4..=6).contains(&i) {
                s.push_str(&format!("{c:>w$}  "));
            } else {
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        s.trim_end().to_owned() + "\n"
    };
    let mut out = line(&header.map(str::to_owned));
    for r in &rows {
        out.push_str(&line(r));
    }
    out
}

/// `index.html`: every kept run and sweep, newest first, each linked to its report.
pub fn index_html(entries: &[Entry]) -> String {
    let mut rows = String::new();
    for e in entries.iter().rev() {
        let link = format!("{}/{}", e.dir, e.report);
        let settings = if e.settings.is_empty() {
            "shipped".to_owned()
        } else {
            e.settings
                .iter()
                .map(|s| format!("<code>{}</code>", escape(s)))
                .collect::<Vec<_>>()
                .join(" ")
        };
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num{}\">{}</td><td class=\"num\">{}</td>\
             <td><a href=\"{}\">{}</a></td></tr>\n",
            escape(&readable_time(e.started_unix_s)),
            e.kind.name(),
            escape(&e.scenario),
            settings,
            if e.ok { "pass" } else { "fail" },
            verdict(e),
            e.uploads,
            if e.duplicate_deliveries > 0 {
                " dup"
            } else {
                ""
            },
            e.duplicate_deliveries,
            e.duplicate_effects,
            escape(&link),
            escape(&e.id),
        ));
    }
    let body = if entries.is_empty() {
        "<p>No runs yet: <code>bitsfarm scenario crash-after-forward</code> makes one.</p>"
            .to_owned()
    } else {
        format!(
            "<p>{} kept runs and sweeps, newest first. Each row links to its report; \
             <code>latest</code> is the newest run.</p>\
             <table><tr><th>started</th><th>kind</th><th>scenario</th><th>settings</th>\
             <th>verdict</th><th>uploads</th><th>duplicate deliveries</th>\
             <th>duplicate effects</th><th>report</th></tr>\n{rows}</table>",
            entries.len()
        )
    };
    crate::html::page("bitsfarm runs", &format!("<h1>bitsfarm runs</h1>{body}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_time_matches_known_dates() {
        assert_eq!(compact_time(0), "19700101-000000");
        // 2000-02-29 12:34:56 UTC (a leap day in a century leap year).
        assert_eq!(compact_time(951_827_696), "20000229-123456");
        // 2026-11-27 15:39:49 UTC (`date -u -d @1795793989`).
        assert_eq!(readable_time(1_795_793_989), "2026-11-27 15:39:49 UTC");
    }

    #[test]
    fn run_ids_separate_settings_and_stay_stable() {
        let t = 951_827_696;
        assert_eq!(run_id(t, "s1", &[]), "20000229-123456-s1");
        let a = run_id(t, "s1", &["farm.host_id=true".into()]);
        let b = run_id(t, "s1", &["farm.host_id=false".into()]);
        assert_ne!(a, b);
        assert!(a.starts_with("20000229-123456-s1-") && a.len() == 25, "{a}");
        assert_eq!(a, run_id(t, "s1", &["farm.host_id=true".into()]));
    }

    #[test]
    fn unsafe_recorded_directories_are_not_listed() {
        assert!(safe_relative("crash/20000229-123456-s1"));
        assert!(!safe_relative("../elsewhere"));
        assert!(!safe_relative("/etc"));
        assert!(!safe_relative(""));
    }
}
