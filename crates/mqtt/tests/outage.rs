//! Store-and-forward through a broker outage, against a real Mosquitto of the test's own:
//! while ~3000 samples/s flow, the broker is stopped for `BACKPLANE_OUTAGE_SECS` (default
//! 30) and started again. Every sequence number must reach a persistent subscriber, live
//! data and replayed data each in order; the test prints how long the backlog took to drain.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Mosquitto, start};

/// One model with ten attributes on three assets, all fed by one simulator ticking every
/// 10 ms: 30 samples per tick, ~3000 per second, every one a new value.
fn config(port: u16) -> String {
    let attributes: String = (0..10)
        .map(|i| format!("a{i} = {{ type = \"float\" }}\n"))
        .collect();
    let mut assets = String::new();
    let mut signals = String::new();
    for a in 0..3 {
        assets.push_str(&format!(
            "[[assets]]\npath = \"area/probe-{a}\"\nmodel = \"Probe\"\nsource = \"sim\"\n"
        ));
        for i in 0..10 {
            assets.push_str(&format!("bindings.a{i} = {{ address = \"s{a}_{i}\" }}\n"));
            signals.push_str(&format!(
                "signals.s{a}_{i} = {{ signal = \"ramp\", from = 0, to = 1000, period = \"7s\" }}\n"
            ));
        }
    }
    format!(
        r#"
[gateway]
name = "outage-gw"

[namespace]
enterprise = "acme"
site = "plant"

[models.Probe.attributes]
{attributes}
[[assets]]
path = "area"
level = "area"

{assets}
[[sources]]
name = "sim"
kind = "simulator"
period = "10ms"
{signals}
[[sinks]]
name = "uns"
kind = "mqtt"
broker = "mqtt://127.0.0.1:{port}"
topic_prefix = "out"
retain = false
reconnect_min = "200ms"
reconnect_max = "1s"
"#
    )
}

/// What the subscriber saw of the stream: each message's number and lane, in arrival order.
#[derive(Default)]
struct Stream {
    seen: Vec<(u64, bool)>,
    /// Messages that broke the format (asserted empty at the end).
    without_seq: Vec<String>,
}

/// A persistent-session subscriber: the broker queues for it while it is away.
async fn subscribe(port: u16, stream: Arc<Mutex<Stream>>) -> tokio::task::JoinHandle<()> {
    let mut options = rumqttc::MqttOptions::new("outage-observer", "127.0.0.1", port);
    options.set_clean_session(false);
    options.set_max_packet_size(1 << 20, 1 << 20);
    options.set_inflight(1000);
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 1000);
    let (subscribed_tx, subscribed_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let mut subscribed_tx = Some(subscribed_tx);
        loop {
            match eventloop.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                    let _ = client.subscribe("out/acme/#", rumqttc::QoS::AtLeastOnce).await;
                }
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                    if let Some(s) = subscribed_tx.take() {
                        let _ = s.send(());
                    }
                }
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                    let json: serde_json::Value =
                        serde_json::from_slice(&p.payload).unwrap_or(serde_json::Value::Null);
                    let replay = json["replay"] == true;
                    let mut stream = stream.lock().unwrap();
                    match json["seq"].as_u64() {
                        Some(seq) => stream.seen.push((seq, replay)),
                        None => stream.without_seq.push(format!("{}: {json}", p.topic)),
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), subscribed_rx)
        .await
        .expect("subscribed")
        .unwrap();
    task
}

fn uns_buffer(engine: &backplane_engine::EngineHandle) -> backplane_engine::BufferHealth {
    engine
        .health()
        .buffers
        .into_iter()
        .find(|b| b.sink == "uns")
        .expect("the uns sink is buffered")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sequence_number_arrives_in_order_across_a_broker_outage() {
    let outage = Duration::from_secs(
        std::env::var("BACKPLANE_OUTAGE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(30),
    );
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let mut broker = Mosquitto::start_persistent();
    let stream = Arc::new(Mutex::new(Stream::default()));
    let subscriber = subscribe(broker.port, stream.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let engine = start(&config(broker.port), dir.path());
    let handle = engine.handle();

    // Live data flows.
    let deadline = Instant::now() + Duration::from_secs(30);
    while stream.lock().unwrap().seen.len() < 3000 {
        assert!(
            Instant::now() < deadline,
            "no live data before the outage: {:?} {}",
            stream.lock().unwrap().without_seq.first(),
            handle
                .metrics_text()
                .lines()
                .filter(|l| l.contains("buffer_") || l.contains("component_events") || l.contains("sink_"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    broker.stop_gracefully();
    tokio::time::sleep(outage).await;
    let backlog_at_restart = uns_buffer(&handle);
    assert!(
        backlog_at_restart.backlog_samples > 0,
        "nothing was buffered during the outage"
    );
    broker.launch_again();
    let restarted = Instant::now();

    // Drained: the sink is back to live data, only what is in flight is unconfirmed.
    let deadline = restarted + Duration::from_secs(300);
    loop {
        let b = uns_buffer(&handle);
        if !b.replaying && b.oldest_age_seconds.unwrap_or(0.0) < 1.0 {
            break;
        }
        assert!(Instant::now() < deadline, "backlog not drained: {b:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drain = restarted.elapsed();
    let drain_rate = uns_buffer(&handle).drain_rate;

    engine.shutdown().await;
    let after = uns_buffer(&handle);
    assert_eq!(
        after.backlog_samples, 0,
        "an orderly stop delivers and confirms everything"
    );
    // The last messages reach the subscriber.
    tokio::time::sleep(Duration::from_secs(2)).await;
    subscriber.abort();
    drop(broker);

    let stream = stream.lock().unwrap();
    assert!(
        stream.without_seq.is_empty(),
        "messages without a seq: {:?}",
        &stream.without_seq[..stream.without_seq.len().min(3)]
    );
    let mut first_seen = HashSet::new();
    let (mut last_live, mut last_replay) = (None::<u64>, None::<u64>);
    let mut replayed = 0u64;
    let mut duplicates = 0u64;
    for &(seq, replay) in &stream.seen {
        if !first_seen.insert(seq) {
            duplicates += 1;
            continue;
        }
        let last = if replay {
            replayed += 1;
            &mut last_replay
        } else {
            &mut last_live
        };
        assert!(
            last.is_none_or(|l| seq > l),
            "{} {seq} arrived after {last:?}",
            if replay { "replayed" } else { "live" }
        );
        *last = Some(seq);
    }
    let max = *first_seen.iter().max().unwrap();
    let missing: Vec<u64> = (0..=max).filter(|s| !first_seen.contains(s)).take(10).collect();
    assert!(
        missing.is_empty(),
        "sequence numbers never arrived (first 10): {missing:?}"
    );
    assert!(replayed > 0, "the outage produced no replay");
    println!(
        "outage {:?}: {} samples buffered at restart, drained in {:.1} s (drain rate {:.0}/s at the end); \
         {} numbers delivered ({} replayed, {} duplicates)",
        outage,
        backlog_at_restart.backlog_samples,
        drain.as_secs_f64(),
        drain_rate,
        max + 1,
        replayed,
        duplicates
    );
}
