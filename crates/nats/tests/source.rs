//! The `nats` source mirroring an edge gateway into a hub, both engines in one test,
//! through the shared nats-server: samples, context, events, duplicates, refusals and
//! model drift. Each test has its own stream and prefix and deletes the stream.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod common;

use std::time::Duration;

use async_nats::HeaderMap;
use backplane_connector::payload::EventPayload;
use backplane_model::{
    AssetPath, BadReason, ContextField, ContextPatch, Event, EventKind, Quality, Timestamp, Value,
};
use backplane_testkit::engine::{eventually, eventually_every, latest, start};
use common::harness::registry;
use common::{SHARED, StreamGuard, counter, js, names};

fn edge(stream: &str, prefix: &str) -> String {
    format!(
        r#"
[gateway]
name = "edge-b"

[namespace]
enterprise = "acme"
site = "plant-b"

[models.Tank.attributes]
level = {{ type = "float", unit = "%" }}
temp = {{ type = "float", unit = "degC" }}

[[assets]]
path = "area"
level = "area"

[[assets]]
path = "area/tank-1"
model = "Tank"
source = "sim"
bindings.level = {{ address = "l" }}
bindings.temp = {{ address = "t" }}

[[sources]]
name = "sim"
kind = "simulator"
period = "20ms"
signals.l = {{ signal = "ramp", from = 0, to = 100, period = "10s" }}
signals.t = {{ signal = "constant", value = 4.5 }}

[[sinks]]
name = "js"
kind = "nats"
url = "{SHARED}"
prefix = "{prefix}"
stream = {{ name = "{stream}", storage = "memory" }}
"#
    )
}

/// The hub knows `temp` in degF: the edge's degC values are drift, refused.
fn hub(stream: &str, prefix: &str) -> String {
    format!(
        r#"
[gateway]
name = "hub"

[namespace]
enterprise = "acme"
site = "hub"
sites = ["plant-b"]

[models.Tank.attributes]
level = {{ type = "float", unit = "%" }}
temp = {{ type = "float", unit = "degF" }}

[[assets]]
path = "plant-b/area"
level = "area"

[[assets]]
path = "plant-b/area/tank-1"
model = "Tank"
source = "plants"
bindings.level = {{ address = "acme/plant-b/area/tank-1/level" }}
bindings.temp = {{ address = "acme/plant-b/area/tank-1/temp" }}

[[sources]]
name = "plants"
kind = "nats"
url = "{SHARED}"
prefix = "{prefix}"
stream = "{stream}"
batch = 100
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_mirrors_an_edge_with_context_events_and_refuses_drift_duplicates_and_garbage() {
    let (name, prefix) = names("mirror");
    let _guard = StreamGuard {
        url: SHARED.into(),
        name: name.clone(),
    };
    let registry = registry();
    let edge_dir = tempfile::tempdir().unwrap();
    let edge = start(&edge(&name, &prefix), edge_dir.path(), &registry);
    let edge_handle = edge.handle();
    let area = edge_handle.topology().asset_index("acme/plant-b/area").unwrap();
    edge_handle
        .set_context(
            area,
            &ContextPatch::default().set(ContextField::WorkOrder, "WO-9"),
            Some("mes"),
        )
        .await
        .unwrap();
    let js = js(SHARED).await;
    let mut tries = 0;
    while js.get_stream(&name).await.is_err() {
        tries += 1;
        assert!(tries < 200, "the edge never created its stream");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    let hub_dir = tempfile::tempdir().unwrap();
    let hub = start(&hub(&name, &prefix), hub_dir.path(), &registry);
    let h = hub.handle();
    let mut live = h.subscribe();
    let level = eventually("a mirrored level", Duration::from_secs(15), || {
        latest(&h, "acme/plant-b/area/tank-1/level").filter(|l| l.sample.quality.is_good())
    })
    .await;
    assert!(matches!(level.sample.value, Some(Value::Float(_))));
    let tank = h.topology().asset_index("acme/plant-b/area/tank-1").unwrap();
    eventually(
        "the edge's work order on the hub",
        Duration::from_secs(10),
        || (h.context(tank).1.work_order.as_deref() == Some("WO-9")).then_some(()),
    )
    .await;
    eventually(
        "hub samples carry the edge's context",
        Duration::from_secs(10),
        || {
            latest(&h, "acme/plant-b/area/tank-1/level")
                .filter(|l| l.sample.context.work_order.as_deref() == Some("WO-9"))
        },
    )
    .await;
    let temp = eventually("the drifted temp", Duration::from_secs(10), || {
        latest(&h, "acme/plant-b/area/tank-1/temp")
    })
    .await;
    assert_eq!(
        temp.sample.quality,
        Quality::Bad(BadReason::ConfigError),
        "degC is not the hub's degF"
    );
    assert_eq!(temp.sample.value, None, "never the value");

    // Things another party writes into the stream.
    let client = async_nats::connect(SHARED).await.unwrap();
    let js2 = async_nats::jetstream::new(client);
    let publish = |subject: String, gateway: &str, payload: String| {
        let js2 = js2.clone();
        let mut headers = HeaderMap::new();
        headers.insert("Backplane-Gateway", gateway);
        async move {
            js2.publish_with_headers(subject, headers, payload.into())
                .await
                .unwrap()
                .await
                .unwrap()
        }
    };
    let base = format!("{prefix}.acme.plant-b.area.tank-1");
    publish(format!("{base}.level"), "edge-b", "not json".into()).await;
    publish(format!("{base}.level"), "edge-b", r#"{"kind":"sample"}"#.into()).await;
    let foreign = r#"{"kind":"sample","path":"globex/plant-b/area/tank-1/level","asset":"globex/plant-b/area/tank-1","attribute":"level","model":"Tank","value":1.0,"type":"float","unit":"%","quality":"good","gateway_time":"2026-01-01T00:00:00Z","context":{}}"#;
    publish(
        format!("{prefix}.globex.plant-b.area.tank-1.level"),
        "edge-x",
        foreign.into(),
    )
    .await;
    // A redelivery of a sample the hub has seen: same gateway, same seq.
    let copy = r#"{"kind":"sample","path":"acme/plant-b/area/tank-1/level","asset":"acme/plant-b/area/tank-1","attribute":"level","model":"Tank","value":-1.0,"type":"float","unit":"%","quality":"good","gateway_time":"2026-01-01T00:00:00Z","context":{"work_order":"WO-9"},"seq":1}"#;
    publish(format!("{base}.level"), "edge-b", copy.into()).await;
    // An event of the edge's, and a context event (the hub derives its own).
    let state = EventKind::examples()
        .into_iter()
        .find(|k| matches!(k, EventKind::StateChanged(_)))
        .unwrap();
    let event = Event {
        asset: AssetPath::parse("acme/plant-b/area/tank-1").unwrap(),
        time: Timestamp::now(),
        kind: state,
        context: Default::default(),
    };
    let payload = serde_json::to_string(&EventPayload::new(&event).with_seq(Some(1_000_000), false)).unwrap();
    publish(format!("{base}._events.state_changed"), "edge-b", payload).await;

    let metrics = || h.metrics_text();
    eventually("refusals counted", Duration::from_secs(10), || {
        let m = metrics();
        (counter(&m, "plants", "refused_garbage") >= 2
            && counter(&m, "plants", "refused_other_enterprise") >= 1
            && counter(&m, "plants", "duplicates") >= 1
            && counter(&m, "plants", "drift_refused") >= 1)
            .then_some(())
    })
    .await;
    let mut saw_event = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !saw_event && tokio::time::Instant::now() < deadline {
        if let Ok(Ok(batch)) = tokio::time::timeout(Duration::from_millis(200), live.recv()).await {
            saw_event |= batch.events.iter().any(|e| {
                e.asset.as_str() == "acme/plant-b/area/tank-1" && matches!(e.kind, EventKind::StateChanged(_))
            });
        }
    }
    assert!(saw_event, "the edge's event reached the hub's pipeline");
    assert_ne!(
        latest(&h, "acme/plant-b/area/tank-1/level").unwrap().sample.value,
        Some(Value::Float(-1.0)),
        "the redelivered copy was dropped"
    );
    // Ingestion goes on after the refusals.
    let before = latest(&h, "acme/plant-b/area/tank-1/level")
        .unwrap()
        .sample
        .gateway_time;
    eventually("newer samples after the garbage", Duration::from_secs(10), || {
        latest(&h, "acme/plant-b/area/tank-1/level").filter(|l| l.sample.gateway_time > before)
    })
    .await;
    hub.shutdown().await;
    edge.shutdown().await;
}

/// A hub mirroring only `plant-b`, from a stream holding other sites too.
fn filtered_hub(stream: &str, prefix: &str) -> String {
    format!(
        r#"
[gateway]
name = "hub"

[namespace]
enterprise = "acme"
site = "hub"
sites = ["plant-b"]

[models.Tank.attributes]
level = {{ type = "float", unit = "%" }}

[[assets]]
path = "plant-b/area"
level = "area"

[[assets]]
path = "plant-b/area/tank-1"
model = "Tank"
source = "plants"
bindings.level = {{ address = "acme/plant-b/area/tank-1/level" }}

[[sources]]
name = "plants"
kind = "nats"
url = "{SHARED}"
prefix = "{prefix}"
stream = "{stream}"
subjects = ["{prefix}.acme.plant-b.>"]
"#
    )
}

/// nats-server 2.9 answered a filtered consumer's `no_wait` fetches with a few messages
/// each, then waited out the expiry: a backlog's tail trickled at ~50 messages/s. The
/// deadline only turns such a crawl (many minutes) into a failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_of_twenty_thousand_messages_on_a_filtered_consumer_drains() {
    const BACKLOG: u64 = 20_000;
    let (name, prefix) = names("backlog");
    let _guard = StreamGuard {
        url: SHARED.into(),
        name: name.clone(),
    };
    let js = js(SHARED).await;
    js.create_stream(async_nats::jetstream::stream::Config {
        name: name.clone(),
        subjects: vec![format!("{prefix}.>")],
        storage: async_nats::jetstream::stream::StorageType::Memory,
        ..Default::default()
    })
    .await
    .unwrap();
    // The backlog: plant B's level 1..=BACKLOG, every tenth message another site's.
    let mut acks = Vec::new();
    for seq in 1..=BACKLOG {
        let mut headers = HeaderMap::new();
        headers.insert("Backplane-Gateway", "edge-b");
        let payload = format!(
            r#"{{"kind":"sample","path":"acme/plant-b/area/tank-1/level","asset":"acme/plant-b/area/tank-1","attribute":"level","model":"Tank","value":{seq}.0,"type":"float","unit":"%","quality":"good","gateway_time":"2026-01-01T00:00:00Z","context":{{}},"seq":{seq}}}"#
        );
        let subject = format!("{prefix}.acme.plant-b.area.tank-1.level");
        acks.push(
            js.publish_with_headers(subject, headers, payload.into())
                .await
                .unwrap(),
        );
        if seq % 10 == 0 {
            let other = format!("{prefix}.acme.plant-c.area.tank-1.level");
            acks.push(js.publish(other, "{}".into()).await.unwrap());
        }
        if acks.len() >= 1000 {
            for ack in acks.drain(..) {
                ack.await.unwrap();
            }
        }
    }
    for ack in acks.drain(..) {
        ack.await.unwrap();
    }

    let registry = registry();
    let hub_dir = tempfile::tempdir().unwrap();
    let hub = start(&filtered_hub(&name, &prefix), hub_dir.path(), &registry);
    let h = hub.handle();
    let started = std::time::Instant::now();
    eventually_every(
        "the whole backlog mirrored",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || {
            latest(&h, "acme/plant-b/area/tank-1/level")
                .filter(|l| l.sample.value == Some(Value::Float(BACKLOG as f64)))
        },
    )
    .await;
    println!("{BACKLOG} messages drained in {:?}", started.elapsed());
    let stream = js.get_stream(&name).await.unwrap();
    let mut consumer: async_nats::jetstream::consumer::PullConsumer =
        stream.get_consumer("backplane-hub-plants").await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let info = consumer.info().await.unwrap();
        if info.num_pending == 0 && info.num_ack_pending == 0 {
            assert_eq!(
                info.config.filter_subject,
                format!("{prefix}.acme.plant-b.>"),
                "a filtered consumer"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "messages left unacknowledged: {info:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = h.metrics_text();
    assert_eq!(counter(&metrics, "plants", "duplicates"), 0);
    hub.shutdown().await;
}
