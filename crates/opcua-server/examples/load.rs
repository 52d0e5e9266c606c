//! The OPC UA server's cost per data change, in instructions (repeatable where CPU time is
//! not): the server alone (no engine, no simulator) takes ROUNDS batches of N changed tags,
//! one a second, through the sink's publisher while S asyncua sessions (separate
//! processes, not measured) monitor N/S tags each. Run under callgrind, it zeroes the
//! counters before the first round and dumps them after the last, so the dump holds the
//! rounds alone: everything the server did for them, subscriptions and sending included.
//! Run by scripts/callgrind-opcua-server. Run natively, its last line is the process's CPU
//! (utime + stime from /proc/self/stat, and each apart) over the rounds, the clients not
//! counted.
//!
//! Usage: load [TAGS (10000)] [SESSIONS (10)] [ROUNDS (10)] [none | sign | sign_and_encrypt
//! (none: security policy None; else Basic256Sha256 with that mode)]; needs BACKPLANE_PYTHON.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use backplane_connector::{Batch, NoReadings, Topology, WriteGate, WritePath};
use backplane_model::{Context, Quality, Sample, Timestamp, Value};
use backplane_opcua_server::ServerSettings;
use backplane_opcua_server::auth::Accounts;
use backplane_opcua_server::manager::Doors;
use backplane_opcua_server::methods::Production;
use backplane_opcua_server::server::{ServerInputs, start};
use backplane_opcua_server::sink::Publisher;

mod common;

/// The process's CPU time so far (utime, stime; all threads), in clock ticks (1/100 s
/// on Linux).
fn cpu_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // After the command's closing parenthesis: utime and stime are the 12th and 13th fields.
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    (
        fields[11].parse::<u64>().unwrap(),
        fields[12].parse::<u64>().unwrap(),
    )
}

/// Asks callgrind (when the process runs under it) to zero or dump its counters.
fn callgrind(arg: &str) {
    backplane_testkit::callgrind::control("LOAD_UNDER_CALLGRIND", arg);
}

/// Knobs for measuring the server's wake-ups (docs/connectors/opcua-server.md,
/// "Performance"): LOAD_WORKERS (tokio worker threads, 2), LOAD_SINK_EXTRA (lines added to
/// the sink's configuration, e.g. `min_sampling_interval = "1s"`).
fn main() {
    let workers = std::env::var("LOAD_WORKERS").map_or(2, |w| w.parse().unwrap());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap()
        .block_on(run());
}

async fn run() {
    let security = common::Security::parse(&std::env::args().nth(4).unwrap_or_else(|| "none".into()));
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .take(3)
        .map(|a| a.parse().unwrap())
        .collect();
    let tags = args.first().copied().unwrap_or(10_000);
    let sessions = args.get(1).copied().unwrap_or(10);
    let rounds = args.get(2).copied().unwrap_or(10);
    let python = std::env::var("BACKPLANE_PYTHON").expect("BACKPLANE_PYTHON (scripts/install-peers)");

    let dir = tempfile::tempdir().unwrap();
    let port = backplane_testkit::net::free_port();
    let mut registry = backplane_engine::builtins();
    registry.add_sink("opcua-server", backplane_opcua_server::OpcUaServerKind);
    let mut config = common::config_with(tags, Some(port), security);
    if let Ok(extra) = std::env::var("LOAD_SINK_EXTRA") {
        config.push_str(&extra);
        config.push('\n');
    }
    let plan = backplane_testkit::engine::plan(&config, dir.path(), &registry);
    let settings = plan.sinks[0]
        .settings
        .downcast_ref::<ServerSettings>()
        .unwrap()
        .clone();
    let topology = Arc::new(Topology::new(plan));
    let doors = Doors {
        topology: topology.clone(),
        gate: WriteGate::new(
            topology.clone(),
            WritePath::new(&topology).0,
            Arc::new(NoReadings),
            None,
        ),
        production: Production {
            handle: None,
            audit: None,
        },
        accounts: Arc::new(Accounts::new(Arc::default(), true)),
        history: None,
    };
    let alarms = backplane_opcua_server::condition_methods::AlarmDoor {
        handle: None,
        audit: None,
        accounts: doors.accounts.clone(),
        index: Arc::default(),
    };
    let running = start(
        &settings,
        ServerInputs {
            gateway: "bench",
            data_dir: dir.path(),
            doors,
            alarms,
        },
    )
    .await
    .unwrap();
    let mut publisher = Publisher::new(&running, topology.clone(), None);

    // The batches are made before the window: the pipeline's work, not the server's.
    let context = Arc::new(Context::default());
    let t0 = Timestamp::now().unix_nanos();
    let batches: Vec<Batch> = (0..=rounds)
        .map(|r| {
            let at = Timestamp::from_unix_nanos(t0 + r as i64 * 1_000_000_000);
            Batch {
                samples: topology
                    .tags
                    .iter()
                    .map(|t| Sample {
                        tag: t.id,
                        value: Some(Value::UInt(r as u64)),
                        quality: Quality::Good,
                        source_time: Some(at),
                        gateway_time: at,
                        context: context.clone(),
                    })
                    .collect(),
                events: Vec::new(),
            }
        })
        .collect();
    let mut batches = batches.into_iter();
    // Round 0 gives every item its first value before anyone subscribes.
    publisher.publish(&batches.next().unwrap());

    let url = format!("opc.tcp://127.0.0.1:{}", running.address.port());
    let client_security = common::client_security(security, dir.path());
    if !client_security.is_empty() {
        let pki = backplane_opcua_server::server::default_pki_dir(dir.path());
        common::trust_clients(&python, &url, &pki, &client_security);
    }
    let mut clients =
        common::subscribe_with(&python, &url, tags, sessions, rounds as u64 + 3, &client_security);
    tokio::time::sleep(Duration::from_secs(3)).await;
    common::start_counting(&mut clients);
    callgrind("-z");
    // For tools attaching to the process (perf stat -p, strace -p): the window starts now.
    eprintln!("load: rounds start (pid {})", std::process::id());
    let (cpu0, wall0) = (cpu_ticks(), std::time::Instant::now());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    for batch in batches {
        tick.tick().await;
        publisher.publish(&batch);
    }
    // The last round's notifications go out with the next publishing interval.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let ((user, system), wall) = (cpu_ticks(), wall0.elapsed().as_secs_f64());
    let (user, system) = (user - cpu0.0, system - cpu0.1);
    let cpu = user + system;
    callgrind("-d");
    let received = common::received(&mut clients);
    running.handle.cancel();
    println!(
        "opcua-server load: {tags} tags, {sessions} sessions, {rounds} rounds, security {security:?}: {} changes published, {received} received",
        tags * rounds
    );
    println!(
        "server CPU over the rounds: {:.2} s in {wall:.1} s = {:.2} % of a core (user {:.2} %, system {:.2} %)",
        cpu as f64 / 100.0,
        cpu as f64 / wall,
        user as f64 / wall,
        system as f64 / wall
    );
}
