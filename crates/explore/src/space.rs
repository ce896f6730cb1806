//! The space the explorer searches: ranges of farm settings, clients and fault schedules.
//! `bitsfarm explore --space FILE` reads one from TOML; every key is optional.

use serde::{Deserialize, Serialize};

/// A kind of fault the generator may schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// A node is killed at a fault point (maybe restarted).
    Crash,
    /// A node loses power at a fault point (maybe restarted).
    PowerCut,
    /// A connection is cut as the Ack is written.
    DropResponse,
    /// The application is slow.
    SlowApp,
    /// The application answers with an error status.
    AppFails,
    /// The application dies (maybe restarted).
    AppCrash,
    /// A client and a node are partitioned for a while.
    Partition,
    /// BITSHostId is switched on or off at a time.
    HostIdToggle,
    /// A proxy in front of a node answers with a plain HTTP error page (no BITS Ack).
    ProxyPage,
    /// A node answers with an unusual pair of HTTP status and `BITS-Error-Code`.
    OddAck,
    /// A client cancels its job at a time.
    Cancel,
    /// A node's storage write fails with an I/O error (an append is torn).
    IoError,
    /// A node's disk is full for a while, from a time on.
    DiskFull,
}

impl FaultKind {
    /// Whether a fault of this kind acts on a node (its `node` knob matters).
    pub fn names_node(self) -> bool {
        matches!(
            self,
            FaultKind::Crash
                | FaultKind::PowerCut
                | FaultKind::DropResponse
                | FaultKind::Partition
                | FaultKind::ProxyPage
                | FaultKind::OddAck
                | FaultKind::IoError
                | FaultKind::DiskFull
        )
    }

    /// Whether a fault of this kind acts on a client (its `client` knob matters).
    pub fn names_client(self) -> bool {
        matches!(self, FaultKind::Partition | FaultKind::Cancel)
    }

    /// Every kind.
    pub const ALL: [FaultKind; 13] = [
        FaultKind::Crash,
        FaultKind::PowerCut,
        FaultKind::DropResponse,
        FaultKind::SlowApp,
        FaultKind::AppFails,
        FaultKind::AppCrash,
        FaultKind::Partition,
        FaultKind::HostIdToggle,
        FaultKind::ProxyPage,
        FaultKind::OddAck,
        FaultKind::Cancel,
        FaultKind::IoError,
        FaultKind::DiskFull,
    ];
}

/// Ranges to draw from. `(min, max)` pairs are inclusive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Space {
    /// Nodes.
    pub nodes: (u32, u32),
    /// Clients.
    pub clients: (u32, u32),
    /// Files per client.
    pub files_per_client: (u32, u32),
    /// File sizes, bytes.
    pub file_size: (u64, u64),
    /// Fragment sizes to pick from.
    pub fragment_sizes: Vec<u64>,
    /// Minimum retry delays to pick from, seconds (a 5 s delay comes with a one-hour
    /// no-progress timeout, so a dead farm costs a bounded number of retries).
    pub retry_delays_s: Vec<u64>,
    /// Host-Id fallback timeouts to pick from, seconds.
    pub fallback_timeouts_s: Vec<u64>,
    /// Fault rules per scenario.
    pub faults: (u32, u32),
    /// Fault kinds that may be scheduled.
    pub fault_kinds: Vec<FaultKind>,
    /// Swarm testing: each scenario allows only a random non-empty subset of `fault_kinds`, so
    /// rare combinations are not drowned out by frequent ones.
    pub swarm: bool,
}

impl Default for Space {
    fn default() -> Self {
        Space {
            nodes: (1, 5),
            clients: (1, 6),
            files_per_client: (1, 3),
            file_size: (0, 65_536),
            fragment_sizes: vec![4096, 16_384, 65_536, 1 << 20],
            retry_delays_s: vec![60, 600],
            fallback_timeouts_s: vec![600, 3600, 86_400],
            faults: (0, 4),
            fault_kinds: FaultKind::ALL.to_vec(),
            swarm: true,
        }
    }
}

/// Why a space cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpaceError {
    /// A `(min, max)` pair out of order or out of bounds.
    #[error("{name} = [{min}, {max}] must be an increasing range within [{lo}, {hi}]")]
    Range {
        /// The key.
        name: &'static str,
        /// Its first value.
        min: u64,
        /// Its second value.
        max: u64,
        /// The lowest allowed.
        lo: u64,
        /// The highest allowed.
        hi: u64,
    },
    /// A list that is empty or holds a zero.
    #[error("{0} must list positive values")]
    NotPositive(&'static str),
    /// Faults allowed but no kind to draw them from.
    #[error("fault_kinds is empty but faults allows some")]
    NoFaultKinds,
}

/// Checks that a space can be drawn from.
pub fn validate(s: &Space) -> Result<(), SpaceError> {
    let range = |name: &'static str, (min, max): (u64, u64), lo: u64, hi: u64| {
        if min > max || min < lo || max > hi {
            Err(SpaceError::Range {
                name,
                min,
                max,
                lo,
                hi,
            })
        } else {
            Ok(())
        }
    };
    range("nodes", (s.nodes.0.into(), s.nodes.1.into()), 1, 16)?;
    range("clients", (s.clients.0.into(), s.clients.1.into()), 1, 100)?;
    range(
        "files_per_client",
        (s.files_per_client.0.into(), s.files_per_client.1.into()),
        1,
        20,
    )?;
    range("file_size", s.file_size, 0, 16 << 20)?;
    range("faults", (s.faults.0.into(), s.faults.1.into()), 0, 16)?;
    for (name, v) in [
        ("fragment_sizes", &s.fragment_sizes),
        ("retry_delays_s", &s.retry_delays_s),
        ("fallback_timeouts_s", &s.fallback_timeouts_s),
    ] {
        if v.is_empty() || v.contains(&0) {
            return Err(SpaceError::NotPositive(name));
        }
    }
    if s.faults.1 > 0 && s.fault_kinds.is_empty() {
        return Err(SpaceError::NoFaultKinds);
    }
    Ok(())
}

/// Why a space file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SpaceFileError {
    /// The file could not be read.
    #[error("cannot read --space {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not TOML of a space, at a line.
    #[error("{path}:{line}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A value that cannot work.
    #[error("{path}: {source}")]
    Invalid {
        /// The file.
        path: String,
        /// Why.
        source: SpaceError,
    },
}

/// Reads and checks a space file (TOML; every key optional).
pub fn load(path: &std::path::Path) -> Result<Space, SpaceFileError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| SpaceFileError::Read {
        path: shown.clone(),
        source,
    })?;
    let s: Space = toml::from_str(&text).map_err(|e| SpaceFileError::Parse {
        path: shown.clone(),
        line: e
            .span()
            .map_or(1, |sp| text[..sp.start].matches('\n').count() + 1),
        message: e.message().to_owned(),
    })?;
    validate(&s).map_err(|source| SpaceFileError::Invalid {
        path: shown,
        source,
    })?;
    Ok(s)
}
