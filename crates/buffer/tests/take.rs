//! Records the caller holds already (`Reader::next_or_take`): a live record among the latest
//! appended is delivered from its header alone, its file not read; anything else is read
//! and checked as before, and positions, acknowledgements and replays do not change.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::HashMap;
use std::fs;

use backplane_buffer::{Next, Reader};
use support::*;

/// What the caller holds: each record's payload by seq, as it appended them.
type Held = HashMap<u64, Vec<u8>>;

fn append_held(log: &backplane_buffer::Log, range: std::ops::Range<u64>) -> Held {
    range
        .map(|i| (log.append(1, &payload(i)).unwrap(), payload(i)))
        .collect()
}

/// Every record deliverable now, as (seq, replay, payload, taken).
fn drain_taking(reader: &mut Reader, held: &Held) -> Vec<(u64, bool, Vec<u8>, bool)> {
    let mut out = Vec::new();
    while let Some(next) = reader
        .try_next_or_take(|seq, count| {
            assert_eq!(count, 1);
            held.get(&seq).cloned()
        })
        .unwrap()
    {
        out.push(match next {
            Next::Taken {
                seq, replay, item, ..
            } => (seq, replay, item, true),
            Next::Read(r) => (r.seq, r.replay, r.payload, false),
        });
    }
    out
}

fn damage(dir: &std::path::Path, at: u64) {
    let seg = &segments(dir)[0];
    let mut bytes = fs::read(seg).unwrap();
    bytes[at as usize] ^= 0x08;
    fs::write(seg, bytes).unwrap();
}

#[test]
fn a_live_record_the_caller_holds_is_delivered_without_reading_its_file() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let (log, mut readers, _) = open(dir.path(), 1 << 20, &["taking", "reading"]);
    let held = append_held(&log, 0..3);
    // Record 1 damaged on disk since it was appended.
    damage(dir.path(), record_offsets(0, 3)[1] + HEADER + 5);

    let got = drain_taking(&mut readers[0], &held);
    assert_eq!(
        got.iter().map(|g| (g.0, g.3)).collect::<Vec<_>>(),
        vec![(0, true), (1, true), (2, true)],
        "every record taken by its header, the damaged one too: its file was not read"
    );
    // A reader that reads the file finds the damage, and skips that record only.
    assert_eq!(seqs(&drain(&mut readers[1])), vec![0, 2]);
}

#[test]
fn a_record_the_caller_no_longer_holds_is_read_from_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let (log, mut readers, _) = open(dir.path(), 1 << 20, &["sink"]);
    let mut held = append_held(&log, 0..3);
    held.remove(&1);

    let got = drain_taking(&mut readers[0], &held);
    assert_eq!(
        got,
        vec![
            (0, false, payload(0), true),
            (1, false, payload(1), false),
            (2, false, payload(2), true),
        ]
    );
}

#[test]
fn taken_records_are_acknowledged_replayed_and_persisted_like_read_ones() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (log, mut readers, _) = open(dir.path(), 1 << 20, &["sink"]);
        let held = append_held(&log, 0..4);
        let r = &mut readers[0];
        let got = drain_taking(r, &held);
        assert!(got.iter().all(|g| g.3), "all taken");
        r.ack(0);
        r.ack(2);
        // The connection was lost: what is not acknowledged comes again, read from the
        // file now that the caller no longer holds it.
        r.rewind();
        let again = drain_taking(r, &Held::new());
        assert_eq!(
            again,
            vec![(1, true, payload(1), false), (3, true, payload(3), false)]
        );
        r.ack(1);
        r.persist().unwrap();
    }
    let (log, mut readers, _) = open(dir.path(), 1 << 20, &["sink"]);
    let held = append_held(&log, 4..5);
    assert_eq!(
        drain_taking(&mut readers[0], &held),
        vec![(3, false, payload(3), false), (4, false, payload(4), true)],
        "after a restart: the one never acknowledged, read from its file, then the new one"
    );
}

#[test]
fn a_record_older_than_the_latest_appended_is_read_and_checked_even_when_held() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let (log, mut readers, _) = open(dir.path(), 1 << 20, &["sink"]);
    // More records than the log keeps headers of: the first ones are read from the file.
    let n = 400;
    let held = append_held(&log, 0..n);
    damage(dir.path(), record_offsets(0, n)[0] + HEADER + 5);

    let got = drain_taking(&mut readers[0], &held);
    assert_eq!(got.len(), n as usize - 1, "the damaged record is skipped");
    assert_eq!(got[0].0, 1);
    assert!(got.iter().all(|g| g.2 == payload(g.0)));
}
