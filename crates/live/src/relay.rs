//! Forwarding one connection's bytes both ways, as an L4 balancer does.
//!
//! On Linux the bytes go socket → pipe → socket inside the kernel (`splice(2)`): they are never
//! copied into this process and back (docs/performance.md, "The live farm"). Elsewhere, or
//! when a pipe of the size asked for cannot be made (no file descriptor left, the user's pipe
//! memory spent), they go through two buffers in this process (tokio's
//! `copy_bidirectional_with_sizes`). Either way: when one side ends its sending, the other
//! side's sending half is shut down, and the relay ends once both directions have ended, or at
//! the first error.
//!
//! Memory per connection is bounded either way: two pipes of at most `to_b` and `to_a` bytes
//! in the kernel, or two buffers of those sizes here.

use std::io;

use tokio::net::TcpStream;

/// Relays `a` ↔ `b` until both directions end or one fails; bytes `a` → `b` and `b` → `a`.
/// `to_b` and `to_a` are the most each direction holds in flight.
pub(crate) async fn both_ways(
    a: &mut TcpStream,
    b: &mut TcpStream,
    to_b: usize,
    to_a: usize,
) -> io::Result<(u64, u64)> {
    #[cfg(target_os = "linux")]
    if let (Ok(ab), Ok(ba)) = (spliced::Pipe::new(to_b), spliced::Pipe::new(to_a)) {
        let (a, b) = (&*a, &*b);
        return tokio::try_join!(ab.pump(a, b), ba.pump(b, a));
    }
    tokio::io::copy_bidirectional_with_sizes(a, b, to_b, to_a).await
}

#[cfg(target_os = "linux")]
mod spliced {
    use std::{io, os::fd::OwnedFd};

    use rustix::{
        net::Shutdown,
        pipe::{PipeFlags, SpliceFlags},
    };
    use tokio::{io::Interest, net::TcpStream};

    /// One direction's pipe (non-blocking both ends).
    pub(super) struct Pipe {
        read: OwnedFd,
        write: OwnedFd,
        /// Most bytes taken from the source at a time.
        chunk: usize,
    }

    impl Pipe {
        /// A pipe holding `size` bytes (rounded up to pages). An error when the kernel
        /// refuses that size: past the user's share of pipe memory
        /// (`/proc/sys/fs/pipe-user-pages-soft`) new pipes get one page, and the relay copies
        /// instead of crawling through it.
        pub(super) fn new(size: usize) -> io::Result<Pipe> {
            let (read, write) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
            let chunk = rustix::pipe::fcntl_setpipe_size(&write, size)?;
            Ok(Pipe { read, write, chunk })
        }

        /// Moves `from` → `to` until `from` ends its sending (then shuts `to`'s sending half)
        /// or either fails; the bytes moved.
        pub(super) async fn pump(self, from: &TcpStream, to: &TcpStream) -> io::Result<u64> {
            let flags = SpliceFlags::MOVE | SpliceFlags::NONBLOCK;
            let mut moved = 0;
            loop {
                // The pipe is empty here, so "would block" can only mean the socket has nothing.
                let n = loop {
                    from.readable().await?;
                    match from.try_io(Interest::READABLE, || {
                        Ok(rustix::pipe::splice(
                            from,
                            None,
                            &self.write,
                            None,
                            self.chunk,
                            flags,
                        )?)
                    }) {
                        Ok(n) => break n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(e),
                    }
                };
                if n == 0 {
                    rustix::net::shutdown(to, Shutdown::Write)?;
                    return Ok(moved);
                }
                // Out of the pipe until it is empty again; "would block" means the socket is full.
                let mut left = n;
                while left > 0 {
                    to.writable().await?;
                    match to.try_io(Interest::WRITABLE, || {
                        Ok(rustix::pipe::splice(
                            &self.read, None, to, None, left, flags,
                        )?)
                    }) {
                        Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                        Ok(m) => left -= m,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(e),
                    }
                }
                moved += n as u64;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::{
        io::{AsyncReadExt as _, AsyncWriteExt as _},
        net::{TcpListener, TcpStream},
    };

    use super::*;

    /// A connected pair of loopback sockets.
    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (a, b) = tokio::join!(TcpStream::connect(l.local_addr().unwrap()), l.accept());
        (a.unwrap(), b.unwrap().0)
    }

    fn bytes(n: usize, salt: u8) -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt) ^ (i >> 13) as u8)
            .collect()
    }

    /// client ⇄ [relay a | b] ⇄ server: an upload of `up` bytes, then the client shuts its
    /// sending half; the server reads to the end, answers `down` bytes and closes.
    async fn exchange(up: usize, down: usize) {
        let (mut client, mut a) = pair().await;
        let (mut b, mut server) = pair().await;
        let relay =
            tokio::spawn(async move { both_ways(&mut a, &mut b, 256 << 10, 16 << 10).await });
        let sent = bytes(up, 1);
        let answer = bytes(down, 7);
        let to_send = sent.clone();
        let client_side = tokio::spawn(async move {
            client.write_all(&to_send).await.unwrap();
            client.shutdown().await.unwrap();
            let mut got = Vec::new();
            client.read_to_end(&mut got).await.unwrap();
            got
        });
        let reply = answer.clone();
        let server_side = tokio::spawn(async move {
            let mut got = Vec::new();
            // Ends only if the client's shutdown was passed on.
            server.read_to_end(&mut got).await.unwrap();
            server.write_all(&reply).await.unwrap();
            server.shutdown().await.unwrap();
            got
        });
        let all = async {
            let (got_up, got_down, moved) = tokio::join!(server_side, client_side, relay);
            (got_up.unwrap(), got_down.unwrap(), moved.unwrap().unwrap())
        };
        let (got_up, got_down, moved) = tokio::time::timeout(Duration::from_secs(30), all)
            .await
            .expect("the relay passes both ends on");
        assert!(
            got_up == sent,
            "upload arrived intact ({} of {up} bytes)",
            got_up.len()
        );
        assert!(
            got_down == answer,
            "answer arrived intact ({} of {down} bytes)",
            got_down.len()
        );
        assert_eq!(moved, (up as u64, down as u64));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bytes_cross_both_ways_intact_and_each_end_is_passed_on() {
        exchange(9 << 20, 70_000).await;
        exchange(0, 1).await;
        exchange(1, 0).await;
    }

    #[tokio::test]
    async fn a_peer_that_resets_ends_the_relay_with_an_error() {
        let (client, mut a) = pair().await;
        let (mut b, server) = pair().await;
        let relay =
            tokio::spawn(async move { both_ways(&mut a, &mut b, 64 << 10, 16 << 10).await });
        rustix::net::sockopt::set_socket_linger(&server, Some(Duration::ZERO)).unwrap();
        drop(server);
        let ended = tokio::time::timeout(Duration::from_secs(30), relay)
            .await
            .expect("the relay ends when a side resets")
            .unwrap();
        assert!(ended.is_err(), "a reset is an error, not an end: {ended:?}");
        drop(client);
    }
}
