//! Load and soak: many real client jobs at once, with transaction ids, through a proxy that
//! cuts connections at random, against a node on a disk store and its deduplicating
//! application over loopback TCP. Every job must be acknowledged, every file delivered with its
//! own bytes and exactly one effect, and the node must end with no session left.

use std::{
    io,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use probe::Clock;
use rand::{RngExt as _, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::{io::AsyncWriteExt, net::TcpStream, task::JoinSet};
use transport::{BoxFuture, BoxIo, Connect};

use crate::{Server, ServerConfig};

/// How much load.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// Clients uploading at once.
    pub clients: u64,
    /// Files each client uploads, one after another.
    pub files_per_client: u64,
    /// Largest file, bytes (sizes are uniform in 1..=this).
    pub file_size_max: u64,
    /// Chance that a connection is cut after a random number of bytes.
    pub cut_probability: f64,
    /// The generator's seed (sizes, contents, cuts).
    pub seed: u64,
}

/// What a soak run did.
#[derive(Debug, Clone, Default)]
pub struct SoakStats {
    /// Jobs run (all acknowledged).
    pub jobs: u64,
    /// Bytes uploaded (one copy of each file).
    pub bytes: u64,
    /// Connections the proxy cut.
    pub cuts: u64,
    /// Deliveries the application received (duplicates included).
    pub deliveries: u64,
    /// Deliveries beyond one per file, all without effect.
    pub duplicates: u64,
    /// Wall time.
    pub wall_s: f64,
}

/// A connector that goes through a cutting proxy to `target`.
struct Cutting {
    target: String,
    cut_probability: f64,
    rng: std::sync::Mutex<ChaCha8Rng>,
    cuts: Arc<AtomicU64>,
}

impl Connect for Cutting {
    fn connect<'a>(&'a self, _authority: &'a str) -> BoxFuture<'a, io::Result<BoxIo>> {
        Box::pin(async move {
            let upstream = TcpStream::connect(&self.target).await?;
            let cut_after = {
                let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
                rng.random_bool(self.cut_probability)
                    .then(|| rng.random_range(0..200_000u64))
            };
            let Some(limit) = cut_after else {
                return Ok(Box::new(upstream) as BoxIo);
            };
            // A pipe whose far end forwards to the node until `limit` bytes went up, then
            // drops both sides: the job sees a reset mid-request or mid-answer.
            let (near, far) = tokio::io::duplex(64 << 10);
            let cuts = self.cuts.clone();
            tokio::spawn(async move {
                let (mut fr, mut fw) = tokio::io::split(far);
                let (mut ur, mut uw) = upstream.into_split();
                let up = async {
                    let mut sent = 0u64;
                    let mut buf = vec![0u8; 8192];
                    loop {
                        let n = tokio::io::AsyncReadExt::read(&mut fr, &mut buf).await?;
                        if n == 0 {
                            return io::Result::Ok(());
                        }
                        let n = n.min((limit - sent) as usize);
                        uw.write_all(&buf[..n]).await?;
                        sent += n as u64;
                        if sent >= limit {
                            return Ok(());
                        }
                    }
                };
                let down = tokio::io::copy(&mut ur, &mut fw);
                tokio::select! {
                    _ = up => {}
                    _ = down => {}
                }
                cuts.fetch_add(1, Ordering::Relaxed);
            });
            Ok(Box::new(near) as BoxIo)
        })
    }
}

/// Runs the soak; `Err` says what broke.
pub fn soak(cfg: &SoakConfig) -> Result<SoakStats, String> {
    let cfg = cfg.clone();
    let (result, panics) = sim::capture(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(run(cfg))
    });
    if !panics.is_empty() {
        return Err(format!(
            "{} panic(s) during the soak: {:?}",
            panics.count, panics.messages
        ));
    }
    result.map_err(|e| format!("the soak panicked: {e}"))?
}

async fn run(cfg: SoakConfig) -> Result<SoakStats, String> {
    let started = Instant::now();
    let server = Server::loopback(ServerConfig::default()).await?;
    let target = server
        .node_addr()
        .ok_or("a loopback server has an address")?;
    let cuts = Arc::new(AtomicU64::new(0));
    let connector: Arc<dyn Connect> = Arc::new(Cutting {
        target,
        cut_probability: cfg.cut_probability,
        rng: std::sync::Mutex::new(ChaCha8Rng::seed_from_u64(cfg.seed ^ 0xC075)),
        cuts: cuts.clone(),
    });
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut jobs = JoinSet::new();
    let mut expected = Vec::new();
    for c in 0..cfg.clients {
        let mut files = Vec::new();
        for f in 0..cfg.files_per_client {
            let len = rng.random_range(1..=cfg.file_size_max.max(1)) as usize;
            let mut payload = vec![0u8; len];
            rand::Rng::fill_bytes(&mut rng, &mut payload);
            let file = format!("/soak/c{c:03}-f{f:03}.bin");
            expected.push(file.clone());
            files.push((file, payload));
        }
        let connector = connector.clone();
        let seed = cfg.seed.wrapping_add(c);
        jobs.spawn(async move {
            let mut reports = Vec::new();
            for (k, (file, payload)) in files.into_iter().enumerate() {
                let job = client::Job::new(
                    client::JobConfig {
                        name: format!("c{c}-f{k}"),
                        url: format!("http://node{file}"),
                        fragment_size: 64 << 10,
                        transaction_id: true,
                        min_retry_delay_s: 5,
                        no_progress_timeout_s: 600,
                        request_timeout_s: 60,
                        ..client::JobConfig::default()
                    },
                    payload,
                    client::Env {
                        connector: connector.clone(),
                        probe: probe::none(),
                        rng: ChaCha8Rng::seed_from_u64(seed.wrapping_mul(1000) + k as u64),
                        clock: Clock::starting_now(),
                    },
                )
                .map_err(|e| e.to_string())?;
                reports.push(job.run().await);
            }
            Ok::<_, String>(reports)
        });
    }
    let mut stats = SoakStats::default();
    while let Some(r) = jobs.join_next().await {
        for report in r.map_err(|e| e.to_string())?? {
            if report.state != client::JobState::Acknowledged {
                return Err(format!(
                    "{} ended {:?}: {:?}",
                    report.file, report.state, report.error
                ));
            }
            stats.jobs += 1;
            stats.bytes += report.total;
        }
    }
    // The application's view: every file, with its payload, one effect.
    let snapshot = server.ledger().snapshot();
    for file in &expected {
        let deliveries: Vec<_> = snapshot
            .deliveries
            .iter()
            .filter(|d| &d.file == file)
            .collect();
        if deliveries.is_empty() {
            return Err(format!("{file} was acknowledged but never delivered"));
        }
        let effects = deliveries.iter().filter(|d| d.effect).count();
        if effects != 1 {
            return Err(format!("{file}: {effects} effects"));
        }
        for d in &deliveries {
            if d.verification != backend::Verification::Verified {
                return Err(format!(
                    "{file}: a delivery of the wrong bytes ({:?})",
                    d.verification
                ));
            }
        }
    }
    stats.deliveries = snapshot.total_deliveries;
    stats.duplicates = snapshot.total_deliveries - expected.len() as u64;
    stats.cuts = cuts.load(Ordering::Relaxed);
    // Every job closed its session; a session can only be left behind when the answer to its
    // Create-Session was cut (its client never learned of it).
    let left = server.store().sessions().map_err(|e| e.to_string())?.len() as u64;
    if left > stats.cuts {
        return Err(format!(
            "{left} session(s) left on the node after {} cut(s)",
            stats.cuts
        ));
    }
    stats.wall_s = started.elapsed().as_secs_f64();
    Ok(stats)
}
