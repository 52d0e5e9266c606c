//! Hole 3 of issue 18, end to end over the real Mosquitto: with `accept_commands = true`,
//! an anonymous MQTT client's DCMD once wrote 65535 into an attribute whose range is
//! [0, 6000] and set `stop_request`, leaving only a log line. Now every DCMD goes through
//! the write gate as the sink's identity: both are refused, counted and audited.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod common;

use std::sync::Arc;
use std::time::Duration;

use backplane_engine::Services;
use backplane_mqtt::sparkplug::codec::encode_payload;
use backplane_mqtt::sparkplug::proto::{self, payload::Metric, payload::metric};
use backplane_security::{AuditTrail, AuthMethod, MemoryRecorder, Outcome, Role};
use backplane_testkit::engine as support;
use common::{Observer, SHARED_PORT, registry, unique};

fn config(group: &str) -> String {
    format!(
        r#"
[namespace]
enterprise = "acme"
site = "plant"
[models.Filler.attributes]
speed_setpoint = {{ type = "float", unit = "bottle/min", range = [0, 6000] }}
stop_request = {{ type = "bool" }}
[models.Filler.writes.speed_setpoint]
role = "operator"
[[assets]]
path = "line"
level = "line"
[[assets]]
path = "line/filler"
model = "Filler"
source = "sim"
bindings.speed_setpoint = {{ address = "s" }}
bindings.stop_request = {{ address = "r" }}
[[sources]]
name = "sim"
kind = "simulator"
period = "100ms"
signals.s = {{ signal = "constant", value = 300.0 }}
signals.r = {{ signal = "constant", value = false }}
[[sinks]]
name = "spb"
kind = "sparkplug"
broker = "mqtt://127.0.0.1:{SHARED_PORT}"
group_id = "{group}"
edge_node_id = "edge-1"
accept_commands = true
commands_role = "operator"
"#
    )
}

fn metric(name: &str, datatype: proto::DataType, value: metric::Value) -> Metric {
    Metric {
        name: Some(name.into()),
        datatype: Some(datatype as u32),
        value: Some(value),
        ..Metric::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_dcmd_out_of_range_or_not_allowlisted_is_refused_counted_and_audited() {
    let group = unique("gate");
    let dir = tempfile::tempdir().unwrap();
    let trail = Arc::new(MemoryRecorder::default());
    let mut options = support::backoff(Duration::from_millis(100), Duration::from_millis(500));
    options.services = Services::one(AuditTrail::SERVICE, Arc::new(AuditTrail(trail.clone())));
    let mut births = Observer::start(SHARED_PORT, &format!("spBv1.0/{group}/DBIRTH/#")).await;
    let engine = support::start_with(&config(&group), dir.path(), &registry(), options);
    births
        .wait_for("the filler's DBIRTH", |m| m.topic.ends_with("/line.filler"))
        .await;

    // Anyone who can reach the broker: no credentials at all.
    let (client, mut eventloop) = rumqttc::AsyncClient::new(
        rumqttc::MqttOptions::new(unique("intruder"), "127.0.0.1", SHARED_PORT),
        10,
    );
    let pump = tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    let command = proto::Payload {
        metrics: vec![
            metric(
                "speed_setpoint",
                proto::DataType::Double,
                metric::Value::DoubleValue(65535.0),
            ),
            metric(
                "stop_request",
                proto::DataType::Boolean,
                metric::Value::BooleanValue(true),
            ),
        ],
        ..proto::Payload::default()
    };
    client
        .publish(
            format!("spBv1.0/{group}/DCMD/edge-1/line.filler"),
            rumqttc::QoS::AtLeastOnce,
            false,
            encode_payload(&command),
        )
        .await
        .unwrap();

    let writes = support::eventually_every(
        "both commands audited",
        Duration::from_secs(20),
        Duration::from_millis(20),
        || {
            let writes: Vec<_> = trail
                .events()
                .into_iter()
                .filter(|e| e.action == "write")
                .collect();
            (writes.len() == 2).then_some(writes)
        },
    )
    .await;
    let outcome = |attribute: &str| {
        let e = writes
            .iter()
            .find(|e| e.target == format!("acme/plant/line/filler/{attribute}"))
            .unwrap_or_else(|| panic!("no record for {attribute}: {writes:#?}"));
        let who = e.who.as_ref().unwrap();
        assert_eq!(
            (who.name.as_str(), who.role, who.method),
            ("sparkplug:spb", Role::Operator, AuthMethod::Connection)
        );
        assert_eq!(e.from, "sparkplug sink spb");
        e.outcome.clone()
    };
    assert!(
        matches!(outcome("speed_setpoint"), Outcome::Refused(r) if r.starts_with("range: 65535 is outside the range [0, 6000]")),
        "{writes:#?}"
    );
    assert!(
        matches!(outcome("stop_request"), Outcome::Refused(r) if r.starts_with("not_allowlisted: ")),
        "{writes:#?}"
    );
    assert!(
        trail.events().iter().all(|e| e.action != "write.accepted"),
        "nothing was written"
    );
    let handle = engine.handle();
    support::eventually_every(
        "dcmd_refused counted twice",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || {
            handle
                .metrics_text()
                .lines()
                .any(|l| {
                    l.contains("name=\"spb\"") && l.contains("event=\"dcmd_refused\"") && l.ends_with(" 2")
                })
                .then_some(())
        },
    )
    .await;
    pump.abort();
    engine.shutdown().await;
}
