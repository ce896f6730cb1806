//! `bitsfarm farm`: a scenario's farm live, on loopback sockets in real time, with the
//! scenario's fault rules carried out on the real tasks.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use report::runs::RunKind;

use anyhow::Context as _;

use crate::out::{out, outln};

/// Flags of `bitsfarm farm`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
The same farm as `bitsfarm scenario`, on real sockets. The shared address (--listen) balances
per connection with the scenario's policy; node i listens on the port i above it and the
built-in application on the next, each behind a front: a crash resets (kill) or silences
(power cut) its open connections and closes its port until it restarts. drop-response cuts
the node's side of the connection, a partition silences connections between a node and the
application (not with a client: the balancer cannot tell whose connection it forwards).

With --clients the scenario's clients (bitsfarm's) upload and the run ends when they are done;
without, the farm serves outside clients (bitsadmin, Start-BitsTransfer, `bitsfarm upload`)
until Ctrl-C, POST /stop or --timeout-s, and follows every file they upload (the scenario's
expectations are about its own clients: only the invariants are checked). Each node's
BITS-Host-Id is its address as --advertise names this machine. Timers run in real time:
shorten them with --set (clients.retry_delay_s=5, farm.fallback_timeout_s=20,
fault[0].restart_after_s=30). The reports are those of a simulated run, from the live event
log. --app-url puts your own application in the built-in one's place.

The control API (--control) lists the hosts, crashes and restarts them, adds and removes fault
rules while the farm runs (each is a rule of the run, so the report explains what it caused),
serves the nodes' notification ledger and the event log, and stops the run (POST /stop).")]
pub struct Args {
    /// Scenario name or path.
    scenario: String,
    /// Change a key of the scenario: `--set clients.retry_delay_s=5` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Run the scenario's clients against the farm; without it, serve outside clients until
    /// Ctrl-C (or --timeout-s).
    #[arg(long)]
    clients: bool,
    /// Your own server application: the nodes notify it at URL (by value) instead of the
    /// built-in one, and its 2xx answers count as deliveries (their bytes cannot be compared).
    #[arg(long, value_name = "URL")]
    app_url: Option<String>,
    /// The shared address (where clients upload). Node i listens on the port i above it, the
    /// built-in application on the next (port 0: free ports). 0.0.0.0:8080 lets clients on
    /// other machines in.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    listen: std::net::SocketAddr,
    /// The name or IP clients reach this machine by, for the nodes' BITS-Host-Id (default:
    /// the --listen IP, or this machine's name with 0.0.0.0).
    #[arg(long, value_name = "HOST")]
    advertise: Option<String>,
    /// Serve HTTPS on every node with this PEM certificate chain (and --tls-key); the shared
    /// address forwards TLS connections whole, as an L4 balancer does.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Keep the nodes' sessions on disk under DIR (node-1/, node-2/, ...: durable state that
    /// survives a crash for real, files a by-reference application can open) instead of in
    /// memory.
    #[arg(long, value_name = "DIR")]
    upload_root: Option<PathBuf>,
    /// The control API (JSON over HTTP: GET /nodes, POST /nodes/{name}/crash, POST /faults,
    /// GET /ledger, POST /stop, ...; see the README), or `none`.
    #[arg(long, default_value = "127.0.0.1:8079", value_name = "ADDR|none")]
    control: String,
    /// Longest the run may take, seconds of real time.
    #[arg(long, default_value_t = 600, value_name = "S")]
    timeout_s: u64,
    /// Print the addresses as one JSON line first, and the summary as JSON at the end.
    #[arg(long)]
    json: bool,
    /// Check the scenario's expectations even when --set changed its settings (a what-if run
    /// otherwise lists them as not checked, as `scenario` does).
    #[arg(long)]
    expect: bool,
    /// Report directory (default: a new reports/<scenario>/<time>-live/).
    #[arg(short, long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// Runs the farm live.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let sets = super::scenario::overrides(&args.set)?;
    let mut sc =
        scenario::catalog::find(&args.scenario, &sets).map_err(|e| anyhow::anyhow!("{e}"))?;
    anyhow::ensure!(
        sc.workload.is_none() && sc.failures.is_empty(),
        "{}: [workload] and [[failure]] run on the simulated farm only (a week of traffic in seconds): use `bitsfarm scenario {}`; the live farm runs [clients] and [[fault]] rules",
        sc.name,
        args.scenario
    );
    // A what-if run: the expectations were written for the settings it changed.
    if !sets.is_empty() && !args.expect {
        sc.set_expectations_aside();
    }
    if !args.clients {
        // Outside clients only: the scenario's own do not run, and its expectations, which
        // are about them, are not checked (the invariants are).
        sc.clients.count = 0;
        sc.expect.clear();
        sc.unchecked_expect.clear();
    }
    if let Some(url) = &args.app_url {
        let target =
            transport::url::parse(url).map_err(|e| anyhow::anyhow!("--app-url {url:?}: {e}"))?;
        anyhow::ensure!(
            target.authority.parse::<std::net::SocketAddr>().is_ok(),
            "--app-url {url:?}: give the application as IP:port (http://127.0.0.1:5000/notify)"
        );
        match sc.farm.notification {
            // An application is notified: by value unless the scenario says by reference.
            node::NotificationType::None => sc.farm.notification = node::NotificationType::ByValue,
            node::NotificationType::ByReference => anyhow::ensure!(
                args.upload_root.is_some(),
                "--app-url with by-reference notification gives your application file paths: add --upload-root DIR so the sessions are files it can open (or --set farm.notification=by-value)"
            ),
            node::NotificationType::ByValue => {}
        }
    }
    if let Some(root) = &args.upload_root {
        std::fs::create_dir_all(root)
            .with_context(|| format!("cannot use --upload-root {}", root.display()))?;
        // A farm's nodes start empty: never mix in (or delete) what a directory holds.
        let used = std::fs::read_dir(root)
            .with_context(|| format!("cannot use --upload-root {}", root.display()))?
            .next()
            .is_some();
        anyhow::ensure!(
            !used,
            "--upload-root {} is not empty (a previous farm's sessions?): give a new or empty directory",
            root.display()
        );
    }
    let unsupported = scenario::live::unsupported(&sc);
    anyhow::ensure!(unsupported.is_empty(), "{}", unsupported.join("; "));
    let started = crate::kept::now_unix_s();
    let dir = crate::kept::run_dir(args.out.as_deref(), &sc.name, started, "live", &args.set)?;
    let seed = crate::live::entropy_seed();
    // The same farm again (real time: not the same run).
    let mut replay = format!("bitsfarm farm {}", args.scenario);
    if args.clients {
        replay.push_str(" --clients");
    }
    for s in &args.set {
        replay.push_str(&format!(" --set {s}"));
    }
    let control_at: Option<std::net::SocketAddr> = match args.control.as_str() {
        "none" => None,
        a => Some(a.parse().map_err(|_| {
            anyhow::anyhow!("--control {a:?}: give IP:port (127.0.0.1:8079) or none")
        })?),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let json = args.json;
    let summary = rt.block_on(async {
        let timeout = Duration::from_secs(args.timeout_s);
        let layout = scenario::live::Layout {
            shared: args.listen,
            nodes: sc.farm.nodes,
            app: args.app_url.is_none(),
            advertise: args.advertise.clone(),
        };
        let net = scenario::live::LiveNet::bind(&layout)?;
        if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
            let server =
                transport::tls::server_config(cert, key).map_err(|e| anyhow::anyhow!("{e}"))?;
            net.serve_tls(server)?;
        }
        let scheme = if args.tls_cert.is_some() {
            "https"
        } else {
            "http"
        };
        let control_listener = match control_at {
            Some(at) => Some(
                transport::tcp::TcpListen::bind(&at.to_string())
                    .await
                    .with_context(|| format!("cannot listen on --control {at}"))?,
            ),
            None => None,
        };
        let control_addr = control_listener.as_ref().map(transport::Listen::local_addr);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        // Ctrl-C or POST /stop.
        let stopped = move || {
            let mut stop_rx = stop_rx.clone();
            async move {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = stop_rx.wait_for(|s| *s) => {}
                }
            }
        };
        // Outside clients: serve until stopped or the timeout, either a normal end. The
        // scenario's clients: stopping early ends the run before they are done.
        let (hold, stop): (Option<scenario::live::Hold>, Option<scenario::live::Hold>) =
            if args.clients {
                (None, Some(Box::pin(stopped())))
            } else {
                let stopped = stopped();
                (
                    Some(Box::pin(async move {
                        tokio::select! {
                            () = stopped => {}
                            () = tokio::time::sleep(timeout) => {}
                        }
                    })),
                    None,
                )
            };
        let (slot, handed) = tokio::sync::oneshot::channel();
        if let Some(listener) = control_listener {
            let events = dir.join("events.jsonl");
            tokio::spawn(async move {
                if let Ok(control) = handed.await {
                    let api =
                        crate::control::Api::Farm(std::sync::Arc::new(crate::control::FarmApi {
                            control,
                            events,
                            stop: stop_tx,
                        }));
                    if let Err(e) = crate::control::serve(listener, api).await {
                        tracing::warn!(error = %e, "the control API stopped");
                    }
                }
            });
        }
        let deadline = if args.clients {
            timeout
        } else {
            timeout + Duration::from_secs(60)
        };
        let announce = net.clone();
        tokio::spawn(async move {
            announce.ready().await;
            let addrs = announce.addresses();
            if json {
                let nodes: serde_json::Map<String, serde_json::Value> = addrs
                    .iter()
                    .filter(|(n, _)| n.starts_with("node-"))
                    .map(|(n, a)| (n.clone(), a.clone().into()))
                    .collect();
                let line = serde_json::json!({
                    "shared": addrs.get(scenario::farm::SHARED),
                    "nodes": nodes,
                    "app": addrs.get(scenario::farm::BACKEND),
                    "control": control_addr.map(|a| a.to_string()),
                });
                outln!("{line}");
            } else {
                let mut banner = String::from("bitsfarm farm\n");
                for (name, addr) in &addrs {
                    let scheme = if name == scenario::farm::BACKEND {
                        "http"
                    } else {
                        scheme
                    };
                    banner.push_str(&format!("  {name:<16} {scheme}://{addr}/\n"));
                }
                if let Some(addr) = control_addr {
                    banner.push_str(&format!("  {:<16} http://{addr}/nodes\n", "control API"));
                }
                out!(
                    "{banner}Upload to the farm's address; Ctrl-C stops and writes the reports.\n"
                );
            }
        });
        let extras = scenario::live::Extras {
            hold,
            app_url: args.app_url.clone(),
            control: control_at.map(|_| slot),
            stop,
            upload_root: args.upload_root.clone(),
        };
        report::live_into(&sc, seed, replay, &dir, deadline, net, extras)
            .await
            .with_context(|| format!("cannot write the reports into {}", dir.display()))
    })?;
    crate::kept::record(
        &dir,
        crate::kept::of_summary(RunKind::Live, started, &args.set, &summary),
    );
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        out!("{}", summary.to_text());
        outln!("report: {}", dir.join("report.html").display());
    }
    Ok(if summary.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
