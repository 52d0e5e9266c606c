//! Events from asyncua's point of view: a work order started through the production
//! method is reported as a WorkOrderEventType by the line's object, and through the
//! Server object, with its own and BaseEventType's fields; the Server, the line and each
//! ancestor get it once, a sibling area not at all.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::json;

const LINE1: &str = "acme-dairy/plant-a/packaging/line-1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_work_order_is_reported_as_an_event_of_its_line() {
    let keys = keys();
    let users = keys.users.clone();
    let plant = Plant::start_with(MIXED, &move |c| with_users(c, &users)).await;
    let anna = secure(&keys, "Basic256Sha256").user("anna", PASSWORD);
    trust_client(&plant, &anna).await;
    released_work_order(&plant, "WO-9").await;
    let ns = namespace(&plant.url(), &Session::default()).await;
    let r = asyncua(
        &plant.url(),
        &anna,
        json!([
            // The fields of WorkOrderEventType, and no where clause (see the peer script).
            {"op": "events_start", "source": "i=2253", "type": node(ns, "@events/WorkOrderEventType"), "where": false},
            {"op": "call", "object": node(ns, "@production"), "method": node(ns, "@production#StartWorkOrder"),
             "args": [["WO-9", "String"]]},
            {"op": "sleep", "seconds": 2},
            {"op": "events_collect"},
        ]),
    )
    .await
    .unwrap();
    assert_eq!(r[1]["status"], "Good", "{}", r[1]);
    let events = r[3].as_array().unwrap();
    let started = events
        .iter()
        .find(|e| e["WorkOrder"] == "WO-9" && e["Status"] == "running")
        .unwrap_or_else(|| panic!("no running WO-9 among {events:?}"));
    assert_eq!(started["PreviousStatus"], "released");
    assert_eq!(started["Product"], "milk-1l-whole");
    assert_eq!(started["SourceName"], LINE1);
    assert_eq!(started["SourceNode"], node(ns, LINE1));
    assert_eq!(started["EventType"], node(ns, "@events/WorkOrderEventType"));
    assert_eq!(started["Severity"], 300);
    assert!(started["Message"].as_str().unwrap().contains("WO-9"), "{started}");
    plant.stop().await;
}

/// Part 3's notifier hierarchy: an event reaches every notifier above its source once, and
/// no other. Subscribers on the Server, on the line itself, on its area and on its
/// enterprise each get each work-order event exactly once; the sibling area gets none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_notifier_above_a_line_gets_its_events_exactly_once_and_a_sibling_area_none() {
    let keys = keys();
    let users = keys.users.clone();
    let plant = Plant::start_with(MIXED, &move |c| with_users(c, &users)).await;
    let anna = secure(&keys, "Basic256Sha256").user("anna", PASSWORD);
    trust_client(&plant, &anna).await;
    released_work_order(&plant, "WO-7").await;
    let ns = namespace(&plant.url(), &Session::default()).await;
    let notifiers = [
        ("server", "i=2253".to_owned()),
        ("line", node(ns, LINE1)),
        ("area", node(ns, "acme-dairy/plant-a/packaging")),
        ("enterprise", node(ns, "acme-dairy")),
        ("sibling", node(ns, "acme-dairy/plant-a/processing")),
    ];
    let mut ops: Vec<serde_json::Value> = notifiers
        .iter()
        .map(|(name, source)| {
            json!({"op": "events_start", "name": name, "source": source,
                   "type": node(ns, "@events/WorkOrderEventType"), "where": false})
        })
        .collect();
    ops.push(json!({"op": "call", "object": node(ns, "@production"), "method": node(ns, "@production#StartWorkOrder"),
                    "args": [["WO-7", "String"]]}));
    ops.push(json!({"op": "call", "object": node(ns, "@production"), "method": node(ns, "@production#HoldWorkOrder"),
                    "args": [["WO-7", "String"]]}));
    ops.push(json!({"op": "sleep", "seconds": 2}));
    for (name, _) in &notifiers {
        ops.push(json!({"op": "events_collect", "name": name}));
    }
    let r = asyncua(&plant.url(), &anna, json!(ops)).await.unwrap();
    let calls: Vec<_> = r.iter().filter(|v| v.get("status").is_some()).collect();
    assert!(
        calls.len() == 2 && calls.iter().all(|c| c["status"] == "Good"),
        "{calls:?}"
    );
    let collected = &r[r.len() - notifiers.len()..];
    for ((name, _), events) in notifiers.iter().zip(collected) {
        let events = events.as_array().unwrap();
        let count = |status: &str| {
            events
                .iter()
                .filter(|e| e["WorkOrder"] == "WO-7" && e["Status"] == status)
                .count()
        };
        let expected = if *name == "sibling" { 0 } else { 1 };
        assert_eq!(
            count("running"),
            expected,
            "start on the {name}'s subscription: {events:?}"
        );
        assert_eq!(
            count("held"),
            expected,
            "hold on the {name}'s subscription: {events:?}"
        );
    }
    plant.stop().await;
}
