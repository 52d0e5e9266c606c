//! The production command topic of the `mqtt` sink against a real Mosquitto of the test's
//! own: an MES publishes commands with a plain rumqttc client, an observer subscribed to
//! everything sees the replies, the samples and the events.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod common;

use std::time::Duration;

use backplane_model::Timestamp;
use common::{Mosquitto, Observer, Seen, start, unique};
use serde_json::{Value, json};

const GATEWAY: &str = "cmd-gw";
const LINE: &str = "acme/plant/packaging/line-1";
const FILLER: &str = "acme/plant/packaging/line-1/filler";
const DEFAULT_TOPIC: &str = "backplane/cmd-gw/commands";

/// A line with a filler below it, fed by the simulator every 50 ms, and an `mqtt` sink
/// with `extra` settings.
fn config(port: u16, extra: &str) -> String {
    format!(
        r#"
[gateway]
name = "{GATEWAY}"

[namespace]
enterprise = "acme"
site = "plant"

[models.Filler.attributes]
speed = {{ type = "float" }}
temperature = {{ type = "float", unit = "degC" }}

[[assets]]
path = "packaging"
level = "area"

[[assets]]
path = "packaging/line-1"
level = "line"

[[assets]]
path = "packaging/line-1/filler"
model = "Filler"
source = "sim"
bindings.speed = {{ address = "s" }}
bindings.temperature = {{ address = "t" }}

[[sources]]
name = "sim"
kind = "simulator"
period = "50ms"
signals.s = {{ signal = "ramp", from = 0, to = 600, period = "10s" }}
signals.t = {{ signal = "sine", offset = 4, amplitude = 1, period = "7s" }}

[[sinks]]
name = "uns"
kind = "mqtt"
broker = "mqtt://127.0.0.1:{port}"
reconnect_min = "100ms"
reconnect_max = "500ms"
{extra}
"#
    )
}

/// An MES: a plain rumqttc client that publishes commands.
struct Mes {
    client: rumqttc::AsyncClient,
    task: tokio::task::JoinHandle<()>,
}

impl Mes {
    async fn connect(port: u16) -> Mes {
        let mut options = rumqttc::MqttOptions::new(unique("mes"), "127.0.0.1", port);
        options.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 100);
        let (connected_tx, connected_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut connected_tx = Some(connected_tx);
            loop {
                match eventloop.poll().await {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                        if let Some(tx) = connected_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), connected_rx)
            .await
            .expect("the MES connected")
            .unwrap();
        Mes { client, task }
    }

    async fn publish(&self, topic: &str, payload: impl Into<Vec<u8>>, retain: bool) {
        self.client
            .publish(topic, rumqttc::QoS::AtLeastOnce, retain, payload.into())
            .await
            .unwrap();
    }

    /// Publishes `command` on `topic` and waits for the reply with its `request_id`.
    async fn ask(&self, observer: &mut Observer, topic: &str, command: Value) -> Value {
        let id = command["request_id"].as_str().expect("a request_id").to_owned();
        self.publish(topic, command.to_string(), false).await;
        let reply_topic = format!("{topic}/reply");
        observer
            .wait_for(&format!("the reply to {id}"), |m| {
                m.topic == reply_topic && m.json()["request_id"] == id.as_str()
            })
            .await
            .json()
    }
}

impl Drop for Mes {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A message seen already, or the next one, that satisfies `pred`: what travels the data
/// path (events, samples) may reach the broker before or after the command's reply.
async fn seen_or_next(observer: &mut Observer, what: &str, pred: impl Fn(&Seen) -> bool) -> Seen {
    match observer.seen.iter().find(|m| pred(m)) {
        Some(m) => m.clone(),
        None => observer.wait_for(what, pred).await,
    }
}

fn is(topic: &str) -> impl Fn(&Seen) -> bool + '_ {
    move |m: &Seen| m.topic == topic
}

async fn online(observer: &mut Observer) {
    let status = format!("backplane/{GATEWAY}/status");
    observer
        .wait_for("status online", |m| {
            m.topic == status && m.json()["status"] == "online"
        })
        .await;
}

/// The value of `backplane_component_events_total` for an event of the sink `uns`.
fn sink_counter(metrics: &str, event: &str) -> f64 {
    let key =
        format!("backplane_component_events_total{{component=\"sink\",name=\"uns\",event=\"{event}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&key))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

fn time(value: &Value) -> Timestamp {
    serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{value}: not a time: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_work_order_started_by_a_message_appears_as_context_on_the_lines_samples() {
    let broker = Mosquitto::start();
    let mut observer = Observer::start(broker.port, "#").await;
    let dir = tempfile::tempdir().unwrap();
    let engine = start(&config(broker.port, "commands = true"), dir.path());
    online(&mut observer).await;
    let mes = Mes::connect(broker.port).await;

    let created = mes
        .ask(
            &mut observer,
            DEFAULT_TOPIC,
            json!({"request_id": "r-1", "by": "erp", "command": "create_work_order",
                   "id": "WO-1001", "product": "milk-1l", "asset": "packaging/line-1",
                   "planned_quantity": 5000, "ideal_rate_per_min": 500}),
        )
        .await;
    assert_eq!(created["ok"], true, "{created}");
    assert_eq!(created["command"], "create_work_order");
    assert_eq!(created["result"]["id"], "WO-1001");
    assert_eq!(created["result"]["status"], "created");
    assert_eq!(created["result"]["asset"], LINE);

    // Starting an order that was never released is refused, naming the field.
    let refused = mes
        .ask(
            &mut observer,
            DEFAULT_TOPIC,
            json!({"request_id": "r-2", "command": "start_work_order", "id": "WO-1001"}),
        )
        .await;
    assert_eq!(refused["ok"], false, "{refused}");
    assert_eq!(refused["error"]["kind"], "invalid");
    assert_eq!(refused["error"]["field"], "status");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("release it first"),
        "{refused}"
    );

    let released = mes
        .ask(
            &mut observer,
            DEFAULT_TOPIC,
            json!({"request_id": "r-3", "by": "mes", "command": "release_work_order", "id": "WO-1001"}),
        )
        .await;
    assert_eq!(released["ok"], true, "{released}");
    let started = mes
        .ask(
            &mut observer,
            DEFAULT_TOPIC,
            json!({"request_id": "r-4", "by": "mes", "command": "start_work_order", "id": "WO-1001"}),
        )
        .await;
    assert_eq!(started["ok"], true, "{started}");
    assert_eq!(started["result"]["status"], "running");
    let actual_start = time(&started["result"]["actual_start"]);

    // The line's events: the order's status change, by the sink's identity (the message's
    // `by` is only a claim).
    let event = seen_or_next(&mut observer, "the work order event on the line", |m| {
        m.topic == format!("{LINE}/_events")
            && m.json()["event"] == "work_order"
            && m.json()["status"] == "running"
    })
    .await
    .json();
    assert_eq!(event["id"], "WO-1001");
    assert_eq!(event["product"], "milk-1l");
    assert_eq!(event["by"], "mqtt:uns");
    assert_eq!(event["context"]["work_order"], "WO-1001");

    // Every filler sample read after the order started carries it and its product (a
    // sample read just before may be published after the reply: the time tells).
    let speed = format!("{FILLER}/speed");
    seen_or_next(&mut observer, "a filler sample with the work order", |m| {
        m.topic == speed && m.json()["context"]["work_order"] == "WO-1001"
    })
    .await;
    observer.collect(Duration::from_millis(1000)).await;
    let (mut stamped, mut before) = (0, 0);
    for m in &observer.seen {
        if !(m.topic == speed || m.topic == format!("{FILLER}/temperature")) {
            continue;
        }
        let sample = m.json();
        if time(&sample["gateway_time"]) <= actual_start {
            before += usize::from(sample["context"].get("work_order").is_none());
            continue;
        }
        assert_eq!(sample["context"]["work_order"], "WO-1001", "{} {sample}", m.topic);
        assert_eq!(sample["context"]["product"], "milk-1l", "{} {sample}", m.topic);
        stamped += 1;
    }
    assert!(stamped >= 20, "only {stamped} filler samples after the start");
    assert!(before >= 2, "the samples before the start had no work order");

    let metrics = engine.handle().metrics_text();
    assert_eq!(sink_counter(&metrics, "commands_accepted"), 3.0, "{metrics}");
    assert_eq!(sink_counter(&metrics, "commands_refused"), 1.0, "{metrics}");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_commands_are_refused_naming_the_problem_and_change_nothing() {
    let broker = Mosquitto::start();
    let mut observer = Observer::start(broker.port, "#").await;
    let dir = tempfile::tempdir().unwrap();
    let engine = start(&config(broker.port, "commands = true"), dir.path());
    online(&mut observer).await;
    let mes = Mes::connect(broker.port).await;

    // (message, error kind, field, words the message must contain)
    let cases = [
        (
            json!({"request_id": "bad-1", "command": "create_work_order", "id": "WO-9", "product": "p",
                   "asset": "packaging/line-1", "colour": "red"}),
            "invalid",
            "colour",
            "colour",
        ),
        (
            json!({"request_id": "bad-2", "command": "launch_rocket"}),
            "invalid",
            "command",
            "launch_rocket",
        ),
        (
            json!({"request_id": "bad-3", "command": "create_work_order", "id": "WO-9", "product": "p",
                   "asset": "packaging/line-7"}),
            "invalid",
            "asset",
            "line-7",
        ),
        (
            json!({"request_id": "bad-4", "command": "start_work_order", "id": "WO-404"}),
            "not_found",
            "id",
            "WO-404",
        ),
        (
            json!({"request_id": "bad-5", "by": 17, "command": "start_work_order", "id": "WO-9"}),
            "invalid",
            "by",
            "must be text",
        ),
    ];
    for (command, kind, field, says) in cases {
        let reply = mes.ask(&mut observer, DEFAULT_TOPIC, command.clone()).await;
        assert_eq!(reply["ok"], false, "{command} → {reply}");
        assert_eq!(reply["error"]["kind"], kind, "{command} → {reply}");
        assert_eq!(reply["error"]["field"], field, "{command} → {reply}");
        assert!(
            reply["error"]["message"].as_str().unwrap().contains(says),
            "{command} → {reply}"
        );
    }

    // Not JSON, and over the size limit: refused, with no request id to echo.
    let reply_topic = format!("{DEFAULT_TOPIC}/reply");
    mes.publish(DEFAULT_TOPIC, "start WO-9 please", false).await;
    let reply = observer
        .wait_for("the reply to garbage", is(&reply_topic))
        .await
        .json();
    assert_eq!(
        (reply["ok"].as_bool(), reply["request_id"].is_null()),
        (Some(false), true)
    );
    assert_eq!(reply["error"]["field"], "body");
    assert!(
        reply["error"]["message"].as_str().unwrap().contains("not JSON"),
        "{reply}"
    );
    let huge = json!({"request_id": "huge", "command": "sign_out", "operator": "x".repeat(70_000)});
    mes.publish(DEFAULT_TOPIC, huge.to_string(), false).await;
    let reply = observer
        .wait_for("the reply to a huge message", |m| m.topic == reply_topic)
        .await
        .json();
    assert_eq!(reply["error"]["field"], "body");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 65536 bytes"),
        "{reply}"
    );

    let orders = common::production_view(&engine.handle(), |p| p.work_orders().count());
    assert_eq!(orders, 0, "nothing was created");
    let metrics = engine.handle().metrics_text();
    assert_eq!(sink_counter(&metrics, "commands_refused"), 7.0, "{metrics}");
    assert_eq!(sink_counter(&metrics, "commands_accepted"), 0.0, "{metrics}");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_run_in_arrival_order_on_a_topic_of_its_own() {
    let broker = Mosquitto::start();
    let mut observer = Observer::start(broker.port, "#").await;
    let dir = tempfile::tempdir().unwrap();
    let topic = "mes/line-1/commands";
    let engine = start(
        &config(broker.port, &format!("commands = {{ topic = \"{topic}\" }}")),
        dir.path(),
    );
    online(&mut observer).await;
    let mes = Mes::connect(broker.port).await;

    // A burst, not waiting for replies: each command only succeeds after the one before.
    let chain = [
        json!({"command": "create_work_order", "id": "WO-7", "product": "cream", "asset": "packaging/line-1"}),
        json!({"command": "release_work_order", "id": "WO-7"}),
        json!({"command": "start_work_order", "id": "WO-7"}),
        json!({"command": "hold_work_order", "id": "WO-7"}),
        json!({"command": "start_work_order", "id": "WO-7"}),
        json!({"command": "hold_work_order", "id": "WO-7"}),
        json!({"command": "start_work_order", "id": "WO-7"}),
        json!({"command": "complete_work_order", "id": "WO-7"}),
        json!({"command": "create_lot", "id": "B-1", "material": "cream", "asset": "packaging/line-1"}),
        json!({"command": "set_lot_status", "id": "B-1", "status": "complete"}),
    ];
    for (i, command) in chain.iter().enumerate() {
        let mut command = command.clone();
        command["request_id"] = json!(format!("c-{i}"));
        mes.publish(topic, command.to_string(), false).await;
    }
    let reply_topic = format!("{topic}/reply");
    observer
        .wait_for("the last reply", |m| {
            m.topic == reply_topic && m.json()["request_id"] == format!("c-{}", chain.len() - 1)
        })
        .await;
    let replies: Vec<Value> = observer
        .seen
        .iter()
        .filter(|m| m.topic == reply_topic)
        .map(Seen::json)
        .collect();
    assert_eq!(replies.len(), chain.len());
    for (i, reply) in replies.iter().enumerate() {
        assert_eq!(reply["request_id"], format!("c-{i}"), "replies in order");
        assert_eq!(reply["ok"], true, "{reply}");
    }
    assert_eq!(replies[7]["result"]["status"], "completed");
    assert!(
        !observer
            .seen
            .iter()
            .any(|m| m.topic == format!("{DEFAULT_TOPIC}/reply")),
        "nothing on the default topic"
    );
    let status = common::production_view(&engine.handle(), |p| p.work_order("WO-7").map(|o| o.status));
    assert_eq!(
        status.map(|s| serde_json::to_value(s).unwrap()),
        Some(json!("completed"))
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_without_commands_does_not_subscribe() {
    let broker = Mosquitto::start();
    let mut observer = Observer::start(broker.port, "#").await;
    let dir = tempfile::tempdir().unwrap();
    let engine = start(&config(broker.port, ""), dir.path());
    online(&mut observer).await;
    let mes = Mes::connect(broker.port).await;
    let create = json!({"request_id": "r-1", "command": "create_work_order", "id": "WO-1",
                        "product": "p", "asset": "packaging/line-1"});
    mes.publish(DEFAULT_TOPIC, create.to_string(), false).await;
    observer.wait_for("the command itself", is(DEFAULT_TOPIC)).await;
    observer.collect(Duration::from_millis(1500)).await;
    assert!(
        !observer.seen.iter().any(|m| m.topic.ends_with("/reply")),
        "a reply from a sink without commands"
    );
    assert!(
        !observer
            .seen
            .iter()
            .any(|m| m.topic.ends_with("/_events") && m.json()["event"] == "work_order"),
        "a work order event"
    );
    assert_eq!(
        common::production_view(&engine.handle(), |p| p.work_orders().count()),
        0
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retained_command_is_never_run_when_the_broker_replays_it() {
    let broker = Mosquitto::start();
    let mes = Mes::connect(broker.port).await;
    // Left retained on the topic before the gateway ever subscribed.
    let create = json!({"request_id": "stale", "command": "create_work_order", "id": "WO-1",
                        "product": "p", "asset": "packaging/line-1"});
    mes.publish(DEFAULT_TOPIC, create.to_string(), true).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut observer = Observer::start(broker.port, "backplane/#").await;
    let dir = tempfile::tempdir().unwrap();
    let engine = start(&config(broker.port, "commands = true"), dir.path());
    let reply = observer
        .wait_for(
            "the refusal of the retained command",
            is(&format!("{DEFAULT_TOPIC}/reply")),
        )
        .await
        .json();
    assert_eq!(reply["ok"], false, "{reply}");
    assert_eq!(reply["request_id"], "stale");
    assert_eq!(reply["command"], "create_work_order");
    assert!(
        reply["error"]["message"].as_str().unwrap().contains("retained"),
        "{reply}"
    );
    assert_eq!(
        common::production_view(&engine.handle(), |p| p.work_orders().count()),
        0
    );

    // Cleared with an empty retained message, which is no command and gets no reply.
    mes.publish(DEFAULT_TOPIC, Vec::new(), true).await;
    observer.collect(Duration::from_millis(800)).await;
    let replies = observer
        .seen
        .iter()
        .filter(|m| m.topic.ends_with("/reply"))
        .count();
    assert_eq!(replies, 1);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_are_taken_again_after_the_broker_restarts() {
    let mut broker = Mosquitto::start();
    let port = broker.port;
    let dir = tempfile::tempdir().unwrap();
    let engine = start(&config(port, "commands = true"), dir.path());
    {
        let mut observer = Observer::start(port, "#").await;
        online(&mut observer).await;
        let mes = Mes::connect(port).await;
        let reply = mes
            .ask(
                &mut observer,
                DEFAULT_TOPIC,
                json!({"request_id": "before", "command": "create_work_order", "id": "WO-1",
                       "product": "p", "asset": "packaging/line-1"}),
            )
            .await;
        assert_eq!(reply["ok"], true, "{reply}");
    }

    broker.restart();
    // A fresh broker: the subscription exists only if the sink made it again.
    let mut observer = Observer::start(port, "#").await;
    online(&mut observer).await;
    let mes = Mes::connect(port).await;
    let reply = mes
        .ask(
            &mut observer,
            DEFAULT_TOPIC,
            json!({"request_id": "after", "command": "release_work_order", "id": "WO-1"}),
        )
        .await;
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["result"]["status"], "released");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_claiming_to_be_by_someone_runs_and_is_audited_as_the_sinks_identity() {
    let broker = Mosquitto::start();
    let mut observer = Observer::start(broker.port, "#").await;
    let dir = tempfile::tempdir().unwrap();
    let recorder = std::sync::Arc::new(backplane_security::MemoryRecorder::default());
    let mut options =
        backplane_testkit::engine::backoff(Duration::from_millis(100), Duration::from_millis(500));
    options.services = backplane_connector::Services::one(
        backplane_security::AuditTrail::SERVICE,
        std::sync::Arc::new(backplane_security::AuditTrail(recorder.clone())),
    );
    let _engine = backplane_testkit::engine::start_with(
        &config(
            broker.port,
            "commands = true\ncommands_identity = \"mes-gateway\"",
        ),
        dir.path(),
        &common::registry(),
        options,
    );
    online(&mut observer).await;
    let mes = Mes::connect(broker.port).await;

    let created = mes
        .ask(
            &mut observer,
            DEFAULT_TOPIC,
            json!({"request_id": "m-1", "by": "mallory", "command": "create_work_order",
                   "id": "WO-7", "product": "milk-1l", "asset": "packaging/line-1",
                   "planned_quantity": 10}),
        )
        .await;
    assert_eq!(created["ok"], true, "{created}");
    assert_eq!(created["by"], "mes-gateway", "{created}");
    assert_eq!(created["claimed_by"], "mallory", "{created}");
    let refused = mes
        .ask(
            &mut observer,
            DEFAULT_TOPIC,
            json!({"request_id": "m-2", "by": "mallory", "command": "start_work_order", "id": "WO-7"}),
        )
        .await;
    assert_eq!(refused["ok"], false, "{refused}");

    let events = recorder.events();
    assert_eq!(events.len(), 2, "{events:?}");
    for event in &events {
        let who = event.who.as_ref().unwrap();
        assert_eq!(who.name, "mes-gateway");
        assert_eq!(who.role, backplane_security::Role::Operator);
        assert_eq!(who.method, backplane_security::AuthMethod::Connection);
        assert_eq!(event.from, "mqtt sink uns");
        assert_eq!(event.target, "WO-7");
        assert_eq!(event.new.as_ref().unwrap()["claimed_by"], "mallory");
    }
    assert_eq!(events[0].action, "command.create_work_order");
    assert_eq!(events[0].outcome, backplane_security::Outcome::Done);
    assert_eq!(events[1].action, "command.start_work_order");
    assert!(
        matches!(&events[1].outcome, backplane_security::Outcome::Refused(why) if why.contains("release")),
        "{:?}",
        events[1].outcome
    );
    // The work order records the identity, not the claim.
    let event = seen_or_next(&mut observer, "the work order event", |m| {
        m.topic == format!("{LINE}/_events") && m.json()["event"] == "work_order" && m.json()["id"] == "WO-7"
    })
    .await
    .json();
    assert_eq!(event["by"], "mes-gateway", "{event}");
}
