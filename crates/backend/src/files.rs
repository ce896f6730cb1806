//! The seam through which the application reads uploads and writes replies named by path
//! (notification by reference).
//!
//! There is deliberately no "any local path" implementation: a path comes from a request, and
//! an application that opened whatever it names would read and write files for anyone who can
//! reach its port. `bitsfarm serve` resolves paths to its node's own session files only; the
//! simulator to its nodes' simulated disks.

use std::io;

use bytes::Bytes;

/// Reads and writes files named by the paths a node gives.
pub trait Files: Send + Sync + 'static {
    /// Streams the whole file to `each`, one piece at a time; returns its length.
    fn read(&self, path: &str, each: &mut dyn FnMut(&[u8])) -> io::Result<u64>;
    /// The file's digest, if whoever wrote it kept one as it was written (the simulator's
    /// disks do): what [`Files::read`] through a `protocol::txid::Digest` would give, without
    /// reading the bytes again. `None`: read them.
    fn digest(&self, path: &str) -> Option<protocol::txid::Digested> {
        let _ = path;
        None
    }
    /// Creates or replaces the file.
    fn write(&self, path: &str, data: Bytes) -> io::Result<()>;
}
