//! Reloading the configuration of a running gateway (SIGHUP): applied without losing a
//! sample (sequence numbers published over MQTT arrive without a gap across the reload), a
//! configuration with errors refused while the old one keeps running, `[api]` changes
//! refused, the same through `GET /api/v1/admin/plan` and `POST /api/v1/admin/reload`,
//! and SIGTERM after all that still a graceful stop. Needs Mosquitto on
//! 127.0.0.1:1883.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use backplane_model::Timestamp;
use backplane_testkit::process::{Running, start_gateway};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_backplane");

fn config(dir: &Path, name: &str, topic: &str, extra: &str) -> String {
    format!(
        r#"[gateway]
name = "{name}"
data_dir = "data"

[namespace]
enterprise = "acme"
site = "plant"

[models.Counter.attributes]
seq = {{ type = "int" }}

[[sources]]
name = "feed"
kind = "mqtt"
broker = "mqtt://127.0.0.1:1883"
qos = 1

[[sinks]]
name = "file"
kind = "jsonl"
path = "{samples}"

[[sinks]]
name = "history"
kind = "historian"
path = "history"

[[assets]]
path = "line"

[[assets]]
path = "line/counter"
model = "Counter"
source = "feed"
bindings.seq = {{ address = "{topic}#$.seq" }}
{extra}"#,
        samples = dir.join("samples.jsonl").display()
    )
}

/// The `seq` values of `line/counter` written to the jsonl sink so far.
fn written(dir: &Path) -> Vec<i64> {
    let text = std::fs::read_to_string(dir.join("samples.jsonl")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| {
            v["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("line/counter/seq"))
        })
        .filter_map(|v| v["value"].as_i64())
        .collect()
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The status and JSON body of `method base+path`, through curl.
fn call(method: &str, base: &str, path: &str) -> (u16, Value) {
    let out = Command::new("curl")
        .args([
            "-s",
            "-X",
            method,
            "-w",
            "\n%{http_code}",
            &format!("{base}{path}"),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (
        code.trim().parse().unwrap_or(0),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

fn get(base: &str, path: &str) -> (u16, Value) {
    call("GET", base, path)
}

fn post(base: &str, path: &str) -> (u16, Value) {
    call("POST", base, path)
}

fn signal(running: &Running, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &running.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Publishes `{"seq": n}` for each n in `range`, QoS 1, 2 ms apart.
async fn publish(client: &AsyncClient, topic: &str, range: std::ops::RangeInclusive<i64>) {
    for n in range {
        client
            .publish(topic, QoS::AtLeastOnce, false, format!("{{\"seq\": {n}}}"))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_applies_the_new_configuration_without_losing_a_sample_and_refuses_a_broken_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let unique = format!("{}-{}", std::process::id(), Instant::now().elapsed().as_nanos());
    let name = format!("reload-{}", std::process::id());
    let topic = format!("backplane-test/reload/{unique}");
    let file = path.join("gw.toml");
    std::fs::write(&file, config(&path, &name, &topic, "")).unwrap();
    let (running, base, _) = start_gateway(
        Command::new(BIN)
            .args(["run", "--listen", "127.0.0.1:0"])
            .arg(&file)
            .current_dir(&path),
        0,
    );
    let (_, health) = get(&base, "/api/v1/health");
    let first_version = health["config_version"].as_str().unwrap().to_owned();

    let mut options = MqttOptions::new(format!("reload-test-{unique}"), "127.0.0.1", 1883);
    options.set_keep_alive(Duration::from_secs(5));
    let (client, mut eventloop) = AsyncClient::new(options, 100);
    let (connected_tx, connected_rx) = tokio::sync::oneshot::channel();
    let mut connected_tx = Some(connected_tx);
    let pump = tokio::spawn(async move {
        while let Ok(event) = eventloop.poll().await {
            if let (Event::Incoming(Packet::ConnAck(_)), Some(tx)) = (&event, connected_tx.take()) {
                let _ = tx.send(());
            }
        }
    });
    connected_rx.await.unwrap();
    // The source is subscribed once the first message arrives.
    let until = Instant::now() + Duration::from_secs(20);
    while written(&path).is_empty() {
        assert!(Instant::now() < until, "the gateway never received a message");
        publish(&client, &topic, 0..=0).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Publishing 1..=1500 while the configuration is reloaded: a second counter asset.
    let publisher = {
        let (client, topic) = (client.clone(), topic.clone());
        tokio::spawn(async move { publish(&client, &topic, 1..=1500).await })
    };
    tokio::time::sleep(Duration::from_millis(600)).await;
    let second = format!(
        "\n[[assets]]\npath = \"line/counter-2\"\nmodel = \"Counter\"\nsource = \"feed\"\nbindings.seq = {{ address = \"{topic}-2#$.seq\" }}\n"
    );
    std::fs::write(&file, config(&path, &name, &topic, &second)).unwrap();
    signal(&running, "HUP");
    publisher.await.unwrap();
    wait_for("every sequence number", Duration::from_secs(30), || {
        written(&path).contains(&1500)
    });
    let seen: BTreeSet<i64> = written(&path).into_iter().collect();
    let missing: Vec<i64> = (1..=1500).filter(|n| !seen.contains(n)).collect();
    assert!(missing.is_empty(), "lost across the reload: {missing:?}");

    // The same listener now serves the new configuration.
    let (status, asset) = get(&base, "/api/v1/assets/acme/plant/line/counter-2");
    assert_eq!(status, 200, "{asset}");
    let (_, health) = get(&base, "/api/v1/health");
    let second_version = health["config_version"].as_str().unwrap().to_owned();
    assert_ne!(second_version, first_version);

    // A broken file is refused: the running configuration stays and keeps delivering.
    std::fs::write(&file, "[gateway\nname = broken").unwrap();
    signal(&running, "HUP");
    // An [api] change is refused too (it takes a restart).
    tokio::time::sleep(Duration::from_millis(500)).await;
    std::fs::write(
        &file,
        config(&path, &name, &topic, &second)
            .replace("[namespace]", "[api]\nmax_connections = 7\n\n[namespace]"),
    )
    .unwrap();
    signal(&running, "HUP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    publish(&client, &topic, 1501..=1600).await;
    wait_for(
        "samples after the refused reloads",
        Duration::from_secs(20),
        || written(&path).contains(&1600),
    );
    let (_, health) = get(&base, "/api/v1/health");
    assert_eq!(health["config_version"].as_str().unwrap(), second_version);

    // Through the API (admin; this gateway is open on loopback): the plan, then the reload.
    let third = format!(
        "{second}\n[[assets]]\npath = \"line/counter-3\"\nmodel = \"Counter\"\nsource = \"feed\"\nbindings.seq = {{ address = \"{topic}-3#$.seq\" }}\n"
    );
    std::fs::write(&file, config(&path, &name, &topic, &third)).unwrap();
    let (status, plan) = get(&base, "/api/v1/admin/plan");
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["result"], "changes");
    assert_eq!(
        plan["changes"],
        serde_json::json!(["+ asset acme/plant/line/counter-3"])
    );
    assert_eq!(get(&base, "/api/v1/assets/acme/plant/line/counter-3").0, 404);
    let (status, reloaded) = post(&base, "/api/v1/admin/reload");
    assert_eq!(status, 200, "{reloaded}");
    assert_eq!(reloaded["result"], "applied");
    assert_eq!(get(&base, "/api/v1/assets/acme/plant/line/counter-3").0, 200);
    std::fs::write(&file, "[gateway\nname = broken").unwrap();
    let (status, refused) = post(&base, "/api/v1/admin/reload");
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["result"], "invalid");
    assert!(
        refused["errors"][0].as_str().unwrap().contains("gw.toml:1:"),
        "{refused}"
    );
    assert_eq!(refused["config_version"], reloaded["config_version"]);

    // Every version that ran, newest first, each in force until the next; the files of the
    // first one as they were then, although the file on disk has changed three times since.
    let third_version = reloaded["config_version"].as_str().unwrap().to_owned();
    let (status, versions) = get(&base, "/api/v1/config/versions");
    assert_eq!(status, 200, "{versions}");
    let list = versions["versions"].as_array().unwrap();
    let seen: Vec<(&str, &str)> = list
        .iter()
        .map(|v| (v["version"].as_str().unwrap(), v["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(
        seen,
        [
            (third_version.as_str(), "reload"),
            (second_version.as_str(), "reload"),
            (first_version.as_str(), "start")
        ],
        "{versions}"
    );
    assert_eq!(list[0]["until"], Value::Null);
    assert_eq!(list[1]["until"], list[0]["from"]);
    assert_eq!(list[2]["until"], list[1]["from"]);
    let (status, first) = get(&base, &format!("/api/v1/config/versions/{first_version}"));
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        first["files"][0]["text"].as_str().unwrap(),
        config(&path, &name, &topic, "")
    );
    // The stored samples of the first counter name the versions they were read under.
    let (status, raw) = get(
        &base,
        "/api/v1/history/raw?tag=acme/plant/line/counter/seq&from=now-5m&limit=100000",
    );
    assert_eq!(status, 200, "{raw}");
    let tied: Vec<&str> = raw["config_versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(
        tied,
        [
            first_version.as_str(),
            second_version.as_str(),
            third_version.as_str()
        ],
        "{raw}"
    );
    let points = raw["series"][0]["points"].as_array().unwrap();
    let second_from = Timestamp::parse_rfc3339(list[1]["from"].as_str().unwrap()).unwrap();
    let read_under_first = points
        .iter()
        .filter(|p| Timestamp::parse_rfc3339(p["time"].as_str().unwrap()).unwrap() < second_from)
        .count();
    assert!(
        read_under_first > 0 && read_under_first < points.len(),
        "points on both sides of the first reload: {read_under_first} of {}",
        points.len()
    );

    // SIGTERM: a graceful stop, exit status 0.
    let mut running = running;
    signal(&running, "TERM");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = running.0.try_wait().unwrap() {
            break status;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    pump.abort();
}

/// A TCP proxy to Mosquitto on 127.0.0.1:1883: its port and how many connections it has
/// accepted, so a test sees whether a component connected again.
async fn counting_proxy() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                if let Ok(mut broker) = tokio::net::TcpStream::connect("127.0.0.1:1883").await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut broker).await;
                }
            });
        }
    });
    (port, accepted)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_keeps_the_connections_of_components_that_did_not_change() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let unique = format!("{}-{}", std::process::id(), Instant::now().elapsed().as_nanos());
    let topic = format!("backplane-test/reload-keep/{unique}");
    let (steady_port, steady_connections) = counting_proxy().await;
    let (moved_port, moved_connections) = counting_proxy().await;
    let (uns_port, uns_connections) = counting_proxy().await;
    // Two MQTT sources and an MQTT (UNS) sink, each through its own counting proxy to
    // Mosquitto; `moved_qos` is the second source's QoS.
    let two_sources = |extra: &str, moved_qos: u8| {
        config(&path, "reload-keep", &topic, extra)
            .replace(
                "broker = \"mqtt://127.0.0.1:1883\"",
                &format!("broker = \"mqtt://127.0.0.1:{steady_port}\""),
            )
            .replace(
                "[[sinks]]\nname = \"file\"",
                &format!(
                    "[[sources]]\nname = \"moved\"\nkind = \"mqtt\"\nbroker = \"mqtt://127.0.0.1:{moved_port}\"\nqos = {moved_qos}\n\n\
                     [[sinks]]\nname = \"uns\"\nkind = \"mqtt\"\nbroker = \"mqtt://127.0.0.1:{uns_port}\"\ntopic_prefix = \"{topic}-uns\"\n\n\
                     [[assets]]\npath = \"other\"\nmodel = \"Counter\"\nsource = \"moved\"\nbindings.seq = {{ address = \"{topic}-other#$.seq\" }}\n\n\
                     [[sinks]]\nname = \"file\""
                ),
            )
    };
    let file = path.join("gw.toml");
    std::fs::write(&file, two_sources("", 1)).unwrap();
    let (running, base, _) = start_gateway(
        Command::new(BIN)
            .args(["run", "--listen", "127.0.0.1:0"])
            .arg(&file)
            .current_dir(&path),
        0,
    );
    let mut options = MqttOptions::new(format!("reload-keep-{unique}"), "127.0.0.1", 1883);
    options.set_keep_alive(Duration::from_secs(5));
    let (client, mut eventloop) = AsyncClient::new(options, 100);
    let pump = tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    let until = Instant::now() + Duration::from_secs(20);
    while written(&path).is_empty() {
        assert!(Instant::now() < until, "the gateway never received a message");
        publish(&client, &topic, 0..=0).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let connections = || {
        [&steady_connections, &moved_connections, &uns_connections]
            .map(|c| c.load(std::sync::atomic::Ordering::SeqCst))
    };
    wait_for("the sink's connection", Duration::from_secs(10), || {
        connections() == [1, 1, 1]
    });

    // A new asset read by `moved`: that source restarts, `steady` keeps its connection
    // while it receives 1..=1500.
    let publisher = {
        let (client, topic) = (client.clone(), topic.clone());
        tokio::spawn(async move { publish(&client, &topic, 1..=1500).await })
    };
    tokio::time::sleep(Duration::from_millis(600)).await;
    let third = format!(
        "\n[[assets]]\npath = \"line/third\"\nmodel = \"Counter\"\nsource = \"moved\"\nbindings.seq = {{ address = \"{topic}-third#$.seq\" }}\n"
    );
    std::fs::write(&file, two_sources(&third, 1)).unwrap();
    let (status, reloaded) = post(&base, "/api/v1/admin/reload");
    assert_eq!(status, 200, "{reloaded}");
    assert_eq!(reloaded["result"], "applied", "{reloaded}");
    let components: Vec<&str> = reloaded["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(
        components.contains(&"source feed keeps running (its connection stays)"),
        "{reloaded}"
    );
    assert!(
        components.contains(&"source moved restarts: the addresses it reads changed (+1, -0)"),
        "{reloaded}"
    );
    publisher.await.unwrap();
    wait_for("every sequence number", Duration::from_secs(30), || {
        written(&path).contains(&1500)
    });
    let seen: BTreeSet<i64> = written(&path).into_iter().collect();
    let missing: Vec<i64> = (1..=1500).filter(|n| !seen.contains(n)).collect();
    assert!(missing.is_empty(), "lost across the reload: {missing:?}");
    // The unchanged source kept its one connection; the changed one and the sink (the
    // asset tree changed) connected again.
    wait_for(
        "the restarted components' connections",
        Duration::from_secs(10),
        || connections() == [1, 2, 2],
    );

    // Only the second source's QoS changes: the other source and the sink stay.
    std::fs::write(&file, two_sources(&third, 0)).unwrap();
    let (status, reloaded) = post(&base, "/api/v1/admin/reload");
    assert_eq!(status, 200, "{reloaded}");
    assert!(
        reloaded["components"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "sink uns keeps running (its connection stays)"),
        "{reloaded}"
    );
    publish(&client, &topic, 1501..=1600).await;
    wait_for("samples after the second reload", Duration::from_secs(20), || {
        written(&path).contains(&1600)
    });
    wait_for("the changed source's connection", Duration::from_secs(10), || {
        connections()[1] == 3
    });
    assert_eq!(
        connections(),
        [1, 3, 2],
        "the source and the sink kept their connections"
    );
    drop(running);
    pump.abort();
}
