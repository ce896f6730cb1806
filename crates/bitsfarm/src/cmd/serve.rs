//! `bitsfarm serve`: one BITS node and the server application on real sockets, for real BITS
//! clients (bitsadmin, Start-BitsTransfer, `bitsfarm upload`, curl).

use std::{path::PathBuf, process::ExitCode, sync::Arc};

use anyhow::Context as _;
use backend::{Backend, BackendConfig, Ledger};
use clap::ValueEnum;
use node::{
    DiskStore, MemStore, Node, NodeConfig, NotificationLog, NotificationType, Storage,
    disk::SESSIONS_DIR,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use transport::{
    Listen,
    tcp::{TcpConnect, TcpListen},
};

use crate::live;

/// How the node notifies the application (`BITSServerNotificationType`).
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Notification {
    /// Type 0: no application; files land under the upload root (the IIS default).
    None,
    /// Type 1: the application gets the file's path.
    ByReference,
    /// Type 2: the application gets the file in the request body.
    ByValue,
}

impl From<Notification> for NotificationType {
    fn from(n: Notification) -> Self {
        match n {
            Notification::None => NotificationType::None,
            Notification::ByReference => NotificationType::ByReference,
            Notification::ByValue => NotificationType::ByValue,
        }
    }
}

/// Flags of `bitsfarm serve`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
The node accepts BITS uploads to any path, e.g. http://127.0.0.1:8080/upload/report.bin.
The application's ledger (every delivery, with node, session, transaction id and hash) is at
GET http://<backend addr>/ledger, is printed to stdout on Ctrl-C, and is kept on disk as JSON
lines (--ledger): a restart replays it, so no recorded delivery is lost and a repeated
transaction id never has a second effect.

Limits (each answered 503, which BITS clients retry): --max-connections, --max-sessions,
--max-session-bytes, --max-buffered-bytes. A fragment body that stalls for --idle-timeout-s or
comes slower than --min-bytes-per-s is abandoned.

Example, from a Windows machine that can reach this one:
  bitsadmin /transfer t /upload http://HOST:8080/upload/a.bin C:\\a.bin
or with bitsfarm's own client:
  bitsfarm upload ./a.bin http://127.0.0.1:8080/upload/a.bin --transaction-id")]
pub struct Args {
    /// Address the BITS node listens on.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    listen: String,
    /// Serve HTTPS with this PEM certificate chain (and --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require HTTP Basic authentication as NAME:PASSWORD (or NAME, the password from
    /// BITSFARM_PASSWORD): other requests are answered 401, as IIS with Basic authentication.
    #[arg(long, value_name = "NAME[:PASSWORD]")]
    require_user: Option<String>,
    /// Your own server application: the node notifies it at URL (the job's query string
    /// appended) instead of the built-in one, which then does not run. The node keeps its own
    /// ledger of what it sent and how the application answered (`GET /ledger` on --control;
    /// printed at exit).
    #[arg(long, value_name = "URL")]
    app_url: Option<String>,
    /// Serve the node's notification ledger at `GET http://ADDR/ledger` (JSON).
    #[arg(long, value_name = "ADDR")]
    control: Option<String>,
    /// Address the built-in server application listens on.
    #[arg(long, default_value = "127.0.0.1:8081", value_name = "ADDR")]
    backend_listen: String,
    /// BITSHostId: the address clients switch to after Create-Session (e.g. this node's own
    /// name or IP:port). Unset by default, as in IIS.
    #[arg(long, value_name = "NAME")]
    host_id: Option<String>,
    /// BITSHostIdFallbackTimeout, seconds (sent only with --host-id).
    #[arg(long, default_value_t = 86_400, value_name = "N")]
    fallback_timeout_s: u64,
    /// BITSServerNotificationType. bitsfarm defaults to by-value so the ledger sees every
    /// delivery; IIS's default is none.
    #[arg(long, value_enum, default_value = "by-value")]
    notification: Notification,
    /// Serve upload-reply jobs: the final Ack carries BITS-Reply-URL and the application
    /// answers with a JSON reply.
    #[arg(long)]
    upload_reply: bool,
    /// BITSMaximumUploadSize, bytes.
    #[arg(long, default_value_t = 1_844_674_407_370_955, value_name = "BYTES")]
    max_upload_size: u64,
    /// Largest fragment body, bytes; larger fragments get 413 and the client shrinks its
    /// fragments (IIS's maxAllowedContentLength, 30,000,000 by default).
    #[arg(long, default_value_t = 30_000_000, value_name = "BYTES")]
    max_fragment_size: u64,
    /// The application's own limit on an upload's size, bytes: larger uploads are refused at
    /// their first fragment with the fatal BG_E_TOO_LARGE (0x80200020). Default: none.
    #[arg(long, value_name = "BYTES")]
    app_max_size: Option<u64>,
    /// BITSSessionTimeout, seconds without progress before a session is deleted.
    #[arg(long, default_value_t = 1_209_600, value_name = "N")]
    session_timeout_s: u64,
    /// Seconds after which a session that never received a byte is deleted.
    #[arg(long, default_value_t = 3600, value_name = "N")]
    empty_session_timeout_s: u64,
    /// How often expired sessions are deleted, seconds.
    #[arg(long, default_value_t = 600, value_name = "N")]
    cleanup_interval_s: u64,
    /// Seconds the application may take before the node gives up on it.
    #[arg(long, default_value_t = 300, value_name = "N")]
    app_deadline_s: u64,
    /// Seconds a connection may idle, or a request body stall, before it is closed (IIS's
    /// connectionTimeout).
    #[arg(long, default_value_t = 120, value_name = "N")]
    idle_timeout_s: u64,
    /// Slowest average rate of a request body after the idle grace period, bytes per second
    /// (IIS's minBytesPerSecond).
    #[arg(long, default_value_t = 240, value_name = "N")]
    min_bytes_per_s: u64,
    /// Most connections served at once; more are answered 503 and closed. Default: a quarter
    /// of the open-file limit (each connection may need a socket to the application and a
    /// file besides its own).
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Most open sessions; more Create-Sessions are answered 503.
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    max_sessions: u64,
    /// Most bytes open sessions may hold together; fragments beyond are answered 503.
    /// Default 8 GiB on disk, 1 GiB with --volatile.
    #[arg(long, value_name = "BYTES")]
    max_session_bytes: Option<u64>,
    /// Most bytes of fragment bodies held in memory at once.
    #[arg(long, default_value_t = 256 << 20, value_name = "BYTES")]
    max_buffered_bytes: u64,
    /// BITSAllowOverwrites: type-0 uploads may replace existing files.
    #[arg(long)]
    allow_overwrites: bool,
    /// Directory for sessions (BITS-Sessions/) and type-0 uploads. Sessions survive a restart.
    #[arg(long, default_value = "bitsfarm-uploads", value_name = "DIR")]
    upload_root: PathBuf,
    /// Keep sessions in memory only (lost when the process stops) instead of under
    /// --upload-root.
    #[arg(long)]
    volatile: bool,
    /// The application's ledger, one JSON line per delivery. Default:
    /// <upload-root>/BITS-Sessions/ledger.jsonl (no upload can reach it).
    #[arg(long, value_name = "FILE")]
    ledger: Option<PathBuf>,
    /// The application deduplicates by transaction id: a repeated id is acknowledged but has
    /// no second effect.
    #[arg(long)]
    dedupe: bool,
    /// The secret the node sends with each notification; the application refuses
    /// notifications without it. Default: a random one, made at start.
    #[arg(long, value_name = "TOKEN")]
    app_token: Option<String>,
}

/// Runs until Ctrl-C, then prints the ledger.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(serve(args))
}

/// A random token from the operating system (live mode only).
fn random_token() -> anyhow::Result<String> {
    use std::io::Read as _;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("cannot read /dev/urandom for the application token; pass --app-token")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The built-in application, ready to run: its listener, its ledger and how to describe it.
struct BuiltIn {
    app: Arc<Backend>,
    listener: TcpListen,
    ledger: Ledger,
    banner: String,
}

/// Where the node sends notifications, and the built-in application if it is the one.
async fn application(
    args: &Args,
    disk: &DiskStore,
    token: &str,
    app_max_size: u64,
    clock: probe::Clock,
) -> anyhow::Result<(String, Option<BuiltIn>)> {
    if let Some(url) = &args.app_url {
        transport::url::parse(url).map_err(|e| anyhow::anyhow!("--app-url {url:?}: {e}"))?;
        anyhow::ensure!(
            !matches!(args.notification, Notification::None),
            "--app-url needs --notification by-value or by-reference"
        );
        return Ok((url.clone(), None));
    }
    let listener = TcpListen::bind(&args.backend_listen)
        .await
        .with_context(|| format!("cannot listen on --backend-listen {}", args.backend_listen))?;
    let addr = listener.local_addr();
    let ledger_path = args
        .ledger
        .clone()
        .unwrap_or_else(|| disk.root().join(SESSIONS_DIR).join("ledger.jsonl"));
    let ledger = Ledger::open(&ledger_path, args.dedupe)?;
    let app = Backend::new(
        BackendConfig {
            name: "backend".into(),
            reply: args.upload_reply,
            max_body: app_max_size,
            token: Some(token.to_owned()),
            ..BackendConfig::default()
        },
        ledger.clone(),
        backend::Env {
            files: Arc::new(scenario::stores::DiskFiles::of_one(disk.clone())),
            probe: probe::none(),
            clock,
        },
    );
    let banner = format!(
        "  application      http://{addr}/bits/notify\n  ledger           http://{addr}/ledger   ({}, {} deliveries recovered)\n  dedupe           {}\n",
        ledger_path.display(),
        ledger.len(),
        if args.dedupe { "on" } else { "off" },
    );
    Ok((
        format!("http://{addr}/bits/notify"),
        Some(BuiltIn {
            app,
            listener,
            ledger,
            banner,
        }),
    ))
}

async fn serve(args: Args) -> anyhow::Result<ExitCode> {
    let fd_limit = transport::tcp::raise_fd_limit();
    let max_connections = args
        .max_connections
        .unwrap_or_else(|| fd_limit.map_or(256, |n| (n.saturating_sub(64) / 4).max(16)) as usize);
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            Some(transport::tls::server_config(cert, key).map_err(|e| anyhow::anyhow!("{e}"))?)
        }
        _ => None,
    };
    let basic_auth = args
        .require_user
        .as_deref()
        .map(|u| crate::flags::credentials("--require-user", u))
        .transpose()?;
    let tcp_listener = TcpListen::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on --listen {}", args.listen))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let node_listener: Box<dyn Listen> = match tls {
        Some(config) => Box::new(transport::tls::TlsListen::new(
            Box::new(tcp_listener),
            config,
        )),
        None => Box::new(tcp_listener),
    };
    let control_listener = match &args.control {
        Some(addr) => Some(
            TcpListen::bind(addr)
                .await
                .with_context(|| format!("cannot listen on --control {addr}"))?,
        ),
        None => None,
    };
    let node_addr = node_listener.local_addr();

    // The upload root holds the ledger even when sessions are volatile.
    let disk = DiskStore::open(&args.upload_root)
        .with_context(|| format!("cannot use --upload-root {}", args.upload_root.display()))?;
    let (store, files_note): (Arc<dyn Storage>, String) = if args.volatile {
        (
            Arc::new(MemStore::new("bitsfarm")),
            "in memory (--volatile)".into(),
        )
    } else {
        let note = disk.root().display().to_string();
        (Arc::new(disk.clone()), note)
    };
    let notification: NotificationType = args.notification.into();
    if args.volatile && notification == NotificationType::ByReference {
        anyhow::bail!(
            "--notification by-reference needs files the application can open; drop --volatile"
        );
    }
    let token = match &args.app_token {
        Some(t) => t.clone(),
        None => random_token()?,
    };
    let app_max_size = args.app_max_size.unwrap_or(u64::MAX);
    let clock = live::clock();
    let (notification_url, built_in) =
        application(&args, &disk, &token, app_max_size, clock).await?;
    let cfg = NodeConfig {
        name: "node".into(),
        basic_auth,
        host_id: args.host_id.clone(),
        host_id_fallback_timeout_s: args.fallback_timeout_s,
        session_timeout_s: args.session_timeout_s,
        cleanup_interval_s: args.cleanup_interval_s,
        // The application's own limit is checked at the first fragment, like
        // BITSMaximumUploadSize: refused at once, not after the whole upload was sent.
        max_upload_size: if notification == NotificationType::None {
            args.max_upload_size
        } else {
            args.max_upload_size.min(app_max_size)
        },
        max_fragment_size: args.max_fragment_size,
        notification,
        notification_url: (notification != NotificationType::None).then_some(notification_url),
        app_deadline_s: args.app_deadline_s,
        upload_reply: args.upload_reply,
        allow_overwrites: args.allow_overwrites,
        idle_timeout_s: args.idle_timeout_s,
        min_bytes_per_s: args.min_bytes_per_s,
        max_buffered_bytes: args.max_buffered_bytes,
        max_sessions: Some(args.max_sessions),
        max_session_bytes: Some(args.max_session_bytes.unwrap_or(if args.volatile {
            1 << 30
        } else {
            8 << 30
        })),
        empty_session_timeout_s: Some(args.empty_session_timeout_s),
        max_connections: Some(max_connections),
        app_token: Some(token),
        ..NodeConfig::default()
    };
    // The node's own ledger reads each delivered upload back to hash it: kept only when
    // someone can look at it (--control, or --app-url, whose ledger is printed at exit).
    let log = NotificationLog::new(store.clone(), clock, probe::none());
    let node_probe: probe::SharedProbe = if args.control.is_some() || args.app_url.is_some() {
        log.clone()
    } else {
        probe::none()
    };
    let node = Node::new(
        cfg,
        node::Env {
            store,
            connector: Arc::new(TcpConnect),
            probe: node_probe,
            rng: ChaCha8Rng::seed_from_u64(live::entropy_seed()),
            clock,
        },
    )
    .context("invalid node settings")?;

    // The banner is best effort: a server must not die because whoever started it stopped
    // reading its output.
    let host_id = match &args.host_id {
        Some(h) => format!("{h} (fallback {} s)", args.fallback_timeout_s),
        None => "unset".into(),
    };
    let app_banner = match (&built_in, &args.app_url) {
        (Some(b), _) => b.banner.clone(),
        (None, Some(url)) => format!("  application      {url}   (yours)\n"),
        (None, None) => String::new(),
    };
    let control_banner = control_listener
        .as_ref()
        .map(|l| format!("  node's ledger    http://{}/ledger\n", l.local_addr()))
        .unwrap_or_default();
    let banner = format!(
        "bitsfarm serve\n  BITS node        {scheme}://{node_addr}/<any path>   (sessions: {files_note}; notification: {})\n{app_banner}{control_banner}  BITSHostId       {host_id}\n  limits           {max_connections} connections, {} sessions\nCtrl-C stops and prints the ledger. Logs: RUST_LOG=debug for every packet.\n",
        notification.name(),
        args.max_sessions,
    );
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(banner.as_bytes());
        let _ = out.flush();
    }

    let node_task = tokio::spawn(node.run(node_listener));
    let (app_task, app_ledger) = match built_in {
        Some(b) => (
            Some(tokio::spawn(b.app.run(Box::new(b.listener)))),
            Some(b.ledger),
        ),
        None => (None, None),
    };
    let control_task = control_listener.map(|l| {
        tokio::spawn(crate::control::serve(
            l,
            crate::control::Api::Node(log.clone()),
        ))
    });
    let app_stopped = async {
        match app_task {
            Some(t) => t.await,
            None => std::future::pending().await,
        }
    };
    let control_stopped = async {
        match control_task {
            Some(t) => t.await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        biased;
        r = tokio::signal::ctrl_c() => r.context("cannot wait for Ctrl-C")?,
        r = node_task => anyhow::bail!("the node stopped: {:?}", r),
        r = app_stopped => anyhow::bail!("the application stopped: {:?}", r),
        r = control_stopped => anyhow::bail!("the control server stopped: {:?}", r),
    }
    {
        use std::io::Write as _;
        let json = match &app_ledger {
            Some(l) => serde_json::to_string_pretty(&l.snapshot())?,
            None => serde_json::to_string_pretty(&log.snapshot())?,
        };
        let _ = writeln!(std::io::stdout(), "{json}");
    }
    Ok(ExitCode::SUCCESS)
}
