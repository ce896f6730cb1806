//! `bitsfarm upload`: one BITS upload job over real TCP, against bitsfarm's own `serve` or any
//! BITS server (an IIS farm).

use crate::out::{errln, outln};
use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context as _;
use client::{Env, Job, JobConfig, JobKind, JobState};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::{live, progress};

/// Flags of `bitsfarm upload`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
The job follows Windows BITS: transient errors are retried after the retry delay until the
no-progress timeout; a BITS-Host-Id from the server is used for every later request and given up
after its fallback timeout; a lost session restarts the upload from byte 0. Ctrl-C cancels the
job (Cancel-Session). Exit 0 when the job is acknowledged, 1 when it ends in error or is
cancelled, 2 on usage errors.")]
pub struct Args {
    /// The file to upload.
    file: PathBuf,
    /// The remote name: http://host[:port]/path or https://host[:port]/path.
    url: String,
    #[command(flatten)]
    reach: crate::flags::Reach,
    /// Bytes per fragment.
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES")]
    fragment_size: u64,
    /// MinimumRetryDelay, seconds (Windows' default 600; floor 5).
    #[arg(long, default_value_t = 600, value_name = "N")]
    retry_delay_s: u64,
    /// NoProgressTimeout, seconds (Windows' default 14 days; 0: no retries).
    #[arg(long, default_value_t = 1_209_600, value_name = "N")]
    no_progress_timeout_s: u64,
    /// Upload-reply job: download the application's reply before closing; printed to stdout.
    #[arg(long)]
    upload_reply: bool,
    /// Put a transaction id in the data (bitsfarm's envelope) so the application can
    /// deduplicate re-uploads.
    #[arg(long)]
    transaction_id: bool,
    /// Seconds to wait for each response.
    #[arg(long, default_value_t = 360, value_name = "N")]
    request_timeout_s: u64,
    /// Print the job's report as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// Runs the job; the exit code says how it ended.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // Read a fragment at a time as the job sends it: memory stays O(fragment).
    let payload = client::Entity::file(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let cfg = JobConfig {
        name: "upload".into(),
        url: args.url.clone(),
        kind: if args.upload_reply {
            JobKind::UploadReply
        } else {
            JobKind::Upload
        },
        fragment_size: args.fragment_size,
        min_retry_delay_s: args.retry_delay_s,
        no_progress_timeout_s: args.no_progress_timeout_s,
        request_timeout_s: args.request_timeout_s,
        content_name: args
            .file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned()),
        transaction_id: args.transaction_id,
        credentials: args.reach.credentials()?,
        ..JobConfig::default()
    };
    cfg.validate().context("invalid job settings")?;
    let connector = args.reach.connector(&args.url)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = rt.block_on(async move {
        let env = Env {
            connector,
            probe: probe::none(),
            rng: ChaCha8Rng::seed_from_u64(live::entropy_seed()),
            clock: live::clock(),
        };
        let job = Job::new(cfg, payload, env).context("cannot start the job")?;
        let control = job.control();
        let bar = progress::add(ProgressBar::new(job.entity().len()));
        let sending = ProgressStyle::with_template(
            "{spinner} {msg:12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}, eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> ");
        let waiting =
            ProgressStyle::with_template("{spinner} [{bar:30}] {bytes}/{total_bytes} {wide_msg}")
                .expect("valid template")
                .progress_chars("=> ");
        bar.set_style(sending.clone());
        let mut watch = control.progress();
        let b = bar.clone();
        // The bar follows the job; in transient error it says why and counts down to the next
        // retry (once a second), instead of a speed of 0 B/s.
        let updater = tokio::spawn(async move {
            loop {
                let p = watch.borrow_and_update().clone();
                b.set_position(p.acknowledged);
                match (p.state, p.retry_at) {
                    (JobState::TransientError, Some(at)) => {
                        b.set_style(waiting.clone());
                        let left = at.saturating_duration_since(tokio::time::Instant::now());
                        // The countdown first: a narrow terminal cuts the end of the line.
                        b.set_message(format!(
                            "{} in {}; transient error: {}",
                            if p.giving_up {
                                "giving up (no progress for the no-progress timeout)"
                            } else {
                                "retrying"
                            },
                            scenario::text::duration(left.as_secs_f64().ceil()),
                            p.last_error.as_deref().unwrap_or("?")
                        ));
                    }
                    (state, _) => {
                        b.set_style(sending.clone());
                        b.set_message(state.name());
                    }
                }
                if p.state.is_final() {
                    break;
                }
                tokio::select! {
                    changed = watch.changed() => if changed.is_err() { break },
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        });
        let ticker = bar.clone();
        ticker.enable_steady_tick(Duration::from_millis(120));
        let mut run = tokio::spawn(job.run());
        let report = tokio::select! {
            biased;
            r = &mut run => r,
            _ = tokio::signal::ctrl_c() => {
                tracing::warn!("Ctrl-C: cancelling the job (Cancel-Session)");
                control.cancel();
                run.await
            }
        }
        .context("the job panicked")?;
        updater.abort();
        bar.finish_and_clear();
        anyhow::Ok(report)
    })?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else if let Some(reply) = &report.reply {
        outln!("{}", String::from_utf8_lossy(reply));
    }
    errln!("{}", report.to_text());
    bench::live::report_self_at_exit();
    Ok(if report.state == JobState::Acknowledged {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
