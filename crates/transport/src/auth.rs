//! HTTP Basic authentication (RFC 7617): the credentials a client sends on every request, and
//! the check a server makes. Passwords never appear in `Debug` output or logs.

/// A user name and password. `Debug` shows the name only.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name (no `:` in it).
    pub user: String,
    password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({:?}, password hidden)", self.user)
    }
}

impl Credentials {
    /// A user and password; `None` if the name holds a `:` (Basic cannot carry it) or is empty.
    pub fn new(user: &str, password: &str) -> Option<Credentials> {
        (!user.is_empty() && !user.contains(':')).then(|| Credentials {
            user: user.to_owned(),
            password: password.to_owned(),
        })
    }

    /// The `Authorization` header's value: `Basic <base64 of user:password>`, marked
    /// sensitive (hyper's and bitsfarm's logs leave it out).
    pub fn header(&self) -> http::HeaderValue {
        let mut v = http::HeaderValue::from_str(&format!(
            "Basic {}",
            base64(format!("{}:{}", self.user, self.password).as_bytes())
        ))
        .unwrap_or_else(|_| http::HeaderValue::from_static("Basic"));
        v.set_sensitive(true);
        v
    }

    /// Whether a request's `Authorization` header carries these credentials.
    pub fn admits(&self, header: Option<&http::HeaderValue>) -> bool {
        let expected = self.header();
        header.is_some_and(|h| constant_time_eq(h.as_bytes(), expected.as_bytes()))
    }
}

/// Compares without stopping at the first difference, so timing does not tell how much of a
/// guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Standard base64 with padding.
fn base64(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_examples() {
        // RFC 4648 §10.
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), coded, "{plain}");
        }
    }

    #[test]
    fn the_header_is_rfc_7617s_and_hides_the_password() {
        // RFC 7617 §2's example.
        let c = Credentials::new("Aladdin", "open sesame").unwrap();
        assert_eq!(c.header(), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert!(c.header().is_sensitive());
        assert!(!format!("{c:?}").contains("sesame"));
        assert!(c.admits(Some(&c.header())));
        let wrong = Credentials::new("Aladdin", "open sesamE").unwrap();
        assert!(!c.admits(Some(&wrong.header())));
        assert!(!c.admits(None));
        assert_eq!(Credentials::new("a:b", "x"), None);
        assert_eq!(Credentials::new("", "x"), None);
    }
}
