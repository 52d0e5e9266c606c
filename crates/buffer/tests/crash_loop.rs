//! kill -9 in a loop: a child process appends and delivers while the parent SIGKILLs it at
//! random moments and starts it again, many times; a last child runs undisturbed to drain.
//!
//! What must hold:
//! - every id whose append returned ("acked") is delivered and acknowledged by the consumer
//!   ("confirmed") at least once: a record delivered but killed before its acknowledgement
//!   must come again;
//! - no delivered record is unknown, and every payload matches its id;
//! - duplicates per kill are bounded by what can be in flight: the child holds at most
//!   `WINDOW` records delivered and not acknowledged, acknowledges them in shuffled order, and
//!   persists its position after every `PERSIST_EVERY_ACKS` acknowledgements. After a kill the
//!   reader restarts at the position last written, or the one before if the kill tore that
//!   write. Everything delivered at or after that position comes again: at most the records in
//!   flight when each of the two positions was taken (2 × WINDOW) plus the acknowledgements
//!   since the older one (2 × PERSIST_EVERY_ACKS). Automatic persistence only writes more
//!   often, so it only lowers this.
//!
//! The child is this test binary itself, started with `--exact crash_child --ignored`, so it
//! needs no extra target and is built by any `cargo test`.
//! `BACKPLANE_CRASH_LOOP_KILLS` sets the number of kills: 200 by default (the CI run), 1000
//! in the long mode (`bash .ci/run --long`; figures in docs/reliability.md).
//! `BACKPLANE_CRASH_SEED` replays a run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use backplane_buffer::{FsyncPolicy, Log, LogOptions, Overflow, ReaderOptions};
use rand::{Rng, SeedableRng};

/// Starts every line of the child's protocol (libtest may print on the same line before it).
const MARK: &str = "#bp ";
const WINDOW: usize = 8;
const PERSIST_EVERY_ACKS: u64 = 16;
const DUPLICATES_PER_KILL: u64 = 2 * WINDOW as u64 + 2 * PERSIST_EVERY_ACKS;

/// The payload of id: the id, then bytes derived from it, of a length derived from it.
fn payload_for(id: u64) -> Vec<u8> {
    let mut out = id.to_le_bytes().to_vec();
    let mix = id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    out.extend((0..(id % 61 + 4)).map(|k| (mix >> (k % 57)) as u8 ^ k as u8));
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn say(line: &str) {
    // One write per line (well under PIPE_BUF): a kill never leaves half a line.
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(format!("{MARK}{line}\n").as_bytes());
    let _ = out.flush();
}

fn open_child_log(dir: &Path) -> (Log, backplane_buffer::Reader) {
    let options = LogOptions {
        // Small segments: rolling and deletion happen often under the kills.
        segment_bytes: 16 << 10,
        fsync: FsyncPolicy::Interval(Duration::from_millis(20)),
    };
    let reader = ReaderOptions {
        quota_bytes: 1 << 30,
        overflow: Overflow::DropOldest,
        // Short, so that the lanes switch too.
        live_lag: Duration::from_millis(50),
    };
    let (log, mut readers, _) = Log::open(dir, options, &[("sink", reader)]).unwrap();
    (log, readers.remove(0))
}

/// The child: produce (unless draining) and consume until killed, or until drained.
fn child_main(dir: &Path, run: u64, drain: bool) {
    let (log, mut reader) = open_child_log(dir);
    if !drain {
        let log = log.clone();
        std::thread::spawn(move || {
            for i in 0.. {
                let id = run * 1_000_000 + i;
                say(&format!("appending {id}"));
                log.append(1 + (id % 3) as u32, &payload_for(id)).unwrap();
                say(&format!("acked {id}"));
                std::thread::sleep(Duration::from_micros(300));
            }
        });
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let monitor = reader.monitor();
    let mut in_flight = Vec::new();
    let mut acks = 0u64;
    let mut shuffle = run.wrapping_mul(6364136223846793005) | 1;
    loop {
        let record = if in_flight.len() < WINDOW {
            if drain {
                reader.try_next().unwrap()
            } else {
                rt.block_on(async { tokio::time::timeout(Duration::from_millis(5), reader.next()).await })
                    .ok()
                    .map(|r| r.unwrap())
            }
        } else {
            None
        };
        let idle = record.is_none();
        if let Some(r) = record {
            say(&format!("delivered {}", hex(&r.payload)));
            let id = u64::from_le_bytes(r.payload[..8].try_into().unwrap());
            in_flight.push((r.seq, id));
        }
        if in_flight.len() >= WINDOW || idle {
            // Acknowledge in shuffled order, as a broker's acks may come.
            while !in_flight.is_empty() {
                shuffle = shuffle
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let (seq, id) = in_flight.swap_remove((shuffle >> 33) as usize % in_flight.len());
                reader.ack(seq);
                say(&format!("confirmed {id}"));
                acks += 1;
                if acks.is_multiple_of(PERSIST_EVERY_ACKS) {
                    reader.persist().unwrap();
                }
            }
        }
        if drain && idle && in_flight.is_empty() && monitor.stats().backlog_seqs == 0 {
            reader.persist().unwrap();
            say("drained");
            return;
        }
    }
}

#[test]
#[ignore = "the child process of crash_loop_loses_nothing_acked, which starts it"]
fn crash_child() {
    let Ok(dir) = std::env::var("BACKPLANE_CRASH_DIR") else {
        return;
    };
    let run = std::env::var("BACKPLANE_CRASH_RUN").unwrap().parse().unwrap();
    let drain = std::env::var("BACKPLANE_CRASH_DRAIN").is_ok_and(|v| v == "1");
    child_main(Path::new(&dir), run, drain);
}

#[derive(Default)]
struct Oracle {
    attempted: BTreeSet<u64>,
    acked: BTreeSet<u64>,
    deliveries: BTreeMap<u64, u64>,
    confirmed: BTreeSet<u64>,
    drained: bool,
}

impl Oracle {
    /// Reads one child's output; only whole lines count.
    fn take(&mut self, out: &str) {
        let complete = out.rfind('\n').map_or("", |end| &out[..end]);
        for line in complete.lines() {
            let Some(at) = line.find(MARK) else { continue };
            let line = &line[at + MARK.len()..];
            if let Some(id) = line.strip_prefix("appending ") {
                self.attempted.insert(id.parse().unwrap());
            } else if let Some(id) = line.strip_prefix("acked ") {
                self.acked.insert(id.parse().unwrap());
            } else if let Some(h) = line.strip_prefix("delivered ") {
                let payload = unhex(h).unwrap_or_else(|| panic!("bad delivery line {line:?}"));
                assert!(payload.len() >= 8, "payload too short: {line:?}");
                let id = u64::from_le_bytes(payload[..8].try_into().unwrap());
                assert_eq!(payload, payload_for(id), "payload does not match id {id}");
                assert!(self.attempted.contains(&id), "unknown id {id} delivered");
                *self.deliveries.entry(id).or_default() += 1;
            } else if let Some(id) = line.strip_prefix("confirmed ") {
                let id = id.parse().unwrap();
                assert!(
                    self.deliveries.contains_key(&id),
                    "confirmed {id} before delivering it"
                );
                self.confirmed.insert(id);
            } else if line == "drained" {
                self.drained = true;
            }
        }
    }
}

struct Output {
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
}

fn run_child(exe: &Path, dir: &Path, run: u64, drain: bool, kill_after: Option<Duration>) -> Output {
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "crash_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("BACKPLANE_CRASH_DIR", dir)
        .env("BACKPLANE_CRASH_RUN", run.to_string())
        .env("BACKPLANE_CRASH_DRAIN", if drain { "1" } else { "0" })
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).unwrap();
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        stderr.read_to_string(&mut s).unwrap();
        s
    });
    let status = match kill_after {
        Some(delay) => {
            std::thread::sleep(delay);
            if let Some(status) = child.try_wait().unwrap() {
                let stderr = err.join().unwrap();
                panic!("child {run} ended by itself ({status}) before the kill:\n{stderr}");
            }
            // SIGKILL on Unix.
            child.kill().unwrap();
            child.wait().unwrap()
        }
        None => {
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    break status;
                }
                if Instant::now() > deadline {
                    child.kill().unwrap();
                    panic!("draining child did not finish in time");
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Kills of the default (CI) run.
const DEFAULT_KILLS: u64 = 200;

/// A number from the environment; a value that is not one fails the test rather than
/// silently running the default.
fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok().filter(|v| !v.is_empty())?;
    Some(
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a whole number")),
    )
}

#[test]
fn crash_loop_loses_nothing_acked() {
    let iterations = env_number("BACKPLANE_CRASH_LOOP_KILLS").unwrap_or(DEFAULT_KILLS);
    assert!(iterations > 0, "BACKPLANE_CRASH_LOOP_KILLS must be at least 1");
    let seed = env_number("BACKPLANE_CRASH_SEED").unwrap_or_else(rand::random);
    eprintln!("crash loop: {iterations} kills, BACKPLANE_CRASH_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let exe = std::env::current_exe().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut oracle = Oracle::default();
    let started = Instant::now();
    for run in 0..iterations {
        let delay = Duration::from_millis(rng.random_range(5..=150));
        let out = run_child(&exe, dir.path(), run, false, Some(delay));
        assert_eq!(
            out.status.signal(),
            Some(9),
            "child {run}: {}\n{}",
            out.status,
            out.stderr
        );
        oracle.take(&out.stdout);
    }
    let out = run_child(&exe, dir.path(), iterations, true, None);
    assert!(
        out.status.success(),
        "draining child failed: {}\n{}",
        out.status,
        out.stderr
    );
    oracle.take(&out.stdout);
    assert!(oracle.drained, "the draining child did not report the end");

    let missing: Vec<u64> = oracle
        .acked
        .iter()
        .filter(|id| !oracle.confirmed.contains(id))
        .copied()
        .collect();
    let total: u64 = oracle.deliveries.values().sum();
    let duplicates = total - oracle.deliveries.len() as u64;
    let bound = iterations * DUPLICATES_PER_KILL;
    let max_per_id = oracle.deliveries.values().max().copied().unwrap_or(0);
    eprintln!(
        "crash loop: {iterations} kills in {} s, {} appended and acknowledged, {} lost, {} attempted, {} deliveries, {} duplicates (bound {}), at most {} deliveries of one id",
        started.elapsed().as_secs(),
        oracle.acked.len(),
        missing.len(),
        oracle.attempted.len(),
        total,
        duplicates,
        bound,
        max_per_id
    );
    assert!(
        missing.is_empty(),
        "{} acknowledged ids never delivered and confirmed, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert!(
        oracle.acked.len() as u64 >= iterations,
        "too little data went through to mean anything"
    );
    assert!(
        duplicates <= bound,
        "{duplicates} duplicates over the bound of {bound}"
    );
}
