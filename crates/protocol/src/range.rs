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
        assert_eq!(ByteRange::new(3, 3, 9), None);
        assert_eq!(ByteRange::new(3, 10, 9), None);
    }
}
