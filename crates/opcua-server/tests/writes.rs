//! Writes and methods from asyncua: every write goes through the write gate (refused for
//! anonymous sessions, viewers and attributes no rule allowlists; accepted ones reach the
//! device and come back as readings), and production methods run the production commands
//! for operators only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

const SETPOINT: &str = "acme/plant/line/filler/speed_setpoint";
const SCRATCH: &str = "acme/plant/line/filler/scratch";

/// A filler whose setpoint (hr:110, the demo filler simulator's) operators may write.
fn filler_config(port: u16) -> String {
    format!(
        r#"
[gateway]
name = "plant-a-edge"
[api]
listen = "127.0.0.1:0"
[namespace]
enterprise = "acme"
site = "plant"
[models.Filler.attributes]
speed_setpoint = {{ type = "float", unit = "bottle/min", range = [0, 600] }}
scratch = {{ type = "uint" }}
unbound = {{ type = "float" }}
[models.Filler.writes.speed_setpoint]
role = "operator"
[[assets]]
path = "line"
level = "line"
[[assets]]
path = "line/filler"
model = "Filler"
source = "plc"
bindings.speed_setpoint = {{ address = "hr:110", scale = {{ gain = 0.1 }} }}
bindings.scratch = {{ address = "hr:111" }}
[[sources]]
name = "plc"
kind = "modbus"
url = "tcp://127.0.0.1:{port}"
period = "50ms"
writes = true
address_base = 0
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_pass_the_write_gate_or_are_refused_with_its_reason() {
    let (device, _task) = backplane_modbus::spawn_filler_simulator("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let keys = keys();
    let users = keys.users.clone();
    let plant = Plant::start_config(&filler_config(device.port()), MIXED, &move |c| {
        with_users(c, &users)
    })
    .await;
    let anna = secure(&keys, "Basic256Sha256").user("anna", PASSWORD);
    trust_client(&plant, &anna).await;
    let ns = namespace(&plant.url(), &Session::default()).await;
    let setpoint = node(ns, SETPOINT);
    let write = |value: f64| json!({"op": "write", "node": setpoint, "value": value, "type": "Double"});

    let anonymous = asyncua(&plant.url(), &Session::default(), json!([write(450.0)]))
        .await
        .unwrap();
    assert_eq!(anonymous[0], "BadUserAccessDenied");
    let victor = secure(&keys, "Basic256Sha256").user("victor", PASSWORD);
    let viewer = asyncua(&plant.url(), &victor, json!([write(450.0)]))
        .await
        .unwrap();
    assert_eq!(
        viewer[0], "BadUserAccessDenied",
        "a viewer is below the rule's role"
    );
    let r = asyncua(
        &plant.url(),
        &anna,
        json!([
            {"op": "write", "node": node(ns, SCRATCH), "value": 7, "type": "UInt64"},
            write(900.0),
            {"op": "write", "node": setpoint, "value": "fast", "type": "String"},
            {"op": "write", "node": node(ns, &format!("{SETPOINT}#EURange")), "value": 1.0, "type": "Double"},
            write(450.0),
        ]),
    )
    .await
    .unwrap();
    assert_eq!(r[0], "BadNotWritable", "no rule allowlists the scratch register");
    assert_eq!(r[1], "BadOutOfRange", "900 is outside the attribute's range");
    assert_eq!(r[2], "BadTypeMismatch");
    assert_eq!(r[3], "BadNotWritable", "properties are never written");
    assert_eq!(r[4], "Good", "an operator's write within the rule is done");

    // The device holds the new setpoint, and the server shows it as a reading.
    let mut shown = serde_json::Value::Null;
    for _ in 0..100 {
        let read = asyncua(
            &plant.url(),
            &Session::default(),
            json!([{"op": "read", "nodes": [setpoint]}]),
        )
        .await
        .unwrap();
        shown = read[0][0]["value"].clone();
        if shown == 450.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(shown, 450.0);
    // An attribute nothing feeds has no value, and never a good status.
    let unbound = asyncua(
        &plant.url(),
        &Session::default(),
        json!([{"op": "read", "nodes": [node(ns, "acme/plant/line/filler/unbound")]}]),
    )
    .await
    .unwrap();
    assert_eq!(
        unbound[0][0]["status"], "BadWaitingForInitialData",
        "{}",
        unbound[0]
    );
    assert_eq!(unbound[0][0]["value"], serde_json::Value::Null);
    plant.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_methods_run_the_production_commands_for_operators() {
    let keys = keys();
    let users = keys.users.clone();
    let plant = Plant::start_with(MIXED, &move |c| with_users(c, &users)).await;
    let anna = secure(&keys, "Basic256Sha256").user("anna", PASSWORD);
    trust_client(&plant, &anna).await;
    let production = released_work_order(&plant, "WO-7").await;
    let ns = namespace(&plant.url(), &Session::default()).await;
    let call = |method: &str, id: &str| {
        json!({"op": "call", "object": node(ns, "@production"), "method": node(ns, &format!("@production#{method}")),
               "args": [[id, "String"]]})
    };

    let anonymous = asyncua(
        &plant.url(),
        &Session::default(),
        json!([call("StartWorkOrder", "WO-7")]),
    )
    .await
    .unwrap();
    assert_eq!(anonymous[0]["status"], "BadUserAccessDenied");
    assert_eq!(
        production.view().work_order("WO-7").unwrap().status.name(),
        "released"
    );

    let r = asyncua(
        &plant.url(),
        &anna,
        json!([
            call("StartWorkOrder", "WO-7"),
            call("StartWorkOrder", "WO-404"),
            call("HoldWorkOrder", "WO-7")
        ]),
    )
    .await
    .unwrap();
    assert_eq!(r[0]["status"], "Good", "{}", r[0]);
    let started: serde_json::Value = serde_json::from_str(r[0]["outputs"][0].as_str().unwrap()).unwrap();
    assert_eq!(started["status"], "running", "{started}");
    assert_eq!(r[1]["status"], "BadNotFound");
    assert_eq!(r[2]["status"], "Good");
    assert_eq!(
        production.view().work_order("WO-7").unwrap().status.name(),
        "held"
    );
    plant.stop().await;
}
