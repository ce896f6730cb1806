//! The control API of the live modes, JSON over HTTP in the spirit of toxiproxy's: `serve
//! --control` answers `GET /ledger` (the node's notifications); `farm --control` also lists
//! and steers the farm's hosts and fault rules, streams the event log and stops the run.
//!
//! Routing ([`route`]) is pure; [`serve`] reads at most [`BODY_LIMIT`] bytes of a request
//! body, within [`BODY_TIMING`], and answers every request with JSON (errors as
//! `{"error": "..."}`: 400 bad input, 404 no such thing, 405 wrong method).

use std::{path::PathBuf, sync::Arc, time::Duration};

use http::{Method, StatusCode};
use hyper::body::Incoming;
use node::NotificationLog;
use scenario::spec::Action;
use serde_json::{Value, json};
use transport::{Body, server::BodyTiming};

/// Largest request body read (a fault rule is a few hundred bytes).
pub const BODY_LIMIT: u64 = 64 * 1024;

/// How long a request body may take.
const BODY_TIMING: BodyTiming = BodyTiming {
    idle: Duration::from_secs(10),
    min_bytes_per_s: 1024,
};

/// What the control address steers.
#[derive(Clone)]
pub enum Api {
    /// One node (`serve`): its notification ledger.
    Node(Arc<NotificationLog>),
    /// A live farm.
    Farm(Arc<FarmApi>),
    /// The proxy: its rules, what it saw, its event log.
    Proxy(Arc<ProxyApi>),
}

/// The proxy's side of the control API.
pub struct ProxyApi {
    /// The running proxy.
    pub proxy: proxy::Proxy,
    /// Its event log as it is written (JSON lines).
    pub events: PathBuf,
    /// Set to true by `POST /stop`.
    pub stop: tokio::sync::watch::Sender<bool>,
}

/// A live farm's side of the control API.
pub struct FarmApi {
    /// The running farm.
    pub control: scenario::control::Control,
    /// The run's event log as it is written (JSON lines).
    pub events: PathBuf,
    /// Set to true by `POST /stop`.
    pub stop: tokio::sync::watch::Sender<bool>,
}

/// One request the API understands.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    /// `GET /ledger`
    Ledger,
    /// `GET /nodes`
    Hosts,
    /// `POST /nodes/{name}/crash|power-cut|restart`
    Act {
        /// The host.
        host: String,
        /// What to do to it.
        action: Action,
    },
    /// `GET /faults`
    Faults,
    /// `POST /faults`
    AddFault,
    /// `DELETE /faults/{id}`
    RemoveFault(usize),
    /// `POST /host-id`
    HostId,
    /// `GET /events`
    Events,
    /// `POST /stop`
    Stop,
}

/// The routes, for error messages.
const ROUTES: &str = "GET /nodes, POST /nodes/{name}/crash|power-cut|restart, GET /faults, POST /faults, DELETE /faults/{id}, POST /host-id, GET /ledger, GET /events, POST /stop";

/// An answer that is not a success.
type Refusal = (StatusCode, String);

fn refuse(status: StatusCode, why: impl Into<String>) -> Refusal {
    (status, why.into())
}

/// The route of a request, or why there is none.
pub fn route(method: &Method, path: &str) -> Result<Route, Refusal> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (wanted, route) = match segs.as_slice() {
        ["ledger"] => (Method::GET, Route::Ledger),
        ["nodes"] => (Method::GET, Route::Hosts),
        ["nodes", host, verb] => {
            let action = match *verb {
                "crash" => Action::Crash,
                "power-cut" => Action::PowerCut,
                "restart" => Action::Restart,
                other => {
                    return Err(refuse(
                        StatusCode::NOT_FOUND,
                        format!("no action {other:?} on a node: crash, power-cut or restart"),
                    ));
                }
            };
            (
                Method::POST,
                Route::Act {
                    host: (*host).to_owned(),
                    action,
                },
            )
        }
        ["faults"] if method == Method::POST => (Method::POST, Route::AddFault),
        ["faults"] => (Method::GET, Route::Faults),
        ["faults", id] => {
            let id = id.parse().map_err(|_| {
                refuse(
                    StatusCode::BAD_REQUEST,
                    format!("{id:?} is not a rule id (a number from GET /faults)"),
                )
            })?;
            (Method::DELETE, Route::RemoveFault(id))
        }
        ["host-id"] => (Method::POST, Route::HostId),
        ["events"] => (Method::GET, Route::Events),
        ["stop"] => (Method::POST, Route::Stop),
        _ => {
            return Err(refuse(
                StatusCode::NOT_FOUND,
                format!("no such resource {path:?}; the API: {ROUTES}"),
            ));
        }
    };
    if *method == wanted {
        Ok(route)
    } else {
        Err(refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{path} takes {wanted}, not {method}"),
        ))
    }
}

/// The body of `POST /nodes/{name}/crash` (optional).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ActBody {
    /// Start the host again after this many seconds.
    restart_after_s: Option<f64>,
}

/// The body of `POST /host-id`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct HostIdBody {
    enabled: bool,
}

/// A JSON body, or an empty one as `T::default()` when `empty` is given.
fn parse<T: serde::de::DeserializeOwned>(body: &[u8], empty: Option<T>) -> Result<T, Refusal> {
    if body.iter().all(u8::is_ascii_whitespace)
        && let Some(d) = empty
    {
        return Ok(d);
    }
    serde_json::from_slice(body).map_err(|e| {
        refuse(
            StatusCode::BAD_REQUEST,
            format!("the body is not what this takes: {e}"),
        )
    })
}

fn json_answer(status: StatusCode, value: &Value) -> http::Response<Body> {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    let mut resp = http::Response::new(Body::from(text));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

fn rule_answer(api: &FarmApi, id: usize, status: StatusCode) -> http::Response<Body> {
    let rules = api.control.faults();
    let rule = rules.get(id);
    json_answer(
        status,
        &json!({"id": id, "description": rule.map(|r| r.description.clone())}),
    )
}

/// The body of a request that carries one (at most [`BODY_LIMIT`] bytes).
async fn body_of(req: http::Request<Incoming>) -> Result<Vec<u8>, Refusal> {
    let chunks = transport::server::read_body(req.into_body(), BODY_LIMIT, &BODY_TIMING)
        .await
        .map_err(|e| match e {
            transport::server::BodyError::TooLong => refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is longer than {BODY_LIMIT} bytes"),
            ),
            other => refuse(StatusCode::BAD_REQUEST, other.to_string()),
        })?;
    Ok(chunks.concat())
}

/// The event log written so far, streamed (whole lines: it is flushed per record).
fn events_answer(path: &std::path::Path) -> Result<http::Response<Body>, Refusal> {
    let file = std::fs::File::open(path).map_err(|e| {
        refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut resp = http::Response::new(Body::streamed(
        len,
        transport::file_chunks(file, len, 1 << 16),
    ));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(resp)
}

/// The proxy's answers: its rules, what it saw, its event log, stop.
async fn proxy_answer(
    api: &ProxyApi,
    route: Route,
    req: http::Request<Incoming>,
) -> Result<http::Response<Body>, Refusal> {
    let bad = |why: String| refuse(StatusCode::BAD_REQUEST, why);
    Ok(match route {
        Route::Faults => json_answer(
            StatusCode::OK,
            &serde_json::to_value(api.proxy.rules()).unwrap_or_default(),
        ),
        Route::AddFault => {
            let rule: proxy::WireRule = parse(&body_of(req).await?, None)?;
            let id = api.proxy.add_rule(rule).map_err(bad)?;
            let description = api.proxy.rules()[id].description.clone();
            json_answer(
                StatusCode::CREATED,
                &json!({"id": id, "description": description}),
            )
        }
        Route::RemoveFault(id) => {
            api.proxy
                .remove_rule(id)
                .map_err(|why| refuse(StatusCode::NOT_FOUND, why))?;
            json_answer(StatusCode::OK, &json!({"id": id, "removed": true}))
        }
        Route::Ledger => json_answer(
            StatusCode::OK,
            &serde_json::to_value(api.proxy.seen()).unwrap_or_default(),
        ),
        Route::Events => events_answer(&api.events)?,
        Route::Stop => {
            api.stop.send_replace(true);
            json_answer(StatusCode::ACCEPTED, &json!({"stopping": true}))
        }
        _ => {
            return Err(refuse(
                StatusCode::NOT_FOUND,
                "the proxy's control API has GET/POST/DELETE /faults, GET /ledger, GET /events and POST /stop",
            ));
        }
    })
}

/// Answers one request.
async fn answer(api: Api, req: http::Request<Incoming>) -> Result<http::Response<Body>, Refusal> {
    let route = route(req.method(), req.uri().path())?;
    if let Api::Proxy(p) = &api {
        return proxy_answer(p, route, req).await;
    }
    let farm = match (&api, &route) {
        (Api::Node(log), Route::Ledger) => {
            return Ok(json_answer(
                StatusCode::OK,
                &serde_json::to_value(log.snapshot()).unwrap_or_default(),
            ));
        }
        (Api::Node(_), _) => {
            return Err(refuse(
                StatusCode::NOT_FOUND,
                "serve's control API has GET /ledger only (the rest is `bitsfarm farm`'s)",
            ));
        }
        (Api::Farm(farm), _) => farm.clone(),
        (Api::Proxy(_), _) => unreachable!("answered above"),
    };
    let body = match route {
        Route::Act { .. } | Route::AddFault | Route::HostId => body_of(req).await?,
        _ => Vec::new(),
    };
    let bad = |why: String| refuse(StatusCode::BAD_REQUEST, why);
    Ok(match route {
        Route::Ledger => json_answer(
            StatusCode::OK,
            &serde_json::to_value(farm.control.ledger()).unwrap_or_default(),
        ),
        Route::Hosts => json_answer(
            StatusCode::OK,
            &serde_json::to_value(farm.control.hosts().await).unwrap_or_default(),
        ),
        Route::Act { host, action } => {
            let b: ActBody = parse(&body, Some(ActBody::default()))?;
            if action == Action::Restart && b.restart_after_s.is_some() {
                return Err(bad("restart_after_s goes with crash and power-cut".into()));
            }
            if !farm.control.hosts().await.iter().any(|h| h.name == host) {
                return Err(refuse(
                    StatusCode::NOT_FOUND,
                    format!("no host {host:?} (GET /nodes lists them)"),
                ));
            }
            let id = farm
                .control
                .act_on(&host, action, b.restart_after_s)
                .map_err(bad)?;
            rule_answer(&farm, id, StatusCode::OK)
        }
        Route::Faults => json_answer(
            StatusCode::OK,
            &serde_json::to_value(farm.control.faults()).unwrap_or_default(),
        ),
        Route::AddFault => {
            let fault: scenario::spec::Fault = parse(&body, None)?;
            let id = farm.control.add_fault(&fault).map_err(bad)?;
            rule_answer(&farm, id, StatusCode::CREATED)
        }
        Route::RemoveFault(id) => {
            farm.control
                .remove_fault(id)
                .map_err(|why| refuse(StatusCode::NOT_FOUND, why))?;
            json_answer(StatusCode::OK, &json!({"id": id, "removed": true}))
        }
        Route::HostId => {
            let b: HostIdBody = parse(&body, None)?;
            let id = farm.control.host_id(b.enabled).map_err(bad)?;
            rule_answer(&farm, id, StatusCode::OK)
        }
        Route::Events => events_answer(&farm.events)?,
        Route::Stop => {
            farm.stop.send_replace(true);
            json_answer(StatusCode::ACCEPTED, &json!({"stopping": true}))
        }
    })
}

/// Serves the control API on `listener` until the task is dropped.
pub async fn serve(listener: transport::tcp::TcpListen, api: Api) -> std::io::Result<()> {
    let handler = move |req: http::Request<Incoming>, _conn, _peer| {
        let api = api.clone();
        async move {
            answer(api, req)
                .await
                .unwrap_or_else(|(status, why)| json_answer(status, &json!({"error": why})))
        }
    };
    serve_small(listener, handler).await
}

/// Serves a small operator-facing HTTP service (the control API, `report --serve`) on
/// `listener` until the task is dropped: at most 64 connections, idle ones closed after 60 s.
pub async fn serve_small<F, Fut>(
    listener: transport::tcp::TcpListen,
    handler: F,
) -> std::io::Result<()>
where
    F: Fn(http::Request<Incoming>, u64, std::sync::Arc<str>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = http::Response<transport::Body>> + Send + 'static,
{
    let options = transport::server::ServerOptions {
        idle_timeout: Duration::from_secs(60),
        max_connections: Some(64),
    };
    transport::server::serve_all(
        Box::new(listener),
        options,
        tokio::task::JoinSet::new(),
        handler,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_name_resources_and_methods() {
        assert_eq!(route(&Method::GET, "/nodes"), Ok(Route::Hosts));
        assert_eq!(
            route(&Method::POST, "/nodes/node-2/power-cut"),
            Ok(Route::Act {
                host: "node-2".into(),
                action: Action::PowerCut
            })
        );
        assert_eq!(route(&Method::POST, "/faults/"), Ok(Route::AddFault));
        assert_eq!(route(&Method::GET, "/faults"), Ok(Route::Faults));
        assert_eq!(
            route(&Method::DELETE, "/faults/3"),
            Ok(Route::RemoveFault(3))
        );
        assert_eq!(route(&Method::POST, "/stop"), Ok(Route::Stop));
        let (status, why) = route(&Method::GET, "/stop").unwrap_err();
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{why}");
        assert!(why.contains("POST"), "{why}");
        let (status, why) = route(&Method::DELETE, "/faults/x").unwrap_err();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{why}");
        let (status, why) = route(&Method::POST, "/nodes/node-1/reboot").unwrap_err();
        assert_eq!(status, StatusCode::NOT_FOUND, "{why}");
        assert!(why.contains("crash"), "{why}");
        let (status, why) = route(&Method::GET, "/").unwrap_err();
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(why.contains("GET /nodes"), "{why}");
    }

    #[test]
    fn bodies_are_checked_with_their_keys() {
        let b: ActBody = parse(b"", Some(ActBody::default())).unwrap();
        assert_eq!(b.restart_after_s, None);
        let b: ActBody = parse(br#"{"restart_after_s": 5}"#, Some(ActBody::default())).unwrap();
        assert_eq!(b.restart_after_s, Some(5.0));
        let (status, why) =
            parse::<ActBody>(br#"{"restart_after": 5}"#, Some(ActBody::default())).unwrap_err();
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(why.contains("restart_after"), "{why}");
        let (_, why) = parse::<HostIdBody>(b"", None).unwrap_err();
        assert!(why.contains("EOF"), "{why}");
        let f: scenario::spec::Fault = parse(
            br#"{"point": "after-forward", "action": "crash", "restart_after_s": 3}"#,
            None,
        )
        .unwrap();
        assert_eq!(f.action, Some(Action::Crash));
        assert_eq!(f.point, Some(probe::FaultPoint::AfterForward));
    }
}
