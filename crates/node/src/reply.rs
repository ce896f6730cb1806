//! Serving stored replies of upload-reply jobs to the client's download (HEAD and GET, with a
//! single byte range).

use http::{Response, StatusCode, header as h, request::Parts};
use transport::Body;

use crate::Node;

const PREFIX: &str = "/BITS-Sessions/";
const SUFFIX: &str = "/response";

/// The URL of a session's stored reply, under the address the client used.
pub(crate) fn url(authority: &str, session: &str) -> String {
    format!(
        "http://{authority}{PREFIX}{}{SUFFIX}",
        session.trim_matches(['{', '}'])
    )
}

/// Answers a GET or HEAD.
pub(crate) fn serve(node: &Node, parts: &Parts) -> Response<Body> {
    let id = parts
        .uri
        .path()
        .strip_prefix(PREFIX)
        .and_then(|r| r.strip_suffix(SUFFIX))
        .filter(|g| !g.is_empty() && g.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'))
        .map(|g| format!("{{{g}}}"));
    let reply = id.and_then(|id| node.store.reply(&id).ok().flatten());
    let Some(reply) = reply else {
        return status(StatusCode::NOT_FOUND);
    };
    let total = reply.len() as u64;
    let (code, start, end) = match parts.headers.get(h::RANGE).and_then(|v| v.to_str().ok()) {
        None => (StatusCode::OK, 0, total),
        Some(r) => match parse_range(r, total) {
            Some((s, e)) => (StatusCode::PARTIAL_CONTENT, s, e),
            None => {
                let mut resp = status(StatusCode::RANGE_NOT_SATISFIABLE);
                resp.headers_mut()
                    .insert(h::CONTENT_RANGE, value(&format!("bytes */{total}")));
                return resp;
            }
        },
    };
    let body = if parts.method == http::Method::HEAD {
        Body::empty()
    } else {
        Body::from(reply.slice(start as usize..end as usize))
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = code;
    let hs = resp.headers_mut();
    hs.insert(h::CONTENT_LENGTH, http::HeaderValue::from(end - start));
    hs.insert(h::ACCEPT_RANGES, http::HeaderValue::from_static("bytes"));
    hs.insert(
        h::CONTENT_TYPE,
        http::HeaderValue::from_static("application/octet-stream"),
    );
    if code == StatusCode::PARTIAL_CONTENT {
        hs.insert(
            h::CONTENT_RANGE,
            value(&format!("bytes {start}-{}/{total}", end - 1)),
        );
    }
    resp
}

/// `bytes=a-b`, `bytes=a-` or `bytes=-n` within `total`: the half-open range to send.
fn parse_range(v: &str, total: u64) -> Option<(u64, u64)> {
    let spec = v.trim().strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        (total.saturating_sub(n), total)
    } else {
        let start: u64 = a.parse().ok()?;
        let end = if b.is_empty() {
            total
        } else {
            b.parse::<u64>().ok()?.saturating_add(1).min(total)
        };
        (start, end)
    };
    (start < end).then_some((start, end))
}

fn status(code: StatusCode) -> Response<Body> {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = code;
    resp.headers_mut()
        .insert(h::CONTENT_LENGTH, http::HeaderValue::from_static("0"));
    resp
}

fn value(s: &str) -> http::HeaderValue {
    http::HeaderValue::from_str(s).expect("ASCII digits and punctuation")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 10)));
        assert_eq!(parse_range("bytes=90-", 100), Some((90, 100)));
        assert_eq!(parse_range("bytes=-10", 100), Some((90, 100)));
        assert_eq!(parse_range("bytes=50-500", 100), Some((50, 100)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
        assert_eq!(
            url("farm:80", "{AB-12}"),
            "http://farm:80/BITS-Sessions/AB-12/response"
        );
    }
}
