//! Payload buffers handed back once the link has copied their message, for the next
//! messages to be written into: a message per sample otherwise allocates and frees a
//! vector each time, and glibc's `free` of a few hundred bytes at a time, 125 in a row, is
//! one of the larger costs of a sample (docs/performance.md). Bounded by count and by
//! bytes, so a burst of large payloads (instance messages, long strings) is not kept. No
//! I/O.

/// Most buffers kept: as many as the session's queue of messages not yet handed out
/// holds at most (`PENDING_MAX`), so a burst that filled it finds them all again. With 512
/// kept, a profile of 10 000 tags per cycle still freed 40 % of the buffers.
pub const MAX_BUFFERS: usize = 4096;

/// Most bytes (capacity) kept in all: 4 096 buffers of 512 bytes. glibc would keep most
/// of the freed memory in its own free lists anyway; here it is bounded.
pub const MAX_BYTES: usize = 2 * 1024 * 1024;

/// The first capacity of a new buffer: most attribute payloads are 300–400 bytes.
pub const FIRST_CAPACITY: usize = 512;

/// Free payload buffers, at most `max_buffers` of them and `max_bytes` of capacity.
#[derive(Debug)]
pub struct BufferPool {
    free: Vec<Vec<u8>>,
    bytes: usize,
    max_buffers: usize,
    max_bytes: usize,
}

impl Default for BufferPool {
    fn default() -> BufferPool {
        BufferPool::new(MAX_BUFFERS, MAX_BYTES)
    }
}

impl BufferPool {
    pub fn new(max_buffers: usize, max_bytes: usize) -> BufferPool {
        BufferPool {
            free: Vec::new(),
            bytes: 0,
            max_buffers,
            max_bytes,
        }
    }

    /// An empty buffer: a kept one, else a new one of [`FIRST_CAPACITY`].
    pub fn take(&mut self) -> Vec<u8> {
        match self.free.pop() {
            Some(buf) => {
                self.bytes -= buf.capacity();
                buf
            }
            None => Vec::with_capacity(FIRST_CAPACITY),
        }
    }

    /// Keeps `buf` for a later [`take`](Self::take), emptied, unless the pool is full
    /// (by count or by bytes): then it is freed.
    pub fn give(&mut self, mut buf: Vec<u8>) {
        let capacity = buf.capacity();
        if capacity == 0 || self.free.len() >= self.max_buffers || capacity > self.max_bytes - self.bytes {
            return;
        }
        buf.clear();
        self.bytes += capacity;
        self.free.push(buf);
    }
}

/// What the tests check the bounds with.
#[cfg(test)]
impl BufferPool {
    /// Buffers kept.
    pub fn len(&self) -> usize {
        self.free.len()
    }

    pub fn is_empty(&self) -> bool {
        self.free.is_empty()
    }

    /// Capacity kept, in bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_given_back_is_taken_again_empty_with_its_capacity() {
        let mut pool = BufferPool::new(4, 4096);
        let mut buf = pool.take();
        buf.extend_from_slice(b"{\"value\":1}");
        let at = buf.as_ptr();
        pool.give(buf);
        let again = pool.take();
        assert!(again.is_empty());
        assert_eq!(again.as_ptr(), at, "the same allocation");
        assert_eq!(again.capacity(), FIRST_CAPACITY);
        assert!(pool.is_empty());
        assert_eq!(pool.bytes(), 0);
    }

    #[test]
    fn the_pool_never_keeps_more_than_its_count_of_buffers() {
        let mut pool = BufferPool::new(3, usize::MAX);
        for _ in 0..10 {
            pool.give(Vec::with_capacity(16));
        }
        assert_eq!(pool.len(), 3);
        assert_eq!(pool.bytes(), 3 * 16);
    }

    #[test]
    fn the_pool_never_keeps_more_than_its_bytes() {
        let mut pool = BufferPool::new(100, 1000);
        for _ in 0..10 {
            pool.give(Vec::with_capacity(300));
        }
        assert_eq!(pool.len(), 3, "a fourth would make 1 200 bytes");
        assert!(pool.bytes() <= 1000);
        // One large payload is freed, not kept, even into an empty pool.
        let mut pool = BufferPool::new(100, 1000);
        pool.give(Vec::with_capacity(64 * 1024));
        assert!(pool.is_empty());
        assert_eq!(pool.bytes(), 0);
        // Taking makes room again.
        let mut pool = BufferPool::new(100, 1000);
        pool.give(Vec::with_capacity(600));
        pool.give(Vec::with_capacity(600));
        assert_eq!(pool.len(), 1);
        drop(pool.take());
        pool.give(Vec::with_capacity(600));
        assert_eq!((pool.len(), pool.bytes()), (1, 600));
    }
}
