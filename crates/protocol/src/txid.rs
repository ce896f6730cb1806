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

/// The [`Digest`] of data held in pieces (the same as of their concatenation).
pub fn digest<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> Digested {
    let mut d = Digest::new();
    for p in pieces {
        d.feed(p);
    }
    d.finish()
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

/// XXH3-64 over bytes fed piece by piece (equal to [`hash`] of their concatenation).
#[derive(Default, Clone)]
pub struct StreamHash(XxHash3_64);

impl StreamHash {
    /// A hasher with nothing fed.
    pub fn new() -> StreamHash {
        StreamHash::default()
    }

    /// Feeds bytes.
    pub fn write(&mut self, data: &[u8]) {
        self.0.write(data);
    }

    /// The hash of everything fed.
    pub fn finish(&self) -> u64 {
        self.0.finish()
    }
}

/// The envelope header for a payload known by its length and hash (see [`header`]), for a
/// payload too large to hold in memory.
pub fn header_for(txid: &str, payload_len: u64, payload_hash: u64) -> Vec<u8> {
    assert!(is_valid_txid(txid), "invalid transaction id {txid:?}");
    format!("bitsfarm-txid:1 {txid} {payload_len} {payload_hash:016x}\n").into_bytes()
}

/// What [`Digest`] found in an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digested {
    /// Bytes seen.
    pub len: u64,
    /// XXH3-64 of all of them.
    pub hash: u64,
    /// The envelope, if the data starts with one.
    pub parsed: Parsed,
    /// With an envelope: whether the payload's length and hash match it.
    pub payload_matches: bool,
}

/// Reads an upload as it streams past (by value, or from a file): its length, its hash, and its
/// transaction-id envelope checked against the payload, holding at most [`MAX_HEADER_LEN`]
/// bytes. Cloning it is cheap (a few hundred bytes): a store can keep one per file as the file
/// is written and hand out its result without reading the file again.
#[derive(Default, Clone)]
pub struct Digest {
    len: u64,
    whole: StreamHash,
    head: Vec<u8>,
    parsed: Option<Parsed>,
    payload: StreamHash,
    payload_len: u64,
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Digest")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl Digest {
    /// A digest of nothing yet.
    pub fn new() -> Digest {
        Digest::default()
    }

    /// Bytes fed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was fed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Feeds the next bytes of the upload.
    pub fn feed(&mut self, data: &[u8]) {
        self.len += data.len() as u64;
        self.whole.write(data);
        let mut rest = data;
        if self.parsed.is_none() {
            let take = rest.len().min(MAX_HEADER_LEN - self.head.len());
            self.head.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            self.decide(false);
        }
        if let Some(Parsed::Envelope(_)) = self.parsed {
            self.payload.write(rest);
            self.payload_len += rest.len() as u64;
        }
    }

    /// Decides what the head is as soon as it can (`done`: no more bytes will come).
    fn decide(&mut self, done: bool) {
        let h = &self.head;
        let undecided = !done
            && h.len() < MAX_HEADER_LEN
            && MAGIC.starts_with(&h[..h.len().min(MAGIC.len())])
            && !h.contains(&b'\n');
        if undecided {
            return;
        }
        let parsed = parse(h);
        if let Parsed::Envelope(e) = &parsed {
            let after = &self.head[e.header_len..];
            self.payload.write(after);
            self.payload_len += after.len() as u64;
        }
        self.parsed = Some(parsed);
    }

    /// What the whole upload was.
    pub fn finish(mut self) -> Digested {
        if self.parsed.is_none() {
            self.decide(true);
        }
        let parsed = self.parsed.take().unwrap_or(Parsed::Plain);
        let payload_matches = match &parsed {
            Parsed::Envelope(e) => {
                e.payload_len == self.payload_len && e.payload_hash == self.payload.finish()
            }
            _ => false,
        };
        Digested {
            len: self.len,
            hash: self.whole.finish(),
            parsed,
            payload_matches,
        }
    }
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
        let whole = digest([&data[..]]);
        assert_eq!(digest([&data[..3], &data[3..]]), whole);
        assert_eq!((whole.hash, whole.len), (hash(&data), data.len() as u64));
    }

    #[test]
    fn a_digest_of_any_split_equals_the_whole() {
        let payload: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let mut data = header("t-9", &payload);
        data.extend_from_slice(&payload);
        for cut in [1, 3, 16, 17, 40, 127, 128, 129, 500] {
            let mut d = Digest::new();
            for piece in data.chunks(cut) {
                d.feed(piece);
            }
            let got = d.finish();
            assert_eq!(got.len, data.len() as u64, "{cut}");
            assert_eq!(got.hash, hash(&data), "{cut}");
            assert!(
                matches!(&got.parsed, Parsed::Envelope(e) if e.txid == "t-9"),
                "{cut}"
            );
            assert!(got.payload_matches, "{cut}");
        }
        let mut bad = data.clone();
        *bad.last_mut().unwrap() ^= 1;
        let mut d = Digest::new();
        d.feed(&bad);
        assert!(!d.finish().payload_matches);
        for (text, want) in [
            (&b"plain bytes"[..], Parsed::Plain),
            (b"bitsf", Parsed::Plain),
            (b"bitsfarm-txid:1 x 1", Parsed::Malformed),
            (b"", Parsed::Plain),
        ] {
            let mut d = Digest::new();
            d.feed(text);
            assert_eq!(d.finish().parsed, want, "{text:?}");
        }
        assert_eq!(
            header_for("t-9", payload.len() as u64, hash(&payload)),
            header("t-9", &payload)
        );
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
