//! `bitsfarm report`: regenerate reports from saved JSON, and merge sweep shards.

use crate::out::outln;
use std::{path::PathBuf, process::ExitCode};

use report::files::{Kind, kind, merge_sweeps};

/// Flags of `bitsfarm report`.
#[derive(Debug, clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "\
`bitsfarm report DIR` rewrites report.md and report.html of a run directory (from summary.json
and events.jsonl) or a sweep directory (from sweep.json and results.jsonl). Nothing is
re-simulated.

`bitsfarm report --serve [ADDR]` serves the reports directory (default reports/; its
index.html lists every kept run and sweep) to a browser at http://ADDR/ (default
127.0.0.1:8000, loopback only) until Ctrl-C. It is read-only, serves nothing outside the
directory, and listens on another interface only when ADDR names one."
)]
pub struct Args {
    #[command(subcommand)]
    merge: Option<Merge>,
    /// A run or sweep directory (with --serve: the directory to serve, default reports/).
    dir: Option<PathBuf>,
    /// Serve the reports over HTTP for a browser, at ADDR (default 127.0.0.1:8000).
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:8000")]
    serve: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
enum Merge {
    /// Combine the shard directories of one sweep into one report.
    Merge {
        /// Shard directories.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Where to write the merged sweep.
        #[arg(short, long, value_name = "DIR")]
        out: PathBuf,
    },
}

/// Regenerates, merges or serves.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(addr) = args.serve {
        anyhow::ensure!(
            args.merge.is_none(),
            "--serve serves a directory: give it alone, or with the directory to serve"
        );
        return serve(
            args.dir.unwrap_or_else(|| PathBuf::from(crate::kept::ROOT)),
            &addr,
        );
    }
    match (args.merge, args.dir) {
        (Some(Merge::Merge { dirs, out }), _) => {
            let s = merge_sweeps(&dirs, &out)?;
            crate::kept::record(&out, crate::kept::of_sweep(crate::kept::now_unix_s(), &s));
            outln!(
                "merged {} shard(s): {} of {} runs into {}",
                dirs.len(),
                s.runs,
                s.plan.items(),
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        (None, Some(dir)) => {
            match kind(&dir)? {
                Kind::Run => {
                    report::write_run_reports(&dir)?;
                }
                Kind::Sweep => {
                    report::write_sweep_reports(&dir)?;
                }
            }
            outln!(
                "wrote {} and {}",
                dir.join("report.md").display(),
                dir.join("report.html").display()
            );
            Ok(ExitCode::SUCCESS)
        }
        (None, None) => anyhow::bail!("give a report directory, or `merge DIR... --out DIR`"),
    }
}

fn serve(root: PathBuf, addr: &str) -> anyhow::Result<ExitCode> {
    use anyhow::Context as _;
    anyhow::ensure!(
        root.is_dir(),
        "{}: no such directory (runs write their reports under reports/; give another with `report --serve ADDR DIR`)",
        root.display()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = transport::tcp::TcpListen::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let at = transport::Listen::local_addr(&listener);
        outln!(
            "serving {} at http://{at}/ (read-only; Ctrl-C stops)",
            root.display()
        );
        if !at.starts_with("127.") && !at.starts_with("[::1]") {
            crate::out::errln!(
                "warning: {at} is not loopback: anyone who reaches this machine can read the reports"
            );
        }
        tokio::select! {
            r = crate::browse::serve(root, listener) => r.context("the report server stopped")?,
            r = tokio::signal::ctrl_c() => r.context("cannot wait for Ctrl-C")?,
        }
        Ok(ExitCode::SUCCESS)
    })
}
