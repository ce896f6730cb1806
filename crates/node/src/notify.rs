//! Notifying the server application of a completed upload (MC-BUP 3.2.5.1.3, the BITS
//! notification protocol for server applications).

use http::{Method, Request, header as h};
use probe::Event;
use protocol::{Ack, ErrorContext, HResult, header};
use transport::{Body, Error, client::Timeouts, url::Target};

use crate::{Node, NotificationType, SessionRecord, reply};

/// What a successful notification tells the node.
pub(crate) struct Accepted {
    /// `BITS-Reply-URL` for the final Ack.
    pub reply_url: Option<String>,
    /// The application asked for the upload at its destination too.
    pub copy_to_destination: bool,
}

/// Posts the upload to the application and waits for its answer, at most the application
/// deadline. `Err` is the error Ack for the client (context 0x7 when the application failed).
pub(crate) async fn notify(node: &Node, rec: &SessionRecord) -> Result<Accepted, Ack> {
    let cfg = &node.cfg;
    let url = cfg.notification_url.as_deref().unwrap_or_default();
    let target = match resolve(url, rec) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(node = %cfg.name, url, error = %e, "bad notification URL");
            return Err(Ack::error(500, HResult::FAIL, ErrorContext::REMOTE_FILE));
        }
    };
    let by_value = cfg.notification == NotificationType::ByValue;
    let mut req = Request::new(Body::empty());
    *req.method_mut() = Method::POST;
    *req.uri_mut() = target
        .path_and_query
        .parse()
        .unwrap_or_else(|_| http::Uri::from_static("/"));
    let hs = req.headers_mut();
    hs.insert(h::HOST, value(&target.authority));
    hs.insert(header::ORIGINAL_REQUEST_URL, value(&rec.original_url));
    hs.insert(header::X_NODE, value(&cfg.name));
    hs.insert(header::X_SESSION_ID, value(&rec.id));
    if let Some(token) = &cfg.app_token {
        hs.insert(header::X_APP_TOKEN, value(token));
    }
    let total = rec.received;
    if by_value {
        let entity = match node.store.entity(&rec.id, total) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(node = %cfg.name, session = %rec.id, error = %e, "cannot read the upload");
                return Err(Ack::error(500, HResult::FAIL, ErrorContext::REMOTE_FILE));
            }
        };
        hs.insert(h::CONTENT_LENGTH, http::HeaderValue::from(total));
        *req.body_mut() = Body::streamed(total, entity);
    } else {
        hs.insert(
            header::REQUEST_DATAFILE_NAME,
            value(&node.store.entity_path(&rec.id)),
        );
        hs.insert(
            header::RESPONSE_DATAFILE_NAME,
            value(&node.store.reply_path(&rec.id)),
        );
        hs.insert(h::CONTENT_LENGTH, http::HeaderValue::from_static("0"));
    }

    tracing::info!(node = %cfg.name, session = %rec.id, file = %rec.path, app = %target.authority, bytes = total, "forwarding to the application");
    probe::emit(&*node.probe, || Event::Forwarded {
        node: cfg.name.clone(),
        session: rec.id.to_string(),
        file: rec.path.to_string(),
        bytes: total,
    });
    let deadline = probe::clock::secs(cfg.app_deadline_s);
    let timeouts = Timeouts {
        connect: deadline,
        request: deadline,
    };
    let answer = tokio::time::timeout(
        deadline,
        transport::client::fetch(
            node.connector.as_ref(),
            &target.authority,
            req,
            timeouts,
            transport::client::DEFAULT_MAX_BODY,
        ),
    )
    .await
    .unwrap_or(Err(Error::Timeout));
    let answered = |status: Option<u16>, error: Option<String>| {
        probe::emit(&*node.probe, || Event::AppAnswered {
            node: cfg.name.clone(),
            session: rec.id.to_string(),
            file: rec.path.to_string(),
            status,
            error,
        });
    };
    let app_error = |status, code| Ack::error(status, code, ErrorContext::REMOTE_APPLICATION);
    let resp = match answer {
        Ok(resp) => resp,
        Err(e) => {
            tracing::warn!(node = %cfg.name, session = %rec.id, error = %e, "application not reached");
            answered(None, Some(e.to_string()));
            return Err(match e {
                Error::Timeout => app_error(504, HResult::WINHTTP_TIMEOUT),
                Error::Connect(_) | Error::Tls(_) => {
                    app_error(502, HResult::WINHTTP_CANNOT_CONNECT)
                }
                Error::Broken(_) | Error::Protocol(_) | Error::TooLarge(_) => {
                    app_error(502, HResult::WINHTTP_CONNECTION_ERROR)
                }
            });
        }
    };
    let status = resp.status().as_u16();
    answered(Some(status), None);
    if !resp.status().is_success() {
        let code = resp
            .headers()
            .get(header::ERROR_CODE)
            .and_then(|v| v.to_str().ok())
            .and_then(HResult::parse)
            .unwrap_or_else(|| HResult::from_http_status(status));
        tracing::warn!(node = %cfg.name, session = %rec.id, status, "application refused the upload");
        // A 413 from the application would tell the client to shrink its fragments, which
        // cannot help: the application refuses the upload's size. That is BG_E_TOO_LARGE, fatal.
        if status == 413 {
            return Err(Ack::error(
                400,
                HResult::TOO_LARGE,
                ErrorContext::REMOTE_APPLICATION,
            ));
        }
        return Err(app_error(status, code));
    }
    let copy_to_destination = resp
        .headers()
        .contains_key(header::COPY_FILE_TO_DESTINATION);
    let static_url = resp
        .headers()
        .get(header::STATIC_RESPONSE_URL)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let reply_url = match static_url {
        // Passed through verbatim; the node keeps no reply of its own.
        Some(url) => Some(url),
        None if cfg.upload_reply => {
            if by_value {
                if let Err(e) = node.store.put_reply(&rec.id, resp.into_body()) {
                    tracing::error!(node = %cfg.name, session = %rec.id, error = %e, "cannot store the reply");
                    return Err(Ack::error(500, HResult::FAIL, ErrorContext::REMOTE_FILE));
                }
            } else if matches!(node.store.reply(&rec.id), Ok(None)) {
                // The application wrote no reply file: the reply is empty.
                let _ = node.store.put_reply(&rec.id, bytes::Bytes::new());
            }
            let authority = transport::url::parse(&rec.original_url)
                .map(|t| t.authority)
                .unwrap_or_else(|_| cfg.name.clone());
            Some(reply::url(&authority, &rec.id))
        }
        None => None,
    };
    Ok(Accepted {
        reply_url,
        copy_to_destination,
    })
}

/// The notification URL for this upload: absolute, or resolved against the upload's URL, with
/// the upload's query string appended.
fn resolve(url: &str, rec: &SessionRecord) -> Result<Target, transport::url::UrlError> {
    let absolute = if url.len() >= 7 && url[..7].eq_ignore_ascii_case("http://") {
        url.to_owned()
    } else {
        let base = transport::url::parse(&rec.original_url)?;
        if url.starts_with('/') {
            format!("http://{}{url}", base.authority)
        } else {
            let path = base.path_and_query.split('?').next().unwrap_or("/");
            let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
            format!("http://{}{dir}{url}", base.authority)
        }
    };
    let mut target = transport::url::parse(&absolute)?;
    if let Some(q) = &rec.query {
        target
            .path_and_query
            .push(if target.path_and_query.contains('?') {
                '&'
            } else {
                '?'
            });
        target.path_and_query.push_str(q);
    }
    Ok(target)
}

fn value(s: &str) -> http::HeaderValue {
    http::HeaderValue::from_str(s).unwrap_or_else(|_| http::HeaderValue::from_static("invalid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(url: &str, query: Option<&str>) -> SessionRecord {
        SessionRecord {
            id: "{s}".into(),
            path: "/dir/file.asp".into(),
            original_url: url.into(),
            query: query.map(Into::into),
            content_name: None,
            total: Some(0),
            received: 0,
            phase: crate::Phase::Complete,
            committed: false,
            touched_ms: 0,
        }
    }

    #[test]
    fn appends_the_query_and_resolves_relative_urls() {
        let r = rec(
            "http://farm/dir/file.asp?ACCOUNT=86433",
            Some("ACCOUNT=86433"),
        );
        let t = resolve("http://otherserver/myvdir2/bag.asp", &r).unwrap();
        assert_eq!(
            (t.authority.as_str(), t.path_and_query.as_str()),
            ("otherserver", "/myvdir2/bag.asp?ACCOUNT=86433")
        );
        let t = resolve("bag.asp", &r).unwrap();
        assert_eq!(
            (t.authority.as_str(), t.path_and_query.as_str()),
            ("farm", "/dir/bag.asp?ACCOUNT=86433")
        );
        let t = resolve("/app/n?x=1", &r).unwrap();
        assert_eq!(t.path_and_query, "/app/n?x=1&ACCOUNT=86433");
        let t = resolve("HTTP://app:81/n", &rec("http://farm/a", None)).unwrap();
        assert_eq!(
            (t.authority.as_str(), t.path_and_query.as_str()),
            ("app:81", "/n")
        );
    }
}
