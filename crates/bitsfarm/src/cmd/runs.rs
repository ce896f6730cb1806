//! `bitsfarm runs`: the kept runs and sweeps, newest first.

use std::{path::PathBuf, process::ExitCode};

use crate::out::{errln, out, outln};

/// Flags of `bitsfarm runs`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Lists the runs and sweeps kept under the reports directory (from its runs.jsonl; runs whose
directory was deleted are left out), newest first. reports/index.html is the same list for a
browser (`bitsfarm report --serve`), and reports/latest the newest run's directory.")]
pub struct Args {
    /// The reports directory.
    #[arg(long, default_value = crate::kept::ROOT, value_name = "DIR")]
    root: PathBuf,
    /// Only the newest N.
    #[arg(short = 'n', long, value_name = "N")]
    last: Option<usize>,
    /// Print the runs as JSON (an array, newest first).
    #[arg(long)]
    json: bool,
}

/// Lists.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (mut entries, unreadable) = report::runs::list(&args.root)?;
    if let Some(n) = args.last {
        entries.drain(..entries.len().saturating_sub(n));
    }
    if unreadable > 0 {
        errln!(
            "warning: {unreadable} line(s) of {} could not be read and are left out",
            args.root.join(report::runs::RECORDS).display()
        );
    }
    if args.json {
        entries.reverse();
        outln!("{}", serde_json::to_string_pretty(&entries)?);
    } else if entries.is_empty() {
        outln!(
            "no runs kept in {} yet: `bitsfarm scenario crash-after-forward` makes one",
            args.root.display()
        );
    } else {
        out!("{}", report::runs::to_text(&entries));
    }
    Ok(ExitCode::SUCCESS)
}
