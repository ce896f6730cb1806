//! `Content-Range` (RFC 2616 §14.16, as BITS uses it) and `BITS-Received-Content-Range`.

use std::fmt;

/// A fragment's place in the upload: bytes `start..end` (end exclusive) of a `total`-byte file.
///
/// On the wire this is `bytes <start>-<end-1>/<total>` with zero-based inclusive offsets.
/// A zero-byte upload cannot be written that way; bitsfarm writes it `bytes */0` (the RFC's form
/// for a range that covers nothing) and reads it back as `0..0` of `0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ByteRange {
    /// First byte offset.
    pub start: u64,
    /// One past the last byte offset.
    pub end: u64,
    /// Size of the whole upload.
    pub total: u64,
}

/// Why a `Content-Range` value was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeError {
    /// Not of the form `bytes <first>-<last>/<total>`.
    Syntax,
    /// The numbers are out of order: first > last, or last ≥ total.
    Order,
}

impl ByteRange {
    /// A range, checked: `start < end <= total`, or the empty upload `0..0` of `0`.
    pub fn new(start: u64, end: u64, total: u64) -> Option<ByteRange> {
        let ok = (start < end && end <= total) || (start == 0 && end == 0 && total == 0);
        ok.then_some(ByteRange { start, end, total })
    }

    /// Number of bytes in the range.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Whether the range carries no bytes (only the zero-byte upload).
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Whether this range holds the last byte of the upload.
    pub fn is_final(&self) -> bool {
        self.end == self.total
    }

    /// Reads `bytes <first>-<last>/<total>` (unit case-insensitive, spaces tolerated).
    pub fn parse(value: &str) -> Result<ByteRange, RangeError> {
        let value = value.trim();
        let (unit, rest) = value.split_once([' ', '=']).ok_or(RangeError::Syntax)?;
        if !unit.eq_ignore_ascii_case("bytes") {
            return Err(RangeError::Syntax);
        }
        let (span, total) = rest.trim().split_once('/').ok_or(RangeError::Syntax)?;
        let total = parse_offset(total)?;
        if span.trim() == "*" {
            return ByteRange::new(0, 0, total).ok_or(RangeError::Order);
        }
        let (first, last) = span.split_once('-').ok_or(RangeError::Syntax)?;
        let first = parse_offset(first)?;
        let last = parse_offset(last)?;
        if first > last || last >= total {
            return Err(RangeError::Order);
        }
        Ok(ByteRange {
            start: first,
            end: last + 1,
            total,
        })
    }
}

impl ByteRange {
    /// The `Content-Range` header value, as [`fmt::Display`] writes it, built in place: every
    /// Fragment request sends one, and the formatting machinery (and a `String`) cost a third
    /// of building the request.
    pub fn header_value(&self) -> http::HeaderValue {
        let mut out = Text::default();
        if self.is_empty() {
            out.push(b"bytes */");
            out.push_u64(self.total);
        } else {
            out.push(b"bytes ");
            out.push_u64(self.start);
            out.push(b"-");
            out.push_u64(self.end - 1);
            out.push(b"/");
            out.push_u64(self.total);
        }
        http::HeaderValue::from_bytes(out.as_bytes()).expect("digits and ASCII punctuation")
    }
}

/// ASCII text of at most 80 bytes on the stack (a range: 8 + 3 × 20 digits + 2).
struct Text {
    buf: [u8; 80],
    len: usize,
}

impl Default for Text {
    fn default() -> Text {
        Text {
            buf: [0; 80],
            len: 0,
        }
    }
}

impl Text {
    fn push(&mut self, s: &[u8]) {
        self.buf[self.len..self.len + s.len()].copy_from_slice(s);
        self.len += s.len();
    }

    fn push_u64(&mut self, mut n: u64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.push(&digits[i..]);
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl fmt::Display for ByteRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            write!(f, "bytes */{}", self.total)
        } else {
            write!(f, "bytes {}-{}/{}", self.start, self.end - 1, self.total)
        }
    }
}

/// Reads a non-negative decimal offset (as in `BITS-Received-Content-Range`).
pub fn parse_offset(s: &str) -> Result<u64, RangeError> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RangeError::Syntax);
    }
    s.parse().map_err(|_| RangeError::Syntax)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_bits_uses() {
        assert_eq!(
            ByteRange::parse("bytes 0-99/1000"),
            Ok(ByteRange {
                start: 0,
                end: 100,
                total: 1000
            })
        );
        assert_eq!(
            ByteRange::parse("Bytes 128-212/213"),
            Ok(ByteRange {
                start: 128,
                end: 213,
                total: 213
            })
        );
        assert_eq!(
            ByteRange::parse("  BYTES  5 - 5 / 6 "),
            Ok(ByteRange {
                start: 5,
                end: 6,
                total: 6
            })
        );
        assert_eq!(
            ByteRange::parse("bytes */0"),
            Ok(ByteRange {
                start: 0,
                end: 0,
                total: 0
            })
        );
        assert!(ByteRange::parse("bytes 0-99/1000").unwrap().start == 0);
    }

    #[test]
    fn rejects_bad_ranges() {
        for bad in [
            "",
            "bytes",
            "bytes 0-99",
            "items 0-1/2",
            "bytes -1-2/3",
            "bytes 1-/3",
            "bytes a-b/c",
            "bytes 0-99/*",
            "bytes 0-18446744073709551616/1",
            "bytes 0x1-2/3",
        ] {
            assert_eq!(ByteRange::parse(bad), Err(RangeError::Syntax), "{bad}");
        }
        for bad in ["bytes 5-4/10", "bytes 0-10/10", "bytes */5"] {
            assert_eq!(ByteRange::parse(bad), Err(RangeError::Order), "{bad}");
        }
    }

    #[test]
    fn renders_inclusive_offsets() {
        assert_eq!(
            ByteRange::new(0, 100, 1000).unwrap().to_string(),
            "bytes 0-99/1000"
        );
        assert_eq!(ByteRange::new(0, 0, 0).unwrap().to_string(), "bytes */0");
    }

    #[test]
    fn the_header_value_is_the_display_text() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut ranges = vec![
            ByteRange::new(0, 0, 0).unwrap(),
            ByteRange::new(0, 1, 1).unwrap(),
            ByteRange::new(9, 10, 10).unwrap(),
            ByteRange::new(0, u64::MAX, u64::MAX).unwrap(),
            ByteRange::new(u64::MAX - 1, u64::MAX, u64::MAX).unwrap(),
        ];
        for _ in 0..2000 {
            // Totals of every width, from one digit to twenty.
            let total = (next() >> (next() % 64)).max(1);
            let start = next() % total;
            let end = start + 1 + next() % (total - start);
            ranges.push(ByteRange::new(start, end, total).unwrap());
        }
        for r in ranges {
            assert_eq!(r.header_value().to_str().unwrap(), r.to_string(), "{r:?}");
        }
        assert_eq!(ByteRange::new(3, 3, 9), None);
        assert_eq!(ByteRange::new(3, 10, 9), None);
    }
}
