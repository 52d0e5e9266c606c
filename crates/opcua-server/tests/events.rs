//! Events from asyncua's point of view: a work order started through the production
//! method is reported as a WorkOrderEventType by the line's object, and through the
//! Server object, with its own and BaseEventType's fields.
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
