//! Splitting `http://` URLs into what a connection and a request line need.

use http::Uri;

/// An `http://` URL split for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `host[:port]`, what [`crate::Connect::connect`] dials and the `Host` header carries.
    pub authority: String,
    /// `/path?query`, the request line's origin form.
    pub path_and_query: String,
}

/// Why a URL cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlError {
    /// Not a URL at all.
    Syntax,
    /// Not `http://` where only that is accepted (notifications to the server application).
    NotHttp,
    /// No host.
    NoHost,
    /// Neither `http://` nor `https://`.
    NotWeb,
}

impl std::fmt::Display for UrlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UrlError::Syntax => "not a valid URL",
            UrlError::NotHttp => "only http:// URLs are supported here",
            UrlError::NoHost => "the URL has no host",
            UrlError::NotWeb => "only http:// and https:// URLs are supported",
        })
    }
}

impl std::error::Error for UrlError {}

/// Splits an absolute `http://host[:port]/path?query` URL.
pub fn parse(url: &str) -> Result<Target, UrlError> {
    split(url, false).map(|(t, _)| t)
}

/// Splits an absolute `http://` or `https://` URL (what a client may upload to); whether it is
/// `https://`. The caller connects over TLS for `https://` (the authority names no port then
/// means 443).
pub fn parse_web(url: &str) -> Result<(Target, bool), UrlError> {
    split(url, true)
}

fn split(url: &str, https_ok: bool) -> Result<(Target, bool), UrlError> {
    let uri: Uri = url.trim().parse().map_err(|_| UrlError::Syntax)?;
    let tls = match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("http") => false,
        Some(s) if https_ok && s.eq_ignore_ascii_case("https") => true,
        Some(_) => {
            return Err(if https_ok {
                UrlError::NotWeb
            } else {
                UrlError::NotHttp
            });
        }
        None => return Err(UrlError::Syntax),
    };
    let authority = uri.authority().ok_or(UrlError::NoHost)?.as_str().to_owned();
    if authority.is_empty() || authority.contains('@') {
        return Err(UrlError::NoHost);
    }
    let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
    let path_and_query = if path_and_query.is_empty() {
        "/".to_owned()
    } else {
        path_and_query.to_owned()
    };
    Ok((
        Target {
            authority,
            path_and_query,
        },
        tls,
    ))
}

/// The decoded path of a URL without its query (`http://h/up/a%20b?x` → `/up/a b`): how every
/// bitsfarm actor names the file an upload is for. Falls back to the raw text when `url` is not
/// an absolute `http://` URL.
pub fn file_path(url: &str) -> String {
    let pq = match parse_web(url) {
        Ok((t, _)) => t.path_and_query,
        Err(_) => url.to_owned(),
    };
    let path = pq.split('?').next().unwrap_or("/");
    percent_encoding::percent_decode_str(path)
        .decode_utf8_lossy()
        .into_owned()
}

/// Replaces the host of `authority` by `host_id`, as a BITS client does with `BITS-Host-Id`:
/// a Host-Id with its own port replaces the whole authority; one without keeps the original
/// port.
pub fn with_host(authority: &str, host_id: &str) -> String {
    if has_port(host_id) {
        return host_id.to_owned();
    }
    match port_of(authority) {
        Some(port) => format!("{host_id}:{port}"),
        None => host_id.to_owned(),
    }
}

fn has_port(authority: &str) -> bool {
    port_of(authority).is_some()
}

fn port_of(authority: &str) -> Option<&str> {
    // `[::1]:80` or `host:80`; a bare IPv6 literal in brackets has no port.
    let tail = match authority.rfind(']') {
        Some(i) => &authority[i + 1..],
        None => authority,
    };
    let (_, port) = tail.rsplit_once(':')?;
    (!port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())).then_some(port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_urls() {
        let t = parse("http://farm:8080/upload/a.bin?ACCOUNT=1").unwrap();
        assert_eq!(t.authority, "farm:8080");
        assert_eq!(t.path_and_query, "/upload/a.bin?ACCOUNT=1");
        assert_eq!(parse("http://farm").unwrap().path_and_query, "/");
        assert_eq!(parse("https://farm/x"), Err(UrlError::NotHttp));
        assert_eq!(parse("/relative"), Err(UrlError::Syntax));
        assert_eq!(parse("not a url"), Err(UrlError::Syntax));
        assert_eq!(parse("http://user@farm/x"), Err(UrlError::NoHost));
    }

    #[test]
    fn file_paths_are_decoded_without_query() {
        assert_eq!(file_path("http://farm/up/a%20b.bin?x=1"), "/up/a b.bin");
        assert_eq!(file_path("http://farm"), "/");
    }

    #[test]
    fn host_id_replaces_the_host() {
        assert_eq!(with_host("farm:8080", "node-2"), "node-2:8080");
        assert_eq!(with_host("farm", "node-2"), "node-2");
        assert_eq!(with_host("farm:8080", "127.0.0.1:9001"), "127.0.0.1:9001");
        assert_eq!(with_host("[::1]:80", "[::2]"), "[::2]:80");
    }
}
