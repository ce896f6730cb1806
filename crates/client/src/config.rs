//! A job's settings, with Windows BITS' defaults.

use serde::{Deserialize, Serialize};

/// Upload, or upload-reply (the client downloads the application's reply before closing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobKind {
    /// `BG_JOB_TYPE_UPLOAD`.
    #[default]
    Upload,
    /// `BG_JOB_TYPE_UPLOAD_REPLY`.
    UploadReply,
}

/// How the retry delay grows after consecutive transient errors. Windows documents only a fixed
/// minimum delay, so [`Growth::Fixed`] is the default; [`Growth::Doubling`] models a client that
/// backs off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Growth {
    /// Every retry waits the minimum delay.
    #[default]
    Fixed,
    /// Each consecutive retry waits twice the previous one, up to `max_delay_s`.
    Doubling {
        /// Longest delay, seconds.
        max_delay_s: u64,
    },
}

/// Lowest minimum retry delay Windows accepts; smaller values are raised to it.
pub const RETRY_DELAY_FLOOR_S: u64 = 5;

/// A job's settings. `Default` gives Windows BITS' defaults (`url` must be set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobConfig {
    /// Name in events and logs (`c03-f001`).
    pub name: String,
    /// The remote name: `http://host[:port]/path[?query]` (or `https://`: the caller gives a
    /// TLS connector).
    pub url: String,
    /// Upload or upload-reply.
    pub kind: JobKind,
    /// Bytes per fragment. Windows sizes fragments itself and does not document how; bitsfarm
    /// uses a fixed size, 1 MiB by default.
    pub fragment_size: u64,
    /// When set (and larger than `fragment_size`), each fragment's size is drawn uniformly
    /// from `fragment_size..=fragment_size_max` with the job's generator, as Windows sizes its
    /// fragments itself; a retried fragment may then be longer than the one whose Ack was lost
    /// (an overlapping fragment). Dropped after the first 413. Default none.
    pub fragment_size_max: Option<u64>,
    /// Smallest fragment after 413 answers (each 413 halves the size). Default 4 KiB; when the
    /// fragment size is not at least 8 times larger, an eighth of the fragment size (at least 1
    /// byte), so a job that starts small can still shrink below its starting size.
    pub min_fragment_size: u64,
    /// `MinimumRetryDelay`, seconds: a transient error is retried no earlier than this.
    /// Default 600; values under 5 are raised to 5.
    pub min_retry_delay_s: u64,
    /// How the delay grows over consecutive errors. Default fixed.
    pub retry_growth: Growth,
    /// `NoProgressTimeout`, seconds: the job fails after this long in transient error without
    /// progress, counted from the first error. 0 means every error is fatal. Default 1,209,600.
    pub no_progress_timeout_s: u64,
    /// Seconds to open a connection (WinHTTP's default connect timeout is 60).
    pub connect_timeout_s: u64,
    /// Seconds to wait for a whole response. Default 360: longer than the server's 300 s
    /// application deadline, so a slow application surfaces as the server's context-0x7 error.
    pub request_timeout_s: u64,
    /// `Content-Name` of the first fragment (the local file name).
    pub content_name: Option<String>,
    /// Longest reply an upload-reply job downloads, bytes; a longer one fails the job.
    /// Default 64 MiB.
    pub max_reply_size: u64,
    /// Wrap the upload in bitsfarm's transaction-id envelope (see `protocol::txid`), with an id
    /// chosen once per job, so the application can deduplicate re-uploads.
    pub transaction_id: bool,
    /// HTTP Basic credentials sent with every request (`Debug` hides the password; never
    /// serialized).
    #[serde(skip)]
    pub credentials: Option<transport::auth::Credentials>,
}

impl Default for JobConfig {
    fn default() -> Self {
        JobConfig {
            name: "job".into(),
            url: String::new(),
            kind: JobKind::Upload,
            fragment_size: 1 << 20,
            fragment_size_max: None,
            min_fragment_size: 4096,
            min_retry_delay_s: 600,
            retry_growth: Growth::Fixed,
            no_progress_timeout_s: 1_209_600,
            connect_timeout_s: 60,
            request_timeout_s: 360,
            content_name: None,
            max_reply_size: 64 << 20,
            transaction_id: false,
            credentials: None,
        }
    }
}

/// A setting that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The URL is not `http://host/path`.
    #[error("job URL {url:?}: {why}")]
    BadUrl {
        /// The URL.
        url: String,
        /// What is wrong.
        why: String,
    },
    /// A size or timeout of zero where a positive value is needed.
    #[error("{0} must be greater than 0")]
    Zero(&'static str),
    /// The file to upload could not be read (to compute its transaction-id envelope).
    #[error("cannot read the file to upload: {0}")]
    Unreadable(String),
}

impl JobConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let (target, _) =
            transport::url::parse_web(&self.url).map_err(|e| ConfigError::BadUrl {
                url: self.url.clone(),
                why: e.to_string(),
            })?;
        if target.path_and_query.split('?').next() == Some("/") {
            return Err(ConfigError::BadUrl {
                url: self.url.clone(),
                why: "the URL names no file".into(),
            });
        }
        for (name, v) in [
            ("fragment_size", self.fragment_size),
            ("min_fragment_size", self.min_fragment_size),
            ("connect_timeout_s", self.connect_timeout_s),
            ("request_timeout_s", self.request_timeout_s),
        ] {
            if v == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        Ok(())
    }

    /// The smallest fragment a 413 may shrink to.
    pub fn fragment_floor(&self) -> u64 {
        self.min_fragment_size.min(self.fragment_size / 8).max(1)
    }

    /// The minimum retry delay after Windows' 5-second floor.
    pub fn effective_retry_delay_s(&self) -> u64 {
        self.min_retry_delay_s.max(RETRY_DELAY_FLOOR_S)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_defaults_and_checks() {
        let c = JobConfig {
            url: "http://farm/upload/a.bin".into(),
            ..JobConfig::default()
        };
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(
            (c.min_retry_delay_s, c.no_progress_timeout_s),
            (600, 1_209_600)
        );
        assert_eq!(
            JobConfig {
                min_retry_delay_s: 1,
                ..c.clone()
            }
            .effective_retry_delay_s(),
            5
        );
        // https:// is a job URL (the caller gives a TLS connector); other schemes are not.
        assert!(
            JobConfig {
                url: "https://farm/a".into(),
                ..c.clone()
            }
            .validate()
            .is_ok()
        );
        assert!(
            JobConfig {
                url: "ftp://farm/a".into(),
                ..c.clone()
            }
            .validate()
            .is_err()
        );
        assert!(
            JobConfig {
                url: "http://farm/".into(),
                ..c.clone()
            }
            .validate()
            .is_err()
        );
        assert!(
            JobConfig {
                fragment_size: 0,
                ..c.clone()
            }
            .validate()
            .is_err()
        );
        // A job that starts below the floor can still shrink (a 413 at 1,000 bytes must not
        // be fatal at once).
        for (fragment_size, floor) in [(1 << 20, 4096), (32_768, 4096), (1000, 125), (7, 1)] {
            let cfg = JobConfig {
                fragment_size,
                ..c.clone()
            };
            assert_eq!(cfg.fragment_floor(), floor, "{fragment_size}");
            assert!(cfg.fragment_floor() < fragment_size);
        }
    }
}
