//! `bench --only live`: a 1 GiB upload with a transaction id and 8 MiB fragments through
//! `serve` (durable sessions under an upload root), on loopback, as two processes: by reference
//! (the application opens the file) and by value (the node sends it in the request body), in
//! interleaved rounds. Measures the throughput by wall time and per CPU second of both
//! processes, and each process's peak RSS (memory O(fragment), not O(file)).

use std::{
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::Spread;

/// Rounds of each kind.
const ROUNDS: usize = 5;

/// The numbers of one benchmark run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LiveRound {
    /// How the node handed the file to the application: `by-reference` or `by-value`.
    pub notification: String,
    /// Seconds from the first byte to the acknowledged job.
    pub wall_s: f64,
    /// Megabytes (10^6) per second.
    pub mb_per_s: f64,
    /// `bitsfarm upload`'s peak RSS, MiB.
    pub upload_peak_rss_mib: f64,
    /// `bitsfarm upload`'s CPU time (user + system), seconds.
    pub upload_cpu_s: f64,
    /// `bitsfarm serve`'s peak RSS (node and application), MiB.
    pub serve_peak_rss_mib: f64,
    /// `bitsfarm serve`'s CPU time, seconds.
    pub serve_cpu_s: f64,
}

/// The benchmark's result.
#[derive(Debug, Serialize, Deserialize)]
pub struct Live {
    /// What was uploaded.
    pub workload: String,
    /// Every round, in the order run (by reference and by value alternating).
    pub rounds: Vec<LiveRound>,
    /// By reference: MB/s by wall time, median (min–max) over the rounds.
    pub by_reference_mb_per_s: Spread,
    /// By reference: MB per CPU second of both processes together.
    pub by_reference_mb_per_cpu_s: Spread,
    /// By value: MB/s by wall time.
    pub by_value_mb_per_s: Spread,
    /// By value: MB per CPU second of both processes together.
    pub by_value_mb_per_cpu_s: Spread,
    /// The largest peak RSS of `bitsfarm upload`, MiB.
    pub upload_peak_rss_mib_max: f64,
    /// The largest peak RSS of `serve`, MiB.
    pub serve_peak_rss_mib_max: f64,
    /// The target.
    pub target: String,
}

/// A process's peak RSS (KiB) and CPU seconds, from `/proc`.
pub(crate) fn proc_numbers(pid: u32) -> anyhow::Result<(u64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .context("peak RSS needs /proc (Linux)")?;
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM")?;
    Ok((hwm, cpu_s(&format!("/proc/{pid}/stat"))?))
}

/// User + system CPU seconds from a `/proc/<pid>/stat` (clock ticks of 1/100 s).
fn cpu_s(path: &str) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(path)?;
    let after = stat.rsplit_once(')').context("stat format")?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>()? + f[12].parse::<u64>()?;
    Ok(ticks as f64 / 100.0)
}

/// The numbers a process reports about itself at exit when `BITSFARM_PEAK_RSS=1` is set: one
/// stderr line `peak_rss_kib=<n> cpu_s=<x>`.
pub fn report_self_at_exit() {
    if std::env::var("BITSFARM_PEAK_RSS").is_ok_and(|v| v == "1")
        && let Ok((kib, cpu)) = proc_numbers(std::process::id())
    {
        let _ = writeln!(std::io::stderr(), "peak_rss_kib={kib} cpu_s={cpu}");
    }
}

fn write_test_file(path: &Path, len: u64) -> anyhow::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut block = vec![0u8; 1 << 20];
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut left = len;
    while left > 0 {
        for b in block.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b.copy_from_slice(&x.to_le_bytes()[..b.len()]);
        }
        let n = left.min(block.len() as u64) as usize;
        f.write_all(&block[..n])?;
        left -= n as u64;
    }
    f.flush()?;
    Ok(())
}

fn round(
    exe: &Path,
    dir: &Path,
    file: &Path,
    len: u64,
    notification: &str,
) -> anyhow::Result<LiveRound> {
    let root = dir.join("up");
    let _ = std::fs::remove_dir_all(&root);
    let mut serve = Command::new(exe)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--backend-listen",
            "127.0.0.1:0",
            "--notification",
            notification,
            "--dedupe",
            "--upload-root",
        ])
        .arg(&root)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let node = {
        let mut lines = BufReader::new(serve.stdout.take().context("serve's stdout")?).lines();
        let addr = loop {
            let line = lines.next().context("serve ended before its banner")??;
            if let Some(rest) = line.trim().strip_prefix("BITS node") {
                break rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .trim_start_matches("http://")
                    .trim_end_matches("/<any")
                    .split('/')
                    .next()
                    .unwrap_or_default()
                    .to_owned();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        addr
    };
    let t = Instant::now();
    let out = Command::new(exe)
        .arg("upload")
        .arg(file)
        .arg(format!("http://{node}/bench/big.bin"))
        .args(["--transaction-id", "--fragment-size", "8388608"])
        .env("BITSFARM_PEAK_RSS", "1")
        .env("RUST_LOG", "warn")
        .output()?;
    let wall_s = t.elapsed().as_secs_f64();
    let serve_numbers = proc_numbers(serve.id());
    let _ = serve.kill();
    let _ = serve.wait();
    let err = String::from_utf8_lossy(&out.stderr);
    anyhow::ensure!(out.status.success(), "the upload failed: {err}");
    let (serve_kib, serve_cpu) = serve_numbers?;
    let line = err
        .lines()
        .find(|l| l.starts_with("peak_rss_kib="))
        .context("the upload reported no peak RSS")?;
    let mut upload_kib = 0.0;
    let mut upload_cpu = 0.0;
    for kv in line.split_whitespace() {
        match kv.split_once('=') {
            Some(("peak_rss_kib", v)) => upload_kib = v.parse()?,
            Some(("cpu_s", v)) => upload_cpu = v.parse()?,
            _ => {}
        }
    }
    Ok(LiveRound {
        notification: notification.to_owned(),
        wall_s,
        mb_per_s: len as f64 / 1e6 / wall_s,
        upload_peak_rss_mib: upload_kib / 1024.0,
        upload_cpu_s: upload_cpu,
        serve_peak_rss_mib: serve_kib as f64 / 1024.0,
        serve_cpu_s: serve_cpu,
    })
}

/// Runs the benchmark: [`ROUNDS`] rounds of a 1 GiB upload by reference and as many by value,
/// alternating (which goes first alternates too), each round telling `say` its numbers.
pub fn run(exe: &Path, say: &mut dyn FnMut(&LiveRound)) -> anyhow::Result<Live> {
    let len: u64 = 1 << 30;
    let dir = std::env::temp_dir().join(format!("bitsfarm-bench-live-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("big.bin");
    write_test_file(&file, len)?;
    let kinds = ["by-reference", "by-value"];
    let rounds: anyhow::Result<Vec<LiveRound>> = (0..ROUNDS)
        .flat_map(|i| [kinds[i % 2], kinds[1 - i % 2]])
        .map(|kind| {
            let r = round(exe, &dir, &file, len, kind)?;
            say(&r);
            Ok(r)
        })
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    let rounds = rounds?;
    let spread = |kind: &str, f: &dyn Fn(&LiveRound) -> f64| {
        Spread::of(
            rounds
                .iter()
                .filter(|r| r.notification == kind)
                .map(f)
                .collect(),
        )
    };
    let per_cpu = |r: &LiveRound| len as f64 / 1e6 / (r.upload_cpu_s + r.serve_cpu_s).max(1e-9);
    Ok(Live {
        workload: "1 GiB file, --transaction-id, 8 MiB fragments, serve --dedupe with durable sessions under --upload-root, loopback".into(),
        by_reference_mb_per_s: spread(kinds[0], &|r| r.mb_per_s),
        by_reference_mb_per_cpu_s: spread(kinds[0], &per_cpu),
        by_value_mb_per_s: spread(kinds[1], &|r| r.mb_per_s),
        by_value_mb_per_cpu_s: spread(kinds[1], &per_cpu),
        upload_peak_rss_mib_max: rounds.iter().map(|r| r.upload_peak_rss_mib).fold(0.0, f64::max),
        serve_peak_rss_mib_max: rounds.iter().map(|r| r.serve_peak_rss_mib).fold(0.0, f64::max),
        rounds,
        target: ">= 500 MB/s by reference, < 256 MiB peak RSS in both processes".into(),
    })
}
