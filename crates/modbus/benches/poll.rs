//! Polls the filler simulator's 10 000-register load bank (ir:0-9999) through the source's
//! own poll path (`Poller::poll`: planner, framing, decode, readings), coalesced and one
//! request per tag.
//!
//! `cargo bench -p backplane-modbus --bench poll`
//!
//! Criterion prints samples/s as `thrpt` (elements = samples). Before that, the bench
//! prints requests per cycle and the client thread's CPU time per cycle, read from
//! /proc/thread-self/stat (clock ticks, so it runs for a few seconds). The simulator runs
//! on a thread of its own, so its CPU is not counted. CPU per 10k samples/s is
//! `CPU seconds per cycle × (10 000 / samples per cycle)` as a share of one core.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // bench code

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backplane_modbus::client::Connection;
use backplane_modbus::{ModbusSettings, Poller, spawn_filler_simulator};
use backplane_testkit::probe::thread_cpu;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const TAGS: usize = 10_000;

fn settings(port: u16, max_registers: u16) -> Arc<ModbusSettings> {
    let text = format!(
        "url = \"tcp://127.0.0.1:{port}\"\naddress_base = 0\ntimeout = \"2s\"\nmax_registers = {max_registers}\n"
    );
    let (settings, diagnostics) =
        backplane_config::reader::with_table(&text, Path::new("bench.toml"), |mut t| {
            backplane_modbus::config::parse_settings(&mut t)
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
            let (addr, handle) = spawn_filler_simulator("127.0.0.1:0".parse().unwrap())
                .await
                .unwrap();
            tx.send(addr.port()).unwrap();
            let _ = handle.await;
        });
    });
    rx.recv().unwrap()
}

struct Setup {
    rt: tokio::runtime::Runtime,
    poller: Poller,
    pool: Vec<Connection>,
}

fn setup(port: u16, max_registers: u16) -> Setup {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let addresses: Vec<Arc<str>> = (0..TAGS).map(|i| Arc::from(format!("ir:{i}"))).collect();
    let poller = Poller::new("bench", settings(port, max_registers), &addresses).unwrap();
    let pool = rt.block_on(poller.connect()).unwrap();
    Setup { rt, poller, pool }
}

fn cycle(s: &mut Setup) -> usize {
    let readings = s.rt.block_on(s.poller.poll(0, &mut s.pool)).unwrap();
    assert_eq!(readings.len(), TAGS);
    readings.len()
}

/// Runs cycles for at least `wall` and prints the figures a person compares run to run.
fn report(name: &str, s: &mut Setup, wall: Duration) {
    let requests = s.poller.requests(0);
    let cpu0 = thread_cpu();
    let t0 = Instant::now();
    let mut cycles = 0u32;
    let mut samples = 0usize;
    while t0.elapsed() < wall || cycles < 3 {
        samples += cycle(s);
        cycles += 1;
    }
    let elapsed = t0.elapsed();
    let cpu = thread_cpu().saturating_sub(cpu0);
    let per_cycle_cpu = cpu.as_secs_f64() / f64::from(cycles);
    let samples_per_cycle = samples as f64 / f64::from(cycles);
    println!(
        "{name}: {requests} requests per cycle for {TAGS} tags; {:.0} samples/s; wall {:.2} ms/cycle; \
         client CPU {:.2} ms/cycle = {:.3} % of a core per 10k samples/s",
        samples as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e3 / f64::from(cycles),
        per_cycle_cpu * 1e3,
        per_cycle_cpu * (10_000.0 / samples_per_cycle) * 100.0,
    );
}

fn poll(c: &mut Criterion) {
    let port = start_simulator();
    let mut coalesced = setup(port, 125);
    let mut per_tag = setup(port, 1);
    report("coalesced", &mut coalesced, Duration::from_secs(5));
    report("one request per tag", &mut per_tag, Duration::from_secs(5));

    let mut group = c.benchmark_group("modbus_poll_10k_registers");
    group.throughput(Throughput::Elements(TAGS as u64));
    group.bench_function("coalesced", |b| b.iter(|| cycle(&mut coalesced)));
    group.sample_size(10);
    group.bench_function("one_request_per_tag", |b| b.iter(|| cycle(&mut per_tag)));
    group.finish();
}

criterion_group!(benches, poll);
criterion_main!(benches);
