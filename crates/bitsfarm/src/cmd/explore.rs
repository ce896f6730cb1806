//! `bitsfarm explore`: swarm testing over generated scenarios; every failure is shrunk and saved
//! as a scenario file that `bitsfarm scenario` replays.

use crate::out::{out, outln};
use std::{path::PathBuf, process::ExitCode, time::Instant};

use anyhow::Context as _;
use explore::{Search, Space, campaign};

use crate::{flags::Batch, parallel};

/// Flags of `bitsfarm explore`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Each run draws a scenario (farm settings, clients, and a fault schedule from a random subset of
fault kinds: swarm testing) from the space, runs it, and checks every property that applies.

Properties (--property NAME, repeatable):
  no-loss                 every upload acknowledged to its client was delivered at least once
  integrity               the bytes delivered equal the client's bytes
  dedupe-one-effect       with transaction ids and dedupe: one effect per acknowledged upload
  no-faults-one-delivery  with no faults: exactly one delivery per file
  hostid-durable-resumes  BITSHostId + durable sessions + survivable outages: no restart from
                          byte 0, no duplicate unless a node died with the answer in flight
  duplicates-explained    every duplicate delivery has a causal chain from an injected fault
  liveness                once faults stop, every job ends within a bound
  no-needless-give-up     a job gives up only if the farm could not serve it for a whole
                          no-progress timeout
  determinism             same scenario and seed, same event-log hash (every 8th run, or every
                          run when it is the only property asked for)
  no-panics               nothing inside a run panics
  canary                  \"without dedupe there is never a duplicate delivery\": false on
                          purpose; the explorer must falsify it
With one --property, every run is moved into that property's domain (e.g. hostid-durable-resumes
switches BITSHostId on, makes session state durable and keeps only survivable outages).

--space FILE (TOML, every key optional; [min, max] ranges are inclusive), the defaults:
  nodes = [1, 5]                     clients = [1, 6]           files_per_client = [1, 3]
  file_size = [0, 65536]             faults = [0, 4]            swarm = true
  fragment_sizes = [4096, 16384, 65536, 1048576]
  retry_delays_s = [60, 600]         fallback_timeouts_s = [600, 3600, 86400]
  fault_kinds = [\"crash\", \"power-cut\", \"drop-response\", \"slow-app\", \"app-fails\",
                 \"app-crash\", \"partition\", \"host-id-toggle\", \"proxy-page\", \"odd-ack\",
                 \"cancel\", \"io-error\", \"disk-full\"]

Failures are shrunk to small scenarios and saved as scenarios/found/<property>-<seed>.toml
(at most 3 per property). Exit 0 when every property held and the canary, if checked, was
falsified; 1 otherwise; 2 on bad input.")]
pub struct Args {
    /// Runs (generated scenarios).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    runs: u64,
    /// The space to draw from (TOML; its keys and defaults are below). Default: the built-in one.
    #[arg(long, value_name = "FILE")]
    space: Option<PathBuf>,
    /// Check only these properties (repeatable). Default: all, canary included.
    #[arg(long = "property", value_name = "NAME")]
    properties: Vec<String>,
    #[command(flatten)]
    batch: Batch,
    /// Where failing scenarios are saved.
    #[arg(short, long, default_value = "scenarios/found", value_name = "DIR")]
    out: PathBuf,
    /// Write the results as JUnit XML to FILE as well (for CI systems).
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Print one line: the verdict.
    #[arg(short, long)]
    quiet: bool,
    /// Candidates to try when shrinking one failure.
    #[arg(long, default_value_t = 400)]
    shrink_budget: usize,
}

/// Explores.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let space = match &args.space {
        Some(path) => explore::space::load(path)?,
        None => Space::default(),
    };
    let props = campaign::properties(&args.properties)?;
    let search = Search::new(space, props.clone());
    let shard = args.batch.shard;
    let seeds: Vec<u64> = (0..args.runs)
        .filter(|i| shard.is_none_or(|(k, m)| i % m == k - 1))
        .map(|i| args.batch.first_seed + i)
        .collect();
    let started = Instant::now();
    let replay = |seed: &u64| format!("bitsfarm explore --seed {seed} --runs 1");
    let (runs, wall_ms) = parallel::map(
        &seeds,
        args.batch.threads(),
        "explore",
        |&seed| campaign::Run {
            v: search.check(seed),
            at_s: started.elapsed().as_secs_f64(),
        },
        &replay,
    );
    let shrinking = campaign::Shrinking {
        out: &args.out,
        budget: args.shrink_budget,
    };
    let results = campaign::conclude(&search, &props, &runs, wall_ms, shrinking)
        .with_context(|| format!("cannot save failures under {}", args.out.display()))?;
    if let Some(path) = &args.junit {
        crate::kept::write_junit(path, &junit(&results))?;
    }
    if args.batch.json {
        outln!("{}", serde_json::to_string_pretty(&results)?);
    } else if args.quiet {
        let bad: Vec<&str> = results
            .properties
            .iter()
            .filter(|p| !p.good())
            .map(|p| p.property)
            .collect();
        outln!(
            "explore: {} runs; {}",
            results.runs,
            if bad.is_empty() {
                "every property held, the canary (if checked) was falsified".to_owned()
            } else {
                format!("FAILED: {}", bad.join(", "))
            }
        );
    } else {
        out!("{}", results.to_text());
    }
    Ok(if results.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// One JUnit case per property: failed when it did not hold (the canary: when it was not
/// falsified), with the first failing seed and the saved scenarios.
fn junit(r: &campaign::Results) -> report::junit::Suite {
    let cases = r
        .properties
        .iter()
        .map(|p| {
            let failure = (!p.good()).then(|| {
                if p.canary {
                    (
                        format!("the canary was not falsified in {} runs", p.checked),
                        "the explorer must find a duplicate delivery without dedupe".to_owned(),
                    )
                } else {
                    (
                        format!("failed in {} of {} runs", p.failed, p.checked),
                        format!(
                            "first failing seed: {}\nsaved: {}",
                            p.first_failure_seed
                                .map_or_else(|| "-".to_owned(), |s| s.to_string()),
                            p.saved.join(", ")
                        ),
                    )
                }
            });
            report::junit::Case::new("explore", p.property.to_owned(), failure)
        })
        .collect();
    report::junit::Suite {
        name: format!("bitsfarm explore ({} runs)", r.runs),
        time_s: r.wall_s,
        cases,
    }
}
