//! Recovery on open, one test per damage class: what must hold is that every record not
//! damaged is delivered, damage is counted, and nothing panics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::fs::{self, OpenOptions};
use std::io::Write;

use backplane_buffer::Log;
use proptest::prelude::*;
use support::*;

/// Writes `n` records with a reader "sink" positioned before them, then closes the log.
fn log_with(dir: &std::path::Path, segment_bytes: u64, n: u64) {
    let (log, readers, _) = open(dir, segment_bytes, &["sink"]);
    append_n(&log, 0..n);
    drop(readers);
    drop(log);
}

fn backup_positions(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    ["sink.pos0", "sink.pos1"]
        .iter()
        .map(|f| dir.join(f))
        .filter(|p| p.exists())
        .map(|p| {
            let bytes = fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

fn restore_positions(dir: &std::path::Path, backup: &[(std::path::PathBuf, Vec<u8>)]) {
    for p in ["sink.pos0", "sink.pos1"] {
        let _ = fs::remove_file(dir.join(p));
    }
    for (p, bytes) in backup {
        fs::write(p, bytes).unwrap();
    }
}

fn flip(path: &std::path::Path, at: u64, mask: u8) {
    let mut bytes = fs::read(path).unwrap();
    bytes[at as usize] ^= mask;
    fs::write(path, bytes).unwrap();
}

#[test]
fn torn_tail_is_truncated_counted_and_the_sequence_continues() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    log_with(dir.path(), 1 << 20, 5);
    let seg = &segments(dir.path())[0];
    let full = fs::metadata(seg).unwrap().len();
    // Half a record more, as a write interrupted by a crash leaves it.
    let mut partial = Vec::new();
    partial.extend_from_slice(&(40u32).to_le_bytes());
    partial.extend_from_slice(&[0x5a; 17]);
    OpenOptions::new()
        .append(true)
        .open(seg)
        .unwrap()
        .write_all(&partial)
        .unwrap();

    let (log, mut readers, recovery) = open(dir.path(), 1 << 20, &["sink"]);
    assert_eq!(recovery.truncated_bytes, partial.len() as u64);
    assert_eq!(recovery.corrupted_records, 0);
    assert_eq!(
        fs::metadata(seg).unwrap().len(),
        full,
        "tail cut back to the last whole record"
    );
    let got = drain(&mut readers[0]);
    assert_eq!(seqs(&got), vec![0, 1, 2, 3, 4]);
    for r in &got {
        assert_eq!(r.payload, payload(r.seq));
    }
    assert_eq!(
        log.append(1, b"after").unwrap(),
        5,
        "appends continue right after the last record"
    );
}

#[test]
fn record_cut_in_half_at_the_end_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    log_with(dir.path(), 1 << 20, 4);
    let seg = &segments(dir.path())[0];
    let offs = record_offsets(0, 4);
    let full = fs::metadata(seg).unwrap().len();
    let cut = offs[3] + 10;
    OpenOptions::new()
        .write(true)
        .open(seg)
        .unwrap()
        .set_len(cut)
        .unwrap();
    let (log, mut readers, recovery) = open(dir.path(), 1 << 20, &["sink"]);
    assert_eq!(recovery.truncated_bytes, 10);
    assert!(full > cut);
    assert_eq!(seqs(&drain(&mut readers[0])), vec![0, 1, 2]);
    assert_eq!(log.stats().next_seq, 3);
}

#[test]
fn bit_flip_in_a_payload_skips_that_record_only() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    log_with(dir.path(), 1 << 20, 6);
    let seg = &segments(dir.path())[0];
    let offs = record_offsets(0, 6);
    flip(seg, offs[2] + HEADER + 5, 0x08);

    let (log, mut readers, recovery) = open(dir.path(), 1 << 20, &["sink"]);
    assert_eq!(recovery.corrupted_records, 1);
    assert_eq!(recovery.corrupted_bytes, offs[3] - offs[2]);
    assert_eq!(recovery.lost_seqs, 1);
    assert_eq!(recovery.truncated_bytes, 0);
    let got = drain(&mut readers[0]);
    assert_eq!(seqs(&got), vec![0, 1, 3, 4, 5]);
    for r in &got {
        assert_eq!(r.payload, payload(r.seq), "no damaged payload is delivered");
    }
    assert_eq!(log.append(1, b"x").unwrap(), 6);
}

#[test]
fn zeroed_length_prefix_is_skipped_by_scanning_for_the_next_header() {
    let dir = tempfile::tempdir().unwrap();
    log_with(dir.path(), 1 << 20, 6);
    let seg = &segments(dir.path())[0];
    let offs = record_offsets(0, 6);
    let mut bytes = fs::read(seg).unwrap();
    bytes[offs[1] as usize..offs[1] as usize + 4].fill(0);
    fs::write(seg, bytes).unwrap();

    let (_log, mut readers, recovery) = open(dir.path(), 1 << 20, &["sink"]);
    assert_eq!(recovery.corrupted_records, 1);
    assert_eq!(recovery.corrupted_bytes, offs[2] - offs[1]);
    assert_eq!(seqs(&drain(&mut readers[0])), vec![0, 2, 3, 4, 5]);
}

#[test]
fn garbage_length_prefix_pointing_past_the_end_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    log_with(dir.path(), 1 << 20, 5);
    let seg = &segments(dir.path())[0];
    let offs = record_offsets(0, 5);
    let mut bytes = fs::read(seg).unwrap();
    bytes[offs[2] as usize..offs[2] as usize + 4].copy_from_slice(&0x00ff_ffffu32.to_le_bytes());
    fs::write(seg, bytes).unwrap();
    let (_log, mut readers, recovery) = open(dir.path(), 1 << 20, &["sink"]);
    assert_eq!(recovery.corrupted_records, 1);
    assert_eq!(seqs(&drain(&mut readers[0])), vec![0, 1, 3, 4]);
}

#[test]
fn shortened_middle_segment_loses_only_its_cut_record() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    // About four records per segment.
    log_with(dir.path(), 200, 20);
    let segs = segments(dir.path());
    assert!(segs.len() >= 4, "expected several segments, got {}", segs.len());
    let middle = &segs[1];
    let first: u64 = middle.file_stem().unwrap().to_str().unwrap().parse().unwrap();
    let next_first: u64 = segs[2].file_stem().unwrap().to_str().unwrap().parse().unwrap();
    let offs = record_offsets(first, next_first - first);
    let last = *offs.last().unwrap();
    OpenOptions::new()
        .write(true)
        .open(middle)
        .unwrap()
        .set_len(last + 7)
        .unwrap();

    let (_log, mut readers, recovery) = open(dir.path(), 200, &["sink"]);
    assert_eq!(recovery.corrupted_records, 1);
    assert_eq!(recovery.corrupted_bytes, 7);
    assert_eq!(recovery.lost_seqs, 1);
    assert_eq!(
        recovery.truncated_bytes, 0,
        "only the newest segment is truncated"
    );
    let lost = next_first - 1;
    let want: Vec<u64> = (0..20).filter(|&s| s != lost).collect();
    let got = drain(&mut readers[0]);
    assert_eq!(seqs(&got), want);
    for r in &got {
        assert_eq!(r.payload, payload(r.seq));
    }
}

#[test]
fn stale_position_file_gives_duplicates_never_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let (log, mut readers, _) = open(dir.path(), 1 << 20, &["sink"]);
    append_n(&log, 0..10);
    let r = &mut readers[0];
    for rec in drain(r).into_iter().take(3) {
        r.ack(rec.seq);
    }
    r.persist().unwrap();
    let backup = backup_positions(dir.path());
    // Everything is acknowledged afterwards and the position written several times.
    r.rewind();
    for rec in drain(r) {
        r.ack(rec.seq);
        r.persist().unwrap();
    }
    drop(readers);
    drop(log);
    // Restore the old position files (as from a backup).
    restore_positions(dir.path(), &backup);

    let (_log, mut readers, recovery) = open(dir.path(), 1 << 20, &["sink"]);
    assert!(
        recovery.damaged_positions.is_empty(),
        "a stale file is valid, just old"
    );
    assert_eq!(seqs(&drain(&mut readers[0])), (3..10).collect::<Vec<_>>());
}

#[test]
fn stale_position_below_deleted_segments_restarts_at_the_oldest_retained() {
    let dir = tempfile::tempdir().unwrap();
    let (log, mut readers, _) = open(dir.path(), 150, &["sink"]);
    append_n(&log, 0..30);
    // The position files as a backup taken now: position 0.
    let backup = backup_positions(dir.path());
    drain_ack(&mut readers[0]);
    readers[0].persist().unwrap();
    append_n(&log, 30..33);
    drop(readers);
    drop(log);
    let before = segments(dir.path());
    let oldest: u64 = before[0].file_stem().unwrap().to_str().unwrap().parse().unwrap();
    assert!(oldest > 0, "acknowledged segments were deleted");
    restore_positions(dir.path(), &backup);

    let (_log, mut readers, _) = open(dir.path(), 150, &["sink"]);
    let got = seqs(&drain(&mut readers[0]));
    assert_eq!(got.first().copied(), Some(oldest));
    assert!(got.ends_with(&[30, 31, 32]));
}

#[test]
fn damaged_position_files_restart_from_the_oldest_retained_data() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let (log, mut readers, _) = open(dir.path(), 1 << 20, &["sink", "other"]);
    append_n(&log, 0..8);
    for r in &mut readers {
        drain_ack(r);
        r.persist().unwrap();
    }
    drop(readers);
    drop(log);
    fs::write(dir.path().join("sink.pos0"), b"not a position").unwrap();
    fs::write(dir.path().join("sink.pos1"), [0u8; 28]).unwrap();

    let (_log, mut readers, recovery) = open(dir.path(), 1 << 20, &["sink", "other"]);
    assert_eq!(recovery.damaged_positions, vec!["sink".to_owned()]);
    assert_eq!(
        seqs(&drain(&mut readers[0])),
        (0..8).collect::<Vec<_>>(),
        "duplicates, no gap"
    );
    assert!(
        drain(&mut readers[1]).is_empty(),
        "the undamaged reader keeps its position"
    );
}

#[test]
fn one_torn_position_file_falls_back_to_the_previous_generation() {
    let dir = tempfile::tempdir().unwrap();
    let (log, mut readers, _) = open(dir.path(), 1 << 20, &["sink"]);
    append_n(&log, 0..8);
    let r = &mut readers[0];
    let got = drain(r);
    r.ack(got[0].seq);
    r.persist().unwrap(); // position 1
    r.ack(got[1].seq);
    r.persist().unwrap(); // position 2
    drop(readers);
    drop(log);
    // Find the newest file and tear it.
    let newest = ["sink.pos0", "sink.pos1"]
        .iter()
        .map(|f| dir.path().join(f))
        .max_by_key(|p| u64::from_le_bytes(fs::read(p).unwrap()[8..16].try_into().unwrap()))
        .unwrap();
    let bytes = fs::read(&newest).unwrap();
    fs::write(&newest, &bytes[..11]).unwrap();

    let (_log, mut readers, recovery) = open(dir.path(), 1 << 20, &["sink"]);
    assert_eq!(recovery.damaged_positions, vec!["sink".to_owned()]);
    assert_eq!(seqs(&drain(&mut readers[0])), (1..8).collect::<Vec<_>>());
}

#[test]
fn missing_position_files_of_a_known_reader_restart_from_the_oldest() {
    let dir = tempfile::tempdir().unwrap();
    let (log, mut readers, _) = open(dir.path(), 1 << 20, &["sink"]);
    append_n(&log, 0..5);
    drain_ack(&mut readers[0]);
    drop(readers);
    drop(log);
    fs::remove_file(dir.path().join("sink.pos0")).ok();
    fs::remove_file(dir.path().join("sink.pos1")).ok();
    let (_log, mut readers, recovery) = open(dir.path(), 1 << 20, &["sink"]);
    assert_eq!(recovery.damaged_positions, vec!["sink".to_owned()]);
    assert_eq!(seqs(&drain(&mut readers[0])), (0..5).collect::<Vec<_>>());
}

#[test]
fn new_reader_starts_at_the_head_and_removed_readers_lose_their_position() {
    let dir = tempfile::tempdir().unwrap();
    let (log, readers, _) = open(dir.path(), 1 << 20, &["old"]);
    append_n(&log, 0..5);
    drop(readers);
    drop(log);
    let (log, mut readers, recovery) = open(dir.path(), 1 << 20, &["new"]);
    assert!(recovery.damaged_positions.is_empty());
    assert!(!dir.path().join("old.pos0").exists() && !dir.path().join("old.pos1").exists());
    assert!(
        drain(&mut readers[0]).is_empty(),
        "a new reader gets only what comes next"
    );
    log.append(1, b"next").unwrap();
    assert_eq!(seqs(&drain(&mut readers[0])), vec![5]);
}

#[test]
fn new_reader_killed_before_its_first_ack_does_not_skip_data() {
    let dir = tempfile::tempdir().unwrap();
    let (log, readers, _) = open(dir.path(), 1 << 20, &["sink"]);
    append_n(&log, 0..3);
    // A crash: nothing is dropped cleanly.
    std::mem::forget(readers);
    drop(log);
    let (_log, mut readers, _) = open(dir.path(), 1 << 20, &["sink"]);
    assert_eq!(seqs(&drain(&mut readers[0])), vec![0, 1, 2]);
}

#[test]
fn sequence_continues_after_everything_was_acknowledged_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let (log, mut readers, _) = open(dir.path(), 100, &["sink"]);
    append_n(&log, 0..10);
    drain_ack(&mut readers[0]);
    readers[0].persist().unwrap();
    // Roll once more so that every older segment is passed.
    log.append(1, &[0u8; 200]).unwrap();
    drain_ack(&mut readers[0]);
    drop(readers);
    drop(log);
    assert_eq!(segments(dir.path()).len(), 1, "only the newest segment is kept");
    let (log, _readers, _) = open(dir.path(), 100, &["sink"]);
    assert_eq!(log.append(1, b"x").unwrap(), 11);
}

#[test]
fn position_ahead_of_the_data_moves_the_sequence_past_it() {
    // After a power loss the last appends may be gone while a reader had already written a
    // position past them; new records must not reuse those seqs (the reader would skip them).
    let dir = tempfile::tempdir().unwrap();
    let (log, mut readers, _) = open(dir.path(), 1 << 20, &["sink"]);
    append_n(&log, 0..6);
    drain_ack(&mut readers[0]);
    readers[0].persist().unwrap();
    drop(readers);
    drop(log);
    let seg = &segments(dir.path())[0];
    let offs = record_offsets(0, 6);
    OpenOptions::new()
        .write(true)
        .open(seg)
        .unwrap()
        .set_len(offs[4])
        .unwrap();
    let (log, mut readers, recovery) = open(dir.path(), 1 << 20, &["sink"]);
    assert_eq!(recovery.lost_seqs, 2);
    assert_eq!(log.append(1, b"new").unwrap(), 6);
    let got = drain(&mut readers[0]);
    assert_eq!(seqs(&got), vec![6]);
}

#[test]
fn reopening_repeatedly_without_damage_reports_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..5u64 {
        let (log, mut readers, recovery) = open(dir.path(), 300, &["a", "b"]);
        assert_eq!(
            recovery.truncated_bytes + recovery.corrupted_records + recovery.lost_seqs,
            0
        );
        if round > 0 {
            assert!(recovery.damaged_positions.is_empty());
        }
        append_n(&log, round * 10..round * 10 + 10);
        let got = drain_ack(&mut readers[0]);
        assert_eq!(seqs(&got), (round * 10..round * 10 + 10).collect::<Vec<_>>());
    }
}

fn any_content(dir: &std::path::Path, seg: &[u8]) {
    let (log, readers, _) = open(dir, 1 << 20, &["sink"]);
    drop(readers);
    drop(log);
    let path = &segments(dir)[0];
    fs::write(path, seg).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Random damage anywhere in a segment: open never panics, every delivered record is one
    /// that was written (same payload), in order, and damage is accounted for.
    #[test]
    fn random_damage_never_delivers_garbage(
        n in 1u64..40,
        hits in proptest::collection::vec((any::<u16>(), any::<u8>()), 1..6),
        cut in proptest::option::of(any::<u16>()),
    ) {
        let dir = tempfile::tempdir().unwrap();
        log_with(dir.path(), 1 << 20, n);
        let path = segments(dir.path())[0].clone();
        let mut bytes = fs::read(&path).unwrap();
        for (at, x) in hits {
            let i = at as usize % bytes.len();
            bytes[i] ^= x | 1;
        }
        if let Some(c) = cut {
            bytes.truncate(c as usize % (bytes.len() + 1));
        }
        fs::write(&path, &bytes).unwrap();
        let (log, mut readers, recovery) = open(dir.path(), 1 << 20, &["sink"]);
        let got = drain(&mut readers[0]);
        let mut last = None;
        for r in &got {
            prop_assert!(r.seq < n);
            prop_assert_eq!(&r.payload, &payload(r.seq));
            prop_assert!(last < Some(r.seq));
            last = Some(r.seq);
        }
        // (A cut exactly between records looks like a shorter log: nothing to detect.)
        if (got.len() as u64) < n && cut.is_none() {
            prop_assert!(recovery.truncated_bytes + recovery.corrupted_bytes > 0 || recovery.lost_seqs > 0);
        }
        let next = log.append(1, b"after").unwrap();
        prop_assert!(next >= last.map_or(0, |l| l + 1));
    }

    /// Arbitrary bytes as a segment, position and reader list: open returns, never panics.
    #[test]
    fn arbitrary_files_never_panic(
        seg in proptest::collection::vec(any::<u8>(), 0..600),
        pos in proptest::collection::vec(any::<u8>(), 0..40),
        manifest in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        let dir = tempfile::tempdir().unwrap();
        any_content(dir.path(), &seg);
        fs::write(dir.path().join("sink.pos0"), &pos).unwrap();
        fs::write(dir.path().join("readers"), &manifest).unwrap();
        if let Ok((log, mut readers, _)) = Log::open(dir.path(), options(1 << 20), &[("sink", patient())]) {
            let _ = drain(&mut readers[0]);
            let _ = log.append(1, b"x").unwrap();
        }
    }
}
