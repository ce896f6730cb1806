//! `bitsfarm scenario` and `bitsfarm scenarios`: run a scenario on the simulated farm, list the
//! shipped ones.

use crate::out::{out, outln};
use std::{path::PathBuf, process::ExitCode};

use report::runs::RunKind;

use scenario::{Scenario, overrides::Override, summary::Aggregate};

use crate::{kept, parallel};

/// Flags of `bitsfarm scenario`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
SCENARIO is a shipped scenario's name (see `bitsfarm scenarios`), or a path to a .toml file
(format: scenarios/README.md). A run is deterministic: the same scenario and seed give the same
event log (its hash is printed) and the same numbers.

Every run writes a new report directory, reports/<scenario>/<run id>/ (run id: the UTC start
time, the seed and a short hash of the --set overrides, e.g. 20261127-153012-s1), and lists it
in reports/index.html and `bitsfarm runs`; reports/latest points at it. It holds summary.json
(what --json prints), events.jsonl (the typed event log), report.md and report.html (with a
timeline). With -o DIR the run writes into DIR instead and is indexed only when DIR is under
reports/.

With --set the run is a what-if: the scenario's expectations were written for its shipped
settings, so they are listed as not checked and the exit code follows the invariants alone
(--expect checks them anyway).

Exit 0 when every expectation (when checked) and invariant held, 1 when one failed, 2 when the
scenario file or a flag is bad.")]
pub struct Args {
    /// Scenario name or path.
    scenario: String,
    /// Seed of the (first) run; default: the scenario's `seed`.
    #[arg(long)]
    seed: Option<u64>,
    /// Change a key of the scenario: `--set farm.host_id=true --set fault[0].point=ack-ready`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Runs with seeds seed, seed+1, ... in parallel; prints the aggregate.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    runs: u64,
    /// Worker threads for --runs (default: all cores).
    #[arg(short, long, value_name = "J")]
    jobs: Option<usize>,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Write the results as JUnit XML to FILE as well (for CI systems).
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Print one line: the verdict and where the report is.
    #[arg(short, long, conflicts_with = "json")]
    quiet: bool,
    /// Check the scenario's expectations even when --set changed its settings.
    #[arg(long)]
    expect: bool,
    /// Report directory (default: a new reports/<scenario>/<run id>/).
    #[arg(short, long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// Parses `--set` values.
pub fn overrides(set: &[String]) -> anyhow::Result<Vec<Override>> {
    set.iter()
        .map(|s| Override::parse(s).map_err(|e| anyhow::anyhow!("--set {e}")))
        .collect()
}

/// Runs the scenario; the exit code says whether its expectations held.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let sets = overrides(&args.set)?;
    let mut sc =
        scenario::catalog::find(&args.scenario, &sets).map_err(|e| anyhow::anyhow!("{e}"))?;
    // A what-if run: the expectations were written for the settings it changed.
    if !sets.is_empty() && !args.expect {
        sc.set_expectations_aside();
    }
    let seed = args.seed.unwrap_or(sc.seed);
    let mut replay_base = format!("bitsfarm scenario {}", args.scenario);
    for s in &args.set {
        replay_base.push_str(&format!(" --set {s}"));
    }
    if args.expect && !args.set.is_empty() {
        replay_base.push_str(" --expect");
    }
    let started = kept::now_unix_s();
    if args.runs == 1 {
        let dir = kept::run_dir(
            args.out.as_deref(),
            &sc.name,
            started,
            &format!("s{seed}"),
            &args.set,
        )?;
        let summary = report::run_into(&sc, seed, format!("{replay_base} --seed {seed}"), &dir)?;
        kept::record(
            &dir,
            kept::of_summary(RunKind::Run, started, &args.set, &summary),
        );
        if let Some(path) = &args.junit {
            kept::write_junit(path, &report::junit::run(&summary))?;
        }
        if args.json {
            outln!("{}", serde_json::to_string_pretty(&summary)?);
        } else {
            let verdict = scenario::advice::verdict(&summary);
            if args.quiet {
                outln!(
                    "{} seed {}: {}; report: {}",
                    summary.scenario,
                    summary.seed,
                    crate::out::paint(&verdict.text, verdict.class),
                    dir.join("report.html").display()
                );
            } else {
                // The result line in the verdict's colour (on a terminal).
                for line in summary.to_text().lines() {
                    if line.starts_with("result: ") {
                        outln!("{}", crate::out::paint(line, verdict.class));
                    } else {
                        outln!("{line}");
                    }
                }
                outln!("report: {}", dir.join("report.html").display());
            }
        }
        return Ok(if summary.ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    let aggregate = run_many(&sc, seed, args.runs, args.jobs, &replay_base);
    let dir = kept::run_dir(
        args.out.as_deref(),
        &sc.name,
        started,
        &format!("seeds{seed}-{}", seed + args.runs - 1),
        &args.set,
    )?;
    report::write_aggregate(&dir, &aggregate)?;
    if let Some(path) = &args.junit {
        kept::write_junit(path, &report::junit::aggregate(&aggregate))?;
    }
    kept::record(
        &dir,
        kept::of_aggregate(
            started,
            &args.set,
            &aggregate,
            format!("{replay_base} --seed {seed} --runs {}", args.runs),
        ),
    );
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&aggregate)?);
    } else if args.quiet {
        outln!(
            "{}: {} runs, passed {}, duplicate deliveries {}; report: {}",
            aggregate.scenario,
            aggregate.runs,
            aggregate.passed,
            aggregate.totals.metrics.duplicate_deliveries,
            dir.join("report.md").display()
        );
    } else {
        out!("{}", aggregate.to_text());
        outln!("report: {}", dir.join("report.md").display());
    }
    Ok(if aggregate.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Runs seeds `first..first+runs` on `jobs` threads (no report files).
pub fn run_many(
    sc: &Scenario,
    first: u64,
    runs: u64,
    jobs: Option<usize>,
    replay_base: &str,
) -> Aggregate {
    let bar = parallel::bar(runs, "runs");
    let (all, wall_ms) = scenario::batch::run_many(
        sc,
        first,
        runs,
        parallel::threads(jobs),
        replay_base,
        &|| bar.inc(1),
    );
    crate::progress::done(&bar);
    Aggregate::of(&all, wall_ms)
}

/// `bitsfarm scenarios`: one line per shipped scenario.
pub fn list() -> anyhow::Result<ExitCode> {
    for (name, text) in scenario::catalog::SHIPPED {
        let sc = scenario::load_str(text, name, name).map_err(|e| anyhow::anyhow!("{e}"))?;
        outln!("{name:<24} {}", sc.description);
    }
    Ok(ExitCode::SUCCESS)
}
