//! How the client reacts to an answer: the MC-BUP client rules and Windows' transient/fatal
//! classification of HTTP statuses.

use protocol::{Ack, ErrorContext, HResult};

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
    let from_app = ack
        .error
        .is_some_and(|e| e.context == ErrorContext::REMOTE_APPLICATION);
    if from_app || ack.status >= 300 {
        return if status_is_transient(ack.status) {
            Reaction::Transient
        } else {
            Reaction::Fatal
        };
    }
    // A 1xx/2xx Ack that is not a success: the server is confused; try again later.
    Reaction::Transient
}

#[cfg(test)]
mod tests {
    use super::*;

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
