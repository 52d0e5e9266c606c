//! The last few batches the pipeline appended to the store-and-forward log, kept in memory
//! beside their records, so a buffered sink that keeps up takes a record's batch as the
//! pipeline made it instead of decoding the bytes it has just read back (decoding was about
//! 300 instructions a sample, a tenth of the whole path; each buffered sink decoded anew).
//!
//! Only the decode is saved: every batch is still written to the log before any sink sees
//! it, read back through the sink's reader and acknowledged there, so positions, acks,
//! replays and restarts are the log's as before. A record found here is the same data its
//! bytes decode to (the record's encoding is lossless: `durable`'s tests), under one
//! condition checked per entry: the reader resolves tags with the topology the batch was
//! made under. A sink kept across a reload reads with its old topology and decodes.
//!
//! A batch is dropped once every reader sharing it has taken it, so with sinks that keep up
//! the memory held is only what they lag behind within a poll. Bounded besides: at most
//! [`RECORDS`] batches and [`ITEMS`] samples and events in all (a sink that stopped
//! reading, its broker away, holds no more than that); older ones are dropped as new ones
//! come, and a larger batch (a burst) is not kept. A reader that lags further behind
//! decodes, as it always did.

use std::collections::VecDeque;
use std::sync::Arc;

use backplane_connector::{Batch, Topology};
use parking_lot::Mutex;

/// Most batches kept. A sink that keeps up still falls behind within a poll: a source of
/// 10 000 tags answers 80 blocks of 125 in a burst, each a record, faster than the sink
/// makes messages of them; it catches up before the next poll. Measured under callgrind:
/// 8 000 samples behind at the end of such a burst, and with 16 batches and 4 096 items
/// kept, three records in four were decoded all the same.
pub(crate) const RECORDS: usize = 128;
/// Most samples and events kept in all: a poll of 10 000 tags and more, about 1 MB at most
/// (64 bytes a sample, and strings shared with the pipeline).
pub(crate) const ITEMS: usize = 16_384;

/// The batches of the latest records, shared by the log's writer and its readers.
#[derive(Debug, Default)]
pub(crate) struct RecentBatches {
    entries: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    list: VecDeque<Entry>,
    items: usize,
    /// The readers sharing these batches: an entry all of them took is dropped.
    readers: u32,
}

#[derive(Debug)]
struct Entry {
    /// The record's first sequence number (what [`backplane_buffer::Log::append`] returned).
    seq: u64,
    topology: Arc<Topology>,
    batch: Arc<Batch>,
    /// How many times a reader took it.
    taken: u32,
}

impl RecentBatches {
    /// Counts one more reader taking batches from here; returns the shared batches.
    pub(crate) fn add_reader(self: &Arc<Self>) -> Arc<RecentBatches> {
        self.entries.lock().readers += 1;
        self.clone()
    }

    /// Keeps `batch`, appended as the record at `seq` under `topology`.
    pub(crate) fn keep(&self, seq: u64, topology: &Arc<Topology>, batch: &Arc<Batch>) {
        let items = batch.len();
        let mut entries = self.entries.lock();
        if items > ITEMS {
            // A burst: not kept; its readers decode it.
            return;
        }
        while entries.list.len() >= RECORDS || entries.items + items > ITEMS {
            let Some(old) = entries.list.pop_front() else {
                break;
            };
            entries.items -= old.batch.len();
        }
        entries.items += items;
        entries.list.push_back(Entry {
            seq,
            topology: topology.clone(),
            batch: batch.clone(),
            taken: 0,
        });
    }

    /// The batch of the record at `seq` holding `count` samples and events, if it is still
    /// kept and was made under `topology` (the same one, not an equal one). Dropped here
    /// once every reader took it.
    pub(crate) fn take(&self, seq: u64, count: u32, topology: &Arc<Topology>) -> Option<Arc<Batch>> {
        let mut entries = self.entries.lock();
        let readers = entries.readers;
        // Readers take the oldest first.
        let at = entries.list.iter().position(|e| e.seq == seq)?;
        let entry = entries.list.get_mut(at)?;
        if !Arc::ptr_eq(&entry.topology, topology) || entry.batch.len() != count as usize {
            return None;
        }
        entry.taken += 1;
        let batch = entry.batch.clone();
        if entry.taken >= readers
            && let Some(done) = entries.list.remove(at)
        {
            entries.items -= done.batch.len();
        }
        Some(batch)
    }

    #[cfg(test)]
    fn kept(&self) -> Vec<u64> {
        self.entries.lock().list.iter().map(|e| e.seq).collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use backplane_model::{Context, Quality, Sample, TagId, Timestamp, Value};

    /// A topology built anew each call (so two calls give two topologies).
    fn topology() -> Arc<Topology> {
        let durable = crate::durable::tests::topology(crate::durable::tests::CONFIG);
        Arc::new(durable)
    }

    fn batch(samples: usize) -> Arc<Batch> {
        let context = Arc::new(Context::default());
        Arc::new(Batch {
            samples: (0..samples)
                .map(|i| Sample {
                    tag: TagId(0),
                    value: Some(Value::Float(i as f64)),
                    quality: Quality::Good,
                    source_time: None,
                    gateway_time: Timestamp::from_unix_nanos(i as i64),
                    context: context.clone(),
                })
                .collect(),
            events: Vec::new(),
        })
    }

    /// Shared batches with `readers` readers.
    fn shared(readers: u32) -> Arc<RecentBatches> {
        let recent = Arc::new(RecentBatches::default());
        for _ in 0..readers {
            recent.add_reader();
        }
        recent
    }

    #[test]
    fn a_batch_is_dropped_once_every_reader_took_it() {
        let recent = shared(2);
        let topology = topology();
        recent.keep(0, &topology, &batch(2));
        recent.keep(2, &topology, &batch(2));
        assert!(recent.take(0, 2, &topology).is_some());
        assert_eq!(recent.kept(), [0, 2], "the other reader has not taken it yet");
        assert!(recent.take(0, 2, &topology).is_some());
        assert_eq!(recent.kept(), [2]);
        assert!(
            recent.take(0, 2, &topology).is_none(),
            "read again (a replay): decoded"
        );
        assert_eq!(recent.entries.lock().items, 2);
    }

    #[test]
    fn a_kept_batch_is_found_by_its_record_under_its_own_topology_only() {
        let recent = shared(3);
        let topology = topology();
        let b = batch(3);
        recent.keep(10, &topology, &b);
        let found = recent.take(10, 3, &topology).unwrap();
        assert!(Arc::ptr_eq(&found, &b), "the pipeline's batch itself, not a copy");
        // Another record, another count, or an equal topology built anew: decode instead.
        assert!(recent.take(13, 3, &topology).is_none());
        assert!(recent.take(10, 2, &topology).is_none());
        assert!(recent.take(10, 3, &self::topology()).is_none());
    }

    #[test]
    fn only_the_latest_records_and_a_polls_worth_of_items_are_kept() {
        let recent = shared(1);
        let topology = topology();
        for i in 0..RECORDS as u64 + 4 {
            recent.keep(i * 2, &topology, &batch(2));
        }
        let kept = recent.kept();
        assert_eq!(kept.len(), RECORDS);
        assert_eq!(kept.first(), Some(&8), "the oldest went first");
        // Items bound: one large batch pushes out as many older ones as it needs.
        let last = (RECORDS as u64 + 3) * 2;
        recent.keep(100, &topology, &batch(ITEMS - 3));
        assert_eq!(recent.kept(), [last, 100]);
        // A burst above the bound is not kept; what was kept stays.
        recent.keep(5000, &topology, &batch(ITEMS + 1));
        assert_eq!(recent.kept(), [last, 100]);
        assert!(recent.take(5000, (ITEMS + 1) as u32, &topology).is_none());
    }
}
