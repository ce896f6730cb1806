//! `bitsfarm serve`: one BITS node and the server application on real sockets, for real BITS
//! clients (bitsadmin, Start-BitsTransfer, `bitsfarm upload`, curl).

use std::{path::PathBuf, process::ExitCode, sync::Arc};

use anyhow::Context as _;
use backend::{Backend, BackendConfig, Ledger, LocalFiles};
use clap::ValueEnum;
use node::{DiskStore, MemStore, Node, NodeConfig, NotificationType, Storage};
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
GET http://<backend addr>/ledger and is printed to stdout on Ctrl-C.

Example, from a Windows machine that can reach this one:
  bitsadmin /transfer t /upload http://HOST:8080/upload/a.bin C:\\a.bin
or with bitsfarm's own client:
  bitsfarm upload ./a.bin http://127.0.0.1:8080/upload/a.bin --transaction-id")]
pub struct Args {
    /// Address the BITS node listens on.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    listen: String,
    /// Address the server application listens on.
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
    /// BITSSessionTimeout, seconds without progress before a session is deleted.
    #[arg(long, default_value_t = 1_209_600, value_name = "N")]
    session_timeout_s: u64,
    /// Seconds the application may take before the node gives up on it.
    #[arg(long, default_value_t = 300, value_name = "N")]
    app_deadline_s: u64,
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
    /// The application deduplicates by transaction id: a repeated id is acknowledged but has
    /// no second effect.
    #[arg(long)]
    dedupe: bool,
}

/// Runs until Ctrl-C, then prints the ledger.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<ExitCode> {
    let app_listener = TcpListen::bind(&args.backend_listen)
        .await
        .with_context(|| format!("cannot listen on --backend-listen {}", args.backend_listen))?;
    let node_listener = TcpListen::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on --listen {}", args.listen))?;
    let app_addr = app_listener.local_addr();
    let node_addr = node_listener.local_addr();

    let (store, files_note): (Arc<dyn Storage>, String) = if args.volatile {
        (
            Arc::new(MemStore::new("bitsfarm")),
            "in memory (--volatile)".into(),
        )
    } else {
        let disk = DiskStore::open(&args.upload_root)
            .with_context(|| format!("cannot use --upload-root {}", args.upload_root.display()))?;
        let note = disk.root().display().to_string();
        (Arc::new(disk), note)
    };
    let notification: NotificationType = args.notification.into();
    if args.volatile && notification == NotificationType::ByReference {
        anyhow::bail!(
            "--notification by-reference needs files the application can open; drop --volatile"
        );
    }
    let cfg = NodeConfig {
        name: "node".into(),
        host_id: args.host_id.clone(),
        host_id_fallback_timeout_s: args.fallback_timeout_s,
        session_timeout_s: args.session_timeout_s,
        max_upload_size: args.max_upload_size,
        notification,
        notification_url: (notification != NotificationType::None)
            .then(|| format!("http://{app_addr}/bits/notify")),
        app_deadline_s: args.app_deadline_s,
        upload_reply: args.upload_reply,
        allow_overwrites: args.allow_overwrites,
        ..NodeConfig::default()
    };
    let clock = live::clock();
    let node = Node::new(
        cfg,
        node::Env {
            store,
            connector: Arc::new(TcpConnect),
            probe: probe::none(),
            rng: ChaCha8Rng::seed_from_u64(live::entropy_seed()),
            clock,
        },
    )
    .context("invalid node settings")?;
    let ledger = Ledger::new(args.dedupe);
    let app = Backend::new(
        BackendConfig {
            name: "backend".into(),
            reply: args.upload_reply,
            ..BackendConfig::default()
        },
        ledger.clone(),
        backend::Env {
            files: Arc::new(LocalFiles),
            probe: probe::none(),
            clock,
        },
    );

    // The banner is best effort: a server must not die because whoever started it stopped
    // reading its output.
    let host_id = match &args.host_id {
        Some(h) => format!("{h} (fallback {} s)", args.fallback_timeout_s),
        None => "unset".into(),
    };
    let banner = format!(
        "bitsfarm serve\n  BITS node        http://{node_addr}/<any path>   (sessions: {files_note})\n  application      http://{app_addr}/bits/notify   (notification: {})\n  ledger           http://{app_addr}/ledger\n  BITSHostId       {host_id}\n  dedupe           {}\nCtrl-C stops and prints the ledger. Logs: RUST_LOG=debug for every packet.\n",
        notification.name(),
        if args.dedupe { "on" } else { "off" }
    );
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(banner.as_bytes());
        let _ = out.flush();
    }

    let node_task = tokio::spawn(node.run(Box::new(node_listener)));
    let app_task = tokio::spawn(app.run(Box::new(app_listener)));
    tokio::select! {
        biased;
        r = tokio::signal::ctrl_c() => r.context("cannot wait for Ctrl-C")?,
        r = node_task => anyhow::bail!("the node stopped: {:?}", r),
        r = app_task => anyhow::bail!("the application stopped: {:?}", r),
    }
    {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stdout(),
            "{}",
            serde_json::to_string_pretty(&ledger.snapshot())?
        );
    }
    Ok(ExitCode::SUCCESS)
}
