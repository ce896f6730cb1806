//! Reading a server's answer from raw bytes, and what every answer must satisfy.

use crate::request::Request;

/// One HTTP/1.1 response as read off the wire.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// Header names (lower case) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Answer {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses one response from the start of `buf`: `Ok(None)` if more bytes are needed, else the
/// answer and how many bytes it took. Responses must declare `Content-Length` (the node never
/// chunks), so a missing one is an error.
pub fn parse(buf: &[u8]) -> Result<Option<(Answer, usize)>, String> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > 1 << 20 {
            return Err("a response head over 1 MiB".into());
        }
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| "a response head that is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| format!("not an HTTP/1.1 status line: {status_line:?}"))?;
    let mut headers = Vec::new();
    for line in lines {
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| format!("a header line without a colon: {line:?}"))?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .ok_or_else(|| format!("a {status} response without Content-Length"))?
        .1
        .parse()
        .map_err(|_| "an unparsable Content-Length")?;
    let total = end + 4 + len;
    if buf.len() < total {
        return Ok(None);
    }
    Ok(Some((
        Answer {
            status,
            headers,
            body: buf[end + 4..total].to_vec(),
        },
        total,
    )))
}

/// Checks the answer (or the lack of one) to `req`.
pub fn check(req: &Request, answer: Option<&Answer>) -> Result<(), String> {
    let Some(a) = answer else {
        return if req.expects_ack {
            Err("a complete BITS request got no answer".into())
        } else {
            Ok(())
        };
    };
    if !(100..600).contains(&a.status) {
        return Err(format!("status {}", a.status));
    }
    if req.expects_ack {
        if a.header("bits-packet-type") != Some("Ack") {
            return Err(format!(
                "a BITS request answered {} without an Ack: {:?}",
                a.status, a.headers
            ));
        }
        // A 2xx Fragment Ack carries BITS-Received-Content-Range; any error Ack its code.
        if a.status >= 400 && a.header("bits-error-code").is_none() && a.status != 416 {
            return Err(format!("an error Ack {} without BITS-Error-Code", a.status));
        }
    }
    Ok(())
}
