//! The `http` source in webhook mode behind the real API server (hyper, on a loopback
//! port), posted to with an HTTP client: an accepted document becomes samples with its
//! time, a document with bad fields names every one and records nothing, callers without
//! a credential or the operator role are refused, and bodies over the route's limit are
//! refused before anything is read into the source.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod common;

use std::net::SocketAddr;

use backplane_api::users::Users;
use backplane_api::{ApiOptions, ServeLimits};
use backplane_engine::Engine;
use backplane_model::{Quality, Timestamp, Value};
use backplane_security::Role;
use backplane_testkit::engine::{eventually, latest};
use common::{WAIT, start, written};

const FAT: &str = "acme/plant/reception/lab/fat";
const TANKER: &str = "acme/plant/reception/lab/tanker";

const CONFIG: &str = r#"
[gateway]
name = "webhook-test"

[namespace]
enterprise = "acme"
site = "plant"

[models.LabSample.attributes]
fat = { type = "float", unit = "%" }
protein = { type = "float", unit = "%" }
tanker = { type = "string" }

[[assets]]
path = "reception"
level = "area"

[[assets]]
path = "reception/lab"
model = "LabSample"
source = "lims-results"
bindings.fat = { address = "$.fat" }
bindings.protein = { address = "$.protein" }
bindings.tanker = { address = "$.tanker" }

[[sources]]
name = "lims-results"
kind = "http"
mode = "webhook"
max_body_bytes = 1024
timestamp_path = "$.sampled_at"
[sources.fields]
tanker = { type = "string", required = true }
fat = { type = "float", required = true }
protein = "float"
sampled_at = "time"

[[sinks]]
name = "file"
kind = "jsonl"
path = "samples.jsonl"
"#;

struct Gateway {
    engine: Engine,
    address: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    operator: String,
    viewer: String,
}

/// The engine and its API on a loopback port, with an operator and a viewer token.
async fn gateway(dir: &std::path::Path) -> Gateway {
    let engine = start(CONFIG, dir);
    let mut users = Users::default();
    let operator = users.add_token("lims", Role::Operator).unwrap();
    let viewer = users.add_token("dashboard", Role::Viewer).unwrap();
    let options = ApiOptions {
        users,
        ..ApiOptions::default()
    };
    let router = backplane_api::router(engine.handle(), options);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(backplane_api::serve(
        listener,
        router,
        ServeLimits::default(),
        async {
            let _ = stopped.await;
        },
    ));
    Gateway {
        engine,
        address,
        stop,
        operator,
        viewer,
    }
}

impl Gateway {
    async fn post(&self, token: Option<&str>, body: &str) -> (u16, serde_json::Value) {
        let mut request = reqwest::Client::new()
            .post(format!("http://{}/api/v1/webhooks/lims-results", self.address))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(serde_json::Value::Null))
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.engine.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_post_becomes_samples_and_a_post_with_bad_fields_names_each_and_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(dir.path()).await;

    let (status, body) = gw
        .post(
            Some(&gw.operator),
            r#"{"fat": "high", "protein": 3.4, "sampled_at": "noon", "colour": "white"}"#,
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_entry");
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["tanker", "fat", "sampled_at", "colour"], "{body}");
    assert_eq!(body["errors"][1]["message"], "`fat` must be a number, found text");

    let (status, body) = gw
        .post(
            Some(&gw.operator),
            r#"{"tanker": "AB-123", "fat": 4.1, "protein": 3.4, "sampled_at": "2026-12-05T06:00:00Z"}"#,
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        body,
        serde_json::json!({"webhook": "lims-results", "readings": 3})
    );
    let handle = gw.engine.handle();
    let fat = eventually("fat", WAIT, || latest(&handle, FAT)).await;
    assert_eq!(fat.sample.value, Some(Value::Float(4.1)));
    assert_eq!(fat.sample.quality, Quality::Good);
    assert_eq!(
        fat.sample.source_time,
        Timestamp::parse_rfc3339("2026-12-05T06:00:00Z")
    );
    let tanker = eventually("tanker", WAIT, || latest(&handle, TANKER)).await;
    assert_eq!(tanker.sample.value, Some(Value::String("AB-123".into())));

    // Not a JSON object: refused, nothing recorded.
    let (status, body) = gw.post(Some(&gw.operator), "[1, 2]").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_json"))
    );

    gw.stop().await;
    // Only the accepted document was recorded.
    assert_eq!(written(dir.path(), FAT).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_without_a_credential_or_the_operator_role_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(dir.path()).await;
    let document = r#"{"tanker": "AB-1", "fat": 4.0}"#;
    let (status, body) = gw.post(None, document).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, body) = gw.post(Some("not-a-token"), document).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = gw.post(Some(&gw.viewer), document).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")));
    gw.stop().await;
    assert!(written(dir.path(), FAT).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_routes_limit_are_refused_and_unknown_routes_are_404() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(dir.path()).await;
    let long = "x".repeat(2000);
    let (status, body) = gw
        .post(
            Some(&gw.operator),
            &format!(r#"{{"tanker": "{long}", "fat": 4.0}}"#),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("body_too_large"))
    );
    assert!(
        body["error"]["message"].as_str().unwrap().contains("1024 bytes"),
        "{body}"
    );
    // Over the API's own limit (64 KiB) too.
    let huge = "x".repeat(100 * 1024);
    let (status, _) = gw
        .post(
            Some(&gw.operator),
            &format!(r#"{{"tanker": "{huge}", "fat": 4.0}}"#),
        )
        .await;
    assert_eq!(status, 413);

    let response = reqwest::Client::new()
        .post(format!("http://{}/api/v1/webhooks/nobody", gw.address))
        .bearer_auth(&gw.operator)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    gw.stop().await;
    assert!(written(dir.path(), FAT).is_empty());
}
