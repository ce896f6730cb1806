//! `bitsfarm sweep`: a scenario over the cartesian product of settings and many seeds.

use crate::out::{out, outln};
use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use report::sweep::{Plan, RunLine};
use scenario::{check::summarize, farm, overrides::Override};

use crate::{flags::Batch, parallel};

/// Flags of `bitsfarm sweep`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Example: how BITSHostId, session durability and the crash point change duplicate deliveries:
  bitsfarm sweep crash-after-forward --vary farm.host_id=true,false \\
      --vary farm.session_state=durable,volatile --vary fault[0].point=after-forward,ack-ready \\
      --seeds 200

Writes reports/sweeps/<name>/ (sweep.json, results.jsonl, summary.json, report.md, report.html).
--shard K/M runs every M-th run starting at K (deterministic), into .../shard-K-of-M/; any batch
runner can run the M shards (a Kubernetes indexed Job, a CI matrix, GNU parallel), then
`bitsfarm report merge DIR... --out DIR` combines them. Exit 0 when every run's invariants held
(expectations are written for the scenario as shipped and may fail under varied settings), 1
when an invariant failed, 2 on bad input.")]
pub struct Args {
    /// Scenario name or path.
    scenario: String,
    /// A key and the values it takes: `--vary farm.host_id=true,false` (repeatable).
    #[arg(long = "vary", value_name = "KEY=V1,V2,...", required = true)]
    vary: Vec<String>,
    /// A key fixed for every run: `--set clients.count=20` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Seeds per setting.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    seeds: u64,
    #[command(flatten)]
    batch: Batch,
    /// Write the results as JUnit XML to FILE as well (for CI systems).
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Print one line (the verdict and where the report is), not the table.
    #[arg(short, long)]
    quiet: bool,
    /// Sweep name (default: the scenario's name).
    #[arg(long)]
    name: Option<String>,
    /// Output directory (default reports/sweeps/<name>/, plus shard-K-of-M/ when sharded).
    #[arg(short, long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// Runs the sweep.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let fixed = super::scenario::overrides(&args.set)?;
    let varied = report::sweep::varied(&args.vary)?;
    let settings = report::sweep::settings(&varied);
    let mut scenarios = Vec::new();
    for s in &settings {
        let mut all = fixed.clone();
        all.extend(s.values.iter().map(|(k, v)| Override {
            key: k.clone(),
            value: scenario::overrides::parse_value(v),
        }));
        let sc = scenario::catalog::find(&args.scenario, &all)
            .map_err(|e| anyhow::anyhow!("setting {}: {e}", s.label()))?;
        scenarios.push(sc);
    }
    let shard = args.batch.shard;
    let plan = Plan {
        v: report::sweep::FORMAT_VERSION,
        scenario: scenarios[0].name.clone(),
        scenario_arg: args.scenario.clone(),
        fixed: args.set.clone(),
        varied: varied.iter().map(|(k, _)| k.clone()).collect(),
        settings,
        first_seed: args.batch.first_seed,
        seeds: args.seeds,
        shard,
    };
    let name = args.name.clone().unwrap_or_else(|| plan.scenario.clone());
    let dir = args.out.clone().unwrap_or_else(|| {
        let base = Path::new("reports").join("sweeps").join(&name);
        match shard {
            Some((k, m)) => base.join(format!("shard-{k}-of-{m}")),
            None => base,
        }
    });
    let started = crate::kept::now_unix_s();
    let items: Vec<u64> = (0..plan.items()).filter(|&i| plan.in_shard(i)).collect();
    let (lines, wall_ms) = parallel::map(
        &items,
        args.batch.threads(),
        "sweep",
        |&i| {
            let (setting, seed) = plan.item(i);
            let sc = &scenarios[setting];
            let r = farm::run(sc, seed, None);
            let summary = summarize(sc, seed, &r, plan.replay(setting, seed));
            RunLine::of(i, setting, &summary)
        },
        &|&i| {
            let (setting, seed) = plan.item(i);
            plan.replay(setting, seed)
        },
    );
    let summary = report::write_sweep(&dir, &plan, &lines)?;
    if shard.is_none() {
        crate::kept::record(&dir, crate::kept::of_sweep(started, &summary));
    }
    if let Some(path) = &args.junit {
        crate::kept::write_junit(path, &report::junit::sweep(&summary, wall_ms / 1000.0))?;
    }
    if args.batch.json {
        outln!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        if !args.quiet {
            out!("{}", report::markdown::sweep_text(&summary));
        }
        outln!(
            "{} runs in {:.1} s, invariants {}; report: {}",
            lines.len(),
            wall_ms / 1000.0,
            if summary.invariants_held {
                "held"
            } else {
                "FAILED"
            },
            dir.join("report.html").display()
        );
    }
    Ok(if summary.invariants_held {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
