//! Sequence tracking, I/O-free: which request comes next (`current` or `sample?from=N`)
//! and which observations of an answer are new, so that nothing is delivered twice and
//! every sequence that is not delivered is counted as a gap.
//!
//! The guarantees (docs/connectors/mtconnect.md, "Sequence guarantees"):
//! - Within one agent instance every observation is delivered once, in sequence order:
//!   observations below the cursor are dropped as doubles.
//! - A reconnect (agent gone mid-stream, gateway source restarted) resumes at the cursor
//!   (`sample?from=next`): no gap while the agent still holds that sequence.
//! - The agent restarted (a new `instanceId`): the new instance's buffer is replayed from
//!   its `firstSequence`; sequences the new instance already dropped count as a gap.
//! - The cursor fell out of the agent's buffer (`OUT_OF_RANGE`, or a `firstSequence`
//!   above the cursor): re-sync with `current`, whose snapshot carries the latest value of
//!   every data item; every sequence between the cursor and the snapshot that was not
//!   delivered one by one counts as the gap.
//! - An answer that cannot be read (malformed, too large) is asked again with half the
//!   `count`, down to one observation; one sequence that fails alone twice is skipped and
//!   counted as a gap of one. The good observations around it are delivered.

use crate::document::{Header, Observation, Streams};

/// Where the next sample starts, within which agent instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub instance_id: u64,
    pub next: u64,
}

/// The next request to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// `current`: a snapshot of every data item and the sequence to go on from.
    Current,
    /// `sample?from=FROM&count=COUNT`.
    Sample { from: u64, count: u32 },
}

/// What one answer came to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Accepted {
    /// New observations, in sequence order.
    pub observations: Vec<Observation>,
    /// Sequences lost with this answer (counted in [`Tracker::gap_total`]).
    pub gap: u64,
    /// Observations dropped because they were delivered before.
    pub doubles: u64,
    /// The agent restarted (new `instanceId`): the caller re-reads the device model.
    pub restarted: bool,
}

/// The state machine.
#[derive(Debug)]
pub struct Tracker {
    cursor: Option<Cursor>,
    /// The instance the last `current` must belong to, and the cursor before the re-sync
    /// (to count the gap it leaves).
    resync_from: Option<Cursor>,
    max_count: u32,
    count: u32,
    /// Failures in a row at `count == 1` for the cursor's sequence.
    single_failures: u32,
    gap_total: u64,
}

impl Tracker {
    /// A tracker that resumes at `cursor` (kept from an earlier run), asking for at most
    /// `max_count` observations per sample.
    pub fn new(cursor: Option<Cursor>, max_count: u32) -> Tracker {
        let max_count = max_count.max(1);
        Tracker {
            cursor,
            resync_from: None,
            max_count,
            count: max_count,
            single_failures: 0,
            gap_total: 0,
        }
    }

    pub fn cursor(&self) -> Option<Cursor> {
        self.cursor
    }

    /// Sequences lost so far.
    pub fn gap_total(&self) -> u64 {
        self.gap_total
    }

    pub fn next_request(&self) -> Request {
        match self.cursor {
            Some(c) => Request::Sample {
                from: c.next,
                count: self.count,
            },
            None => Request::Current,
        }
    }

    /// The answer to `current`: every observation is the latest value of its item.
    pub fn on_current(&mut self, streams: Streams) -> Accepted {
        let header = &streams.header;
        let next = header.next_sequence.unwrap_or(1);
        let mut gap = 0;
        let mut restarted = false;
        if let Some(before) = self.resync_from.take() {
            if before.instance_id == header.instance_id {
                gap = next.saturating_sub(before.next);
            } else {
                restarted = true;
            }
        }
        self.gap_total = self.gap_total.saturating_add(gap);
        self.cursor = Some(Cursor {
            instance_id: header.instance_id,
            next,
        });
        self.recovered();
        let mut observations = streams.observations;
        observations.sort_by_key(|o| o.sequence);
        Accepted {
            observations,
            gap,
            doubles: 0,
            restarted,
        }
    }

    /// The answer to a sample (or one part of a stream).
    pub fn on_sample(&mut self, streams: Streams) -> Accepted {
        let header = streams.header.clone();
        let Some(cursor) = self.cursor else {
            // A sample without a cursor cannot happen (the first request is `current`);
            // take it as a snapshot.
            return self.on_current(streams);
        };
        if header.instance_id != cursor.instance_id {
            return self.restarted(&header);
        }
        let mut gap = 0;
        let mut from = cursor.next;
        if let Some(first) = header.first_sequence
            && first > from
            && streams.observations.iter().all(|o| o.sequence >= first)
        {
            // The agent moved on without saying OUT_OF_RANGE: what it dropped is lost.
            gap = first - from;
            from = first;
        }
        let next = header.next_sequence.unwrap_or(from);
        let mut observations = streams.observations;
        observations.sort_by_key(|o| o.sequence);
        let before = observations.len();
        observations.retain(|o| o.sequence >= from && o.sequence < next.max(from.saturating_add(1)));
        let doubles = (before - observations.len()) as u64;
        let delivered_to = observations.last().map_or(from, |o| o.sequence.saturating_add(1));
        self.gap_total = self.gap_total.saturating_add(gap);
        self.cursor = Some(Cursor {
            instance_id: cursor.instance_id,
            next: next.max(delivered_to).max(from),
        });
        self.recovered();
        Accepted {
            observations,
            gap,
            doubles,
            restarted: false,
        }
    }

    /// The agent answered `OUT_OF_RANGE`: re-sync with `current`. An answer from another
    /// instance means the agent restarted: its buffer is replayed from sequence 1 (a
    /// refusal of that counts as an overrun of the new instance). Returns whether the
    /// agent restarted.
    pub fn on_out_of_range(&mut self, header: &Header) -> bool {
        match self.cursor {
            Some(c) if c.instance_id != header.instance_id && header.instance_id != 0 => {
                self.resync_from = None;
                self.cursor = Some(Cursor {
                    instance_id: header.instance_id,
                    next: 1,
                });
                true
            }
            cursor => {
                self.resync_from = cursor;
                self.cursor = None;
                false
            }
        }
    }

    /// An answer that could not be read (malformed, too large). Returns the sequence
    /// skipped, if it came to that.
    pub fn on_unreadable(&mut self) -> Option<u64> {
        let cursor = self.cursor?;
        if self.count > 1 {
            self.count = (self.count / 2).max(1);
            self.single_failures = 0;
            return None;
        }
        self.single_failures += 1;
        if self.single_failures < 2 {
            return None;
        }
        self.single_failures = 0;
        self.gap_total = self.gap_total.saturating_add(1);
        self.cursor = Some(Cursor {
            instance_id: cursor.instance_id,
            next: cursor.next.saturating_add(1),
        });
        Some(cursor.next)
    }

    fn restarted(&mut self, header: &Header) -> Accepted {
        let first = header.first_sequence.unwrap_or(1).max(1);
        // The new instance's sequences start at 1; any it no longer holds are lost.
        let gap = first - 1;
        self.gap_total = self.gap_total.saturating_add(gap);
        self.cursor = Some(Cursor {
            instance_id: header.instance_id,
            next: first,
        });
        self.recovered();
        Accepted {
            observations: Vec::new(),
            gap,
            doubles: 0,
            restarted: true,
        }
    }

    /// An answer was read: grow the count back towards the configured one.
    fn recovered(&mut self) {
        self.single_failures = 0;
        self.count = self.count.saturating_mul(2).min(self.max_count);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::document::Category;

    fn obs(sequence: u64) -> Observation {
        Observation {
            data_item_id: format!("i{sequence}"),
            name: None,
            sequence,
            timestamp: None,
            category: Category::Event,
            element: "PartCount".into(),
            value: Some(sequence.to_string()),
            level: None,
            condition: None,
            device: "d".into(),
        }
    }

    fn streams(instance: u64, first: u64, next: u64, seqs: &[u64]) -> Streams {
        Streams {
            header: Header {
                instance_id: instance,
                first_sequence: Some(first),
                last_sequence: Some(next.saturating_sub(1)),
                next_sequence: Some(next),
                ..Header::default()
            },
            observations: seqs.iter().map(|s| obs(*s)).collect(),
            rejected: Vec::new(),
        }
    }

    fn seqs(a: &Accepted) -> Vec<u64> {
        a.observations.iter().map(|o| o.sequence).collect()
    }

    #[test]
    fn current_then_samples_deliver_each_sequence_once() {
        let mut t = Tracker::new(None, 100);
        assert_eq!(t.next_request(), Request::Current);
        t.on_current(streams(1, 1, 10, &[3, 9]));
        assert_eq!(t.next_request(), Request::Sample { from: 10, count: 100 });
        let a = t.on_sample(streams(1, 1, 13, &[12, 10, 11]));
        assert_eq!(seqs(&a), [10, 11, 12]);
        // The same answer again (a retried request): all doubles.
        let a = t.on_sample(streams(1, 1, 13, &[10, 11, 12]));
        assert_eq!((seqs(&a), a.doubles), (vec![], 3));
        assert_eq!(t.gap_total(), 0);
    }

    #[test]
    fn an_agent_restart_replays_the_new_instance_from_its_first_sequence() {
        let mut t = Tracker::new(
            Some(Cursor {
                instance_id: 1,
                next: 500,
            }),
            100,
        );
        let a = t.on_sample(streams(2, 1, 40, &[1, 2, 3]));
        assert!(a.restarted);
        assert!(
            a.observations.is_empty(),
            "answer to the old cursor is not trusted"
        );
        assert_eq!(t.next_request(), Request::Sample { from: 1, count: 100 });
        let a = t.on_sample(streams(2, 1, 40, &(1..40).collect::<Vec<_>>()));
        assert_eq!(seqs(&a), (1..40).collect::<Vec<_>>());
        assert_eq!(t.gap_total(), 0);
    }

    #[test]
    fn out_of_range_resyncs_with_current_and_counts_the_gap() {
        let mut t = Tracker::new(
            Some(Cursor {
                instance_id: 1,
                next: 100,
            }),
            100,
        );
        let restarted = t.on_out_of_range(&Header {
            instance_id: 1,
            ..Header::default()
        });
        assert!(!restarted);
        assert_eq!(t.next_request(), Request::Current);
        let a = t.on_current(streams(1, 900, 1000, &[950, 999]));
        assert_eq!(a.gap, 900);
        assert_eq!(t.gap_total(), 900);
        assert_eq!(
            t.next_request(),
            Request::Sample {
                from: 1000,
                count: 100
            }
        );
    }

    #[test]
    fn out_of_range_from_a_new_instance_replays_it_from_the_start() {
        let mut t = Tracker::new(
            Some(Cursor {
                instance_id: 1,
                next: 100,
            }),
            100,
        );
        assert!(t.on_out_of_range(&Header {
            instance_id: 2,
            ..Header::default()
        }));
        assert_eq!(t.next_request(), Request::Sample { from: 1, count: 100 });
        assert_eq!(t.gap_total(), 0);
    }

    #[test]
    fn a_first_sequence_past_the_cursor_counts_the_dropped_sequences() {
        let mut t = Tracker::new(
            Some(Cursor {
                instance_id: 1,
                next: 100,
            }),
            100,
        );
        let a = t.on_sample(streams(1, 150, 160, &[150, 159]));
        assert_eq!((a.gap, seqs(&a)), (50, vec![150, 159]));
        assert_eq!(t.cursor().unwrap().next, 160);
    }

    #[test]
    fn unreadable_answers_halve_the_count_then_skip_one_sequence() {
        let mut t = Tracker::new(
            Some(Cursor {
                instance_id: 1,
                next: 7,
            }),
            8,
        );
        for count in [4, 2, 1] {
            assert_eq!(t.on_unreadable(), None);
            assert_eq!(t.next_request(), Request::Sample { from: 7, count });
        }
        assert_eq!(t.on_unreadable(), None, "one more try alone");
        assert_eq!(t.on_unreadable(), Some(7));
        assert_eq!(t.next_request(), Request::Sample { from: 8, count: 1 });
        assert_eq!(t.gap_total(), 1);
        t.on_sample(streams(1, 1, 9, &[8]));
        assert_eq!(t.next_request(), Request::Sample { from: 9, count: 2 });
    }
}
