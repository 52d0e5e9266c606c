//! The `mqtt` source (JSON and plain payloads) through the engine against a Mosquitto of
//! each test's own: values published with `mosquitto_pub` arrive as samples with their
//! attribute, value, quality and time; a retained message arrives on subscribe; the source
//! comes back after its broker is restarted or killed, and health shows the outage; the
//! broker keeps the source's session across a gateway restart (client ids derive from the
//! gateway's name); an unreadable payload time is counted and shown in the quality; a
//! second client with the source's client id is reported. Every test has a gateway name
//! of its own.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod common;

use std::path::Path;
use std::time::Duration;

use backplane_engine::{ComponentHealth, EngineHandle, Latest};
use backplane_model::{BadReason, Quality, Timestamp, UncertainReason, Value};
use backplane_mqtt::client_id::{Component, default_client_id};
use backplane_testkit::engine::{eventually, latest};
use common::{Mosquitto, mosquitto_pub, source_counter, start, unique};

const WAIT: Duration = Duration::from_secs(20);

/// Silo `reception/silo-1` fed by source `mq`: JSON fields, a plain payload, a topic level.
/// `protocol` is "3.1.1" or "5"; samples also go to `samples.jsonl` in the data directory.
fn config(port: u16, gateway: &str, protocol: &str) -> String {
    format!(
        r#"
[gateway]
name = "{gateway}"

[namespace]
enterprise = "acme"
site = "plant"

[models.Silo.attributes]
level = {{ type = "float", unit = "%" }}
temperature = {{ type = "float", unit = "degC" }}
state = {{ type = "string" }}
line = {{ type = "string" }}
count = {{ type = "uint" }}

[[assets]]
path = "reception"
level = "area"

[[assets]]
path = "reception/silo-1"
model = "Silo"
source = "mq"
bindings.level = {{ address = "js/silo-1/telemetry#$.level" }}
bindings.temperature = {{ address = "js/silo-1/telemetry#$.temp.value", scale = {{ gain = 0.1 }} }}
bindings.state = {{ address = "js/silo-1/state" }}
bindings.line = {{ address = "js/+/telemetry#$topic[1]" }}
bindings.count = {{ address = "js/silo-1/count" }}

[[sources]]
name = "mq"
kind = "mqtt"
broker = "mqtt://127.0.0.1:{port}"
protocol = "{protocol}"
qos = 1
timestamp_path = "$.ts"
reconnect_min = "100ms"
reconnect_max = "500ms"

[[sinks]]
name = "file"
kind = "jsonl"
path = "samples.jsonl"
"#
    )
}

fn tag(attribute: &str) -> String {
    format!("acme/plant/reception/silo-1/{attribute}")
}

/// Waits for the tag's latest sample to satisfy `pred`.
async fn sample_where(
    handle: &EngineHandle,
    attribute: &str,
    what: &str,
    pred: impl Fn(&Latest) -> bool,
) -> Latest {
    let path = tag(attribute);
    eventually(what, WAIT, || latest(handle, &path).filter(|l| pred(l))).await
}

fn source_health(handle: &EngineHandle) -> ComponentHealth {
    handle
        .health()
        .components
        .into_iter()
        .find(|c| c.component == "source" && c.name == "mq")
        .expect("source mq in health")
}

/// The samples of `attribute` the jsonl sink wrote, as JSON, in order.
fn written(data_dir: &Path, attribute: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(data_dir.join("samples.jsonl")).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|j| j["kind"] == "sample" && j["path"] == tag(attribute).as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_values_arrive_with_their_attribute_value_quality_and_device_time() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let engine = start(&config(broker.port, &unique("js-values"), "3.1.1"), dir.path());
    let handle = engine.handle();
    // Subscribed once a value arrives: publish until one does (nothing is retained).
    eventually("the source subscribed", WAIT, || {
        mosquitto_pub(broker.port, "js/silo-1/count", "0", false);
        latest(&handle, &tag("count"))
    })
    .await;

    mosquitto_pub(
        broker.port,
        "js/silo-1/telemetry",
        r#"{"level": 61.5, "temp": {"value": 42}, "ts": 1790000000123}"#,
        false,
    );
    mosquitto_pub(broker.port, "js/silo-1/state", "filling", false);
    mosquitto_pub(broker.port, "js/silo-1/count", "17", false);

    let device_time = Timestamp::from_unix_millis(1_790_000_000_123);
    let level = sample_where(&handle, "level", "level 61.5", |l| {
        l.sample.value == Some(Value::Float(61.5))
    })
    .await;
    assert_eq!(level.sample.quality, Quality::Good);
    assert_eq!(level.sample.source_time, Some(device_time));
    // The binding's transform ran on the JSON field: 42 × 0.1.
    let temperature = sample_where(&handle, "temperature", "temperature", |l| {
        l.sample.value.is_some()
    })
    .await;
    assert_eq!(temperature.sample.value, Some(Value::Float(4.2)));
    assert_eq!(temperature.raw, Some(Value::UInt(42)));
    assert_eq!(temperature.sample.source_time, Some(device_time));
    // The topic level of the same message.
    let line = sample_where(&handle, "line", "line", |l| l.sample.value.is_some()).await;
    assert_eq!(line.sample.value, Some(Value::String("silo-1".into())));
    // Plain payloads: no device time, the gateway's stands.
    let state = sample_where(&handle, "state", "state", |l| l.sample.value.is_some()).await;
    assert_eq!(state.sample.value, Some(Value::String("filling".into())));
    assert_eq!(state.sample.quality, Quality::Good);
    assert_eq!(state.sample.source_time, None);
    let count = sample_where(&handle, "count", "count 17", |l| {
        l.sample.value == Some(Value::UInt(17))
    })
    .await;
    assert_eq!(count.sample.quality, Quality::Good);

    engine.shutdown().await;
    // What a consumer of the jsonl sink read.
    let levels = written(dir.path(), "level");
    let last = levels.last().expect("level written");
    assert_eq!(last["value"], 61.5);
    assert_eq!(last["unit"], "%");
    assert_eq!(last["quality"], "good");
    assert_eq!(last["source_time"], device_time.to_rfc3339().as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_retained_before_the_source_subscribes_arrives_on_subscribe() {
    let broker = Mosquitto::start();
    mosquitto_pub(
        broker.port,
        "js/silo-1/telemetry",
        r#"{"level": 33.25, "ts": "2026-03-01T06:00:00Z"}"#,
        true,
    );
    let dir = tempfile::tempdir().unwrap();
    let engine = start(&config(broker.port, &unique("js-retained"), "3.1.1"), dir.path());
    let handle = engine.handle();
    let level = sample_where(&handle, "level", "the retained level", |l| {
        l.sample.value.is_some()
    })
    .await;
    assert_eq!(level.sample.value, Some(Value::Float(33.25)));
    assert_eq!(level.sample.quality, Quality::Good);
    // Its device time, not the time it was delivered.
    assert_eq!(
        level.sample.source_time,
        Timestamp::parse_rfc3339("2026-03-01T06:00:00Z")
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn across_a_broker_restart_values_published_meanwhile_arrive_and_health_shows_the_outage() {
    // Sessions outlive the restart (a broker stopped by its service manager saves them).
    let mut broker = Mosquitto::start_persistent();
    let dir = tempfile::tempdir().unwrap();
    let engine = start(&config(broker.port, &unique("js-restart"), "3.1.1"), dir.path());
    let handle = engine.handle();
    eventually("the source subscribed", WAIT, || {
        mosquitto_pub(broker.port, "js/silo-1/count", "1", false);
        latest(&handle, &tag("count"))
    })
    .await;
    let restarts_before = source_health(&handle).restarts;

    broker.stop_gracefully();
    // The outage shows: the value keeps its last reading but turns bad, health has the
    // failure with the broker's address.
    let down = sample_where(&handle, "count", "count bad", |l| l.sample.quality.is_bad()).await;
    assert_eq!(down.sample.quality, Quality::Bad(BadReason::CommFailure));
    assert_eq!(down.sample.value, Some(Value::UInt(1)));
    let health = eventually("health shows the outage", WAIT, || {
        let h = source_health(&handle);
        (h.restarts > restarts_before).then_some(h)
    })
    .await;
    assert_eq!(health.error_kind, Some("connect"));
    let error = health.last_error.unwrap();
    assert!(error.contains(&format!("127.0.0.1:{}", broker.port)), "{error}");

    broker.launch_again();
    // Published at once, before the source is back: the kept session holds it.
    mosquitto_pub(broker.port, "js/silo-1/count", "2", false);
    let back = sample_where(&handle, "count", "count 2", |l| {
        l.sample.value == Some(Value::UInt(2))
    })
    .await;
    assert_eq!(back.sample.quality, Quality::Good);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_its_broker_is_killed_the_source_reconnects_and_subscribes_again() {
    let mut broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let engine = start(&config(broker.port, &unique("js-killed"), "5"), dir.path());
    let handle = engine.handle();
    eventually("the source subscribed", WAIT, || {
        mosquitto_pub(broker.port, "js/silo-1/count", "1", false);
        latest(&handle, &tag("count"))
    })
    .await;
    let restarts_before = source_health(&handle).restarts;

    broker.stop();
    sample_where(&handle, "count", "count bad", |l| {
        l.sample.quality == Quality::Bad(BadReason::CommFailure)
    })
    .await;
    broker.launch_again();
    // The killed broker forgot the session: only a new subscription brings this
    // (retained, so it comes whenever that subscription is made).
    mosquitto_pub(broker.port, "js/silo-1/count", "3", true);
    let back = sample_where(&handle, "count", "count 3", |l| {
        l.sample.value == Some(Value::UInt(3))
    })
    .await;
    assert_eq!(back.sample.quality, Quality::Good);
    let health = source_health(&handle);
    assert!(health.restarts > restarts_before, "{health:?}");
    assert!(health.last_error.is_some(), "{health:?}");
    engine.shutdown().await;
}

/// QoS 1 messages published while the gateway is stopped arrive when a gateway of the same
/// name starts again (with other data: the session is the broker's, found by client id).
async fn messages_published_while_stopped_arrive_after_a_restart(protocol: &str) {
    let broker = Mosquitto::start();
    let gateway = unique("js-session");
    let first = tempfile::tempdir().unwrap();
    let engine = start(&config(broker.port, &gateway, protocol), first.path());
    let handle = engine.handle();
    eventually("the source subscribed", WAIT, || {
        mosquitto_pub(broker.port, "js/silo-1/count", "1", false);
        latest(&handle, &tag("count"))
    })
    .await;
    engine.shutdown().await;

    for n in ["2", "3", "4"] {
        mosquitto_pub(broker.port, "js/silo-1/count", n, false);
    }

    let second = tempfile::tempdir().unwrap();
    let engine = start(&config(broker.port, &gateway, protocol), second.path());
    let handle = engine.handle();
    sample_where(&handle, "count", "count 4", |l| {
        l.sample.value == Some(Value::UInt(4))
    })
    .await;
    engine.shutdown().await;
    // `1` was published again and again until the first gateway had subscribed; one still
    // on its way when that gateway stopped is rightly delivered to the second (the broker
    // kept it in the session), so only the messages published while stopped are compared.
    let counts: Vec<u64> = written(second.path(), "count")
        .iter()
        .filter(|j| j["quality"] == "good")
        .filter_map(|j| j["value"].as_u64())
        .filter(|&n| n != 1)
        .collect();
    assert_eq!(counts, [2, 3, 4], "every message, once, in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_published_while_the_gateway_is_stopped_arrive_after_it_restarts_mqtt_3_1_1() {
    messages_published_while_stopped_arrive_after_a_restart("3.1.1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_published_while_the_gateway_is_stopped_arrive_after_it_restarts_mqtt_5() {
    messages_published_while_stopped_arrive_after_a_restart("5").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_payload_time_is_counted_and_makes_the_value_uncertain_source_time_invalid() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let engine = start(&config(broker.port, &unique("js-badtime"), "3.1.1"), dir.path());
    let handle = engine.handle();
    eventually("the source subscribed", WAIT, || {
        mosquitto_pub(broker.port, "js/silo-1/count", "0", false);
        latest(&handle, &tag("count"))
    })
    .await;

    mosquitto_pub(
        broker.port,
        "js/silo-1/telemetry",
        r#"{"level": 12.5, "ts": "half past nine"}"#,
        false,
    );
    let level = sample_where(&handle, "level", "level 12.5", |l| {
        l.sample.value == Some(Value::Float(12.5))
    })
    .await;
    assert_eq!(
        level.sample.quality,
        Quality::Uncertain(UncertainReason::SourceTimeInvalid)
    );
    assert_eq!(level.sample.source_time, None, "the gateway's time stands in");
    assert_eq!(
        source_counter(&handle.metrics_text(), "mq", "source_time_invalid"),
        1.0
    );
    let lineage = handle
        .lineage(handle.topology().tag_by_path(&tag("level")).unwrap().id)
        .unwrap();
    assert_eq!(lineage.quality_reason, Some("source_time_invalid"));

    // Milliseconds past the year 2262.
    mosquitto_pub(
        broker.port,
        "js/silo-1/telemetry",
        r#"{"level": 12.75, "ts": 99999999999999999}"#,
        false,
    );
    let level = sample_where(&handle, "level", "level 12.75", |l| {
        l.sample.value == Some(Value::Float(12.75))
    })
    .await;
    assert_eq!(
        level.sample.quality,
        Quality::Uncertain(UncertainReason::SourceTimeInvalid)
    );

    // A readable time again: good, with the device's time.
    mosquitto_pub(
        broker.port,
        "js/silo-1/telemetry",
        r#"{"level": 13, "ts": 1790000000000}"#,
        false,
    );
    let level = sample_where(&handle, "level", "level 13", |l| {
        l.sample.value == Some(Value::Float(13.0))
    })
    .await;
    assert_eq!(level.sample.quality, Quality::Good);
    assert_eq!(
        level.sample.source_time,
        Some(Timestamp::from_unix_millis(1_790_000_000_000))
    );
    assert_eq!(
        source_counter(&handle.metrics_text(), "mq", "source_time_invalid"),
        2.0
    );
    engine.shutdown().await;

    // What a consumer of the samples reads.
    let levels = written(dir.path(), "level");
    let first = &levels[0];
    assert_eq!(first["value"], 12.5);
    assert_eq!(first["quality"], "uncertain");
    assert_eq!(first["quality_reason"], "source_time_invalid");
    assert!(first.get("source_time").is_none(), "{first}");
}

/// A client that keeps connecting with `client_id`, as a second gateway of the same name
/// would: each connection drops the source's, and the source's reconnect drops it.
fn impostor(port: u16, client_id: String, protocol: &str) -> tokio::task::JoinHandle<()> {
    if protocol == "5" {
        let options = rumqttc::v5::MqttOptions::new(client_id, "127.0.0.1", port);
        let (client, mut eventloop) = rumqttc::v5::AsyncClient::new(options, 10);
        tokio::spawn(async move {
            let _keep = client;
            loop {
                if eventloop.poll().await.is_err() {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        })
    } else {
        let options = rumqttc::MqttOptions::new(client_id, "127.0.0.1", port);
        let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 10);
        tokio::spawn(async move {
            let _keep = client;
            loop {
                if eventloop.poll().await.is_err() {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        })
    }
}

/// Mosquitto 2.0 closes the older connection without a reason under MQTT 5 too (no
/// DISCONNECT with Session Taken Over), so both protocols are caught by the count of
/// broker-closed sessions in a row.
async fn a_second_client_with_the_source_client_id_is_reported(protocol: &str) {
    let broker = Mosquitto::start();
    let gateway = unique("js-twin");
    let dir = tempfile::tempdir().unwrap();
    let engine = start(&config(broker.port, &gateway, protocol), dir.path());
    let handle = engine.handle();
    eventually("the source subscribed", WAIT, || {
        mosquitto_pub(broker.port, "js/silo-1/count", "0", false);
        latest(&handle, &tag("count"))
    })
    .await;
    // The id the source derived from the gateway's name, taken by another client.
    let twin = impostor(
        broker.port,
        default_client_id(&gateway, Component::Source, "mq"),
        protocol,
    );
    let health = eventually("the shared client id reported", WAIT, || {
        let h = source_health(&handle);
        h.last_error
            .as_deref()
            .is_some_and(|e| e.contains("times in a row") && e.contains("[gateway] name"))
            .then_some(h)
    })
    .await;
    twin.abort();
    assert_eq!(health.error_kind, Some("connect"));
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_client_with_the_source_client_id_is_reported_mqtt_3_1_1() {
    a_second_client_with_the_source_client_id_is_reported("3.1.1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_client_with_the_source_client_id_is_reported_mqtt_5() {
    a_second_client_with_the_source_client_id_is_reported("5").await;
}
