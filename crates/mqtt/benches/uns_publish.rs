//! UNS publish throughput to a real Mosquitto, without and with batching.
//!
//! Runs the sink's own path (namespace encoding of engine samples → link → broker, QoS 1,
//! every message confirmed by PUBACK) over 1000 tags, and prints samples/s, messages/s and
//! the process CPU it took. Batching coalesces 10 consecutive updates of each tag into
//! one message, as `batch_linger` does when samples arrive faster than the linger.
//!
//!     cargo bench -p backplane-mqtt --bench uns_publish
//!
//! Broker: 127.0.0.1:1883, or `BACKPLANE_BENCH_MQTT_PORT`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark binary: failing loudly is the point

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backplane_engine::{Batch, Topology};
use backplane_model::{Context, Quality, Sample, TagId, Timestamp, Value};
use backplane_mqtt::link::{Link, LinkEvent, LinkOptions, SessionMode};
use backplane_mqtt::settings::Qos;
use backplane_mqtt::uns::{Latest, MqttSinkSettings, Namespace};

const ASSETS: usize = 100;
const ATTRIBUTES: usize = 10;
const SAMPLES: usize = 300_000;
const WINDOW: u16 = 256;

fn config(port: u16, prefix: &str) -> String {
    let mut text = String::from(
        "[gateway]\nname = \"bench\"\n[namespace]\nenterprise = \"acme\"\nsite = \"plant\"\n[models.M.attributes]\n",
    );
    for a in 0..ATTRIBUTES {
        text.push_str(&format!("a{a} = {{ type = \"float\", unit = \"degC\" }}\n"));
    }
    text.push_str("[[assets]]\npath = \"area\"\nlevel = \"area\"\n");
    for i in 0..ASSETS {
        text.push_str(&format!("[[assets]]\npath = \"area/m-{i}\"\nmodel = \"M\"\n"));
    }
    text.push_str(&format!(
        "[[sinks]]\nname = \"uns\"\nkind = \"mqtt\"\nbroker = \"mqtt://127.0.0.1:{port}\"\ntopic_prefix = \"{prefix}\"\nretain = false\n"
    ));
    text
}

/// User + system CPU time of this process (Linux, 100 ticks per second).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11).and_then(|u| u.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|s| s.parse().ok()).unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

async fn run(
    topology: Arc<Topology>,
    settings: &MqttSinkSettings,
    coalesce: usize,
) -> (f64, f64, f64, usize) {
    let connection = settings.connection.resolve().unwrap();
    let mut link = Link::open(
        &connection,
        &LinkOptions {
            client_id: format!("bench-{}", std::process::id()),
            will: None,
            inflight: WINDOW,
            session: SessionMode::Clean,
            write_delay: None,
        },
    );
    match link.next().await {
        LinkEvent::Connected => {}
        other => panic!("cannot connect to the broker: {other:?}"),
    }
    let ns = Namespace::new(topology.clone(), settings);
    let mut latest = Latest::new(&topology);
    let tags = topology.tags.len();
    let context = Arc::new(Context::default());
    let mut pending = VecDeque::new();
    let mut messages = 0usize;
    let mut confirmed = 0usize;
    let cpu0 = cpu_time();
    let t0 = Instant::now();
    let mut n = 0usize;
    let mut round = 0usize;
    while n < SAMPLES {
        let now = Timestamp::now();
        let samples = (0..tags)
            .map(|t| Sample {
                tag: TagId(t as u32),
                value: Some(Value::Float((round * tags + t) as f64 * 0.01)),
                quality: Quality::Good,
                source_time: Some(now),
                gateway_time: now,
                context: context.clone(),
            })
            .collect();
        n += tags;
        round += 1;
        latest.apply(
            &ns,
            &Batch {
                samples,
                events: vec![],
            },
            &mut pending,
        );
        if round.is_multiple_of(coalesce) || n >= SAMPLES {
            latest.flush(&ns, &mut pending);
        }
        let mut topic = String::new();
        while let Some(m) = pending.pop_front() {
            ns.write_topic(&m.topic, &mut topic);
            while link.outstanding() >= usize::from(WINDOW) {
                if let LinkEvent::Delivered(_) = link.next().await {
                    confirmed += 1;
                }
            }
            link.publish(&topic, Qos::AtLeastOnce, false, &m.payload)
                .await
                .unwrap();
            messages += 1;
        }
    }
    while confirmed < messages {
        match link.next().await {
            LinkEvent::Delivered(_) => confirmed += 1,
            LinkEvent::Disconnected(why) => panic!("lost the broker: {why}"),
            _ => {}
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = (cpu_time() - cpu0).as_secs_f64();
    link.close(Duration::from_secs(1)).await;
    (
        n as f64 / wall,
        messages as f64 / wall,
        cpu / wall * 100.0,
        messages,
    )
}

fn main() {
    // `cargo test --benches` runs bench binaries with `--bench` absent; only measure on
    // `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let port: u16 = std::env::var("BACKPLANE_BENCH_MQTT_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(1883);
    let mut registry = backplane_engine::builtins();
    backplane_mqtt::register(&mut registry);
    let prefix = format!("bench-{}", std::process::id());
    let plan = backplane_config::load_str(
        &config(port, &prefix),
        Path::new("bench.toml"),
        &registry.catalog(),
    )
    .unwrap_or_else(|d| panic!("{d:?}"));
    let settings = plan.sinks[0]
        .settings
        .downcast_ref::<MqttSinkSettings>()
        .unwrap()
        .clone();
    let topology = Arc::new(Topology::new(plan));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "UNS publish to Mosquitto 127.0.0.1:{port}: {} tags, {SAMPLES} samples, QoS 1, window {WINDOW}",
        topology.tags.len()
    );
    for (label, coalesce) in [
        ("without batching", 1),
        ("with batching (10 updates/message)", 10),
    ] {
        let (samples, messages, cpu, count) = rt.block_on(run(topology.clone(), &settings, coalesce));
        println!(
            "{label:<36} {samples:>10.0} samples/s {messages:>9.0} messages/s ({count} confirmed)  process CPU {cpu:>5.1} % of one core  ({:.1} µs CPU per message)",
            cpu / 100.0 / messages * 1e6
        );
    }
}
