//! Notifications per second through the `opcua` source, and the gateway's CPU per 10k
//! notifications/s.
//!
//! The simulator runs in a child process (this binary again, with
//! `BACKPLANE_BENCH_ROLE=simulator`) with a load bank of `BACKPLANE_BENCH_ITEMS` variables
//! (default 10 000) that all change every 100 ms; the parent runs the engine with one
//! `opcua` source subscribed to all of them (Basic256Sha256, sign and encrypt) and measures
//! its own CPU time only (Linux: /proc/self/stat), so the simulator's work does not count.
//!
//! `cargo bench -p backplane-opcua --bench notifications`; `BACKPLANE_BENCH_SECONDS`
//! (default 10) sets the measuring window. Run under `valgrind --tool=callgrind` with
//! `BACKPLANE_BENCH_CALLGRIND=1`, it zeroes callgrind's counters at the window's start and
//! dumps them at its end, so the dump holds the window only (`scripts/callgrind-opcua-source`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark: failing loudly is the point

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use backplane_engine::{Engine, EngineOptions};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// User + system CPU seconds of this process.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesized command name; utime and stime are 14th and 15th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // Field 14 is index 11 after the state field (index 0 = field 3).
    (ticks(11) + ticks(12)) / 100.0
}

fn notifications(engine: &Engine) -> u64 {
    engine
        .handle()
        .metrics_text()
        .lines()
        .filter(|l| l.contains("event=\"notifications\"") && l.contains("name=\"load\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

fn simulator(items: usize, pki: &Path) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (addr, _sim) = backplane_opcua::spawn_simulator("127.0.0.1:0".parse().unwrap(), pki, items)
            .await
            .unwrap();
        println!("PORT {}", addr.port());
        // Until the parent closes stdin.
        let _ = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
        })
        .await;
    });
}

fn main() {
    let items = env_usize("BACKPLANE_BENCH_ITEMS", 10_000);
    if std::env::var("BACKPLANE_BENCH_ROLE").as_deref() == Ok("simulator") {
        let pki = std::env::var("BACKPLANE_BENCH_PKI").unwrap();
        simulator(items, Path::new(&pki));
        return;
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this with nothing useful.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let seconds = env_usize("BACKPLANE_BENCH_SECONDS", 10) as u64;
    let dir = tempfile::tempdir().unwrap();
    let pki = backplane_opcua::pki::default_pki_dir(dir.path());
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env("BACKPLANE_BENCH_ROLE", "simulator")
        .env("BACKPLANE_BENCH_PKI", &pki)
        .env("BACKPLANE_BENCH_ITEMS", items.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line.trim().strip_prefix("PORT ").unwrap().parse().unwrap();

    let per_asset = 100;
    let mut config = String::from(
        "[namespace]\nenterprise = \"bench\"\nsite = \"lab\"\n[[assets]]\npath = \"area\"\nlevel = \"area\"\n\
         [[assets]]\npath = \"area/line\"\nlevel = \"line\"\n[models.Bank.attributes]\n",
    );
    for a in 0..per_asset {
        config.push_str(&format!("v{a:03} = {{ type = \"uint\" }}\n"));
    }
    for b in 0..items.div_ceil(per_asset) {
        config.push_str(&format!(
            "[[assets]]\npath = \"area/line/bank-{b:03}\"\nmodel = \"Bank\"\nsource = \"load\"\n"
        ));
        for a in 0..per_asset.min(items - b * per_asset) {
            let i = b * per_asset + a;
            config.push_str(&format!(
                "bindings.v{a:03} = {{ address = \"ns=2;s=Load.{i:05}\" }}\n"
            ));
        }
    }
    config.push_str(&format!(
        "[[sources]]\nname = \"load\"\nkind = \"opcua\"\nurl = \"opc.tcp://127.0.0.1:{port}\"\n\
         security_policy = \"Basic256Sha256\"\nsecurity_mode = \"sign-and-encrypt\"\nperiod = \"100ms\"\n\
         queue_size = 1\n"
    ));
    let mut registry = backplane_engine::builtins();
    registry.add_source("opcua", backplane_opcua::OpcUaKind);
    let mut plan = backplane_config::load_str(&config, Path::new("bench.toml"), &registry.catalog())
        .unwrap_or_else(|d| {
            panic!(
                "{}",
                d.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n")
            )
        });
    plan.gateway.data_dir = dir.path().to_path_buf();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let engine = Engine::start(plan, &registry, EngineOptions::default()).unwrap();
        // Warm up: every item subscribed and delivering.
        let warm = Instant::now();
        while notifications(&engine) < items as u64 * 3 {
            assert!(warm.elapsed() < Duration::from_secs(120), "no notifications arrive");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        backplane_testkit::callgrind::control("BACKPLANE_BENCH_CALLGRIND", "--zero");
        let (n0, c0, t0) = (notifications(&engine), cpu_seconds(), Instant::now());
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        let (n1, c1, t1) = (notifications(&engine), cpu_seconds(), Instant::now());
        backplane_testkit::callgrind::control("BACKPLANE_BENCH_CALLGRIND", "--dump");
        let elapsed = (t1 - t0).as_secs_f64();
        let rate = (n1 - n0) as f64 / elapsed;
        let cpu = (c1 - c0) / elapsed;
        println!(
            "opcua notifications: {items} items changing every 100 ms, Basic256Sha256 sign-and-encrypt, {seconds} s"
        );
        println!(
            "  {rate:.0} notifications/s through the pipeline ({} in the window)",
            n1 - n0
        );
        println!(
            "  gateway CPU {:.1} % of one core, {:.2} % per 10k notifications/s",
            cpu * 100.0,
            if rate > 0.0 { cpu * 100.0 / (rate / 10_000.0) } else { f64::NAN }
        );
        engine.shutdown().await;
    });
    drop(child.stdin.take());
    let _ = child.kill();
    let _ = child.wait();
}
