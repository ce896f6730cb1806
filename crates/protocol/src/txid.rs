//! The transaction-id envelope: how a bitsfarm client puts a transaction id in the uploaded data
//! and how bitsfarm's backend reads it back (the mitigation Microsoft documents for duplicate
//! deliveries).
//!
//! # Format (version 1)
//!
//! An enveloped upload is one ASCII header line followed by the payload:
//!
//! ```text
//! bitsfarm-txid:1 <txid> <payload-len> <payload-xxh3-64 as 16 lower-case hex digits>\n<payload>
//! ```
//!
//! * `<txid>` is 1 to 64 characters from `[A-Za-z0-9_-]`, chosen once per job so every
//!   re-upload of the job carries the same id;
//! * `<payload-len>` is the payload length in decimal bytes;
//! * the hash lets the receiver verify the payload without knowing the client's file.
//!
//! Data that does not start with `bitsfarm-txid:1 ` carries no transaction id; an application
//! that deduplicates treats it as always new. The header is at most 128 bytes.

use std::hash::Hasher as _;

use twox_hash::XxHash3_64;

/// The magic that opens an enveloped upload.
pub const MAGIC: &[u8] = b"bitsfarm-txid:1 ";

/// Longest header line, newline included.
pub const MAX_HEADER_LEN: usize = 128;

/// The 64-bit content hash bitsfarm uses everywhere (XXH3-64, seed 0). twox-hash picks SSE2,
/// AVX2 or NEON at run time; the value is the same on every machine.
pub fn hash(data: &[u8]) -> u64 {
    XxHash3_64::oneshot(data)
}

/// xxh3-64 over data held in several pieces; equal to [`hash`] of their concatenation.
pub fn hash_chunks<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> u64 {
    let mut h = XxHash3_64::new();
    for c in chunks {
        h.write(c);
    }
    h.finish()
}

/// Whether `txid` is a valid transaction id (1–64 of `[A-Za-z0-9_-]`).
pub fn is_valid_txid(txid: &str) -> bool {
    (1..=64).contains(&txid.len())
        && txid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The header line for `payload` under `txid`. Panics if `txid` is invalid: callers generate it.
pub fn header(txid: &str, payload: &[u8]) -> Vec<u8> {
    assert!(is_valid_txid(txid), "invalid transaction id {txid:?}");
    format!(
        "bitsfarm-txid:1 {txid} {} {:016x}\n",
        payload.len(),
        hash(payload)
    )
    .into_bytes()
}

/// A parsed envelope header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The transaction id.
    pub txid: String,
    /// Declared payload length.
    pub payload_len: u64,
    /// Declared payload hash.
    pub payload_hash: u64,
    /// Length of the header line, newline included: the payload starts here.
    pub header_len: usize,
}

/// What a receiver learns from the first bytes of an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// No envelope: the data carries no transaction id.
    Plain,
    /// An envelope header.
    Envelope(Envelope),
    /// Starts with the magic but the header is malformed.
    Malformed,
}

/// Reads the envelope header from the start of the data (`head` needs to hold only the first
/// [`MAX_HEADER_LEN`] bytes).
pub fn parse(head: &[u8]) -> Parsed {
    if !head.starts_with(MAGIC) {
        return Parsed::Plain;
    }
    let window = &head[..head.len().min(MAX_HEADER_LEN)];
    let Some(nl) = window.iter().position(|&b| b == b'\n') else {
        return Parsed::Malformed;
    };
    let Ok(line) = std::str::from_utf8(&window[MAGIC.len()..nl]) else {
        return Parsed::Malformed;
    };
    let mut parts = line.split(' ');
    let (Some(txid), Some(len), Some(hash), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Parsed::Malformed;
    };
    let (Ok(payload_len), Ok(payload_hash)) = (len.parse(), u64::from_str_radix(hash, 16)) else {
        return Parsed::Malformed;
    };
    if !is_valid_txid(txid) || hash.len() != 16 {
        return Parsed::Malformed;
    }
    Parsed::Envelope(Envelope {
        txid: txid.to_owned(),
        payload_len,
        payload_hash,
        header_len: nl + 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_verifies() {
        let payload = b"hello farm";
        let mut data = header("job-7", payload);
        let hl = data.len();
        data.extend_from_slice(payload);
        let Parsed::Envelope(e) = parse(&data) else {
            panic!("not parsed")
        };
        assert_eq!(e.txid, "job-7");
        assert_eq!(e.header_len, hl);
        assert_eq!(e.payload_len, payload.len() as u64);
        assert_eq!(e.payload_hash, hash(&data[hl..]));
        assert_eq!(hash_chunks([&data[..3], &data[3..]]), hash(&data));
    }

    #[test]
    fn plain_and_malformed_data() {
        assert_eq!(parse(b"just bytes"), Parsed::Plain);
        assert_eq!(parse(b"bitsfarm-txid:1 x 1"), Parsed::Malformed);
        assert_eq!(
            parse(b"bitsfarm-txid:1 bad/id 1 0000000000000000\n"),
            Parsed::Malformed
        );
        assert_eq!(parse(b"bitsfarm-txid:1 a 1 00\n"), Parsed::Malformed);
        assert!(!is_valid_txid(""));
        assert!(!is_valid_txid(&"a".repeat(65)));
    }
}
