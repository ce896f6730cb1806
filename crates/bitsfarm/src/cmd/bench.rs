//! `bitsfarm bench`: runs the benchmarks of the `bench` crate and writes their numbers to
//! `reports/bench.json`.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;

use crate::out::{errln, outln};

/// Flags of `bitsfarm bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The directory to write bench.json into.
    #[arg(short, long, default_value = "reports", value_name = "DIR")]
    out: PathBuf,
    /// Run one benchmark only.
    #[arg(long, value_enum, value_name = "NAME")]
    only: Option<bench::Section>,
    /// Seeds for the runs/s benchmark.
    #[arg(long, default_value_t = bench::Options::default().seeds)]
    seeds: u64,
    /// Files of the memory benchmark's large run (it compares the CPU per file with that of
    /// 10,000-file runs, as many as make N files, at most 100, in a process that takes turns
    /// on the CPU with the large run's; a million files take ~3 minutes a round, five rounds).
    #[arg(long, default_value_t = bench::MEMORY_FILES, value_name = "N",
          value_parser = clap::value_parser!(u64).range(bench::MEMORY_BASE_FILES..=10_000_000))]
    files: u64,
    /// Also print the numbers as JSON on stdout (bench.json's content; its JSON Schema:
    /// `bitsfarm schema bench`, docs/schema/bench.schema.json).
    #[arg(long)]
    json: bool,
}

/// Runs the benchmarks and writes their numbers.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("cannot find the bitsfarm executable")?;
    let options = bench::Options {
        seeds: args.seeds,
        memory_files: args.files,
    };
    let report = bench::run(args.only, options, &exe, &mut |line| errln!("{line}"))?;
    let json = serde_json::to_string_pretty(&report)?;
    if (args.only == Some(bench::Section::Memory)
        && std::env::var("BITSFARM_BENCH_MEMORY_FILES").is_ok())
        || (args.only == Some(bench::Section::Week)
            && std::env::var("BITSFARM_BENCH_WEEK_SEED").is_ok())
    {
        // Each memory run (and each round of the week) runs in a child process; the parent
        // reads its numbers here.
        outln!("{json}");
        return Ok(ExitCode::SUCCESS);
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let file = args.out.join("bench.json");
    std::fs::write(&file, json.as_bytes())
        .with_context(|| format!("cannot write {}", file.display()))?;
    errln!("wrote {}", file.display());
    if args.json {
        outln!("{json}");
    }
    Ok(ExitCode::SUCCESS)
}
