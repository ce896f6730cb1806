//! The transport seam over real TCP sockets.

use std::io;

use tokio::net::{TcpListener, TcpStream};

use crate::{Accepted, BoxFuture, BoxIo, Connect, Listen};

/// Accepts TCP connections.
pub struct TcpListen {
    inner: TcpListener,
    addr: String,
    next_conn: u64,
}

impl TcpListen {
    /// Binds `addr` (`127.0.0.1:0` picks a free port).
    pub async fn bind(addr: &str) -> io::Result<TcpListen> {
        let inner = TcpListener::bind(addr).await?;
        let addr = inner.local_addr()?.to_string();
        Ok(TcpListen {
            inner,
            addr,
            next_conn: 0,
        })
    }
}

impl Listen for TcpListen {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<Accepted>> {
        Box::pin(async move {
            let (stream, peer) = self.inner.accept().await?;
            stream.set_nodelay(true)?;
            self.next_conn += 1;
            Ok(Accepted {
                io: Box::new(stream),
                peer: peer.to_string(),
                conn: self.next_conn,
            })
        })
    }

    fn local_addr(&self) -> String {
        self.addr.clone()
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

fn has_port(authority: &str) -> bool {
    let tail = authority.rsplit_once(']').map_or(authority, |(_, t)| t);
    tail.rsplit_once(':')
        .is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}
