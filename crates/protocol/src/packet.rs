//! Request packets (client → server): Ping, Create-Session, Fragment, Close-Session,
//! Cancel-Session.

use http::{HeaderMap, HeaderValue, Method, Request, Uri, header as h};

use crate::{ByteRange, ParseError, header, range::RangeError};

/// The value of `BITS-Packet-Type`. Serialized with its wire spelling (`Create-Session`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
pub enum PacketType {
    /// `Ping`.
    Ping,
    /// `Create-Session`.
    #[serde(rename = "Create-Session")]
    CreateSession,
    /// `Fragment`.
    Fragment,
    /// `Close-Session`.
    #[serde(rename = "Close-Session")]
    CloseSession,
    /// `Cancel-Session`.
    #[serde(rename = "Cancel-Session")]
    CancelSession,
    /// `Ack`: every response.
    Ack,
}

impl PacketType {
    /// Every packet type, requests first.
    pub const ALL: [PacketType; 6] = [
        PacketType::Ping,
        PacketType::CreateSession,
        PacketType::Fragment,
        PacketType::CloseSession,
        PacketType::CancelSession,
        PacketType::Ack,
    ];

    /// The MSDN spelling written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            PacketType::Ping => "Ping",
            PacketType::CreateSession => "Create-Session",
            PacketType::Fragment => "Fragment",
            PacketType::CloseSession => "Close-Session",
            PacketType::CancelSession => "Cancel-Session",
            PacketType::Ack => "Ack",
        }
    }

    /// Reads a packet type in any letter case (MC-BUP lists them upper-case, MSDN mixed).
    pub fn parse(s: &str) -> Option<PacketType> {
        let s = s.trim();
        PacketType::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s))
    }
}

impl std::fmt::Display for PacketType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Fragment request's headers (its body is carried separately).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    /// `BITS-Session-Id`.
    pub session_id: String,
    /// `Content-Range`; `Content-Length` equals its length.
    pub range: ByteRange,
    /// `Content-Name`, the client's local file name (first fragment only).
    pub content_name: Option<String>,
}

/// A request packet, as read from (or written to) request headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// Opens a connection cheaply; also sent to the `BITS-Host-Id` after Create-Session.
    Ping,
    /// Starts a session; lists the client's protocol GUIDs in order of preference.
    CreateSession {
        /// `BITS-Supported-Protocols`, split on spaces and commas; never empty.
        protocols: Vec<String>,
    },
    /// Carries a range of the upload.
    Fragment(Fragment),
    /// Ends a session normally.
    CloseSession {
        /// `BITS-Session-Id`.
        session_id: String,
    },
    /// Cancels a session.
    CancelSession {
        /// `BITS-Session-Id`.
        session_id: String,
    },
}

impl Packet {
    /// The packet's type.
    pub fn packet_type(&self) -> PacketType {
        match self {
            Packet::Ping => PacketType::Ping,
            Packet::CreateSession { .. } => PacketType::CreateSession,
            Packet::Fragment(_) => PacketType::Fragment,
            Packet::CloseSession { .. } => PacketType::CloseSession,
            Packet::CancelSession { .. } => PacketType::CancelSession,
        }
    }

    /// The session the packet belongs to, if it names one.
    pub fn session_id(&self) -> Option<&str> {
        match self {
            Packet::Fragment(f) => Some(&f.session_id),
            Packet::CloseSession { session_id } | Packet::CancelSession { session_id } => {
                Some(session_id)
            }
            Packet::Ping | Packet::CreateSession { .. } => None,
        }
    }

    /// Reads a request. Accepts `BITS_POST`, and `POST` with `X-Http-Method-Override: BITS_POST`
    /// (the OneDrive dialect).
    pub fn parse(method: &Method, headers: &HeaderMap) -> Result<Packet, ParseError> {
        if !is_bits_request(method, headers) {
            return Err(ParseError::NotBitsPost(method.to_string()));
        }
        let kind = text(headers, &header::PACKET_TYPE)?
            .ok_or(ParseError::MissingHeader(header::PACKET_TYPE))?;
        let kind = PacketType::parse(kind)
            .filter(|t| *t != PacketType::Ack)
            .ok_or_else(|| ParseError::UnknownPacketType(truncate(kind)))?;
        Ok(match kind {
            PacketType::Ping => Packet::Ping,
            PacketType::CreateSession => {
                let list = text(headers, &header::SUPPORTED_PROTOCOLS)?
                    .ok_or(ParseError::MissingHeader(header::SUPPORTED_PROTOCOLS))?;
                let protocols = split_protocols(list);
                if protocols.is_empty() {
                    return Err(ParseError::InvalidHeader {
                        name: header::SUPPORTED_PROTOCOLS,
                        reason: "lists no protocol",
                    });
                }
                Packet::CreateSession { protocols }
            }
            PacketType::Fragment => Packet::Fragment(parse_fragment(headers)?),
            PacketType::CloseSession => Packet::CloseSession {
                session_id: session_id(headers)?,
            },
            PacketType::CancelSession => Packet::CancelSession {
                session_id: session_id(headers)?,
            },
            PacketType::Ack => unreachable!("filtered above"),
        })
    }

    /// Writes the request line and headers; the caller attaches the body (a Fragment's bytes).
    pub fn to_request(&self, uri: Uri) -> Request<()> {
        let mut req = Request::new(());
        *req.method_mut() = crate::bits_post();
        *req.uri_mut() = uri;
        let headers = req.headers_mut();
        headers.insert(
            header::PACKET_TYPE,
            HeaderValue::from_static(self.packet_type().as_str()),
        );
        match self {
            Packet::Ping => {}
            Packet::CreateSession { protocols } => {
                headers.insert(header::SUPPORTED_PROTOCOLS, value(&protocols.join(" ")));
            }
            Packet::Fragment(f) => {
                headers.insert(header::SESSION_ID, value(&f.session_id));
                headers.insert(h::CONTENT_RANGE, f.range.header_value());
                headers.insert(h::CONTENT_LENGTH, HeaderValue::from(f.range.len()));
                if let Some(name) = &f.content_name {
                    headers.insert(header::CONTENT_NAME, value(name));
                }
            }
            Packet::CloseSession { session_id } | Packet::CancelSession { session_id } => {
                headers.insert(header::SESSION_ID, value(session_id));
            }
        }
        if !matches!(self, Packet::Fragment(_)) {
            headers.insert(h::CONTENT_LENGTH, HeaderValue::from_static("0"));
        }
        req
    }
}

/// Whether a request uses the BITS method (directly or through the method-override header).
pub fn is_bits_request(method: &Method, headers: &HeaderMap) -> bool {
    if method.as_str() == crate::BITS_POST {
        return true;
    }
    method == Method::POST
        && headers.get(header::METHOD_OVERRIDE).is_some_and(|v| {
            v.as_bytes()
                .eq_ignore_ascii_case(crate::BITS_POST.as_bytes())
        })
}

/// Splits `BITS-Supported-Protocols` on spaces, tabs and commas.
pub fn split_protocols(list: &str) -> Vec<String> {
    list.split([' ', ',', '\t'])
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

fn parse_fragment(headers: &HeaderMap) -> Result<Fragment, ParseError> {
    let session_id = session_id(headers)?;
    let range =
        text(headers, &h::CONTENT_RANGE)?.ok_or(ParseError::MissingHeader(h::CONTENT_RANGE))?;
    let range = ByteRange::parse(range).map_err(|e| ParseError::InvalidHeader {
        name: h::CONTENT_RANGE,
        reason: match e {
            RangeError::Syntax => "not of the form bytes <first>-<last>/<total>",
            RangeError::Order => "first > last or last >= total",
        },
    })?;
    let length =
        text(headers, &h::CONTENT_LENGTH)?.ok_or(ParseError::MissingHeader(h::CONTENT_LENGTH))?;
    let content_length =
        crate::range::parse_offset(length).map_err(|_| ParseError::InvalidHeader {
            name: h::CONTENT_LENGTH,
            reason: "not a decimal length",
        })?;
    if content_length != range.len() {
        return Err(ParseError::LengthMismatch {
            content_length,
            range_len: range.len(),
        });
    }
    if let Some(encoding) = text(headers, &h::CONTENT_ENCODING)?
        && !encoding.trim().eq_ignore_ascii_case("identity")
    {
        return Err(ParseError::UnsupportedEncoding(truncate(encoding)));
    }
    let content_name = match single(headers, &header::CONTENT_NAME)? {
        Some(v) if v.len() > header::MAX_HEADER_VALUE_LEN => {
            return Err(ParseError::InvalidHeader {
                name: header::CONTENT_NAME,
                reason: "longer than 4 KB",
            });
        }
        // Content-Name is a file name; keep non-ASCII names readable rather than rejecting them.
        Some(v) => Some(String::from_utf8_lossy(v.as_bytes()).into_owned()),
        None => None,
    };
    Ok(Fragment {
        session_id,
        range,
        content_name,
    })
}

fn session_id(headers: &HeaderMap) -> Result<String, ParseError> {
    let id =
        text(headers, &header::SESSION_ID)?.ok_or(ParseError::MissingHeader(header::SESSION_ID))?;
    let id = id.trim();
    // MSDN: any HTTP-legal string of up to 100 characters.
    if id.is_empty() || id.len() > 100 || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ParseError::InvalidHeader {
            name: header::SESSION_ID,
            reason: "not 1 to 100 visible ASCII characters",
        });
    }
    Ok(id.to_owned())
}

/// The one value of a single-valued header, or `None`; a repeated header is an error.
pub(crate) fn single<'h>(
    headers: &'h HeaderMap,
    name: &http::HeaderName,
) -> Result<Option<&'h HeaderValue>, ParseError> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(ParseError::InvalidHeader {
            name: name.clone(),
            reason: "repeated",
        });
    }
    Ok(first)
}

/// The value of a single-valued header as visible ASCII text of at most 4 KB.
pub(crate) fn text<'h>(
    headers: &'h HeaderMap,
    name: &http::HeaderName,
) -> Result<Option<&'h str>, ParseError> {
    let Some(v) = single(headers, name)? else {
        return Ok(None);
    };
    if v.len() > header::MAX_HEADER_VALUE_LEN {
        return Err(ParseError::InvalidHeader {
            name: name.clone(),
            reason: "longer than 4 KB",
        });
    }
    v.to_str().map(Some).map_err(|_| ParseError::InvalidHeader {
        name: name.clone(),
        reason: "not visible ASCII",
    })
}

/// A header value from text this crate produced or checked. Characters a header cannot carry
/// (control characters, non-ASCII) are replaced by `?`, so rendering never panics.
pub(crate) fn value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| {
        let clean: String = s
            .chars()
            .map(|c| {
                if c == ' ' || c.is_ascii_graphic() {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        HeaderValue::from_str(&clean).expect("visible ASCII is a valid header value")
    })
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    fn post() -> Method {
        crate::bits_post()
    }

    #[test]
    fn packet_types_are_case_insensitive() {
        let p = Packet::parse(
            &post(),
            &req(&[
                ("BITS-Packet-Type", "fRaGmEnT"),
                ("BITS-Session-Id", "{a}"),
                ("Content-Range", "bytes 0-1/2"),
                ("Content-Length", "2"),
            ]),
        )
        .unwrap();
        assert_eq!(p.packet_type(), PacketType::Fragment);
        let p = Packet::parse(
            &post(),
            &req(&[
                ("BITS-Packet-Type", "CREATE-SESSION"),
                (
                    "BITS-Supported-Protocols",
                    "{X},{7DF0354D-249B-430F-820D-3D2A9BEF4931}",
                ),
            ]),
        )
        .unwrap();
        assert_eq!(
            p,
            Packet::CreateSession {
                protocols: vec![
                    "{X}".into(),
                    "{7DF0354D-249B-430F-820D-3D2A9BEF4931}".into()
                ]
            }
        );
    }

    #[test]
    fn rejects_what_a_server_must_answer_400() {
        let cases: &[&[(&str, &str)]] = &[
            &[],
            &[("BITS-Packet-Type", "Ack")],
            &[("BITS-Packet-Type", "Download")],
            &[("BITS-Packet-Type", "Ping"), ("BITS-Packet-Type", "Ping")],
            &[("BITS-Packet-Type", "Create-Session")],
            &[
                ("BITS-Packet-Type", "Create-Session"),
                ("BITS-Supported-Protocols", " , "),
            ],
            &[("BITS-Packet-Type", "Fragment"), ("BITS-Session-Id", "s")],
            &[
                ("BITS-Packet-Type", "Fragment"),
                ("BITS-Session-Id", "s"),
                ("Content-Range", "bytes 0-1/2"),
            ],
            &[
                ("BITS-Packet-Type", "Fragment"),
                ("BITS-Session-Id", "s"),
                ("Content-Range", "bytes 0-1/2"),
                ("Content-Length", "3"),
            ],
            &[
                ("BITS-Packet-Type", "Fragment"),
                ("BITS-Session-Id", "s"),
                ("Content-Range", "bytes 0-1/2"),
                ("Content-Length", "2"),
                ("Content-Encoding", "gzip"),
            ],
            &[("BITS-Packet-Type", "Close-Session")],
            &[
                ("BITS-Packet-Type", "Cancel-Session"),
                ("BITS-Session-Id", ""),
            ],
        ];
        for case in cases {
            assert!(Packet::parse(&post(), &req(case)).is_err(), "{case:?}");
        }
        assert_eq!(
            Packet::parse(&Method::GET, &req(&[("BITS-Packet-Type", "Ping")])),
            Err(ParseError::NotBitsPost("GET".into()))
        );
    }

    #[test]
    fn accepts_the_method_override_dialect() {
        let h = req(&[
            ("X-Http-Method-Override", "bits_post"),
            ("BITS-Packet-Type", "Ping"),
        ]);
        assert_eq!(Packet::parse(&Method::POST, &h), Ok(Packet::Ping));
    }

    #[test]
    fn identity_encoding_is_accepted() {
        let h = req(&[
            ("BITS-Packet-Type", "Fragment"),
            ("BITS-Session-Id", "s"),
            ("Content-Range", "bytes 0-1/2"),
            ("Content-Length", "2"),
            ("Content-Encoding", "Identity"),
        ]);
        assert!(Packet::parse(&post(), &h).is_ok());
    }
}
