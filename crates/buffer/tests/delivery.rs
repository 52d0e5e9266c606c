//! Delivery: live and replay lanes, acknowledgements, quotas and overflow, waiting, fsync.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use backplane_buffer::{AppendError, FsyncPolicy, Log, LogOptions, Overflow, ReaderOptions};
use support::*;

fn reader_options(quota_bytes: u64, overflow: Overflow, live_lag: Duration) -> ReaderOptions {
    ReaderOptions {
        quota_bytes,
        overflow,
        live_lag,
    }
}

#[test]
fn live_data_is_not_starved_behind_a_backlog() {
    let dir = tempfile::tempdir().unwrap();
    let lag = Duration::from_millis(50);
    let (log, mut readers, _) = Log::open(
        dir.path(),
        options(1 << 20),
        &[("sink", reader_options(1 << 30, Overflow::DropOldest, lag))],
    )
    .unwrap();
    append_n(&log, 0..50);
    std::thread::sleep(lag * 2);
    let r = &mut readers[0];

    // The backlog is older than live_lag: it goes to the replay lane.
    let first = r.try_next().unwrap().unwrap();
    assert_eq!((first.seq, first.replay), (0, true));
    assert!(r.monitor().stats().replaying);

    // A new record comes next, ahead of the remaining backlog.
    let live = log.append(1, b"live-1").unwrap();
    let got = r.try_next().unwrap().unwrap();
    assert_eq!(
        (got.seq, got.replay, got.payload.as_slice()),
        (live, false, &b"live-1"[..])
    );
    assert_eq!(
        r.try_next().unwrap().unwrap().seq,
        1,
        "then the replay lane goes on in order"
    );

    let l2 = log.append(1, b"live-2").unwrap();
    let l3 = log.append(1, b"live-3").unwrap();
    assert_eq!(
        seqs(&[r.try_next().unwrap().unwrap(), r.try_next().unwrap().unwrap()]),
        vec![l2, l3]
    );
    let rest = drain(r);
    assert_eq!(seqs(&rest), (2..50).collect::<Vec<_>>());
    assert!(rest.iter().all(|x| x.replay));
    assert!(!r.monitor().stats().replaying);
}

#[test]
fn rewind_redelivers_exactly_the_unacknowledged_records() {
    let dir = tempfile::tempdir().unwrap();
    let (log, mut readers, _) = open(dir.path(), 1 << 20, &["sink"]);
    append_n(&log, 0..6);
    let r = &mut readers[0];
    let first = drain(r);
    assert!(first.iter().all(|x| !x.replay));
    r.ack(1);
    r.ack(3);
    r.rewind();
    let live = log.append(1, b"new").unwrap();
    let again = drain(r);
    assert_eq!(
        (again[0].seq, again[0].replay),
        (live, false),
        "live first after a rewind too"
    );
    assert_eq!(seqs(&again[1..]), vec![0, 2, 4, 5]);
    assert!(again[1..].iter().all(|x| x.replay));
    for x in &again[1..] {
        assert_eq!(x.payload, payload(x.seq));
    }
}

#[test]
fn out_of_order_acks_move_the_position_only_past_contiguous_records() {
    let dir = tempfile::tempdir().unwrap();
    let (log, mut readers, _) = open(dir.path(), 1 << 20, &["sink"]);
    append_n(&log, 0..6);
    let r = &mut readers[0];
    drain(r);
    for s in [4, 2, 3] {
        r.ack(s);
    }
    assert_eq!(r.monitor().stats().backlog_seqs, 6);
    r.ack(0);
    assert_eq!(r.monitor().stats().backlog_seqs, 5);
    r.ack(1);
    assert_eq!(
        r.monitor().stats().backlog_seqs,
        1,
        "0..5 acknowledged, 5 still out"
    );
    r.ack(1); // a second ack is ignored
    assert_eq!(r.monitor().stats().acked_seqs, 5);
    drop(readers);
    drop(log);
    let (_log, mut readers, _) = open(dir.path(), 1 << 20, &["sink"]);
    assert_eq!(seqs(&drain(&mut readers[0])), vec![5]);
}

#[test]
fn acknowledged_ranges_stay_bounded_while_a_backlog_waits() {
    let dir = tempfile::tempdir().unwrap();
    let lag = Duration::from_millis(30);
    let (log, mut readers, _) = Log::open(
        dir.path(),
        options(1 << 20),
        &[("sink", reader_options(1 << 30, Overflow::DropOldest, lag))],
    )
    .unwrap();
    append_n(&log, 0..100);
    std::thread::sleep(lag * 2);
    let r = &mut readers[0];
    let first = r.try_next().unwrap().unwrap();
    assert!(first.replay);
    for i in 0..500u64 {
        let seq = log.append(1, &payload(i)).unwrap();
        let got = r.try_next().unwrap().unwrap();
        assert_eq!((got.seq, got.replay), (seq, false));
        r.ack(seq);
    }
    let debug = format!("{r:?}");
    assert!(debug.contains("acked_ranges: 1"), "{debug}");
    assert!(debug.contains("in_flight: 1"), "{debug}");
    assert_eq!(
        r.monitor().stats().backlog_seqs,
        600,
        "the backlog is not acknowledged"
    );
}

#[test]
fn stats_follow_the_backlog() {
    let dir = tempfile::tempdir().unwrap();
    let (log, mut readers, _) = open(dir.path(), 1 << 20, &["sink"]);
    let r = &mut readers[0];
    let m = r.monitor();
    assert_eq!(m.name(), "sink");
    assert_eq!(m.stats().backlog_seqs, 0);
    assert!(m.stats().oldest_unacked_age.is_none());
    log.append(10, &[1u8; 100]).unwrap();
    log.append(5, &[2u8; 50]).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let s = m.stats();
    assert_eq!(s.backlog_seqs, 15);
    assert_eq!(s.backlog_bytes, 2 * HEADER + 150);
    assert!(s.oldest_unacked_age.unwrap() >= Duration::from_millis(20));
    let got = drain(r);
    assert_eq!(m.stats().delivered_seqs, 15);
    r.ack(got[0].seq);
    let s = m.stats();
    assert_eq!(
        (s.backlog_seqs, s.backlog_bytes, s.acked_seqs),
        (5, HEADER + 50, 10)
    );
    r.ack(got[1].seq);
    let s = m.stats();
    assert_eq!((s.backlog_seqs, s.backlog_bytes), (0, 0));
    assert!(s.oldest_unacked_age.is_none());
    let ls = log.stats();
    assert_eq!((ls.next_seq, ls.appended_records, ls.appended_seqs), (15, 2, 15));
    assert_eq!(ls.bytes, 2 * HEADER + 150);
}

#[test]
fn drop_oldest_drops_whole_oldest_segments_and_counts_them() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let seg = 300;
    let quota = 1000;
    let (log, mut readers, _) = Log::open(
        dir.path(),
        options(seg),
        &[(
            "sink",
            reader_options(quota, Overflow::DropOldest, Duration::from_secs(3600)),
        )],
    )
    .unwrap();
    let r = &mut readers[0];
    // Take and hold two records in flight, then fall far behind.
    append_n(&log, 0..2);
    let held = drain(r);
    append_n(&log, 2..200);
    let s = r.monitor().stats();
    assert!(s.dropped_seqs > 0);
    assert!(s.backlog_bytes <= quota, "backlog {} over quota", s.backlog_bytes);
    assert_eq!(s.backlog_seqs + s.dropped_seqs, 200);
    let first_kept = 200 - s.backlog_seqs;
    let kept_segment = dir.path().join(format!("{first_kept:020}.log"));
    assert!(kept_segment.exists(), "the reader resumes at a segment start");
    assert!(
        segments(dir.path()).len() <= (quota / seg + 2) as usize,
        "dropped segments are deleted"
    );
    // Acks of dropped records are ignored; delivery resumes at the first kept record.
    for h in &held {
        r.ack(h.seq);
    }
    let rest = drain(r);
    assert_eq!(seqs(&rest), (first_kept..200).collect::<Vec<_>>());
    for x in &rest {
        assert_eq!(x.payload, payload(x.seq));
    }
}

#[tokio::test]
async fn block_refuses_appends_until_the_reader_acknowledges() {
    let dir = tempfile::tempdir().unwrap();
    let quota = 500;
    let (log, mut readers, _) = Log::open(
        dir.path(),
        options(200),
        &[
            (
                "blocking",
                reader_options(quota, Overflow::Block, Duration::from_secs(3600)),
            ),
            ("other", patient()),
        ],
    )
    .unwrap();
    let mut appended = 0u64;
    let full_at = loop {
        match log.append(1, &payload(appended)) {
            Ok(_) => appended += 1,
            Err(AppendError::Full { reader }) => {
                assert_eq!(reader, "blocking");
                break appended;
            }
            Err(e) => panic!("{e}"),
        }
        assert!(appended < 100, "never full");
    };
    let stats = log.stats();
    assert!(matches!(log.append(1, b"x"), Err(AppendError::Full { .. })));
    assert_eq!(
        log.stats().next_seq,
        stats.next_seq,
        "a refused append writes nothing"
    );
    let backlog = readers[0].monitor().stats().backlog_bytes;
    assert!(
        backlog >= quota && backlog < quota + 100,
        "over by at most one record: {backlog}"
    );

    let space = tokio::spawn({
        let log = log.clone();
        async move { log.space().await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !space.is_finished(),
        "space() waits while the reader is at its quota"
    );
    let mut r = readers.remove(0);
    let got = drain(&mut r);
    assert_eq!(got.len() as u64, full_at, "nothing was lost");
    r.ack(got[0].seq);
    r.ack(got[1].seq);
    tokio::time::timeout(Duration::from_secs(5), space)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(log.append(1, b"again").unwrap(), full_at);
}

#[tokio::test]
async fn next_waits_for_an_append_and_loses_nothing_when_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let (log, mut readers, _) = open(dir.path(), 1 << 20, &["sink"]);
    let mut r = readers.remove(0);
    let writer = std::thread::spawn({
        let log = log.clone();
        move || {
            for i in 0..20 {
                std::thread::sleep(Duration::from_millis(3));
                log.append(1, &payload(i)).unwrap();
            }
        }
    });
    let mut got = Vec::new();
    let mut cancelled = 0;
    while got.len() < 20 {
        tokio::select! {
            rec = r.next() => got.push(rec.unwrap()),
            _ = tokio::time::sleep(Duration::from_millis(1)) => cancelled += 1,
        }
    }
    writer.join().unwrap();
    assert!(cancelled > 0, "the race should cancel next() sometimes");
    assert_eq!(seqs(&got), (0..20).collect::<Vec<_>>());
    assert!(r.try_next().unwrap().is_none());
}

#[test]
fn appenders_on_several_threads_and_a_reader_meanwhile_lose_and_mix_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // Small segments: rolls happen between the appenders' writes.
    let (log, mut readers, _) = open(dir.path(), 4096, &["sink"]);
    let mut r = readers.remove(0);
    let (threads, per_thread) = (4u64, 2000u64);
    // Each payload names its record, then the usual pattern.
    fn named(id: u64) -> Vec<u8> {
        let mut p = id.to_le_bytes().to_vec();
        p.extend(payload(id));
        p
    }
    let writers: Vec<_> = (0..threads)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                (0..per_thread)
                    .map(|i| {
                        let id = t * per_thread + i;
                        (log.append(1, &named(id)).unwrap(), id)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while got.len() < (threads * per_thread) as usize && std::time::Instant::now() < deadline {
        got.extend(drain(&mut r));
        std::thread::yield_now();
    }
    let mut appended: Vec<(u64, u64)> = writers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    appended.sort_unstable();
    assert_eq!(
        seqs(&got),
        (0..threads * per_thread).collect::<Vec<_>>(),
        "every seq once, in order"
    );
    for (rec, (seq, id)) in got.iter().zip(&appended) {
        assert_eq!(rec.seq, *seq);
        assert_eq!(
            rec.payload,
            named(*id),
            "record {seq} holds what its append wrote"
        );
    }
    drop(r);
    drop(log);
    // And the files hold every record whole: recovery finds nothing to cut.
    let (log, _readers, recovery) = open(dir.path(), 4096, &["sink"]);
    assert_eq!((recovery.corrupted_records, recovery.truncated_bytes), (0, 0));
    assert_eq!(log.stats().next_seq, threads * per_thread);
}

#[tokio::test]
async fn concurrent_syncs_all_succeed_and_cover_prior_appends() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LogOptions {
        segment_bytes: 1 << 20,
        fsync: FsyncPolicy::Interval(Duration::from_secs(3600)),
    };
    let (log, _readers, _) = Log::open(dir.path(), opts, &[("sink", patient())]).unwrap();
    append_n(&log, 0..100);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move { log.sync().await }));
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(10), t)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
    log.sync().await.unwrap();
}

#[test]
fn fsync_always_appends_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LogOptions {
        segment_bytes: 500,
        fsync: FsyncPolicy::Always,
    };
    {
        let (log, _readers, _) = Log::open(dir.path(), opts.clone(), &[("sink", patient())]).unwrap();
        append_n(&log, 0..30);
    }
    let (_log, mut readers, recovery) = Log::open(dir.path(), opts, &[("sink", patient())]).unwrap();
    assert_eq!(recovery.truncated_bytes, 0);
    assert_eq!(seqs(&drain(&mut readers[0])), (0..30).collect::<Vec<_>>());
}

#[test]
fn invalid_input_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad_name = Log::open(dir.path(), options(1000), &[("no/slash", patient())]).unwrap_err();
    assert!(bad_name.to_string().contains("no/slash"), "{bad_name}");
    let twice = Log::open(dir.path(), options(1000), &[("a", patient()), ("a", patient())]).unwrap_err();
    assert!(twice.to_string().contains("twice"), "{twice}");
    let zero = Log::open(dir.path(), options(0), &[]).unwrap_err();
    assert!(zero.to_string().contains("segment_bytes"), "{zero}");
    let (log, _r, _) = open(dir.path(), 1000, &["a"]);
    assert!(matches!(log.append(0, b"x"), Err(AppendError::Buffer(_))));
    let huge = vec![0u8; backplane_buffer::MAX_PAYLOAD + 1];
    assert!(matches!(log.append(1, &huge), Err(AppendError::Buffer(_))));
    assert_eq!(log.stats().next_seq, 0);
}

#[test]
fn a_log_without_readers_keeps_only_the_newest_segment() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _readers, _) = Log::open(dir.path(), options(200), &[]).unwrap();
    append_n(&log, 0..50);
    assert!(segments(dir.path()).len() <= 2);
    assert_eq!(log.stats().next_seq, 50);
}

#[test]
fn log_and_reader_are_send_and_sync_as_promised() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Log>();
    send_sync::<backplane_buffer::ReaderMonitor>();
    send::<backplane_buffer::Reader>();
    // The futures too, so sink tasks can be spawned on a multi-threaded runtime.
    fn send_future<F: std::future::Future + Send>(_: F) {}
    let dir = tempfile::tempdir().unwrap();
    let (log, mut readers, _) = open(dir.path(), 1000, &["sink"]);
    send_future(readers[0].next());
    send_future(log.sync());
    send_future(log.space());
}
