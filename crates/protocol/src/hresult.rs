//! HRESULT codes and error contexts carried by error Acks.

use std::fmt;

/// An HRESULT as carried in `BITS-Error-Code`, rendered `0x8020001F`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HResult(pub u32);

impl HResult {
    /// `S_OK`; also the code of a 416 "out of sync" Ack.
    pub const OK: HResult = HResult(0);
    /// `BG_E_SESSION_NOT_FOUND`: the server does not know the session; restart with
    /// Create-Session.
    pub const SESSION_NOT_FOUND: HResult = HResult(0x8020_001F);
    /// `E_ACCESSDENIED`: destination exists and may not be overwritten, user not authorised, or
    /// uploads disabled on the virtual directory.
    pub const ACCESS_DENIED: HResult = HResult(0x8007_0005);
    /// `E_INVALIDARG`: malformed or missing headers, bad `Content-Range`, no common protocol.
    pub const INVALID_ARG: HResult = HResult(0x8007_0057);
    /// `BG_E_TOO_LARGE`: the upload exceeds `BITSMaximumUploadSize`.
    pub const TOO_LARGE: HResult = HResult(0x8020_0020);
    /// `BG_E_CLIENT_SERVER_PROTOCOL_MISMATCH`.
    pub const PROTOCOL_MISMATCH: HResult = HResult(0x8020_0022);
    /// `BG_E_TOO_MANY_FILES`: upload jobs carry one file.
    pub const TOO_MANY_FILES: HResult = HResult(0x8020_001C);
    /// `HRESULT_FROM_WIN32(ERROR_WINHTTP_TIMEOUT)`: the server application did not answer in
    /// time.
    pub const WINHTTP_TIMEOUT: HResult = HResult(0x8007_2EE2);
    /// `HRESULT_FROM_WIN32(ERROR_WINHTTP_CONNECTION_ERROR)`: the connection to the server
    /// application broke.
    pub const WINHTTP_CONNECTION_ERROR: HResult = HResult(0x8007_2EFE);
    /// `HRESULT_FROM_WIN32(ERROR_WINHTTP_CANNOT_CONNECT)`: the server application is
    /// unreachable.
    pub const WINHTTP_CANNOT_CONNECT: HResult = HResult(0x8007_2EFD);
    /// `E_FAIL`: an internal server error (for instance the node's storage failed).
    pub const FAIL: HResult = HResult(0x8000_4005);

    /// The code BITS reports for a plain HTTP error status: `0x80190000 + status`
    /// (404 → `0x80190194`, `BG_E_HTTP_ERROR_404`).
    pub fn from_http_status(status: u16) -> HResult {
        HResult(0x8019_0000 + u32::from(status))
    }

    /// Reads a header value: `0x`-prefixed hex, or decimal (negative values are taken as the
    /// two's-complement 32-bit code, as some servers print HRESULTs signed).
    pub fn parse(s: &str) -> Option<HResult> {
        parse_u32(s).map(HResult)
    }
}

impl fmt::Display for HResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:08X}", self.0)
    }
}

/// `BITS-Error-Context`: which party produced the error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ErrorContext(pub u32);

impl ErrorContext {
    /// `BG_ERROR_CONTEXT_REMOTE_FILE` (0x5): the error is in the BITS server.
    pub const REMOTE_FILE: ErrorContext = ErrorContext(0x5);
    /// `BG_ERROR_CONTEXT_REMOTE_APPLICATION` (0x7): the server application returned the error.
    pub const REMOTE_APPLICATION: ErrorContext = ErrorContext(0x7);

    /// Reads a header value, in the same forms as [`HResult::parse`].
    pub fn parse(s: &str) -> Option<ErrorContext> {
        parse_u32(s).map(ErrorContext)
    }
}

impl fmt::Display for ErrorContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:X}", self.0)
    }
}

fn parse_u32(s: &str) -> Option<u32> {
    let s = s.trim();
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        if hex.is_empty() || hex.len() > 8 {
            return None;
        }
        return u32::from_str_radix(hex, 16).ok();
    }
    if let Some(neg) = s.strip_prefix('-') {
        let v: i64 = neg.parse().ok()?;
        let v = i32::try_from(-v).ok()?;
        return Some(v as u32);
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_upper_hex_and_parses_all_forms() {
        assert_eq!(HResult::SESSION_NOT_FOUND.to_string(), "0x8020001F");
        assert_eq!(
            HResult::parse("0x8020001f"),
            Some(HResult::SESSION_NOT_FOUND)
        );
        assert_eq!(HResult::parse(" 0X80070057 "), Some(HResult::INVALID_ARG));
        assert_eq!(HResult::parse("-2147024809"), Some(HResult::INVALID_ARG));
        assert_eq!(HResult::parse("0"), Some(HResult::OK));
        assert_eq!(HResult::parse("0x"), None);
        assert_eq!(HResult::parse("0x123456789"), None);
        assert_eq!(HResult::parse("nope"), None);
        assert_eq!(HResult::parse("-99999999999"), None);
        assert_eq!(ErrorContext::REMOTE_APPLICATION.to_string(), "0x7");
        assert_eq!(ErrorContext::parse("0x5"), Some(ErrorContext::REMOTE_FILE));
        assert_eq!(HResult::from_http_status(404), HResult(0x8019_0194));
    }
}
