//! `bitsfarm explore`: swarm testing over generated scenarios; every failure is shrunk and saved
//! as a scenario file that `bitsfarm scenario` replays.

use crate::out::{out, outln};
use std::{collections::BTreeMap, path::PathBuf, process::ExitCode, time::Instant};

use anyhow::Context as _;
use explore::{Property, Search, Space, Verdicts};
use serde::Serialize;

use crate::parallel;

/// Flags of `bitsfarm explore`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Each run draws a scenario (farm settings, clients, and a fault schedule from a random subset of
fault kinds: swarm testing) from the space, runs it, and checks every property that applies.
Properties: no-loss, integrity, dedupe-one-effect, no-faults-one-delivery,
hostid-durable-resumes, duplicates-explained, liveness, determinism (checked on every 8th run,
or every run when it is the only property asked for), and canary: \"without dedupe there is never
a duplicate delivery\", false on purpose; the explorer must falsify it. With one --property,
every run is moved into that property's domain (e.g. hostid-durable-resumes switches BITSHostId
on, makes session state durable and keeps only survivable outages).

Failures are shrunk to small scenarios and saved as scenarios/found/<property>-<seed>.toml
(at most 3 per property). Exit 0 when every property held and the canary, if checked, was
falsified; 1 otherwise; 2 on bad input.")]
pub struct Args {
    /// Runs (generated scenarios).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    runs: u64,
    /// The space to draw from (TOML; see `explore::space::Space`). Default: the built-in one.
    #[arg(long, value_name = "FILE")]
    space: Option<PathBuf>,
    /// Check only these properties (repeatable). Default: all, canary included.
    #[arg(long = "property", value_name = "NAME")]
    properties: Vec<String>,
    /// Generator seed of the first run.
    #[arg(long, default_value_t = 1)]
    first_seed: u64,
    /// Worker threads (default: all cores).
    #[arg(long, value_name = "J")]
    jobs: Option<usize>,
    /// Run only shard K of M (1-based).
    #[arg(long, value_name = "K/M")]
    shard: Option<String>,
    /// Where failing scenarios are saved.
    #[arg(long, default_value = "scenarios/found", value_name = "DIR")]
    out: PathBuf,
    /// Candidates to try when shrinking one failure.
    #[arg(long, default_value_t = 400)]
    shrink_budget: usize,
    /// Print the results as JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct PropertyResult {
    property: &'static str,
    canary: bool,
    checked: u64,
    failed: u64,
    first_failure_seed: Option<u64>,
    first_failure_after_s: Option<f64>,
    saved: Vec<String>,
    shrunk_fault_rules: Option<usize>,
    example: Option<String>,
}

#[derive(Debug, Serialize)]
struct Results {
    runs: u64,
    wall_s: f64,
    runs_per_s: f64,
    properties: Vec<PropertyResult>,
    ok: bool,
}

struct RunResult {
    v: Verdicts,
    at_s: f64,
}

/// Explores.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let space = match &args.space {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --space {}", path.display()))?;
            let s: Space = toml::from_str(&text).map_err(|e| {
                let line = e
                    .span()
                    .map_or(1, |sp| text[..sp.start].matches('\n').count() + 1);
                anyhow::anyhow!("{}:{line}: {}", path.display(), e.message())
            })?;
            explore::space::validate(&s).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            s
        }
        None => Space::default(),
    };
    let props: Vec<Property> = if args.properties.is_empty() {
        Property::ALL.to_vec()
    } else {
        args.properties
            .iter()
            .map(|n| {
                Property::parse(n).with_context(|| {
                    format!(
                        "unknown property {n:?}; use {}",
                        Property::ALL
                            .iter()
                            .map(|p| p.name())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
            })
            .collect::<anyhow::Result<_>>()?
    };
    let mut props = props;
    props.sort_unstable();
    props.dedup();
    let search = Search::new(space, props.clone());
    let shard = args
        .shard
        .as_deref()
        .map(parallel::parse_shard)
        .transpose()?;
    let seeds: Vec<u64> = (0..args.runs)
        .filter(|i| shard.is_none_or(|(k, m)| i % m == k - 1))
        .map(|i| args.first_seed + i)
        .collect();
    let started = Instant::now();
    let (results, wall_ms) =
        parallel::map(&seeds, parallel::threads(args.jobs), "explore", |&seed| {
            let v = search.check(seed);
            RunResult {
                v,
                at_s: started.elapsed().as_secs_f64(),
            }
        });

    let mut out = Vec::new();
    let mut ok = true;
    for &p in &props {
        let checked = results.iter().filter(|r| r.v.checked.contains(&p)).count() as u64;
        let failures: Vec<(&RunResult, &String)> = results
            .iter()
            .filter_map(|r| {
                r.v.failed
                    .iter()
                    .find(|(q, _)| *q == p)
                    .map(|(_, w)| (r, w))
            })
            .collect();
        let first_at = failures.iter().map(|(r, _)| r.at_s).reduce(f64::min);
        let mut saved = Vec::new();
        let mut shrunk_rules = None;
        let mut example = None;
        let keep = if p.is_canary() { 1 } else { 3 };
        for (r, _) in failures.iter().take(keep) {
            let (small, why) =
                explore::shrink_failure(p, search.knobs(r.v.seed), args.shrink_budget);
            let name = format!("{}-{}", p.name(), r.v.seed);
            std::fs::create_dir_all(&args.out)
                .with_context(|| format!("cannot create {}", args.out.display()))?;
            let path = args.out.join(format!("{name}.toml"));
            std::fs::write(&path, explore::found_file(p, &small, &why, &name))
                .with_context(|| format!("cannot write {}", path.display()))?;
            saved.push(path.display().to_string());
            if shrunk_rules.is_none() {
                shrunk_rules = Some(small.faults.len());
                example = Some(why);
            }
        }
        let result = PropertyResult {
            property: p.name(),
            canary: p.is_canary(),
            checked,
            failed: failures.len() as u64,
            first_failure_seed: failures.first().map(|(r, _)| r.v.seed),
            first_failure_after_s: first_at,
            saved,
            shrunk_fault_rules: shrunk_rules,
            example,
        };
        let good = if p.is_canary() {
            result.checked == 0 || result.failed > 0
        } else {
            result.failed == 0
        };
        ok &= good;
        out.push(result);
    }
    let runs = results.len() as u64;
    let summary = Results {
        runs,
        wall_s: wall_ms / 1000.0,
        runs_per_s: runs as f64 * 1000.0 / wall_ms.max(1e-9),
        properties: out,
        ok,
    };
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        out!("{}", text(&summary));
    }
    Ok(if summary.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn text(r: &Results) -> String {
    let mut o = format!(
        "explored {} generated scenarios in {:.1} s ({:.0}/s)\n\n",
        r.runs, r.wall_s, r.runs_per_s
    );
    o += &format!(
        "  {:<24} {:>8} {:>8}  result\n",
        "property", "checked", "failed"
    );
    let mut by: BTreeMap<usize, String> = BTreeMap::new();
    for (i, p) in r.properties.iter().enumerate() {
        let verdict = match (p.canary, p.failed) {
            (_, 0) if p.checked == 0 => "not checked: no run was in its domain".to_owned(),
            (false, 0) => "held".to_owned(),
            (false, _) => format!("FAILED (first: seed {})", p.first_failure_seed.unwrap_or(0)),
            (true, 0) => "NOT FALSIFIED: the search did not find a duplicate".to_owned(),
            (true, _) => format!(
                "falsified as expected after {:.2} s (shrunk to {} fault rule(s))",
                p.first_failure_after_s.unwrap_or(0.0),
                p.shrunk_fault_rules.unwrap_or(0)
            ),
        };
        o += &format!(
            "  {:<24} {:>8} {:>8}  {verdict}\n",
            p.property, p.checked, p.failed
        );
        if !p.saved.is_empty() {
            by.insert(
                i,
                format!(
                    "  {}: {}\n    saved: {}\n",
                    p.property,
                    p.example.as_deref().unwrap_or(""),
                    p.saved.join(", ")
                ),
            );
        }
    }
    if !by.is_empty() {
        o += "\n";
        for v in by.values() {
            o += v;
        }
    }
    o += &format!("\nresult: {}\n", if r.ok { "PASS" } else { "FAIL" });
    o
}
