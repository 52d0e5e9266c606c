//! A real engine on simulated devices, and small helpers to call the API.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use backplane_api::{ApiOptions, router};
use backplane_engine::{Engine, EngineHandle, Registry};
use backplane_testkit::engine as support;
use tower::ServiceExt;

pub const LINE_1: &str = "acme/plant-a/packaging/line-1";
pub const LINE_1_FILLER: &str = "acme/plant-a/packaging/line-1/filler";
/// `line-10` shares the prefix text `line-1`, so prefix filters are tested on segment
/// boundaries by every test that uses it.
pub const LINE_10_FILLER: &str = "acme/plant-a/packaging/line-10/filler";
pub const COMPRESSOR: &str = "acme/plant-a/utilities/compressor";

/// Two fillers of one model from two vendors' raw layouts, as in examples/dairy.toml; the
/// line-10 filler leaves `reject_count` unbound.
pub const CONFIG: &str = r#"
[gateway]
name = "test-edge"
data_dir = "data"

[namespace]
enterprise = "acme"
site = "plant-a"

[models.Filler]
description = "Bottle filler, vendor independent"
[models.Filler.attributes]
state = { type = "string", enum = ["stopped", "idle", "running", "fault"], description = "Machine state" }
speed = { type = "float", unit = "bottle/min", range = [0, 600], description = "Filling speed" }
good_count = { type = "uint", unit = "bottle", description = "Good bottles since counter reset" }
reject_count = { type = "uint", unit = "bottle", description = "Rejected bottles since counter reset" }
product_temperature = { type = "float", unit = "degC", range = [0, 20], description = "Product temperature" }

[[assets]]
path = "packaging"
level = "area"
description = "Packaging"
context = { shift = "A" }

[[assets]]
path = "packaging/line-1"
level = "line"
description = "Filling line 1 (vendor A)"

[[assets]]
path = "packaging/line-1/filler"
model = "Filler"
source = "line1-plc"
bindings.state = { address = "hr:100", map = { 0 = "stopped", 1 = "idle", 2 = "running", 3 = "fault" } }
bindings.speed = { address = "hr:101", scale = { gain = 0.1 } }
bindings.good_count = { address = "hr:102", decode = "u32", word_order = "CDAB" }
bindings.reject_count = { address = "hr:104", decode = "u16" }
bindings.product_temperature = { address = "hr:106", decode = "i16", scale = { gain = 0.1 }, unit = "degF" }

[[assets]]
path = "packaging/line-10"
level = "line"
description = "Filling line 10 (vendor B)"

[[assets]]
path = "packaging/line-10/filler"
model = "Filler"
source = "line10-controller"
bindings.state = { address = "Filler.Status", map = { 0 = "stopped", 10 = "idle", 20 = "running", 90 = "fault" } }
bindings.speed = { address = "Filler.Speed", unit = "bottle/h" }
bindings.good_count = { address = "Filler.GoodCount" }
bindings.product_temperature = { address = "Filler.ProductTemp" }

[[sources]]
name = "line1-plc"
kind = "simulator"
seed = 21
period = "20ms"
[sources.signals]
"hr:100" = { signal = "sequence", values = [2], step = "1s", type = "uint" }
"hr:101" = { signal = "random_walk", start = 4000, step = 15, min = 3600, max = 4400, type = "uint" }
"hr:102" = { signal = "counter", start = 4294960000, increment = 3, rollover = 4294967296, registers = "u32", word_order = "CDAB" }
"hr:104" = { signal = "counter", start = 100, increment = 1, every = 5, type = "uint" }
"hr:106" = { signal = "random_walk", start = 395, step = 2, min = 380, max = 410, registers = "i16" }

[[sources]]
name = "line10-controller"
kind = "simulator"
seed = 22
period = "20ms"
[sources.signals]
"Filler.Status" = { signal = "sequence", values = [20], step = "1s", type = "uint" }
"Filler.Speed" = { signal = "random_walk", start = 22800, step = 60, min = 21000, max = 24600 }
"Filler.GoodCount" = { signal = "counter", start = 120000, increment = 3, type = "uint" }
"Filler.ProductTemp" = { signal = "random_walk", start = 4.2, step = 0.05, min = 3.0, max = 6.0 }
"#;

/// A third source that fails 200 ms after every start.
pub const FLAKY: &str = r#"
[models.Compressor]
[models.Compressor.attributes]
pressure = { type = "float", unit = "bar", description = "Outlet pressure" }

[[assets]]
path = "utilities"
level = "area"

[[assets]]
path = "utilities/compressor"
model = "Compressor"
source = "flaky-plc"
bindings.pressure = { address = "p", scale = { raw = [0, 27648], eng = [0, 16] } }

[[sources]]
name = "flaky-plc"
kind = "simulator"
period = "20ms"
fail_after = "200ms"
[sources.signals]
"p" = { signal = "random_walk", start = 12000, step = 20, min = 0, max = 27648, type = "uint" }
"#;

pub struct Running {
    pub engine: Engine,
    pub handle: EngineHandle,
    pub router: Router,
    pub config_version: String,
    /// The engine's data directory (production state, buffers), removed when dropped, so
    /// no test sees what an earlier run saved.
    pub data: tempfile::TempDir,
}

impl Running {
    pub async fn stop(self) {
        self.engine.shutdown().await;
    }
}

/// The engine's built-in kinds and the derive and production stages, as the binary
/// registers them.
pub fn registry() -> Registry {
    let mut registry = backplane_engine::builtins();
    registry.add_stage("derive", std::sync::Arc::new(backplane_derive::DeriveStageKind));
    registry.add_stage(
        "production",
        std::sync::Arc::new(backplane_production::ProductionStageKind),
    );
    registry
}

pub fn start_with(config: &str, options: ApiOptions) -> Running {
    start_with_services(config, options, backplane_engine::Services::default())
}

/// As [`start_with`], with services offered by the embedding program (the audit trail).
pub fn start_with_services(
    config: &str,
    options: ApiOptions,
    services: backplane_engine::Services,
) -> Running {
    let registry = registry();
    let data = tempfile::tempdir().unwrap();
    let plan = support::plan(config, data.path(), &registry);
    let config_version = plan.version.clone();
    let engine_options = backplane_engine::EngineOptions {
        services,
        ..support::options()
    };
    let engine = Engine::start(plan, &registry, engine_options).unwrap();
    let handle = engine.handle();
    let router = router(handle.clone(), options);
    Running {
        engine,
        handle,
        router,
        config_version,
        data,
    }
}

pub fn start() -> Running {
    start_with(CONFIG, ApiOptions::default())
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// `(code, field)` of an error reply.
    pub fn error(&self) -> (String, Option<String>) {
        let json = self.json();
        let error = &json["error"];
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "error without message: {json}"
        );
        (
            error["code"].as_str().unwrap().to_owned(),
            error["field"].as_str().map(str::to_owned),
        )
    }
}

pub async fn call(router: &Router, request: Request<Body>) -> Reply {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 16 * 1024 * 1024)
        .await
        .unwrap();
    Reply {
        status,
        headers,
        text: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

pub async fn get(router: &Router, uri: &str) -> Reply {
    call(router, Request::get(uri).body(Body::empty()).unwrap()).await
}

/// The request as made by `user`, an identity authenticated before the API saw it (as the
/// TLS server does for a client certificate): how tests in open mode attribute changes.
pub fn as_user(mut request: Request<Body>, user: &str) -> Request<Body> {
    request.extensions_mut().insert(backplane_security::Identity::new(
        user,
        backplane_security::Role::Admin,
        backplane_security::AuthMethod::ClientCertificate,
    ));
    request
}

pub fn post_json(uri: &str, body: &str) -> Request<Body> {
    Request::post(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

pub fn put_json(uri: &str, body: &str) -> Request<Body> {
    Request::put(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

/// Polls `check` until it returns `Some`, up to a generous bound; the bound only turns a
/// hang into a failure, it is not a performance assertion.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    for _ in 0..1500 {
        if let Some(value) = check().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("gave up waiting for: {what}");
}

/// Waits until every attribute of the asset that has a binding reports a value.
pub async fn wait_for_values(router: &Router, asset: &str) -> serde_json::Value {
    let uri = format!("/api/v1/assets/{asset}");
    eventually(&format!("values of {asset}"), || async {
        let json = get(router, &uri).await.json();
        let attributes = json["attributes"].as_object()?;
        let read = attributes
            .values()
            .filter(|a| a["quality_reason"] != "waiting_for_initial_data")
            .all(|a| a["quality"] == "good" && !a["value"].is_null());
        let any = attributes.values().any(|a| !a["value"].is_null());
        (read && any).then_some(json)
    })
    .await
}
