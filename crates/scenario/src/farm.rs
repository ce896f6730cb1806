//! The simulated farm: nodes behind the shared address `farm`, the server application on
//! `backend`, clients `c00`..., all real bitsfarm code over the simulated network, driven by a
//! scenario's faults.
//!
//! **Invariant:** everything here runs on one current-thread runtime with a paused clock;
//! randomness comes from the run's seed, split per entity and boot.

use std::{
    collections::BTreeMap,
    hash::Hasher as _,
    io,
    sync::{Arc, Mutex},
    time::Duration,
};

use backend::{Backend, BackendConfig, Ledger};
use client::{Job, JobConfig, JobKind};
use node::{Node, NodeConfig};
use probe::{Clock, Event, SharedProbe};
use rand::{RngExt as _, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sim::{Net, NetConfig};
use tokio::{sync::mpsc, task::JoinHandle};

use crate::{
    data,
    fault::{Command, Fabric, Harness, RuleReport},
    load::client_name,
    log::Sink,
    spec::{Scenario, SessionState},
    stores::Stores,
    track::Tracker,
};

/// How long after its job ended a workload's file is folded into the totals and forgotten.
pub const STREAM_GRACE_MS: u64 = 7_200_000;

/// The shared address clients upload to.
pub const SHARED: &str = "farm";
/// The server application's host.
pub const BACKEND: &str = "backend";

/// A generator for one entity, from the run's seed, the entity's name and its boot number:
/// a rebooted node draws new session ids.
pub fn entity_rng(seed: u64, entity: &str, boot: u64) -> ChaCha8Rng {
    let mut h = twox_hash::XxHash3_64::new();
    h.write_u64(seed);
    h.write(entity.as_bytes());
    h.write_u64(boot);
    ChaCha8Rng::seed_from_u64(h.finish())
}

/// The network a farm runs on: the simulator's [`sim::Net`], or real sockets (the live farm,
/// `scenario::live`). Hosts are named (`node-2`, `backend`, `farm`, `c03`); the farm never sees
/// an address.
pub trait Network: Fabric {
    /// The host's boot number (counts its starts; seeds its generator).
    fn boot(&self, host: &str) -> u64;
    /// A listener for the host (it is up from now on).
    fn listen(&self, host: &str) -> Box<dyn transport::Listen>;
    /// How the host opens connections to others, by name.
    fn connector(&self, from: &str) -> Arc<dyn transport::Connect>;
    /// Whether the host is up.
    fn is_up(&self, host: &str) -> bool;
    /// A client host.
    fn add_client(&self, name: &str);
    /// A shared address over `members`, picking one per connection.
    fn add_shared(&self, name: &str, members: Vec<String>, policy: sim::Policy);
    /// Ends a partition.
    fn heal(&self, a: &str, b: &str);
    /// What the host is called where others must reach it (its `BITS-Host-Id`): its name on
    /// the simulator, its address on real sockets.
    fn advertise(&self, host: &str) -> String {
        host.to_owned()
    }
    /// A new listener that takes over the address of `host` (up) from its current one, whose
    /// accept loop then ends with [`transport::server::HANDED_OVER`]: a recycled IIS worker.
    /// `None` where the network cannot (then a recycle restarts the node).
    fn hand_over(&self, _host: &str) -> Option<Box<dyn transport::Listen>> {
        None
    }
}

impl Network for Net {
    fn boot(&self, host: &str) -> u64 {
        Net::boot(self, host)
    }

    fn listen(&self, host: &str) -> Box<dyn transport::Listen> {
        Box::new(Net::listen(self, host))
    }

    fn connector(&self, from: &str) -> Arc<dyn transport::Connect> {
        Arc::new(Net::connector(self, from))
    }

    fn is_up(&self, host: &str) -> bool {
        Net::is_up(self, host)
    }

    fn add_client(&self, name: &str) {
        Net::add_client(self, name);
    }

    fn add_shared(&self, name: &str, members: Vec<String>, policy: sim::Policy) {
        Net::add_shared(self, name, members, policy);
    }

    fn heal(&self, a: &str, b: &str) {
        Net::heal(self, a, b);
    }

    fn hand_over(&self, host: &str) -> Option<Box<dyn transport::Listen>> {
        Net::hand_over(self, host).map(|l| Box::new(l) as Box<dyn transport::Listen>)
    }
}

/// What a run produced, before it is summarised.
pub struct RunResult {
    /// Whether every job ended before the virtual deadline.
    pub completed: bool,
    /// Virtual time when the last job ended (or the deadline).
    pub virtual_time_ms: u64,
    /// Events recorded.
    pub events: u64,
    /// Hash of the event log.
    pub event_hash: String,
    /// Every file.
    pub tracker: Tracker,
    /// The fault rules' counters.
    pub rules: Vec<RuleReport>,
    /// Deliveries in the application's ledger (cross-checked against the events).
    pub ledger_deliveries: u64,
    /// Panics inside the run (each fails it).
    pub panics: sim::Panics,
    /// Why the harness could not finish the run (its own panic, a hang, a budget), if so.
    pub harness_failure: Option<String>,
}

/// Runs a scenario once with `seed`. `sink` receives every event record as it happens.
///
/// A panic anywhere in the run (a node, a client job, the application, a harness task) does
/// not stop the process: it is recorded in [`RunResult::panics`], and the checker fails the run
/// on it (`no_panics`).
pub fn run(scenario: &Scenario, seed: u64, sink: Option<Sink>) -> RunResult {
    run_bounded(scenario, seed, sink, crate::fault::event_budget(scenario))
}

/// [`run`] with a budget of events other than [`crate::fault::event_budget`]: a run that records
/// `max_events` events is stopped and does not complete.
pub fn run_bounded(
    scenario: &Scenario,
    seed: u64,
    sink: Option<Sink>,
    max_events: u64,
) -> RunResult {
    let deadline = Duration::from_secs_f64(scenario.deadline_days * 86_400.0);
    let slot: Arc<Mutex<Option<RunResult>>> = Arc::default();
    let out = slot.clone();
    let commits = scenario.farm.notification == node::NotificationType::None;
    // The run bounds itself by the scenario's deadline; the outer bound only catches a harness
    // bug that would otherwise hang.
    let (finished, panics) = sim::capture(|| {
        sim::run(deadline + Duration::from_secs(86_400), async move {
            let result = run_farm(
                scenario,
                seed,
                sink,
                deadline,
                max_events,
                |probe| sim_net(scenario, seed, probe),
                Ledgers::Counted,
                Extras::default(),
            )
            .await;
            *out.lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
        })
    });
    let result = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
    match (finished, result) {
        (Ok(Some(())), Some(mut result)) => {
            result.panics = panics;
            result
        }
        // The run's own future panicked or hung: nothing it tracked is left to report, and
        // the run fails on its panics (or on not completing).
        (finished, _) => RunResult {
            completed: false,
            virtual_time_ms: 0,
            events: 0,
            event_hash: String::new(),
            tracker: Tracker::new(commits),
            rules: Vec::new(),
            ledger_deliveries: 0,
            panics,
            harness_failure: Some(match finished {
                Err(why) => format!("the run itself panicked: {why}"),
                Ok(_) => "the run did not end by its own deadline (a harness bug)".to_owned(),
            }),
        },
    }
}

/// Starts the rogue clients: each drives the fuzzer's requests at the shared address from its
/// own generator, through whatever faults the scenario injects. A malformed answer panics the
/// rogue's task (the run fails `no_panics` with the seed and the request). Dropping the set
/// stops them.
fn start_rogues(
    rogues: &crate::spec::Rogues,
    net: &Arc<dyn Network>,
    seed: u64,
) -> tokio::task::JoinSet<()> {
    let mut set = tokio::task::JoinSet::new();
    for i in 0..rogues.count {
        let name = format!("r{i:02}");
        net.add_client(&name);
        let connector = net.connector(&name);
        let dial: fuzz::Dial = Arc::new(move || {
            let c = connector.clone();
            Box::pin(async move { c.connect(SHARED).await })
        });
        let rogue_seed = rand::RngExt::random::<u64>(&mut entity_rng(seed, &name, 0));
        let n = rogues.requests;
        set.spawn(async move {
            if let Err(why) =
                fuzz::drive_through_faults(dial, rogue_seed, n, Duration::from_secs(3600)).await
            {
                panic!("rogue {name}: {why}");
            }
        });
    }
    set
}

struct NodeSlot {
    task: Option<JoinHandle<()>>,
    node: Option<Arc<Node>>,
}

struct Farm {
    scenario: Scenario,
    seed: u64,
    clock: Clock,
    net: Arc<dyn Network>,
    harness: Arc<Harness>,
    ledger: Ledger,
    stores: Stores,
    nodes: BTreeMap<String, NodeSlot>,
    backend: Option<JoinHandle<()>>,
    host_id: bool,
    /// The user's application, instead of the built-in one (live farm only).
    app_url: Option<String>,
    ctl: mpsc::UnboundedSender<Command>,
    /// Each client's current job, for `cancel` faults.
    jobs: Jobs,
    /// What the nodes report to: the harness, or (live, with a control API) the nodes'
    /// notification ledger in front of it.
    node_probe: SharedProbe,
    /// Recycles of each node so far (each worker draws its own session ids).
    recycles: BTreeMap<String, u64>,
    /// Old workers of recycled nodes, serving the connections they accepted.
    draining: Vec<JoinHandle<()>>,
}

/// Each client's running job, by client name.
type Jobs = Arc<Mutex<BTreeMap<String, client::JobControl>>>;

impl Farm {
    fn node_config(&self, name: &str) -> NodeConfig {
        let f = &self.scenario.farm;
        NodeConfig {
            name: name.to_owned(),
            host_id: self.host_id.then(|| self.net.advertise(name)),
            host_id_fallback_timeout_s: f.fallback_timeout_s,
            session_timeout_s: f.session_timeout_s,
            cleanup_interval_s: f.cleanup_interval_s,
            max_upload_size: f.max_upload_size,
            notification: f.notification,
            notification_url: Some(
                self.app_url
                    .clone()
                    .unwrap_or_else(|| format!("http://{BACKEND}/bits/notify")),
            ),
            app_deadline_s: f.app_deadline_s,
            upload_reply: f.upload_reply,
            allow_overwrites: f.allow_overwrites,
            commit_point: f.commit_point,
            idle_timeout_s: f.idle_timeout_s,
            ..NodeConfig::default()
        }
    }

    fn start_node(&mut self, name: &str) {
        let listener = self.net.listen(name);
        self.start_worker(name, listener, 0);
    }

    /// Starts a worker of node `name` on `listener`: its first (`worker` 0) after a boot, or a
    /// recycled one.
    fn start_worker(&mut self, name: &str, listener: Box<dyn transport::Listen>, worker: u64) {
        let boot = self.net.boot(name);
        let keep = self.scenario.farm.session_state == SessionState::Durable;
        let store = self.stores.boot(name, boot, keep);
        let rng = if worker == 0 {
            entity_rng(self.seed, name, boot)
        } else {
            entity_rng(self.seed, &format!("{name}/worker-{worker}"), boot)
        };
        let env = node::Env {
            store,
            connector: self.net.connector(name),
            probe: self.node_probe.clone(),
            rng,
            clock: self.clock,
        };
        let node = Node::new(self.node_config(name), env)
            .expect("scenario validation keeps node settings valid");
        self.harness.mark_up(name);
        let task = tokio::spawn(node.clone().run(listener).map_unit());
        self.nodes.insert(
            name.to_owned(),
            NodeSlot {
                task: Some(task),
                node: Some(node),
            },
        );
    }

    fn start_backend(&mut self) {
        let listener = self.net.listen(BACKEND);
        let cfg = BackendConfig {
            name: BACKEND.into(),
            reply: self.scenario.farm.upload_reply,
            static_reply_url: self.scenario.backend.reply_url.clone(),
            ..BackendConfig::default()
        };
        let env = backend::Env {
            files: self.stores.files(),
            probe: self.harness.clone() as SharedProbe,
            clock: self.clock,
        };
        let app = Backend::new(cfg, self.ledger.clone(), env);
        self.harness.mark_up(BACKEND);
        self.backend = Some(tokio::spawn(app.run(listener).map_unit()));
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Crashed {
                host,
                restart_after,
            } => {
                if host == BACKEND {
                    if let Some(t) = self.backend.take() {
                        t.abort();
                    }
                } else if let Some(slot) = self.nodes.get_mut(&host) {
                    if let Some(t) = slot.task.take() {
                        t.abort();
                    }
                    slot.node = None;
                    // Old workers still draining die with the machine.
                    for t in self.draining.drain(..) {
                        t.abort();
                    }
                }
                if let Some(after) = restart_after {
                    let ctl = self.ctl.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(after).await;
                        let _ = ctl.send(Command::Restart { host });
                    });
                }
            }
            Command::Restart { host } => {
                // Up already, or the user's application (not the farm's to start).
                if self.net.is_up(&host) || (host == BACKEND && self.app_url.is_some()) {
                    return;
                }
                let durable =
                    host == BACKEND || self.scenario.farm.session_state == SessionState::Durable;
                self.harness.mark_up(&host);
                probe::Probe::event(
                    &*self.harness,
                    Event::Restarted {
                        host: host.clone(),
                        durable,
                    },
                );
                if host == BACKEND {
                    self.start_backend();
                } else {
                    self.start_node(&host);
                }
            }
            Command::Recycle { host } => {
                let Some(listener) = self.net.hand_over(&host) else {
                    return;
                };
                let worker = {
                    let n = self.recycles.entry(host.clone()).or_default();
                    *n += 1;
                    *n
                };
                // The old worker serves the connections it has until they end, passing each
                // new request to the new worker (requests in flight finish where they are).
                let old = self.nodes.get_mut(&host).and_then(|slot| {
                    if let Some(t) = slot.task.take() {
                        self.draining.push(t);
                    }
                    slot.node.take()
                });
                self.draining.retain(|t| !t.is_finished());
                self.start_worker(&host, listener, worker);
                if let (Some(old), Some(new)) =
                    (old, self.nodes.get(&host).and_then(|s| s.node.clone()))
                {
                    old.hand_to(new);
                }
            }
            Command::HostId { enabled } => {
                self.host_id = enabled;
                for (name, slot) in &self.nodes {
                    if let Some(n) = &slot.node {
                        n.set_host_id(enabled.then(|| self.net.advertise(name)));
                    }
                }
                probe::Probe::event(&*self.harness, Event::HostIdToggled { enabled });
            }
            Command::Cancel { client } => {
                let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(job) = jobs.get(&client) {
                    job.cancel();
                }
            }
            Command::Hosts(answer) => {
                let mut hosts: Vec<(String, Option<u64>)> = self
                    .nodes
                    .iter()
                    .map(|(name, slot)| {
                        (name.clone(), slot.node.as_ref().map(|n| n.open_sessions()))
                    })
                    .collect();
                if self.app_url.is_none() {
                    hosts.push((BACKEND.to_owned(), None));
                }
                let _ = answer.send(hosts);
            }
            Command::Heal { a, b, after } => {
                let net = self.net.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(after).await;
                    net.heal(&a, &b);
                });
            }
        }
    }
}

trait MapUnit {
    fn map_unit(self) -> impl std::future::Future<Output = ()> + Send;
}

impl<F: std::future::Future<Output = io::Result<()>> + Send> MapUnit for F {
    async fn map_unit(self) {
        if let Err(e) = self.await {
            tracing::debug!(error = %e, "server stopped");
        }
    }
}

/// One file a client uploads.
struct Upload {
    job: String,
    file: String,
    size: u64,
    offset: u64,
}

/// The client settings every upload of a run shares (from `[clients]` or `[workload]`).
#[derive(Clone)]
struct ClientSettings {
    fragment_size: u64,
    fragment_size_max: Option<u64>,
    retry_delay_s: u64,
    no_progress_timeout_s: u64,
    connect_timeout_s: u64,
    request_timeout_s: u64,
    transaction_id: bool,
}

impl ClientSettings {
    fn of_clients(c: &crate::spec::Clients) -> ClientSettings {
        ClientSettings {
            fragment_size: c.fragment_size,
            fragment_size_max: c.fragment_size_max,
            retry_delay_s: c.retry_delay_s,
            no_progress_timeout_s: c.no_progress_timeout_s,
            connect_timeout_s: c.connect_timeout_s,
            request_timeout_s: c.request_timeout_s,
            transaction_id: c.transaction_id,
        }
    }

    fn of_workload(w: &crate::spec::Workload) -> ClientSettings {
        ClientSettings {
            fragment_size: w.fragment_size,
            fragment_size_max: w.fragment_size_max,
            retry_delay_s: w.retry_delay_s,
            no_progress_timeout_s: w.no_progress_timeout_s,
            connect_timeout_s: w.connect_timeout_s,
            request_timeout_s: w.request_timeout_s,
            transaction_id: w.transaction_id,
        }
    }
}

/// Runs uploads: one BITS job per file, reported to the harness and the tracker.
#[derive(Clone)]
struct Uploader {
    net: Arc<dyn Network>,
    harness: Arc<Harness>,
    seed: u64,
    clock: Clock,
    kind: JobKind,
    settings: ClientSettings,
}

impl Uploader {
    /// Uploads one file from `client`; `jobs` (if any) holds the job's control while it runs.
    async fn upload(&self, client: &str, u: Upload, jobs: Option<&Jobs>) {
        let c = &self.settings;
        let cfg = JobConfig {
            name: u.job.clone(),
            url: format!("http://{SHARED}{}", u.file),
            kind: self.kind,
            fragment_size: c.fragment_size,
            fragment_size_max: c.fragment_size_max,
            min_retry_delay_s: c.retry_delay_s,
            no_progress_timeout_s: c.no_progress_timeout_s,
            connect_timeout_s: c.connect_timeout_s,
            request_timeout_s: c.request_timeout_s,
            content_name: Some(format!("{}.bin", u.job)),
            transaction_id: c.transaction_id,
            ..JobConfig::default()
        };
        let env = client::Env {
            connector: self.net.connector(client),
            probe: self.harness.clone() as SharedProbe,
            rng: entity_rng(self.seed, &u.job, 0),
            clock: self.clock,
        };
        let job = Job::new(cfg, data::payload(u.offset, u.size), env)
            .expect("scenario validation keeps job settings valid");
        if let Some(jobs) = jobs {
            jobs.lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(client.to_owned(), job.control());
        }
        let report = job.run().await;
        if let Some(jobs) = jobs {
            jobs.lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(client);
        }
        // Without an envelope the upload is exactly the pool slice, whose hash is cached.
        let hash = if c.transaction_id {
            report
                .hash()
                .expect("a simulated job uploads bytes in memory")
        } else {
            data::payload_hash(u.offset, u.size)
        };
        self.harness.with_tracker(|t| t.finish(&report, hash));
    }
}

/// Every upload of `[clients]`, planned before anything runs (so the plan depends on the seed
/// alone) and registered with the tracker: per client, its start and its files, uploaded one
/// after another.
fn plan_clients(
    scenario: &Scenario,
    seed: u64,
    uploader: &Uploader,
) -> Vec<(String, f64, Vec<Upload>)> {
    let c = &scenario.clients;
    let mut plan: Vec<(String, f64, Vec<Upload>)> = Vec::new();
    let mut rng = entity_rng(seed, "clients", 0);
    for i in 0..c.count {
        let name = client_name(i, c.count);
        let start = if c.start_spread_s > 0.0 {
            rng.random_range(0.0..c.start_spread_s)
        } else {
            0.0
        };
        let uploads = (0..c.files_per_client)
            .map(|k| {
                let job = format!("{name}-f{k:03}");
                let size = match c.file_size_max {
                    Some(max) if max > c.file_size => rng.random_range(c.file_size..=max),
                    _ => c.file_size,
                };
                let offset =
                    rng.random_range(0..data::OFFSET_SPAN / data::OFFSET_STEP) * data::OFFSET_STEP;
                Upload {
                    file: format!("/upload/{job}.bin"),
                    job,
                    size,
                    offset,
                }
            })
            .collect();
        plan.push((name, start, uploads));
    }
    uploader.harness.with_tracker(|t| {
        t.reserve(plan.iter().map(|(_, _, uploads)| uploads.len()).sum());
        for (client, _, uploads) in &plan {
            for u in uploads {
                t.register(&u.job, &u.file, client);
            }
        }
    });
    plan
}

/// The upload arrivals of a `[workload]`: a Poisson process (its rate following the daily
/// profile, hour by hour) over `duration_days`, each upload from a machine drawn at random,
/// its size drawn from the size distribution. Ends when the last upload has ended. Uploads
/// are registered as they arrive and forgotten once done, so memory follows the uploads in
/// flight, not the uploads of the run.
async fn arrivals(w: crate::spec::Workload, uploader: Uploader, seed: u64) {
    let mut rng = entity_rng(seed, "workload", 0);
    let sizes = crate::dist::Sampler::of(&w.file_size);
    let weights: Vec<f64> = match &w.daily_profile {
        Some(p) => {
            let mean = p.iter().sum::<f64>() / p.len() as f64;
            p.iter().map(|x| x / mean).collect()
        }
        None => vec![1.0; 24],
    };
    let end_s = w.duration_days * 86_400.0;
    let epoch = uploader.clock.epoch();
    let mut machines_seen = vec![false; w.machines as usize];
    let mut running = tokio::task::JoinSet::new();
    let mut t = 0.0f64;
    let mut n = 0u64;
    loop {
        let hour = (t / 3600.0).floor();
        let boundary = (hour + 1.0) * 3600.0;
        let rate = w.uploads_per_hour * weights[(hour as u64 % 24) as usize] / 3600.0;
        // Memoryless: a gap that crosses into the next hour is drawn again at its rate.
        let next = if rate > 0.0 {
            t + crate::dist::exponential(&mut rng, 1.0 / rate)
        } else {
            f64::INFINITY
        };
        if next >= boundary {
            t = boundary;
            if t >= end_s {
                break;
            }
            continue;
        }
        t = next;
        if t >= end_s {
            break;
        }
        let machine = rng.random_range(0..w.machines);
        let size = sizes
            .sample(&mut rng)
            .round()
            .clamp(0.0, crate::load::limits::FILE_SIZE as f64) as u64;
        let offset = rng.random_range(0..data::OFFSET_SPAN / data::OFFSET_STEP) * data::OFFSET_STEP;
        tokio::time::sleep_until(epoch + Duration::from_secs_f64(t)).await;
        while running.try_join_next().is_some() {}
        let client = format!("m{machine:05}");
        if !std::mem::replace(&mut machines_seen[machine as usize], true) {
            uploader.net.add_client(&client);
        }
        let job = format!("u{n:07}");
        n += 1;
        let u = Upload {
            file: format!("/upload/{job}.bin"),
            job,
            size,
            offset,
        };
        uploader
            .harness
            .with_tracker(|tr| tr.register(&u.job, &u.file, &client));
        let up = uploader.clone();
        running.spawn(async move { up.upload(&client, u, None).await });
    }
    while running.join_next().await.is_some() {}
}

/// Something that ends when a live farm serving outside clients should stop.
pub type Hold = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// What a live run adds to a farm; the simulator uses none of it.
#[derive(Default)]
pub struct Extras {
    /// Serve until this ends too, for clients the farm does not run (their files are followed
    /// from their first session).
    pub hold: Option<Hold>,
    /// The user's application instead of the built-in one; its 2xx answers count as
    /// deliveries.
    pub app_url: Option<String>,
    /// Hand a [`crate::control::Control`] here once the farm is up (and keep the nodes'
    /// notification ledger for it).
    pub control: Option<crate::control::ControlSlot>,
    /// Ends the run early, its clients done or not (Ctrl-C, `POST /stop`).
    pub stop: Option<Hold>,
    /// Keep the nodes' sessions on disk under this directory instead of in memory.
    pub upload_root: Option<std::path::PathBuf>,
}

/// The simulator's network for a scenario, reporting to `probe`.
fn sim_net(scenario: &Scenario, seed: u64, probe: SharedProbe) -> Arc<dyn Network> {
    let n = &scenario.network;
    Arc::new(Net::new(
        NetConfig {
            latency: Duration::from_millis(n.latency_ms),
            jitter: Duration::from_millis(n.jitter_ms),
            window: n.window_bytes as usize,
        },
        entity_rng(seed, "balancer", 0),
        probe,
    ))
}

/// What the built-in application's ledger keeps of a `[clients]` run's deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ledgers {
    /// Every delivery, in order: a live farm's application serves them at `GET /ledger`.
    Listed,
    /// A count only: nobody asks a simulated application for its list, which was a fifth of
    /// what a run of a million files kept in memory; the count is checked against every
    /// `Delivered` event, tracked file or not.
    Counted,
}

/// Runs a scenario's farm on the network `make_net` builds (given the harness as its probe)
/// until every job ends, the deadline passes or the event budget is spent.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run_farm(
    scenario: &Scenario,
    seed: u64,
    sink: Option<Sink>,
    deadline: Duration,
    max_events: u64,
    make_net: impl FnOnce(SharedProbe) -> Arc<dyn Network>,
    ledgers: Ledgers,
    extras: Extras,
) -> RunResult {
    let Extras {
        hold,
        app_url,
        control,
        stop,
        upload_root,
    } = extras;
    let clock = Clock::starting_now();
    let (ctl_tx, mut ctl_rx) = mpsc::unbounded_channel();
    let commits = scenario.farm.notification == node::NotificationType::None;
    let harness = Harness::new(
        clock,
        scenario,
        seed,
        {
            let t = if hold.is_some() {
                Tracker::adopting(commits)
            } else {
                Tracker::new(commits)
            };
            let t = if app_url.is_some() {
                t.counting_answers()
            } else {
                t
            };
            // A workload's files are folded two hours after their job ended (later answers
            // count as `late` duplicates) and forgotten.
            if scenario.workload.is_some() {
                t.streaming(STREAM_GRACE_MS, crate::check::txid_dedupe(scenario))
            } else {
                t
            }
        },
        sink,
        ctl_tx.clone(),
        max_events,
    );
    let net = make_net(harness.clone() as SharedProbe);
    harness.set_net(net.clone());
    let ledger = if scenario.workload.is_some() {
        Ledger::counting(scenario.backend.dedupe, |f| f.starts_with("/upload/"))
    } else if ledgers == Ledgers::Counted {
        Ledger::counting(scenario.backend.dedupe, |_| true)
    } else {
        Ledger::new(scenario.backend.dedupe)
    };
    let stores = match upload_root {
        Some(root) => Stores::disk(root),
        None => Stores::memory(),
    };
    let notifications = control.is_some().then(|| {
        let stores = stores.clone();
        let store_of: node::StoreOf = Box::new(move |node| stores.of(node));
        node::NotificationLog::of_nodes(store_of, clock, harness.clone() as SharedProbe)
    });
    let mut farm = Farm {
        scenario: scenario.clone(),
        seed,
        clock,
        net: net.clone(),
        harness: harness.clone(),
        ledger: ledger.clone(),
        stores,
        nodes: BTreeMap::new(),
        backend: None,
        host_id: scenario.farm.host_id,
        app_url: app_url.clone(),
        ctl: ctl_tx.clone(),
        jobs: Jobs::default(),
        node_probe: match &notifications {
            Some(log) => log.clone() as SharedProbe,
            None => harness.clone() as SharedProbe,
        },
        recycles: BTreeMap::new(),
        draining: Vec::new(),
    };
    let jobs = farm.jobs.clone();
    if app_url.is_none() {
        farm.start_backend();
    }
    let node_names: Vec<String> = (1..=scenario.farm.nodes)
        .map(|i| format!("node-{i}"))
        .collect();
    for name in &node_names {
        farm.start_node(name);
    }
    net.add_shared(SHARED, node_names, scenario.farm.balancer.policy());
    if let (Some(slot), Some(log)) = (control, notifications) {
        let _ = slot.send(crate::control::Control::new(
            scenario.clone(),
            harness.clone(),
            net.clone(),
            ctl_tx.clone(),
            log,
        ));
    }

    let uploader = Uploader {
        net: net.clone(),
        harness: harness.clone(),
        seed,
        clock,
        kind: if scenario.farm.upload_reply {
            JobKind::UploadReply
        } else {
            JobKind::Upload
        },
        settings: match &scenario.workload {
            Some(w) => ClientSettings::of_workload(w),
            None => ClientSettings::of_clients(&scenario.clients),
        },
    };
    let plan = match &scenario.workload {
        Some(_) => Vec::new(),
        None => plan_clients(scenario, seed, &uploader),
    };

    let controller = tokio::spawn(async move {
        while let Some(cmd) = ctl_rx.recv().await {
            farm.handle(cmd);
        }
    });
    for (index, rule) in scenario.faults.iter().enumerate() {
        if let Some(at) = rule.at_s {
            harness.arm_timed(index, at);
        }
    }
    let mut clients = tokio::task::JoinSet::new();
    if let Some(w) = &scenario.workload {
        clients.spawn(arrivals(w.clone(), uploader.clone(), seed));
    }
    for (name, start, uploads) in plan {
        net.add_client(&name);
        let (uploader, jobs) = (uploader.clone(), jobs.clone());
        clients.spawn(async move {
            tokio::time::sleep(Duration::from_secs_f64(start)).await;
            for u in uploads {
                uploader.upload(&name, u, Some(&jobs)).await;
            }
        });
    }
    let failures = crate::failure::start_timed(scenario, seed, &harness, &net, &ctl_tx);

    let rogues = start_rogues(&scenario.rogues, &net, seed);
    let mut over_budget = harness.over_budget();
    let stopped = async {
        match stop {
            Some(stop) => stop.await,
            None => std::future::pending().await,
        }
    };
    // Some(true): the clients are done; Some(false): the event budget is spent; None: stopped.
    let ended = tokio::time::timeout(deadline, async {
        tokio::select! {
            biased;
            _ = over_budget.wait_for(|b| *b) => Some(false),
            () = stopped => None,
            () = async {
                while clients.join_next().await.is_some() {}
                // External clients: the farm serves until told to stop.
                if let Some(hold) = hold {
                    hold.await;
                }
            } => Some(true),
        }
    })
    .await;
    let completed = ended == Ok(Some(true));
    let harness_failure = (ended == Ok(Some(false))).then(|| {
        format!(
            "stopped after {max_events} events, the most one run may record: shorten deadline_days or the retry timeouts, or use fewer clients, files or fragments"
        )
    });
    let virtual_time_ms = clock.now_ms();
    controller.abort();
    clients.abort_all();
    drop(rogues);
    drop(failures);
    let (event_hash, events) = harness.log_state();
    let rules = harness.rule_reports();
    let tracker = harness.with_tracker(|t| std::mem::replace(t, Tracker::new(commits)));
    // Rogue uploads reach the ledger too: a listing ledger's are left out of the cross-check;
    // a counting one's are set against the Delivered events of files the tracker did not
    // follow.
    let ledger_deliveries = if scenario.workload.is_some() {
        ledger.counted()
    } else if ledgers == Ledgers::Counted {
        // Every delivery against every Delivered event: the same as the tracked files' alone.
        // More untracked events than deliveries is a disagreement too: a count no run has.
        ledger
            .counted()
            .checked_sub(tracker.untracked_deliveries())
            .unwrap_or(u64::MAX)
    } else {
        ledger.count(|d| tracker.file(&d.file).is_some())
    };
    harness.detach();
    RunResult {
        completed,
        virtual_time_ms,
        events,
        event_hash,
        tracker,
        rules,
        ledger_deliveries,
        panics: sim::Panics::default(),
        harness_failure,
    }
}
