//! The parse error shared by packets, Acks and header values.

use http::HeaderName;

/// Why a request, Ack or header value could not be read.
///
/// A BITS server answers every one of these with a 400 Ack carrying `0x80070057`
/// (`E_INVALIDARG`) and context `0x5`; a client treats an unreadable Ack as a protocol error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The request method is neither `BITS_POST` nor `POST` with the method-override header.
    #[error("method {0} is not BITS_POST")]
    NotBitsPost(String),
    /// A header this packet requires is absent.
    #[error("missing header {0}")]
    MissingHeader(HeaderName),
    /// A header is present but not readable (not visible ASCII, too long, bad syntax).
    #[error("header {name}: {reason}")]
    InvalidHeader {
        /// The offending header.
        name: HeaderName,
        /// What is wrong with its value.
        reason: &'static str,
    },
    /// `BITS-Packet-Type` names no packet a client may send.
    #[error("unknown BITS-Packet-Type {0:?}")]
    UnknownPacketType(String),
    /// `Content-Length` disagrees with the length of `Content-Range`.
    #[error("Content-Length {content_length} does not match Content-Range length {range_len}")]
    LengthMismatch {
        /// The declared body length.
        content_length: u64,
        /// The length the range describes.
        range_len: u64,
    },
    /// A `Content-Encoding` other than identity: BITS servers only support identity.
    #[error("unsupported Content-Encoding {0:?}")]
    UnsupportedEncoding(String),
    /// The response is not a BITS Ack (`BITS-Packet-Type` is missing or not `Ack`).
    #[error("response is not a BITS Ack")]
    NotAnAck,
}
