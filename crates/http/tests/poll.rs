//! The `http` source in poll mode through the engine against Python's standard-library
//! HTTP server (tests/peers/json_server.py, a child process per test): documents arrive as
//! samples of a model, an unchanged document is answered 304 and records nothing new, the
//! credentials come from a secret reference, a malformed or oversized document is counted
//! and named while the source keeps polling, and the source comes back after the server
//! was down.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod common;

use std::path::Path;

use backplane_engine::ComponentState;
use backplane_model::{BadReason, Quality, Timestamp, Value};
use backplane_testkit::engine::{eventually, latest};
use common::{JsonServer, WAIT, events, health, start, written};

const LEVEL: &str = "acme/plant/reception/silo-1/level";
const STATE: &str = "acme/plant/reception/silo-1/state";
const TEMPERATURE: &str = "acme/plant/reception/silo-1/temperature";

/// Silo `reception/silo-1` fed by source `lims` polling `url`; `extra` goes into the
/// source's table. Samples also go to `samples.jsonl`.
fn config(url: &str, extra: &str) -> String {
    format!(
        r#"
[gateway]
name = "http-test"

[namespace]
enterprise = "acme"
site = "plant"

[models.Silo.attributes]
level = {{ type = "float", unit = "%" }}
temperature = {{ type = "float", unit = "degC" }}
state = {{ type = "string" }}

[[assets]]
path = "reception"
level = "area"

[[assets]]
path = "reception/silo-1"
model = "Silo"
source = "lims"
bindings.level = {{ address = "$.silos[0].level" }}
bindings.temperature = {{ address = "$.silos[0].temp.value", scale = {{ gain = 0.1 }} }}
bindings.state = {{ address = "$['silos'][0]['state']" }}

[[sources]]
name = "lims"
kind = "http"
url = "{url}"
period = "100ms"
timeout = "1s"
timestamp_path = "$.at"
{extra}

[[sinks]]
name = "file"
kind = "jsonl"
path = "samples.jsonl"
"#
    )
}

fn document(level: f64, at: &str) -> String {
    format!(
        r#"{{"at": "{at}", "silos": [{{"level": {level}, "temp": {{"value": 42}}, "state": "filling"}}]}}"#
    )
}

async fn value_of(
    handle: &backplane_engine::EngineHandle,
    path: &str,
    want: Value,
) -> backplane_engine::Latest {
    eventually(&format!("{path} = {want:?}"), WAIT, || {
        latest(handle, path)
            .filter(|l| l.sample.value == Some(want.clone()) && l.sample.quality == Quality::Good)
    })
    .await
}

async fn quality_of(handle: &backplane_engine::EngineHandle, path: &str, want: Quality) {
    eventually(&format!("{path} {want:?}"), WAIT, || {
        latest(handle, path).filter(|l| l.sample.quality == want)
    })
    .await;
}

fn samples(dir: &Path, path: &str) -> usize {
    written(dir, path).len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_polled_document_feeds_the_model_and_an_unchanged_one_is_answered_304_without_new_samples() {
    let served = tempfile::tempdir().unwrap();
    let server = JsonServer::start(served.path(), None);
    server.serve(&document(61.5, "2026-12-05T06:00:00Z"));
    let dir = tempfile::tempdir().unwrap();
    let engine = start(&config(&server.url(), ""), dir.path());
    let handle = engine.handle();

    let level = value_of(&handle, LEVEL, Value::Float(61.5)).await;
    assert_eq!(
        level.sample.source_time,
        Timestamp::parse_rfc3339("2026-12-05T06:00:00Z")
    );
    // The binding's transform ran on the selected field: 42 × 0.1.
    let temperature = eventually("temperature", WAIT, || latest(&handle, TEMPERATURE)).await;
    assert_eq!(temperature.sample.value, Some(Value::Float(4.2)));
    value_of(&handle, STATE, Value::String("filling".into())).await;

    // Unchanged: the server answers 304 (counted on its side) and nothing new is recorded.
    let mut not_modified = 0;
    for _ in 0..200 {
        not_modified = server.count("304").await;
        if not_modified >= 5 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(not_modified >= 5, "the server sent {not_modified} 304s");
    assert_eq!(server.count("200").await, 1, "{}", server.stats().await);
    assert!(events(&handle, "lims", "not_modified") >= 5);
    eventually("the first sample written", WAIT, || {
        (samples(dir.path(), LEVEL) >= 1).then_some(())
    })
    .await;
    assert_eq!(samples(dir.path(), LEVEL), 1, "a 304 recorded a sample");

    // A new document is fetched and recorded once.
    server.serve(&document(62.0, "2026-12-05T06:01:00Z"));
    value_of(&handle, LEVEL, Value::Float(62.0)).await;
    eventually("the second sample written", WAIT, || {
        (samples(dir.path(), LEVEL) >= 2).then_some(())
    })
    .await;
    assert_eq!(server.count("200").await, 2);
    engine.shutdown().await;
    assert_eq!(samples(dir.path(), LEVEL), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_token_is_read_from_a_secret_file_and_a_wrong_one_turns_values_bad() {
    let served = tempfile::tempdir().unwrap();
    let server = JsonServer::start(served.path(), Some("Authorization: Bearer s3cret-token"));
    server.serve(&document(55.0, "2026-12-05T06:00:00Z"));
    let secrets = tempfile::tempdir().unwrap();
    let good = secrets.path().join("good.txt");
    let bad = secrets.path().join("bad.txt");
    std::fs::write(&good, "s3cret-token\n").unwrap();
    std::fs::write(&bad, "guess\n").unwrap();

    let dir = tempfile::tempdir().unwrap();
    let auth = format!("auth = {{ bearer = \"file:{}\" }}", good.display());
    let engine = start(&config(&server.url(), &auth), dir.path());
    let handle = engine.handle();
    value_of(&handle, LEVEL, Value::Float(55.0)).await;
    let stats = server.stats().await;
    assert_eq!(stats["last_authorization"], "Bearer s3cret-token");
    assert_eq!(stats["401"], serde_json::Value::Null, "{stats}");
    engine.shutdown().await;

    let dir = tempfile::tempdir().unwrap();
    let auth = format!("auth = {{ bearer = \"file:{}\" }}", bad.display());
    let engine = start(&config(&server.url(), &auth), dir.path());
    let handle = engine.handle();
    quality_of(&handle, LEVEL, Quality::Bad(BadReason::DeviceFailure)).await;
    assert!(events(&handle, "lims", "http_error_status") >= 1);
    let h = health(&handle, "lims");
    assert_eq!(h.state, ComponentState::Degraded);
    assert!(h.last_error.as_deref().unwrap().contains("HTTP 401"), "{h:?}");
    assert!(server.count("401").await >= 1);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_documents_are_counted_and_named_and_the_next_good_one_is_delivered() {
    let served = tempfile::tempdir().unwrap();
    let server = JsonServer::start(served.path(), None);
    server.serve(&document(70.0, "2026-12-05T06:00:00Z"));
    let dir = tempfile::tempdir().unwrap();
    let engine = start(&config(&server.url(), "max_body_bytes = 1024"), dir.path());
    let handle = engine.handle();
    value_of(&handle, LEVEL, Value::Float(70.0)).await;

    // Not JSON: every value bad (type_mismatch), the error counted and named by line and column.
    server.serve("{\"at\": \"2026-12-05T06:00:00Z\",\n \"silos\": [oops]}");
    quality_of(&handle, LEVEL, Quality::Bad(BadReason::TypeMismatch)).await;
    assert_eq!(events(&handle, "lims", "document_malformed"), 1);
    let h = health(&handle, "lims");
    assert_eq!(h.state, ComponentState::Degraded, "{h:?}");
    let error = h.last_error.unwrap();
    assert!(error.contains("line 2, column 12"), "{error}");
    assert!(error.contains(&server.url()), "{error}");

    // Larger than max_body_bytes: bad (out_of_range), counted, the limit named.
    let padding = "x".repeat(4096);
    server.serve(&format!(r#"{{"pad": "{padding}", "silos": [{{"level": 1}}]}}"#));
    quality_of(&handle, LEVEL, Quality::Bad(BadReason::OutOfRange)).await;
    assert!(events(&handle, "lims", "document_too_large") >= 1);
    let error = health(&handle, "lims").last_error.unwrap();
    assert!(error.contains("max_body_bytes = 1024"), "{error}");

    // The source kept running: the next good document is delivered, health is clear.
    server.serve(&document(71.5, "2026-12-05T06:02:00Z"));
    value_of(&handle, LEVEL, Value::Float(71.5)).await;
    let h = health(&handle, "lims");
    assert_eq!((h.state, h.restarts), (ComponentState::Running, 0), "{h:?}");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_field_is_bad_and_named_by_its_path_while_the_rest_is_delivered() {
    let served = tempfile::tempdir().unwrap();
    let server = JsonServer::start(served.path(), None);
    server.serve(r#"{"at": "2026-12-05T06:00:00Z", "silos": [{"level": 48.5, "state": {"code": 3}}]}"#);
    let dir = tempfile::tempdir().unwrap();
    let engine = start(&config(&server.url(), ""), dir.path());
    let handle = engine.handle();
    value_of(&handle, LEVEL, Value::Float(48.5)).await;
    quality_of(&handle, TEMPERATURE, Quality::Bad(BadReason::ConfigError)).await;
    quality_of(&handle, STATE, Quality::Bad(BadReason::TypeMismatch)).await;
    let error = health(&handle, "lims").last_error.unwrap();
    assert!(
        error.contains("`$.silos[0].temp.value` selects nothing"),
        "{error}"
    );
    assert!(error.contains("`$['silos'][0]['state']` is an object"), "{error}");
    assert_eq!(events(&handle, "lims", "field_errors"), 2);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_down_turns_values_bad_and_when_it_is_back_they_are_good_again() {
    let served = tempfile::tempdir().unwrap();
    let mut server = JsonServer::start(served.path(), None);
    server.serve(&document(30.0, "2026-12-05T06:00:00Z"));
    let dir = tempfile::tempdir().unwrap();
    let engine = start(&config(&server.url(), ""), dir.path());
    let handle = engine.handle();
    value_of(&handle, LEVEL, Value::Float(30.0)).await;

    server.kill();
    quality_of(&handle, LEVEL, Quality::Bad(BadReason::CommFailure)).await;
    let h = health(&handle, "lims");
    assert_eq!(h.error_kind, Some("connect"), "{h:?}");
    assert!(h.last_error.unwrap().contains(&server.url()));

    server.serve(&document(31.0, "2026-12-05T06:05:00Z"));
    server.restart();
    value_of(&handle, LEVEL, Value::Float(31.0)).await;
    assert!(health(&handle, "lims").restarts >= 1);
    engine.shutdown().await;
}
