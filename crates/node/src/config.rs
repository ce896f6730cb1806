//! The node's configuration: the BITS IIS extension properties, with their documented defaults.

use serde::{Deserialize, Serialize};

/// `BITSServerNotificationType`: how the server application learns of a completed upload.
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
pub enum NotificationType {
    /// 0: no application; the file is placed at the job's remote name (the IIS default).
    #[default]
    None,
    /// 1: the application gets the path of the uploaded file (`BITS-Request-DataFile-Name`).
    ByReference,
    /// 2: the application gets the file in the request body.
    ByValue,
}

impl NotificationType {
    /// The scenario/CLI spelling (`by-value`).
    pub fn name(self) -> &'static str {
        match self {
            NotificationType::None => "none",
            NotificationType::ByReference => "by-reference",
            NotificationType::ByValue => "by-value",
        }
    }
}

/// When a notification-type-0 upload is placed at its destination. The sources disagree
/// (MC-BUP: on Close-Session; MSDN's Cancel-Session page: on the last fragment), so it is a
/// setting.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum CommitPoint {
    /// When the last byte arrives (MSDN). Default, and consistent with Cancel-Session after the
    /// last fragment not un-delivering the file.
    #[default]
    LastFragment,
    /// When Close-Session arrives (MC-BUP 3.2.5.1).
    Close,
}

/// A node's settings. `Default` gives the IIS defaults (with uploads enabled).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// The node's name in events and logs (`node-1`). Not sent on the wire.
    pub name: String,
    /// `BITSHostId`: the address clients use after Create-Session. Default unset.
    pub host_id: Option<String>,
    /// `BITSHostIdFallbackTimeout`, seconds. Default 86,400.
    pub host_id_fallback_timeout_s: u64,
    /// `BITSSessionTimeout`: seconds without progress before cleanup deletes a session.
    /// Default 1,209,600 (14 days).
    pub session_timeout_s: u64,
    /// How often the cleanup task runs, seconds. Default 43,200 (12 hours).
    pub cleanup_interval_s: u64,
    /// `BITSMaximumUploadSize`, bytes. Default 1,844,674,407,370,955.
    pub max_upload_size: u64,
    /// Largest fragment body the node accepts; longer fragments get 413 and the client shrinks
    /// its fragments. Default 30,000,000 (IIS 7's request limit).
    pub max_fragment_size: u64,
    /// `BITSServerNotificationType`. Default none.
    pub notification: NotificationType,
    /// `BITSServerNotificationURL`: absolute `http://` URL, or relative to the upload's URL.
    /// Required for by-reference and by-value notification.
    pub notification_url: Option<String>,
    /// How long the application may take to answer, seconds. Default 300.
    pub app_deadline_s: u64,
    /// Whether the virtual directory serves upload-reply jobs: the final Fragment Ack carries
    /// `BITS-Reply-URL`. Default false.
    pub upload_reply: bool,
    /// `BITSAllowOverwrites`. Default false.
    pub allow_overwrites: bool,
    /// When a type-0 upload is placed at its destination. Default last fragment.
    pub commit_point: CommitPoint,
    /// `BITSUploadEnabled`. Default true here (a node that refuses uploads is only useful to
    /// test the 501 answer).
    pub uploads_enabled: bool,
    /// Seconds a connection may idle before the node closes it (IIS `connectionTimeout`).
    /// Default 120.
    pub idle_timeout_s: u64,
    /// Slowest average rate of a request body, bytes per second, after a grace period of
    /// `idle_timeout_s` (IIS's `minBytesPerSecond`, default 240). A body that stalls for
    /// `idle_timeout_s`, or crawls below this rate, is abandoned: it never holds its session.
    pub min_bytes_per_s: u64,
    /// Most bytes of fragment bodies held in memory at once, over all connections; a fragment
    /// that does not fit is answered 503 (transient) before its body is read. Default 1 GiB.
    pub max_buffered_bytes: u64,
    /// Most open sessions; Create-Session over it is answered 503 (transient). Default: no
    /// limit (IIS has none).
    pub max_sessions: Option<u64>,
    /// Most bytes held by open sessions together; a fragment that would go over it is answered
    /// 503 (transient). Default: no limit.
    pub max_session_bytes: Option<u64>,
    /// Seconds after which a session that never received a byte is deleted (abandoned
    /// Create-Sessions). Default: `session_timeout_s`, as in IIS.
    pub empty_session_timeout_s: Option<u64>,
    /// Most connections served at once; more are answered 503 and closed. Default: no limit.
    pub max_connections: Option<usize>,
    /// A secret sent to the application with every notification (`X-Bitsfarm-App-Token`), so
    /// the application can refuse notifications that do not come from a node. Default none.
    pub app_token: Option<String>,
    /// Require HTTP Basic authentication with these credentials on every request (IIS with
    /// Basic authentication on the virtual directory): others get 401 with
    /// `WWW-Authenticate: Basic`. Never serialized.
    #[serde(skip)]
    pub basic_auth: Option<transport::auth::Credentials>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            name: "node".into(),
            host_id: None,
            host_id_fallback_timeout_s: 86_400,
            session_timeout_s: 1_209_600,
            cleanup_interval_s: 43_200,
            max_upload_size: 1_844_674_407_370_955,
            max_fragment_size: 30_000_000,
            notification: NotificationType::None,
            notification_url: None,
            app_deadline_s: 300,
            upload_reply: false,
            allow_overwrites: false,
            commit_point: CommitPoint::LastFragment,
            uploads_enabled: true,
            idle_timeout_s: 120,
            min_bytes_per_s: 240,
            max_buffered_bytes: 1 << 30,
            max_sessions: None,
            max_session_bytes: None,
            empty_session_timeout_s: None,
            max_connections: None,
            app_token: None,
            basic_auth: None,
        }
    }
}

/// A setting that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Notification type 1 or 2 without a URL.
    #[error("notification {0} needs a notification URL")]
    MissingNotificationUrl(&'static str),
    /// A notification URL that is not http:// or relative, or too long.
    #[error("notification URL {0:?}: {1}")]
    BadNotificationUrl(String, &'static str),
    /// Upload-reply needs an application to produce the reply.
    #[error("upload-reply needs notification by-reference or by-value")]
    ReplyWithoutApplication,
    /// `BITSHostId` longer than 300 characters or not a valid host.
    #[error("BITSHostId {0:?} must be 1 to 300 characters of a host name, IP or host:port")]
    BadHostId(String),
    /// A zero where a positive number is needed.
    #[error("{0} must be greater than 0")]
    Zero(&'static str),
}

impl NodeConfig {
    /// Checks that the settings can work together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.notification != NotificationType::None {
            let Some(url) = &self.notification_url else {
                return Err(ConfigError::MissingNotificationUrl(
                    self.notification.name(),
                ));
            };
            if url.len() > 2200 {
                return Err(ConfigError::BadNotificationUrl(
                    url.clone(),
                    "longer than 2,200 characters",
                ));
            }
            let lower = url.to_ascii_lowercase();
            if lower.starts_with("https://") {
                return Err(ConfigError::BadNotificationUrl(
                    url.clone(),
                    "HTTPS is not allowed (BITS notifies over HTTP only)",
                ));
            }
            if lower.starts_with("http://") && transport::url::parse(url).is_err() {
                return Err(ConfigError::BadNotificationUrl(
                    url.clone(),
                    "not a valid http:// URL",
                ));
            }
            if lower.contains("://") && !lower.starts_with("http://") {
                return Err(ConfigError::BadNotificationUrl(
                    url.clone(),
                    "only http:// URLs are allowed",
                ));
            }
        } else if self.upload_reply {
            return Err(ConfigError::ReplyWithoutApplication);
        }
        if let Some(h) = &self.host_id {
            let ok = !h.is_empty()
                && h.len() <= 300
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-_:[]".contains(&b));
            if !ok {
                return Err(ConfigError::BadHostId(h.clone()));
            }
        }
        for (name, v) in [
            ("max_fragment_size", self.max_fragment_size),
            ("app_deadline_s", self.app_deadline_s),
            ("cleanup_interval_s", self.cleanup_interval_s),
            ("idle_timeout_s", self.idle_timeout_s),
            ("max_buffered_bytes", self.max_buffered_bytes),
        ] {
            if v == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_iis_defaults() {
        let c = NodeConfig::default();
        assert_eq!(c.host_id, None);
        assert_eq!(c.host_id_fallback_timeout_s, 86_400);
        assert_eq!(c.session_timeout_s, 1_209_600);
        assert_eq!(c.notification, NotificationType::None);
        assert_eq!(c.app_deadline_s, 300);
        assert!(!c.allow_overwrites);
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn rejects_settings_that_cannot_work() {
        let by_value = NodeConfig {
            notification: NotificationType::ByValue,
            ..NodeConfig::default()
        };
        assert!(matches!(
            by_value.validate(),
            Err(ConfigError::MissingNotificationUrl(_))
        ));
        let https = NodeConfig {
            notification_url: Some("https://app/x".into()),
            ..by_value.clone()
        };
        assert!(matches!(
            https.validate(),
            Err(ConfigError::BadNotificationUrl(..))
        ));
        let relative = NodeConfig {
            notification_url: Some("app.asp".into()),
            ..by_value
        };
        assert_eq!(relative.validate(), Ok(()));
        let reply = NodeConfig {
            upload_reply: true,
            ..NodeConfig::default()
        };
        assert_eq!(reply.validate(), Err(ConfigError::ReplyWithoutApplication));
        let host = NodeConfig {
            host_id: Some("a b".into()),
            ..NodeConfig::default()
        };
        assert!(matches!(host.validate(), Err(ConfigError::BadHostId(_))));
    }
}
