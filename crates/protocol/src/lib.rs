//! The BITS upload protocol ([MC-BUP]) as types, with no IO.
//!
//! This crate owns the wire format shared by every bitsfarm actor: the five request packets
//! ([`Packet`]), the [`Ack`] a server answers with, the header names and protocol GUID
//! ([`header`]), the HRESULT codes and error contexts ([`HResult`], [`ErrorContext`]), the
//! `Content-Range` grammar ([`ByteRange`]) and the transaction-id envelope bitsfarm's client and
//! backend agree on ([`txid`]).
//!
//! Parsing is total: any header value, however malformed, gives a typed [`ParseError`], never a
//! panic. Rendering and parsing round-trip: `Packet::parse(&p.to_request(..)) == p`.
//!
//! Where the public sources disagree this crate is lenient on input and strict on output: it
//! reads both `BITS-Error-Code` and `BITS-Error`, packet types and GUIDs in any case, protocol lists
//! separated by spaces or commas; it writes `BITS-Error-Code`, MSDN's packet-type spelling and
//! upper-case hex codes.
//!
//! [MC-BUP]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/mc-bup/

pub mod ack;
pub mod error;
pub mod header;
pub mod hresult;
pub mod packet;
pub mod range;
pub mod txid;

pub use ack::{Ack, AckError};
pub use error::ParseError;
pub use hresult::{ErrorContext, HResult};
pub use packet::{Packet, PacketType};
pub use range::ByteRange;

/// The HTTP method of every BITS request.
pub const BITS_POST: &str = "BITS_POST";

/// Returns the `BITS_POST` method.
pub fn bits_post() -> http::Method {
    // A valid extension token; from_bytes cannot fail on it.
    http::Method::from_bytes(BITS_POST.as_bytes()).expect("BITS_POST is a valid method token")
}
