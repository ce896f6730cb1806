//! The run totals: one struct for what the checker counts, the summary prints, expectations
//! name, and sweeps and aggregates add up.

use serde::{Deserialize, Serialize};

/// A run's totals (or the sum over several runs). In JSON each is a field of its own
/// (`"files": 10`), named as expectations name it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Metrics {
    /// Files (one job each).
    pub files: u64,
    /// Jobs whose final fragment was acknowledged to the client.
    pub acknowledged: u64,
    /// Jobs that ended in error.
    pub failed: u64,
    /// Deliveries to the application (type 0: commits to the destination).
    pub deliveries: u64,
    /// Deliveries beyond the first, over all files.
    pub duplicate_deliveries: u64,
    /// Files delivered more than once.
    pub files_duplicated: u64,
    /// Deliveries that had an effect.
    pub effects: u64,
    /// Effects beyond the first, over all files: what the application did twice (0 when it
    /// deduplicates every repeated transaction id).
    pub duplicate_effects: u64,
    /// Files acknowledged to their client and never delivered.
    pub lost: u64,
    /// Deliveries whose bytes differ from the client's.
    pub corrupted: u64,
    /// Uploads restarted from byte 0.
    pub restarts: u64,
    /// Host-Id fallbacks.
    pub host_fallbacks: u64,
    /// Bytes sent beyond one copy of each file.
    pub bytes_resent: u64,
    /// Virtual time of the run, seconds (summed over runs).
    pub virtual_time_s: f64,
}

impl Metrics {
    /// Every metric's name, in the order of the fields.
    pub const NAMES: [&'static str; 14] = [
        "files",
        "acknowledged",
        "failed",
        "deliveries",
        "duplicate_deliveries",
        "files_duplicated",
        "effects",
        "duplicate_effects",
        "lost",
        "corrupted",
        "restarts",
        "host_fallbacks",
        "bytes_resent",
        "virtual_time_s",
    ];

    /// Every metric with its name, in the order of [`Metrics::NAMES`].
    pub fn values(&self) -> [(&'static str, f64); 14] {
        let m = self;
        let counts = [
            m.files,
            m.acknowledged,
            m.failed,
            m.deliveries,
            m.duplicate_deliveries,
            m.files_duplicated,
            m.effects,
            m.duplicate_effects,
            m.lost,
            m.corrupted,
            m.restarts,
            m.host_fallbacks,
            m.bytes_resent,
        ];
        let mut out = [("", 0.0); 14];
        for (i, c) in counts.into_iter().enumerate() {
            out[i] = (Self::NAMES[i], c as f64);
        }
        out[13] = (Self::NAMES[13], m.virtual_time_s);
        out
    }

    /// A metric by its name.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.values()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
    }

    /// Adds another run's totals.
    pub fn add(&mut self, o: &Metrics) {
        self.files += o.files;
        self.acknowledged += o.acknowledged;
        self.failed += o.failed;
        self.deliveries += o.deliveries;
        self.duplicate_deliveries += o.duplicate_deliveries;
        self.files_duplicated += o.files_duplicated;
        self.effects += o.effects;
        self.duplicate_effects += o.duplicate_effects;
        self.lost += o.lost;
        self.corrupted += o.corrupted;
        self.restarts += o.restarts;
        self.host_fallbacks += o.host_fallbacks;
        self.bytes_resent += o.bytes_resent;
        self.virtual_time_s += o.virtual_time_s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every field has a distinct value, so a name read from the wrong field shows.
    fn distinct() -> Metrics {
        Metrics {
            files: 1,
            acknowledged: 2,
            failed: 3,
            deliveries: 4,
            duplicate_deliveries: 5,
            files_duplicated: 6,
            effects: 7,
            duplicate_effects: 8,
            lost: 9,
            corrupted: 10,
            restarts: 11,
            host_fallbacks: 12,
            bytes_resent: 13,
            virtual_time_s: 14.5,
        }
    }

    #[test]
    fn each_name_reads_its_own_json_field() {
        let m = distinct();
        let json = serde_json::to_value(&m).unwrap();
        let fields = json.as_object().unwrap();
        assert_eq!(fields.len(), Metrics::NAMES.len());
        for name in Metrics::NAMES {
            assert_eq!(fields[name].as_f64(), m.get(name), "{name}");
        }
        assert_eq!(m.get("nothing"), None);
    }

    #[test]
    fn adding_adds_every_field() {
        let mut m = distinct();
        m.add(&distinct());
        for (name, v) in m.values() {
            assert_eq!(Some(v), distinct().get(name).map(|x| 2.0 * x), "{name}");
        }
    }
}
