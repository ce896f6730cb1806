//! The bytes a job uploads: in memory (the simulator, tests) or read from a file as each
//! fragment is sent, 1 MiB at a time (`bitsfarm upload`: memory O(piece), not O(file)),
//! optionally behind the transaction-id envelope header.

use std::{fs::File, io, os::unix::fs::FileExt, path::Path, sync::Arc};

use bytes::{Bytes, BytesMut};
use protocol::txid;

/// Bytes per read when a file is hashed.
const READ_CHUNK: usize = 1 << 20;

#[derive(Debug, Clone)]
enum Source {
    Memory(Bytes),
    File { file: Arc<File>, len: u64 },
}

/// What a job uploads: an optional envelope header followed by a payload.
#[derive(Debug, Clone)]
pub struct Entity {
    header: Bytes,
    payload: Source,
}

impl Entity {
    /// Bytes in memory (shared, not copied).
    pub fn memory(payload: Bytes) -> Entity {
        Entity {
            header: Bytes::new(),
            payload: Source::Memory(payload),
        }
    }

    /// The file at `path`, read as fragments are sent. Its length is taken now; a file that
    /// shrinks while it is uploaded fails the job instead of sending short fragments.
    pub fn file(path: &Path) -> io::Result<Entity> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        Ok(Entity {
            header: Bytes::new(),
            payload: Source::File {
                file: Arc::new(file),
                len: meta.len(),
            },
        })
    }

    /// The same payload behind bitsfarm's transaction-id envelope (see `protocol::txid`).
    pub fn with_transaction_id(self, id: &str) -> io::Result<Entity> {
        let payload_len = self.payload_len();
        let hash = self.payload_hash()?;
        Ok(Entity {
            header: Bytes::from(txid::header_for(id, payload_len, hash)),
            payload: self.payload,
        })
    }

    fn payload_len(&self) -> u64 {
        match &self.payload {
            Source::Memory(b) => b.len() as u64,
            Source::File { len, .. } => *len,
        }
    }

    fn payload_hash(&self) -> io::Result<u64> {
        match &self.payload {
            Source::Memory(b) => Ok(txid::hash(b)),
            Source::File { file, len } => {
                let mut h = txid::StreamHash::new();
                let mut buf = vec![0u8; READ_CHUNK];
                let mut at = 0u64;
                while at < *len {
                    let n = ((*len - at) as usize).min(READ_CHUNK);
                    file.read_exact_at(&mut buf[..n], at)?;
                    h.write(&buf[..n]);
                    at += n as u64;
                }
                Ok(h.finish())
            }
        }
    }

    /// Bytes to upload (the envelope header included).
    pub fn len(&self) -> u64 {
        self.header.len() as u64 + self.payload_len()
    }

    /// Whether there is nothing to upload.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes `start..end` (`start <= end <= len()`).
    pub fn range(&self, start: u64, end: u64) -> io::Result<Bytes> {
        let h = self.header.len() as u64;
        let from_payload = |s: u64, e: u64| -> io::Result<Bytes> {
            match &self.payload {
                Source::Memory(b) => Ok(b.slice(s as usize..e as usize)),
                Source::File { file, .. } => {
                    let mut buf = vec![0u8; (e - s) as usize];
                    file.read_exact_at(&mut buf, s)?;
                    Ok(Bytes::from(buf))
                }
            }
        };
        if end <= h {
            return Ok(self.header.slice(start as usize..end as usize));
        }
        if start >= h {
            return from_payload(start - h, end - h);
        }
        // Straddles the header: the first fragment only.
        let mut out = BytesMut::with_capacity((end - start) as usize);
        out.extend_from_slice(&self.header[start as usize..]);
        out.extend_from_slice(&from_payload(0, end - h)?);
        Ok(out.freeze())
    }

    /// Bytes `start..end` as a request body: from a file, read piece by piece as it is sent
    /// (the reading overlaps the sending, and memory stays O(piece)); a file already shorter
    /// than `end` is an error now, one that shrinks while it is sent fails the request.
    pub fn body(&self, start: u64, end: u64) -> io::Result<transport::Body> {
        let h = self.header.len() as u64;
        match &self.payload {
            Source::File { file, .. } if start >= h && end > start => {
                let (s, e) = (start - h, end - h);
                if file.metadata()?.len() < e {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the file is shorter than when the upload began",
                    ));
                }
                Ok(transport::Body::streamed(
                    e - s,
                    transport::file_chunks_at(file.clone(), s, e - s, READ_CHUNK as u64),
                ))
            }
            _ => self.range(start, end).map(transport::Body::from),
        }
    }

    /// XXH3-64 of every byte uploaded, to compare with what the application received.
    pub fn hash(&self) -> io::Result<u64> {
        if self.header.is_empty() {
            return self.payload_hash();
        }
        let mut h = txid::StreamHash::new();
        h.write(&self.header);
        let mut at = 0u64;
        let len = self.payload_len();
        while at < len {
            let end = (at + READ_CHUNK as u64).min(len);
            let h_len = self.header.len() as u64;
            h.write(&self.range(h_len + at, h_len + end)?);
            at = end;
        }
        Ok(h.finish())
    }
}

impl From<Bytes> for Entity {
    fn from(b: Bytes) -> Entity {
        Entity::memory(b)
    }
}

impl From<Vec<u8>> for Entity {
    fn from(v: Vec<u8>) -> Entity {
        Entity::memory(Bytes::from(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_and_the_same_bytes_in_memory_upload_alike() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let path = std::env::temp_dir().join(format!("bitsfarm-entity-{}", std::process::id()));
        std::fs::write(&path, &data).unwrap();
        let mem = Entity::memory(Bytes::from(data.clone()))
            .with_transaction_id("t1")
            .unwrap();
        let file = Entity::file(&path)
            .unwrap()
            .with_transaction_id("t1")
            .unwrap();
        assert_eq!(mem.len(), file.len());
        assert_eq!(mem.hash().unwrap(), file.hash().unwrap());
        let mut whole = txid::header("t1", &data);
        whole.extend_from_slice(&data);
        assert_eq!(mem.hash().unwrap(), txid::hash(&whole));
        for (s, e) in [
            (0, 10),
            (5, 100),
            (0, 1 << 20),
            (70, 2_000_000),
            (2_999_000, mem.len()),
        ] {
            assert_eq!(
                &file.range(s, e).unwrap()[..],
                &whole[s as usize..e as usize]
            );
            assert_eq!(mem.range(s, e).unwrap(), file.range(s, e).unwrap());
        }
        // A file's fragments stream as request bodies with the same bytes (the header
        // straddled, within the header, within the payload, across read pieces).
        for (s, e) in [(0, 10), (5, 100), (70, 2_000_000), (2_999_000, mem.len())] {
            let body = file.body(s, e).unwrap();
            assert_eq!(body.len(), e - s);
            assert_eq!(collect(body), &whole[s as usize..e as usize], "{s}..{e}");
            assert_eq!(
                collect(mem.body(s, e).unwrap()),
                &whole[s as usize..e as usize]
            );
        }
        // A file that shrank under the job fails its read instead of sending short data.
        let late = file.body(1_000_000, 2_000_000).unwrap();
        std::fs::write(&path, b"short").unwrap();
        assert!(file.range(100, 200).is_err());
        assert!(
            file.body(100, 200).is_err(),
            "shorter already: refused before sending"
        );
        assert!(
            try_collect(late).is_err(),
            "shrunk while sending: the body fails, it does not end short"
        );
        let _ = std::fs::remove_file(path);
    }

    fn try_collect(mut body: transport::Body) -> io::Result<Vec<u8>> {
        use hyper::body::Body as _;
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut out = Vec::new();
            while let Some(frame) =
                std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
            {
                out.extend_from_slice(&frame?.into_data().expect("data frames only"));
            }
            Ok(out)
        })
    }

    fn collect(body: transport::Body) -> Vec<u8> {
        try_collect(body).unwrap()
    }
}
