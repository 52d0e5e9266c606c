//! The engine end to end on simulated sources: supervision, quality, context stamping,
//! normalization across vendors, the JSON-lines sink and graceful shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::path::Path;
use std::time::Duration;

use backplane_engine::{ComponentState, Engine};
use backplane_model::{BadReason, ContextField, ContextPatch, Quality, Value};
use backplane_testkit::engine::{self as support, latest};

fn start(config: &str, data_dir: &Path) -> Engine {
    support::start(config, data_dir, &backplane_engine::builtins())
}

/// Up to 10 s; the bound is a safety net, not a timing assertion.
async fn eventually<T>(what: &str, check: impl FnMut() -> Option<T>) -> T {
    support::eventually(what, Duration::from_secs(10), check).await
}

const TWO_SOURCES: &str = r#"
[namespace]
enterprise = "acme"
site = "plant"

[models.Tank.attributes]
level = { type = "float", unit = "%", range = [0, 100] }

[[assets]]
path = "area"
level = "area"
context = { shift = "A" }

[[assets]]
path = "area/line"
level = "line"

[[assets]]
path = "area/line/stable"
model = "Tank"
source = "stable"
bindings.level = { address = "l" }

[[assets]]
path = "area/line/flaky"
model = "Tank"
source = "flaky"
bindings.level = { address = "l" }

[[sources]]
name = "stable"
kind = "simulator"
period = "20ms"
signals.l = { signal = "ramp", from = 0, to = 100, period = "10s" }

[[sources]]
name = "flaky"
kind = "simulator"
period = "20ms"
fail_after = "300ms"
signals.l = { signal = "constant", value = 42.0 }

[[sinks]]
name = "file"
kind = "jsonl"
path = "out.jsonl"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_source_turns_bad_and_restarts_while_others_keep_running() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(TWO_SOURCES, dir.path());
    let handle = engine.handle();
    let flaky = "acme/plant/area/line/flaky/level";
    let stable = "acme/plant/area/line/stable/level";

    eventually("a good value from the flaky source", || {
        latest(&handle, flaky).filter(|l| l.sample.quality.is_good())
    })
    .await;
    let bad = eventually("the flaky source's value to turn bad", || {
        latest(&handle, flaky).filter(|l| l.sample.quality == Quality::Bad(BadReason::CommFailure))
    })
    .await;
    // The last value is kept, marked bad, with the time it turned bad.
    assert_eq!(bad.sample.value, Some(Value::Float(42.0)));

    let stable_before = latest(&handle, stable).unwrap().sample.gateway_time;
    eventually("the stable source to keep delivering", || {
        latest(&handle, stable)
            .filter(|l| l.sample.gateway_time > stable_before && l.sample.quality.is_good())
    })
    .await;
    eventually("the supervisor to restart the flaky source", || {
        let health = handle.health();
        let flaky = health.components.iter().find(|c| c.name == "flaky")?;
        (flaky.restarts >= 1
            && flaky
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("simulated failure")))
        .then_some(())
    })
    .await;
    // When it failed, and when each source last delivered, for people reading health.
    let health = handle.health();
    let flaky_health = health.components.iter().find(|c| c.name == "flaky").unwrap();
    assert!(flaky_health.last_error_at.is_some(), "{flaky_health:?}");
    assert!(flaky_health.last_reading_at.is_some());
    let sink = health.components.iter().find(|c| c.name == "file").unwrap();
    assert_eq!(
        (sink.last_error_at, sink.last_reading_at),
        (None, None),
        "a sink reads nothing"
    );
    eventually("good values again after the restart", || {
        latest(&handle, flaky).filter(|l| l.sample.quality.is_good())
    })
    .await;
    let health = handle.health();
    let stable_health = health.components.iter().find(|c| c.name == "stable").unwrap();
    assert_eq!(stable_health.restarts, 0);
    assert!(
        stable_health.last_reading_at.is_some_and(|t| t >= stable_before),
        "the stable source read after {stable_before:?}: {stable_health:?}"
    );
    assert_eq!(stable_health.state, ComponentState::Running);
    assert!(
        handle
            .metrics_text()
            .contains("backplane_source_restarts_total{name=\"flaky\"}")
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_set_on_a_line_is_stamped_on_its_equipment_samples() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(TWO_SOURCES, dir.path());
    let handle = engine.handle();
    let topology = handle.topology().clone();
    let line = topology.asset_index("acme/plant/area/line").unwrap();
    let tag = "acme/plant/area/line/stable/level";

    // Inherited from the area, set in configuration.
    let first = eventually("a first sample", || latest(&handle, tag)).await;
    assert_eq!(first.sample.context.shift.as_deref(), Some("A"));
    assert_eq!(first.sample.context.work_order, None);

    let patch = ContextPatch::default()
        .set(ContextField::WorkOrder, "WO-1001")
        .set(ContextField::Batch, "B-77");
    let events = handle.set_context(line, &patch, Some("tester")).await.unwrap();
    assert_eq!(events.len(), 2);
    let stamped = eventually("a sample stamped with the work order", || {
        latest(&handle, tag).filter(|l| l.sample.context.work_order.as_deref() == Some("WO-1001"))
    })
    .await;
    assert_eq!(stamped.sample.context.batch.as_deref(), Some("B-77"));
    assert_eq!(stamped.sample.context.shift.as_deref(), Some("A"));

    // Clearing on the line removes it below too.
    handle
        .set_context(
            line,
            &ContextPatch::default().clear(ContextField::WorkOrder),
            None,
        )
        .await
        .unwrap();
    eventually("samples without the work order", || {
        latest(&handle, tag).filter(|l| l.sample.context.work_order.is_none())
    })
    .await;
    let (own, effective) = handle.context(line);
    assert_eq!(own.batch.as_deref(), Some("B-77"));
    assert_eq!(effective.shift.as_deref(), Some("A"));
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsonl_sink_writes_documented_payloads_and_drains_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(TWO_SOURCES, dir.path());
    let handle = engine.handle();
    let line = handle.topology().asset_index("acme/plant/area/line").unwrap();
    eventually("some samples", || {
        latest(&handle, "acme/plant/area/line/stable/level")
    })
    .await;
    handle
        .set_context(
            line,
            &ContextPatch::default().set(ContextField::Lot, "L-9"),
            Some("tester"),
        )
        .await
        .unwrap();
    engine.shutdown().await;

    let text = std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let sample = records.iter().find(|r| r["kind"] == "sample").unwrap();
    for key in [
        "path",
        "asset",
        "attribute",
        "model",
        "value",
        "type",
        "quality",
        "gateway_time",
        "context",
    ] {
        assert!(sample.get(key).is_some(), "sample lacks `{key}`: {sample}");
    }
    assert_eq!(sample["unit"], "%");
    let event = records.iter().find(|r| r["kind"] == "event").unwrap();
    assert_eq!(event["event"], "context_changed");
    assert_eq!(event["field"], "lot");
    assert_eq!(event["new"], "L-9");
    assert_eq!(event["by"], "tester");
    // Samples after the event carry the lot: the event was routed in order with samples.
    let after = records.iter().skip_while(|r| r["kind"] != "event").skip(1);
    assert!(
        after
            .filter(|r| r["kind"] == "sample" && r["asset"].as_str().unwrap().contains("/line/"))
            .all(|r| r["context"]["lot"] == "L-9")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transform_errors_turn_values_bad_with_the_reason_kept_for_lineage() {
    let dir = tempfile::tempdir().unwrap();
    let config = r#"
[namespace]
enterprise = "acme"
site = "plant"
[models.M.attributes]
state = { type = "string" }
[[assets]]
path = "m"
model = "M"
source = "sim"
bindings.state = { address = "code", map = { 1 = "idle", 2 = "running" } }
[[sources]]
name = "sim"
kind = "simulator"
period = "20ms"
signals.code = { signal = "sequence", values = [1, 7], step = "100ms" }
"#;
    let engine = start(config, dir.path());
    let handle = engine.handle();
    let bad = eventually("the unmapped code 7", || {
        latest(&handle, "acme/plant/m/state").filter(|l| l.sample.quality.is_bad())
    })
    .await;
    assert_eq!(bad.sample.quality, Quality::Bad(BadReason::ConfigError));
    assert_eq!(
        bad.sample.value,
        Some(Value::String("idle".into())),
        "keeps the last good value"
    );
    // The raw reading behind the kept value; the rejected reading is named in the error.
    assert_eq!(bad.raw, Some(Value::UInt(1)));
    assert!(bad.error.as_deref().unwrap().contains("raw value 7 has no entry"));
    let lineage = handle
        .lineage(handle.topology().tag_by_path("acme/plant/m/state").unwrap().id)
        .unwrap();
    assert!(
        lineage.reproduces,
        "the kept value is explained by its raw reading"
    );
    assert!(lineage.error.unwrap().contains("raw value 7"));
    engine.shutdown().await;
}

#[tokio::test]
async fn a_reading_that_decodes_to_nan_or_infinity_is_bad_never_good() {
    let dir = tempfile::tempdir().unwrap();
    let config = r#"
[namespace]
enterprise = "acme"
site = "plant"
[models.M.attributes]
level = { type = "float", unit = "%" }
[[assets]]
path = "m"
model = "M"
source = "sim"
bindings.level = { address = "level" }
[[sources]]
name = "sim"
kind = "simulator"
period = "20ms"
signals.level = { signal = "sequence", values = [42.5, nan, inf, -inf], step = "100ms" }
"#;
    let engine = start(config, dir.path());
    let handle = engine.handle();
    for wanted in ["NaN", "inf"] {
        let bad = eventually(wanted, || {
            latest(&handle, "acme/plant/m/level").filter(|l| {
                l.error
                    .as_deref()
                    .is_some_and(|e| e.contains(&format!(" {wanted},")))
            })
        })
        .await;
        assert_eq!(bad.sample.quality, Quality::Bad(BadReason::OutOfRange));
        assert_eq!(
            bad.sample.value,
            Some(Value::Float(42.5)),
            "keeps the last good value"
        );
    }
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gated_writes_reach_the_owning_source_and_its_answer_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!("{TWO_SOURCES}\n[models.Tank.writes.level]\nrole = \"operator\"\n");
    let engine = start(&config, dir.path());
    let handle = engine.handle();
    let report = handle
        .write(backplane_engine::MachineWrite {
            tag: "acme/plant/area/line/stable/level".into(),
            value: Value::Float(1.0),
            dry_run: false,
            who: backplane_security::Identity::new(
                "op",
                backplane_security::Role::Operator,
                backplane_security::AuthMethod::Password,
            ),
            from: "test".into(),
        })
        .await;
    // Allowlisted and checked, so it reaches the simulator, which refuses: the gate
    // reports the source's answer as a device failure.
    assert!(
        matches!(&report.status, backplane_engine::WriteStatus::Failed { failure: backplane_engine::Failure::Device, reason } if reason.contains("does not accept writes")),
        "{report:?}"
    );
    assert_eq!(report.source.as_deref(), Some("stable"));
    engine.shutdown().await;
}

/// A source kind whose every instance fails to build with the error `make` returns.
struct Failing(fn() -> backplane_engine::ComponentError);

impl backplane_engine::Kind for Failing {
    type Settings = ();
    fn describe(&self) -> &'static str {
        "a source that cannot start (test)"
    }
    fn parse(&self, _table: &mut backplane_config::Table<'_>) -> Option<()> {
        Some(())
    }
}

impl backplane_engine::SourceKind for Failing {
    fn build(
        &self,
        _ctx: &backplane_engine::SourceContext<'_, ()>,
    ) -> Result<Box<dyn backplane_engine::Source>, backplane_engine::ComponentError> {
        Err((self.0)())
    }
}

const ONE_BROKEN_SOURCE: &str = r#"
[namespace]
enterprise = "acme"
site = "plant"

[models.Tank.attributes]
level = { type = "float" }

[[assets]]
path = "area"
level = "area"

[[assets]]
path = "area/tank"
model = "Tank"
source = "broken"
bindings.level = { address = "l" }

[[sources]]
name = "broken"
kind = "failing"
"#;

/// Starts ONE_BROKEN_SOURCE with `make` as the source's build error; returns its health
/// row once it has failed at least `failures` times, and the tank's latest value.
async fn broken_source(
    make: fn() -> backplane_engine::ComponentError,
    failures: u64,
) -> (
    backplane_engine::ComponentHealth,
    Option<backplane_engine::Latest>,
) {
    let dir = tempfile::tempdir().unwrap();
    let mut registry = backplane_engine::builtins();
    registry.add_source("failing", Failing(make));
    let engine = support::start(ONE_BROKEN_SOURCE, dir.path(), &registry);
    let handle = engine.handle();
    let row = eventually("the broken source to fail", || {
        let row = handle
            .health()
            .components
            .into_iter()
            .find(|c| c.name == "broken")?;
        (row.last_error.is_some() && row.restarts >= failures).then_some(row)
    })
    .await;
    let level = eventually("the tank's value to turn bad", || {
        latest(&handle, "acme/plant/area/tank/level").filter(|l| l.sample.quality.is_bad())
    })
    .await;
    engine.shutdown().await;
    (row, Some(level))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_error_is_not_retried_and_health_names_its_kind() {
    let (row, level) = broken_source(
        || backplane_engine::ComponentError::config("certificate file /etc/missing.pem not found"),
        0,
    )
    .await;
    assert_eq!(row.state, ComponentState::Failed);
    assert_eq!(row.error_kind, Some("config"));
    assert_eq!(row.retry_at, None);
    assert!(row.last_error.unwrap().contains("missing.pem"));
    // Failed once and left alone: the test backoff would have restarted it many times by
    // the time its tag turned bad.
    assert_eq!(row.restarts, 0);
    assert_eq!(
        level.unwrap().sample.quality,
        Quality::Bad(BadReason::CommFailure)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_error_is_retried_with_backoff() {
    let (row, _) = broken_source(
        || backplane_engine::ComponentError::connect("connection refused"),
        3,
    )
    .await;
    assert!(matches!(
        row.state,
        ComponentState::Restarting | ComponentState::Starting
    ));
    assert_eq!(row.error_kind, Some("connect"));
    assert!(row.restarts >= 3);
}
