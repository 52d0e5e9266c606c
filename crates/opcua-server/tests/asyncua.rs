//! The demo plant served over OPC UA, seen by asyncua (a third-party client): the ISA-95
//! tree and the model types, values with units and ranges, subscriptions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{Value, json};

fn find<'a>(tree: &'a [Value], node: &str) -> &'a Value {
    // HasNotifier (i=48) links an asset to its parent as well: the tree is the other one.
    tree.iter()
        .find(|r| r["node"] == node && r["ref"] != "i=48")
        .unwrap_or_else(|| panic!("{node} is not in the browsed tree"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plant_browses_as_an_isa95_tree_of_typed_objects() {
    let plant = Plant::start(OPEN).await;
    let session = Session::default();
    let ns = namespace(&plant.url(), &session).await;
    let r = asyncua(
        &plant.url(),
        &session,
        json!([
            {"op": "browse", "root": "i=85", "depth": 7},
            {"op": "browse", "root": node(ns, "@types/Filler"), "depth": 2},
        ]),
    )
    .await
    .unwrap();
    let tree = r[0].as_array().unwrap();
    let enterprise = find(tree, &node(ns, "acme-dairy"));
    assert_eq!(enterprise["parent"], "i=85");
    assert_eq!(enterprise["type"], "i=61", "the enterprise is a folder");
    let line = find(tree, &node(ns, "acme-dairy/plant-a/packaging/line-1"));
    assert_eq!(line["parent"], node(ns, "acme-dairy/plant-a/packaging"));
    let filler = find(tree, &node(ns, FILLER1));
    assert_eq!(filler["class"], "Object");
    assert_eq!(filler["type"], node(ns, "@types/Filler"));
    assert_eq!(filler["name"], "filler");
    assert_eq!(filler["name_ns"], ns);
    let speed = find(tree, &node(ns, &format!("{FILLER1}/speed")));
    assert_eq!(speed["class"], "Variable");
    assert_eq!(speed["type"], "i=2368", "a ranged number is an AnalogItemType");
    assert_eq!(speed["parent"], node(ns, FILLER1));
    let state = find(tree, &node(ns, &format!("{FILLER1}/state")));
    assert_eq!(state["type"], "i=63", "a string is a BaseDataVariableType");
    find(tree, &node(ns, &format!("{FILLER1}/speed#EURange")));
    find(tree, &node(ns, &format!("{FILLER1}#work_order")));

    let mut components: Vec<&str> = r[1]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["parent"] == node(ns, "@types/Filler"))
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    components.sort_unstable();
    assert_eq!(
        components,
        [
            "good_count",
            "product_temperature",
            "reject_count",
            "speed",
            "state"
        ]
    );
    plant.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_read_with_their_type_timestamps_units_and_ranges() {
    let plant = Plant::start(OPEN).await;
    let session = Session::default();
    let ns = namespace(&plant.url(), &session).await;
    let temperature = format!("{FILLER1}/product_temperature");
    let ops = json!([{"op": "read", "nodes": [
        node(ns, &format!("{FILLER1}/speed")),
        node(ns, &format!("{temperature}#EngineeringUnits")),
        node(ns, &format!("{temperature}#EURange")),
        node(ns, &format!("{FILLER1}/state#EnumStrings")),
        node(ns, &format!("{FILLER1}/state")),
        node(ns, &format!("{FILLER1}/good_count")),
        node(ns, &format!("{FILLER1}#work_order")),
    ]}]);
    // The first samples arrive a moment after the server starts.
    let mut read = Vec::new();
    for _ in 0..100 {
        read = asyncua(&plant.url(), &session, ops.clone()).await.unwrap()[0]
            .as_array()
            .unwrap()
            .clone();
        if read[0]["status"] == "Good" && read[4]["status"] == "Good" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let speed = &read[0];
    assert_eq!(speed["status"], "Good", "{speed}");
    assert_eq!(speed["variant_type"], "Double");
    assert_eq!(speed["data_type"], "i=11");
    assert!(speed["value"].as_f64().unwrap() > 300.0, "{speed}");
    assert!(
        speed["source"].is_string() && speed["server"].is_string(),
        "{speed}"
    );

    let units = &read[1]["value"];
    assert_eq!(
        units["NamespaceUri"],
        "http://www.opcfoundation.org/UA/units/un/cefact"
    );
    assert_eq!(units["UnitId"], 4_408_652, "degree Celsius, CEL");
    assert_eq!(units["DisplayName"], "degC");
    assert_eq!(read[2]["value"], json!({"Low": 0.0, "High": 20.0}));
    assert_eq!(read[3]["value"], json!(["stopped", "idle", "running", "fault"]));
    assert_eq!(read[4]["value"], "running");
    assert_eq!(read[5]["variant_type"], "UInt64");
    assert_eq!(read[6]["variant_type"], "String");
    plant.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_receive_the_changes_of_the_plant() {
    let plant = Plant::start(OPEN).await;
    let session = Session::default();
    let ns = namespace(&plant.url(), &session).await;
    let speed = node(ns, &format!("{FILLER1}/speed"));
    let hold = node(ns, &format!("{PASTEURIZER}/hold_temperature"));
    let r = asyncua(
        &plant.url(),
        &session,
        json!([{"op": "subscribe", "nodes": [speed, hold], "seconds": 3, "sampling": 100, "queue": 10}]),
    )
    .await
    .unwrap();
    for id in [&speed, &hold] {
        let values = r[0][id]
            .as_array()
            .unwrap_or_else(|| panic!("no change of {id}: {}", r[0]));
        let distinct: std::collections::BTreeSet<String> = values.iter().map(|v| v.to_string()).collect();
        assert!(distinct.len() >= 3, "{id} changed: {values:?}");
    }
    plant.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_taken_over_by_another_session_keeps_receiving_changes() {
    // Only the same user may take a subscription over (TransferSubscriptions).
    let keys = keys();
    let users = keys.users.clone();
    let plant = Plant::start_with(MIXED, &move |c| with_users(c, &users)).await;
    let session = secure(&keys, "Basic256Sha256").user("anna", PASSWORD);
    trust_client(&plant, &session).await;
    let ns = namespace(&plant.url(), &session).await;
    let speed = node(ns, &format!("{FILLER1}/speed"));
    let r = asyncua(
        &plant.url(),
        &session,
        json!([{"op": "transfer", "nodes": [speed], "before": 1, "seconds": 3}]),
    )
    .await
    .unwrap();
    assert_eq!(r[0]["transfer"], json!(["Good"]), "{}", r[0]);
    assert!(r[0]["before"].as_u64().unwrap() > 0, "{}", r[0]);
    // The values go to the session that took the subscription over.
    let after = r[0]["after"].as_array().unwrap();
    let distinct: std::collections::BTreeSet<String> = after.iter().map(|v| v.to_string()).collect();
    assert!(distinct.len() >= 5, "changes after the transfer: {after:?}");
    plant.stop().await;
}
