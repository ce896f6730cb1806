//! An in-memory, bidirectional byte stream with per-link latency, a window per direction, and
//! crash semantics.
//!
//! Each write becomes a chunk (or several: a slice of a [`crate::shared`] region is queued by
//! reference, the rest copied) stamped with its delivery time, `max(now + latency, previous
//! chunk's time)`, so bytes stay in order; a reader takes due chunks and otherwise sleeps
//! (virtually) until the head chunk is due. A full window makes writers wait (backpressure); a
//! waiting writer is woken once half the window is free or the reader has taken all that is due.
//!
//! Crashes do not rely on `Drop` (tokio aborts tasks lazily): [`Pipe::sever`] breaks both ends
//! at once. [`Break::Reset`] makes the peer's reads and writes fail (a killed host);
//! [`Break::Silence`] makes reads wait forever and writes vanish (a power cut or partition: the
//! peer learns only from its own timeout). A severed end's `Drop` sends nothing; an intact end's
//! `Drop` is a close: the peer reads what was sent, then EOF.

use std::{
    collections::VecDeque,
    future::Future as _,
    io,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard},
    task::{Context, Poll, Waker},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::{Instant, Sleep},
};

/// How a severed pipe behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Break {
    /// Reads and writes fail with `ConnectionReset`.
    Reset,
    /// Reads never complete; writes are accepted and discarded.
    Silence,
}

struct Chunk {
    due: Instant,
    data: Data,
    read: usize,
}

/// A chunk's bytes: copied from the writer, or a reference into a region the writer's slice
/// lay in ([`crate::shared`]).
enum Data {
    Owned(Vec<u8>),
    Shared(bytes::Bytes),
}

impl Data {
    fn bytes(&self) -> &[u8] {
        match self {
            Data::Owned(v) => v,
            Data::Shared(b) => b,
        }
    }
}

impl Direction {
    /// The direction's invariants, checked after every write and every read: the bytes queued
    /// are the unread bytes of the chunks, at most a window's worth, delivered in order.
    fn check(&self, window: usize) {
        assert!(
            self.queued <= window,
            "pipe: {} bytes queued over a {window}-byte window",
            self.queued
        );
        debug_assert_eq!(
            self.queued,
            self.chunks
                .iter()
                .map(|c| c.data.bytes().len() - c.read)
                .sum::<usize>(),
            "pipe: queued bytes and chunks disagree"
        );
        debug_assert!(
            self.chunks
                .iter()
                .zip(self.chunks.iter().skip(1))
                .all(|(a, b)| a.due <= b.due),
            "pipe: chunks due out of order"
        );
    }
}

#[derive(Default)]
struct Direction {
    chunks: VecDeque<Chunk>,
    /// Bytes written and not yet read.
    queued: usize,
    /// The writer closed (shutdown or drop): EOF once drained.
    closed: bool,
    reader: Option<Waker>,
    writer: Option<Waker>,
    /// Drained chunk buffers, reused by later writes.
    spare: Vec<Vec<u8>>,
}

struct State {
    /// `dirs[0]` carries bytes from end 0 to end 1, `dirs[1]` the other way.
    dirs: [Direction; 2],
    broken: Option<Break>,
    latency: Duration,
    window: usize,
    /// The latest clock reading of either end: a chunk due by then is due now, with no read
    /// of the (locked) virtual clock. Time only moves forward, so it is never ahead.
    seen: Instant,
    /// Where to report, once, that the pipe stopped carrying bytes.
    report: Option<(Closed, u64)>,
}

/// A list the pipes of a network add their ids to when they stop carrying bytes (severed, or
/// closed both ways: [`Pipe::is_open`] turned false), so the network forgets exactly those
/// without asking every pipe.
pub type Closed = Arc<Mutex<Vec<u64>>>;

/// The current time, read from the clock only when a due time is past the last reading.
struct Now<'a> {
    at: Instant,
    fresh: bool,
    seen: &'a mut Instant,
}

impl<'a> Now<'a> {
    fn new(seen: &'a mut Instant) -> Self {
        Now {
            at: *seen,
            fresh: false,
            seen,
        }
    }

    /// Whether `due` has come.
    fn reached(&mut self, due: Instant) -> bool {
        if due > self.at && !self.fresh {
            self.at = Instant::now();
            self.fresh = true;
            *self.seen = self.at;
        }
        due <= self.at
    }
}

impl State {
    fn is_open(&self) -> bool {
        self.broken.is_none() && !(self.dirs[0].closed && self.dirs[1].closed)
    }

    /// Reports the pipe closed if it no longer carries bytes (once: a pipe never reopens).
    fn report_if_done(&mut self) {
        if !self.is_open()
            && let Some((list, id)) = self.report.take()
        {
            list.lock().unwrap_or_else(|p| p.into_inner()).push(id);
        }
    }

    fn wake_all(&mut self) {
        for d in &mut self.dirs {
            if let Some(w) = d.reader.take() {
                w.wake();
            }
            if let Some(w) = d.writer.take() {
                w.wake();
            }
        }
    }
}

/// A handle on both ends' shared state, kept by the network to sever the pipe.
#[derive(Clone)]
pub struct Pipe {
    state: Arc<Mutex<State>>,
}

impl Pipe {
    /// A connected pair of ends: `(end 0, end 1)`.
    pub fn pair(latency: Duration, window: usize) -> (Pipe, End, End) {
        Pipe::pair_reporting(latency, window, None)
    }

    /// A pair as [`Pipe::pair`] that adds `id` to `closed` when it stops carrying bytes.
    pub fn pair_reporting(
        latency: Duration,
        window: usize,
        report: Option<(Closed, u64)>,
    ) -> (Pipe, End, End) {
        let state = Arc::new(Mutex::new(State {
            dirs: [Direction::default(), Direction::default()],
            broken: None,
            latency,
            window: window.max(1),
            seen: Instant::now(),
            report,
        }));
        let pipe = Pipe {
            state: state.clone(),
        };
        let a = End {
            state: state.clone(),
            side: 0,
            sleep: None,
        };
        let b = End {
            state,
            side: 1,
            sleep: None,
        };
        (pipe, a, b)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Breaks the pipe now, discarding every byte not yet read. Idempotent; the first break
    /// wins.
    pub fn sever(&self, how: Break) {
        let mut s = self.lock();
        if s.broken.is_some() {
            return;
        }
        s.broken = Some(how);
        for d in &mut s.dirs {
            d.chunks.clear();
            d.queued = 0;
        }
        s.wake_all();
        s.report_if_done();
    }

    /// Whether the pipe still carries bytes: not severed, and not closed in both directions.
    pub fn is_open(&self) -> bool {
        self.lock().is_open()
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One end of a pipe: `AsyncRead + AsyncWrite`.
pub struct End {
    state: Arc<Mutex<State>>,
    side: usize,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl AsyncRead for End {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            let mut s = lock(&this.state);
            match s.broken {
                Some(Break::Reset) => {
                    return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
                }
                // Nothing will ever arrive; the reader's own timeout ends the wait.
                Some(Break::Silence) => return Poll::Pending,
                None => {}
            }
            let from = 1 - this.side;
            let window = s.window;
            let State { dirs, seen, .. } = &mut *s;
            let mut now = Now::new(seen);
            let dir = &mut dirs[from];
            let Some(head) = dir.chunks.front() else {
                if dir.closed {
                    return Poll::Ready(Ok(()));
                }
                dir.reader = Some(cx.waker().clone());
                return Poll::Pending;
            };
            if !now.reached(head.due) {
                let due = head.due;
                // Severing or closing must still wake us while we sleep.
                dir.reader = Some(cx.waker().clone());
                drop(s);
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
                if sleep.deadline() != due {
                    sleep.as_mut().reset(due);
                }
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                continue;
            }
            // Copy every due chunk that fits.
            let mut copied = 0;
            while buf.remaining() > 0 {
                let Some(c) = dir.chunks.front_mut() else {
                    break;
                };
                if !now.reached(c.due) {
                    break;
                }
                let data = c.data.bytes();
                let n = (data.len() - c.read).min(buf.remaining());
                buf.put_slice(&data[c.read..c.read + n]);
                c.read += n;
                copied += n;
                if c.read == data.len() {
                    let spent = dir.chunks.pop_front().expect("front exists").data;
                    if let Data::Owned(mut spent) = spent
                        && dir.spare.len() < 4
                    {
                        spent.clear();
                        dir.spare.push(spent);
                    }
                }
            }
            dir.queued -= copied;
            dir.check(window);
            // A waiting writer is woken once half the window is free (as a TCP sender is woken
            // only when a good part of its buffer is free: Linux waits for a third), or once
            // nothing due is left: a reader that takes all that is due gives its writer the
            // same room at the same virtual time as a wake-up at every read would, in fewer
            // and larger writes.
            let drained = dir.chunks.front().is_none_or(|c| !now.reached(c.due));
            if (drained || dir.queued <= window / 2)
                && let Some(w) = dir.writer.take()
            {
                w.wake();
            }
            return Poll::Ready(Ok(()));
        }
    }
}

impl End {
    fn push(&mut self, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let mut s = lock(&self.state);
        let want: usize = bufs.iter().map(|b| b.len()).sum();
        match s.broken {
            Some(Break::Reset) => return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into())),
            Some(Break::Silence) => return Poll::Ready(Ok(want)),
            None => {}
        }
        if want == 0 {
            return Poll::Ready(Ok(0));
        }
        let (latency, window) = (s.latency, s.window);
        let side = self.side;
        if s.dirs[1 - side].closed && s.dirs[side].closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let dir = &mut s.dirs[side];
        if dir.closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let room = window.saturating_sub(dir.queued);
        if room == 0 {
            dir.writer = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let take = want.min(room);
        let now = Instant::now();
        s.seen = now;
        let dir = &mut s.dirs[side];
        let due = dir
            .chunks
            .back()
            .map_or(now + latency, |c| c.due.max(now + latency));
        // Bytes are copied into one owned chunk, except a slice of a shared region, which is
        // queued as a reference (all at the same due time: delivery is the same either way).
        let mut owned: Option<Vec<u8>> = None;
        let mut left = take;
        for b in bufs {
            let n = b.len().min(left);
            if let Some(shared) = crate::shared::find(&b[..n]) {
                if let Some(v) = owned.take() {
                    dir.chunks.push_back(Chunk {
                        due,
                        data: Data::Owned(v),
                        read: 0,
                    });
                }
                let data = Data::Shared(shared);
                dir.chunks.push_back(Chunk { due, data, read: 0 });
            } else if n > 0 {
                owned
                    .get_or_insert_with(|| dir.spare.pop().unwrap_or_default())
                    .extend_from_slice(&b[..n]);
            }
            left -= n;
            if left == 0 {
                break;
            }
        }
        if let Some(v) = owned {
            dir.chunks.push_back(Chunk {
                due,
                data: Data::Owned(v),
                read: 0,
            });
        }
        dir.queued += take;
        dir.check(window);
        if let Some(w) = dir.reader.take() {
            w.wake();
        }
        Poll::Ready(Ok(take))
    }

    fn close(&mut self) {
        let mut s = lock(&self.state);
        if s.broken.is_some() {
            return;
        }
        let dir = &mut s.dirs[self.side];
        dir.closed = true;
        if let Some(w) = dir.reader.take() {
            w.wake();
        }
        // A writer on the other side must learn that nobody reads any more.
        if let Some(w) = s.dirs[1 - self.side].writer.take() {
            w.wake();
        }
        s.report_if_done();
    }
}

impl AsyncWrite for End {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.push(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.push(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.close();
        Poll::Ready(Ok(()))
    }
}

impl Drop for End {
    fn drop(&mut self) {
        // An orderly close; after a sever nothing is sent (no FIN from a crashed host).
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
    }

    #[test]
    fn eof_after_drain() {
        rt().block_on(async {
            let (_p, mut a, mut b) = Pipe::pair(Duration::ZERO, 1024);
            a.write_all(b"hello").await.unwrap();
            drop(a);
            let mut got = Vec::new();
            b.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, b"hello");
        });
    }

    #[test]
    fn fifo_under_latency_and_delivery_time() {
        rt().block_on(async {
            let (_p, mut a, mut b) = Pipe::pair(Duration::from_millis(10), 1 << 20);
            let t0 = Instant::now();
            a.write_all(b"one").await.unwrap();
            tokio::time::sleep(Duration::from_millis(3)).await;
            a.write_all(b"two").await.unwrap();
            let mut buf = [0u8; 3];
            b.read_exact(&mut buf).await.unwrap();
            assert_eq!((&buf, t0.elapsed()), (b"one", Duration::from_millis(10)));
            b.read_exact(&mut buf).await.unwrap();
            assert_eq!((&buf, t0.elapsed()), (b"two", Duration::from_millis(13)));
        });
    }

    #[test]
    fn a_write_through_a_shared_region_delivers_the_same_bytes_at_the_same_time() {
        let region = bytes::Bytes::from((0..64 * 1024).map(|i| (i * 7) as u8).collect::<Vec<_>>());
        crate::shared::share(region.clone());
        let body = &region[1000..1000 + 3 * crate::shared::MIN_SHARED];
        rt().block_on(async {
            // A window smaller than the body: the shared slice is taken in parts.
            let (_p, mut a, mut b) = Pipe::pair(Duration::from_millis(10), 5000);
            let t0 = Instant::now();
            let writer = tokio::spawn({
                let region = region.clone();
                async move {
                    let body = &region[1000..1000 + 3 * crate::shared::MIN_SHARED];
                    let bufs = [
                        io::IoSlice::new(b"head:"),
                        io::IoSlice::new(body),
                        io::IoSlice::new(b":tail"),
                    ];
                    let mut sent = 0;
                    let total: usize = bufs.iter().map(|b| b.len()).sum();
                    while sent < total {
                        // Re-slice what is left, as a writer of a partial write does.
                        let mut left = Vec::new();
                        let mut skip = sent;
                        for b in &bufs {
                            if skip >= b.len() {
                                skip -= b.len();
                                continue;
                            }
                            left.push(io::IoSlice::new(&b[skip..]));
                            skip = 0;
                        }
                        sent += a.write_vectored(&left).await.unwrap();
                    }
                    drop(a);
                }
            });
            let mut got = Vec::new();
            b.read_to_end(&mut got).await.unwrap();
            writer.await.unwrap();
            let mut want = b"head:".to_vec();
            want.extend_from_slice(body);
            want.extend_from_slice(b":tail");
            assert_eq!(got, want);
            // Three windows' worth, each one latency after the reader freed room.
            assert!(
                t0.elapsed() >= Duration::from_millis(30),
                "{:?}",
                t0.elapsed()
            );
        });
    }

    #[test]
    fn backpressure_holds_writers_at_the_window() {
        rt().block_on(async {
            let (_p, mut a, mut b) = Pipe::pair(Duration::ZERO, 8);
            assert_eq!(a.write(b"0123456789").await.unwrap(), 8);
            let blocked = tokio::time::timeout(Duration::from_secs(1), a.write(b"x")).await;
            assert!(blocked.is_err(), "a full window must block the writer");
            let mut buf = [0u8; 4];
            b.read_exact(&mut buf).await.unwrap();
            assert_eq!(a.write(b"xyz").await.unwrap(), 3);
        });
    }

    #[test]
    fn a_waiting_writer_is_woken_once_half_the_window_is_free() {
        rt().block_on(async {
            // 10 windows of 64 bytes, 10 ms apart; the reader takes 4 bytes and yields, so a
            // writer woken at every read would write 4 bytes at a time.
            let (_p, mut a, mut b) = Pipe::pair(Duration::from_millis(10), 64);
            let data: Vec<u8> = (0..640u32).map(|i| (i * 13) as u8).collect();
            let t0 = Instant::now();
            let writer = tokio::spawn({
                let data = data.clone();
                async move {
                    let (mut sent, mut writes) = (0, Vec::new());
                    while sent < data.len() {
                        let n = a.write(&data[sent..]).await.unwrap();
                        writes.push(n);
                        sent += n;
                    }
                    writes
                }
            });
            let mut got = Vec::new();
            while got.len() < data.len() {
                let mut buf = [0u8; 4];
                let n = b.read(&mut buf).await.unwrap();
                got.extend_from_slice(&buf[..n]);
                tokio::task::yield_now().await;
            }
            let writes = writer.await.unwrap();
            assert_eq!(got, data);
            assert!(writes.iter().all(|&n| n >= 32), "{writes:?}");
            // Still a full window in flight every latency, as with a wake-up at every read.
            assert_eq!(t0.elapsed(), Duration::from_millis(100));
        });
    }

    #[test]
    fn reset_discards_unread_bytes_and_fails_both_ends() {
        rt().block_on(async {
            let (p, mut a, mut b) = Pipe::pair(Duration::from_millis(5), 1024);
            a.write_all(b"the ack").await.unwrap();
            p.sever(Break::Reset);
            let mut buf = [0u8; 16];
            assert_eq!(
                b.read(&mut buf).await.unwrap_err().kind(),
                io::ErrorKind::ConnectionReset
            );
            assert_eq!(
                a.write(b"x").await.unwrap_err().kind(),
                io::ErrorKind::ConnectionReset
            );
            assert!(!p.is_open());
        });
    }

    #[test]
    fn silence_after_power_cut() {
        rt().block_on(async {
            let (p, mut a, mut b) = Pipe::pair(Duration::ZERO, 1024);
            a.write_all(b"lost").await.unwrap();
            p.sever(Break::Silence);
            drop(a); // no FIN from a dead host
            let mut buf = [0u8; 4];
            let r = tokio::time::timeout(Duration::from_secs(3600), b.read(&mut buf)).await;
            assert!(r.is_err(), "a power-cut peer is silent");
            assert_eq!(b.write(b"into the void").await.unwrap(), 13);
        });
    }

    #[test]
    fn a_pipe_reports_its_closing_once_when_it_stops_carrying_bytes() {
        rt().block_on(async {
            let closed: Closed = Default::default();
            let list = || closed.lock().unwrap().clone();
            // Closed both ways: reported when the second side closes, not the first.
            let (p, mut a, b) =
                Pipe::pair_reporting(Duration::ZERO, 1024, Some((closed.clone(), 7)));
            a.shutdown().await.unwrap();
            assert!(
                p.is_open() && list().is_empty(),
                "one side closed still carries bytes"
            );
            drop(b);
            assert!(!p.is_open());
            assert_eq!(list(), vec![7]);
            drop(a);
            p.sever(Break::Reset);
            assert_eq!(list(), vec![7], "reported once");
            // Severed: reported at once, both ends still held.
            let (p, _a, _b) = Pipe::pair_reporting(Duration::ZERO, 1024, Some((closed.clone(), 8)));
            p.sever(Break::Silence);
            assert_eq!(list(), vec![7, 8]);
        });
    }

    #[test]
    fn a_sleeping_reader_wakes_on_sever() {
        rt().block_on(async {
            let (p, mut a, mut b) = Pipe::pair(Duration::from_secs(10), 1024);
            a.write_all(b"late").await.unwrap();
            let reader = tokio::spawn(async move {
                let mut buf = [0u8; 4];
                b.read(&mut buf).await.map_err(|e| e.kind())
            });
            tokio::time::sleep(Duration::from_secs(1)).await;
            p.sever(Break::Reset);
            assert_eq!(reader.await.unwrap(), Err(io::ErrorKind::ConnectionReset));
        });
    }
}
