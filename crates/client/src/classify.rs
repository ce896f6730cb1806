//! How the client reacts to an answer: the MC-BUP client rules and Windows' transient/fatal
//! classification of HTTP statuses.

use protocol::{Ack, HResult};

/// What an error Ack means for the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reaction {
    /// `0x8020001F`: start over with Create-Session from byte 0.
    Restart,
    /// 413: retry the same offset with a smaller fragment.
    Shrink,
    /// Retry after the retry delay.
    Transient,
    /// Stop: the job goes to the error state.
    Fatal,
}

/// Windows' classification of an HTTP status from the server application
/// (handling-server-application-errors): 3xx transient except 300–305 and 307; 4xx fatal except
/// 408 and 409; 5xx transient except 501 and 505; anything else transient.
pub fn status_is_transient(status: u16) -> bool {
    match status {
        300..=305 | 307 => false,
        300..=399 => true,
        408 | 409 => true,
        400..=499 => false,
        501 | 505 => false,
        500..=599 => true,
        _ => true,
    }
}

/// The reaction to a non-success Ack (not 200, 201 or 416).
pub fn reaction(ack: &Ack) -> Reaction {
    match ack.code() {
        Some(HResult::SESSION_NOT_FOUND) => return Reaction::Restart,
        // Bad request, too large, access denied (incl. uploads disabled): no retry helps.
        Some(HResult::INVALID_ARG | HResult::TOO_LARGE | HResult::ACCESS_DENIED) => {
            return Reaction::Fatal;
        }
        _ => {}
    }
    if ack.status == 413 {
        return Reaction::Shrink;
    }
    // Windows judges the rest by the HTTP status alone, whoever failed (the server or the
    // application); a 1xx/2xx that is not a success counts as transient.
    if status_is_transient(ack.status) {
        Reaction::Transient
    } else {
        Reaction::Fatal
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::ErrorContext;

    #[test]
    fn windows_status_classes() {
        for s in [301, 303, 305, 307, 400, 401, 403, 404, 410, 501, 505] {
            assert!(!status_is_transient(s), "{s}");
        }
        for s in [306, 308, 408, 409, 500, 502, 503, 504, 599, 600] {
            assert!(status_is_transient(s), "{s}");
        }
    }

    #[test]
    fn the_error_code_decides_where_the_status_would_not() {
        // Test gap C1: the code makes these fatal although their status alone would shrink
        // (413) or retry (5xx).
        let file = |s, code| Ack::error(s, code, ErrorContext::REMOTE_FILE);
        for (ack, want) in [
            (file(413, HResult::TOO_LARGE), Reaction::Fatal),
            (file(503, HResult::INVALID_ARG), Reaction::Fatal),
            (file(500, HResult::ACCESS_DENIED), Reaction::Fatal),
            (file(503, HResult::SESSION_NOT_FOUND), Reaction::Restart),
            // Test gap C2: a server's (not the application's) fatal status with an unlisted
            // code fails the job at once.
            (file(404, HResult::FAIL), Reaction::Fatal),
            (file(405, HResult::FAIL), Reaction::Fatal),
            (file(410, HResult::FAIL), Reaction::Fatal),
            (file(409, HResult::FAIL), Reaction::Transient),
            (file(202, HResult::FAIL), Reaction::Transient),
        ] {
            assert_eq!(reaction(&ack), want, "{ack:?}");
        }
    }

    #[test]
    fn reactions() {
        let app = |s| {
            Ack::error(
                s,
                HResult::from_http_status(s),
                ErrorContext::REMOTE_APPLICATION,
            )
        };
        assert_eq!(reaction(&Ack::session_not_found()), Reaction::Restart);
        assert_eq!(reaction(&Ack::invalid_arg()), Reaction::Fatal);
        assert_eq!(
            reaction(&Ack::error(
                400,
                HResult::TOO_LARGE,
                ErrorContext::REMOTE_FILE
            )),
            Reaction::Fatal
        );
        assert_eq!(
            reaction(&Ack::error(
                501,
                HResult::ACCESS_DENIED,
                ErrorContext::REMOTE_FILE
            )),
            Reaction::Fatal
        );
        assert_eq!(
            reaction(&Ack::error(
                413,
                HResult::from_http_status(413),
                ErrorContext::REMOTE_FILE
            )),
            Reaction::Shrink
        );
        assert_eq!(reaction(&app(403)), Reaction::Fatal);
        assert_eq!(reaction(&app(503)), Reaction::Transient);
        assert_eq!(reaction(&app(409)), Reaction::Transient);
        assert_eq!(
            reaction(&Ack::error(500, HResult::FAIL, ErrorContext::REMOTE_FILE)),
            Reaction::Transient
        );
        assert_eq!(
            reaction(&Ack::error(
                504,
                HResult::WINHTTP_TIMEOUT,
                ErrorContext::REMOTE_APPLICATION
            )),
            Reaction::Transient
        );
    }
}
