//! Failure processes (`[[failure]]`): failures at rates rather than at scripted moments.
//!
//! Two shapes. *Timed* processes (node crashes and power cuts, application crashes by MTBF,
//! partitions, pool recycles) are tasks of the farm that sleep an exponential (or periodic)
//! time in virtual time and strike; each target has a generator of its own, from the run's
//! seed, the process and the target, so adding a node or a process does not move the others'
//! draws. *Per-hit* processes (application errors and latency, application crashes after an
//! effect, connection resets) are asked at fault points by the harness, with one generator for
//! all of them, drawn in event order. Every strike is a `failure_struck` event: reports and
//! causal chains explain it like a fault rule.

use std::{sync::Arc, time::Duration};

use probe::{CrashKind, FaultCtx, FaultPoint, Verdict};
use rand::RngExt as _;
use rand_chacha::ChaCha8Rng;

use crate::{
    dist::{Sampler, exponential},
    farm::{BACKEND, Network, entity_rng},
    fault::{Command, Harness},
    spec::{Failure, FailureKind, Scenario},
};

/// IIS's default application-pool recycling period (`periodicRestart`), minutes.
pub const IIS_RECYCLE_MIN: f64 = 1740.0;
/// Repair time when `repair_s` is not given, seconds.
pub const DEFAULT_REPAIR_S: f64 = 600.0;
/// A non-overlapped recycle's gap when `duration_s` is not given, seconds.
pub const DEFAULT_RECYCLE_GAP_S: f64 = 1.0;

/// A per-hit failure process.
#[derive(Debug, Clone)]
enum Hit {
    /// `app-error`.
    AppError { p: f64, status: u16 },
    /// `app-slow`.
    AppSlow { p: f64, latency: Sampler },
    /// `app-crash` with `probability`: right after the effect.
    AppCrash { p: f64, repair: Sampler },
    /// `connection-reset`.
    Reset {
        node: Option<String>,
        per_request: f64,
        per_mib: f64,
    },
}

/// The per-hit processes of a run and their generator.
pub(crate) struct Hits {
    list: Vec<(usize, Hit)>,
    rng: ChaCha8Rng,
}

/// What a per-hit process decided at a fault point, to carry out outside the harness's lock.
pub(crate) struct Strike {
    /// The process.
    pub process: usize,
    /// Its kind.
    pub kind: FailureKind,
    /// What it did, in words.
    pub what: String,
    /// Crash the backend, back after this many seconds.
    pub crash_backend: Option<f64>,
    /// Cut the connection at hand.
    pub cut: bool,
    /// The verdict for the actor.
    pub verdict: Verdict,
}

impl Hits {
    /// The per-hit processes of `scenario`.
    pub(crate) fn new(scenario: &Scenario, seed: u64) -> Hits {
        let list = scenario
            .failures
            .iter()
            .enumerate()
            .filter_map(|(i, f)| hit_of(f).map(|h| (i, h)))
            .collect();
        Hits {
            list,
            rng: entity_rng(seed, "failures", 0),
        }
    }

    /// Whether any process acts at fault points.
    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The first process that strikes at this fault point, if any.
    pub(crate) fn at(&mut self, ctx: &FaultCtx<'_>) -> Option<Strike> {
        let Hits { list, rng } = self;
        for (process, hit) in list.iter() {
            let process = *process;
            match (hit, ctx.point) {
                (Hit::AppError { p, status }, FaultPoint::NotificationReceived)
                    if rng.random_bool(*p) =>
                {
                    return Some(Strike {
                        process,
                        kind: FailureKind::AppError,
                        what: format!("the application answered HTTP {status}"),
                        crash_backend: None,
                        cut: false,
                        verdict: Verdict::Fail(*status),
                    });
                }
                (Hit::AppCrash { p, repair }, FaultPoint::EffectRecorded)
                    if rng.random_bool(*p) =>
                {
                    let after = repair.sample(rng).max(0.0);
                    return Some(Strike {
                        process,
                        kind: FailureKind::AppCrash,
                        what: format!(
                            "the application died after its effect, before answering (back in {})",
                            crate::text::secs((after * 1000.0) as u64)
                        ),
                        crash_backend: Some(after),
                        cut: false,
                        verdict: Verdict::Fail(500),
                    });
                }
                (Hit::AppSlow { p, latency }, FaultPoint::EffectRecorded)
                    if rng.random_bool(*p) =>
                {
                    let d = latency.sample(rng).max(0.0);
                    return Some(Strike {
                        process,
                        kind: FailureKind::AppSlow,
                        what: format!(
                            "the application took {} to answer",
                            crate::text::secs((d * 1000.0) as u64)
                        ),
                        crash_backend: None,
                        cut: false,
                        verdict: Verdict::Delay(Duration::from_secs_f64(d)),
                    });
                }
                (
                    Hit::Reset {
                        node, per_request, ..
                    },
                    FaultPoint::AckReady,
                ) if *per_request > 0.0
                    && node.as_deref().is_none_or(|n| n == ctx.actor)
                    && rng.random_bool(*per_request) =>
                {
                    return Some(Strike {
                        process,
                        kind: FailureKind::ConnectionReset,
                        what: "the connection was reset after the node handled the request: its answer was lost".into(),
                        crash_backend: None,
                        cut: true,
                        verdict: Verdict::Continue,
                    });
                }
                (Hit::Reset { node, per_mib, .. }, FaultPoint::Request)
                    if *per_mib > 0.0 && node.as_deref().is_none_or(|n| n == ctx.actor) =>
                {
                    let mib = ctx.len.unwrap_or(0) as f64 / (1u64 << 20) as f64;
                    let p = 1.0 - (1.0 - per_mib).powf(mib);
                    if p > 0.0 && rng.random_bool(p.min(1.0)) {
                        return Some(Strike {
                            process,
                            kind: FailureKind::ConnectionReset,
                            what: "the connection was reset while the request's body was sent"
                                .into(),
                            crash_backend: None,
                            cut: true,
                            verdict: Verdict::Fail(500),
                        });
                    }
                }
                _ => {}
            }
        }
        None
    }
}

fn hit_of(f: &Failure) -> Option<Hit> {
    let repair = || {
        Sampler::of(
            f.repair_s
                .as_ref()
                .unwrap_or(&crate::spec::Dist::Fixed(DEFAULT_REPAIR_S)),
        )
    };
    Some(match f.kind? {
        FailureKind::AppError => Hit::AppError {
            p: f.probability.unwrap_or(0.0),
            status: f.status.unwrap_or(500),
        },
        FailureKind::AppSlow => Hit::AppSlow {
            p: f.probability.unwrap_or(1.0),
            latency: Sampler::of(f.duration_s.as_ref()?),
        },
        FailureKind::AppCrash => Hit::AppCrash {
            p: f.probability?,
            repair: repair(),
        },
        FailureKind::ConnectionReset => Hit::Reset {
            node: f.node.clone(),
            per_request: f.per_request.unwrap_or(0.0),
            per_mib: f.per_mib.unwrap_or(0.0),
        },
        _ => return None,
    })
}

/// Starts the timed processes of `scenario` on the farm's network; dropping the set stops them.
pub(crate) fn start_timed(
    scenario: &Scenario,
    seed: u64,
    harness: &Arc<Harness>,
    net: &Arc<dyn Network>,
    ctl: &tokio::sync::mpsc::UnboundedSender<Command>,
) -> tokio::task::JoinSet<()> {
    let mut set = tokio::task::JoinSet::new();
    let nodes: Vec<String> = (1..=scenario.farm.nodes)
        .map(|i| format!("node-{i}"))
        .collect();
    for (process, f) in scenario.failures.iter().enumerate() {
        let Some(kind) = f.kind else { continue };
        let targets: Vec<String> = match kind {
            FailureKind::AppCrash if f.mtbf_h.is_some() => vec![BACKEND.to_owned()],
            FailureKind::NodeCrash
            | FailureKind::PowerCut
            | FailureKind::Partition
            | FailureKind::PoolRecycle => match &f.node {
                Some(n) => vec![n.clone()],
                None => nodes.clone(),
            },
            _ => Vec::new(),
        };
        for target in targets {
            let rng = entity_rng(seed, &format!("failure-{process}-{target}"), 0);
            let t = Timed {
                process,
                kind,
                target,
                f: f.clone(),
                rng,
                harness: harness.clone(),
                net: net.clone(),
                ctl: ctl.clone(),
            };
            set.spawn(t.run());
        }
    }
    set
}

/// One timed process against one target.
struct Timed {
    process: usize,
    kind: FailureKind,
    target: String,
    f: Failure,
    rng: ChaCha8Rng,
    harness: Arc<Harness>,
    net: Arc<dyn Network>,
    ctl: tokio::sync::mpsc::UnboundedSender<Command>,
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.clamp(0.0, 1e10))
}

impl Timed {
    async fn run(mut self) {
        let repair = Sampler::of(
            self.f
                .repair_s
                .as_ref()
                .unwrap_or(&crate::spec::Dist::Fixed(DEFAULT_REPAIR_S)),
        );
        let mean_gap_s = self.f.mtbf_h.unwrap_or(1.0) * 3600.0;
        match self.kind {
            FailureKind::PoolRecycle => {
                let every = self.f.every_min.unwrap_or(IIS_RECYCLE_MIN) * 60.0;
                // Each node's worker started at its own moment.
                let phase = self.rng.random_range(0.0..every);
                tokio::time::sleep(secs(phase)).await;
                loop {
                    self.recycle();
                    tokio::time::sleep(secs(every)).await;
                }
            }
            FailureKind::Partition => {
                let length = Sampler::of(
                    self.f
                        .duration_s
                        .as_ref()
                        .expect("validated: partition has duration_s"),
                );
                loop {
                    tokio::time::sleep(secs(exponential(&mut self.rng, mean_gap_s))).await;
                    let d = length.sample(&mut self.rng).max(0.0);
                    if self.net.is_up(&self.target) {
                        self.strike(format!(
                            "{} and the application were partitioned for {}",
                            self.target,
                            crate::text::secs((d * 1000.0) as u64)
                        ));
                        self.net.partition(&self.target, BACKEND);
                        let _ = self.ctl.send(Command::Heal {
                            a: self.target.clone(),
                            b: BACKEND.to_owned(),
                            after: secs(d),
                        });
                    }
                    tokio::time::sleep(secs(d)).await;
                }
            }
            _ => loop {
                tokio::time::sleep(secs(exponential(&mut self.rng, mean_gap_s))).await;
                let after = repair.sample(&mut self.rng).max(0.0);
                if !self.net.is_up(&self.target) {
                    continue;
                }
                let (kind, verb) = if self.kind == FailureKind::PowerCut {
                    (CrashKind::PowerCut, "lost power")
                } else {
                    (CrashKind::Kill, "was killed")
                };
                self.strike(format!(
                    "{} {verb} (back in {})",
                    self.target,
                    crate::text::secs((after * 1000.0) as u64)
                ));
                self.harness.crash(&self.target, kind, Some(after));
                tokio::time::sleep(secs(after)).await;
            },
        }
    }

    fn strike(&self, what: String) {
        self.harness
            .strike(self.process, self.kind, &self.target, what, None, None);
    }

    fn recycle(&mut self) {
        if !self.net.is_up(&self.target) {
            return;
        }
        if self.f.overlap.unwrap_or(true) {
            self.strike(format!(
                "{}'s application pool was recycled (overlapped: requests in flight finish on the old worker)",
                self.target
            ));
            let _ = self.ctl.send(Command::Recycle {
                host: self.target.clone(),
            });
        } else {
            let gap = self
                .f
                .duration_s
                .as_ref()
                .map_or(DEFAULT_RECYCLE_GAP_S, |d| {
                    Sampler::of(d).sample(&mut self.rng)
                })
                .max(0.0);
            self.strike(format!(
                "{}'s application pool was recycled without overlap: requests in flight were cut, the new worker started {} later",
                self.target,
                crate::text::secs((gap * 1000.0) as u64)
            ));
            self.harness.crash(&self.target, CrashKind::Kill, Some(gap));
        }
    }
}
