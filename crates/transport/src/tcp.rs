//! The transport seam over real TCP sockets.

use std::{io, time::Duration};

use tokio::net::{TcpListener, TcpStream};

use crate::{Accepted, BoxFuture, BoxIo, Connect, Listen};

/// Accepts TCP connections.
pub struct TcpListen {
    inner: TcpListener,
    addr: String,
    next_conn: u64,
    accept_errors: u64,
    hook: Option<AcceptHook>,
}

/// Numbers and wraps each accepted connection instead of the listener (the live farm keeps a
/// handle on every connection so that a fault can cut it).
pub type AcceptHook = Box<dyn Fn(TcpStream) -> (BoxIo, u64) + Send + Sync>;

impl TcpListen {
    /// Binds `addr` (`127.0.0.1:0` picks a free port).
    pub async fn bind(addr: &str) -> io::Result<TcpListen> {
        let inner = TcpListener::bind(addr).await?;
        let addr = inner.local_addr()?.to_string();
        Ok(TcpListen {
            inner,
            addr,
            next_conn: 0,
            accept_errors: 0,
            hook: None,
        })
    }
}

impl TcpListen {
    /// Hands every accepted connection to `hook`, which numbers and wraps it.
    pub fn with_hook(mut self, hook: AcceptHook) -> TcpListen {
        self.hook = Some(hook);
        self
    }

    /// Accepts on a listener bound already.
    pub fn from_tokio(inner: TcpListener) -> TcpListen {
        let addr = inner
            .local_addr()
            .map_or_else(|_| "unknown".to_owned(), |a| a.to_string());
        TcpListen {
            inner,
            addr,
            next_conn: 0,
            accept_errors: 0,
            hook: None,
        }
    }
}

impl Listen for TcpListen {
    /// Waits for the next connection. An error that concerns one connection or a passing lack
    /// of resources (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`, `ECONNABORTED`, ...) is logged and
    /// waited out (10 ms, doubling to 1 s while it lasts): a server must not stop because a
    /// peer opened too many connections. Only an error of the listening socket itself ends it.
    fn accept(&mut self) -> BoxFuture<'_, io::Result<Accepted>> {
        Box::pin(async move {
            let (stream, peer) =
                accept_patiently(&self.inner, &self.addr, &mut self.accept_errors).await?;
            // A peer that already reset makes these fail; the connection then fails on its
            // own, the listener does not.
            let _ = stream.set_nodelay(true);
            let _ = keepalive(&stream);
            let (io, conn): (BoxIo, u64) = match &self.hook {
                Some(hook) => hook(stream),
                None => {
                    self.next_conn += 1;
                    (Box::new(stream), self.next_conn)
                }
            };
            Ok(Accepted {
                io,
                peer: peer.to_string(),
                conn,
            })
        })
    }

    fn local_addr(&self) -> String {
        self.addr.clone()
    }
}

/// Whether an accept error means the listening socket itself is unusable (rather than one
/// connection, or resources that will come back).
fn listener_is_broken(e: &io::Error) -> bool {
    use rustix::io::Errno;
    let errno = e.raw_os_error().map(Errno::from_raw_os_error);
    matches!(
        errno,
        Some(Errno::BADF | Errno::INVAL | Errno::NOTSOCK | Errno::OPNOTSUPP | Errno::FAULT)
    )
}

/// TCP keepalive on an accepted connection, so a peer that vanished (a half-open connection
/// after a Wi-Fi drop or a NAT timeout) is noticed in about two minutes even while the server
/// waits for its body.
fn keepalive(stream: &TcpStream) -> io::Result<()> {
    use rustix::net::sockopt;
    sockopt::set_socket_keepalive(stream, true)?;
    sockopt::set_tcp_keepidle(stream, Duration::from_secs(60))?;
    sockopt::set_tcp_keepintvl(stream, Duration::from_secs(10))?;
    sockopt::set_tcp_keepcnt(stream, 6)?;
    Ok(())
}

/// The soft limit on open file descriptors of this process (`RLIMIT_NOFILE`), if known.
pub fn fd_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

/// Raises the soft limit on open file descriptors to the hard limit; returns the new soft
/// limit. Servers call it at start, as most network daemons do.
pub fn raise_fd_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut l = getrlimit(Resource::Nofile);
    if l.current != l.maximum {
        l.current = l.maximum;
        let _ = setrlimit(Resource::Nofile, l);
    }
    fd_limit()
}

/// Accepts the next connection on `listener`, waiting out errors that concern one connection or
/// a passing lack of resources (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`, `ECONNABORTED`, ...:
/// logged, 10 ms doubling to 1 s while they last); only an error of the listening socket
/// itself is returned. `errors` counts the errors waited out (logged at powers of two).
pub async fn accept_patiently(
    listener: &TcpListener,
    addr: &str,
    errors: &mut u64,
) -> io::Result<(TcpStream, std::net::SocketAddr)> {
    let mut backoff = Duration::from_millis(10);
    loop {
        match listener.accept().await {
            Ok(accepted) => return Ok(accepted),
            Err(e) if listener_is_broken(&e) => return Err(e),
            Err(e) => {
                *errors += 1;
                if errors.is_power_of_two() {
                    tracing::warn!(addr, error = %e, errors = *errors,
                        "cannot accept a connection; waiting and trying again");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Opens TCP connections; an authority without a port means port 80.
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpConnect;

impl Connect for TcpConnect {
    fn connect<'a>(&'a self, authority: &'a str) -> BoxFuture<'a, io::Result<BoxIo>> {
        Box::pin(async move {
            let stream = if has_port(authority) {
                TcpStream::connect(authority).await?
            } else {
                TcpStream::connect((authority.trim_matches(['[', ']']), 80)).await?
            };
            stream.set_nodelay(true)?;
            Ok(Box::new(stream) as BoxIo)
        })
    }
}

/// Whether an authority names a port (`host:80`, `[::1]:80`; not `host`, `[::1]`).
pub(crate) fn has_port(authority: &str) -> bool {
    let tail = authority.rsplit_once(']').map_or(authority, |(_, t)| t);
    tail.rsplit_once(':')
        .is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}
