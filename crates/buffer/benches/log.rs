//! Store-and-forward throughput: append (budget: >= 1 M samples/s) and drain (read + ack)
//! from a backlog. Records of 100 samples × 40 bytes, as the engine appends batches.
//! Figures are samples per second (criterion "elem/s").
//!
//! `cargo bench -p backplane-buffer --bench log`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use backplane_buffer::{FsyncPolicy, Log, LogOptions, Overflow, ReaderOptions};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const SAMPLES: u32 = 100;
const SAMPLE_BYTES: usize = 40;
/// Records kept in the backlog the drain benchmark reads from (2 M samples, ~80 MB).
const BACKLOG_RECORDS: u64 = 20_000;

fn payload() -> Vec<u8> {
    (0..SAMPLES as usize * SAMPLE_BYTES)
        .map(|i| (i * 7 + i / 13) as u8)
        .collect()
}

fn tmpdir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

fn open(dir: &std::path::Path, fsync: FsyncPolicy, quota_bytes: u64) -> (Log, Vec<backplane_buffer::Reader>) {
    let options = LogOptions {
        segment_bytes: 16 << 20,
        fsync,
    };
    let reader = ReaderOptions {
        quota_bytes,
        overflow: Overflow::DropOldest,
        live_lag: Duration::from_secs(3600),
    };
    let (log, readers, _) = Log::open(dir, options, &[("sink", reader)]).unwrap();
    (log, readers)
}

fn append(c: &mut Criterion) {
    let p = payload();
    let mut g = c.benchmark_group("append");
    g.throughput(Throughput::Elements(u64::from(SAMPLES)));

    // A reader that never reads, with a quota: the log drops and deletes as it goes, so the
    // disk use stays bounded and the overflow path is part of the figure.
    let dir = tmpdir();
    let (log, _readers) = open(
        dir.path(),
        FsyncPolicy::Interval(Duration::from_millis(100)),
        256 << 20,
    );
    g.bench_function("100x40B/fsync=100ms", |b| {
        b.iter(|| log.append(SAMPLES, black_box(&p)).unwrap())
    });
    drop(log);

    let dir = tmpdir();
    let (log, _readers) = open(dir.path(), FsyncPolicy::Always, 256 << 20);
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.bench_function("100x40B/fsync=always", |b| {
        b.iter(|| log.append(SAMPLES, black_box(&p)).unwrap())
    });
    g.finish();
}

fn drain(c: &mut Criterion) {
    let p = payload();
    let dir = tmpdir();
    let (log, mut readers) = open(
        dir.path(),
        FsyncPolicy::Interval(Duration::from_millis(100)),
        4 << 30,
    );
    let reader = &mut readers[0];
    for _ in 0..BACKLOG_RECORDS {
        log.append(SAMPLES, &p).unwrap();
    }
    let mut g = c.benchmark_group("drain");
    g.throughput(Throughput::Elements(u64::from(SAMPLES)));
    g.bench_function("read+ack/backlog=2M samples", |b| {
        b.iter_custom(|iters| {
            // Top the backlog up (untimed) so it never runs dry.
            for _ in 0..iters {
                log.append(SAMPLES, &p).unwrap();
            }
            let start = Instant::now();
            for _ in 0..iters {
                let r = reader.try_next().unwrap().unwrap();
                reader.ack(r.seq);
                black_box(r);
            }
            start.elapsed()
        });
    });
    g.finish();
}

criterion_group!(benches, append, drain);
criterion_main!(benches);
