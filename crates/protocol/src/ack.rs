//! The Ack: every response a BITS server sends.

use http::{HeaderMap, HeaderValue, Response, StatusCode, header as h};

use crate::packet::{text, value};
use crate::{ErrorContext, HResult, ParseError, header};

/// `BITS-Error-Code` and `BITS-Error-Context` of an error Ack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckError {
    /// The HRESULT.
    pub code: HResult,
    /// Which party produced it.
    pub context: ErrorContext,
}

/// A BITS Ack: `BITS-Packet-Type: Ack`, `Content-Length: 0`, and the headers its packet calls
/// for. Fields that are `None` are not written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// The HTTP status.
    pub status: u16,
    /// `BITS-Session-Id`.
    pub session_id: Option<String>,
    /// `BITS-Protocol`: the chosen GUID. When set, the Ack also carries
    /// `Accept-Encoding: Identity` (a successful Create-Session Ack).
    pub protocol: Option<String>,
    /// `BITS-Host-Id`.
    pub host_id: Option<String>,
    /// `BITS-Host-Id-Fallback-Timeout`, seconds.
    pub host_id_fallback_timeout_s: Option<u64>,
    /// `BITS-Received-Content-Range`: one past the last byte the server holds.
    pub received: Option<u64>,
    /// `BITS-Reply-URL`.
    pub reply_url: Option<String>,
    /// `BITS-Error-Code` / `BITS-Error-Context`.
    pub error: Option<AckError>,
}

impl Ack {
    /// A bare Ack with this status.
    pub fn new(status: u16) -> Ack {
        Ack {
            status,
            session_id: None,
            protocol: None,
            host_id: None,
            host_id_fallback_timeout_s: None,
            received: None,
            reply_url: None,
            error: None,
        }
    }

    /// `200 OK`.
    pub fn ok() -> Ack {
        Ack::new(200)
    }

    /// An error Ack: status, code and context.
    pub fn error(status: u16, code: HResult, context: ErrorContext) -> Ack {
        Ack {
            error: Some(AckError { code, context }),
            ..Ack::new(status)
        }
    }

    /// The 400 `E_INVALIDARG` Ack a server sends for any malformed request.
    pub fn invalid_arg() -> Ack {
        Ack::error(400, HResult::INVALID_ARG, ErrorContext::REMOTE_FILE)
    }

    /// The 500 `BG_E_SESSION_NOT_FOUND` Ack.
    pub fn session_not_found() -> Ack {
        Ack::error(500, HResult::SESSION_NOT_FOUND, ErrorContext::REMOTE_FILE)
    }

    /// Sets `BITS-Session-Id`.
    pub fn with_session(mut self, id: impl Into<String>) -> Ack {
        self.session_id = Some(id.into());
        self
    }

    /// Sets `BITS-Received-Content-Range`.
    pub fn with_received(mut self, received: u64) -> Ack {
        self.received = Some(received);
        self
    }

    /// Whether the status is 200 or 201.
    pub fn is_success(&self) -> bool {
        matches!(self.status, 200 | 201)
    }

    /// The error code, if the Ack carries one.
    pub fn code(&self) -> Option<HResult> {
        self.error.map(|e| e.code)
    }

    /// Writes the Ack as a response head with `Content-Length: 0`.
    pub fn to_response(&self) -> Response<()> {
        let mut resp = Response::new(());
        *resp.status_mut() =
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let hs = resp.headers_mut();
        hs.insert(header::PACKET_TYPE, HeaderValue::from_static("Ack"));
        hs.insert(h::CONTENT_LENGTH, HeaderValue::from_static("0"));
        if let Some(id) = &self.session_id {
            hs.insert(header::SESSION_ID, value(id));
        }
        if let Some(p) = &self.protocol {
            hs.insert(header::PROTOCOL, value(p));
            hs.insert(h::ACCEPT_ENCODING, HeaderValue::from_static("Identity"));
        }
        if let Some(host) = &self.host_id {
            hs.insert(header::HOST_ID, value(host));
        }
        if let Some(t) = self.host_id_fallback_timeout_s {
            hs.insert(header::HOST_ID_FALLBACK_TIMEOUT, HeaderValue::from(t));
        }
        if let Some(n) = self.received {
            hs.insert(header::RECEIVED_CONTENT_RANGE, HeaderValue::from(n));
        }
        if let Some(url) = &self.reply_url {
            hs.insert(header::REPLY_URL, value(url));
        }
        if let Some(e) = &self.error {
            hs.insert(header::ERROR_CODE, value(&e.code.to_string()));
            hs.insert(header::ERROR_CONTEXT, value(&e.context.to_string()));
        }
        resp
    }

    /// Reads an Ack from a response head. Accepts `BITS-Error` where `BITS-Error-Code` is
    /// absent; an error code without a context is taken as context `0x5`.
    pub fn parse(status: StatusCode, headers: &HeaderMap) -> Result<Ack, ParseError> {
        match text(headers, &header::PACKET_TYPE)? {
            Some(t) if t.trim().eq_ignore_ascii_case("ack") => {}
            _ => return Err(ParseError::NotAnAck),
        }
        let owned = |name| text(headers, name).map(|v| v.map(|s| s.trim().to_owned()));
        let number = |name: &http::HeaderName| -> Result<Option<u64>, ParseError> {
            text(headers, name)?
                .map(|s| {
                    crate::range::parse_offset(s).map_err(|_| ParseError::InvalidHeader {
                        name: name.clone(),
                        reason: "not a decimal number",
                    })
                })
                .transpose()
        };
        let code = match text(headers, &header::ERROR_CODE)? {
            Some(v) => Some(v),
            None => text(headers, &header::ERROR_CODE_MC_BUP)?,
        };
        let error = match code {
            None => None,
            Some(code) => {
                let code = HResult::parse(code).ok_or(ParseError::InvalidHeader {
                    name: header::ERROR_CODE,
                    reason: "not an HRESULT",
                })?;
                let context = match text(headers, &header::ERROR_CONTEXT)? {
                    None => ErrorContext::REMOTE_FILE,
                    Some(c) => ErrorContext::parse(c).ok_or(ParseError::InvalidHeader {
                        name: header::ERROR_CONTEXT,
                        reason: "not a number",
                    })?,
                };
                Some(AckError { code, context })
            }
        };
        Ok(Ack {
            status: status.as_u16(),
            session_id: owned(&header::SESSION_ID)?,
            protocol: owned(&header::PROTOCOL)?,
            host_id: owned(&header::HOST_ID)?,
            host_id_fallback_timeout_s: number(&header::HOST_ID_FALLBACK_TIMEOUT)?,
            received: number(&header::RECEIVED_CONTENT_RANGE)?,
            reply_url: owned(&header::REPLY_URL)?,
            error,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ack_has_packet_type_and_content_length() {
        let r = Ack::session_not_found().with_session("{s}").to_response();
        assert_eq!(r.status(), 500);
        assert_eq!(r.headers()["bits-packet-type"], "Ack");
        assert_eq!(r.headers()["content-length"], "0");
        assert_eq!(r.headers()["bits-error-code"], "0x8020001F");
        assert_eq!(r.headers()["bits-error-context"], "0x5");
    }

    #[test]
    fn reads_the_mc_bup_error_header_name() {
        let mut hs = HeaderMap::new();
        hs.insert(header::PACKET_TYPE, HeaderValue::from_static("ACK"));
        hs.insert(
            header::ERROR_CODE_MC_BUP,
            HeaderValue::from_static("0x80070057"),
        );
        let ack = Ack::parse(StatusCode::BAD_REQUEST, &hs).unwrap();
        assert_eq!(ack.code(), Some(HResult::INVALID_ARG));
        assert_eq!(ack.error.unwrap().context, ErrorContext::REMOTE_FILE);
    }

    #[test]
    fn a_non_ack_response_is_rejected() {
        assert_eq!(
            Ack::parse(StatusCode::BAD_GATEWAY, &HeaderMap::new()),
            Err(ParseError::NotAnAck)
        );
    }
}
