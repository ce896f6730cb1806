//! `bitsfarm scenario` and `bitsfarm scenarios`: run a scenario on the simulated farm, list the
//! shipped ones.

use std::{
    io::{BufWriter, Write as _},
    path::PathBuf,
    process::ExitCode,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use scenario::{
    Scenario,
    check::summarize,
    farm,
    log::Sink,
    summary::{Aggregate, Summary},
};

use crate::progress;

/// Flags of `bitsfarm scenario`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
SCENARIO is a shipped scenario's name (see `bitsfarm scenarios`), or a path to a .toml file
(format: scenarios/README.md). A run is deterministic: the same scenario and seed give the same
event log (its hash is printed) and the same numbers. Exit 0 when every expectation and
invariant held, 1 when one failed, 2 when the scenario file or a flag is bad.")]
pub struct Args {
    /// Scenario name or path.
    scenario: String,
    /// Seed of the (first) run; default: the scenario's `seed`.
    #[arg(long)]
    seed: Option<u64>,
    /// Runs with seeds seed, seed+1, ... in parallel; prints the aggregate.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    runs: u64,
    /// Worker threads for --runs (default: all cores).
    #[arg(long, value_name = "J")]
    jobs: Option<usize>,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Write summary.json and events.jsonl (the typed event log) into DIR (single run).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// Runs the scenario; the exit code says whether its expectations held.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let sc = scenario::catalog::find(&args.scenario).map_err(|e| anyhow::anyhow!("{e}"))?;
    let seed = args.seed.unwrap_or(sc.seed);
    let replay_base = format!("bitsfarm scenario {}", args.scenario);
    if args.runs == 1 {
        let summary = run_once(&sc, seed, &replay_base, args.out.as_ref())?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&summary)?);
        } else {
            print!("{}", summary.to_text());
        }
        return Ok(if summary.ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    if args.out.is_some() {
        anyhow::bail!(
            "--out writes one run's event log; use it without --runs (or replay one seed)"
        );
    }
    let aggregate = run_many(&sc, seed, args.runs, args.jobs, &replay_base);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&aggregate)?);
    } else {
        print!("{}", aggregate.to_text());
    }
    Ok(if aggregate.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn run_once(
    sc: &Scenario,
    seed: u64,
    replay_base: &str,
    out: Option<&PathBuf>,
) -> anyhow::Result<Summary> {
    let sink: Option<Sink> = match out {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create --out {}", dir.display()))?;
            let path = dir.join("events.jsonl");
            let file = std::fs::File::create(&path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            let mut w = BufWriter::new(file);
            Some(Box::new(move |rec| {
                // A full disk must not abort the simulation; the summary notes the file.
                let _ = serde_json::to_writer(&mut w, rec);
                let _ = w.write_all(b"\n");
            }))
        }
        None => None,
    };
    let started = Instant::now();
    let result = farm::run(sc, seed, sink);
    let wall_time_ms = started.elapsed().as_secs_f64() * 1000.0;
    let mut summary = summarize(sc, seed, &result, format!("{replay_base} --seed {seed}"));
    summary.wall_time_ms = wall_time_ms;
    if let Some(dir) = out {
        let path = dir.join("summary.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&summary)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(summary)
}

/// Runs seeds `first..first+runs` on `jobs` threads.
pub fn run_many(
    sc: &Scenario,
    first: u64,
    runs: u64,
    jobs: Option<usize>,
    replay_base: &str,
) -> Aggregate {
    let jobs = jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let next = AtomicU64::new(0);
    let done: Mutex<Vec<Summary>> = Mutex::new(Vec::with_capacity(runs as usize));
    let bar = progress::add(ProgressBar::new(runs));
    bar.set_style(
        ProgressStyle::with_template("{spinner} runs [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..jobs.min(runs as usize) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= runs {
                        break;
                    }
                    let seed = first + i;
                    let t0 = Instant::now();
                    let result = farm::run(sc, seed, None);
                    let mut summary =
                        summarize(sc, seed, &result, format!("{replay_base} --seed {seed}"));
                    summary.wall_time_ms = t0.elapsed().as_secs_f64() * 1000.0;
                    done.lock().unwrap_or_else(|p| p.into_inner()).push(summary);
                    bar.inc(1);
                }
            });
        }
    });
    bar.finish_and_clear();
    let mut all = done.into_inner().unwrap_or_else(|p| p.into_inner());
    all.sort_by_key(|s| s.seed);
    Aggregate::of(&all, started.elapsed().as_secs_f64() * 1000.0)
}

/// `bitsfarm scenarios`: one line per shipped scenario.
pub fn list() -> anyhow::Result<ExitCode> {
    for (name, text) in scenario::catalog::SHIPPED {
        let sc = scenario::load_str(text, name, name).map_err(|e| anyhow::anyhow!("{e}"))?;
        println!("{name:<24} {}", sc.description);
    }
    Ok(ExitCode::SUCCESS)
}
