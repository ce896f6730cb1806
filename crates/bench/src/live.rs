//! `bench --only live`: a 1 GiB upload with a transaction id and 8 MiB fragments through
//! `serve` (durable sessions under an upload root), on loopback, as two processes: by reference
//! (the application opens the file), by value (the node sends it in the request body), by
//! reference through `bitsfarm proxy` (a third process), and by reference through the live farm
//! (`bitsfarm farm`: the shared address, a node's front, the node), in interleaved rounds.
//! Measures the throughput by wall time and per CPU second of all the processes, and each
//! process's peak RSS (memory O(fragment), not O(file)).

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
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LiveRound {
    /// How the node handed the file to the application: `by-reference` or `by-value`; or
    /// `via-proxy`: by reference, the client uploading through `bitsfarm proxy`; or `via-farm`:
    /// by reference, to the shared address of `bitsfarm farm happy-path` (3 nodes, on disk).
    pub notification: String,
    /// Seconds from the first byte to the acknowledged job.
    pub wall_s: f64,
    /// Megabytes (10^6) per second.
    pub mb_per_s: f64,
    /// `bitsfarm upload`'s peak RSS, MiB.
    pub upload_peak_rss_mib: f64,
    /// `bitsfarm upload`'s CPU time (user + system), seconds.
    pub upload_cpu_s: f64,
    /// `bitsfarm serve`'s peak RSS (node and application), MiB; `via-farm`: `bitsfarm farm`'s
    /// (its nodes, application and balancers).
    pub serve_peak_rss_mib: f64,
    /// `bitsfarm serve`'s CPU time, seconds; `via-farm`: `bitsfarm farm`'s.
    pub serve_cpu_s: f64,
    /// `via-proxy`: `bitsfarm proxy`'s peak RSS, MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_peak_rss_mib: Option<f64>,
    /// `via-proxy`: `bitsfarm proxy`'s CPU time, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_cpu_s: Option<f64>,
}

/// The benchmark's result.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
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
    /// Through the proxy (by reference): MB/s by wall time.
    pub via_proxy_mb_per_s: Spread,
    /// Through the proxy: MB per CPU second of the three processes together.
    pub via_proxy_mb_per_cpu_s: Spread,
    /// Through the proxy over straight to `serve` (by reference), by wall time, per round.
    pub via_proxy_over_direct: Spread,
    /// Through the live farm (by reference): MB/s by wall time.
    pub via_farm_mb_per_s: Spread,
    /// Through the live farm: MB per CPU second of both processes together.
    pub via_farm_mb_per_cpu_s: Spread,
    /// Through the live farm over straight to `serve` (by reference), by wall time, per round.
    pub via_farm_over_direct: Spread,
    /// The largest peak RSS of `bitsfarm proxy`, MiB.
    pub proxy_peak_rss_mib_max: f64,
    /// The largest peak RSS of `bitsfarm upload`, MiB.
    pub upload_peak_rss_mib_max: f64,
    /// The largest peak RSS of `serve`, MiB.
    pub serve_peak_rss_mib_max: f64,
    /// The largest peak RSS of `bitsfarm farm`, MiB.
    pub farm_peak_rss_mib_max: f64,
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

/// Starts `bitsfarm proxy` in front of `node` (no control API, reports under `dir`); the
/// process and its shared address.
fn start_proxy(
    exe: &Path,
    dir: &Path,
    node: &str,
) -> anyhow::Result<(std::process::Child, String)> {
    let mut proxy = Command::new(exe)
        .args([
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--control",
            "none",
            "--json",
        ])
        .arg("--upstream")
        .arg(format!("n1=http://{node}"))
        .arg("-o")
        .arg(dir.join("proxy-report"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    match first_json_line(&mut proxy, "shared") {
        Ok(shared) => Ok((proxy, shared)),
        Err(e) => {
            let _ = proxy.kill();
            let _ = proxy.wait();
            Err(e)
        }
    }
}

/// The string at `key` of the JSON object a process (`bitsfarm proxy --json`, `bitsfarm farm
/// --json`) prints first: its addresses. The rest of its output is read and dropped.
fn first_json_line(child: &mut std::process::Child, key: &str) -> anyhow::Result<String> {
    let mut lines = BufReader::new(child.stdout.take().context("no stdout")?).lines();
    let first = lines
        .next()
        .context("the process ended before its addresses")??;
    let addrs: serde_json::Value =
        serde_json::from_str(&first).context("the first line is not the addresses")?;
    let value = addrs[key]
        .as_str()
        .with_context(|| format!("no {key} in the first line: {first}"))?
        .to_owned();
    std::thread::spawn(move || for _ in lines {});
    Ok(value)
}

fn round(exe: &Path, dir: &Path, file: &Path, len: u64, kind: &str) -> anyhow::Result<LiveRound> {
    let notification = if kind == "by-value" {
        "by-value"
    } else {
        "by-reference"
    };
    let root = dir.join("up");
    let _ = std::fs::remove_dir_all(&root);
    // What earlier rounds left dirty goes to disk now, not during this round's timing.
    rustix::fs::sync();
    if kind == "via-farm" {
        return farm_round(exe, dir, file, len, &root);
    }
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
    let mut proxy = match kind {
        "via-proxy" => Some(start_proxy(exe, dir, &node)?),
        _ => None,
    };
    let target = proxy
        .as_ref()
        .map_or(node.as_str(), |(_, shared)| shared.as_str());
    let (out, wall_s) = upload(exe, file, target)?;
    let serve_numbers = proc_numbers(serve.id());
    let proxy_numbers = proxy.as_ref().map(|(p, _)| proc_numbers(p.id()));
    for child in proxy
        .as_mut()
        .map(|(p, _)| p)
        .into_iter()
        .chain([&mut serve])
    {
        let _ = child.kill();
        let _ = child.wait();
    }
    live_round(
        kind,
        len,
        wall_s,
        &out,
        serve_numbers?,
        proxy_numbers.transpose()?,
    )
}

/// A round's numbers: the upload's (from its output), the server's (`serve` or `farm`) and the
/// proxy's (peak RSS in KiB, CPU seconds).
fn live_round(
    kind: &str,
    len: u64,
    wall_s: f64,
    upload: &std::process::Output,
    (server_kib, server_cpu): (u64, f64),
    proxy: Option<(u64, f64)>,
) -> anyhow::Result<LiveRound> {
    let (upload_kib, upload_cpu) = upload_numbers(upload)?;
    Ok(LiveRound {
        notification: kind.to_owned(),
        wall_s,
        mb_per_s: len as f64 / 1e6 / wall_s,
        upload_peak_rss_mib: upload_kib / 1024.0,
        upload_cpu_s: upload_cpu,
        serve_peak_rss_mib: server_kib as f64 / 1024.0,
        serve_cpu_s: server_cpu,
        proxy_peak_rss_mib: proxy.map(|(kib, _)| kib as f64 / 1024.0),
        proxy_cpu_s: proxy.map(|(_, cpu)| cpu),
    })
}

/// `bitsfarm upload` of `file` to `target` (`host:port`): its output and the wall time.
fn upload(exe: &Path, file: &Path, target: &str) -> anyhow::Result<(std::process::Output, f64)> {
    let t = Instant::now();
    let out = Command::new(exe)
        .arg("upload")
        .arg(file)
        .arg(format!("http://{target}/bench/big.bin"))
        .args(["--transaction-id", "--fragment-size", "8388608"])
        .env("BITSFARM_PEAK_RSS", "1")
        .env("RUST_LOG", "warn")
        .output()?;
    Ok((out, t.elapsed().as_secs_f64()))
}

/// The peak RSS (KiB) and CPU seconds an upload reported, or why it failed.
fn upload_numbers(out: &std::process::Output) -> anyhow::Result<(f64, f64)> {
    let err = String::from_utf8_lossy(&out.stderr);
    anyhow::ensure!(out.status.success(), "the upload failed: {err}");
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
    Ok((upload_kib, upload_cpu))
}

/// A round through the live farm: `bitsfarm farm happy-path` (3 nodes, by reference, sessions
/// under `root`, dedupe as `serve --dedupe`) serving outside clients, the upload to its shared
/// address.
fn farm_round(
    exe: &Path,
    dir: &Path,
    file: &Path,
    len: u64,
    root: &Path,
) -> anyhow::Result<LiveRound> {
    let mut farm = Command::new(exe)
        .args([
            "farm",
            "happy-path",
            "--set",
            "farm.notification=by-reference",
            "--set",
            "backend.dedupe=true",
            "--listen",
            "127.0.0.1:0",
            "--control",
            "none",
            "--json",
            "--upload-root",
        ])
        .arg(root)
        .arg("-o")
        .arg(dir.join("farm-report"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let run = first_json_line(&mut farm, "shared").and_then(|shared| {
        let (out, wall_s) = upload(exe, file, &shared)?;
        Ok((out, wall_s, proc_numbers(farm.id())?))
    });
    let _ = farm.kill();
    let _ = farm.wait();
    let (out, wall_s, farm_numbers) = run?;
    live_round("via-farm", len, wall_s, &out, farm_numbers, None)
}

/// Runs the benchmark: one untimed upload of each kind, then [`ROUNDS`] rounds of a 1 GiB
/// upload by reference, as many by value, through the proxy and through the live farm,
/// interleaved (the order rotates each round), each upload telling `say` its numbers.
pub fn run(exe: &Path, say: &mut dyn FnMut(&LiveRound)) -> anyhow::Result<Live> {
    let len: u64 = 1 << 30;
    let dir = std::env::temp_dir().join(format!("bitsfarm-bench-live-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("big.bin");
    write_test_file(&file, len)?;
    let kinds = ["by-reference", "by-value", "via-proxy", "via-farm"];
    // One untimed upload of each kind first: the page cache, the file's pages and the binary
    // warm, as for the simulated benchmarks' contenders.
    let rounds: anyhow::Result<Vec<LiveRound>> = kinds
        .iter()
        .try_for_each(|kind| round(exe, &dir, &file, len, kind).map(drop))
        .and_then(|()| {
            (0..ROUNDS)
                .flat_map(|i| (0..kinds.len()).map(move |k| kinds[(i + k) % kinds.len()]))
                .map(|kind| {
                    let r = round(exe, &dir, &file, len, kind)?;
                    say(&r);
                    Ok(r)
                })
                .collect()
        });
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
    let per_cpu = |r: &LiveRound| {
        let cpu = r.upload_cpu_s + r.serve_cpu_s + r.proxy_cpu_s.unwrap_or(0.0);
        len as f64 / 1e6 / cpu.max(1e-9)
    };
    let of_kind = |kind: &str| -> Vec<f64> {
        rounds
            .iter()
            .filter(|r| r.notification == kind)
            .map(|r| r.mb_per_s)
            .collect()
    };
    let over_direct = |kind: &str| {
        Spread::of(
            of_kind(kind)
                .iter()
                .zip(of_kind(kinds[0]))
                .map(|(other, direct)| other / direct)
                .collect(),
        )
    };
    let peak =
        |f: &dyn Fn(&LiveRound) -> Option<f64>| rounds.iter().filter_map(f).fold(0.0, f64::max);
    Ok(Live {
        workload: "1 GiB file, --transaction-id, 8 MiB fragments, serve --dedupe with durable sessions under --upload-root, loopback; straight to serve, through bitsfarm proxy, and through bitsfarm farm happy-path (shared address, node front, node)".into(),
        by_reference_mb_per_s: spread(kinds[0], &|r| r.mb_per_s),
        by_reference_mb_per_cpu_s: spread(kinds[0], &per_cpu),
        by_value_mb_per_s: spread(kinds[1], &|r| r.mb_per_s),
        by_value_mb_per_cpu_s: spread(kinds[1], &per_cpu),
        via_proxy_mb_per_s: spread(kinds[2], &|r| r.mb_per_s),
        via_proxy_mb_per_cpu_s: spread(kinds[2], &per_cpu),
        via_proxy_over_direct: over_direct(kinds[2]),
        via_farm_mb_per_s: spread(kinds[3], &|r| r.mb_per_s),
        via_farm_mb_per_cpu_s: spread(kinds[3], &per_cpu),
        via_farm_over_direct: over_direct(kinds[3]),
        proxy_peak_rss_mib_max: peak(&|r| r.proxy_peak_rss_mib),
        upload_peak_rss_mib_max: peak(&|r| Some(r.upload_peak_rss_mib)),
        serve_peak_rss_mib_max: peak(&|r| (r.notification != kinds[3]).then_some(r.serve_peak_rss_mib)),
        farm_peak_rss_mib_max: peak(&|r| (r.notification == kinds[3]).then_some(r.serve_peak_rss_mib)),
        rounds,
        target: ">= 500 MB/s by reference, comparable through the proxy and the live farm, < 256 MiB peak RSS in each process".into(),
    })
}
