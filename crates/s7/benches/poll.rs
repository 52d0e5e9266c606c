//! Reads the silo simulator's 10 000-value load bank (DB100.DBD0..DBD39996 as UDINT)
//! through the source's own poll path (`Poller::poll`: planner, framing, decode, readings)
//! and reports the client's CPU time per million values.
//!
//! `cargo bench -p backplane-s7 --bench poll` (under `cargo test` it polls once per PDU size)
//!
//! The simulator runs on a thread and runtime of its own, so its CPU is not counted; the
//! client's is read from /proc/thread-self/schedstat. First back to back (throughput), then
//! paced at one cycle of 10k values per second, as a source with `period = "1s"` runs. At
//! 10k values per second, CPU seconds per million values is the percentage of one core.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // bench code

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backplane_s7::{Poller, S7Settings, spawn_silo_simulator};

const VALUES: usize = 10_000;

fn settings(port: u16, pdu: u16) -> Arc<S7Settings> {
    let text = format!("url = \"s7://127.0.0.1:{port}\"\npdu_size = {pdu}\ntimeout = \"2s\"\n");
    let (settings, diagnostics) =
        backplane_config::reader::with_table(&text, Path::new("bench.toml"), |mut t| {
            backplane_s7::config::parse_settings(&mut t)
        });
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    Arc::new(settings.flatten().unwrap())
}

fn start_simulator() -> u16 {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (addr, handle) = spawn_silo_simulator("127.0.0.1:0".parse().unwrap())
                .await
                .unwrap();
            tx.send(addr.port()).unwrap();
            let _ = handle.await;
        });
    });
    rx.recv().unwrap()
}

/// This thread's CPU time (the scheduler's nanosecond count, not clock ticks).
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    Duration::from_nanos(stat.split(' ').next().unwrap().parse().unwrap())
}

fn report(label: &str, requests: usize, cycles: u64, cpu: f64, wall: f64) {
    let values = cycles as f64 * VALUES as f64;
    let per_million = cpu / values * 1e6;
    // At 10k values/s a million values take 100 s: CPU s per million = % of one core.
    println!(
        "{label}: {requests} requests/cycle, {cycles} cycles of {VALUES} values in {wall:.1} s ({:.0} values/s): \
         {per_million:.3} CPU s per million values (client thread) = {per_million:.3}% of a core at 10k values/s",
        values / wall
    );
}

fn main() {
    // `cargo test --all-targets` runs benches without `--bench`: one cycle each, as a check.
    let measure = std::env::args().any(|a| a == "--bench");
    let port = start_simulator();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let addresses: Vec<Arc<str>> = (0..VALUES)
        .map(|i| Arc::from(format!("DB100.DBD{}:udint", i * 4)))
        .collect();
    for pdu in [240u16, 480, 960] {
        rt.block_on(async {
            let mut poller = Poller::new("bench", settings(port, pdu), &addresses).unwrap();
            let mut conn = poller.connect().await.unwrap();
            // Warm up.
            let readings = poller.poll(&mut conn).await.unwrap();
            assert_eq!(readings.len(), VALUES);
            assert!(readings.iter().all(|r| r.quality.is_good()));
            if !measure {
                return;
            }
            let (cpu0, wall0) = (thread_cpu(), Instant::now());
            let mut cycles = 0u64;
            while wall0.elapsed() < Duration::from_secs(4) {
                let readings = poller.poll(&mut conn).await.unwrap();
                assert_eq!(readings.len(), VALUES);
                cycles += 1;
            }
            let cpu = (thread_cpu() - cpu0).as_secs_f64();
            report(
                &format!("PDU {pdu}, back to back"),
                poller.requests(),
                cycles,
                cpu,
                wall0.elapsed().as_secs_f64(),
            );
            if pdu == 480 {
                // Paced as a source runs: one cycle of 10k values per second.
                let (cpu0, wall0) = (thread_cpu(), Instant::now());
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                for _ in 0..5 {
                    tick.tick().await;
                    let readings = poller.poll(&mut conn).await.unwrap();
                    assert_eq!(readings.len(), VALUES);
                }
                let cpu = (thread_cpu() - cpu0).as_secs_f64();
                report(
                    "PDU 480, 10k values/s",
                    poller.requests(),
                    5,
                    cpu,
                    wall0.elapsed().as_secs_f64(),
                );
            }
        });
    }
}
