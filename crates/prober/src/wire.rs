//! The probe's side of the wire: BITS requests built by hand (well-formed or deliberately not),
//! each counted against the request budget, and each exchange kept as evidence.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use protocol::header;
use transport::{Body, Connect, auth::Credentials, client::HttpConn};

/// Why the probe stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// The request budget is spent.
    Budget,
    /// The server cannot be reached or broke a connection (with what happened).
    Wire(String),
}

/// One answer, with the evidence line of its exchange.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// `request → answer`, in one line.
    pub evidence: String,
}

impl Answer {
    /// A header's value as text.
    pub fn get(&self, name: &http::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Whether it is a BITS Ack (`BITS-Packet-Type: Ack`).
    pub fn is_ack(&self) -> bool {
        self.get(&header::PACKET_TYPE)
            .is_some_and(|v| v.eq_ignore_ascii_case("ack"))
    }

    /// `BITS-Error-Code` (or MC-BUP's `BITS-Error`), lower case.
    pub fn code(&self) -> Option<String> {
        self.get(&header::ERROR_CODE)
            .or_else(|| self.get(&header::ERROR_CODE_MC_BUP))
            .map(|c| c.trim().to_ascii_lowercase())
    }

    /// `BITS-Received-Content-Range` as a number.
    pub fn received(&self) -> Option<u64> {
        self.get(&header::RECEIVED_CONTENT_RANGE)
            .and_then(|v| v.trim().parse().ok())
    }
}

/// One request to send: packet type and headers as the probe wants them on the wire.
#[derive(Debug, Clone)]
pub struct Bits {
    /// `BITS-Packet-Type` (`None`: left out).
    pub packet: Option<&'static str>,
    /// More headers.
    pub headers: Vec<(http::HeaderName, String)>,
    /// The body.
    pub body: Bytes,
}

impl Bits {
    /// A packet of this type, no other header.
    pub fn packet(packet: &'static str) -> Bits {
        Bits {
            packet: Some(packet),
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// With one more header.
    pub fn with(mut self, name: http::HeaderName, value: impl Into<String>) -> Bits {
        self.headers.push((name, value.into()));
        self
    }

    /// With a body.
    pub fn body(mut self, body: Bytes) -> Bits {
        self.body = body;
        self
    }
}

/// The probe's client: a connector, credentials, a budget.
pub struct Wire {
    connector: Arc<dyn Connect>,
    credentials: Option<Credentials>,
    timeout: Duration,
    max_requests: u64,
    sent: u64,
}

/// A connection to one address.
pub struct Conn {
    authority: String,
    http: Option<HttpConn>,
}

impl Conn {
    /// The address it talks to.
    pub fn authority(&self) -> &str {
        &self.authority
    }
}

impl Wire {
    /// A client that sends at most `max_requests` requests.
    pub fn new(
        connector: Arc<dyn Connect>,
        credentials: Option<Credentials>,
        timeout: Duration,
        max_requests: u64,
    ) -> Wire {
        Wire {
            connector,
            credentials,
            timeout,
            max_requests,
            sent: 0,
        }
    }

    /// Requests sent so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// A connection to `authority`, opened on first use.
    pub fn conn(&self, authority: &str) -> Conn {
        Conn {
            authority: authority.to_owned(),
            http: None,
        }
    }

    /// Sends `bits` to `path` on `conn` (reopened if the server closed it) and reads the
    /// answer.
    pub async fn send(&mut self, conn: &mut Conn, path: &str, bits: &Bits) -> Result<Answer, Stop> {
        if self.sent >= self.max_requests {
            return Err(Stop::Budget);
        }
        let reusable = match &mut conn.http {
            Some(c) => c.is_reusable().await,
            None => false,
        };
        if !reusable {
            let c = HttpConn::open(self.connector.as_ref(), &conn.authority, self.timeout)
                .await
                .map_err(|e| Stop::Wire(format!("{}: {e}", conn.authority)))?;
            conn.http = Some(c);
        }
        let mut req = Request::new(Body::from(bits.body.clone()));
        *req.method_mut() = Method::from_bytes(b"BITS_POST").expect("a valid method");
        *req.uri_mut() = path
            .parse()
            .map_err(|_| Stop::Wire(format!("{path:?} is not a request path")))?;
        let h = req.headers_mut();
        h.insert(
            http::header::HOST,
            http::HeaderValue::from_str(&conn.authority)
                .map_err(|_| Stop::Wire(format!("{:?} is not a host", conn.authority)))?,
        );
        if let Some(p) = bits.packet {
            h.insert(header::PACKET_TYPE, http::HeaderValue::from_static(p));
        }
        for (name, value) in &bits.headers {
            if let Ok(v) = http::HeaderValue::from_str(value) {
                h.insert(name.clone(), v);
            }
        }
        if let Some(c) = &self.credentials {
            h.insert(http::header::AUTHORIZATION, c.header());
        }
        self.sent += 1;
        let asked = describe_request(path, bits);
        let http = conn.http.as_mut().expect("opened above");
        match http.send(req, self.timeout).await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let headers = resp.headers().clone();
                let evidence = format!("{asked} → {}", describe_answer(status, &headers));
                tracing::debug!(%evidence, "probe exchange");
                Ok(Answer {
                    status,
                    headers,
                    evidence,
                })
            }
            Err(e) => {
                conn.http = None;
                Err(Stop::Wire(format!("{asked}: {e}")))
            }
        }
    }
}

impl Wire {
    /// The head of a Fragment of `len` bytes for `session` (the whole upload: `bytes
    /// 0-(len-1)/len`), with `Expect: 100-continue`, on a fresh connection to `authority`; the
    /// first answer, `None` if none came within the timeout (the server waits for the body).
    /// The body is never sent.
    pub async fn head_only(
        &mut self,
        authority: &str,
        path: &str,
        session: &str,
        len: u64,
    ) -> Result<Option<Answer>, Stop> {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        if self.sent >= self.max_requests {
            return Err(Stop::Budget);
        }
        self.sent += 1;
        let asked = format!(
            "BITS_POST {path} [Fragment, bits-session-id: {session}, content-range: bytes 0-{}/{len}, expect: 100-continue, head only]",
            len - 1
        );
        let mut io = tokio::time::timeout(self.timeout, self.connector.connect(authority))
            .await
            .map_err(|_| Stop::Wire(format!("{authority}: connect timed out")))?
            .map_err(|e| Stop::Wire(format!("{authority}: {e}")))?;
        let mut head = format!(
            "BITS_POST {path} HTTP/1.1\r\nHost: {authority}\r\nBITS-Packet-Type: Fragment\r\nBITS-Session-Id: {session}\r\nContent-Range: bytes 0-{}/{len}\r\nContent-Length: {len}\r\nExpect: 100-continue\r\n",
            len - 1
        );
        if let Some(c) = &self.credentials {
            head.push_str(&format!(
                "Authorization: {}\r\n",
                c.header().to_str().unwrap_or_default()
            ));
        }
        head.push_str("\r\n");
        io.write_all(head.as_bytes())
            .await
            .map_err(|e| Stop::Wire(format!("{asked}: {e}")))?;
        let wait = self.timeout.min(Duration::from_secs(2));
        let mut buf = Vec::new();
        let read = tokio::time::timeout(wait, async {
            let mut chunk = [0u8; 4096];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
                match io.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
        })
        .await;
        if read.is_err() || buf.is_empty() {
            return Ok(None);
        }
        let text = String::from_utf8_lossy(&buf);
        let mut lines = text.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Stop::Wire(format!("{asked}: not an HTTP answer")))?;
        let mut headers = HeaderMap::new();
        for line in lines.take_while(|l| !l.is_empty()) {
            if let Some((k, v)) = line.split_once(':')
                && let (Ok(k), Ok(v)) = (
                    http::HeaderName::from_bytes(k.trim().as_bytes()),
                    http::HeaderValue::from_str(v.trim()),
                )
            {
                headers.append(k, v);
            }
        }
        let evidence = format!("{asked} → {}", describe_answer(status, &headers));
        Ok(Some(Answer {
            status,
            headers,
            evidence,
        }))
    }
}

/// `BITS_POST /p [Fragment, session {..}, bytes 0-99/300, 100 B]`.
fn describe_request(path: &str, bits: &Bits) -> String {
    let mut parts = vec![bits.packet.unwrap_or("no BITS-Packet-Type").to_owned()];
    for (name, value) in &bits.headers {
        parts.push(format!("{}: {value}", name.as_str()));
    }
    if !bits.body.is_empty() {
        parts.push(format!("{} B", bits.body.len()));
    }
    format!("BITS_POST {path} [{}]", parts.join(", "))
}

/// `400 [Ack, BITS-Error-Code: 0x80070057, ...]`: the status and the BITS headers.
fn describe_answer(status: u16, headers: &HeaderMap) -> String {
    let bits: Vec<String> = headers
        .iter()
        .filter(|(n, _)| n.as_str().starts_with("bits-") || *n == http::header::ACCEPT_ENCODING)
        .map(|(n, v)| format!("{}: {}", n.as_str(), String::from_utf8_lossy(v.as_bytes())))
        .collect();
    format!("{status} [{}]", bits.join(", "))
}
