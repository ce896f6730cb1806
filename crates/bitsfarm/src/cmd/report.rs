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
re-simulated."
)]
pub struct Args {
    #[command(subcommand)]
    merge: Option<Merge>,
    /// A run or sweep directory.
    dir: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
enum Merge {
    /// Combine the shard directories of one sweep into one report.
    Merge {
        /// Shard directories.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Where to write the merged sweep.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

/// Regenerates or merges.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match (args.merge, args.dir) {
        (Some(Merge::Merge { dirs, out }), _) => {
            let s = merge_sweeps(&dirs, &out)?;
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
