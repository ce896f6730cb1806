//! The seam through which the application reads uploads and writes replies named by path
//! (notification by reference).

use std::io;

use bytes::Bytes;

/// Reads and writes files named by the paths a node gives.
pub trait Files: Send + Sync + 'static {
    /// The whole file.
    fn read(&self, path: &str) -> io::Result<Vec<Bytes>>;
    /// Creates or replaces the file.
    fn write(&self, path: &str, data: Bytes) -> io::Result<()>;
}

/// The local file system: node and application on one machine (`bitsfarm serve`).
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalFiles;

impl Files for LocalFiles {
    fn read(&self, path: &str) -> io::Result<Vec<Bytes>> {
        Ok(vec![Bytes::from(std::fs::read(path)?)])
    }

    fn write(&self, path: &str, data: Bytes) -> io::Result<()> {
        std::fs::write(path, data)
    }
}
