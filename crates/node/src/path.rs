//! Upload paths: which URL paths a node accepts, so no remote name escapes the upload root.

use percent_encoding::percent_decode_str;

/// Why an upload path is refused (the node answers 400 and writes nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// Not an absolute path with at least one file name.
    Empty,
    /// A segment is `.` or `..` (also when percent-encoded).
    Traversal,
    /// A segment holds `\`, `:`, NUL, a control character or an encoded `/`.
    BadCharacter,
    /// Invalid percent-encoding or not UTF-8.
    BadEncoding,
    /// An empty segment (`//`) or a trailing `/`.
    EmptySegment,
    /// The path names the node's own session store.
    Reserved,
    /// Longer than 2,048 bytes.
    TooLong,
    /// A name (a segment) longer than 255 bytes: no file system could hold it.
    NameTooLong,
}

impl PathError {
    /// The reason in words.
    pub fn reason(self) -> &'static str {
        match self {
            PathError::Empty => "the URL names no file",
            PathError::Traversal => "the URL path contains a . or .. segment",
            PathError::BadCharacter => {
                "the URL path contains \\, :, an encoded / or a control character"
            }
            PathError::BadEncoding => "the URL path is not valid percent-encoded UTF-8",
            PathError::EmptySegment => "the URL path has an empty segment",
            PathError::Reserved => "the URL path names the session store",
            PathError::TooLong => "the URL path is longer than 2,048 bytes",
            PathError::NameTooLong => "a name in the URL path is longer than 255 bytes",
        }
    }
}

/// Longest name of one path segment, bytes (`NAME_MAX` of Linux file systems and NTFS's 255
/// UTF-16 units): an upload the store could never place is refused at Create-Session, not after
/// its last byte.
pub const MAX_NAME_LEN: usize = 255;

/// Checks a request's URL path and returns it decoded (`/upload/a b.bin`): the upload's identity
/// and its place under the upload root.
pub fn upload_path(raw: &str) -> Result<String, PathError> {
    if raw.len() > 2048 {
        return Err(PathError::TooLong);
    }
    let rest = raw.strip_prefix('/').ok_or(PathError::Empty)?;
    if rest.is_empty() {
        return Err(PathError::Empty);
    }
    let mut out = String::with_capacity(raw.len());
    for (i, seg) in rest.split('/').enumerate() {
        if seg.is_empty() {
            return Err(PathError::EmptySegment);
        }
        if !valid_escapes(seg) {
            return Err(PathError::BadEncoding);
        }
        let decoded = percent_decode_str(seg)
            .decode_utf8()
            .map_err(|_| PathError::BadEncoding)?;
        if decoded == "." || decoded == ".." {
            return Err(PathError::Traversal);
        }
        if decoded
            .chars()
            .any(|c| c.is_control() || matches!(c, '/' | '\\' | ':'))
        {
            return Err(PathError::BadCharacter);
        }
        if decoded.len() > MAX_NAME_LEN {
            return Err(PathError::NameTooLong);
        }
        if i == 0 && decoded.eq_ignore_ascii_case(crate::disk::SESSIONS_DIR) {
            return Err(PathError::Reserved);
        }
        out.push('/');
        out.push_str(&decoded);
    }
    Ok(out)
}

/// Whether every `%` starts a two-hex-digit escape (percent_encoding passes bad ones through).
fn valid_escapes(seg: &str) -> bool {
    let b = seg.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if i + 2 >= b.len() || !(b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit()) {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_paths() {
        assert_eq!(upload_path("/upload/a.bin"), Ok("/upload/a.bin".into()));
        assert_eq!(
            upload_path("/upload/a%20b.bin"),
            Ok("/upload/a b.bin".into())
        );
        assert_eq!(upload_path("/x/..a/b..c"), Ok("/x/..a/b..c".into()));
    }

    #[test]
    fn refuses_every_escape() {
        let cases = [
            ("", PathError::Empty),
            ("/", PathError::Empty),
            ("upload/a", PathError::Empty),
            ("/upload/../etc/passwd", PathError::Traversal),
            ("/upload/%2e%2e/etc", PathError::Traversal),
            ("/upload/%2E./etc", PathError::Traversal),
            ("/..", PathError::Traversal),
            ("/upload/.", PathError::Traversal),
            ("/upload/a%2fb", PathError::BadCharacter),
            ("/upload/..%5c..%5cwin.ini", PathError::BadCharacter),
            ("/c:/windows", PathError::BadCharacter),
            ("/upload/a%00", PathError::BadCharacter),
            ("/upload/%ff", PathError::BadEncoding),
            ("/upload/%zz", PathError::BadEncoding),
            ("/upload/%2", PathError::BadEncoding),
            ("/upload/%", PathError::BadEncoding),
            ("//etc/passwd", PathError::EmptySegment),
            ("/upload/", PathError::EmptySegment),
            ("/BITS-Sessions/x/request", PathError::Reserved),
            ("/bits-sessions/x", PathError::Reserved),
        ];
        for (raw, want) in cases {
            assert_eq!(upload_path(raw), Err(want), "{raw}");
        }
        assert_eq!(
            upload_path(&format!("/{}", "a".repeat(2048))),
            Err(PathError::TooLong)
        );
        // Audit D17: names of 256 bytes and more are refused; 255 is the most a file system
        // takes (decoded bytes count: %C3%A9 is 2 bytes of UTF-8).
        assert_eq!(
            upload_path(&format!("/ln/{}", "n".repeat(256))),
            Err(PathError::NameTooLong)
        );
        assert!(upload_path(&format!("/ln/{}", "n".repeat(255))).is_ok());
        assert_eq!(
            upload_path(&format!("/ln/{}", "%C3%A9".repeat(128))),
            Err(PathError::NameTooLong)
        );
    }
}
