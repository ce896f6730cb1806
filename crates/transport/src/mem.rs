//! Connections over in-memory pipes (`tokio::io::duplex`) to a listener in the same runtime:
//! for tests and fuzzing that drive an actor without sockets, on a paused clock if they like.
//! (The simulator has its own network with latency, crashes and partitions: `sim::net`.)

use std::io;

use tokio::sync::mpsc;

use crate::{Accepted, BoxFuture, BoxIo, Connect, Listen};

/// Bytes buffered per direction of one connection.
const PIPE_BYTES: usize = 256 << 10;

/// Opens connections to the paired [`MemListen`], whatever authority it is asked for.
#[derive(Clone)]
pub struct MemConnect(mpsc::UnboundedSender<BoxIo>);

/// Accepts the connections of the paired [`MemConnect`]s.
pub struct MemListen {
    rx: mpsc::UnboundedReceiver<BoxIo>,
    next: u64,
    name: String,
}

/// A connector and the listener it reaches; `name` is the listener's address.
pub fn pair(name: &str) -> (MemConnect, MemListen) {
    let (tx, rx) = mpsc::unbounded_channel();
    (
        MemConnect(tx),
        MemListen {
            rx,
            next: 0,
            name: name.to_owned(),
        },
    )
}

impl MemConnect {
    /// A new connection (refused once the listener is gone).
    pub fn open(&self) -> io::Result<BoxIo> {
        let (a, b) = tokio::io::duplex(PIPE_BYTES);
        self.0
            .send(Box::new(b))
            .map_err(|_| io::Error::from(io::ErrorKind::ConnectionRefused))?;
        Ok(Box::new(a))
    }
}

impl Connect for MemConnect {
    fn connect<'a>(&'a self, _authority: &'a str) -> BoxFuture<'a, io::Result<BoxIo>> {
        Box::pin(async move { self.open() })
    }
}

impl Listen for MemListen {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<Accepted>> {
        Box::pin(async move {
            let io = self.rx.recv().await.ok_or(io::ErrorKind::NotConnected)?;
            self.next += 1;
            Ok(Accepted {
                io,
                peer: "mem".into(),
                conn: self.next,
            })
        })
    }

    fn local_addr(&self) -> String {
        self.name.clone()
    }
}
