//! node-opcua, a second independent client (JavaScript, its own stack): it browses the
//! plant, reads typed values with both timestamps and receives changes. The client comes
//! from scripts/install-opcua-peers through `BACKPLANE_NODE_OPCUA` (scripts/test sets it).
//! Without it the tests fail in CI and are skipped, saying so, elsewhere.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::{Value, json};

/// The node-opcua install, or `None` (with a message) when the tests cannot run here.
fn node_opcua() -> Option<PathBuf> {
    match std::env::var_os("BACKPLANE_NODE_OPCUA").filter(|v| !v.is_empty()) {
        Some(dir) => Some(PathBuf::from(dir)),
        None if std::env::var_os("CI").is_some() => {
            panic!("BACKPLANE_NODE_OPCUA is not set in CI: run the tests with scripts/test")
        }
        None => {
            eprintln!(
                "BACKPLANE_NODE_OPCUA is not set (run scripts/test, or export it from scripts/install-opcua-peers): \
                 the node-opcua tests were not run"
            );
            None
        }
    }
}

async fn node_client(dir: &Path, url: &str, ops: Value) -> Vec<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/node/node_client.js");
    let mut command = Command::new("node");
    command
        .arg(script)
        .arg(url)
        .arg(ops.to_string())
        .env("NODE_PATH", dir.join("node_modules"));
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let json = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| {
            panic!(
                "node-opcua printed no result\nstdout: {stdout}\nstderr: {}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
    serde_json::from_str(json).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_opcua_browses_reads_and_subscribes() {
    let Some(dir) = node_opcua() else {
        return;
    };
    let plant = Plant::start(OPEN).await;
    let url = plant.url();
    let ns = node_client(&dir, &url, json!([{"op": "namespace", "uri": NAMESPACE}])).await[0]
        .as_u64()
        .unwrap();
    let speed = node(ns, &format!("{FILLER1}/speed"));
    let state = node(ns, &format!("{FILLER1}/state"));
    let mut read = Value::Null;
    for _ in 0..100 {
        let r = node_client(
            &dir,
            &url,
            json!([
                {"op": "browse", "node": "i=85"},
                {"op": "browse", "node": node(ns, FILLER1)},
                {"op": "read", "nodes": [speed, state]},
            ]),
        )
        .await;
        let objects = r[0].as_array().unwrap();
        assert!(
            objects
                .iter()
                .any(|o| o["node"] == node(ns, "acme-dairy") && o["type"] == "ns=0;i=61"),
            "{objects:?}"
        );
        let filler: Vec<&str> = r[1]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert!(
            filler.contains(&"speed") && filler.contains(&"work_order"),
            "{filler:?}"
        );
        read = r[2].clone();
        if read[0]["status"] == "Good" && read[1]["status"] == "Good" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(read[0]["data_type"], "Double", "{read}");
    assert!(read[0]["value"].as_f64().unwrap() > 300.0, "{read}");
    assert!(
        read[0]["source"].is_string() && read[0]["server"].is_string(),
        "{read}"
    );
    assert_eq!(read[1]["data_type"], "String");
    assert_eq!(read[1]["value"], "running");

    let changes = node_client(
        &dir,
        &url,
        json!([{"op": "subscribe", "nodes": [speed], "seconds": 3}]),
    )
    .await;
    let values = changes[0][&speed]
        .as_array()
        .unwrap_or_else(|| panic!("{}", changes[0]));
    let distinct: std::collections::BTreeSet<String> = values.iter().map(|v| v.to_string()).collect();
    assert!(distinct.len() >= 3, "{values:?}");
    plant.stop().await;
}

/// node-opcua subscribes one event item each on the Server, the packaging area, the
/// enterprise and the processing area, while a work order on line 1 starts: the
/// Server, the area and the enterprise each get its event once, the other area not, and
/// no item gets any event twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_opcua_gets_each_event_once_on_every_notifier_above_its_asset() {
    let Some(dir) = node_opcua() else {
        return;
    };
    let plant = Plant::start(OPEN).await;
    let url = plant.url();
    let production = released_work_order(&plant, "WO-5").await;
    let ns = node_client(&dir, &url, json!([{"op": "namespace", "uri": NAMESPACE}])).await[0]
        .as_u64()
        .unwrap();
    let sources = [
        "i=2253".to_owned(),
        node(ns, "acme-dairy/plant-a/packaging"),
        node(ns, "acme-dairy"),
        node(ns, "acme-dairy/plant-a/processing"),
    ];
    // The client subscribes for 8 s; the work order starts 4 s in (node-opcua is up well
    // before: it connects in about one second here).
    let start = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_secs(4)).await;
        production
            .execute(
                backplane_production::Command::StartWorkOrder { id: "WO-5".into() },
                Some("test".into()),
            )
            .await
    });
    let r = node_client(
        &dir,
        &url,
        json!([{"op": "events", "sources": sources, "seconds": 8}]),
    )
    .await;
    start.await.unwrap().unwrap();
    for (i, source) in sources.iter().enumerate() {
        let events = r[0][source].as_array().unwrap_or_else(|| panic!("{}", r[0]));
        let started = events
            .iter()
            .filter(|e| {
                e["Message"]
                    .as_str()
                    .is_some_and(|m| m.contains("WO-5") && m.contains("running"))
            })
            .count();
        assert_eq!(started, if i == 3 { 0 } else { 1 }, "on {source}: {events:?}");
        let ids: std::collections::BTreeSet<&str> =
            events.iter().filter_map(|e| e["EventId"].as_str()).collect();
        assert_eq!(ids.len(), events.len(), "an event twice on {source}: {events:?}");
    }
    plant.stop().await;
}
