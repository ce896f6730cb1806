//! `bitsfarm farm`: a scenario's farm live, on loopback sockets in real time, with the
//! scenario's fault rules carried out on the real tasks.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context as _;

use crate::out::{out, outln};

/// Flags of `bitsfarm farm`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
The same farm as `bitsfarm scenario`, on real sockets: each node and the application listen on
a loopback port of their own, behind a front that a crash resets (kill) or silences (power
cut); the shared address balances per connection with the scenario's policy. The scenario's
clients (bitsfarm's client) upload through it and the run ends when they are done. Timers run
in real time: shorten them with --set (clients.retry_delay_s=5, farm.fallback_timeout_s=20,
fault[0].restart_after_s=30). The reports are those of a simulated run, from the live event log.
Not yet: external clients, --app-url, the control API, drop-response and partitions.")]
pub struct Args {
    /// Scenario name or path.
    scenario: String,
    /// Change a key of the scenario: `--set clients.retry_delay_s=5` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Run the scenario's clients against the farm (required for now).
    #[arg(long)]
    clients: bool,
    /// Longest the run may take, seconds of real time.
    #[arg(long, default_value_t = 600, value_name = "S")]
    timeout_s: u64,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Report directory (default reports/<scenario>/live/).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// Runs the farm live.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let sets = super::scenario::overrides(&args.set)?;
    let sc = scenario::catalog::find(&args.scenario, &sets).map_err(|e| anyhow::anyhow!("{e}"))?;
    anyhow::ensure!(
        args.clients,
        "external clients are not supported yet: pass --clients to run the scenario's own"
    );
    let unsupported = scenario::live::unsupported(&sc);
    anyhow::ensure!(unsupported.is_empty(), "{}", unsupported.join("; "));
    let dir = args
        .out
        .clone()
        .unwrap_or_else(|| std::path::Path::new("reports").join(&sc.name).join("live"));
    let seed = crate::live::entropy_seed();
    let mut replay = format!("bitsfarm farm {} --clients", args.scenario);
    for s in &args.set {
        replay.push_str(&format!(" --set {s}"));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let summary = rt.block_on(async {
        let timeout = Duration::from_secs(args.timeout_s);
        report::live_into(&sc, seed, replay, &dir, timeout)
            .await
            .with_context(|| format!("cannot write the reports into {}", dir.display()))
    })?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        out!("{}", summary.to_text());
        outln!("report: {}", dir.join("report.html").display());
    }
    Ok(if summary.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
