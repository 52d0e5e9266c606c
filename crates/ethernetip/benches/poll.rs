//! Polls the palletizer simulator's 10 000-element load bank (`Bench[0]` .. `Bench[9999]`,
//! one address per element, as 10 000 separate DINT tags) through the source's own poll
//! path (`Poller::poll`: planner, Multiple Service Packets, framing, decode, readings), over
//! a Large Forward Open connection (4002 bytes) and over unconnected messages (504 bytes).
//!
//! `cargo bench -p backplane-ethernetip --bench poll`
//!
//! Before Criterion's figures the bench prints packets per cycle, values per second and the
//! client thread's CPU time per million values, read from /proc/thread-self/stat (clock
//! ticks, so it runs for a few seconds). The simulator runs on a thread of its own, so its
//! CPU is not counted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // bench code

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backplane_ethernetip::client::Connection;
use backplane_ethernetip::{EnipSettings, Poller, spawn_palletizer};
use backplane_testkit::probe::thread_cpu;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const TAGS: usize = 10_000;

fn settings(port: u16, messaging: &str) -> Arc<EnipSettings> {
    let text = format!("url = \"enip://127.0.0.1:{port}\"\ntimeout = \"2s\"\nmessaging = \"{messaging}\"\n");
    let (settings, diagnostics) =
        backplane_config::reader::with_table(&text, Path::new("bench.toml"), |mut t| {
            backplane_ethernetip::config::parse_settings(&mut t)
        });
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    Arc::new(settings.flatten().unwrap())
}

/// The simulator on a thread and runtime of its own; returns its port.
fn start_simulator() -> u16 {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (addr, handle) = spawn_palletizer("127.0.0.1:0".parse().unwrap()).await.unwrap();
            tx.send(addr.port()).unwrap();
            let _ = handle.await;
        });
    });
    rx.recv().unwrap()
}

struct Setup {
    rt: tokio::runtime::Runtime,
    poller: Poller,
    conn: Connection,
}

fn setup(port: u16, messaging: &str) -> Setup {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let addresses: Vec<Arc<str>> = (0..TAGS).map(|i| Arc::from(format!("Bench[{i}]"))).collect();
    let poller = Poller::new("bench", settings(port, messaging), &addresses).unwrap();
    let conn = rt.block_on(poller.connect()).unwrap();
    Setup { rt, poller, conn }
}

fn cycle(s: &mut Setup) -> usize {
    let readings = s.rt.block_on(s.poller.poll(&mut s.conn)).unwrap();
    assert_eq!(readings.len(), TAGS);
    assert!(readings.iter().all(|r| r.quality.is_good()));
    readings.len()
}

/// Runs cycles for at least `wall` and prints the figures a person compares run to run.
fn report(name: &str, s: &mut Setup, wall: Duration) {
    cycle(s); // learn the types, plan with them
    let packets = s.poller.packets(&s.conn);
    let cpu0 = thread_cpu();
    let t0 = Instant::now();
    let mut cycles = 0u32;
    let mut values = 0usize;
    while t0.elapsed() < wall || cycles < 3 {
        values += cycle(s);
        cycles += 1;
    }
    let elapsed = t0.elapsed();
    let cpu = thread_cpu().saturating_sub(cpu0);
    println!(
        "{name}: {packets} packets per cycle for {TAGS} tags; {:.0} values/s; wall {:.1} ms/cycle; \
         client CPU {:.2} s per million values",
        values as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e3 / f64::from(cycles),
        cpu.as_secs_f64() * 1e6 / values as f64,
    );
}

fn poll(c: &mut Criterion) {
    let port = start_simulator();
    let mut connected = setup(port, "connected");
    let mut unconnected = setup(port, "unconnected");
    report(
        "connected (Large Forward Open)",
        &mut connected,
        Duration::from_secs(5),
    );
    report(
        "unconnected (504 bytes)",
        &mut unconnected,
        Duration::from_secs(5),
    );

    let mut group = c.benchmark_group("enip_poll_10k_tags");
    group.throughput(Throughput::Elements(TAGS as u64));
    group.sample_size(10);
    group.bench_function("connected", |b| b.iter(|| cycle(&mut connected)));
    group.bench_function("unconnected", |b| b.iter(|| cycle(&mut unconnected)));
    group.finish();
}

criterion_group!(benches, poll);
criterion_main!(benches);
