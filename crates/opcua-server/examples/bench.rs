//! The OPC UA server's CPU cost: N tags changing once a second, served to S client
//! sessions that each monitor N/S of them (asyncua clients, separate processes). The
//! gateway (engine, simulator source, server) runs in this process; its CPU time is
//! measured over a window twice, without the server and with it and its sessions, and
//! the difference is the server's share. Run by scripts/bench-opcua-server.
//!
//! Usage: bench [TAGS (10000)] [SESSIONS (10)] [SECONDS (30)]; needs BACKPLANE_PYTHON.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use backplane_engine::{Engine, EngineOptions, Registry};

const PER_BLOCK: usize = 100;

fn config(tags: usize, server_port: Option<u16>) -> String {
    let mut c = String::from(
        "[gateway]\nname = \"bench\"\n[api]\nlisten = \"127.0.0.1:0\"\n[namespace]\nenterprise = \"bench\"\nsite = \"plant\"\n\n[models.Block.attributes]\n",
    );
    for a in 0..PER_BLOCK {
        writeln!(c, "v{a:03} = {{ type = \"uint\" }}").unwrap();
    }
    c.push_str("\n[[assets]]\npath = \"line\"\nlevel = \"line\"\n");
    for b in 0..tags.div_ceil(PER_BLOCK) {
        write!(
            c,
            "\n[[assets]]\npath = \"line/block-{b}\"\nmodel = \"Block\"\nsource = \"sim\"\n"
        )
        .unwrap();
        for a in 0..PER_BLOCK.min(tags - b * PER_BLOCK) {
            writeln!(c, "bindings.v{a:03} = {{ address = \"s{}\" }}", b * PER_BLOCK + a).unwrap();
        }
    }
    c.push_str("\n[[sources]]\nname = \"sim\"\nkind = \"simulator\"\nperiod = \"1s\"\n[sources.signals]\n");
    for t in 0..tags {
        writeln!(
            c,
            "s{t} = {{ signal = \"counter\", start = {t}, increment = 1, type = \"uint\" }}"
        )
        .unwrap();
    }
    if let Some(port) = server_port {
        write!(
            c,
            "\n[[sinks]]\nname = \"opcua\"\nkind = \"opcua-server\"\nlisten = \"127.0.0.1:{port}\"\n\
             security_policies = [\"None\"]\nsecurity_modes = [\"none\"]\nanonymous = true\n"
        )
        .unwrap();
    }
    c
}

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

struct Client {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

fn wait_for(client: &mut Client, prefix: &str) -> String {
    for line in client.lines.by_ref() {
        let line = line.unwrap();
        if line.starts_with(prefix) {
            return line;
        }
    }
    panic!("a client ended before `{prefix}`");
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().unwrap()).collect();
    let tags = args.first().copied().unwrap_or(10_000);
    let sessions = args.get(1).copied().unwrap_or(10);
    let seconds = args.get(2).copied().unwrap_or(30) as u64;
    let window = Duration::from_secs(seconds);
    let python = std::env::var("BACKPLANE_PYTHON").expect("BACKPLANE_PYTHON (scripts/install-peers)");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/bench_client.py");

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
    let mut clients: Vec<Client> = (0..sessions)
        .map(|s| {
            let mut child = Command::new(&python)
                .arg(&script)
                .args([
                    url.clone(),
                    "2".into(),
                    (s * per).to_string(),
                    per.to_string(),
                    seconds.to_string(),
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap();
            let lines = BufReader::new(child.stdout.take().unwrap()).lines();
            Client { child, lines }
        })
        .collect();
    for c in &mut clients {
        wait_for(c, "SUBSCRIBED");
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    for c in &mut clients {
        let stdin = c.child.stdin.as_mut().unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }
    let with = measure(window).await;
    let received: u64 = clients
        .iter_mut()
        .map(|c| {
            wait_for(c, "COUNT")
                .trim_start_matches("COUNT ")
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    for c in &mut clients {
        let _ = c.child.wait();
    }
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
