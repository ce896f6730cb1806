//! Reading and writing report directories.

use std::{
    fs,
    io::{BufRead, BufReader, BufWriter, Write},
    path::{Path, PathBuf},
};

use scenario::{log::Record, summary::Summary};

use crate::sweep::{self, Plan, RunLine, SweepSummary};

/// Why a report could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// A file is not what bitsfarm wrote.
    #[error("{path}:{line}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// 1-based line (1 for whole-file JSON).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The directory holds neither a run nor a sweep.
    #[error(
        "{0}: neither a run report (summary.json + events.jsonl) nor a sweep (sweep.json + results.jsonl)"
    )]
    NotAReport(PathBuf),
    /// Shards do not merge.
    #[error(transparent)]
    Merge(#[from] sweep::MergeError),
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
    move |source| ReportError::Io {
        path: path.to_owned(),
        source,
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ReportError> {
    let text = fs::read(path).map_err(io(path))?;
    serde_json::from_slice(&text).map_err(|e| ReportError::Format {
        path: path.to_owned(),
        line: e.line(),
        message: e.to_string(),
    })
}

fn write_file(path: &Path, text: &[u8]) -> Result<(), ReportError> {
    fs::write(path, text).map_err(io(path))
}

/// Reads a JSON-lines file, one value per non-empty line.
fn read_lines<T: serde::de::DeserializeOwned>(
    path: &Path,
    mut each: impl FnMut(T),
) -> Result<(), ReportError> {
    let f = fs::File::open(path).map_err(io(path))?;
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let line = line.map_err(io(path))?;
        if line.trim().is_empty() {
            continue;
        }
        let v = serde_json::from_str(&line).map_err(|e| ReportError::Format {
            path: path.to_owned(),
            line: i + 1,
            message: e.to_string(),
        })?;
        each(v);
    }
    Ok(())
}

/// What kind of report a directory holds.
pub enum Kind {
    /// One run.
    Run,
    /// A sweep (or a shard of one).
    Sweep,
}

/// Tells a run directory from a sweep directory.
pub fn kind(dir: &Path) -> Result<Kind, ReportError> {
    if dir.join("sweep.json").is_file() && dir.join("results.jsonl").is_file() {
        Ok(Kind::Sweep)
    } else if dir.join("summary.json").is_file() {
        Ok(Kind::Run)
    } else {
        Err(ReportError::NotAReport(dir.to_owned()))
    }
}

/// A sink that streams the event log to `path` as JSON lines; the error slot says whether a
/// write failed (a full disk must not abort the run; it is reported after it).
type Failed = std::sync::Arc<std::sync::Mutex<Option<std::io::Error>>>;

fn event_file(path: &Path, flush_each: bool) -> Result<(scenario::log::Sink, Failed), ReportError> {
    use std::io::Write as _;
    let mut w = std::io::BufWriter::new(fs::File::create(path).map_err(io(path))?);
    let failed: Failed = Failed::default();
    let f = failed.clone();
    let sink: scenario::log::Sink = Box::new(move |rec| {
        let wrote = serde_json::to_writer(&mut w, rec)
            .map_err(std::io::Error::from)
            .and_then(|()| w.write_all(b"\n"))
            .and_then(|()| if flush_each { w.flush() } else { Ok(()) });
        if let Err(e) = wrote {
            f.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
        }
    });
    Ok((sink, failed))
}

/// Summarises a finished run into `dir`: `summary.json` (with its wall time), `report.md` and
/// `report.html` (the event log is there already).
fn conclude(
    sc: &scenario::Scenario,
    seed: u64,
    replay: String,
    dir: &Path,
    result: scenario::farm::RunResult,
    wall_time_ms: f64,
    failed: &Failed,
) -> Result<Summary, ReportError> {
    if let Some(e) = failed.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Err(io(&dir.join("events.jsonl"))(e));
    }
    let mut summary = scenario::check::summarize(sc, seed, &result, replay);
    summary.wall_time_ms = wall_time_ms;
    let json = serde_json::to_vec_pretty(&summary).expect("summaries serialize");
    write_file(&dir.join("summary.json"), &json)?;
    // The reports are written from the files: the run's own state (every file's track) is
    // let go first, so the two do not add up.
    drop(result);
    write_run_reports(dir)?;
    Ok(summary)
}

/// Runs a scenario once into a run directory: the event log streamed to `events.jsonl` as it
/// is recorded, then `summary.json` (with the run's wall time), `report.md` and `report.html`.
/// `replay` is the command that replays the run.
pub fn run_into(
    sc: &scenario::Scenario,
    seed: u64,
    replay: String,
    dir: &Path,
) -> Result<Summary, ReportError> {
    fs::create_dir_all(dir).map_err(io(dir))?;
    // The simulated run drops its log (flushing it) when it ends. A workload's log (millions
    // of events a simulated week) is hashed, not kept: its duplicates' chains are in the
    // summary.
    let events = dir.join("events.jsonl");
    let (sink, failed) = if sc.workload.is_some() {
        match fs::remove_file(&events) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&events)(e)),
            _ => {}
        }
        (None, Failed::default())
    } else {
        let (sink, failed) = event_file(&events, false)?;
        (Some(sink), failed)
    };
    let started = std::time::Instant::now();
    let result = scenario::farm::run(sc, seed, sink);
    let wall = started.elapsed().as_secs_f64() * 1000.0;
    conclude(sc, seed, replay, dir, result, wall, &failed)
}

/// [`run_into`] for the live farm ([`scenario::live::run`]), on the current (real-time)
/// runtime, for at most `timeout`.
pub async fn live_into(
    sc: &scenario::Scenario,
    seed: u64,
    replay: String,
    dir: &Path,
    timeout: std::time::Duration,
    net: scenario::live::LiveNet,
    extras: scenario::live::Extras,
) -> Result<Summary, ReportError> {
    fs::create_dir_all(dir).map_err(io(dir))?;
    // Live hosts outlive the run's end by a moment (their tasks stop with the runtime): each
    // record is flushed as it is written.
    let (sink, failed) = event_file(&dir.join("events.jsonl"), true)?;
    let started = std::time::Instant::now();
    let result = scenario::live::run(sc, seed, Some(sink), timeout, net, extras).await;
    let wall = started.elapsed().as_secs_f64() * 1000.0;
    conclude(sc, seed, replay, dir, result, wall, &failed)
}

/// A run recorded by something other than the farm (the proxy, which sees real servers):
/// its event log goes to `events.jsonl` in the directory as it happens, and [`Recording::finish`]
/// writes the summary and reports of a simulated run from its result.
pub struct Recording {
    dir: std::path::PathBuf,
    failed: Failed,
    started: std::time::Instant,
}

/// Opens `dir/events.jsonl` (each record flushed as written); the sink to record into.
pub fn record_into(dir: &Path) -> Result<(scenario::log::Sink, Recording), ReportError> {
    fs::create_dir_all(dir).map_err(io(dir))?;
    let (sink, failed) = event_file(&dir.join("events.jsonl"), true)?;
    Ok((
        sink,
        Recording {
            dir: dir.to_owned(),
            failed,
            started: std::time::Instant::now(),
        },
    ))
}

impl Recording {
    /// Summarises `result` (as a run of `sc`) and writes `summary.json`, `report.md` and
    /// `report.html`.
    pub fn finish(
        self,
        sc: &scenario::Scenario,
        seed: u64,
        replay: String,
        result: scenario::farm::RunResult,
    ) -> Result<Summary, ReportError> {
        let wall = self.started.elapsed().as_secs_f64() * 1000.0;
        conclude(sc, seed, replay, &self.dir, result, wall, &self.failed)
    }
}

/// Writes the directory of several runs: `summary.json` (the aggregate) and `report.md`.
pub fn write_aggregate(
    dir: &Path,
    aggregate: &scenario::summary::Aggregate,
) -> Result<(), ReportError> {
    fs::create_dir_all(dir).map_err(io(dir))?;
    let json = serde_json::to_vec_pretty(aggregate).expect("aggregates serialize");
    write_file(&dir.join("summary.json"), &json)?;
    write_file(
        &dir.join("report.md"),
        crate::markdown::aggregate(aggregate).as_bytes(),
    )
}

/// Writes `report.md` and `report.html` of a run directory from its `summary.json` and
/// `events.jsonl`.
pub fn write_run_reports(dir: &Path) -> Result<Summary, ReportError> {
    let summary: Summary = read_json(&dir.join("summary.json"))?;
    let mut builder = crate::timeline::Builder::new(&summary);
    let events = dir.join("events.jsonl");
    // A workload run keeps no event log (see `run_into`).
    if events.is_file() || summary.resolved.workload.is_none() {
        read_lines(&events, |rec: Record| builder.add(&rec))?;
    }
    let timeline = builder.finish();
    write_file(
        &dir.join("report.md"),
        crate::markdown::run(&summary).as_bytes(),
    )?;
    write_file(
        &dir.join("report.html"),
        crate::html::run(&summary, &timeline).as_bytes(),
    )?;
    Ok(summary)
}

/// Writes a sweep directory: `sweep.json`, `results.jsonl`, then its reports.
pub fn write_sweep(
    dir: &Path,
    plan: &Plan,
    lines: &[RunLine],
) -> Result<SweepSummary, ReportError> {
    fs::create_dir_all(dir).map_err(io(dir))?;
    write_file(
        &dir.join("sweep.json"),
        &serde_json::to_vec_pretty(plan).expect("plans serialize"),
    )?;
    let path = dir.join("results.jsonl");
    let f = fs::File::create(&path).map_err(io(&path))?;
    let mut w = BufWriter::new(f);
    for l in lines {
        serde_json::to_writer(&mut w, l).expect("lines serialize");
        w.write_all(b"\n").map_err(io(&path))?;
    }
    w.flush().map_err(io(&path))?;
    write_sweep_reports(dir)
}

/// Reads a sweep directory's plan and lines.
pub fn read_sweep(dir: &Path) -> Result<(Plan, Vec<RunLine>), ReportError> {
    let plan: Plan = read_json(&dir.join("sweep.json"))?;
    let mut lines = Vec::new();
    read_lines(&dir.join("results.jsonl"), |l: RunLine| lines.push(l))?;
    Ok((plan, lines))
}

/// Writes `summary.json`, `report.md` and `report.html` of a sweep directory from its
/// `sweep.json` and `results.jsonl`.
pub fn write_sweep_reports(dir: &Path) -> Result<SweepSummary, ReportError> {
    let (plan, lines) = read_sweep(dir)?;
    let summary = sweep::summarize(&plan, &lines);
    write_file(
        &dir.join("summary.json"),
        &serde_json::to_vec_pretty(&summary).expect("summaries serialize"),
    )?;
    write_file(
        &dir.join("report.md"),
        crate::markdown::sweep(&summary).as_bytes(),
    )?;
    write_file(
        &dir.join("report.html"),
        crate::html::sweep(&summary).as_bytes(),
    )?;
    Ok(summary)
}

/// Merges shard directories into `out`.
pub fn merge_sweeps(dirs: &[PathBuf], out: &Path) -> Result<SweepSummary, ReportError> {
    let mut parts = Vec::new();
    for d in dirs {
        let (plan, lines) = read_sweep(d)?;
        parts.push((d.display().to_string(), plan, lines));
    }
    let (plan, lines) = sweep::merge(parts)?;
    write_sweep(out, &plan, &lines)
}
