//! The transport seam: how bitsfarm's actors open and accept connections, and the hyper 1.x
//! glue that speaks HTTP/1.1 over them.
//!
//! Actors (node, backend, client) are written against [`Connect`] and [`Listen`], whose streams
//! are any `AsyncRead + AsyncWrite` ([`Io`]). [`tcp`] implements them over real sockets; the
//! simulator implements them over in-memory pipes. Nothing here reads the OS clock: timeouts are
//! tokio timers, which a simulation pauses and advances.
//!
//! **Invariant:** the same [`server::serve`] and [`client::HttpConn`] code runs on both
//! transports; there is no simulation-only HTTP path.

pub mod auth;
pub mod body;
pub mod client;
pub mod mem;
pub mod server;
pub mod tcp;
pub mod tls;
pub mod url;

use std::{future::Future, io, pin::Pin};

use tokio::io::{AsyncRead, AsyncWrite};

pub use body::{Body, ChunkSource, file_chunks, file_chunks_at};
pub use client::{Error, HttpConn};

/// A byte stream an actor can speak HTTP over.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A boxed [`Io`].
pub type BoxIo = Box<dyn Io>;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One accepted connection.
pub struct Accepted {
    /// The stream.
    pub io: BoxIo,
    /// Who connected (`127.0.0.1:50123`, or a simulated party's name).
    pub peer: String,
    /// The connection's number, unique per listener (in a simulation: per run).
    pub conn: u64,
}

/// Accepts connections for one server.
pub trait Listen: Send {
    /// Waits for the next connection.
    fn accept(&mut self) -> BoxFuture<'_, io::Result<Accepted>>;

    /// The address clients dial (`127.0.0.1:8080`, `node-2`).
    fn local_addr(&self) -> String;
}

/// Opens connections on behalf of one party.
pub trait Connect: Send + Sync {
    /// Opens a connection to `authority` (`host[:port]`). May wait as long as the network makes
    /// it wait (a silent host); callers bound it with their connect timeout.
    fn connect<'a>(&'a self, authority: &'a str) -> BoxFuture<'a, io::Result<BoxIo>>;
}
