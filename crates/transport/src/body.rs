//! A request/response body made of shared byte chunks (no copies of payloads), or streamed from
//! a source one chunk at a time (a large file: memory O(chunk), not O(file)).

use std::{
    collections::VecDeque,
    io,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body::{Frame, SizeHint};

/// Chunks read on demand, in order (a file read piece by piece).
pub type ChunkSource = Box<dyn Iterator<Item = io::Result<Bytes>> + Send>;

enum Chunks {
    Ready(VecDeque<Bytes>),
    Streamed(ChunkSource),
}

impl std::fmt::Debug for Chunks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Chunks::Ready(c) => write!(f, "Ready({} chunks)", c.len()),
            Chunks::Streamed(_) => f.write_str("Streamed"),
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
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let left = self.len;
        let next = match &mut self.chunks {
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
            Chunks::Streamed(_) => self.len == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len)
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

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
}
