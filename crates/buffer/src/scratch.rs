//! Scratch vectors reused from one batch to the next (a record being assembled, a batch's
//! per-reading slots): kept, so a steady flow allocates nothing, but not at the size of a
//! burst that has passed. A burst (every tag of a large source failing at once) can be
//! megabytes where a poll's batch is kilobytes; without this its capacity stays allocated
//! for good, per vector (docs/performance.md, "Memory: bursts").

/// The bytes a record buffer keeps after a burst (a poll's record is a few kilobytes): the
/// engine's encoding buffer and the log's write buffer each hold one record.
pub const RECORD_KEEP: usize = 256 * 1024;

/// After a batch, `v` (cleared) holding room for more than `keep` entries is replaced by
/// one of `keep`: freed and allocated anew, as shrinking in place would copy the old
/// contents. At once rather than at a later small batch: after a burst of failures none
/// may come for hours. A flow of batches larger than `keep` pays for it with the vector's
/// regrowth per batch, a few reallocations that copy less than the batch once.
pub fn release_after<T>(v: &mut Vec<T>, keep: usize) {
    if v.capacity() > keep {
        *v = Vec::with_capacity(keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_beyond_keep_is_given_back_and_room_within_it_kept() {
        let mut v: Vec<u8> = Vec::with_capacity(1 << 20);
        release_after(&mut v, 4096);
        assert_eq!(v.capacity(), 4096);
        v.extend_from_slice(&[1; 100]);
        v.clear();
        release_after(&mut v, 4096);
        assert_eq!(v.capacity(), 4096, "within `keep` nothing changes");
    }
}
