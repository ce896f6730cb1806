//! `bitsfarm`: the command-line front end. Thin glue only: flags, tracing setup, exit codes.
//! The work lives in the library crates.

mod browse;
mod cmd;
mod control;
mod flags;
mod kept;
mod live;
mod out;
mod parallel;
mod progress;

use std::process::ExitCode;

use clap::{CommandFactory as _, Parser, Subcommand};
use out::errln;

// Seed sweeps run thousands of small simulations; glibc's allocator spends more time in page
// faults than the simulations spend working (measured: `just bench`).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EXIT_CODES: &str = "\
Exit codes:
  0  success: every expectation held (scenario), the job was acknowledged (upload)
  1  an expectation or invariant failed, or the upload job ended in error
  2  usage or input error: bad flag, bad scenario file, address in use";

/// Web-farm simulation and fault-injection harness for the Microsoft BITS upload protocol.
///
/// bitsfarm runs BITS server nodes, a server application and BITS clients (real HTTP/1.1,
/// BITS_POST) on real sockets or on a deterministic simulated farm, and counts how often the
/// application receives the same file twice, and why.
#[derive(Debug, Parser)]
#[command(name = "bitsfarm", version, after_help = EXIT_CODES)]
struct Cli {
    /// Log as JSON lines instead of text (logs go to stderr; filter with RUST_LOG).
    #[arg(long, global = true)]
    log_json: bool,

    /// More logs on stderr: -v for each step (INFO), -vv for every packet (DEBUG). RUST_LOG
    /// takes precedence.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a scenario on the simulated farm: count duplicate deliveries and explain each one.
    Scenario(cmd::scenario::Args),
    /// List the shipped scenarios.
    Scenarios,
    /// Run a scenario over combinations of settings and many seeds; compare duplicate rates.
    Sweep(cmd::sweep::Args),
    /// Regenerate a run's or a sweep's reports from saved JSON, merge sweep shards, or serve
    /// the reports to a browser (--serve).
    Report(cmd::report::Args),
    /// List the kept runs and sweeps (reports/runs.jsonl), newest first.
    Runs(cmd::runs::Args),
    /// Search generated scenarios for property failures; save each (shrunk) as a scenario.
    Explore(cmd::explore::Args),
    /// Measure the simulator and serve against their targets; writes reports/bench.json.
    Bench(cmd::bench::Args),
    /// Run a scenario's farm live, on loopback sockets in real time, with its faults.
    Farm(cmd::farm::Args),
    /// Run one BITS server node and the server application on real sockets.
    Serve(cmd::serve::Args),
    /// Upload one file with bitsfarm's BITS client (Windows' timers and recovery rules).
    Upload(cmd::upload::Args),
    /// Check a real BITS server or farm from outside: conformance, settings, risks.
    Probe(cmd::probe::Args),
    /// A BITS-aware reverse proxy with faults on protocol steps, in front of real servers.
    Proxy(cmd::proxy::Args),
    /// Print shell completions: `bitsfarm completions bash > /etc/bash_completion.d/bitsfarm`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): `bitsfarm manpage > bitsfarm.1; man ./bitsfarm.1`.
    Manpage,
    /// Print the JSON Schema of an output file: summary (a run's summary.json and --json),
    /// probe (probe.json and `probe --json`), bench (bench.json and `bench --json`). Committed
    /// in docs/schema/.
    Schema {
        /// summary, probe or bench.
        #[arg(value_parser = ["summary", "probe", "bench"])]
        which: String,
    },
}

fn main() -> ExitCode {
    // No transparent huge pages for this process: a simulation allocates and frees buffers
    // all the time, and the allocator hands freed memory back to the OS; with THP "always"
    // each new touch of such memory had the kernel zero a whole 2 MiB page (a quarter of a
    // small-file run's CPU, measured with perf). Best effort: a kernel without it is fine.
    #[cfg(target_os = "linux")]
    let _ = rustix::thread::disable_transparent_huge_pages(true);
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    // A simulation's actors log every step, injected failures as errors; its event log and
    // summary are the output, so only bitsfarm's own errors show unless RUST_LOG asks for more.
    let default_level = match cli.command {
        Command::Scenario(_)
        | Command::Farm(_)
        | Command::Scenarios
        | Command::Sweep(_)
        | Command::Report(_)
        | Command::Runs(_)
        | Command::Completions { .. }
        | Command::Manpage
        | Command::Schema { .. }
        | Command::Explore(_)
        | Command::Bench(_) => "error,node=off,client=off,backend=off",
        // The bar and the closing line say how the upload goes; -v shows every step.
        Command::Upload(_) => "warn",
        _ => "info",
    };
    let default_level = match cli.verbose {
        0 => default_level,
        1 => "info",
        _ => "debug",
    };
    init_tracing(cli.log_json, default_level);
    let result = match cli.command {
        Command::Scenario(args) => cmd::scenario::run(args),
        Command::Farm(args) => cmd::farm::run(args),
        Command::Scenarios => cmd::scenario::list(),
        Command::Sweep(args) => cmd::sweep::run(args),
        Command::Report(args) => cmd::report::run(args),
        Command::Runs(args) => cmd::runs::run(args),
        Command::Explore(args) => cmd::explore::run(args),
        Command::Bench(args) => cmd::bench::run(args),
        Command::Serve(args) => cmd::serve::run(args),
        Command::Upload(args) => cmd::upload::run(args),
        Command::Probe(args) => cmd::probe::run(args),
        Command::Proxy(args) => cmd::proxy::run(args),
        Command::Completions { shell } => {
            let mut text = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "bitsfarm", &mut text);
            out::out!("{}", String::from_utf8_lossy(&text));
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema { which } => {
            let schema = match which.as_str() {
                "summary" => schemars::schema_for!(scenario::summary::Summary),
                "bench" => schemars::schema_for!(bench::Report),
                _ => schemars::schema_for!(prober::Findings),
            };
            match serde_json::to_string_pretty(&schema) {
                Ok(text) => {
                    out::outln!("{text}");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => Err(anyhow::anyhow!("cannot print the schema: {e}")),
            }
        }
        Command::Manpage => {
            let mut text = Vec::new();
            match clap_mangen::Man::new(Cli::command()).render(&mut text) {
                Ok(()) => {
                    out::out!("{}", String::from_utf8_lossy(&text));
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => Err(anyhow::anyhow!("cannot render the man page: {e}")),
            }
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            errln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_tracing(json: bool, default_level: &str) {
    use std::io::IsTerminal as _;
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(progress::LogWriter)
        .with_ansi(std::io::stderr().is_terminal());
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
