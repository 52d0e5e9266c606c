//! Crash test: a child process appends batches and prints the last id of each batch once
//! `append` has returned (acknowledged: WAL written and fsynced); the parent SIGKILLs it at
//! random moments — mid-append, mid-flush, mid-merge — reopens the store (recovery) and
//! checks that every acknowledged id is there, exactly once. Many rounds on one store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use backplane_historian::{ContextFilter, Point, Selector, SeriesSpec, Store, StoreOptions};
use backplane_model::{Quality, Timestamp, Value};
use rand::{Rng, SeedableRng};

const CHILD_DIR: &str = "BACKPLANE_HISTORIAN_CRASH_DIR";
const SERIES: i64 = 4;
/// 2025-01-01T00:00:00Z; id `n` is written at `BASE + n * 10 ms`.
const BASE: i64 = 1_735_689_600_000_000_000;
const STEP: i64 = 10_000_000;

fn options() -> StoreOptions {
    StoreOptions {
        // Small everything, so flushes, merges and partition changes happen while killed.
        partition: Duration::from_secs(10),
        flush_interval: Duration::from_millis(50),
        flush_points: 1_500,
        max_bytes: None,
        ..StoreOptions::default()
    }
}

fn open_series(store: &Store) -> Vec<u32> {
    (0..SERIES)
        .map(|i| {
            let attribute = format!("x{i}");
            store
                .series_id(&SeriesSpec {
                    asset: "crash/test",
                    attribute: &attribute,
                    model: "Crash",
                    data_type: "int",
                    unit: None,
                })
                .unwrap()
        })
        .collect()
}

/// Every stored id, in any order.
fn stored_ids(store: &Store) -> Vec<i64> {
    let series = store.select(&Selector::All);
    store
        .raw(
            &series,
            Timestamp::from_unix_nanos(i64::MIN),
            Timestamp::from_unix_nanos(i64::MAX),
            &ContextFilter::default(),
            usize::MAX,
        )
        .unwrap()
        .into_iter()
        .flat_map(|s| s.points)
        .filter_map(|p| p.value.and_then(|v| v.as_i64()))
        .collect()
}

/// The writer. Does nothing in a normal test run; the crash test starts it as a child
/// process with the store directory in the environment.
#[test]
fn crash_writer_child_process() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let store = Store::open(Path::new(&dir), options()).unwrap();
    let ids = open_series(&store);
    // Ids grow with time, so the latest point of each series holds the highest ids.
    let latest = store
        .latest(
            &store.select(&Selector::All),
            Timestamp::from_unix_nanos(i64::MAX),
            &ContextFilter::default(),
        )
        .unwrap();
    let mut next = latest
        .iter()
        .filter_map(|(_, p)| p.as_ref()?.value.as_ref()?.as_i64())
        .max()
        .map_or(0, |m| m + 1);
    let mut stdout = std::io::stdout();
    writeln!(stdout, "ready").unwrap();
    stdout.flush().unwrap();
    let mut rng = rand::rng();
    loop {
        let n = rng.random_range(1..120);
        let points = (next..next + n)
            .map(|id| {
                (
                    ids[(id % SERIES) as usize],
                    Point {
                        time: Timestamp::from_unix_nanos(BASE + id * STEP),
                        source_time: None,
                        value: Some(Value::Int(id)),
                        quality: Quality::Good,
                        context: 0,
                    },
                )
            })
            .collect();
        store.append(points, Vec::new()).unwrap();
        next += n;
        writeln!(stdout, "ack {}", next - 1).unwrap();
        stdout.flush().unwrap();
        if rng.random_range(0..8) == 0 {
            // "Now" well after the data, so closed partitions get merged.
            store
                .maintain(Timestamp::from_unix_nanos(BASE + next * STEP + 60_000_000_000))
                .unwrap();
        }
    }
}

#[cfg(unix)]
#[test]
fn nothing_acknowledged_is_lost_when_the_writer_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let mut acknowledged = -1i64;
    let mut rounds_with_progress = 0;
    for round in 0..30 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_writer_child_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let last = Arc::new(AtomicI64::new(-1));
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let reader = std::thread::spawn({
            let last = last.clone();
            move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    // The test harness prints "test <name> ... " on the same line.
                    if line.ends_with("ready") {
                        let _ = ready_tx.send(());
                    }
                    if let Some(id) = line.strip_prefix("ack ").and_then(|n| n.parse::<i64>().ok()) {
                        last.fetch_max(id, Ordering::SeqCst);
                    }
                }
            }
        });
        if rng.random_range(0..6) == 0 {
            // Sometimes during start-up, i.e. during recovery itself.
            std::thread::sleep(Duration::from_millis(rng.random_range(0..50)));
        } else {
            ready
                .recv_timeout(Duration::from_secs(60))
                .expect("the writer did not start");
            std::thread::sleep(Duration::from_millis(rng.random_range(5..250)));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        let acked = last.load(Ordering::SeqCst);
        if acked > acknowledged {
            rounds_with_progress += 1;
            acknowledged = acked;
        }

        let store = Store::open(dir.path(), options()).unwrap();
        let ids = stored_ids(&store);
        let mut seen = HashSet::with_capacity(ids.len());
        for id in &ids {
            assert!(seen.insert(*id), "round {round}: id {id} stored twice");
        }
        for id in 0..=acknowledged {
            assert!(
                seen.contains(&id),
                "round {round}: acknowledged id {id} lost ({} stored)",
                ids.len()
            );
        }
    }
    assert!(
        rounds_with_progress >= 15 && acknowledged > 5_000,
        "the writer made too little progress to test anything: {rounds_with_progress} rounds, {acknowledged} ids"
    );
}
