//! `bitsfarm proxy`: a BITS-aware reverse proxy in front of real BITS servers, with fault rules
//! on the protocol steps it sees and deliveries inferred from the wire.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context as _;

use crate::out::outln;

/// Flags of `bitsfarm proxy`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
The proxy is the farm's shared address: each client connection goes to an upstream picked by
--balancer, and upstream i is also served alone on the port i above --listen (port 0: free
ports; --node-listen NAME=ADDR to choose), the address its BITS-Host-Id is rewritten to, so
clients that follow a Host-Id stay inside the proxy. A final fragment answered with success is a delivery of that file by that upstream,
once per session (the same success again in a session is the node's cached Ack).

--faults FILE holds [[fault]] tables: point = \"request\" | \"create-session\" |
\"fragment\" | \"final-fragment-answered\" | \"close-session\"; action = \"drop-response\" (the
upstream processes it, the client never hears) | \"reset\" (closed before forwarding) |
\"fail\" (status = N, not forwarded) | \"delay\" (duration_s) | \"down\" (the upstream
unreachable through the proxy for duration_s: its open client connections are closed, new
ones to its own address closed at once, new ones to the shared address go to the others);
filters upstream, packet, file, nth, times,
probability (seeded by --seed). Ctrl-C or --timeout-s ends it: it writes the reports of a simulated run into --out
(events.jsonl as it happens, summary.json, report.md, report.html: every file it saw, its
deliveries, and a causal chain for each duplicate) and deliveries.json (each delivery with its
upstream, session and the xxh3 of the bytes), and exits as `scenario` does (0: every invariant
held). The control API (--control) lists, adds and removes rules while the proxy runs
(GET/POST/DELETE /faults, a rule as a JSON object with the keys above), serves the deliveries
seen (GET /ledger) and the event log (GET /events), and stops it (POST /stop).")]
pub struct Args {
    /// The shared address clients upload to.
    #[arg(long, default_value = "127.0.0.1:8090", value_name = "ADDR")]
    listen: SocketAddr,
    /// An upstream BITS server: NAME=URL (http:// or https://; repeatable, in order).
    #[arg(long = "upstream", value_name = "NAME=URL", required = true)]
    upstreams: Vec<String>,
    /// Where the proxy serves upstream NAME alone (its rewritten BITS-Host-Id): NAME=ADDR
    /// (repeatable; default: the port i above --listen for the i-th upstream).
    #[arg(long = "node-listen", value_name = "NAME=ADDR")]
    node_listen: Vec<String>,
    /// The name or IP clients reach this machine by, for rewritten Host-Ids (default: the
    /// --listen IP).
    #[arg(long, value_name = "HOST")]
    advertise: Option<String>,
    /// Fault rules: a TOML file of [[fault]] tables.
    #[arg(long, value_name = "FILE")]
    faults: Option<PathBuf>,
    /// How the shared address picks an upstream per connection: round-robin, random,
    /// least-connections, source-affinity.
    #[arg(long, default_value = "round-robin", value_name = "POLICY")]
    balancer: String,
    /// Seed of the random policy and of probability rules (default: from the OS).
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Serve HTTPS on the proxy's addresses with this PEM certificate chain (and --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The control API (GET/POST/DELETE /faults, GET /ledger, GET /events, POST /stop), or
    /// `none`.
    #[arg(long, default_value = "127.0.0.1:8089", value_name = "ADDR|none")]
    control: String,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 3600, value_name = "S")]
    timeout_s: u64,
    /// Print the addresses as one JSON line first, and the summary as JSON at the end.
    #[arg(long)]
    json: bool,
    /// Report directory (default: a new reports/proxy/<time>-live/).
    #[arg(short, long, value_name = "DIR")]
    out: Option<PathBuf>,
    #[command(flatten)]
    reach: crate::flags::Reach,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultFile {
    #[serde(default)]
    fault: Vec<proxy::WireRule>,
}

/// Runs the proxy until Ctrl-C or the timeout.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut upstreams: Vec<(String, String, bool)> = Vec::new();
    for u in &args.upstreams {
        let (name, url) = u
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--upstream {u:?}: give NAME=URL"))?;
        let (target, tls) =
            transport::url::parse_web(url).map_err(|e| anyhow::anyhow!("--upstream {u:?}: {e}"))?;
        anyhow::ensure!(
            !upstreams.iter().any(|(n, _, _)| n == name),
            "--upstream {name}: named twice"
        );
        upstreams.push((name.to_owned(), target.authority, tls));
    }
    let mut node_listen: std::collections::BTreeMap<String, SocketAddr> = Default::default();
    for n in &args.node_listen {
        let (name, at) = n
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--node-listen {n:?}: give NAME=ADDR"))?;
        anyhow::ensure!(
            upstreams.iter().any(|(u, _, _)| u == name),
            "--node-listen {n:?}: no upstream named {name}"
        );
        let at: SocketAddr = at
            .parse()
            .map_err(|_| anyhow::anyhow!("--node-listen {n:?}: give IP:port"))?;
        node_listen.insert(name.to_owned(), at);
    }
    anyhow::ensure!(
        upstreams.iter().all(|(_, _, tls)| *tls == upstreams[0].2),
        "--upstream: give every upstream with the same scheme (all http:// or all https://)"
    );
    let rules = match &args.faults {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --faults {}", path.display()))?;
            toml::from_str::<FaultFile>(&text)
                .map_err(|e| anyhow::anyhow!("--faults {}: {}", path.display(), e.message()))?
                .fault
        }
        None => Vec::new(),
    };
    for (i, r) in rules.iter().enumerate() {
        r.check()
            .map_err(|e| anyhow::anyhow!("--faults: fault[{i}]: {e}"))?;
    }
    let balancer: scenario::spec::Balancer =
        serde_json::from_value(serde_json::Value::String(args.balancer.clone())).map_err(|_| {
            anyhow::anyhow!(
                "--balancer {:?}: round-robin, random, least-connections or source-affinity",
                args.balancer
            )
        })?;
    let seed = args.seed.unwrap_or_else(crate::live::entropy_seed);
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => {
            Some(transport::tls::server_config(c, k).map_err(|e| anyhow::anyhow!("{e}"))?)
        }
        _ => None,
    };
    let scheme_url = if upstreams[0].2 {
        "https://x/"
    } else {
        "http://x/"
    };
    let connector = args.reach.connector(scheme_url)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let json = args.json;
    let started = crate::kept::now_unix_s();
    let dir = crate::kept::run_dir(args.out.as_deref(), "proxy", started, "live", &[])?;
    let events_path = dir.join("events.jsonl");
    let (sink, recording) = report::record_into(&dir)
        .with_context(|| format!("cannot write the reports into {}", dir.display()))?;
    let nodes = upstreams.len().min(64);
    let replay = format!(
        "bitsfarm {}",
        std::env::args().skip(1).collect::<Vec<_>>().join(" ")
    );
    let (seen, result) = rt.block_on(async move {
        let shared = transport::tcp::TcpListen::bind(&args.listen.to_string())
            .await
            .with_context(|| format!("cannot listen on --listen {}", args.listen))?;
        let host = args
            .advertise
            .clone()
            .unwrap_or_else(|| args.listen.ip().to_string());
        let mut pinned = Vec::new();
        let mut list = Vec::new();
        for (i, (name, authority, _)) in upstreams.iter().enumerate() {
            let at = match node_listen.get(name) {
                Some(at) => *at,
                None if args.listen.port() == 0 => SocketAddr::new(args.listen.ip(), 0),
                None => SocketAddr::new(
                    args.listen.ip(),
                    u16::try_from(usize::from(args.listen.port()) + i + 1)
                        .map_err(|_| anyhow::anyhow!("{name} would listen past port 65535"))?,
                ),
            };
            let l = transport::tcp::TcpListen::bind(&at.to_string())
                .await
                .with_context(|| format!("cannot listen on {at} for {name}"))?;
            let bound_port = transport::Listen::local_addr(&l)
                .rsplit(':')
                .next()
                .unwrap_or_default()
                .to_owned();
            list.push(proxy::Upstream {
                name: name.clone(),
                authority: authority.clone(),
                advertised: format!("{host}:{bound_port}"),
            });
            pinned.push(l);
        }
        let shared_addr = transport::Listen::local_addr(&shared);
        let control = match args.control.as_str() {
            "none" => None,
            at => Some(
                transport::tcp::TcpListen::bind(at)
                    .await
                    .with_context(|| format!("cannot listen on --control {at}"))?,
            ),
        };
        let control_addr = control.as_ref().map(transport::Listen::local_addr);
        let p = proxy::Proxy::new(
            list.clone(),
            connector,
            rules,
            (balancer.policy(), seed),
            Duration::from_secs(360),
            Some(sink),
        );
        let wrap = |l: transport::tcp::TcpListen| -> Box<dyn transport::Listen> {
            match &tls {
                Some(config) => {
                    Box::new(transport::tls::TlsListen::new(Box::new(l), config.clone()))
                }
                None => Box::new(l),
            }
        };
        let mut tasks = tokio::task::JoinSet::new();
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        if let Some(listener) = control {
            let api = crate::control::Api::Proxy(std::sync::Arc::new(crate::control::ProxyApi {
                proxy: p.clone(),
                events: events_path,
                stop: stop_tx,
            }));
            tasks.spawn(async move {
                let _ = crate::control::serve(listener, api).await;
                Ok(())
            });
        }
        tasks.spawn(p.clone().serve(wrap(shared), None));
        for (i, l) in pinned.into_iter().enumerate() {
            tasks.spawn(p.clone().serve(wrap(l), Some(i)));
        }
        if json {
            let ups: serde_json::Map<String, serde_json::Value> = list
                .iter()
                .map(|u| (u.name.clone(), u.advertised.clone().into()))
                .collect();
            outln!(
                "{}",
                serde_json::json!({"shared": shared_addr, "upstreams": ups, "control": control_addr})
            );
        } else {
            let mut banner = format!("bitsfarm proxy\n  shared           {shared_addr}\n");
            if let Some(c) = &control_addr {
                banner.push_str(&format!("  control API      http://{c}/faults\n"));
            }
            for u in &list {
                banner.push_str(&format!(
                    "  {:<16} {} → {}\n",
                    u.name, u.advertised, u.authority
                ));
            }
            outln!("{banner}Ctrl-C stops and prints what the proxy saw.");
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = stop_rx.wait_for(|s| *s) => {}
            () = tokio::time::sleep(Duration::from_secs(args.timeout_s)) => {}
        }
        tasks.abort_all();
        anyhow::Ok((p.seen(), p.result()))
    })?;
    // The farm the proxy stands for: its upstreams as nodes.
    let sc = scenario::load_str(
        &format!("name = \"proxy\"\n[farm]\nnodes = {nodes}\n"),
        "proxy",
        "proxy",
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let summary = recording
        .finish(&sc, 0, replay, result)
        .with_context(|| format!("cannot write the reports into {}", dir.display()))?;
    std::fs::write(
        dir.join("deliveries.json"),
        serde_json::to_vec_pretty(&seen)?,
    )
    .with_context(|| format!("cannot write into {}", dir.display()))?;
    crate::kept::record(
        &dir,
        crate::kept::of_summary(report::runs::RunKind::Proxy, started, &[], &summary),
    );
    if json {
        outln!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        crate::out::out!("{}", summary.to_text());
        outln!("report: {}", dir.join("report.html").display());
    }
    Ok(if summary.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
