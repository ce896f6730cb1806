//! Knobs: everything that makes one generated scenario (the seed and the settings and fault
//! schedule), drawn from a [`Space`], turned into a [`Scenario`], and made smaller for shrinking.

use node::NotificationType;
use probe::FaultPoint;
use rand::{Rng as _, RngExt as _, SeedableRng};
use rand_chacha::ChaCha8Rng;
use scenario::{
    Scenario,
    load::client_name,
    spec::{Action, Balancer, Fault, SessionState},
};
use serde::{Deserialize, Serialize};

use crate::space::{FaultKind, Space};

/// Node points a node fault can hit.
pub const NODE_POINTS: [FaultPoint; 9] = [
    FaultPoint::Request,
    FaultPoint::SessionCreated,
    FaultPoint::FragmentStored,
    FaultPoint::BeforeForward,
    FaultPoint::AfterForward,
    FaultPoint::FinalAckReady,
    FaultPoint::AckReady,
    FaultPoint::SessionClosed,
    FaultPoint::StorageWrite,
];

/// The virtual time limit of a generated scenario: every fault schedule the default space draws
/// has stopped well before it, plus the liveness bound (a liveness verdict that would need more
/// time is undecided, not failed).
pub const DEADLINE_DAYS: f64 = 10.0;

/// One generated fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultKnob {
    /// What kind.
    pub kind: FaultKind,
    /// The fault point (node or backend points, by kind).
    pub point: FaultPoint,
    /// Node number (1-based) for node faults and partitions.
    pub node: u32,
    /// Client number (0-based) for partitions.
    pub client: u32,
    /// Fire on the n-th matching hit.
    pub nth: u64,
    /// Restart a crashed node or application after this long (`None`: stays down).
    pub restart_after_s: Option<u64>,
    /// Delay or partition length.
    pub duration_s: u64,
    /// Status for a failing application, a proxy page or an odd Ack.
    pub status: u16,
    /// `BITS-Error-Code` of an odd Ack.
    #[serde(default)]
    pub code: u32,
    /// Time of timed faults (partitions, Host-Id switches).
    pub at_s: u64,
    /// Host-Id switch direction.
    pub enabled: bool,
}

impl FaultKnob {
    /// How long the fault keeps acting once it fires, seconds (`None`: for good): a crash
    /// until its restart, a partition or a slow application for its duration, anything else
    /// only at the moment it fires.
    pub fn outage_s(&self) -> Option<u64> {
        match self.kind {
            FaultKind::Crash | FaultKind::PowerCut | FaultKind::AppCrash => self.restart_after_s,
            FaultKind::Partition | FaultKind::SlowApp | FaultKind::DiskFull => {
                Some(self.duration_s)
            }
            FaultKind::DropResponse
            | FaultKind::AppFails
            | FaultKind::HostIdToggle
            | FaultKind::ProxyPage
            | FaultKind::OddAck
            | FaultKind::Cancel
            | FaultKind::IoError => Some(0),
        }
    }
}

/// One generated scenario.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Knobs {
    /// The run's seed.
    pub seed: u64,
    /// Nodes.
    pub nodes: u32,
    /// BITSHostId.
    pub host_id: bool,
    /// Fallback timeout.
    pub fallback_timeout_s: u64,
    /// Balancer.
    pub balancer: Balancer,
    /// Session state.
    pub session_state: SessionState,
    /// Notification type.
    pub notification: NotificationType,
    /// Upload-reply jobs.
    pub upload_reply: bool,
    /// Clients.
    pub clients: u32,
    /// Files per client.
    pub files_per_client: u32,
    /// Smallest file.
    pub file_size: u64,
    /// Largest file.
    pub file_size_max: u64,
    /// Fragment size.
    pub fragment_size: u64,
    /// Largest fragment (each fragment's size is drawn up to it); equal to `fragment_size`
    /// for fixed fragments.
    #[serde(default)]
    pub fragment_size_max: u64,
    /// Clients start within this many seconds.
    pub start_spread_s: u64,
    /// Minimum retry delay.
    pub retry_delay_s: u64,
    /// No-progress timeout: short enough that a job facing a dead farm gives up within a
    /// bounded number of retries (the search is about chains, not about waiting 14 days).
    pub no_progress_timeout_s: u64,
    /// Transaction ids.
    pub transaction_id: bool,
    /// Application dedupe.
    pub dedupe: bool,
    /// Faults.
    pub faults: Vec<FaultKnob>,
    /// Latency jitter per connection, milliseconds (0: every link has the base latency).
    #[serde(default)]
    pub jitter_ms: u64,
    /// Rogue clients (the fuzzer's requests) beside the scenario's clients.
    #[serde(default)]
    pub rogues: u32,
    /// A misbehaving application's static reply URL for upload-reply jobs (one that answers
    /// 404, or a host nobody can reach); `None`: replies of its own.
    #[serde(default)]
    pub reply_url: Option<String>,
}

fn pick<T: Copy>(rng: &mut ChaCha8Rng, items: &[T]) -> T {
    items[rng.random_range(0..items.len())]
}

/// Draws knobs from `space` with the generator seeded by `seed`.
pub fn generate(seed: u64, space: &Space) -> Knobs {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let nodes = rng.random_range(space.nodes.0..=space.nodes.1);
    let notification = pick(
        &mut rng,
        &[
            NotificationType::ByValue,
            NotificationType::ByValue,
            NotificationType::ByReference,
            NotificationType::ByReference,
            NotificationType::None,
        ],
    );
    let transaction_id = rng.random_bool(0.4);
    let clients = rng.random_range(space.clients.0..=space.clients.1);
    let a = rng.random_range(space.file_size.0..=space.file_size.1);
    let b = rng.random_range(space.file_size.0..=space.file_size.1);
    // Swarm testing: a random non-empty subset of the allowed kinds.
    let kinds: Vec<FaultKind> = if space.swarm && !space.fault_kinds.is_empty() {
        loop {
            let subset: Vec<FaultKind> = space
                .fault_kinds
                .iter()
                .copied()
                .filter(|_| rng.random_bool(0.5))
                .collect();
            if !subset.is_empty() {
                break subset;
            }
        }
    } else {
        space.fault_kinds.clone()
    };
    let n_faults = if kinds.is_empty() {
        0
    } else {
        rng.random_range(space.faults.0..=space.faults.1)
    };
    let faults = (0..n_faults)
        .map(|_| {
            let kind = pick(&mut rng, &kinds);
            let point = match kind {
                FaultKind::Crash | FaultKind::PowerCut | FaultKind::DropResponse => {
                    pick(&mut rng, &NODE_POINTS)
                }
                FaultKind::SlowApp | FaultKind::AppCrash => pick(
                    &mut rng,
                    &[FaultPoint::NotificationReceived, FaultPoint::EffectRecorded],
                ),
                FaultKind::AppFails => FaultPoint::NotificationReceived,
                FaultKind::ProxyPage => {
                    pick(&mut rng, &[FaultPoint::Request, FaultPoint::AckReady])
                }
                FaultKind::OddAck => pick(&mut rng, &NODE_POINTS),
                FaultKind::IoError => pick(
                    &mut rng,
                    &[FaultPoint::StorageWrite, FaultPoint::StorageRead],
                ),
                FaultKind::Partition
                | FaultKind::HostIdToggle
                | FaultKind::Cancel
                | FaultKind::DiskFull => FaultPoint::Request,
            };
            FaultKnob {
                kind,
                point,
                node: rng.random_range(1..=nodes),
                client: rng.random_range(0..clients),
                nth: rng.random_range(1..=3),
                // A node may stay down for good, or beyond the fallback timeout. The application
                // comes back within two hours: while it is down every retry re-uploads, which is
                // progress, so no job times out (as in Windows) and each costs a retry per
                // minute of outage without making a new chain possible.
                restart_after_s: if kind == FaultKind::AppCrash {
                    Some(pick(&mut rng, &[60, 600, 3600, 7200]))
                } else if rng.random_bool(0.9) {
                    Some(pick(&mut rng, &[60, 600, 3600, 7200, 100_000]))
                } else {
                    None
                },
                duration_s: pick(&mut rng, &[10, 200, 400, 1200, 5000]),
                status: match kind {
                    FaultKind::ProxyPage => pick(&mut rng, &[404, 500, 502, 503]),
                    FaultKind::OddAck => pick(&mut rng, &[202, 404, 413, 500, 503]),
                    _ => pick(&mut rng, &[403, 409, 500, 503]),
                },
                code: pick(
                    &mut rng,
                    &[
                        0x8020_0020,
                        0x8007_0057,
                        0x8007_0005,
                        0x8020_001F,
                        0x8000_4005,
                    ],
                ),
                at_s: rng.random_range(0..=3600),
                enabled: rng.random_bool(0.5),
            }
        })
        .collect();
    let fragment_size = pick(&mut rng, &space.fragment_sizes);
    let fragment_size_max = if rng.random_bool(0.5) {
        pick(&mut rng, &space.fragment_sizes).max(fragment_size)
    } else {
        fragment_size
    };
    let retry_delay_s = pick(&mut rng, &space.retry_delays_s);
    let no_progress_timeout_s = if retry_delay_s < 60 {
        3600
    } else {
        pick(&mut rng, &[3600, 21_600, 172_800])
    };
    Knobs {
        seed: rng.next_u64(),
        nodes,
        host_id: rng.random_bool(0.5),
        fallback_timeout_s: pick(&mut rng, &space.fallback_timeouts_s),
        balancer: pick(
            &mut rng,
            &[
                Balancer::RoundRobin,
                Balancer::Random,
                Balancer::LeastConnections,
                Balancer::SourceAffinity,
            ],
        ),
        session_state: if rng.random_bool(0.5) {
            SessionState::Durable
        } else {
            SessionState::Volatile
        },
        notification,
        upload_reply: notification != NotificationType::None && rng.random_bool(0.2),
        clients,
        files_per_client: rng.random_range(space.files_per_client.0..=space.files_per_client.1),
        file_size: a.min(b),
        file_size_max: a.max(b),
        fragment_size,
        fragment_size_max,
        start_spread_s: pick(&mut rng, &[0, 10, 600]),
        retry_delay_s,
        no_progress_timeout_s,
        transaction_id,
        dedupe: transaction_id && rng.random_bool(0.7),
        faults,
        jitter_ms: pick(&mut rng, &[0, 0, 5, 50, 500]),
        rogues: pick(&mut rng, &[0, 0, 0, 1, 3]),
        reply_url: match rng.random_range(0..10) {
            0 => Some("http://backend/missing".to_owned()),
            1 => Some("http://nowhere/reply".to_owned()),
            _ => None,
        },
    }
}

impl Knobs {
    /// The scenario these knobs describe. Every fault rule is optional (a generated rule may
    /// never meet its point); expectations are left to the properties.
    pub fn scenario(&self, name: &str) -> Scenario {
        let mut s = Scenario {
            name: name.into(),
            description: format!("generated by bitsfarm explore (seed {})", self.seed),
            seed: self.seed,
            deadline_days: DEADLINE_DAYS,
            ..Scenario::default()
        };
        s.farm.nodes = self.nodes;
        s.farm.host_id = self.host_id;
        s.farm.fallback_timeout_s = self.fallback_timeout_s;
        s.farm.balancer = self.balancer;
        s.farm.session_state = self.session_state;
        s.farm.notification = self.notification;
        s.farm.upload_reply = self.upload_reply;
        s.network.jitter_ms = self.jitter_ms;
        s.rogues.count = self.rogues;
        s.backend.reply_url = self.reply_url.clone().filter(|_| self.upload_reply);
        s.rogues.requests = 50;
        s.clients.count = self.clients;
        s.clients.files_per_client = self.files_per_client;
        s.clients.file_size = self.file_size;
        s.clients.file_size_max =
            (self.file_size_max > self.file_size).then_some(self.file_size_max);
        s.clients.fragment_size = self.fragment_size;
        s.clients.fragment_size_max =
            (self.fragment_size_max > self.fragment_size).then_some(self.fragment_size_max);
        s.clients.start_spread_s = self.start_spread_s as f64;
        s.clients.retry_delay_s = self.retry_delay_s;
        s.clients.no_progress_timeout_s = self.no_progress_timeout_s;
        s.clients.transaction_id = self.transaction_id;
        s.backend.dedupe = self.dedupe;
        s.faults = self.faults.iter().map(|f| self.rule(f)).collect();
        s
    }

    fn rule(&self, f: &FaultKnob) -> Fault {
        let node = Some(format!("node-{}", f.node));
        let backend = Some("backend".to_owned());
        let base = Fault {
            optional: true,
            nth: Some(f.nth),
            ..Fault::default()
        };
        match f.kind {
            FaultKind::Crash | FaultKind::PowerCut => Fault {
                point: Some(f.point),
                node,
                action: Some(if f.kind == FaultKind::Crash {
                    Action::Crash
                } else {
                    Action::PowerCut
                }),
                restart_after_s: f.restart_after_s.map(|s| s as f64),
                ..base
            },
            FaultKind::DropResponse => Fault {
                point: Some(f.point),
                node,
                action: Some(Action::DropResponse),
                ..base
            },
            FaultKind::SlowApp => Fault {
                point: Some(f.point),
                node: backend,
                action: Some(Action::Delay),
                duration_s: Some(f.duration_s as f64),
                ..base
            },
            FaultKind::AppFails => Fault {
                point: Some(f.point),
                node: backend,
                action: Some(Action::Fail),
                status: Some(f.status),
                ..base
            },
            FaultKind::AppCrash => Fault {
                point: Some(f.point),
                node: backend,
                action: Some(Action::Crash),
                restart_after_s: f.restart_after_s.map(|s| s as f64),
                ..base
            },
            FaultKind::Partition => Fault {
                at_s: Some(f.at_s as f64),
                node,
                peer: Some(client_name(f.client, self.clients)),
                action: Some(Action::Partition),
                duration_s: Some(f.duration_s as f64),
                optional: true,
                ..Fault::default()
            },
            FaultKind::HostIdToggle => Fault {
                at_s: Some(f.at_s as f64),
                action: Some(Action::HostId),
                enabled: Some(f.enabled),
                optional: true,
                ..Fault::default()
            },
            FaultKind::ProxyPage => Fault {
                point: Some(f.point),
                node,
                action: Some(Action::Page),
                status: Some(f.status),
                ..base
            },
            FaultKind::OddAck => Fault {
                point: Some(f.point),
                node,
                action: Some(Action::Fail),
                status: Some(f.status),
                code: Some(format!("0x{:08X}", f.code)),
                ..base
            },
            FaultKind::Cancel => Fault {
                at_s: Some(f.at_s as f64),
                node: Some(client_name(f.client, self.clients)),
                action: Some(Action::Cancel),
                optional: true,
                ..Fault::default()
            },
            FaultKind::IoError => Fault {
                point: Some(f.point),
                node,
                action: Some(Action::IoError),
                ..base
            },
            FaultKind::DiskFull => Fault {
                at_s: Some(f.at_s as f64),
                node,
                action: Some(Action::DiskFull),
                duration_s: Some(f.duration_s as f64),
                optional: true,
                ..Fault::default()
            },
        }
    }

    /// Whether every reference (node and client numbers) fits the farm.
    pub fn is_consistent(&self) -> bool {
        self.nodes >= 1
            && self.clients >= 1
            && self.files_per_client >= 1
            && self.file_size <= self.file_size_max
            && self.faults.iter().all(|f| {
                (!f.kind.names_node() || (f.node >= 1 && f.node <= self.nodes))
                    && (!f.kind.names_client() || f.client < self.clients)
            })
            && (!self.upload_reply || self.notification != NotificationType::None)
            && (!self.dedupe || self.transaction_id)
    }

    /// Smaller variants, most aggressive first: each fault removed, fewer clients, files and
    /// nodes, smaller files, simpler faults, default settings. Only consistent ones.
    pub fn simpler(&self) -> Vec<Knobs> {
        let mut out: Vec<Knobs> = Vec::new();
        let mut push = |k: Knobs| {
            if k.is_consistent() && k != *self && !out.contains(&k) {
                out.push(k);
            }
        };
        for i in 0..self.faults.len() {
            let mut k = self.clone();
            k.faults.remove(i);
            push(k);
        }
        let max_client = self
            .faults
            .iter()
            .filter(|f| f.kind.names_client())
            .map(|f| f.client + 1)
            .max()
            .unwrap_or(1);
        let max_node = self
            .faults
            .iter()
            .filter(|f| f.kind.names_node())
            .map(|f| f.node)
            .max()
            .unwrap_or(1);
        for clients in [max_client, self.clients.saturating_sub(1).max(max_client)] {
            push(Knobs {
                clients,
                ..self.clone()
            });
        }
        for files_per_client in [1, self.files_per_client.saturating_sub(1).max(1)] {
            push(Knobs {
                files_per_client,
                ..self.clone()
            });
        }
        for nodes in [max_node, self.nodes.saturating_sub(1).max(max_node)] {
            push(Knobs {
                nodes,
                ..self.clone()
            });
        }
        // The same faults on the lowest-numbered nodes, so that the farm can shrink too.
        let mut named: Vec<u32> = self
            .faults
            .iter()
            .filter(|f| f.kind.names_node())
            .map(|f| f.node)
            .collect();
        named.sort_unstable();
        named.dedup();
        let renumber = |n: u32| {
            named
                .iter()
                .position(|&m| m == n)
                .map_or(1, |i| i as u32 + 1)
        };
        let low = Knobs {
            faults: self
                .faults
                .iter()
                .map(|f| FaultKnob {
                    node: renumber(f.node),
                    ..f.clone()
                })
                .collect(),
            ..self.clone()
        };
        push(Knobs {
            nodes: (named.len() as u32).max(1),
            ..low.clone()
        });
        push(low);
        push(Knobs {
            file_size: 0,
            file_size_max: 0,
            ..self.clone()
        });
        push(Knobs {
            fragment_size_max: self.fragment_size,
            ..self.clone()
        });
        push(Knobs {
            jitter_ms: 0,
            ..self.clone()
        });
        push(Knobs {
            rogues: 0,
            ..self.clone()
        });
        push(Knobs {
            reply_url: None,
            ..self.clone()
        });
        push(Knobs {
            file_size_max: self.file_size,
            ..self.clone()
        });
        push(Knobs {
            file_size: self.file_size / 2,
            file_size_max: self.file_size_max / 2,
            ..self.clone()
        });
        push(Knobs {
            start_spread_s: 0,
            ..self.clone()
        });
        for (i, f) in self.faults.iter().enumerate() {
            let simpler = |g: FaultKnob| {
                let mut k = self.clone();
                k.faults[i] = g;
                k
            };
            if f.nth > 1 {
                push(simpler(FaultKnob {
                    nth: 1,
                    ..f.clone()
                }));
            }
            if f.restart_after_s.is_none() {
                push(simpler(FaultKnob {
                    restart_after_s: Some(600),
                    ..f.clone()
                }));
            }
            if f.duration_s > 10 {
                push(simpler(FaultKnob {
                    duration_s: 10,
                    ..f.clone()
                }));
            }
        }
        push(Knobs {
            upload_reply: false,
            ..self.clone()
        });
        push(Knobs {
            dedupe: false,
            ..self.clone()
        });
        push(Knobs {
            transaction_id: false,
            dedupe: false,
            ..self.clone()
        });
        push(Knobs {
            balancer: Balancer::RoundRobin,
            ..self.clone()
        });
        push(Knobs {
            fragment_size: 1 << 20,
            ..self.clone()
        });
        push(Knobs {
            retry_delay_s: 600,
            ..self.clone()
        });
        push(Knobs {
            no_progress_timeout_s: 3600,
            ..self.clone()
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_knobs_make_valid_scenarios() {
        for seed in 0..300 {
            let k = generate(seed, &Space::default());
            assert!(k.is_consistent(), "{k:?}");
            let s = k.scenario("g");
            let text = toml::to_string(&s).unwrap();
            let back = scenario::load_str(&text, "g.toml", "g")
                .unwrap_or_else(|e| panic!("seed {seed}: {e}\n{text}"));
            assert_eq!(back, s, "the scenario survives a TOML round trip");
            for c in k.simpler() {
                assert!(c.is_consistent());
                scenario::load_str(&toml::to_string(&c.scenario("g")).unwrap(), "g.toml", "g")
                    .unwrap();
            }
        }
    }

    #[test]
    fn generation_depends_on_the_seed_only() {
        assert_eq!(
            generate(7, &Space::default()),
            generate(7, &Space::default())
        );
        assert_ne!(
            generate(7, &Space::default()),
            generate(8, &Space::default())
        );
    }
}
