//! Memory stays flat whatever the backlog: builds a backlog of 10 M samples (records of 100
//! samples × 40 bytes, ~400 MB on disk), reopens the log (recovery reads it all), drains it
//! (read + ack), and prints peak RSS (VmHWM) at each step and the rates.
//!
//! `cargo run --release -p backplane-buffer --example backlog_rss [SAMPLES] [DIR] [build|drain]`
//! (DIR defaults to a temporary directory, removed at the end.) With a DIR, `build` only
//! builds and `drain` only reopens and drains, so that the page cache can be emptied in
//! between for a cold-cache figure (e.g. `dd if=SEGMENT iflag=nocache count=0` per segment).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use backplane_buffer::{FsyncPolicy, Log, LogOptions, Overflow, ReaderOptions};

const SAMPLES_PER_RECORD: u32 = 100;
const SAMPLE_BYTES: usize = 40;

fn status(field: &str) -> String {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field))
        .map(|l| l[field.len()..].trim().to_owned())
        .unwrap_or_else(|| "?".into())
}

fn memory(step: &str) {
    println!(
        "{step:<28} peak RSS (VmHWM) {:>10}   RSS now {:>10}",
        status("VmHWM:"),
        status("VmRSS:")
    );
}

fn open(dir: &std::path::Path) -> (Log, backplane_buffer::Reader) {
    let reader = ReaderOptions {
        quota_bytes: 8 << 30,
        overflow: Overflow::DropOldest,
        live_lag: Duration::from_secs(2),
    };
    let options = LogOptions {
        fsync: FsyncPolicy::Interval(Duration::from_millis(100)),
        ..LogOptions::default()
    };
    let (log, mut readers, recovery) = Log::open(dir, options, &[("sink", reader)]).unwrap();
    assert_eq!(recovery.corrupted_records + recovery.truncated_bytes, 0);
    (log, readers.remove(0))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let samples: u64 = args
        .next()
        .map_or(10_000_000, |a| a.parse().expect("SAMPLES is a number"));
    let tmp = tempfile::tempdir().unwrap();
    let dir = args.next().map_or_else(|| tmp.path().to_owned(), Into::into);
    let phase = args.next().unwrap_or_else(|| "all".into());
    let records = samples / u64::from(SAMPLES_PER_RECORD);
    let payload: Vec<u8> = (0..SAMPLES_PER_RECORD as usize * SAMPLE_BYTES)
        .map(|i| (i * 31) as u8)
        .collect();
    println!(
        "backlog of {samples} samples ({records} records of {SAMPLES_PER_RECORD} × {SAMPLE_BYTES} B) in {}",
        dir.display()
    );
    memory("start");

    if phase != "drain" {
        build(&dir, samples, &payload);
    }
    if phase != "build" {
        reopen_and_drain(&dir, samples);
    }
}

fn build(dir: &std::path::Path, samples: u64, payload: &[u8]) {
    let records = samples / u64::from(SAMPLES_PER_RECORD);
    let (log, reader) = open(dir);
    let t = Instant::now();
    for _ in 0..records {
        log.append(SAMPLES_PER_RECORD, payload).unwrap();
    }
    let build = t.elapsed();
    let stats = log.stats();
    drop(reader);
    drop(log);
    println!(
        "built: {} segments, {} MB in {:.2} s = {:.1} M samples/s appended",
        stats.segments,
        stats.bytes / 1_000_000,
        build.as_secs_f64(),
        samples as f64 / build.as_secs_f64() / 1e6
    );
    memory("after building the backlog");
}

fn reopen_and_drain(dir: &std::path::Path, samples: u64) {
    let t = Instant::now();
    let (log, mut reader) = open(dir);
    let open_time = t.elapsed();
    let bytes = log.stats().bytes;
    println!(
        "reopened (recovery scan of {} MB) in {:.2} s = {:.0} MB/s",
        bytes / 1_000_000,
        open_time.as_secs_f64(),
        bytes as f64 / 1e6 / open_time.as_secs_f64()
    );
    memory("after reopening");
    let backlog = reader.monitor().stats();
    println!(
        "backlog: {} samples, {} MB",
        backlog.backlog_seqs,
        backlog.backlog_bytes / 1_000_000
    );
    memory("before draining");

    let t = Instant::now();
    let mut drained = 0u64;
    while let Some(r) = reader.try_next().unwrap() {
        drained += u64::from(r.count);
        reader.ack(r.seq);
    }
    let drain = t.elapsed();
    reader.persist().unwrap();
    assert_eq!(drained, samples, "everything delivered once");
    println!(
        "drained {drained} samples in {:.2} s = {:.1} M samples/s (read + ack)",
        drain.as_secs_f64(),
        drained as f64 / drain.as_secs_f64() / 1e6
    );
    memory("after draining");
    drop(reader);
    println!("segments left: {}", log.stats().segments);
}
