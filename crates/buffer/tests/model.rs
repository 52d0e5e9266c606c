//! The log against an in-memory model: random appends, deliveries, acknowledgements (in any
//! order), rewinds, restarts and quota overflow. The model predicts every delivery exactly
//! (record, payload, lane) and every reader's backlog; at the end every record was delivered
//! at least once to every reader or counted as dropped for overflow.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;
use std::time::Duration;

use backplane_buffer::{AppendError, Log, Next, Overflow, Reader, ReaderOptions, Record};
use proptest::prelude::*;
use support::{HEADER, options};

#[derive(Clone, Debug)]
enum Op {
    Append { count: u32, len: usize, seed: u8 },
    Next(usize),
    Ack(usize, usize),
    AckAll(usize),
    Rewind(usize),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (1u32..4, 0usize..80, any::<u8>()).prop_map(|(count, len, seed)| Op::Append { count, len, seed }),
        5 => (0usize..2).prop_map(Op::Next),
        3 => (0usize..2, any::<usize>()).prop_map(|(r, i)| Op::Ack(r, i)),
        1 => (0usize..2).prop_map(Op::AckAll),
        1 => (0usize..2).prop_map(Op::Rewind),
        1 => Just(Op::Reopen),
    ]
}

#[derive(Clone, Debug)]
struct ReaderSpec {
    overflow: Overflow,
    quota: u64,
    /// live_lag of zero (every record goes through the replay lane) or an hour (never).
    lag_zero: bool,
}

fn reader_spec() -> impl Strategy<Value = ReaderSpec> {
    (
        prop_oneof![Just(Overflow::DropOldest), Just(Overflow::Block)],
        300u64..3000,
        any::<bool>(),
    )
        .prop_map(|(overflow, quota, lag_zero)| ReaderSpec {
            overflow,
            quota,
            lag_zero,
        })
}

#[derive(Clone, Debug)]
struct Rec {
    count: u32,
    payload: Vec<u8>,
}

impl Rec {
    fn size(&self) -> u64 {
        HEADER + self.payload.len() as u64
    }
}

#[derive(Debug, Default)]
struct MReader {
    live: u64,
    replay: VecDeque<(u64, u64)>,
    unacked: BTreeSet<u64>,
    acked: BTreeSet<u64>,
    /// Raised by overflow drops: nothing below is delivered any more.
    floor: u64,
    delivered_ever: BTreeSet<u64>,
    dropped: BTreeSet<u64>,
    /// After an overflow drop, the log knows only the drop floor until the reader next acts
    /// (the reader may have acknowledged records just above it).
    published: Option<u64>,
}

#[derive(Debug)]
struct Model {
    /// Every record by first seq.
    records: BTreeMap<u64, Rec>,
    next_seq: u64,
    readers: Vec<MReader>,
}

impl Model {
    fn end_of(&self, seq: u64) -> u64 {
        seq + u64::from(self.records[&seq].count)
    }

    fn watermark(&self, r: usize) -> u64 {
        let m = &self.readers[r];
        let mut w = m.live;
        if let Some(&(from, _)) = m.replay.front() {
            w = w.min(from);
        }
        if let Some(&u) = m.unacked.first() {
            w = w.min(u);
        }
        w.max(m.floor)
    }

    /// The floor the log knows (quota, stats).
    fn floor(&self, r: usize) -> u64 {
        self.readers[r].published.unwrap_or_else(|| self.watermark(r))
    }

    fn backlog_bytes(&self, r: usize) -> u64 {
        let w = self.floor(r);
        self.records.range(w..).map(|(_, rec)| rec.size()).sum()
    }

    /// The next delivery the spec demands.
    fn next(&mut self, r: usize, lag_zero: bool) -> Option<(u64, bool)> {
        let next_seq = self.next_seq;
        loop {
            let live = self.readers[r].live;
            if live >= next_seq {
                break;
            }
            if self.readers[r].acked.contains(&live) {
                self.readers[r].live = self.end_of(live);
                continue;
            }
            if lag_zero {
                let m = &mut self.readers[r];
                m.replay.push_back((live, next_seq));
                m.live = next_seq;
                break;
            }
            let end = self.end_of(live);
            let m = &mut self.readers[r];
            m.live = end;
            m.unacked.insert(live);
            m.delivered_ever.insert(live);
            return Some((live, false));
        }
        while let Some(&(from, end)) = self.readers[r].replay.front() {
            if from >= end || from >= next_seq {
                self.readers[r].replay.pop_front();
                continue;
            }
            let after = self.end_of(from);
            let m = &mut self.readers[r];
            if let Some(front) = m.replay.front_mut() {
                front.0 = after;
            }
            if m.acked.contains(&from) {
                continue;
            }
            m.unacked.insert(from);
            m.delivered_ever.insert(from);
            return Some((from, true));
        }
        None
    }

    fn rewind(&mut self, r: usize) {
        let w = self.watermark(r);
        let next_seq = self.next_seq;
        let m = &mut self.readers[r];
        m.replay.clear();
        if w < next_seq {
            m.replay.push_back((w, next_seq));
        }
        m.live = next_seq;
    }

    /// The log dropped the reader's data below `floor` for overflow.
    fn drop_below(&mut self, r: usize, floor: u64) {
        let below: Vec<u64> = self.records.range(..floor).map(|(s, _)| *s).collect();
        let m = &mut self.readers[r];
        for s in below {
            if !m.acked.contains(&s) && s >= m.floor {
                m.dropped.insert(s);
            }
        }
        m.floor = floor;
        m.unacked.retain(|&s| s >= floor);
        m.acked.retain(|&s| s >= floor);
        m.replay.retain(|&(_, end)| end > floor);
        for span in &mut m.replay {
            span.0 = span.0.max(floor);
        }
        m.live = m.live.max(floor);
        m.published = Some(floor);
    }

    fn reopen(&mut self) {
        for r in 0..self.readers.len() {
            let w = self.watermark(r);
            let m = &mut self.readers[r];
            m.live = w;
            m.floor = w;
            m.replay.clear();
            m.unacked.clear();
            m.acked.clear();
            m.published = None;
        }
    }
}

fn reader_options(spec: &ReaderSpec) -> ReaderOptions {
    ReaderOptions {
        quota_bytes: spec.quota,
        overflow: spec.overflow,
        live_lag: if spec.lag_zero {
            Duration::ZERO
        } else {
            Duration::from_secs(3600)
        },
    }
}

const NAMES: [&str; 2] = ["r0", "r1"];

fn open(dir: &Path, segment_bytes: u64, specs: &[ReaderSpec]) -> (Log, Vec<Reader>) {
    let readers: Vec<(&str, ReaderOptions)> = NAMES
        .iter()
        .zip(specs)
        .map(|(n, s)| (*n, reader_options(s)))
        .collect();
    let (log, readers, recovery) = Log::open(dir, options(segment_bytes), &readers).unwrap();
    assert_eq!(
        recovery.truncated_bytes + recovery.corrupted_records + recovery.lost_seqs,
        0
    );
    assert!(recovery.damaged_positions.is_empty(), "{recovery:?}");
    (log, readers)
}

fn check_delivery(
    model: &Model,
    got: Option<Record>,
    want: Option<(u64, bool)>,
) -> Result<(), TestCaseError> {
    match (got, want) {
        (None, None) => Ok(()),
        (Some(g), Some((seq, replay))) => {
            prop_assert_eq!((g.seq, g.replay), (seq, replay));
            let rec = &model.records[&seq];
            prop_assert_eq!(g.count, rec.count);
            prop_assert_eq!(&g.payload, &rec.payload);
            Ok(())
        }
        (got, want) => Err(TestCaseError::fail(format!(
            "delivered {:?}, model expected {want:?}",
            got.map(|g| (g.seq, g.replay))
        ))),
    }
}

/// Reader 0 reads every record from the log; reader 1 holds two records in three itself
/// (`Reader::try_next_or_take`, as the engine holds its latest batches), so it takes those
/// by their header where the log allows and reads the rest.
fn next(reader: &mut Reader, r: usize, model: &Model) -> Option<Record> {
    if r == 0 {
        return reader.try_next().unwrap();
    }
    let held = |seq: u64, count: u32| {
        let rec = model.records.get(&seq).filter(|_| !seq.is_multiple_of(3))?;
        assert_eq!(count, rec.count);
        Some(rec.payload.clone())
    };
    Some(match reader.try_next_or_take(held).unwrap()? {
        Next::Read(record) => record,
        Next::Taken {
            seq,
            count,
            replay,
            item,
        } => Record {
            seq,
            count,
            appended_at_ns: 0,
            payload: item,
            replay,
        },
    })
}

fn run(segment_bytes: u64, specs: Vec<ReaderSpec>, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, mut readers) = open(dir.path(), segment_bytes, &specs);
    let mut model = Model {
        records: BTreeMap::new(),
        next_seq: 0,
        readers: vec![MReader::default(), MReader::default()],
    };
    for op in ops {
        match op {
            Op::Append { count, len, seed } => {
                let payload: Vec<u8> = (0..len).map(|i| seed.wrapping_add(i as u8)).collect();
                let rec = Rec {
                    count,
                    payload: payload.clone(),
                };
                let blocked = (0..2).find(|&r| {
                    specs[r].overflow == Overflow::Block && model.backlog_bytes(r) >= specs[r].quota
                });
                let before: Vec<u64> = readers.iter().map(|r| r.monitor().stats().dropped_seqs).collect();
                let old_floors: Vec<u64> = (0..2).map(|r| model.floor(r)).collect();
                match (log.append(count, &payload), blocked) {
                    (Err(AppendError::Full { reader }), Some(r)) => prop_assert_eq!(reader, NAMES[r]),
                    (Ok(seq), None) => {
                        prop_assert_eq!(seq, model.next_seq);
                        let size = rec.size();
                        model.records.insert(seq, rec);
                        model.next_seq = seq + u64::from(count);
                        for r in 0..2 {
                            let dropped = readers[r].monitor().stats().dropped_seqs - before[r];
                            if dropped == 0 {
                                continue;
                            }
                            prop_assert_eq!(specs[r].overflow, Overflow::DropOldest);
                            let old_backlog: u64 = model
                                .records
                                .range(old_floors[r]..seq)
                                .map(|(_, x)| x.size())
                                .sum();
                            prop_assert!(old_backlog + size > specs[r].quota, "dropped without need");
                            let floor = old_floors[r] + dropped;
                            prop_assert!(floor <= seq, "dropped the new record");
                            prop_assert!(
                                model.records.contains_key(&floor),
                                "drop not at a record boundary"
                            );
                            model.drop_below(r, floor);
                            let left = model.backlog_bytes(r);
                            prop_assert!(left <= specs[r].quota || floor == seq, "still over quota: {left}");
                        }
                    }
                    (got, want) => {
                        return Err(TestCaseError::fail(format!(
                            "append gave {got:?}, model expected block by {want:?}"
                        )));
                    }
                }
            }
            Op::Next(r) => {
                model.readers[r].published = None;
                let got = next(&mut readers[r], r, &model);
                let want = model.next(r, specs[r].lag_zero);
                check_delivery(&model, got, want)?;
            }
            Op::Ack(r, i) => {
                model.readers[r].published = None;
                let unacked: Vec<u64> = model.readers[r].unacked.iter().copied().collect();
                let seq = if unacked.is_empty() {
                    i as u64 % (model.next_seq + 1)
                } else {
                    unacked[i % unacked.len()]
                };
                readers[r].ack(seq);
                if model.readers[r].unacked.remove(&seq) {
                    model.readers[r].acked.insert(seq);
                }
            }
            Op::AckAll(r) => {
                let unacked: Vec<u64> = model.readers[r].unacked.iter().rev().copied().collect();
                if !unacked.is_empty() {
                    model.readers[r].published = None;
                }
                for seq in unacked {
                    readers[r].ack(seq);
                    model.readers[r].unacked.remove(&seq);
                    model.readers[r].acked.insert(seq);
                }
            }
            Op::Rewind(r) => {
                model.readers[r].published = None;
                readers[r].rewind();
                model.rewind(r);
            }
            Op::Reopen => {
                drop(readers);
                drop(log);
                (log, readers) = open(dir.path(), segment_bytes, &specs);
                model.reopen();
                prop_assert_eq!(log.stats().next_seq, model.next_seq);
            }
        }
        for (r, reader) in readers.iter().enumerate() {
            let s = reader.monitor().stats();
            let w = model.floor(r);
            prop_assert_eq!(s.backlog_seqs, model.next_seq - w, "reader {} backlog seqs", r);
            prop_assert_eq!(
                s.backlog_bytes,
                model.backlog_bytes(r),
                "reader {} backlog bytes",
                r
            );
        }
    }
    // Drain everything: every record reached every reader at least once, or was dropped.
    for r in 0..2 {
        readers[r].rewind();
        model.rewind(r);
        loop {
            let got = next(&mut readers[r], r, &model);
            let want = model.next(r, specs[r].lag_zero);
            let done = want.is_none();
            if let Some((seq, _)) = want {
                readers[r].ack(seq);
                model.readers[r].unacked.remove(&seq);
                model.readers[r].acked.insert(seq);
            }
            check_delivery(&model, got, want)?;
            if done {
                break;
            }
        }
        let m = &model.readers[r];
        for seq in model.records.keys() {
            prop_assert!(
                m.delivered_ever.contains(seq) || m.dropped.contains(seq),
                "reader {} never got record {} and it was not dropped",
                r,
                seq
            );
        }
        prop_assert_eq!(readers[r].monitor().stats().backlog_seqs, 0);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_the_model(
        segment_bytes in 100u64..1200,
        specs in proptest::collection::vec(reader_spec(), 2),
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        run(segment_bytes, specs, ops)?;
    }
}
