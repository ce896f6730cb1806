//! A request/response body made of shared byte chunks (no copies of payloads), streamed from
//! a source one chunk at a time (a large file: memory O(chunk), not O(file)), or relayed from
//! another body as it arrives (a proxy: receiving and forwarding overlap).

use std::{
    collections::VecDeque,
    io,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt as _;

use crate::server::{BodyError, BodyTiming, Timed};

/// Chunks read on demand, in order (a file read piece by piece).
pub type ChunkSource = Box<dyn Iterator<Item = io::Result<Bytes>> + Send>;

/// What a relayed body ([`Body::relayed`]) has passed on, for whoever relays it.
#[derive(Debug, Default)]
pub struct Relayed {
    /// The chunks passed on, in order (shared, not copied).
    pub chunks: Vec<Bytes>,
    /// Every declared byte was passed on.
    pub complete: bool,
    /// Why the source failed, if it did (the body then failed too).
    pub failed: Option<BodyError>,
}

/// A [`Relayed`] shared between a relayed body and its relayer, who can wait for its end.
#[derive(Debug, Default)]
pub struct Tap {
    seen: Mutex<Relayed>,
    ended: tokio::sync::Notify,
}

impl Tap {
    /// A tap for one relayed body.
    pub fn new() -> Arc<Tap> {
        Arc::default()
    }

    /// What the body has passed on so far.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, Relayed> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until the body has passed its last byte on, or failed.
    pub async fn ended(&self) {
        loop {
            {
                let seen = self.lock();
                if seen.complete || seen.failed.is_some() {
                    return;
                }
            }
            self.ended.notified().await;
        }
    }

    fn end(&self, how: impl FnOnce(&mut Relayed)) {
        how(&mut self.lock());
        // A permit: the waiter may not be waiting yet.
        self.ended.notify_one();
    }
}

struct Relay {
    /// The source, held to its timing.
    from: Pin<Box<dyn http_body::Body<Data = Bytes, Error = BodyError> + Send>>,
    tap: Arc<Tap>,
}

enum Chunks {
    Ready(VecDeque<Bytes>),
    Streamed(ChunkSource),
    Relayed(Box<Relay>),
}

impl std::fmt::Debug for Chunks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Chunks::Ready(c) => write!(f, "Ready({} chunks)", c.len()),
            Chunks::Streamed(_) => f.write_str("Streamed"),
            Chunks::Relayed(_) => f.write_str("Relayed"),
        }
    }
}

impl Relay {
    fn fail(&self, why: BodyError) -> Poll<Option<io::Result<Bytes>>> {
        let text = why.to_string();
        self.tap.end(|seen| {
            seen.failed.get_or_insert(why);
        });
        Poll::Ready(Some(Err(io::Error::other(text))))
    }

    /// The next chunk of at most `left` bytes, within the timing.
    fn poll_chunk(&mut self, cx: &mut Context<'_>, left: u64) -> Poll<Option<io::Result<Bytes>>> {
        if left == 0 {
            self.tap.end(|seen| seen.complete = true);
            return Poll::Ready(None);
        }
        loop {
            match self.from.as_mut().poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    return self.fail(BodyError::Broken(format!(
                        "the body ended {left} bytes early"
                    )));
                }
                Poll::Ready(Some(Err(e))) => return self.fail(e),
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue; // trailers
                    };
                    if data.len() as u64 > left {
                        return self.fail(BodyError::TooLong);
                    }
                    if data.is_empty() {
                        continue;
                    }
                    let last = data.len() as u64 == left;
                    self.tap.lock().chunks.push(data.clone());
                    if last {
                        self.tap.end(|seen| seen.complete = true);
                    }
                    return Poll::Ready(Some(Ok(data)));
                }
            }
        }
    }
}

/// The first `len` bytes of `f`, `chunk` bytes at a time (a file served as a
/// [`Body::streamed`]: memory O(chunk)). A read error ends the source with that error.
pub fn file_chunks(f: std::fs::File, len: u64, chunk: u64) -> ChunkSource {
    file_chunks_at(std::sync::Arc::new(f), 0, len, chunk)
}

/// Bytes `from..from + len` of `f`, `chunk` bytes at a time, read as they are sent (a
/// fragment of a file: memory O(chunk), and the reading overlaps the sending). A read error,
/// or a file that has become shorter, ends the source with an error.
pub fn file_chunks_at(
    f: std::sync::Arc<std::fs::File>,
    from: u64,
    len: u64,
    chunk: u64,
) -> ChunkSource {
    use std::os::unix::fs::FileExt as _;
    let end = from + len;
    let mut at = from;
    Box::new(std::iter::from_fn(move || {
        if at >= end {
            return None;
        }
        let n = (end - at).min(chunk.max(1)) as usize;
        let mut buf = vec![0u8; n];
        match f.read_exact_at(&mut buf, at) {
            Ok(()) => {
                at += n as u64;
                Some(Ok(Bytes::from(buf)))
            }
            Err(e) => {
                at = end;
                Some(Err(e))
            }
        }
    }))
}

/// A body of zero or more [`Bytes`] chunks with an exact size, so hyper writes
/// `Content-Length` and hands the chunks to the transport without copying them.
#[derive(Debug)]
pub struct Body {
    chunks: Chunks,
    len: u64,
}

impl Default for Body {
    fn default() -> Body {
        Body {
            chunks: Chunks::Ready(VecDeque::new()),
            len: 0,
        }
    }
}

impl Body {
    /// An empty body.
    pub fn empty() -> Body {
        Body::default()
    }

    /// A body of these chunks, in order.
    pub fn from_chunks(chunks: impl IntoIterator<Item = Bytes>) -> Body {
        let chunks: VecDeque<Bytes> = chunks.into_iter().filter(|c| !c.is_empty()).collect();
        let len = chunks.iter().map(|c| c.len() as u64).sum();
        Body {
            chunks: Chunks::Ready(chunks),
            len,
        }
    }

    /// A body of exactly `len` bytes read from `source` as hyper asks for them. A source that
    /// fails, or ends before `len` bytes or runs past them, fails the body (hyper then cuts the
    /// connection, so the peer never takes a short body for a whole one).
    pub fn streamed(len: u64, source: ChunkSource) -> Body {
        Body {
            chunks: Chunks::Streamed(source),
            len,
        }
    }

    /// A body of exactly `len` bytes passed on from `from` as they arrive (a proxy's request
    /// to its upstream), each chunk also kept in `tap`, within `timing` (no chunk for
    /// `timing.idle`, or not all in by `timing.budget(len)`: the body fails, and the failure is
    /// in `tap`). A source that ends early, fails, or runs past `len` fails the body. Made
    /// inside a tokio runtime (its timers).
    pub fn relayed<B>(len: u64, from: B, timing: &BodyTiming, tap: Arc<Tap>) -> Body
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: std::fmt::Display,
    {
        let relay = Relay {
            from: Box::pin(Timed::new(from.map_err(|e| e.to_string()), len, timing)),
            tap,
        };
        Body {
            chunks: Chunks::Relayed(Box::new(relay)),
            len,
        }
    }

    /// Total length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Body {
        Body::from_chunks([b])
    }
}

impl From<Vec<u8>> for Body {
    fn from(v: Vec<u8>) -> Body {
        Body::from(Bytes::from(v))
    }
}

impl From<String> for Body {
    fn from(s: String) -> Body {
        Body::from(Bytes::from(s))
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let left = self.len;
        let next = match &mut self.chunks {
            Chunks::Relayed(relay) => match relay.poll_chunk(cx, left) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(next) => next,
            },
            Chunks::Ready(c) => c.pop_front().map(Ok),
            Chunks::Streamed(source) => {
                if left == 0 {
                    None
                } else {
                    Some(match source.next() {
                        None => Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("the body's source ended {left} bytes early"),
                        )),
                        Some(Ok(c)) if c.len() as u64 > left => Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "the body's source is longer than declared",
                        )),
                        Some(r) => r,
                    })
                }
            }
        };
        match next {
            Some(Ok(c)) => {
                self.len -= c.len() as u64;
                Poll::Ready(Some(Ok(Frame::data(c))))
            }
            Some(Err(e)) => Poll::Ready(Some(Err(e))),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.chunks {
            Chunks::Ready(c) => c.is_empty(),
            Chunks::Streamed(_) | Chunks::Relayed(_) => self.len == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len)
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;
    use tokio::time::Instant;

    use super::*;

    fn source(parts: &[&'static [u8]]) -> ChunkSource {
        Box::new(
            parts
                .iter()
                .map(|p| Ok(Bytes::from_static(p)))
                .collect::<Vec<_>>()
                .into_iter(),
        )
    }

    #[tokio::test]
    async fn a_streamed_body_yields_its_source_and_checks_its_length() {
        let b = Body::streamed(6, source(&[b"abc", b"def"]));
        assert_eq!(b.collect().await.unwrap().to_bytes(), "abcdef");
        let short = Body::streamed(7, source(&[b"abc", b"def"]));
        assert!(short.collect().await.is_err());
        let long = Body::streamed(5, source(&[b"abc", b"def"]));
        assert!(long.collect().await.is_err());
    }

    /// A body of frames given in advance; `None` stalls it for good.
    struct Script(VecDeque<Option<Result<&'static [u8], &'static str>>>);

    impl http_body::Body for Script {
        type Data = Bytes;
        type Error = &'static str;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, &'static str>>> {
            match self.0.pop_front() {
                None => Poll::Ready(None),
                Some(None) => {
                    self.0.push_front(None);
                    Poll::Pending
                }
                Some(Some(r)) => Poll::Ready(Some(r.map(|b| Frame::data(Bytes::from_static(b))))),
            }
        }
    }

    fn relay(
        len: u64,
        frames: Vec<Option<Result<&'static [u8], &'static str>>>,
    ) -> (Body, Arc<Tap>) {
        let tap = Tap::new();
        let timing = BodyTiming {
            idle: std::time::Duration::from_secs(10),
            min_bytes_per_s: 1,
        };
        let body = Body::relayed(len, Script(frames.into()), &timing, tap.clone());
        (body, tap)
    }

    #[tokio::test(start_paused = true)]
    async fn a_relayed_body_passes_its_source_on_and_keeps_what_it_passed() {
        let (b, tap) = relay(6, vec![Some(Ok(b"abc")), Some(Ok(b"def"))]);
        assert_eq!(http_body::Body::size_hint(&b).exact(), Some(6));
        assert_eq!(b.collect().await.unwrap().to_bytes(), "abcdef");
        tap.ended().await;
        let seen = tap.lock();
        assert_eq!(
            seen.chunks,
            [Bytes::from_static(b"abc"), Bytes::from_static(b"def")]
        );
        assert!(seen.complete && seen.failed.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_relayed_body_fails_as_its_source_does_and_says_why() {
        type Frames = Vec<Option<Result<&'static [u8], &'static str>>>;
        /// Declared length, the source's frames, chunks passed on, why it failed.
        type Case = (u64, Frames, usize, fn(&BodyError) -> bool);
        let cases: Vec<Case> = vec![
            (
                7,
                vec![Some(Ok(b"abc")), Some(Ok(b"def"))],
                2,
                |e| matches!(e, BodyError::Broken(w) if w.contains("1 bytes early")),
            ),
            (5, vec![Some(Ok(b"abc")), Some(Ok(b"def"))], 1, |e| {
                *e == BodyError::TooLong
            }),
            (6, vec![Some(Ok(b"abc")), Some(Err("boom"))], 1, |e| {
                *e == BodyError::Broken("boom".into())
            }),
            (6, vec![Some(Ok(b"abc")), None], 1, |e| {
                *e == BodyError::TooSlow
            }),
        ];
        for (len, frames, passed, why) in cases {
            let started = Instant::now();
            let (b, tap) = relay(len, frames);
            assert!(b.collect().await.is_err(), "a {len}-byte relay fails");
            tap.ended().await;
            let seen = tap.lock();
            assert!(!seen.complete);
            assert!(seen.failed.as_ref().is_some_and(why), "{:?}", seen.failed);
            assert_eq!(
                seen.chunks.len(),
                passed,
                "chunks passed on before the failure"
            );
            if seen.failed == Some(BodyError::TooSlow) {
                assert_eq!(
                    started.elapsed(),
                    std::time::Duration::from_secs(10),
                    "idle limit"
                );
            }
        }
    }
}
