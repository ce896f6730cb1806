//! Immutable byte regions a pipe may carry by reference instead of copying.
//!
//! The simulator's uploads send slices of one process-wide pool of payload bytes. A write to a
//! [`crate::pipe`] gets only a `&[u8]`, so it would copy every body into the pipe before the
//! reader copies it out again. A region [`share`]d here is known to be immutable for as long as
//! it lives (it is a [`Bytes`]), so a write whose slice lies inside it is queued as a new
//! reference to the same memory: the reader sees the same bytes at the same virtual time, and
//! one copy per body is saved. Whether a write hits a region changes speed only, never what is
//! delivered or when.

use std::sync::{PoisonError, RwLock};

use bytes::Bytes;

/// Regions kept at most (the newest): a pool that grows is shared anew and the old one is
/// forgotten here (writes still holding it keep it alive).
const KEPT: usize = 4;

/// Slices shorter than this are copied: a lookup would cost more than the copy.
pub const MIN_SHARED: usize = 4096;

static REGIONS: RwLock<Vec<Bytes>> = RwLock::new(Vec::new());

/// Declares `region` immutable and shareable by pipes.
pub fn share(region: Bytes) {
    let mut regions = REGIONS.write().unwrap_or_else(PoisonError::into_inner);
    regions.insert(0, region);
    regions.truncate(KEPT);
}

/// The bytes of `slice` as a reference into a shared region, if it lies inside one and is
/// long enough to be worth it.
pub(crate) fn find(slice: &[u8]) -> Option<Bytes> {
    if slice.len() < MIN_SHARED {
        return None;
    }
    let at = slice.as_ptr() as usize;
    let regions = REGIONS.read().unwrap_or_else(PoisonError::into_inner);
    regions.iter().find_map(|r| {
        let start = r.as_ptr() as usize;
        let from = at.checked_sub(start)?;
        (from + slice.len() <= r.len()).then(|| r.slice(from..from + slice.len()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slice_inside_a_shared_region_comes_back_as_the_same_memory() {
        let region = Bytes::from((0..3 * MIN_SHARED).map(|i| i as u8).collect::<Vec<_>>());
        share(region.clone());
        let inside = &region[100..100 + MIN_SHARED];
        let got = find(inside).expect("inside a shared region");
        assert_eq!(got.as_ptr(), inside.as_ptr());
        assert_eq!(&got[..], inside);
        // Too short, or not inside any region: copied.
        assert!(find(&region[..MIN_SHARED - 1]).is_none());
        let elsewhere = vec![7u8; MIN_SHARED];
        assert!(find(&elsewhere).is_none());
    }
}
