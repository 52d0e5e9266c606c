//! The production API (issue 8) over a real engine on the built-in simulator: work orders
//! that become context on samples, lot genealogy traced both ways, operator entries
//! checked field by field, downtime reasons, states, OEE, operators, forms.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::Body;
use axum::http::Request;
use backplane_api::ApiOptions;
use backplane_model::EventKind;
use common::*;
use serde_json::{Value, json};

const LINE_2_FILLER: &str = "acme/plant-a/packaging/line-2/filler";
const SILO_1: &str = "acme/plant-a/reception/silo-1";

/// Two tracked fillers: line 1 runs all the time, line 2 alternates running and fault
/// every 300 ms, so it has downtimes within a second of starting. A reason tree, and a
/// milk reception lab form allowed in `reception` only.
const CONFIG: &str = r#"
[gateway]
name = "test-edge"

[namespace]
enterprise = "acme"
site = "plant-a"

[downtime_reasons]
mechanical = { description = "Mechanical", reasons = { jam = "Bottle jam", changeover = { description = "Format changeover", planned = true } } }
material = "Material shortage"

[models.Filler]
description = "Bottle filler"
[models.Filler.attributes]
state = { type = "string", enum = ["stopped", "idle", "running", "fault"] }
good_count = { type = "uint", unit = "bottle" }
reject_count = { type = "uint", unit = "bottle" }

[models.Filler.production]
state = { attribute = "state", map = { running = "execute", idle = "idle", stopped = "stopped", fault = "aborted" } }
counts = { good = "good_count", reject = "reject_count" }
ideal_rate = "600/min"

[models.Silo]
[models.Silo.attributes]
level = { type = "float", unit = "L" }

[forms.milk-lab]
description = "Milk reception lab check"
assets = ["reception"]
fields.fat = { type = "float", unit = "%", range = [2.5, 6.0], required = true, label = "Fat" }
fields.protein = { type = "float", unit = "%", range = [2.8, 4.0], required = true }
fields.temperature = { type = "float", unit = "degC", range = [0, 8], required = true }
fields.antibiotic = { type = "choice", choices = ["pass", "fail"], required = true }
fields.samples = { type = "int", range = [1, 10] }
fields.note = { type = "string" }

[[assets]]
path = "reception"
level = "area"

[[assets]]
path = "reception/silo-1"
model = "Silo"
source = "reception-plc"
bindings.level = { address = "silo1.level" }

[[assets]]
path = "packaging"
level = "area"

[[assets]]
path = "packaging/line-1"
level = "line"

[[assets]]
path = "packaging/line-1/filler"
model = "Filler"
source = "line1-plc"
bindings.state = { address = "state", map = { 0 = "stopped", 1 = "idle", 2 = "running", 3 = "fault" } }
bindings.good_count = { address = "good" }
bindings.reject_count = { address = "reject" }

[[assets]]
path = "packaging/line-2"
level = "line"

[[assets]]
path = "packaging/line-2/filler"
model = "Filler"
source = "line2-plc"
bindings.state = { address = "state", map = { 0 = "stopped", 1 = "idle", 2 = "running", 3 = "fault" } }
bindings.good_count = { address = "good" }
bindings.reject_count = { address = "reject" }

[[sources]]
name = "reception-plc"
kind = "simulator"
period = "50ms"
[sources.signals]
"silo1.level" = { signal = "ramp", from = 1000, to = 30000, period = "60s" }

[[sources]]
name = "line1-plc"
kind = "simulator"
period = "20ms"
[sources.signals]
"state" = { signal = "sequence", values = [2], step = "1s", type = "uint" }
"good" = { signal = "counter", start = 1000, increment = 3, type = "uint" }
"reject" = { signal = "counter", start = 10, increment = 1, every = 10, type = "uint" }

[[sources]]
name = "line2-plc"
kind = "simulator"
period = "20ms"
[sources.signals]
"state" = { signal = "sequence", values = [2, 3], step = "300ms", type = "uint" }
"good" = { signal = "counter", start = 500, increment = 2, type = "uint" }
"reject" = { signal = "counter", start = 5, increment = 1, every = 20, type = "uint" }
"#;

fn app() -> Running {
    start_with(CONFIG, ApiOptions::default())
}

async fn post(app: &Running, uri: &str, body: &str) -> Reply {
    call(&app.router, post_json(uri, body)).await
}

async fn post_as(app: &Running, user: &str, uri: &str, body: &str) -> Reply {
    call(&app.router, as_user(post_json(uri, body), user)).await
}

fn ids(list: &Value, key: &str) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|o| o[key].as_str().unwrap().to_owned())
        .collect()
}

async fn order_ids(app: &Running, query: &str) -> Vec<String> {
    let reply = get(&app.router, &format!("/api/v1/production/work-orders{query}")).await;
    assert_eq!(reply.status, 200, "{query}: {}", reply.text);
    ids(&reply.json(), "id")
}

/// `(lot, depth)` of every lot a trace reached, sorted.
fn reached(trace: &Value) -> Vec<(String, u64)> {
    let mut lots: Vec<(String, u64)> = trace["lots"]
        .as_array()
        .unwrap_or_else(|| panic!("no lots in {trace}"))
        .iter()
        .map(|l| {
            (
                l["lot"].as_str().unwrap().to_owned(),
                l["depth"].as_u64().unwrap(),
            )
        })
        .collect();
    lots.sort();
    lots
}

fn pairs(list: &[(&str, u64)]) -> Vec<(String, u64)> {
    list.iter().map(|(l, d)| ((*l).to_owned(), *d)).collect()
}

/// Every event the engine routed since `stream` subscribed, without waiting.
fn drain(
    stream: &mut tokio::sync::broadcast::Receiver<std::sync::Arc<backplane_engine::Batch>>,
) -> Vec<backplane_model::Event> {
    let mut events = Vec::new();
    while let Ok(batch) = stream.try_recv() {
        events.extend(batch.events.iter().cloned());
    }
    events
}

#[tokio::test]
async fn a_work_order_started_over_http_is_the_context_of_the_lines_equipment_samples() {
    let app = app();
    let reply = post_as(
        &app,
        "mes-connector",
        "/api/v1/production/work-orders",
        r#"{"id": "WO-1001", "product": "milk-1l", "asset": "packaging/line-1",
            "planned_quantity": 5000, "ideal_rate_per_min": 500,
            "scheduled_start": "2026-11-27T06:00:00Z", "scheduled_end": "2026-11-27T14:00:00Z"}"#,
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let order = reply.json();
    assert_eq!(order["status"], "created");
    assert_eq!(
        order["asset"], LINE_1,
        "a path below the site resolves to the full path"
    );
    assert_eq!(order["history"][0]["by"], "mes-connector");

    for (action, status) in [("release", "released"), ("start", "running")] {
        let reply = post(
            &app,
            &format!("/api/v1/production/work-orders/WO-1001/{action}"),
            "",
        )
        .await;
        assert_eq!(reply.status, 200, "{action}: {}", reply.text);
        assert_eq!(reply.json()["status"], status);
    }

    // Every good sample of the line's filler read from now on carries it; line 2's do not.
    let uri = format!("/api/v1/values?prefix={LINE_1_FILLER}");
    eventually("filler samples stamped with WO-1001", || async {
        let samples = get(&app.router, &uri).await.json();
        let samples = samples.as_array()?;
        (!samples.is_empty()
            && samples.iter().all(|s| {
                s["quality"] == "good"
                    && s["context"]["work_order"] == "WO-1001"
                    && s["context"]["product"] == "milk-1l"
            }))
        .then_some(())
    })
    .await;
    let other = get(&app.router, &format!("/api/v1/values?prefix={LINE_2_FILLER}"))
        .await
        .json();
    assert!(
        other
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["context"].get("work_order").is_none()),
        "{other}"
    );

    // The order, its history and its OEE on the tracked filler below the line.
    let detail = get(&app.router, "/api/v1/production/work-orders/WO-1001").await;
    assert_eq!(detail.status, 200, "{}", detail.text);
    let detail = detail.json();
    let statuses: Vec<&str> = detail["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["created", "released", "running"]);
    assert!(detail["actual_start"].is_string());
    let oee = detail["oee"].as_array().unwrap();
    assert_eq!(oee.len(), 1, "{detail}");
    assert_eq!(oee[0]["asset"], LINE_1_FILLER);
    assert_eq!(oee[0]["period"], "work_order");
    assert_eq!(oee[0]["work_order"], "WO-1001");
    // The filler's pieces from now on are the order's, weighed with its ideal rate.
    let figures = eventually("pieces counted in WO-1001", || async {
        let detail = get(&app.router, "/api/v1/production/work-orders/WO-1001")
            .await
            .json();
        let figures = detail["oee"][0].clone();
        (figures["total"].as_u64()? > 0).then_some(figures)
    })
    .await;
    assert_eq!(figures["ideal_rate_per_min"], 500.0, "{figures}");

    // Filters.
    assert_eq!(order_ids(&app, "").await, ["WO-1001"]);
    assert_eq!(order_ids(&app, "?status=running").await, ["WO-1001"]);
    assert_eq!(
        order_ids(&app, "?status=created,released").await,
        Vec::<String>::new()
    );
    assert_eq!(order_ids(&app, "?asset=packaging").await, ["WO-1001"]);
    assert_eq!(order_ids(&app, &format!("?asset={LINE_1}")).await, ["WO-1001"]);
    assert_eq!(
        order_ids(&app, "?asset=packaging/line-2").await,
        Vec::<String>::new()
    );
    let bad = get(&app.router, "/api/v1/production/work-orders?status=runing").await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.error(), ("invalid_parameter".into(), Some("status".into())));

    // The state view knows the running order; OEE of the open work-order period.
    let states = get(&app.router, "/api/v1/production/states").await.json();
    let filler = states
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["asset"] == LINE_1_FILLER)
        .unwrap_or_else(|| panic!("{states}"));
    assert_eq!(filler["state"], "execute");
    assert_eq!(filler["category"], "running");
    assert_eq!(filler["work_order"], "WO-1001");
    let reports = get(
        &app.router,
        &format!("/api/v1/production/oee?asset={LINE_1_FILLER}&period=work_order"),
    )
    .await
    .json();
    let reports = reports.as_array().unwrap();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0]["period"], "work_order");
    assert_eq!(reports[0]["current"][0]["work_order"], "WO-1001");

    // Holding it clears the context again.
    let reply = post(&app, "/api/v1/production/work-orders/WO-1001/hold", "{}").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    eventually("filler samples without a work order", || async {
        let samples = get(&app.router, &uri).await.json();
        let samples = samples.as_array()?;
        (!samples.is_empty() && samples.iter().all(|s| s["context"].get("work_order").is_none()))
            .then_some(())
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn refused_work_order_changes_say_why_and_change_nothing() {
    let app = app();
    let create = |id: &str| format!(r#"{{"id": "{id}", "product": "milk-1l", "asset": "{LINE_1}"}}"#);
    assert_eq!(
        post(&app, "/api/v1/production/work-orders", &create("WO-1"))
            .await
            .status,
        201
    );

    // Created → running skips a step.
    let reply = post(&app, "/api/v1/production/work-orders/WO-1/start", "").await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(
        reply.error(),
        ("invalid_transition".into(), Some("action".into()))
    );
    assert_eq!(
        reply.json()["error"]["message"],
        "work order `WO-1` cannot go from created to running: release it first"
    );
    let order = get(&app.router, "/api/v1/production/work-orders/WO-1")
        .await
        .json();
    assert_eq!(order["status"], "created");
    assert_eq!(order["history"].as_array().unwrap().len(), 1);

    // The same id again is a conflict; an unknown order or action is not found.
    let reply = post(&app, "/api/v1/production/work-orders", &create("WO-1")).await;
    assert_eq!(reply.status, 409, "{}", reply.text);
    assert_eq!(reply.error(), ("conflict".into(), Some("id".into())));
    let reply = post(&app, "/api/v1/production/work-orders/WO-9/release", "").await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.error(), ("not_found".into(), Some("id".into())));
    let reply = post(&app, "/api/v1/production/work-orders/WO-1/launch", "").await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.error(), ("not_found".into(), Some("action".into())));
    let reply = get(&app.router, "/api/v1/production/work-orders/WO-9").await;
    assert_eq!(reply.status, 404);

    // One running order per asset.
    assert_eq!(
        post(&app, "/api/v1/production/work-orders", &create("WO-2"))
            .await
            .status,
        201
    );
    for id in ["WO-1", "WO-2"] {
        let reply = post(&app, &format!("/api/v1/production/work-orders/{id}/release"), "").await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    assert_eq!(
        post(&app, "/api/v1/production/work-orders/WO-1/start", "")
            .await
            .status,
        200
    );
    let reply = post(&app, "/api/v1/production/work-orders/WO-2/start", "").await;
    assert_eq!(reply.status, 409, "{}", reply.text);
    assert!(reply.text.contains("already running"), "{}", reply.text);

    // A completed order is final.
    assert_eq!(
        post(&app, "/api/v1/production/work-orders/WO-1/complete", "")
            .await
            .status,
        200
    );
    let reply = post(&app, "/api/v1/production/work-orders/WO-1/start", "").await;
    assert_eq!(reply.status, 400);
    assert!(reply.text.contains("which is final"), "{}", reply.text);

    // Bad bodies name the field and create nothing.
    let reply = post(
        &app,
        "/api/v1/production/work-orders",
        r#"{"id": "WO-3", "product": "p", "asset": "packaging/line-1", "colour": "red"}"#,
    )
    .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error(), ("unknown_field".into(), Some("colour".into())));
    let reply = post(
        &app,
        "/api/v1/production/work-orders",
        r#"{"id": "WO-3", "product": "p"}"#,
    )
    .await;
    assert_eq!(reply.error(), ("missing_field".into(), Some("asset".into())));
    let reply = post(
        &app,
        "/api/v1/production/work-orders",
        r#"{"id": "WO-3", "product": "p", "asset": "packaging/line-9"}"#,
    )
    .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error(), ("invalid_value".into(), Some("asset".into())));
    let reply = post(
        &app,
        "/api/v1/production/work-orders",
        r#"{"id": "WO-3", "product": "p", "asset": "packaging/line-1", "planned_quantity": "many"}"#,
    )
    .await;
    assert_eq!(
        reply.error(),
        ("invalid_value".into(), Some("planned_quantity".into()))
    );
    let reply = post(
        &app,
        "/api/v1/production/work-orders/WO-2/hold",
        r#"{"why": "x"}"#,
    )
    .await;
    assert_eq!(reply.error(), ("unknown_field".into(), Some("why".into())));
    let all = get(&app.router, "/api/v1/production/work-orders").await.json();
    assert_eq!(ids(&all, "id"), ["WO-1", "WO-2"]);

    // Ids with characters a path segment cannot carry are percent-encoded in URLs.
    assert_eq!(
        post(&app, "/api/v1/production/work-orders", &create("SAP/4711 a"))
            .await
            .status,
        201
    );
    let reply = post(&app, "/api/v1/production/work-orders/SAP%2F4711%20a/release", "").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let order = get(&app.router, "/api/v1/production/work-orders/SAP%2F4711%20a")
        .await
        .json();
    assert_eq!(
        (order["id"].as_str(), order["status"].as_str()),
        (Some("SAP/4711 a"), Some("released"))
    );
    app.stop().await;
}

#[tokio::test]
async fn production_changes_need_the_token_when_one_is_configured() {
    let app = start_with(
        CONFIG,
        ApiOptions {
            token: Some("s3cret".into()),
            ..ApiOptions::default()
        },
    );
    let body = r#"{"id": "L-1", "material": "milk"}"#;
    let reply = post(&app, "/api/v1/production/lots", body).await;
    assert_eq!(reply.status, 401);
    let list = Request::get("/api/v1/production/lots")
        .header("authorization", "Bearer s3cret")
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&app.router, list).await.json(), json!([]));
    let request = Request::post("/api/v1/production/lots")
        .header("authorization", "Bearer s3cret")
        .body(Body::from(body))
        .unwrap();
    assert_eq!(call(&app.router, request).await.status, 201);
    app.stop().await;
}

#[tokio::test]
async fn genealogy_recorded_over_http_traces_forward_and_backward_across_three_levels() {
    let app = app();
    for body in [
        format!(
            r#"{{"id": "S-1", "material": "raw-milk", "quantity": 30000, "unit": "L", "asset": "{SILO_1}"}}"#
        ),
        r#"{"id": "S-2", "material": "raw-milk", "quantity": 12000, "unit": "L", "status": "complete"}"#
            .into(),
        r#"{"id": "B-1", "material": "pasteurized-milk", "unit": "L"}"#.into(),
        r#"{"id": "F-1", "material": "milk-1l", "unit": "bottle", "asset": "packaging/line-1/filler"}"#
            .into(),
        r#"{"id": "P-1", "material": "pallet-milk-1l"}"#.into(),
    ] {
        let reply = post(&app, "/api/v1/production/lots", &body).await;
        assert_eq!(reply.status, 201, "{body}: {}", reply.text);
    }
    let lot = get(&app.router, "/api/v1/production/lots/S-1").await.json();
    assert_eq!(
        (lot["status"].as_str(), lot["asset"].as_str()),
        (Some("active"), Some(SILO_1))
    );

    // silo lots → pasteurizer batch → filler lot → pallet (two silo lots: fan-in).
    for body in [
        r#"{"consumed": [{"lot": "S-1", "quantity": 10000, "unit": "L"}, {"lot": "S-2", "quantity": 2000, "unit": "L"}], "produced": "B-1"}"#,
        r#"{"consumed": [{"lot": "B-1", "quantity": 1000, "unit": "L"}], "produced": "F-1"}"#,
        r#"{"consumed": [{"lot": "F-1", "quantity": 960, "unit": "bottle"}], "produced": "P-1"}"#,
    ] {
        let reply = post_as(&app, "mes", "/api/v1/production/genealogy", body).await;
        assert_eq!(reply.status, 201, "{body}: {}", reply.text);
    }

    let trace = get(&app.router, "/api/v1/production/lots/S-1/trace?direction=forward").await;
    assert_eq!(trace.status, 200, "{}", trace.text);
    let trace = trace.json();
    assert!(trace.get("backward").is_none());
    let forward = &trace["forward"];
    assert_eq!(reached(forward), pairs(&[("B-1", 1), ("F-1", 2), ("P-1", 3)]));
    assert_eq!(forward["truncated"], false);
    let links: Vec<(&str, &str)> = forward["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["from"].as_str().unwrap(), l["to"].as_str().unwrap()))
        .collect();
    assert_eq!(links, [("S-1", "B-1"), ("B-1", "F-1"), ("F-1", "P-1")]);

    let trace = get(
        &app.router,
        "/api/v1/production/lots/P-1/trace?direction=backward",
    )
    .await
    .json();
    assert!(trace.get("forward").is_none());
    assert_eq!(
        reached(&trace["backward"]),
        pairs(&[("B-1", 2), ("F-1", 1), ("S-1", 3), ("S-2", 3)])
    );

    // Both ways by default; a depth cuts the trace and says so.
    let trace = get(&app.router, "/api/v1/production/lots/B-1/trace").await.json();
    assert_eq!(reached(&trace["forward"]), pairs(&[("F-1", 1), ("P-1", 2)]));
    assert_eq!(reached(&trace["backward"]), pairs(&[("S-1", 1), ("S-2", 1)]));
    let trace = get(
        &app.router,
        "/api/v1/production/lots/S-1/trace?direction=forward&depth=2",
    )
    .await
    .json();
    assert_eq!(reached(&trace["forward"]), pairs(&[("B-1", 1), ("F-1", 2)]));
    assert_eq!(trace["forward"]["truncated"], true);

    // Errors: unknown lots, bad parameters; a refused link records nothing.
    assert_eq!(
        get(&app.router, "/api/v1/production/lots/X-1/trace").await.status,
        404
    );
    let reply = get(
        &app.router,
        "/api/v1/production/lots/S-1/trace?direction=sideways",
    )
    .await;
    assert_eq!(
        reply.error(),
        ("invalid_parameter".into(), Some("direction".into()))
    );
    let reply = get(&app.router, "/api/v1/production/lots/S-1/trace?depth=0").await;
    assert_eq!(reply.error(), ("invalid_parameter".into(), Some("depth".into())));
    let reply = post(
        &app,
        "/api/v1/production/genealogy",
        r#"{"consumed": [{"lot": "P-1"}, {"lot": "X-9"}], "produced": "S-2"}"#,
    )
    .await;
    assert_eq!(reply.status, 404, "{}", reply.text);
    assert_eq!(
        reply.error(),
        ("not_found".into(), Some("consumed[1].lot".into()))
    );
    let reply = post(
        &app,
        "/api/v1/production/genealogy",
        r#"{"consumed": [{"lot": "P-1", "qty": 3}], "produced": "S-2"}"#,
    )
    .await;
    assert_eq!(
        reply.error(),
        ("unknown_field".into(), Some("consumed[0].qty".into()))
    );
    let trace = get(
        &app.router,
        "/api/v1/production/lots/S-2/trace?direction=backward",
    )
    .await
    .json();
    assert_eq!(reached(&trace["backward"]), Vec::<(String, u64)>::new());

    // Lot status changes, and the list filters.
    let reply = post(
        &app,
        "/api/v1/production/lots/S-1/status",
        r#"{"status": "consumed"}"#,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["status"], "consumed");
    let reply = post(
        &app,
        "/api/v1/production/lots/S-1/status",
        r#"{"status": "consumed"}"#,
    )
    .await;
    assert_eq!(
        reply.error(),
        ("invalid_transition".into(), Some("status".into()))
    );
    let reply = post(
        &app,
        "/api/v1/production/lots/S-1/status",
        r#"{"status": "eaten"}"#,
    )
    .await;
    assert_eq!(reply.error(), ("invalid_value".into(), Some("status".into())));
    let consumed = get(&app.router, "/api/v1/production/lots?status=consumed")
        .await
        .json();
    assert_eq!(ids(&consumed, "id"), ["S-1"]);
    // Spaces and tabs around items are trimmed; other Unicode white space (U+0085 NEL, as
    // schemathesis sent it) is not a status, as the document's pattern says.
    let spaced = get(&app.router, "/api/v1/production/lots?status=%20consumed%09,")
        .await
        .json();
    assert_eq!(ids(&spaced, "id"), ["S-1"]);
    for odd in ["%C2%85", "%E3%80%80consumed"] {
        let reply = get(&app.router, &format!("/api/v1/production/lots?status={odd}")).await;
        assert_eq!(
            reply.error(),
            ("invalid_parameter".into(), Some("status".into())),
            "{odd}"
        );
    }
    let raw = get(&app.router, "/api/v1/production/lots?material=raw-milk")
        .await
        .json();
    assert_eq!(ids(&raw, "id"), ["S-1", "S-2"]);
    let at_reception = get(&app.router, "/api/v1/production/lots?asset=reception")
        .await
        .json();
    assert_eq!(ids(&at_reception, "id"), ["S-1"]);
    app.stop().await;
}

/// One submission with every kind of problem at once.
const BAD_ENTRY: &str = r#"{"asset": "reception/silo-1", "values": {
    "fat": "high", "protein": 4.6, "antibiotic": "maybe", "samples": 2.5, "colour": "white"}}"#;

#[tokio::test]
async fn an_invalid_operator_entry_names_every_bad_field_and_records_nothing() {
    let app = app();
    let mut stream = app.handle.subscribe();
    let reply = post_as(&app, "anna", "/api/v1/forms/milk-lab/entries", BAD_ENTRY).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["error"]["code"], "invalid_entry");
    let mut fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors list: {body}"))
        .iter()
        .map(|e| {
            assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{e}");
            e["field"].as_str().unwrap()
        })
        .collect();
    fields.sort_unstable();
    // unknown, wrong type, out of range, not a choice, not a whole number, missing.
    assert_eq!(
        fields,
        ["antibiotic", "colour", "fat", "protein", "samples", "temperature"],
        "{body}"
    );
    let message = |field: &str| {
        body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["field"] == field)
            .unwrap()["message"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(message("protein").contains("4.6"), "{}", message("protein"));
    assert!(
        message("antibiotic").contains("pass, fail"),
        "{}",
        message("antibiotic")
    );

    // Nothing was recorded: the list is empty, and the next valid entry is the first one
    // and the only operator entry the engine routed.
    let entries = get(&app.router, "/api/v1/forms/milk-lab/entries").await.json();
    assert_eq!(entries, json!([]));
    let valid = r#"{"asset": "reception/silo-1", "values": {"fat": 4.1, "protein": 3.3, "temperature": 4, "antibiotic": "pass"}}"#;
    let reply = post_as(&app, "anna", "/api/v1/forms/milk-lab/entries", valid).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.json()["entry"], 1);
    let routed = eventually("the valid entry on the stream", || {
        let events = drain(&mut stream);
        async move {
            let entries: Vec<_> = events
                .into_iter()
                .filter_map(|e| match e.kind {
                    EventKind::OperatorEntry(entry) => Some(entry),
                    _ => None,
                })
                .collect();
            (!entries.is_empty()).then_some(entries)
        }
    })
    .await;
    assert_eq!(routed.len(), 1, "{routed:?}");
    assert_eq!(routed[0].entry, 1);

    // Problems with the submission itself, and unknown forms.
    let reply = post(
        &app,
        "/api/v1/forms/milk-lab/entries",
        r#"{"asset": "packaging/line-1", "values": {"fat": 4.1, "protein": 3.3, "temperature": 4, "antibiotic": "pass"}}"#,
    )
    .await;
    assert_eq!(reply.status, 400);
    assert_eq!(ids(&reply.json()["errors"], "field"), ["asset"]);
    let reply = post(
        &app,
        "/api/v1/forms/milk-lab/entries",
        r#"{"asset": "reception", "vals": {}}"#,
    )
    .await;
    assert_eq!(reply.error(), ("unknown_field".into(), Some("vals".into())));
    let reply = post(
        &app,
        "/api/v1/forms/no-such-form/entries",
        r#"{"asset": "reception", "values": {}}"#,
    )
    .await;
    assert_eq!(reply.status, 404);
    assert!(reply.text.contains("milk-lab"), "{}", reply.text);
    let entries = get(&app.router, "/api/v1/forms/milk-lab/entries").await.json();
    assert_eq!(entries.as_array().unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_valid_operator_entry_is_recorded_with_user_asset_and_context_and_listed() {
    let app = app();
    // The form as a user interface reads it.
    let forms = get(&app.router, "/api/v1/forms").await.json();
    assert_eq!(ids(&forms, "name"), ["milk-lab"]);
    let form = get(&app.router, "/api/v1/forms/milk-lab").await.json();
    assert_eq!(form["assets"], json!(["acme/plant-a/reception"]));
    let fat = &form["fields"][0];
    assert_eq!(
        (
            &fat["name"],
            &fat["type"],
            &fat["unit"],
            &fat["range"],
            &fat["required"],
            &fat["label"]
        ),
        (
            &json!("fat"),
            &json!("float"),
            &json!("%"),
            &json!([2.5, 6.0]),
            &json!(true),
            &json!("Fat")
        )
    );
    assert_eq!(form["fields"][3]["choices"], json!(["pass", "fail"]));
    assert_eq!(get(&app.router, "/api/v1/forms/nope").await.status, 404);

    // Anna signs in at the silo; her entry there carries the silo's context.
    let reply = post(
        &app,
        "/api/v1/production/operators/sign-in",
        r#"{"operator": "anna", "name": "Anna Berg", "asset": "reception/silo-1"}"#,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let mut stream = app.handle.subscribe();
    let entry = r#"{"asset": "reception/silo-1", "values": {"fat": 4.1, "protein": 3.3, "temperature": 3.5, "antibiotic": "pass", "samples": 2, "note": "tanker 7"}}"#;
    let reply = post_as(&app, "anna", "/api/v1/forms/milk-lab/entries", entry).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let recorded = reply.json();
    assert_eq!(recorded["form"], "milk-lab");
    assert_eq!(recorded["user"], "anna");
    assert_eq!(recorded["asset"], SILO_1);
    assert_eq!(recorded["values"]["fat"], 4.1);
    assert_eq!(recorded["values"]["note"], "tanker 7");

    let listed = get(&app.router, "/api/v1/forms/milk-lab/entries").await.json();
    assert_eq!(listed, json!([recorded]));
    let event = eventually("operator_entry event", || {
        let events = drain(&mut stream);
        async move {
            events
                .into_iter()
                .find(|e| matches!(e.kind, EventKind::OperatorEntry(_)))
        }
    })
    .await;
    assert_eq!(event.asset.as_str(), SILO_1);
    assert_eq!(event.context.operator.as_deref(), Some("anna"));

    // Newest first, limited, filtered by asset.
    let second = entry.replace("tanker 7", "tanker 8");
    assert_eq!(
        post_as(&app, "anna", "/api/v1/forms/milk-lab/entries", &second)
            .await
            .status,
        201
    );
    let listed = get(&app.router, "/api/v1/forms/milk-lab/entries?limit=1")
        .await
        .json();
    assert_eq!(listed[0]["values"]["note"], "tanker 8");
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let elsewhere = get(&app.router, "/api/v1/forms/milk-lab/entries?asset=packaging")
        .await
        .json();
    assert_eq!(elsewhere, json!([]));
    app.stop().await;
}

#[tokio::test]
async fn an_entry_with_a_client_id_and_time_is_recorded_once_at_its_time_and_a_retry_is_answered_200() {
    let app = app();
    let mut stream = app.handle.subscribe();
    let made = backplane_model::Timestamp::now().add_nanos(-90 * 1_000_000_000);
    let body = json!({
        "asset": "reception/silo-1",
        "values": {"fat": 4.1, "protein": 3.3, "temperature": 4, "antibiotic": "pass"},
        "id": "0b7f6c1e-4a2d-4f3e-9c8b-1a2b3c4d5e6f",
        "time": made.to_rfc3339(),
    })
    .to_string();
    let uri = "/api/v1/forms/milk-lab/entries";
    let first = post_as(&app, "anna", uri, &body).await;
    assert_eq!(first.status, 201, "{}", first.text);
    let recorded = first.json();
    assert_eq!(recorded["id"], "0b7f6c1e-4a2d-4f3e-9c8b-1a2b3c4d5e6f");
    assert_eq!(recorded["time"], json!(made));
    assert_eq!(recorded.get("duplicate"), None);

    // The retry (its answer was lost, say) is the same entry: 200, marked, nothing new.
    let retry = post_as(&app, "anna", uri, &body).await;
    assert_eq!(retry.status, 200, "{}", retry.text);
    let mut answer = retry.json();
    assert_eq!(answer["duplicate"], true);
    answer.as_object_mut().unwrap().remove("duplicate");
    assert_eq!(answer, recorded);
    let listed = get(&app.router, uri).await.json();
    assert_eq!(listed, json!([recorded]));

    // The same id with other values is a conflict.
    let other = body.replace("4.1", "4.4");
    let reply = post_as(&app, "anna", uri, &other).await;
    assert_eq!(reply.status, 409, "{}", reply.text);
    assert_eq!(reply.error(), ("conflict".into(), Some("id".into())));

    // The one operator_entry event is at the time the entry was made.
    let routed = eventually("the entry on the stream", || {
        let events = drain(&mut stream);
        async move {
            let entries: Vec<_> = events
                .into_iter()
                .filter(|e| matches!(e.kind, EventKind::OperatorEntry(_)))
                .collect();
            (!entries.is_empty()).then_some(entries)
        }
    })
    .await;
    assert_eq!(routed.len(), 1);
    assert_eq!(routed[0].time, made);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        drain(&mut stream)
            .iter()
            .all(|e| !matches!(e.kind, EventKind::OperatorEntry(_))),
        "the retry routed no second event"
    );

    // A bad id and a time ahead of the clock are field errors, listed with the others.
    let ahead = backplane_model::Timestamp::now().add_nanos(3600 * 1_000_000_000);
    let bad = json!({
        "asset": "reception/silo-1",
        "values": {"fat": 9, "protein": 3.3, "temperature": 4, "antibiotic": "pass"},
        "id": "not an id!",
        "time": ahead.to_rfc3339(),
    })
    .to_string();
    let reply = post_as(&app, "anna", uri, &bad).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(ids(&reply.json()["errors"], "field"), ["id", "time", "fat"]);
    let reply = post_as(&app, "anna", uri, &bad.replace(&ahead.to_rfc3339(), "monday")).await;
    assert_eq!(ids(&reply.json()["errors"], "field"), ["id", "time", "fat"]);
    // A null time is a client's mistake, not "now": refused by name, nothing recorded.
    let null_time = body
        .replace(&made.to_rfc3339(), "")
        .replace("\"time\":\"\"", "\"time\":null")
        .replace("0b7f6c1e", "1c8a7d2f");
    assert!(null_time.contains("\"time\":null"), "{null_time}");
    let reply = post_as(&app, "anna", uri, &null_time).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.error(), ("invalid_value".into(), Some("time".into())));
    assert_eq!(get(&app.router, uri).await.json().as_array().unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn operators_sign_in_and_out_and_become_the_assets_operator_context() {
    let app = app();
    let context = |asset: &'static str| {
        let router = app.router.clone();
        async move { get(&router, &format!("/api/v1/context/{asset}")).await.json()["own"]["operator"].clone() }
    };
    let reply = post(
        &app,
        "/api/v1/production/operators/sign-in",
        r#"{"operator": "jane", "asset": "packaging/line-1"}"#,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["asset"], LINE_1);
    assert_eq!(context(LINE_1).await, "jane");
    let signed_in = get(&app.router, "/api/v1/production/operators").await.json();
    assert_eq!(ids(&signed_in, "operator"), ["jane"]);

    let reply = post(
        &app,
        "/api/v1/production/operators/sign-out",
        r#"{"operator": "jane"}"#,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(context(LINE_1).await, Value::Null);
    assert_eq!(
        get(&app.router, "/api/v1/production/operators").await.json(),
        json!([])
    );
    let reply = post(
        &app,
        "/api/v1/production/operators/sign-out",
        r#"{"operator": "jane"}"#,
    )
    .await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.error(), ("not_found".into(), Some("operator".into())));
    let reply = post(
        &app,
        "/api/v1/production/operators/sign-in",
        r#"{"operator": "jane", "asset": "packaging/line-7"}"#,
    )
    .await;
    assert_eq!(reply.error(), ("invalid_value".into(), Some("asset".into())));
    app.stop().await;
}

#[tokio::test]
async fn a_reason_is_assigned_over_http_to_a_downtime_of_a_simulated_state_signal() {
    let app = app();
    // The reason tree as configured.
    let tree = get(&app.router, "/api/v1/production/reasons").await.json();
    assert_eq!(ids(&tree, "code"), ["mechanical", "material"]);
    let mechanical = &tree[0];
    assert_eq!(
        ids(&mechanical["reasons"], "code"),
        ["mechanical/jam", "mechanical/changeover"]
    );
    assert_eq!(mechanical["reasons"][1]["planned"], true);
    assert_eq!(mechanical["reasons"][0]["description"], "Bottle jam");

    // Line 2 faults every 600 ms: wait for its first downtime.
    let uri = "/api/v1/production/downtimes?asset=packaging/line-2";
    let downtime = eventually("a downtime on line 2", || async {
        let list = get(&app.router, uri).await.json();
        list.as_array()?.first().cloned()
    })
    .await;
    assert_eq!(downtime["asset"], LINE_2_FILLER);
    assert_eq!(downtime["state"], "aborted");
    assert_eq!(downtime["reason"], Value::Null);
    let id = downtime["id"].as_u64().unwrap();
    let line_1 = get(&app.router, "/api/v1/production/downtimes?asset=packaging/line-1")
        .await
        .json();
    assert_eq!(line_1, json!([]), "line 1 never stops");

    let mut stream = app.handle.subscribe();
    let reply = post_as(
        &app,
        "jane",
        &format!("/api/v1/production/downtimes/{id}/reason"),
        r#"{"reason": "mechanical/jam"}"#,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let assigned = reply.json();
    assert_eq!(assigned["id"], id);
    assert_eq!(assigned["reason"], "mechanical/jam");
    assert_eq!(assigned["reason_description"], "Bottle jam");
    assert_eq!(assigned["by"], "jane");
    assert_eq!(assigned["assigned_by"], "command");
    let list = get(&app.router, uri).await.json();
    let again = list.as_array().unwrap().iter().find(|d| d["id"] == id).unwrap();
    assert_eq!(again["reason"], "mechanical/jam");
    let event = eventually("downtime_reason_assigned event", || {
        let events = drain(&mut stream);
        async move {
            events
                .into_iter()
                .find(|e| matches!(e.kind, EventKind::DowntimeReasonAssigned(_)))
        }
    })
    .await;
    assert_eq!(event.asset.as_str(), LINE_2_FILLER);

    // Unknown reasons, downtimes and fields.
    let reason_uri = format!("/api/v1/production/downtimes/{id}/reason");
    let reply = post(&app, &reason_uri, r#"{"reason": "mechanical/jamm"}"#).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error(), ("invalid_value".into(), Some("reason".into())));
    assert!(reply.text.contains("mechanical/jam"), "{}", reply.text);
    let reply = post(
        &app,
        "/api/v1/production/downtimes/999999/reason",
        r#"{"reason": "material"}"#,
    )
    .await;
    assert_eq!(reply.status, 404);
    let reply = post(
        &app,
        "/api/v1/production/downtimes/abc/reason",
        r#"{"reason": "material"}"#,
    )
    .await;
    assert_eq!(reply.status, 404);
    let reply = post(&app, &reason_uri, r#"{"reason": "material", "note": "x"}"#).await;
    assert_eq!(reply.error(), ("unknown_field".into(), Some("note".into())));

    // Time filters: nothing overlaps a window long ago; a bad time names the parameter.
    let old = get(
        &app.router,
        "/api/v1/production/downtimes?from=2020-01-01T00:00:00Z&to=2020-01-02T00:00:00Z",
    )
    .await
    .json();
    assert_eq!(old, json!([]));
    let reply = get(&app.router, "/api/v1/production/downtimes?from=yesterday").await;
    assert_eq!(reply.error(), ("invalid_parameter".into(), Some("from".into())));
    let reply = get(&app.router, "/api/v1/production/downtimes?asset=packaging/line-9").await;
    assert_eq!(reply.status, 404);
    app.stop().await;
}

#[tokio::test]
async fn oee_and_state_queries_cover_every_tracked_asset_and_check_their_parameters() {
    let app = app();
    eventually("both fillers have a state", || async {
        let states = get(&app.router, "/api/v1/production/states").await.json();
        let states = states.as_array()?;
        (states.len() == 2 && states.iter().all(|s| s["state"].is_string())).then_some(())
    })
    .await;
    let only_line_2 = get(&app.router, "/api/v1/production/states?asset=packaging/line-2")
        .await
        .json();
    assert_eq!(ids(&only_line_2, "asset"), [LINE_2_FILLER]);

    // Without `period`: hour, shift and work order for each tracked asset. Without a
    // calendar there are no shifts, so the shift report has no open period.
    let all = get(&app.router, "/api/v1/production/oee").await.json();
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 6, "{all:?}");
    let hour = get(
        &app.router,
        &format!("/api/v1/production/oee?asset={LINE_1_FILLER}&period=hour"),
    )
    .await
    .json();
    let hour = hour.as_array().unwrap();
    assert_eq!(hour.len(), 1);
    assert_eq!(hour[0]["asset"], LINE_1_FILLER);
    let current = &hour[0]["current"][0];
    assert_eq!(current["period"], "hour");
    assert!(current["run_time_ms"].as_u64().is_some(), "{current}");

    let reply = get(&app.router, "/api/v1/production/oee?period=week").await;
    assert_eq!(reply.error(), ("invalid_parameter".into(), Some("period".into())));
    let reply = get(&app.router, "/api/v1/production/oee?asset=nowhere").await;
    assert_eq!(reply.status, 404);
    let reply = get(&app.router, "/api/v1/production/states?colour=red").await;
    assert_eq!(reply.error(), ("unknown_parameter".into(), Some("colour".into())));
    app.stop().await;
}

#[tokio::test]
async fn production_routes_are_in_the_openapi_document_and_the_index() {
    let app = app();
    let doc = get(&app.router, "/api/v1/openapi.json").await.json();
    for (method, path) in [
        ("post", "/api/v1/production/work-orders"),
        ("post", "/api/v1/production/work-orders/{id}/{action}"),
        ("get", "/api/v1/production/lots/{id}/trace"),
        ("post", "/api/v1/forms/{name}/entries"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
    }
    let index = get(&app.router, "/api/v1").await.json();
    assert!(
        index["endpoints"]
            .as_array()
            .unwrap()
            .contains(&json!({"method": "POST", "path": "/api/v1/forms/{name}/entries"}))
    );
    app.stop().await;
}

#[tokio::test]
async fn production_actions_and_entries_are_audited_with_the_command() {
    use std::sync::Arc;

    use backplane_security::{AuditTrail, MemoryRecorder, Outcome};
    let recorder = Arc::new(MemoryRecorder::default());
    let services =
        backplane_engine::Services::one(AuditTrail::SERVICE, Arc::new(AuditTrail(recorder.clone())));
    let app = common::start_with_services(CONFIG, ApiOptions::default(), services);
    let body = r#"{"id": "L-7", "material": "milk"}"#;
    assert_eq!(
        post_as(&app, "anna", "/api/v1/production/lots", body)
            .await
            .status,
        201
    );
    let again = post_as(&app, "anna", "/api/v1/production/lots", body).await;
    assert_eq!(again.status, 409, "{}", again.text);

    let events: Vec<_> = recorder
        .events()
        .into_iter()
        .filter(|e| e.action == "lot.create")
        .collect();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].who.as_ref().unwrap().name, "anna");
    assert_eq!(events[0].target, "L-7");
    assert_eq!(
        events[0].new,
        Some(json!({"command": "lot.create", "target": "L-7", "request": {"id": "L-7", "material": "milk"}}))
    );
    assert_eq!(events[0].outcome, Outcome::Done);
    assert!(
        matches!(&events[1].outcome, Outcome::Refused(r) if r.starts_with("conflict")),
        "{:?}",
        events[1].outcome
    );
    app.stop().await;
}
