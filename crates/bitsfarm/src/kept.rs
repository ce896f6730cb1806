//! Kept runs from the command line's side: where a run's directory goes by default
//! (`reports/<scenario>/<run id>/`, never an earlier run's) and recording it in the index
//! ([`report::runs`]). The wall clock is read here, outside any simulation, only to name and
//! date directories.

use std::path::{Path, PathBuf};

use report::runs::{self, Entry, RunKind};
use scenario::summary::{Aggregate, Summary};

use crate::out::errln;

/// The reports root every default directory lies in.
pub const ROOT: &str = "reports";

/// Seconds since the Unix epoch, now.
pub fn now_unix_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Where a run writes: `out` when given (the user's own place, used as is), otherwise a new
/// directory `reports/<scenario>/<run id>/`.
pub fn run_dir(
    out: Option<&Path>,
    scenario: &str,
    started: u64,
    what: &str,
    settings: &[String],
) -> anyhow::Result<PathBuf> {
    Ok(match out {
        Some(dir) => dir.to_owned(),
        None => runs::fresh_dir(
            &Path::new(ROOT).join(scenario),
            &runs::run_id(started, what, settings),
        )?,
    })
}

/// Records a finished run in the index when its directory lies under `reports/` (the entry's
/// `id` and `dir` are filled in here). A failure to record is a warning: the run and its
/// reports stand.
pub fn record(dir: &Path, mut entry: Entry) {
    let root = Path::new(ROOT);
    let Some(rel) = runs::relative_to(root, dir) else {
        return;
    };
    entry.id = rel.rsplit('/').next().unwrap_or(&rel).to_owned();
    entry.dir = rel;
    if let Err(e) = runs::record(root, &entry) {
        errln!(
            "warning: the run is kept in {} but the index was not updated: {e}",
            dir.display()
        );
    }
}

/// The index entry of one run (`id` and `dir` left for [`record`]).
pub fn of_summary(kind: RunKind, started: u64, settings: &[String], s: &Summary) -> Entry {
    Entry {
        id: String::new(),
        dir: String::new(),
        kind,
        scenario: s.scenario.clone(),
        started_unix_s: started,
        settings: settings.to_vec(),
        seeds: s.seed.to_string(),
        ok: s.ok,
        uploads: s.metrics.files,
        duplicate_deliveries: s.metrics.duplicate_deliveries,
        duplicate_effects: s.metrics.duplicate_effects,
        report: "report.html".into(),
        replay: if kind == RunKind::Run {
            s.replay.clone()
        } else {
            String::new()
        },
    }
}

/// The index entry of `--runs N`.
pub fn of_aggregate(started: u64, settings: &[String], a: &Aggregate, replay: String) -> Entry {
    Entry {
        id: String::new(),
        dir: String::new(),
        kind: RunKind::Runs,
        scenario: a.scenario.clone(),
        started_unix_s: started,
        settings: settings.to_vec(),
        seeds: format!("{}-{}", a.seed, a.seed + a.runs.saturating_sub(1)),
        ok: a.ok,
        uploads: a.totals.metrics.files,
        duplicate_deliveries: a.totals.metrics.duplicate_deliveries,
        duplicate_effects: a.totals.metrics.duplicate_effects,
        report: "report.md".into(),
        replay,
    }
}

/// The index entry of a sweep.
pub fn of_sweep(started: u64, s: &report::sweep::SweepSummary) -> Entry {
    let mut settings = s.plan.fixed.clone();
    settings.extend(s.plan.varied.iter().map(|k| format!("{k}=(varied)")));
    Entry {
        id: String::new(),
        dir: String::new(),
        kind: RunKind::Sweep,
        scenario: s.plan.scenario.clone(),
        started_unix_s: started,
        settings,
        seeds: format!(
            "{}-{}",
            s.plan.first_seed,
            s.plan.first_seed + s.plan.seeds.saturating_sub(1)
        ),
        ok: s.invariants_held,
        uploads: s.settings.iter().map(|x| x.uploads).sum(),
        duplicate_deliveries: s.settings.iter().map(|x| x.duplicate_deliveries).sum(),
        duplicate_effects: s.settings.iter().map(|x| x.duplicate_effects).sum(),
        report: "report.html".into(),
        replay: String::new(),
    }
}

/// Writes a JUnit XML report (`--junit FILE`).
pub fn write_junit(path: &Path, suite: &report::junit::Suite) -> anyhow::Result<()> {
    use anyhow::Context as _;
    std::fs::write(path, suite.to_xml())
        .with_context(|| format!("cannot write --junit {}", path.display()))
}
