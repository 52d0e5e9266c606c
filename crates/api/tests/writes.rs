//! `POST /api/v1/writes` over a real engine: the caller's identity comes from the request's
//! extensions (where the authentication middleware puts it); without one the caller is
//! anonymous and refused. Each outcome of the gate maps to its HTTP status, with the
//! attempt's report, and lands in the audit trail.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::sync::Arc;

use axum::http::StatusCode;
use backplane_api::{ApiOptions, router};
use backplane_engine::Services;
use backplane_security::{AuditTrail, AuthMethod, Identity, MemoryRecorder, Outcome, Role};
use backplane_testkit::engine as support;
use common::{call, post_json, registry};

const SPEED: &str = "acme/plant/line/filler/speed_setpoint";

const CONFIG: &str = r#"
[namespace]
enterprise = "acme"
site = "plant"
[models.Filler.attributes]
speed_setpoint = { type = "float", unit = "bottle/min", range = [0, 600] }
stop_request = { type = "bool" }
[models.Filler.writes.speed_setpoint]
role = "operator"
[[assets]]
path = "line"
level = "line"
[[assets]]
path = "line/filler"
model = "Filler"
source = "sim"
bindings.speed_setpoint = { address = "s" }
bindings.stop_request = { address = "r" }
# The same model, where an engineer narrowed writes away.
[[assets]]
path = "line/filler-2"
model = "Filler"
source = "sim"
writes = false
bindings.speed_setpoint = { address = "s" }

[[sources]]
name = "sim"
kind = "simulator"
period = "50ms"
signals.s = { signal = "constant", value = 300.0 }
signals.r = { signal = "constant", value = false }
"#;

struct App {
    engine: backplane_engine::Engine,
    router: axum::Router,
    trail: Arc<MemoryRecorder>,
    _data: tempfile::TempDir,
}

async fn start() -> App {
    let registry = registry();
    let data = tempfile::tempdir().unwrap();
    let plan = support::plan(CONFIG, data.path(), &registry);
    let trail = Arc::new(MemoryRecorder::default());
    let mut options = support::options();
    options.services = Services::one(AuditTrail::SERVICE, Arc::new(AuditTrail(trail.clone())));
    let engine = backplane_engine::Engine::start(plan, &registry, options).unwrap();
    let handle = engine.handle();
    // The step and interlock rules need a value; wait for the first one.
    common::eventually("a first value", || {
        let handle = handle.clone();
        async move { support::latest(&handle, SPEED).filter(|l| l.sample.quality.is_good()) }
    })
    .await;
    App {
        router: router(handle, ApiOptions::default()),
        engine,
        trail,
        _data: data,
    }
}

async fn post(app: &App, who: Option<Identity>, body: &str) -> common::Reply {
    let mut request = post_json("/api/v1/writes", body);
    if let Some(who) = who {
        request.extensions_mut().insert(who);
    }
    call(&app.router, request).await
}

fn operator() -> Option<Identity> {
    Some(Identity::new("olga", Role::Operator, AuthMethod::Session))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_without_an_identity_is_anonymous_and_refused() {
    let app = start().await;
    let reply = post(&app, None, &format!(r#"{{"tag": "{SPEED}", "value": 310}}"#)).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
    assert_eq!(reply.error().0, "write_refused");
    assert_eq!(reply.json()["write"]["rule"], "anonymous");
    let events = app.trail.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].who.as_ref().unwrap().method, AuthMethod::Anonymous);
    assert!(matches!(&events[0].outcome, Outcome::Refused(r) if r.starts_with("anonymous: ")));
    app.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_outcome_has_its_status_and_report() {
    let app = start().await;
    // A dry run passes every check and says what would go where.
    let reply = post(
        &app,
        operator(),
        r#"{"asset": "acme/plant/line/filler", "attribute": "speed_setpoint", "value": 310.5, "dry_run": true}"#,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let json = reply.json();
    assert_eq!(json["result"], "dry_run");
    assert_eq!(
        (
            json["raw"].clone(),
            json["source"].clone(),
            json["address"].clone()
        ),
        (310.5.into(), "sim".into(), "s".into())
    );
    assert_eq!(json["old"], 300.0);

    let reply = post(
        &app,
        operator(),
        &format!(r#"{{"tag": "{SPEED}", "value": 6000}}"#),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    assert_eq!(reply.json()["write"]["rule"], "range");

    let reply = post(
        &app,
        operator(),
        r#"{"tag": "acme/plant/line/filler/stop_request", "value": true}"#,
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
    assert_eq!(reply.json()["write"]["rule"], "not_allowlisted");

    let reply = post(
        &app,
        operator(),
        r#"{"tag": "acme/plant/line/filler-2/speed_setpoint", "value": 310}"#,
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
    assert_eq!(reply.json()["write"]["rule"], "not_allowlisted");
    assert!(
        reply.error().0 == "write_refused" && reply.text.contains("allows writes to nothing"),
        "{}",
        reply.text
    );

    // A viewer never reaches the gate: the endpoint needs an operator at least (the gate's
    // own role rule is tested against pymodbus in crates/modbus/tests).
    let viewer = Some(Identity::new("vic", Role::Viewer, AuthMethod::Token));
    let reply = post(&app, viewer, &format!(r#"{{"tag": "{SPEED}", "value": 310}}"#)).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
    assert_eq!(reply.error().0, "forbidden");

    let reply = post(
        &app,
        operator(),
        r#"{"tag": "acme/plant/line/nothing", "value": 1}"#,
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text);
    assert_eq!(reply.error().0, "not_found");

    // Allowed, so it reaches the simulator, which takes no writes: the device's answer.
    let reply = post(
        &app,
        operator(),
        &format!(r#"{{"tag": "{SPEED}", "value": 310}}"#),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.text);
    assert_eq!(reply.error().0, "write_failed");
    assert_eq!(reply.json()["write"]["failure"], "device");

    let reply = post(&app, operator(), &format!(r#"{{"tag": "{SPEED}"}}"#)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error(), ("missing_field".into(), Some("value".into())));

    // Every attempt that reached the gate is in the trail, attributed and with its outcome.
    let outcomes: Vec<_> = app
        .trail
        .events()
        .into_iter()
        .filter(|e| e.action == "write")
        .map(|e| (e.who.map(|w| w.name), e.from, e.outcome))
        .collect();
    assert_eq!(outcomes.len(), 6, "{outcomes:#?}");
    assert_eq!(
        outcomes[0],
        (Some("olga".into()), "http unknown".into(), Outcome::DryRun),
        "in-process calls have no peer address"
    );
    assert!(matches!(&outcomes[5].2, Outcome::Failed(r) if r.contains("does not accept writes")));
    app.engine.shutdown().await;
}
