//! A configuration reload that leaves the asset tree, the production settings and the
//! server's own entry alone keeps the OPC UA server running: an asyncua client's session
//! and subscription go on receiving changes across it. Needs the Python peers
//! (BACKPLANE_PYTHON).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod common;

use std::time::Duration;

use backplane_engine::Fate;
use backplane_testkit::{dairy, engine as support};
use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_leaves_the_tree_alone_keeps_the_clients_session_and_subscription() {
    let mut plant = Plant::start(OPEN).await;
    let session = Session::default();
    let ns = namespace(&plant.url(), &session).await;
    let speed = node(ns, &format!("{FILLER1}/speed"));
    // One session subscribed for 8 s; the reload comes 3 s in.
    let client = {
        let (url, speed) = (plant.url(), speed.clone());
        tokio::spawn(async move {
            asyncua(
                &url,
                &Session::default(),
                json!([{"op": "subscribe", "nodes": [speed], "seconds": 8, "sampling": 100, "queue": 10}]),
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Another seed for one simulated PLC: only that source changes.
    let registry = registry();
    let text = format!(
        "{}\n{}",
        dairy::simulated().replacen("seed = 11", "seed = 12", 1),
        server_table(plant.port, OPEN)
    );
    let next = support::plan(&text, plant.dir.path(), &registry);
    let engine = plant.engine.take().unwrap();
    let mut recorded = |_: &backplane_config::Plan, _: &str, _: backplane_model::Timestamp| {};
    let (engine, effects) = engine
        .reload(next, &registry, support::options(), &mut recorded)
        .await
        .expect("the new configuration starts");
    plant.engine = Some(engine);
    let server = effects
        .iter()
        .find(|e| e.component == "sink" && e.name == "plant-opcua")
        .unwrap();
    assert_eq!(server.fate, Fate::Kept, "{effects:?}");

    // The session lived through it, and changes kept coming after it.
    let result = client
        .await
        .unwrap()
        .expect("the session and subscription lived on");
    let values = result[0][&speed]
        .as_array()
        .unwrap_or_else(|| panic!("{}", result[0]));
    assert!(
        values.len() >= 50,
        "changes on both sides of the reload: {}",
        values.len()
    );
    plant.stop().await;
}
