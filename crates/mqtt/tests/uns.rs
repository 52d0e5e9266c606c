//! The unified-namespace sink against real Mosquitto: the shared broker on 1883 for
//! topics and payloads (unique prefixes per run), and a broker of the test's own for
//! restarts and the Last Will.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod common;

use std::time::Duration;

use backplane_model::{ContextField, ContextPatch};
use common::{Mosquitto, Observer, SHARED_PORT, Seen, clear_retained, start, unique, validate_with_schemas};

fn config(port: u16, prefix: &str, extra: &str) -> String {
    format!(
        r#"
[gateway]
name = "uns-test-gw"

[namespace]
enterprise = "acme"
site = "plant"

[models.Tank.attributes]
level = {{ type = "float", unit = "%", range = [0, 100] }}
running = {{ type = "bool" }}

[[assets]]
path = "area"
level = "area"
context = {{ shift = "A" }}

[[assets]]
path = "area/tank-1"
model = "Tank"
source = "sim"
bindings.level = {{ address = "l" }}
bindings.running = {{ address = "r" }}

[[sources]]
name = "sim"
kind = "simulator"
period = "50ms"
signals.l = {{ signal = "ramp", from = 0, to = 100, period = "10s" }}
signals.r = {{ signal = "constant", value = true }}

[[sinks]]
name = "uns"
kind = "mqtt"
broker = "mqtt://127.0.0.1:{port}"
topic_prefix = "{prefix}"
# Tests run at once on the shared broker: one client id each, or they take over each
# other's session (all would derive theirs from the same gateway name).
client_id = "{prefix}"
reconnect_min = "100ms"
reconnect_max = "500ms"
{extra}
"#
    )
}

fn is(topic: &str) -> impl Fn(&Seen) -> bool + '_ {
    move |m: &Seen| m.topic == topic
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uns_topics_and_payloads_arrive_as_documented_and_validate_against_the_schemas() {
    let prefix = unique("uns");
    let mut observer = Observer::start(SHARED_PORT, &format!("{prefix}/#")).await;
    let dir = tempfile::tempdir().unwrap();
    let engine = start(&config(SHARED_PORT, &prefix, "payload = \"both\""), dir.path());
    let handle = engine.handle();
    let base = format!("{prefix}/acme/plant/area/tank-1");
    let status_topic = format!("{prefix}/backplane/uns-test-gw/status");

    let status = observer.wait_for("status online", is(&status_topic)).await;
    assert_eq!(status.json()["status"], "online");
    let level = observer
        .wait_for("level", is(&format!("{base}/level")))
        .await
        .json();
    assert_eq!(level["kind"], "sample");
    assert_eq!(level["path"], "acme/plant/area/tank-1/level");
    assert_eq!(level["asset"], "acme/plant/area/tank-1");
    assert_eq!(level["attribute"], "level");
    assert_eq!(level["model"], "Tank");
    assert_eq!(level["type"], "float");
    assert_eq!(level["unit"], "%");
    assert_eq!(level["quality"], "good");
    assert_eq!(level["context"]["shift"], "A", "context inherited from the area");
    observer.wait_for("running", is(&format!("{base}/running"))).await;
    let instance = observer
        .wait_for("an instance with both attributes", |m| {
            m.topic == format!("{base}/_instance")
                && m.json()["attributes"].as_object().is_some_and(|a| a.len() == 2)
        })
        .await
        .json();
    assert_eq!(instance["kind"], "instance");
    assert_eq!(instance["attributes"]["running"]["value"], true);
    assert_eq!(instance["attributes"]["level"]["unit"], "%");

    // Context changes are events on the asset where they were set, and later samples carry them.
    let area = handle.topology().asset_index("acme/plant/area").unwrap();
    handle
        .set_context(
            area,
            &ContextPatch::default().set(ContextField::WorkOrder, "WO-7"),
            Some("tester"),
        )
        .await
        .unwrap();
    let event = observer
        .wait_for(
            "the context event",
            is(&format!("{prefix}/acme/plant/area/_events")),
        )
        .await;
    assert!(!event.retain);
    assert_eq!(event.json()["event"], "context_changed");
    observer
        .wait_for("a sample with the work order", |m| {
            m.topic == format!("{base}/level") && m.json()["context"]["work_order"] == "WO-7"
        })
        .await;

    // Values are retained: a late subscriber gets the last ones at once, flagged retained.
    let mut late = Observer::start(SHARED_PORT, &format!("{base}/+")).await;
    let retained = late.wait_for("a retained value", |m| m.retain).await;
    assert!(retained.topic.starts_with(&base));

    observer.collect(Duration::from_millis(300)).await;
    engine.shutdown().await;
    let offline = observer
        .wait_for("status offline", |m| {
            m.topic == status_topic && m.json()["status"] == "offline"
        })
        .await
        .json();
    assert_eq!(offline["reason"], "shutdown");

    let pairs: Vec<(&str, serde_json::Value)> = observer
        .seen
        .iter()
        .map(|m| {
            let schema = if m.topic == status_topic {
                "status.schema.json"
            } else if m.topic.ends_with("/_instance") {
                "instance.schema.json"
            } else if m.topic.ends_with("/_events") {
                "event.schema.json"
            } else {
                "sample.schema.json"
            };
            (schema, m.json())
        })
        .collect();
    assert!(pairs.len() >= 8, "{} payloads", pairs.len());
    validate_with_schemas(&pairs);

    // Clean up the retained messages this run left on the shared broker.
    let topics: std::collections::BTreeSet<String> = observer
        .seen
        .iter()
        .filter(|m| !m.topic.ends_with("/_events"))
        .map(|m| m.topic.clone())
        .collect();
    clear_retained(SHARED_PORT, topics).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt5_sessions_publish_the_same_namespace_at_qos2() {
    let prefix = unique("uns5");
    let mut observer = Observer::start(SHARED_PORT, &format!("{prefix}/#")).await;
    let dir = tempfile::tempdir().unwrap();
    let engine = start(
        &config(
            SHARED_PORT,
            &prefix,
            "protocol = \"5\"\nqos = 2\nretain = false\nbatch_linger = \"200ms\"",
        ),
        dir.path(),
    );
    let level = observer
        .wait_for(
            "level over MQTT 5",
            is(&format!("{prefix}/acme/plant/area/tank-1/level")),
        )
        .await;
    assert_eq!(level.json()["kind"], "sample");
    engine.shutdown().await;
    let status = format!("{prefix}/backplane/uns-test-gw/status");
    clear_retained(SHARED_PORT, [status]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batching_coalesces_samples_to_the_latest_per_tag() {
    let prefix = unique("unsbatch");
    let mut observer = Observer::start(SHARED_PORT, &format!("{prefix}/acme/#")).await;
    let dir = tempfile::tempdir().unwrap();
    let engine = start(
        &config(SHARED_PORT, &prefix, "batch_linger = \"500ms\"\nretain = false"),
        dir.path(),
    );
    observer
        .wait_for("a first level", |m| m.topic.ends_with("/level"))
        .await;
    observer.collect(Duration::from_millis(2000)).await;
    engine.shutdown().await;
    // Live messages only: on a busy machine the first samples may wait for the broker
    // connection longer than `live_lag` and come as an (uncoalesced) replay.
    let levels = observer
        .seen
        .iter()
        .filter(|m| m.topic.ends_with("/level") && m.json().get("replay").is_none())
        .count();
    // 50 ms samples over ~2 s would be ~40 messages unbatched; a 500 ms linger gives ~5.
    assert!((2..=8).contains(&levels), "{levels} level messages");
    clear_retained(SHARED_PORT, [format!("{prefix}/backplane/uns-test-gw/status")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_and_republishes_status_and_values_after_the_broker_restarts() {
    let mut broker = Mosquitto::start();
    let port = broker.port;
    let prefix = "restart";
    let dir = tempfile::tempdir().unwrap();
    let engine = start(&config(port, prefix, "payload = \"both\""), dir.path());
    let status_topic = format!("{prefix}/backplane/uns-test-gw/status");
    let running_topic = format!("{prefix}/acme/plant/area/tank-1/running");
    {
        let mut observer = Observer::start(port, "#").await;
        observer.wait_for("status online", is(&status_topic)).await;
        observer.wait_for("running", is(&running_topic)).await;
    }

    broker.stop();
    tokio::time::sleep(Duration::from_millis(700)).await;
    broker.restart();

    // The restarted broker kept nothing (no persistence): a retained status and retained
    // values can only come from Backplane publishing them again after reconnecting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut observer = Observer::start(port, "#").await;
    let status = observer
        .wait_for("retained status after the restart", |m| {
            m.topic == status_topic && m.retain
        })
        .await;
    assert_eq!(status.json()["status"], "online");
    observer.collect(Duration::from_millis(500)).await;
    // Retained messages arrive first after a subscribe, whatever order the waits above took.
    for topic in [
        &running_topic,
        &format!("{prefix}/acme/plant/area/tank-1/_instance"),
    ] {
        assert!(
            observer.seen.iter().any(|m| &m.topic == topic && m.retain),
            "no retained message on {topic}"
        );
    }
    engine.shutdown().await;
}

#[test]
fn a_gateway_that_dies_leaves_its_offline_will() {
    let broker = Mosquitto::start();
    let port = broker.port;
    let dir = tempfile::tempdir().unwrap();
    let observer_rt = tokio::runtime::Runtime::new().unwrap();
    let mut observer = observer_rt.block_on(Observer::start(port, "#"));
    let status_topic = "dies/backplane/uns-test-gw/status".to_owned();

    // The gateway runs on a runtime of its own, so it can be dropped like a killed process.
    let gateway_rt = tokio::runtime::Runtime::new().unwrap();
    let engine = gateway_rt.block_on(async { start(&config(port, "dies", ""), dir.path()) });
    observer_rt.block_on(observer.wait_for("status online", |m| m.topic == status_topic));
    std::mem::forget(engine);
    gateway_rt.shutdown_background();

    let will = observer_rt
        .block_on(observer.wait_for("the will", |m| {
            m.topic == status_topic && m.json()["status"] == "offline"
        }))
        .json();
    assert_eq!(will["reason"], "connection_lost");
    assert!(will.get("time").is_none());
    validate_with_schemas(&[("status.schema.json", will)]);
    drop(broker);
}

/// The delay from a sample's reading (its gateway time, taken at the device's answer) to
/// the socket write of its message is recorded for a sample of the live messages, in
/// seconds: `scripts/bench-path` reads its percentiles (docs/performance.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delay_from_reading_to_socket_write_is_recorded_in_seconds() {
    let prefix = unique("uns-delay");
    let dir = tempfile::tempdir().unwrap();
    let engine = start(&config(SHARED_PORT, &prefix, ""), dir.path());
    // 2 tags every 50 ms, one message in 8 recorded: 5 a second.
    let (count_now, text) = common::recorded_delays(&engine, "uns", 10.0, Duration::from_secs(20)).await;
    let all = backplane_testkit::engine::metric(
        &text,
        "backplane_component_delay_seconds_bucket{le=\"+Inf\",component=\"sink\",name=\"uns\",what=\"device_to_socket\"}",
    );
    assert_eq!(all, Some(count_now), "{text}");
    engine.shutdown().await;
}
