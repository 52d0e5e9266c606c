//! Issue 8, end to end: a valid operator entry submitted over HTTP appears in the API, on
//! the UNS JSON sink (the shared Mosquitto on 127.0.0.1:1883) and in history, with every
//! kind this build registers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::time::Duration;

use backplane_api::ApiOptions;
use backplane_engine::Engine;
use backplane_testkit::engine as support;
use backplane_testkit::names::unique;
use serde_json::{Value, json};
use tokio::sync::mpsc;

const SILO_1: &str = "acme/plant-a/reception/silo-1";

fn config(gateway: &str, prefix: &str) -> String {
    format!(
        r#"
[gateway]
name = "{gateway}"

[namespace]
enterprise = "acme"
site = "plant-a"

[forms.milk-lab]
description = "Milk reception lab check"
assets = ["reception"]
fields.fat = {{ type = "float", unit = "%", range = [2.5, 6.0], required = true }}
fields.protein = {{ type = "float", unit = "%", range = [2.8, 4.0], required = true }}
fields.antibiotic = {{ type = "choice", choices = ["pass", "fail"], required = true }}
fields.note = {{ type = "string" }}

[models.Silo]
[models.Silo.attributes]
level = {{ type = "float", unit = "L" }}

[[assets]]
path = "reception"
level = "area"

[[assets]]
path = "reception/silo-1"
model = "Silo"
source = "reception-plc"
bindings.level = {{ address = "level" }}

[[sources]]
name = "reception-plc"
kind = "simulator"
period = "100ms"
[sources.signals]
"level" = {{ signal = "ramp", from = 1000, to = 30000, period = "60s" }}

[[sinks]]
name = "history"
kind = "historian"
flush_interval = "1s"

[[sinks]]
name = "uns"
kind = "mqtt"
broker = "mqtt://127.0.0.1:1883"
topic_prefix = "{prefix}"
retain = false
reconnect_min = "100ms"
reconnect_max = "1s"
"#
    )
}

/// One message a [`Subscriber`] saw.
#[derive(Debug)]
struct Seen {
    topic: String,
    payload: Vec<u8>,
    retain: bool,
}

/// A plain rumqttc subscriber on the shared broker (the idea of crates/mqtt's test
/// Observer): subscribes on every connect, hands every publish over a channel.
struct Subscriber {
    client: rumqttc::AsyncClient,
    rx: mpsc::UnboundedReceiver<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl Subscriber {
    async fn start(filter: &str) -> Subscriber {
        let mut options = rumqttc::MqttOptions::new(unique("bp-e2e-observer"), "127.0.0.1", 1883);
        options.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 100);
        let (tx, rx) = mpsc::unbounded_channel();
        let (subscribed_tx, subscribed_rx) = tokio::sync::oneshot::channel();
        let filter = filter.to_owned();
        let subscriber = client.clone();
        let task = tokio::spawn(async move {
            let mut subscribed_tx = Some(subscribed_tx);
            loop {
                match eventloop.poll().await {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                        let _ = subscriber
                            .subscribe(filter.clone(), rumqttc::QoS::AtLeastOnce)
                            .await;
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                        if let Some(s) = subscribed_tx.take() {
                            let _ = s.send(());
                        }
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                        let _ = tx.send(Seen {
                            topic: p.topic,
                            payload: p.payload.to_vec(),
                            retain: p.retain,
                        });
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), subscribed_rx)
            .await
            .expect("subscribed to the shared Mosquitto on 127.0.0.1:1883")
            .unwrap();
        Subscriber { client, rx, task }
    }

    /// Waits (up to 30 s: a safety net, not a timing assertion) for a message `pred`
    /// accepts.
    async fn wait_for(&mut self, what: &str, pred: impl Fn(&Seen) -> bool) -> Seen {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut topics = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(m)) if pred(&m) => return m,
                Ok(Some(m)) => topics.push(m.topic),
                _ => panic!("gave up waiting for {what}; saw {topics:?}"),
            }
        }
    }

    /// Everything that arrives within `d`.
    async fn collect(&mut self, d: Duration) -> Vec<Seen> {
        let deadline = tokio::time::Instant::now() + d;
        let mut seen = Vec::new();
        while let Ok(Some(m)) = tokio::time::timeout_at(deadline, self.rx.recv()).await {
            seen.push(m);
        }
        seen
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Clears every retained message under `prefix` (the gateway's status topic), so the
/// shared broker keeps nothing of this run.
async fn clear_retained(prefix: &str) {
    let mut sweeper = Subscriber::start(&format!("{prefix}/#")).await;
    let retained: Vec<String> = sweeper
        .collect(Duration::from_millis(500))
        .await
        .into_iter()
        .filter(|m| m.retain && !m.payload.is_empty())
        .map(|m| m.topic)
        .collect();
    for topic in &retained {
        sweeper
            .client
            .publish(topic.as_str(), rumqttc::QoS::AtLeastOnce, true, Vec::new())
            .await
            .unwrap();
    }
    // Let the event loop send them before it is dropped.
    let _ = sweeper.collect(Duration::from_millis(300)).await;
    let mut check = Subscriber::start(&format!("{prefix}/#")).await;
    let left: Vec<String> = check
        .collect(Duration::from_millis(300))
        .await
        .into_iter()
        .filter(|m| m.retain && !m.payload.is_empty())
        .map(|m| m.topic)
        .collect();
    assert!(left.is_empty(), "retained messages left on the broker: {left:?}");
}

async fn get(client: &reqwest::Client, url: &str) -> Value {
    let response = client.get(url).send().await.unwrap();
    assert!(response.status().is_success(), "{url}: {}", response.status());
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_operator_entry_appears_in_the_api_on_the_uns_and_in_history() {
    let prefix = format!("bp-test/{}", unique("production"));
    let gateway = unique("e2e");
    let data = tempfile::tempdir().unwrap();
    let registry = backplane::registry();
    let plan = support::plan(&config(&gateway, &prefix), data.path(), &registry);

    // Subscribed before anything is published: events are not retained.
    let mut uns = Subscriber::start(&format!("{prefix}/+/+/+/+/_events")).await;

    let options = support::backoff(Duration::from_millis(50), Duration::from_millis(500));
    // As `backplane run` does: the engine opens the stores before it starts anything, then
    // the API finds them among the engine's services.
    let engine = Engine::start(plan, &registry, options).unwrap();
    let history = engine
        .handle()
        .services()
        .named::<backplane_historian::Store>("history");
    assert!(history.is_some(), "the historian sink has a store");
    // Anna signs in with her own token: the entry is hers because she authenticated.
    let mut users = backplane_api::users::Users::default();
    let anna = users
        .add_token("anna", backplane_security::Role::Operator)
        .unwrap();
    let options = ApiOptions {
        users,
        ..ApiOptions::default()
    };
    let router = backplane_api::router(engine.handle(), options);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(backplane_api::serve(
        listener,
        router,
        Default::default(),
        async {
            let _ = stopped.await;
        },
    ));

    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {anna}").parse().unwrap(),
    );
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap();
    let values = json!({"fat": 4.1, "protein": 3.3, "antibiotic": "pass", "note": "tanker 7"});
    let response = client
        .post(format!("{base}/api/v1/forms/milk-lab/entries"))
        .json(&json!({"asset": "reception/silo-1", "values": values}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let recorded: Value = response.json().await.unwrap();
    assert_eq!(recorded["user"], "anna");
    assert_eq!(recorded["asset"], SILO_1);
    assert_eq!(recorded["values"], values);
    let entry = recorded["entry"].as_u64().unwrap();

    // 1. The API lists it.
    let listed = get(&client, &format!("{base}/api/v1/forms/milk-lab/entries")).await;
    assert_eq!(listed, json!([recorded]));

    // 2. The UNS JSON sink published it on the silo's event topic, numbered.
    let topic = format!("{prefix}/{SILO_1}/_events");
    let message = uns
        .wait_for("the operator_entry event on the UNS", |m| {
            m.topic == topic
                && serde_json::from_slice::<Value>(&m.payload).is_ok_and(|e| e["event"] == "operator_entry")
        })
        .await;
    assert!(!message.retain, "events are not retained");
    let event: Value = serde_json::from_slice(&message.payload).unwrap();
    assert_eq!(event["kind"], "event");
    assert_eq!(event["asset"], SILO_1);
    assert_eq!(event["form"], "milk-lab");
    assert_eq!(event["entry"], entry);
    assert_eq!(event["user"], "anna");
    assert_eq!(event["values"], values);
    assert!(event["seq"].is_u64(), "no seq: {event}");
    assert!(event["context"].is_object(), "no context: {event}");

    // 3. History has it (the historian writes in batches: poll, bounded).
    let url = format!("{base}/api/v1/history/events?asset={SILO_1}&kind=operator_entry&from=now-1h");
    let mut stored = Value::Null;
    for _ in 0..300 {
        let reply = get(&client, &url).await;
        if let Some(first) = reply["events"].as_array().and_then(|e| e.first()) {
            stored = first.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!stored.is_null(), "the entry never reached history");
    assert_eq!(stored["event"], "operator_entry");
    assert_eq!(stored["asset"], SILO_1);
    assert_eq!(stored["entry"], entry);
    assert_eq!(stored["user"], "anna");
    assert_eq!(stored["values"], values);

    let _ = stop.send(());
    server.await.unwrap().unwrap();
    engine.shutdown().await;
    drop(uns);
    clear_retained(&prefix).await;
}
