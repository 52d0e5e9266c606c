//! Limit alarms from asyncua's point of view: a tank's temperature, read from a fake
//! device (a JSON document the HTTP source polls, set by the client through the test's
//! own little server), crosses its `hi` limit; the client receives an
//! ExclusiveLimitAlarmType event with the standard fields, a client connecting later gets
//! the alarm through ConditionRefresh, Acknowledge is refused without the operator role
//! and done with it, bad values neither clear nor move the alarm, and the value back
//! inside by more than the deadband clears it. The alarm reaches the Server, the tank and
//! each of its ancestors once, a sibling area not at all.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const TEMPERATURE: &str = "acme/plant/cooling/tank/temperature";

/// The plant: one tank whose temperature has limits; the HTTP source polls `device`.
fn plant(device: u16) -> String {
    format!(
        r#"
[gateway]
name = "plant-a-edge"

[api]
listen = "127.0.0.1:0"

[namespace]
enterprise = "acme"
site = "plant"

[models.Tank]
[models.Tank.attributes]
temperature = {{ type = "float", unit = "degC", limits = {{ hihi = 95.0, hi = 85.0, lo = 2.0, deadband = 0.5, severity = {{ hi = 650 }} }} }}

[[sources]]
name = "tank-device"
kind = "http"
url = "http://127.0.0.1:{device}/doc"
period = "100ms"
timestamp_path = ""

[[assets]]
path = "cooling"

[[assets]]
path = "packing"

[[assets]]
path = "cooling/tank"
model = "Tank"
source = "tank-device"
bindings.temperature = {{ address = "$.t" }}
"#
    )
}

/// A device answering `GET /doc` with `{"t": VALUE}` (or text that is not JSON after
/// `GET /set/bad`); `GET /set/VALUE` changes it.
async fn fake_device() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let doc = Arc::new(Mutex::new("{\"t\": 50.0}".to_owned()));
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let doc = doc.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let Ok(n) = stream.read(&mut buf).await else {
                    return;
                };
                let request = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let body = match path.strip_prefix("/set/") {
                    Some("bad") => {
                        *doc.lock() = "this is not JSON".to_owned();
                        "ok".to_owned()
                    }
                    Some(v) => {
                        *doc.lock() = format!("{{\"t\": {v}}}");
                        "ok".to_owned()
                    }
                    None => doc.lock().clone(),
                };
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    port
}

fn alarm_events<'a>(events: &'a [Value], condition: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["NodeId"] == condition).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_alarm_is_raised_refreshed_acknowledged_and_cleared_over_opc_ua() {
    let device = fake_device().await;
    let keys = keys();
    let users = keys.users.clone();
    let plant = Plant::start_config(&plant(device), MIXED, &move |c| with_users(c, &users)).await;
    let anna = secure(&keys, "Basic256Sha256").user("anna", PASSWORD);
    trust_client(&plant, &anna).await;
    let victor = secure(&keys, "Basic256Sha256").user("victor", PASSWORD);
    let ns = namespace(&plant.url(), &Session::default()).await;
    let condition = node(ns, &format!("{TEMPERATURE}#LimitAlarm"));
    let set = |v: &str| json!({"op": "http", "url": format!("http://127.0.0.1:{device}/set/{v}")});
    let subscribe = json!({"op": "events_start", "source": "i=2253", "type": "i=9341", "where": false});

    // An anonymous client watches the Server object; the temperature goes above hi.
    let r = asyncua(
        &plant.url(),
        &Session::default(),
        json!([
            subscribe,
            {"op": "sleep", "seconds": 1},
            set("90.5"),
            {"op": "sleep", "seconds": 2},
            {"op": "events_collect"},
            {"op": "acknowledge", "condition": condition, "comment": "seen"},
        ]),
    )
    .await
    .unwrap();
    let raised = alarm_events(r[4].as_array().unwrap(), &condition);
    assert_eq!(raised.len(), 1, "one event for the transition: {:?}", r[4]);
    let e = raised[0];
    let raised_id = e["EventId"].clone();
    assert_eq!(e["EventType"], "i=9341");
    assert_eq!(e["SourceNode"], node(ns, TEMPERATURE));
    assert_eq!(e["SourceName"], TEMPERATURE);
    assert_eq!(e["Severity"], 650, "the configured severity of hi");
    assert_eq!(e["ConditionName"], "LimitAlarm");
    assert_eq!(e["ActiveState"], "Active");
    assert_eq!(e["ActiveState/Id"], true);
    assert_eq!(e["AckedState/Id"], false);
    assert_eq!(e["EnabledState/Id"], true);
    assert_eq!(e["Retain"], true);
    assert_eq!(e["LimitState/CurrentState"], "High");
    assert_eq!(e["LimitState/CurrentState/Id"], "i=9331");
    assert_eq!(e["HighLimit"], 85.0);
    assert!(e["Message"].as_str().unwrap().contains("90.5"), "{e}");
    assert_eq!(
        r[5], "BadUserAccessDenied",
        "an anonymous session may not acknowledge"
    );

    // A client connecting later asks for the active alarms; a viewer may not acknowledge,
    // an operator may, once.
    let refresh = || {
        json!([
            subscribe,
            {"op": "condition_refresh"},
            {"op": "sleep", "seconds": 1},
            {"op": "events_collect"},
            {"op": "acknowledge", "condition": condition, "comment": "cooling checked"},
            {"op": "sleep", "seconds": 1},
            {"op": "events_collect"},
            {"op": "acknowledge", "condition": condition},
        ])
    };
    let r = asyncua(&plant.url(), &victor, refresh()).await.unwrap();
    assert_eq!(r[1], "Good");
    assert_eq!(r[4], "BadUserAccessDenied", "a viewer may not acknowledge");
    let r = asyncua(&plant.url(), &anna, refresh()).await.unwrap();
    let events = r[3].as_array().unwrap();
    let types: Vec<&Value> = events.iter().map(|e| &e["EventType"]).collect();
    assert_eq!(
        types.first(),
        Some(&&json!("i=2787")),
        "RefreshStartEvent first: {types:?}"
    );
    assert_eq!(
        types.last(),
        Some(&&json!("i=2788")),
        "RefreshEndEvent last: {types:?}"
    );
    let refreshed = alarm_events(events, &condition);
    assert_eq!(refreshed.len(), 1, "{events:?}");
    assert_eq!(refreshed[0]["ActiveState/Id"], true);
    assert_eq!(refreshed[0]["LimitState/CurrentState"], "High");
    assert_eq!(refreshed[0]["Retain"], true);
    assert_eq!(
        refreshed[0]["EventId"], raised_id,
        "a refresh repeats the latest event: its EventId stays the one clients may acknowledge"
    );
    assert_eq!(r[4], "Good", "an operator acknowledges");
    // events_collect answers every event since the subscription: the new ones follow.
    let acked = alarm_events(&r[6].as_array().unwrap()[events.len()..], &condition);
    assert_eq!(acked.len(), 1, "{:?}", r[6]);
    assert_eq!(acked[0]["AckedState/Id"], true);
    assert_eq!(acked[0]["AckedState"], "Acknowledged");
    assert_eq!(acked[0]["ActiveState/Id"], true);
    assert_eq!(acked[0]["Comment"], "cooling checked");
    assert_eq!(acked[0]["ClientUserId"], "anna");
    assert_eq!(r[7], "BadConditionBranchAlreadyAcked");

    // Bad values (the device answers garbage) neither clear nor move the alarm; back
    // inside hi but within the deadband neither; past the deadband the alarm clears.
    let active_id = node(ns, &format!("{TEMPERATURE}#LimitAlarm/ActiveState/Id"));
    let r = asyncua(
        &plant.url(),
        &Session::default(),
        json!([
            subscribe,
            set("bad"),
            {"op": "sleep", "seconds": 1.5},
            {"op": "read", "nodes": [node(ns, TEMPERATURE), active_id]},
            set("84.8"),
            {"op": "sleep", "seconds": 1.5},
            {"op": "events_collect"},
            set("84.2"),
            {"op": "sleep", "seconds": 1.5},
            {"op": "events_collect"},
            {"op": "read", "nodes": [active_id]},
        ]),
    )
    .await
    .unwrap();
    assert_eq!(
        r[3][0]["status"], "BadTypeMismatch",
        "the device's garbage is a bad value: {}",
        r[3]
    );
    assert_eq!(r[3][1]["value"], true, "a bad value does not clear the alarm");
    assert!(
        alarm_events(r[6].as_array().unwrap(), &condition).is_empty(),
        "no transition while bad or within the deadband: {:?}",
        r[6]
    );
    let all = &r[9].as_array().unwrap()[r[6].as_array().unwrap().len()..];
    let cleared = alarm_events(all, &condition);
    assert_eq!(cleared.len(), 1, "{all:?}");
    assert_eq!(cleared[0]["ActiveState/Id"], false);
    assert_eq!(cleared[0]["ActiveState"], "Inactive");
    assert_eq!(
        cleared[0]["Retain"], false,
        "inactive and acknowledged: no longer retained"
    );
    assert_eq!(r[10][0]["value"], false);
    tokio::time::sleep(Duration::from_millis(10)).await;
    plant.stop().await;
}

/// The notifier hierarchy for condition events: the Server, the tank, its area and its
/// site each get the raised alarm once, the sibling area none; a ConditionRefresh of a
/// subscription on the area repeats it there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_alarm_reaches_each_notifier_above_its_asset_once_and_no_sibling() {
    let device = fake_device().await;
    let plant = Plant::start_config(&plant(device), OPEN, &|c| c).await;
    let ns = namespace(&plant.url(), &Session::default()).await;
    let condition = node(ns, &format!("{TEMPERATURE}#LimitAlarm"));
    // The area last: ConditionRefresh names the last subscription.
    let notifiers = [
        ("server", "i=2253".to_owned()),
        ("tank", node(ns, "acme/plant/cooling/tank")),
        ("site", node(ns, "acme/plant")),
        ("sibling", node(ns, "acme/plant/packing")),
        ("area", node(ns, "acme/plant/cooling")),
    ];
    let mut ops: Vec<Value> = notifiers
        .iter()
        .map(|(name, source)| json!({"op": "events_start", "name": name, "source": source, "type": "i=9341", "where": false}))
        .collect();
    ops.push(json!({"op": "sleep", "seconds": 1}));
    ops.push(json!({"op": "http", "url": format!("http://127.0.0.1:{device}/set/90.5")}));
    ops.push(json!({"op": "sleep", "seconds": 2}));
    for (name, _) in &notifiers {
        ops.push(json!({"op": "events_collect", "name": name}));
    }
    ops.push(json!({"op": "condition_refresh"}));
    ops.push(json!({"op": "sleep", "seconds": 1}));
    ops.push(json!({"op": "events_collect", "name": "area"}));
    let r = asyncua(&plant.url(), &Session::default(), json!(ops))
        .await
        .unwrap();
    let collected = &r[notifiers.len() + 3..notifiers.len() * 2 + 3];
    for ((name, _), events) in notifiers.iter().zip(collected) {
        let raised = alarm_events(events.as_array().unwrap(), &condition);
        let expected = if *name == "sibling" { 0 } else { 1 };
        assert_eq!(raised.len(), expected, "on the {name}'s subscription: {events:?}");
    }
    assert_eq!(r[notifiers.len() * 2 + 3], "Good");
    let area = r.last().unwrap().as_array().unwrap();
    assert_eq!(
        alarm_events(area, &condition).len(),
        2,
        "the raised event, then the refresh's copy: {area:?}"
    );
    plant.stop().await;
}
