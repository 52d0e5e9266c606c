//! The Sparkplug edge node against a Mosquitto of the test's own: a broker restart brings
//! a new session with the next bdSeq and fresh births; with a primary host configured,
//! nothing is born before the host's STATE says online, and what was held is replayed as
//! historical data.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod common;

use std::time::Duration;

use backplane_mqtt::sparkplug::decode_payload;
use backplane_mqtt::sparkplug::proto::Payload;
use backplane_mqtt::sparkplug::proto::payload::metric;
use common::{Mosquitto, Observer, start};

fn config(port: u16, extra: &str) -> String {
    format!(
        r#"
[gateway]
name = "edge"
[namespace]
enterprise = "acme"
site = "plant"
[models.Tank.attributes]
level = {{ type = "float" }}
[[assets]]
path = "tank"
model = "Tank"
source = "sim"
bindings.level = {{ address = "l" }}
[[sources]]
name = "sim"
kind = "simulator"
period = "100ms"
signals.l = {{ signal = "ramp", from = 0, to = 100, period = "5s" }}
[[sinks]]
name = "spb"
kind = "sparkplug"
broker = "mqtt://127.0.0.1:{port}"
reconnect_min = "100ms"
reconnect_max = "500ms"
{extra}
"#
    )
}

fn payload(m: &common::Seen) -> Payload {
    decode_payload(&m.payload, 1 << 20).unwrap()
}

fn bd_seq(p: &Payload) -> u64 {
    match p
        .metrics
        .iter()
        .find(|m| m.name.as_deref() == Some("bdSeq"))
        .and_then(|m| m.value.clone())
    {
        Some(metric::Value::LongValue(v)) => v,
        other => panic!("no bdSeq: {other:?}"),
    }
}

/// Publishes a rebirth request (NCMD, `Node Control/Rebirth`) to the edge node, at QoS 1.
async fn ask_rebirth(port: u16) {
    let (client, mut eventloop) = rumqttc::AsyncClient::new(
        rumqttc::MqttOptions::new(common::unique("rebirth"), "127.0.0.1", port),
        10,
    );
    client
        .publish(
            "spBv1.0/plant/NCMD/edge",
            rumqttc::QoS::AtLeastOnce,
            false,
            backplane_mqtt::sparkplug::host::rebirth_request(backplane_model::Timestamp::now()),
        )
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) = eventloop.poll().await {
                return;
            }
        }
    })
    .await
    .expect("the broker acknowledges the rebirth request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_brings_a_new_session_with_the_next_bdseq_and_fresh_births() {
    let mut broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let engine = start(&config(broker.port, ""), dir.path());
    let first = {
        let mut observer = Observer::start(broker.port, "spBv1.0/#").await;
        // The first birth may have gone out before we subscribed: ask for one.
        let nbirth = observer
            .wait_for("DDATA from the first session", |m| {
                m.topic == "spBv1.0/plant/DDATA/edge/tank"
            })
            .await;
        drop(nbirth);
        observer.seen.clear();
        broker.stop();
        tokio::time::sleep(Duration::from_millis(500)).await;
        broker.restart();
        0
    };
    let mut observer = Observer::start(broker.port, "spBv1.0/#").await;
    // The gateway may have reconnected and sent its births before the observer
    // subscribed: ask for a rebirth, which repeats them in the same session (lost, and
    // not needed, if the gateway is not back yet).
    ask_rebirth(broker.port).await;
    let nbirth = observer
        .wait_for("an NBIRTH after the restart", |m| {
            m.topic == "spBv1.0/plant/NBIRTH/edge"
        })
        .await;
    let nbirth = payload(&nbirth);
    assert!(bd_seq(&nbirth) > first, "a new session takes the next bdSeq");
    assert_eq!(nbirth.seq, Some(0));
    let dbirth = observer
        .wait_for("the DBIRTH again", |m| {
            m.topic == "spBv1.0/plant/DBIRTH/edge/tank"
        })
        .await;
    assert_eq!(payload(&dbirth).seq, Some(1));
    // The bdSeq file follows the sessions.
    let stored = std::fs::read_to_string(dir.path().join("sparkplug/spb.bdseq")).unwrap();
    assert_eq!(stored.trim().parse::<u64>().unwrap(), bd_seq(&nbirth));
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn births_wait_for_the_primary_host_and_held_data_is_replayed_as_historical() {
    let broker = Mosquitto::start();
    let mut observer = Observer::start(broker.port, "spBv1.0/#").await;
    let dir = tempfile::tempdir().unwrap();
    let engine = start(&config(broker.port, "primary_host = \"scada-1\""), dir.path());
    observer.collect(Duration::from_millis(1500)).await;
    assert!(
        observer
            .seen
            .iter()
            .all(|m| !m.topic.contains("BIRTH") && !m.topic.contains("DATA")),
        "nothing is born while the primary host is offline"
    );

    // The primary host comes online (Sparkplug 3.0 STATE, retained).
    let (client, mut eventloop) = rumqttc::AsyncClient::new(
        rumqttc::MqttOptions::new(common::unique("scada"), "127.0.0.1", broker.port),
        10,
    );
    client
        .publish(
            "spBv1.0/STATE/scada-1",
            rumqttc::QoS::AtLeastOnce,
            true,
            br#"{"online": true, "timestamp": 1}"#.to_vec(),
        )
        .await
        .unwrap();
    let host = tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });

    let nbirth = observer
        .wait_for("the NBIRTH", |m| m.topic == "spBv1.0/plant/NBIRTH/edge")
        .await;
    assert_eq!(payload(&nbirth).seq, Some(0));
    observer
        .wait_for("replayed data", |m| {
            m.topic == "spBv1.0/plant/DDATA/edge/tank"
                && payload(m).metrics.iter().any(|x| x.is_historical == Some(true))
        })
        .await;
    // Data read while no host was online comes after the births, one DDATA per buffered
    // batch, every metric flagged historical, in time order.
    observer.collect(Duration::from_millis(500)).await;
    let replayed: Vec<_> = observer
        .seen
        .iter()
        .filter(|m| m.topic == "spBv1.0/plant/DDATA/edge/tank")
        .map(payload)
        .filter(|p| p.metrics.iter().any(|x| x.is_historical == Some(true)))
        .collect();
    assert!(
        replayed
            .iter()
            .all(|p| p.metrics.iter().all(|m| m.is_historical == Some(true))),
        "a replayed DDATA mixes live and historical metrics"
    );
    let times: Vec<u64> = replayed
        .iter()
        .flat_map(|p| p.metrics.iter().map(|m| m.timestamp.unwrap()))
        .collect();
    assert!(
        times.len() >= 5,
        "about 15 held samples, {} replayed",
        times.len()
    );
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "in time order");
    engine.shutdown().await;
    host.abort();
}
