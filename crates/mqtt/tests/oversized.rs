//! One retained message over `max_packet_bytes` (issue 18, hole 5) against a Mosquitto of
//! the test's own: it used to end the source's connection at every (re)subscribe, so the
//! source restarted forever and unrelated tags stayed bad. Now it is refused on its own,
//! counted with its topic (MQTT 3.1.1), or dropped by the broker (MQTT 5, which is told
//! the Maximum Packet Size), and the other topics keep flowing on the same connection.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod common;

use std::time::Duration;

use backplane_model::{BadReason, Quality, Value};
use backplane_testkit::engine::{eventually, latest};
use common::{Mosquitto, mosquitto_pub, source_counter, start};

fn config(port: u16, protocol: &str) -> String {
    format!(
        r#"
[gateway]
name = "oversize-gw"

[namespace]
enterprise = "acme"
site = "plant"

[models.Feed.attributes]
ok = {{ type = "float" }}
big = {{ type = "string" }}

[[assets]]
path = "feed"
model = "Feed"
source = "mq"
bindings.ok = {{ address = "ov/ok" }}
bindings.big = {{ address = "ov/big" }}

[[sources]]
name = "mq"
kind = "mqtt"
broker = "mqtt://127.0.0.1:{port}"
protocol = "{protocol}"
max_packet_bytes = 4096
max_payload_bytes = 16777216
"#
    )
}

async fn other_topics_keep_flowing(protocol: &str) -> (backplane_engine::Engine, Mosquitto) {
    let broker = Mosquitto::start();
    // Retained before the source subscribes: the broker sends both at every subscribe.
    mosquitto_pub(broker.port, "ov/big", &"x".repeat(8000), true);
    mosquitto_pub(broker.port, "ov/ok", "1", true);
    let dir = tempfile::tempdir().unwrap();
    let engine = start(&config(broker.port, protocol), dir.path());
    let handle = engine.handle();
    let value = |n: f64| {
        let handle = handle.clone();
        move || latest(&handle, "acme/plant/feed/ok").filter(|l| l.sample.value == Some(Value::Float(n)))
    };
    eventually("the retained ov/ok", Duration::from_secs(10), value(1.0)).await;
    // Published after the oversized message was offered on this subscription: arriving
    // on the same connection means the connection survived it.
    mosquitto_pub(broker.port, "ov/ok", "2", false);
    eventually("ov/ok published afterwards", Duration::from_secs(10), value(2.0)).await;
    let source = handle
        .health()
        .components
        .into_iter()
        .find(|c| c.name == "mq")
        .unwrap();
    assert_eq!(
        source.restarts, 0,
        "the source restarted: {:?}",
        source.last_error
    );
    (engine, broker)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retained_oversized_message_is_refused_alone_and_counted_on_mqtt_3_1_1() {
    let (engine, _broker) = other_topics_keep_flowing("3.1.1").await;
    let handle = engine.handle();
    // Its own tag reads bad, as an oversized payload does; the message was counted.
    let big = eventually("ov/big reads bad", Duration::from_secs(10), || {
        latest(&handle, "acme/plant/feed/big")
    })
    .await;
    assert_eq!(big.sample.quality, Quality::Bad(BadReason::OutOfRange));
    assert!(source_counter(&handle.metrics_text(), "mq", "messages_oversized") >= 1.0);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_mqtt_5_the_broker_drops_the_oversized_message_for_the_source() {
    let (engine, _broker) = other_topics_keep_flowing("5").await;
    let handle = engine.handle();
    // Mosquitto honours the announced Maximum Packet Size: the message never arrives.
    let big = latest(&handle, "acme/plant/feed/big");
    assert!(
        big.as_ref().is_none_or(|l| l.sample.value.is_none()),
        "the oversized message reached the source ({:?})",
        big.map(|l| l.sample.quality)
    );
    engine.shutdown().await;
}
