//! The OPC UA server's CPU cost: N tags changing once a second, served to S client
//! sessions that each monitor N/S of them (asyncua clients, separate processes). The
//! gateway (engine, simulator source, server) runs in this process; its CPU time is
//! measured over a window twice, without the server and with it and its sessions, and
//! the difference is the server's share. Run by scripts/bench-opcua-server.
//!
//! Usage: bench [TAGS (10000)] [SESSIONS (10)] [SECONDS (30)]; needs BACKPLANE_PYTHON.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use backplane_engine::{Engine, EngineOptions, Registry};

mod common;
use common::config;

fn cpu_seconds() -> f64 {
    let ticks: f64 = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0);
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let (_, rest) = stat.rsplit_once(')').unwrap();
    let f: Vec<&str> = rest.split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / ticks
}

/// CPU % of one core this process used over `window`.
async fn measure(window: Duration) -> f64 {
    let (cpu, wall) = (cpu_seconds(), Instant::now());
    tokio::time::sleep(window).await;
    100.0 * (cpu_seconds() - cpu) / wall.elapsed().as_secs_f64()
}

fn registry() -> Registry {
    let mut registry = backplane_engine::builtins();
    registry.add_sink("opcua-server", backplane_opcua_server::OpcUaServerKind);
    registry
}

fn start(config: &str, dir: &Path) -> Engine {
    let registry = registry();
    let plan = backplane_testkit::engine::plan(config, dir, &registry);
    Engine::start(plan, &registry, EngineOptions::default()).unwrap()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().unwrap()).collect();
    let tags = args.first().copied().unwrap_or(10_000);
    let sessions = args.get(1).copied().unwrap_or(10);
    let seconds = args.get(2).copied().unwrap_or(30) as u64;
    let window = Duration::from_secs(seconds);
    let python = std::env::var("BACKPLANE_PYTHON").expect("BACKPLANE_PYTHON (scripts/install-peers)");

    let dir = tempfile::tempdir().unwrap();
    let engine = start(&config(tags, None), dir.path());
    tokio::time::sleep(Duration::from_secs(5)).await;
    let without = measure(window).await;
    engine.shutdown().await;

    let dir = tempfile::tempdir().unwrap();
    let port = backplane_testkit::net::free_port();
    let engine = start(&config(tags, Some(port)), dir.path());
    assert!(backplane_testkit::net::wait_for_port(
        port,
        Duration::from_secs(60)
    ));
    let url = format!("opc.tcp://127.0.0.1:{port}");
    // 0 sessions: the server runs and takes every value, nobody monitors (its own cost).
    let per = tags.checked_div(sessions).unwrap_or(0);
    let mut clients = common::subscribe(&python, &url, tags, sessions, seconds);
    tokio::time::sleep(Duration::from_secs(5)).await;
    common::start_counting(&mut clients);
    let with = measure(window).await;
    let received = common::received(&mut clients);
    engine.shutdown().await;

    println!(
        "opcua-server benchmark: {tags} tags changing 1/s, {sessions} sessions of {per} monitored items, {seconds} s windows"
    );
    println!("  gateway CPU without the server:            {without:.2} % of a core");
    println!("  gateway CPU with the server and sessions:  {with:.2} % of a core");
    println!(
        "  the server's share:                        {:.2} % of a core",
        with - without
    );
    println!(
        "  data changes received by the clients:     {received} ({:.0}/s, {:.0} % of the changes)",
        received as f64 / seconds as f64,
        if sessions == 0 {
            0.0
        } else {
            100.0 * received as f64 / (tags as f64 * seconds as f64)
        }
    );
}
