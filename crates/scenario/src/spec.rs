//! The scenario file format (`scenarios/*.toml`).
//!
//! A scenario describes a farm, its clients, the server application, the network, the faults
//! to inject and what the run must show. Every key is optional; defaults are the real Windows
//! and IIS defaults (marked *IIS* or *Windows* below) or, where Windows has none, bitsfarm's.
//! Unknown keys are errors.
//!
//! ```toml
//! name = "crash-after-forward"          # default: the file name
//! description = "..."                   # one line, shown by `bitsfarm scenarios`
//! seed = 1                              # default seed (`--seed` overrides)
//! deadline_days = 60                    # virtual time limit of a run
//!
//! [farm]
//! nodes = 3                             # BITS nodes behind the shared address "farm" (1-64)
//! host_id = false                       # BITSHostId set on every node (its own name)   [IIS: unset]
//! fallback_timeout_s = 86400            # BITSHostIdFallbackTimeout                      [IIS]
//! notification = "none"                 # none | by-reference | by-value                 [IIS]
//! balancer = "round-robin"              # round-robin | random | least-connections | source-affinity
//! session_state = "durable"             # durable (IIS keeps BITS-Sessions on disk) | volatile
//! upload_reply = false                  # upload-reply jobs (needs a notification)
//! session_timeout_s = 1209600           # BITSSessionTimeout                             [IIS]
//! cleanup_interval_s = 43200            # cleanup task period                            [IIS]
//! app_deadline_s = 300                  # how long a node waits for the application      [IIS]
//! max_upload_size = 1844674407370955    # BITSMaximumUploadSize                          [IIS]
//! allow_overwrites = false              # BITSAllowOverwrites                            [IIS]
//! commit_point = "last-fragment"        # last-fragment | close (type-0 uploads)
//! idle_timeout_s = 120                  # IIS connectionTimeout
//!
//! [clients]
//! count = 1                             # clients, each uploading files one after another
//! files_per_client = 1
//! file_size = 1048576                   # bytes; with file_size_max, uniform in [file_size, file_size_max]
//! fragment_size = 1048576               # bytes per fragment
//! fragment_size_max = 4194304           # optional: each fragment's size drawn up to this
//! start_spread_s = 0                    # clients start uniformly within [0, start_spread_s]
//! retry_delay_s = 600                   # MinimumRetryDelay                              [Windows]
//! no_progress_timeout_s = 1209600       # NoProgressTimeout                              [Windows]
//! connect_timeout_s = 60                # WinHTTP connect timeout                        [Windows]
//! request_timeout_s = 360
//! transaction_id = false                # put a transaction id in the data
//!
//! [backend]
//! dedupe = false                        # deduplicate by transaction id
//! # reply_url = "http://backend/missing" # upload-reply: answer this static reply URL instead
//!
//! [rogues]                              # misbehaving clients (the fuzzer's requests)
//! count = 0
//! requests = 100
//!
//! [network]
//! latency_ms = 1                        # one-way latency of every link
//! jitter_ms = 0                         # each connection adds 0..=jitter_ms, from the seed
//! window_bytes = 262144                 # bytes in flight per direction
//!
//! [workload]                            # instead of [clients]: uploads arriving over days
//! duration_days = 7                     # uploads arrive for this long (at most deadline_days)
//! uploads_per_hour = 2000               # mean rate of a Poisson process
//! daily_profile = [0.3, 0.2, ...]       # optional: 24 weights, the rate of each hour of the day
//! machines = 20000                      # client machines; each upload comes from one at random
//! file_size = { dist = "lognormal", median = 32768, p99 = 1048576 }  # or a number of bytes
//! fragment_size = 1048576               # and the [clients] keys that still apply:
//! # fragment_size_max, retry_delay_s, no_progress_timeout_s, connect_timeout_s,
//! # request_timeout_s, transaction_id
//!
//! [[failure]]                           # failure processes with rates; see below
//! kind = "node-crash"
//! mtbf_h = 500
//! repair_s = { dist = "lognormal", median = 300, p99 = 3600 }
//!
//! [[fault]]                             # any number of rules; see below
//! point = "after-forward"
//! node = "node-1"
//! action = "crash"
//!
//! [expect]                              # metric = number (==) or "op number" (>=, >, <=, <, ==, !=)
//! duplicate_deliveries = ">= 1"
//! lost = 0
//! ```
//!
//! # Fault rules
//!
//! A rule has a trigger and an action.
//!
//! **Triggers.** `point = "<fault point>"` fires when an actor reaches that protocol step
//! (`request`, `session-created`, `fragment-stored`, `before-forward`, `after-forward`,
//! `final-ack-ready`, `ack-ready`, `session-closed`, `storage-write` (every write to the node's
//! storage: state, entity bytes, reply, placement, removal), `storage-read` (every read of it)
//! on nodes; `notification-received`,
//! `effect-recorded` on the backend), optionally filtered by `node` (an actor name: `node-2`, `backend`), `packet`
//! (`Create-Session`, `Fragment`, ...) and `file` (`/upload/c00-f000.bin`). It fires on the
//! `nth` matching hit (default 1), or on each hit with `probability` (seeded), at most `times`
//! times (default 1; `0` means unlimited). `at_s = <seconds>` fires once at that virtual time
//! instead, on `node` (the target).
//!
//! **Actions.**
//! * `crash` (the process is killed: peers see resets) or `power-cut` (peers see silence) the
//!   node at the point, or `node` for a timed rule; `restart_after_s` brings it back (with its
//!   session state if `session_state = "durable"`). On `backend` it is the application that
//!   dies (its ledger survives, like a database).
//! * `drop-response`: the connection the request came on is cut; the Ack never arrives.
//! * `delay` for `duration_s`; `fail` with HTTP `status` (on a node, optionally with `code`, the
//!   `BITS-Error-Code`, e.g. `"0x80200020"`: unusual pairs like 413 with `BG_E_TOO_LARGE`).
//! * `page` with HTTP `status`: a plain error page instead of an Ack, as a proxy in front of the
//!   node sends (at `request` and `ack-ready`; at other points it acts as `fail`).
//! * `cancel`: at `at_s`, the client named by `node` (`c01`) cancels its current job
//!   (Cancel-Session).
//! * `partition` `node` from `peer` for `duration_s`.
//! * `restart` `node` (timed rules).
//! * `host-id` with `enabled = true|false`: switch `BITSHostId` on every node.
//! * `io-error` (at `storage-write` or `storage-read` only): the access fails with an I/O error;
//!   a failed append leaves the first half of its bytes on the disk, uncounted (a torn write). `crash` or `power-cut`
//!   at `storage-write` stop the node in the middle of a write, the same way.
//! * `disk-full` for `duration_s`: the disk of the node at the point (or of `node`, timed) is
//!   full; every write that adds bytes fails ("no space left"), removals work.
//! * `panic`: the actor panics at the point (a timed rule: the harness does). A self-test of
//!   the harness: a run in which anything panicked fails (`no_panics`), whatever else it shows.
//!
//! A non-`optional` rule that never fires fails the run, so no scenario passes vacuously.
//!
//! # Workloads and failure processes
//!
//! A `[workload]` replaces the fixed list of `[clients]` with uploads arriving as a Poisson
//! process for `duration_days` (hour by hour at `uploads_per_hour` × the hour's weight of
//! `daily_profile` / the weights' mean), each from one of `machines` client machines, its size
//! drawn from `file_size`. A run with a workload forgets each file a day after its job ended
//! (its counts and, for a duplicate, its causal chain are kept): memory follows the uploads in
//! flight, not the uploads of the run. A delivery after that is counted as a duplicate of
//! cause `late`.
//!
//! Distributions (`file_size`, `repair_s`, `duration_s`): a number (always that value) or
//! `{ dist = "fixed", value }`, `{ dist = "uniform", min, max }`,
//! `{ dist = "lognormal", median, p99 }` (with an optional cap `max`), `{ dist = "exponential",
//! mean }`.
//!
//! A `[[failure]]` is a process that strikes at a rate, drawn from the run's seed, beside the
//! scripted `[[fault]]` rules; every strike is a `failure_struck` event that causal chains
//! name. Kinds and their keys:
//! * `node-crash` / `power-cut`: each node (or `node`) fails every `mtbf_h` hours on average
//!   (exponential), back after `repair_s` (default 600) with its durable sessions.
//! * `app-error`: the application answers a notification with `status` (default 500), before
//!   any effect, with `probability`.
//! * `app-slow`: the application takes `duration_s` to answer (its effect already recorded),
//!   with `probability` (default 1); past the node's `app_deadline_s` the node gives up first
//!   and the client retries.
//! * `app-crash`: the application dies with `probability` per notification right after its
//!   effect, and/or every `mtbf_h` hours; back after `repair_s` (default 600).
//! * `connection-reset`: `per_request`, the answer to a request to a node (or `node`) is lost
//!   after the node handled it; `per_mib`, a fragment's connection is reset while its body is
//!   sent (per MiB of body; the node never handles it).
//! * `partition`: each node (or `node`) and the application cannot reach each other for
//!   `duration_s`, every `mtbf_h` hours on average.
//! * `pool-recycle`: IIS recycles each node's (or `node`'s) application pool every `every_min`
//!   minutes (default 1,740, IIS's), each node at its own phase. Overlapped (`overlap = true`,
//!   IIS's default): requests in flight finish on the old worker, every later request (on a
//!   new connection or one already open: HTTP.sys keeps them) goes to the new worker (with
//!   volatile session state it knows no sessions).
//!   `overlap = false`: requests in flight are cut and the new worker starts `duration_s`
//!   (default 1) later.
//!
//! # Limits
//!
//! Every size and count has an upper bound, checked when the file is loaded (errors name the
//! `file:line: key`), so that memory and time stay bounded for any file the loader accepts
//! (the constants are in [`crate::load::limits`]):
//!
//! * `name` at most 64 characters, `description` at most 1,000 bytes;
//! * `deadline_days` at most 3,650; every `*_s` timeout or interval of `[farm]` and `[clients]`
//!   at most 315,360,000 (10 years); `start_spread_s` and the `at_s`, `duration_s` and
//!   `restart_after_s` of fault rules at most the deadline;
//! * `count` and `files_per_client` at most 100,000 each and 1,000,000 files in all;
//!   `file_size`, `file_size_max` and `fragment_size` at most 1 GiB;
//! * at most 1,048,576 fragments per file and 10,000,000 fragments per run;
//!   `count` × the largest file at most 4 GiB (bytes the nodes may hold at once);
//! * `window_bytes` 1,024 to 67,108,864; at most 1,000 `[[fault]]` rules;
//! * a `[workload]` brings at most 10,000,000 uploads (`uploads_per_hour` × 24 ×
//!   `duration_days`) from at most 1,000,000 machines; at most 100 `[[failure]]` processes,
//!   `mtbf_h` at most 1,000,000, probabilities in (0, 1].
//!
//! A run also stops after 10,000,000 events, or 40 per planned upload and 4 per planned
//! fragment when that is more (clients that retry for years): it then fails the `completed`
//! invariant with a message saying so.
//!
//! # Expectations
//!
//! Metrics: `files`, `acknowledged`, `failed`, `deliveries`, `duplicate_deliveries`,
//! `files_duplicated`, `effects`, `duplicate_effects`, `lost`, `corrupted`, `restarts`, `host_fallbacks`,
//! `bytes_resent`, `virtual_time_s`; and per file: `deliveries_per_file`, `effects_per_file`
//! (every file must satisfy it).

use std::collections::BTreeMap;

use node::{CommitPoint, NotificationType};
use probe::FaultPoint;
use protocol::PacketType;
use serde::{Deserialize, Serialize};

/// A scenario, as read from a file with every default filled in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// Name (default: the file name without `.toml`).
    pub name: String,
    /// One line saying what the scenario shows.
    pub description: String,
    /// Default seed.
    pub seed: u64,
    /// Virtual time limit of a run, days. A run still going then fails.
    pub deadline_days: f64,
    /// The farm.
    pub farm: Farm,
    /// The clients.
    pub clients: Clients,
    /// The server application.
    pub backend: Backend,
    /// The network.
    pub network: Network,
    /// `[rogues]`: misbehaving clients.
    pub rogues: Rogues,
    /// Fault rules.
    #[serde(rename = "fault")]
    pub faults: Vec<Fault>,
    /// `[workload]`: uploads arriving over simulated days (replaces `[clients]` when present).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload: Option<Workload>,
    /// `[[failure]]`: failure processes with rates, beside the scripted faults.
    #[serde(rename = "failure", skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<Failure>,
    /// Expectations: metric name → expression.
    pub expect: BTreeMap<String, ExpectValue>,
    /// Expectations set aside, not checked (a what-if run changed the settings they were
    /// written for: `bitsfarm scenario --set` without `--expect`). Not part of the file format.
    #[serde(skip)]
    pub unchecked_expect: BTreeMap<String, ExpectValue>,
}

impl Scenario {
    /// Sets the expectations aside (see [`Scenario::unchecked_expect`]).
    pub fn set_expectations_aside(&mut self) {
        let expect = std::mem::take(&mut self.expect);
        self.unchecked_expect.extend(expect);
    }
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            name: String::new(),
            description: String::new(),
            seed: 1,
            deadline_days: 60.0,
            farm: Farm::default(),
            clients: Clients::default(),
            backend: Backend::default(),
            network: Network::default(),
            rogues: Rogues::default(),
            faults: Vec::new(),
            workload: None,
            failures: Vec::new(),
            expect: BTreeMap::new(),
            unchecked_expect: BTreeMap::new(),
        }
    }
}

/// How a shared address picks a node.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Balancer {
    /// Nodes in turn.
    #[default]
    RoundRobin,
    /// A seeded random node.
    Random,
    /// The node with the fewest open connections.
    LeastConnections,
    /// The same node for the same client.
    SourceAffinity,
}

impl Balancer {
    /// The scenario spelling.
    pub fn name(self) -> &'static str {
        match self {
            Balancer::RoundRobin => "round-robin",
            Balancer::Random => "random",
            Balancer::LeastConnections => "least-connections",
            Balancer::SourceAffinity => "source-affinity",
        }
    }

    /// The simulator's policy of this balancer (the live balancer and the proxy use it too).
    pub fn policy(self) -> sim::Policy {
        match self {
            Balancer::RoundRobin => sim::Policy::RoundRobin,
            Balancer::Random => sim::Policy::Random,
            Balancer::LeastConnections => sim::Policy::LeastConnections,
            Balancer::SourceAffinity => sim::Policy::SourceAffinity,
        }
    }
}

/// Whether a node's sessions survive its crash.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum SessionState {
    /// Kept on disk, as IIS keeps `BITS-Sessions`: a restarted node resumes its sessions.
    #[default]
    Durable,
    /// Lost when the node dies.
    Volatile,
}

/// `[farm]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Farm {
    /// Nodes behind the shared address (`node-1` ... `node-N`).
    pub nodes: u32,
    /// `BITSHostId` set on every node (its own name).
    pub host_id: bool,
    /// `BITSHostIdFallbackTimeout`, seconds.
    pub fallback_timeout_s: u64,
    /// `BITSServerNotificationType`.
    pub notification: NotificationType,
    /// Balancer policy of the shared address.
    pub balancer: Balancer,
    /// Durable or volatile session state.
    pub session_state: SessionState,
    /// Upload-reply jobs.
    pub upload_reply: bool,
    /// `BITSSessionTimeout`, seconds.
    pub session_timeout_s: u64,
    /// Cleanup task period, seconds.
    pub cleanup_interval_s: u64,
    /// Application deadline, seconds.
    pub app_deadline_s: u64,
    /// `BITSMaximumUploadSize`, bytes.
    pub max_upload_size: u64,
    /// `BITSAllowOverwrites`.
    pub allow_overwrites: bool,
    /// Commit point of type-0 uploads.
    pub commit_point: CommitPoint,
    /// Idle connection timeout, seconds.
    pub idle_timeout_s: u64,
}

impl Default for Farm {
    fn default() -> Self {
        let iis = node::NodeConfig::default();
        Farm {
            nodes: 3,
            host_id: false,
            fallback_timeout_s: iis.host_id_fallback_timeout_s,
            notification: iis.notification,
            balancer: Balancer::RoundRobin,
            session_state: SessionState::Durable,
            upload_reply: false,
            session_timeout_s: iis.session_timeout_s,
            cleanup_interval_s: iis.cleanup_interval_s,
            app_deadline_s: iis.app_deadline_s,
            max_upload_size: iis.max_upload_size,
            allow_overwrites: iis.allow_overwrites,
            commit_point: iis.commit_point,
            idle_timeout_s: iis.idle_timeout_s,
        }
    }
}

/// `[clients]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Clients {
    /// Number of clients.
    pub count: u32,
    /// Files each client uploads, one after another.
    pub files_per_client: u32,
    /// File size, bytes (the minimum when `file_size_max` is set).
    pub file_size: u64,
    /// Largest file size, bytes.
    pub file_size_max: Option<u64>,
    /// Bytes per fragment.
    pub fragment_size: u64,
    /// With it, each fragment's size is drawn from `fragment_size..=fragment_size_max` (a
    /// retried fragment can then overlap what the node holds).
    pub fragment_size_max: Option<u64>,
    /// Clients start uniformly within this many seconds.
    pub start_spread_s: f64,
    /// `MinimumRetryDelay`, seconds.
    pub retry_delay_s: u64,
    /// `NoProgressTimeout`, seconds.
    pub no_progress_timeout_s: u64,
    /// Connect timeout, seconds.
    pub connect_timeout_s: u64,
    /// Response timeout, seconds.
    pub request_timeout_s: u64,
    /// Transaction id in the data.
    pub transaction_id: bool,
}

impl Default for Clients {
    fn default() -> Self {
        let win = client::JobConfig::default();
        Clients {
            count: 1,
            files_per_client: 1,
            file_size: 1 << 20,
            file_size_max: None,
            fragment_size: win.fragment_size,
            fragment_size_max: None,
            start_spread_s: 0.0,
            retry_delay_s: win.min_retry_delay_s,
            no_progress_timeout_s: win.no_progress_timeout_s,
            connect_timeout_s: win.connect_timeout_s,
            request_timeout_s: win.request_timeout_s,
            transaction_id: false,
        }
    }
}

/// `[backend]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Backend {
    /// Deduplicate by transaction id.
    pub dedupe: bool,
    /// Answer upload-reply jobs with `BITS-Static-Response-URL: <url>` instead of a reply of
    /// its own: a misbehaving application when the URL leads nowhere (`http://backend/missing`
    /// answers 404, `http://nowhere/r` cannot be reached). Needs `farm.upload_reply`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_url: Option<String>,
}

/// `[rogues]`: clients that misbehave on purpose. Each sends `requests` generated requests to
/// the shared address (the fuzzer's: overlapping, gapped and oversized fragments, bogus ranges
/// and session ids, traversal paths, truncated bodies, sessions it abandons), beside the
/// scenario's clients. Their uploads go to paths of their own (`/fuzz/...`) and are not counted;
/// every answer they get must be well formed (a bad one panics the run: `no_panics`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Rogues {
    /// How many.
    pub count: u32,
    /// Requests each sends.
    pub requests: u64,
}

impl Default for Rogues {
    fn default() -> Self {
        Rogues {
            count: 0,
            requests: 100,
        }
    }
}

/// `[network]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Network {
    /// One-way latency, milliseconds.
    pub latency_ms: u64,
    /// Each connection adds up to this many milliseconds of latency, drawn from the seed.
    pub jitter_ms: u64,
    /// Window per direction, bytes.
    pub window_bytes: u64,
}

impl Default for Network {
    fn default() -> Self {
        Network {
            latency_ms: 1,
            jitter_ms: 0,
            window_bytes: 256 << 10,
        }
    }
}

/// What a fault rule does.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Kill the process: peers see resets.
    Crash,
    /// Cut the power: peers see silence.
    PowerCut,
    /// Cut the current connection: the Ack is lost.
    DropResponse,
    /// Wait `duration_s`.
    Delay,
    /// Answer with `status`.
    Fail,
    /// Partition `node` and `peer` for `duration_s`.
    Partition,
    /// Restart a crashed `node`.
    Restart,
    /// Switch `BITSHostId` on every node (`enabled`).
    HostId,
    /// The actor at the point (or, for a timed rule, the harness) panics. A harness self-test:
    /// a panic anywhere in a run must fail it (`no_panics`), never pass.
    Panic,
    /// Answer with a plain HTTP error page of `status`, no BITS Ack: a proxy or load balancer in
    /// front of the node (at `request` and `ack-ready`; elsewhere it acts as `fail`).
    Page,
    /// The client `node` names (`c01`) cancels its current job (timed rules).
    Cancel,
    /// The disk of `node` (or of the node at the point) is full for `duration_s`: every
    /// storage write that adds bytes fails with "no space left"; removals work.
    DiskFull,
    /// The storage write at `storage-write` fails with an I/O error (an append leaves the first
    /// half of its bytes: a torn write).
    IoError,
}

impl Action {
    /// The scenario spelling.
    pub fn name(self) -> &'static str {
        match self {
            Action::Crash => "crash",
            Action::PowerCut => "power-cut",
            Action::DropResponse => "drop-response",
            Action::Delay => "delay",
            Action::Fail => "fail",
            Action::Partition => "partition",
            Action::Restart => "restart",
            Action::HostId => "host-id",
            Action::Panic => "panic",
            Action::Page => "page",
            Action::Cancel => "cancel",
            Action::DiskFull => "disk-full",
            Action::IoError => "io-error",
        }
    }
}

/// One `[[fault]]` rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Fault {
    /// Fault point trigger.
    pub point: Option<FaultPoint>,
    /// Time trigger, seconds of virtual time.
    pub at_s: Option<f64>,
    /// Actor filter (point rules) or target (timed rules).
    pub node: Option<String>,
    /// Packet filter.
    pub packet: Option<PacketType>,
    /// File filter (`/upload/c00-f000.bin`).
    pub file: Option<String>,
    /// Fire on the n-th matching hit (default 1).
    pub nth: Option<u64>,
    /// Fire on each matching hit with this probability.
    pub probability: Option<f64>,
    /// Most firings (default 1; 0 = unlimited).
    pub times: Option<u64>,
    /// May never fire without failing the run.
    pub optional: bool,
    /// The action.
    pub action: Option<Action>,
    /// Restart a crashed node after this many seconds.
    pub restart_after_s: Option<f64>,
    /// Duration of a delay or partition, seconds.
    pub duration_s: Option<f64>,
    /// Status for `fail` and `page`.
    pub status: Option<u16>,
    /// `BITS-Error-Code` for `fail` on a node (an HRESULT like `"0x80200020"`); default
    /// `E_FAIL`.
    pub code: Option<String>,
    /// Other side of a partition.
    pub peer: Option<String>,
    /// For `host-id`: on or off.
    pub enabled: Option<bool>,
}

/// An expectation as written: a number or an expression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum ExpectValue {
    /// `lost = 0` means `== 0`.
    Number(f64),
    /// `"<op> <number>"`.
    Expr(String),
}

/// A number drawn from a distribution: a plain number (always that value), or a table
/// `{ dist = "fixed", value = .. }`, `{ dist = "uniform", min = .., max = .. }`,
/// `{ dist = "lognormal", median = .., p99 = .. }`, `{ dist = "exponential", mean = .. }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum Dist {
    /// Always this value.
    Fixed(f64),
    /// A distribution.
    Table(DistTable),
}

/// The kinds of [`Dist`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DistKind {
    /// `value`.
    Fixed,
    /// Uniform in `[min, max]`.
    Uniform,
    /// Log-normal with this `median` and 99th percentile `p99`.
    Lognormal,
    /// Exponential with this `mean`.
    Exponential,
}

/// A distribution as a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DistTable {
    /// Which distribution.
    pub dist: DistKind,
    /// `fixed`: the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// `uniform`: the least value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// `uniform`: the greatest value; `lognormal`: an optional cap (greater draws take it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// `lognormal`: the median.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub median: Option<f64>,
    /// `lognormal`: the 99th percentile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99: Option<f64>,
    /// `exponential`: the mean.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
}

/// `[workload]`: uploads arriving as a Poisson process over simulated days, from many client
/// machines, instead of `[clients]`' fixed list of files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Workload {
    /// Simulated time during which uploads arrive, days.
    pub duration_days: f64,
    /// Mean arrival rate, uploads per hour.
    pub uploads_per_hour: f64,
    /// Optional daily profile: 24 weights, one per hour of the day; the rate of hour `h` is
    /// `uploads_per_hour × w[h] / mean(w)` (the mean rate stays `uploads_per_hour`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daily_profile: Option<Vec<f64>>,
    /// Distinct client machines; each upload comes from one drawn at random.
    pub machines: u32,
    /// File size, bytes.
    pub file_size: Dist,
    /// Bytes per fragment.
    pub fragment_size: u64,
    /// With it, each fragment's size is drawn from `fragment_size..=fragment_size_max`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fragment_size_max: Option<u64>,
    /// `MinimumRetryDelay`, seconds.
    pub retry_delay_s: u64,
    /// `NoProgressTimeout`, seconds.
    pub no_progress_timeout_s: u64,
    /// Connect timeout, seconds.
    pub connect_timeout_s: u64,
    /// Response timeout, seconds.
    pub request_timeout_s: u64,
    /// Transaction id in the data.
    pub transaction_id: bool,
}

impl Default for Workload {
    fn default() -> Self {
        let c = Clients::default();
        Workload {
            duration_days: 1.0,
            uploads_per_hour: 1000.0,
            daily_profile: None,
            machines: 1000,
            file_size: Dist::Fixed(c.file_size as f64),
            fragment_size: c.fragment_size,
            fragment_size_max: None,
            retry_delay_s: c.retry_delay_s,
            no_progress_timeout_s: c.no_progress_timeout_s,
            connect_timeout_s: c.connect_timeout_s,
            request_timeout_s: c.request_timeout_s,
            transaction_id: false,
        }
    }
}

/// What a failure process does.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// Nodes are killed (peers see resets) every `mtbf_h` hours on average, back after
    /// `repair_s`.
    NodeCrash,
    /// Nodes lose power (peers see silence) every `mtbf_h` hours on average, back after
    /// `repair_s`.
    PowerCut,
    /// The application answers a notification with `status` (before any effect), with
    /// `probability`.
    AppError,
    /// The application takes `duration_s` to answer a notification (after its effect), with
    /// `probability`; past the node's deadline the node gives up first.
    AppSlow,
    /// The application dies: with `probability` per notification right after its effect,
    /// and/or every `mtbf_h` hours; back after `repair_s`.
    AppCrash,
    /// Connections reset: `per_request`, a request's answer is lost after the node handled it;
    /// `per_mib`, a fragment is cut while its body is sent (the node never handles it).
    ConnectionReset,
    /// A node and the application cannot reach each other for `duration_s`, every `mtbf_h`
    /// hours on average per node.
    Partition,
    /// IIS recycles each node's application pool every `every_min` minutes (default 1,740).
    /// Overlapped (the IIS default): requests in flight finish on the old worker, new ones go
    /// to the new one; `overlap = false`: the old worker is stopped (requests in flight are
    /// cut) and the new one starts `duration_s` later (default 1).
    PoolRecycle,
}

impl FailureKind {
    /// The scenario spelling.
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::NodeCrash => "node-crash",
            FailureKind::PowerCut => "power-cut",
            FailureKind::AppError => "app-error",
            FailureKind::AppSlow => "app-slow",
            FailureKind::AppCrash => "app-crash",
            FailureKind::ConnectionReset => "connection-reset",
            FailureKind::Partition => "partition",
            FailureKind::PoolRecycle => "pool-recycle",
        }
    }
}

/// One `[[failure]]` process: failures at a rate, drawn from the run's seed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Failure {
    /// What fails.
    pub kind: Option<FailureKind>,
    /// Only this node (default: every node, each with its own process).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Mean time between failures, hours (per node for node failures).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtbf_h: Option<f64>,
    /// Time to repair, seconds (a number or a distribution).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repair_s: Option<Dist>,
    /// Per notification.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
    /// HTTP status of `app-error` (default 500).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// `connection-reset`: probability per request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_request: Option<f64>,
    /// `connection-reset`: probability per MiB of fragment body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_mib: Option<f64>,
    /// Duration of a partition, of the application's answer (`app-slow`), or of a
    /// non-overlapped recycle, seconds (a number or a distribution).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<Dist>,
    /// `pool-recycle`: period, minutes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub every_min: Option<f64>,
    /// `pool-recycle`: overlapped (default true, as IIS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overlap: Option<bool>,
}
