//! File contents for simulated uploads: slices of one process-wide pool of pseudo-random bytes,
//! so a run allocates no payloads (a transaction-id envelope costs one copy per file).
//!
//! Byte `i` of the pool depends only on `i`, so a file's content depends only on its offset and
//! length, whatever the pool's current size: runs are reproducible across processes.

use std::{collections::HashMap, sync::Mutex};

use bytes::Bytes;

/// Offsets are multiples of [`OFFSET_STEP`] below this, independent of the pool size.
pub const OFFSET_SPAN: u64 = 1 << 20;

/// Distance between possible offsets: 64 positions, so the hash cache below hits across runs.
pub const OFFSET_STEP: u64 = OFFSET_SPAN / 64;

static HASHES: Mutex<Option<HashMap<(u64, u64), u64>>> = Mutex::new(None);

/// The content hash of `payload(offset, len)`, cached (content is a pure function of offset
/// and length, so the cache is exact). Bounded: forgotten when it grows past 4,096 entries.
pub fn payload_hash(offset: u64, len: u64) -> u64 {
    let key = (offset, len);
    if let Some(h) = HASHES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_with(HashMap::new)
        .get(&key)
    {
        return *h;
    }
    let h = protocol::txid::hash(&payload(offset, len));
    let mut cache = HASHES.lock().unwrap_or_else(|p| p.into_inner());
    let map = cache.get_or_insert_with(HashMap::new);
    if map.len() >= 4096 {
        map.clear();
    }
    map.insert(key, h);
    h
}

static POOL: Mutex<Option<Bytes>> = Mutex::new(None);

fn word(i: u64) -> u64 {
    // splitmix64 of the word index.
    let mut z = i
        .wrapping_add(0x9E37_79B9_7F4A_7C15)
        .wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn build(len: usize) -> Bytes {
    let words = len.div_ceil(8);
    let mut v = Vec::with_capacity(words * 8);
    for i in 0..words as u64 {
        v.extend_from_slice(&word(i).to_le_bytes());
    }
    v.truncate(len);
    Bytes::from(v)
}

/// `len` bytes of content starting at `offset` (< [`OFFSET_SPAN`]).
pub fn payload(offset: u64, len: u64) -> Bytes {
    assert!(
        offset < OFFSET_SPAN,
        "payload offsets stay below OFFSET_SPAN"
    );
    let need = (offset + len) as usize;
    let mut pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
    let current = pool.as_ref().map_or(0, Bytes::len);
    if current < need {
        let size = need
            .max(current * 2)
            .max((OFFSET_SPAN as usize) + (4 << 20));
        let built = build(size);
        // Immutable from here on: pipes may carry slices of it by reference.
        sim::shared::share(built.clone());
        *pool = Some(built);
    }
    pool.as_ref()
        .expect("pool built")
        .slice(offset as usize..need)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_depends_only_on_offset_and_length() {
        let a = payload(100, 64).to_vec();
        let _grow = payload(10, 20 << 20);
        assert_eq!(payload(100, 64).to_vec(), a);
        assert_eq!(&payload(96, 68)[4..], &a[..]);
        assert_ne!(payload(101, 64).to_vec(), a);
        assert_eq!(payload_hash(100, 64), protocol::txid::hash(&a));
        assert_eq!(
            payload_hash(100, 64),
            protocol::txid::hash(&a),
            "cached value"
        );
    }
}
