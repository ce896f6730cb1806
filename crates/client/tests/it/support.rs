//! Scripted servers, a proxy that plays the shared address, and job helpers.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use client::{Env, Job, JobConfig, JobReport};
use http::{HeaderMap, Request};
use probe::{Clock, SharedProbe};
use protocol::{Ack, ByteRange, Packet};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::{net::TcpStream, task::JoinSet};
use transport::{
    Body, Listen,
    tcp::{TcpConnect, TcpListen},
};

/// A request a scripted server received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Which server got it ("O", "H", ...).
    pub server: &'static str,
    pub packet: Option<Packet>,
    pub headers: HeaderMap,
}

impl Seen {
    pub fn kind(&self) -> &'static str {
        match &self.packet {
            Some(p) => p.packet_type().as_str(),
            None => "?",
        }
    }

    pub fn range(&self) -> Option<ByteRange> {
        match &self.packet {
            Some(Packet::Fragment(f)) => Some(f.range),
            _ => None,
        }
    }
}

pub type Log = Arc<Mutex<Vec<Seen>>>;
type Script = Arc<dyn Fn(&Seen, usize) -> Ack + Send + Sync>;

/// A BITS server that answers from a script (given the request and how many requests this
/// server saw before it) and logs every request.
pub struct ScriptServer {
    pub addr: String,
    _tasks: JoinSet<()>,
}

pub async fn script_server(
    name: &'static str,
    log: Log,
    script: impl Fn(&Seen, usize) -> Ack + Send + Sync + 'static,
) -> ScriptServer {
    let mut listener = TcpListen::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr();
    let script: Script = Arc::new(script);
    let count = Arc::new(Mutex::new(0usize));
    let mut tasks = JoinSet::new();
    tasks.spawn(async move {
        let mut conns = JoinSet::new();
        while let Ok(acc) = listener.accept().await {
            let (log, script, count) = (log.clone(), script.clone(), count.clone());
            conns.spawn(async move {
                let handler = move |req: Request<hyper::body::Incoming>| {
                    let (log, script, count) = (log.clone(), script.clone(), count.clone());
                    async move {
                        let (parts, body) = req.into_parts();
                        transport::server::drain_body(body, 1 << 30, &Default::default()).await;
                        let seen = Seen {
                            server: name,
                            packet: Packet::parse(&parts.method, &parts.headers).ok(),
                            headers: parts.headers,
                        };
                        let n = {
                            let mut c = count.lock().unwrap();
                            *c += 1;
                            *c - 1
                        };
                        let ack = script(&seen, n);
                        log.lock().unwrap().push(seen);
                        ack.to_response().map(|()| Body::empty())
                    }
                };
                let _ = transport::server::serve(acc.io, &Default::default(), handler).await;
            });
        }
    });
    ScriptServer {
        addr,
        _tasks: tasks,
    }
}

/// The usual happy answers of a BITS server, for scripts to fall back on.
pub fn happy(seen: &Seen, host_id: Option<&str>) -> Ack {
    match &seen.packet {
        Some(Packet::CreateSession { .. }) => {
            let mut ack = Ack::ok().with_session("{S1}");
            ack.protocol = Some(protocol::header::PROTOCOL_GUID.into());
            ack.host_id = host_id.map(str::to_owned);
            ack
        }
        Some(Packet::Fragment(f)) => Ack::ok()
            .with_session(&f.session_id)
            .with_received(f.range.end),
        Some(Packet::CloseSession { session_id } | Packet::CancelSession { session_id }) => {
            Ack::ok().with_session(session_id)
        }
        Some(Packet::Ping) => Ack::ok(),
        None => Ack::invalid_arg(),
    }
}

/// A TCP proxy playing the farm's shared address: it forwards each connection to the current
/// target and can cut every connection it carries.
#[derive(Clone)]
pub struct Proxy {
    pub addr: String,
    target: Arc<Mutex<String>>,
    conns: Arc<Mutex<JoinSet<()>>>,
    accept: Arc<tokio::task::JoinHandle<()>>,
}

impl Proxy {
    pub async fn start(target: &str) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let target = Arc::new(Mutex::new(target.to_owned()));
        let conns: Arc<Mutex<JoinSet<()>>> = Arc::default();
        let (t, c) = (target.clone(), conns.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let to = t.lock().unwrap().clone();
                c.lock().unwrap().spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&to).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Proxy {
            addr,
            target,
            conns,
            accept: Arc::new(accept),
        }
    }

    pub fn set_target(&self, target: &str) {
        *self.target.lock().unwrap() = target.to_owned();
    }

    /// Cuts every connection now: bytes in flight are lost.
    pub fn cut_all(&self) {
        self.conns.lock().unwrap().abort_all();
    }

    /// Stops listening and cuts every connection: connects are refused from now on, as to a
    /// dead host.
    pub fn shutdown(&self) {
        self.accept.abort();
        self.cut_all();
    }
}

/// A probe that records events and answers fault points with a rule.
pub type TestProbe = probe::Recorder;

/// Job settings for a URL on a server, with a retry delay that the paused clock skips.
pub fn job_config(authority: &str, path: &str) -> JobConfig {
    JobConfig {
        name: "job".into(),
        url: format!("http://{authority}{path}"),
        ..JobConfig::default()
    }
}

pub fn make_job(cfg: JobConfig, payload: Vec<u8>, probe: Arc<TestProbe>) -> Job {
    let env = Env {
        connector: Arc::new(TcpConnect),
        probe: probe as SharedProbe,
        rng: ChaCha8Rng::seed_from_u64(9),
        clock: Clock::starting_now(),
    };
    Job::new(cfg, Bytes::from(payload), env).unwrap()
}

pub async fn run_job(cfg: JobConfig, payload: Vec<u8>) -> (JobReport, Arc<TestProbe>) {
    let probe = TestProbe::quiet();
    let report = make_job(cfg, payload, probe.clone()).run().await;
    (report, probe)
}

pub fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(29).wrapping_add(seed) ^ (i >> 9) as u8)
        .collect()
}

pub fn new_log() -> Log {
    Arc::default()
}

pub fn seen(log: &Log) -> Vec<Seen> {
    log.lock().unwrap().clone()
}
