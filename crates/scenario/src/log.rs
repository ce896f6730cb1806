//! The event log of a run: every typed event with its virtual time and sequence number, hashed
//! as it is recorded (the determinism oracle) and optionally written out.
//!
//! # `events.jsonl` format (version 1)
//!
//! One JSON object per line, in the order the events happened:
//!
//! ```json
//! {"v":1,"seq":0,"t_ms":0,"type":"node_started","node":"node-1","sessions":0}
//! {"v":1,"seq":7,"t_ms":12,"type":"forwarded","node":"node-2","session":"{...}","file":"/upload/c00-f000.bin","bytes":1048576}
//! ```
//!
//! * `v` — format version (1); a reader must refuse versions it does not know.
//! * `seq` — 0-based position in the log.
//! * `t_ms` — virtual time since the start of the run, milliseconds.
//! * `type` and the remaining fields — the event, as documented on [`probe::Event`] (the
//!   variant name in snake_case, then its fields).

use std::hash::{Hash, Hasher};

use probe::Event;
use serde::{Deserialize, Serialize};
use twox_hash::XxHash3_64;

/// Version of the `events.jsonl` format.
pub const FORMAT_VERSION: u32 = 1;

/// One recorded event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Format version.
    pub v: u32,
    /// Position in the log.
    pub seq: u64,
    /// Virtual time, milliseconds since the start of the run.
    pub t_ms: u64,
    /// The event.
    #[serde(flatten)]
    pub event: Event,
}

/// Where recorded events go besides the hash.
pub type Sink = Box<dyn FnMut(&Record) + Send>;

/// The event log: a running hash and an optional sink.
pub struct EventLog {
    seq: u64,
    hasher: XxHash3_64,
    sink: Option<Sink>,
}

impl EventLog {
    /// A log that keeps only the hash, or also feeds `sink`.
    pub fn new(sink: Option<Sink>) -> EventLog {
        EventLog {
            seq: 0,
            hasher: XxHash3_64::new(),
            sink,
        }
    }

    /// Records an event at `t_ms`; returns it numbered.
    pub fn record(&mut self, t_ms: u64, event: Event) -> Record {
        let rec = Record {
            v: FORMAT_VERSION,
            seq: self.seq,
            t_ms,
            event,
        };
        self.seq += 1;
        rec.seq.hash(&mut self.hasher);
        rec.t_ms.hash(&mut self.hasher);
        rec.event.hash(&mut self.hasher);
        if let Some(sink) = &mut self.sink {
            sink(&rec);
        }
        rec
    }

    /// Events recorded so far.
    pub fn len(&self) -> u64 {
        self.seq
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.seq == 0
    }

    /// The hash of everything recorded, as 16 hex digits.
    pub fn hash(&self) -> String {
        format!("{:016x}", self.hasher.finish())
    }
}
