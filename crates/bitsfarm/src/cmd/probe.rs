//! `bitsfarm probe URL`: a bounded black-box check of a real BITS upload server or farm.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context as _;

use crate::out::{errln, outln};

/// Flags of `bitsfarm probe`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Safe to point at production: it uploads only small probe files (300 bytes) under
<URL>/bitsfarm-probe/, closes or cancels every session it opens, and sends at most
--max-requests requests (printed). It reports the conformance facts a client can check from
outside (holds / FAILS with the exchange that shows it / n/a), the settings it found
(BITSHostId, the fallback timeout, BITSMaximumUploadSize by declared totals without sending
the bytes, upload-reply, whether sessions are found on fresh connections, nodes seen) and the
risks they carry, with what to change. --write-scenario FILE writes a scenario that mirrors the
farm, for `bitsfarm sweep FILE` to predict its duplicate rate.

Exit codes: 0 every checkable fact holds, 1 a fact fails, 2 usage error or not a BITS server.")]
pub struct Args {
    /// The BITS upload URL (a directory uploads may go to): http:// or https://.
    url: String,
    #[command(flatten)]
    reach: crate::flags::Reach,
    /// Most requests to send.
    #[arg(long, default_value_t = 300, value_name = "N")]
    max_requests: u64,
    /// Fresh connections on which to look for a session (through the URL).
    #[arg(long, default_value_t = 8, value_name = "K")]
    connections: u32,
    /// Longest wait for each answer, seconds.
    #[arg(long, default_value_t = 30, value_name = "S")]
    timeout_s: u64,
    /// Print the findings as JSON.
    #[arg(long)]
    json: bool,
    /// Write probe.json and report.md into DIR.
    #[arg(short, long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Write a scenario that mirrors the farm into FILE.
    #[arg(long, value_name = "FILE")]
    write_scenario: Option<PathBuf>,
}

/// Probes the URL.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.max_requests > 0, "--max-requests must be at least 1");
    anyhow::ensure!(
        (1..=100).contains(&args.connections),
        "--connections must be 1 to 100"
    );
    let opts = prober::Options {
        url: args.url.clone(),
        connector: args.reach.connector(&args.url)?,
        credentials: args.reach.credentials()?,
        max_requests: args.max_requests,
        connections: args.connections,
        timeout: Duration::from_secs(args.timeout_s.max(1)),
        tag: format!("{:016x}", crate::live::entropy_seed()),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let findings = match rt.block_on(prober::probe(opts)) {
        Ok(f) => f,
        Err(e) => {
            errln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let text = prober::to_text(&findings);
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&findings)?);
    } else {
        outln!("{text}");
    }
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        std::fs::write(
            dir.join("probe.json"),
            serde_json::to_vec_pretty(&findings)?,
        )
        .with_context(|| format!("cannot write into {}", dir.display()))?;
        std::fs::write(dir.join("report.md"), format!("```\n{text}```\n"))
            .with_context(|| format!("cannot write into {}", dir.display()))?;
    }
    if let Some(file) = &args.write_scenario {
        std::fs::write(file, prober::mirror_scenario(&findings))
            .with_context(|| format!("cannot write {}", file.display()))?;
        errln!(
            "scenario: {f}\npredict its duplicates: bitsfarm sweep {f} --vary farm.host_id=true,false --seeds 100",
            f = file.display()
        );
    }
    Ok(if findings.any_failed() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
