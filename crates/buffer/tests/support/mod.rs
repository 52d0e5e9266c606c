//! Helpers shared by the buffer's integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use backplane_buffer::{FsyncPolicy, Log, LogOptions, Overflow, Reader, ReaderOptions, Record, Recovery};

pub const HEADER: u64 = backplane_buffer::HEADER_LEN as u64;

pub fn options(segment_bytes: u64) -> LogOptions {
    LogOptions {
        segment_bytes,
        fsync: FsyncPolicy::Interval(Duration::from_millis(50)),
    }
}

/// A reader that never jumps lanes by age (tests decide with rewind) and has a large quota.
pub fn patient() -> ReaderOptions {
    ReaderOptions {
        quota_bytes: 1 << 30,
        overflow: Overflow::DropOldest,
        live_lag: Duration::from_secs(3600),
    }
}

pub fn open(dir: &Path, segment_bytes: u64, readers: &[&str]) -> (Log, Vec<Reader>, Recovery) {
    let specs: Vec<(&str, ReaderOptions)> = readers.iter().map(|n| (*n, patient())).collect();
    Log::open(dir, options(segment_bytes), &specs).unwrap()
}

/// The payload of record `i`: recognisable, and of varying length.
pub fn payload(i: u64) -> Vec<u8> {
    let len = 20 + (i % 13) as usize;
    (0..len)
        .map(|k| (i as u8).wrapping_mul(31).wrapping_add(k as u8))
        .collect()
}

/// Appends records `0..n` of count 1 with [`payload`]; returns their seqs.
pub fn append_n(log: &Log, range: std::ops::Range<u64>) -> Vec<u64> {
    range.map(|i| log.append(1, &payload(i)).unwrap()).collect()
}

/// Every record deliverable now.
pub fn drain(reader: &mut Reader) -> Vec<Record> {
    let mut out = Vec::new();
    while let Some(r) = reader.try_next().unwrap() {
        out.push(r);
    }
    out
}

/// Every record deliverable now, each acknowledged.
pub fn drain_ack(reader: &mut Reader) -> Vec<Record> {
    let out = drain(reader);
    for r in &out {
        reader.ack(r.seq);
    }
    out
}

pub fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    out.sort();
    out
}

pub fn seqs(records: &[Record]) -> Vec<u64> {
    records.iter().map(|r| r.seq).collect()
}

/// Byte offset of each record in a segment file written by [`append_n`] starting at record
/// `first` (records of count 1 whose seq equals their index).
pub fn record_offsets(first: u64, n: u64) -> Vec<u64> {
    let mut off = 0;
    (first..first + n)
        .map(|i| {
            let at = off;
            off += HEADER + payload(i).len() as u64;
            at
        })
        .collect()
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
}
