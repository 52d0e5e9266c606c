//! The `nats` sink against the shared nats-server (127.0.0.1:4222, JetStream): subjects,
//! payloads and message ids, de-duplication of replays, acknowledgement only after
//! JetStream's, stream creation and binding. Each test has its own stream and prefix and
//! deletes the stream at the end.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod common;

use std::time::Duration;

use async_nats::jetstream::stream;
use backplane_model::{ContextField, ContextPatch};
use common::harness::Harness;
use common::{SHARED, StreamGuard, js, names, read_all, stream_config};

fn config(stream: &str, prefix: &str, stream_extra: &str, extra: &str) -> String {
    format!(
        r#"
[gateway]
name = "edge-gw"

[namespace]
enterprise = "acme"
site = "plant"

[models.Tank.attributes]
level = {{ type = "float", unit = "%" }}
temp = {{ type = "float", unit = "degC" }}

[[assets]]
path = "area"
level = "area"
context = {{ shift = "A" }}

[[assets]]
path = "area/tank-1"
model = "Tank"
source = "sim"
bindings.level = {{ address = "l" }}
bindings.temp = {{ address = "t" }}

[[sources]]
name = "sim"
kind = "simulator"
period = "20ms"
signals.l = {{ signal = "ramp", from = 0, to = 100, period = "10s" }}
signals.t = {{ signal = "constant", value = 4.5 }}

[[sinks]]
name = "js"
kind = "nats"
url = "{SHARED}"
prefix = "{prefix}"
ack_timeout = "2s"
stream = {{ name = "{stream}" {stream_extra} }}
{extra}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sample_reaches_the_stream_with_its_subject_payload_and_message_id() {
    let (name, prefix) = names("sink");
    let _guard = StreamGuard {
        url: SHARED.into(),
        name: name.clone(),
    };
    let h = Harness::new(&config(
        &name,
        &prefix,
        r#", storage = "memory", duplicate_window = "30s", max_age = "1h", retention = "limits""#,
        "",
    ));
    for r in 0..3u64 {
        h.feed.push(h.delivery(r + 1, r * 2 + 1, r as f64, false));
    }
    h.feed.close();
    tokio::time::timeout(Duration::from_secs(20), h.sink().run(h.io.clone()))
        .await
        .expect("the sink stops once its input ended")
        .expect("no error");
    assert_eq!(h.feed.acked(), vec![1, 2, 3], "every record acknowledged, once");
    assert_eq!(h.feed.rewinds(), 0);

    let js = js(SHARED).await;
    let config = stream_config(&js, &name).await;
    assert_eq!(config.subjects, vec![format!("{prefix}.>")]);
    assert_eq!(config.storage, stream::StorageType::Memory);
    assert_eq!(config.duplicate_window, Duration::from_secs(30));
    assert_eq!(config.max_age, Duration::from_secs(3600));
    assert_eq!(config.retention, stream::RetentionPolicy::Limits);

    let stored = read_all(&js, &name, 100).await;
    assert_eq!(stored.len(), 7, "definitions and six samples: {stored:#?}");
    let defs = &stored[0];
    assert_eq!(defs.subject, format!("{prefix}.acme.plant._definitions"));
    assert_eq!(defs.json["kind"], "definitions");
    assert_eq!(defs.json["site"], "plant");
    assert_eq!(
        defs.msg_id.as_deref(),
        Some(format!("edge-gw.definitions.{}", h.topology.plan.version).as_str())
    );
    let samples = &stored[1..];
    let seqs: Vec<u64> = samples.iter().map(|s| s.json["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5, 6], "contiguous, in order");
    for s in samples {
        let seq = s.json["seq"].as_u64().unwrap();
        assert_eq!(s.msg_id.as_deref(), Some(format!("edge-gw.js.{seq}").as_str()));
        assert_eq!(s.gateway.as_deref(), Some("edge-gw"));
        let attribute = s.json["attribute"].as_str().unwrap();
        assert_eq!(s.subject, format!("{prefix}.acme.plant.area.tank-1.{attribute}"));
        assert_eq!(s.json["kind"], "sample");
        assert_eq!(s.json["path"], format!("acme/plant/area/tank-1/{attribute}"));
        assert_eq!(s.json["model"], "Tank");
        assert_eq!(s.json["type"], "float");
        assert_eq!(s.json["quality"], "good");
        assert!(s.json["value"].is_f64());
    }
    assert_eq!(samples[0].json["unit"], "%");
    assert_eq!(samples[1].json["unit"], "degC");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_delivery_is_dropped_by_jetstream_and_counted_as_a_duplicate() {
    let (name, prefix) = names("dedup");
    let _guard = StreamGuard {
        url: SHARED.into(),
        name: name.clone(),
    };
    let h = Harness::new(&config(&name, &prefix, r#", storage = "memory""#, ""));
    h.feed.push(h.delivery(1, 1, 0.0, false));
    h.feed.push(h.delivery(2, 3, 1.0, false));
    // The first record again, as the log replays it after a lost connection.
    h.feed.push(h.delivery(1, 1, 0.0, true));
    h.feed.close();
    h.sink().run(h.io.clone()).await.unwrap();
    assert_eq!(h.feed.acked(), vec![1, 2, 1], "the duplicate is acknowledged too");
    assert_eq!(h.counters.get("duplicates"), 2, "both samples of the replay");
    assert_eq!(h.counters.get("messages_published"), 6);

    // A restart with the same configuration publishes its definitions again: a duplicate.
    let again = Harness::new(&config(&name, &prefix, r#", storage = "memory""#, ""));
    again.feed.close();
    again.sink().run(again.io.clone()).await.unwrap();
    assert_eq!(again.counters.get("duplicates"), 1);

    let stored = read_all(&js(SHARED).await, &name, 100).await;
    assert_eq!(
        stored.len(),
        5,
        "definitions once, four samples once: {stored:#?}"
    );
    assert!(
        stored.iter().all(|s| s.json["replay"].is_null()),
        "the replayed copies were dropped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_stay_unacknowledged_when_jetstream_does_not_confirm_them() {
    let (name, prefix) = names("noack");
    let _guard = StreamGuard {
        url: SHARED.into(),
        name: name.clone(),
    };
    let h = Harness::new(&config(&name, &prefix, r#", storage = "memory""#, ""));
    let js = js(SHARED).await;
    let run = tokio::spawn(h.sink().run(h.io.clone()));
    // Once the definitions are in, the stream goes away under the sink.
    let mut tries = 0;
    loop {
        if let Ok(mut s) = js.get_stream(&name).await
            && s.info().await.unwrap().state.messages == 1
        {
            break;
        }
        tries += 1;
        assert!(tries < 200, "the definitions never arrived");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    js.delete_stream(&name).await.unwrap();
    h.feed.push(h.delivery(1, 1, 0.0, false));
    let result = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .unwrap()
        .unwrap();
    let error = result.expect_err("the sink fails: nothing stores its messages");
    assert!(error.is_retryable(), "{error}");
    assert!(
        h.feed.acked().is_empty(),
        "no record acknowledged without JetStream's ack"
    );
    assert_eq!(h.feed.rewinds(), 1, "the log replays what was not confirmed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binding_to_a_missing_stream_fails_with_a_config_error_naming_it() {
    let (name, prefix) = names("missing");
    let h = Harness::new(&config(&name, &prefix, ", create = false", ""));
    let error = h
        .sink()
        .run(h.io.clone())
        .await
        .expect_err("no stream to bind to");
    assert_eq!(error.kind(), "config");
    assert!(error.to_string().contains(&name), "{error}");
    assert!(error.to_string().contains("does not exist"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_stream_that_does_not_hold_the_prefix_is_a_config_error() {
    let (name, prefix) = names("elsewhere");
    let _guard = StreamGuard {
        url: SHARED.into(),
        name: name.clone(),
    };
    let js = js(SHARED).await;
    js.create_stream(stream::Config {
        name: name.clone(),
        subjects: vec![format!("{prefix}-other.>")],
        storage: stream::StorageType::Memory,
        ..Default::default()
    })
    .await
    .unwrap();
    let h = Harness::new(&config(&name, &prefix, ", create = false", ""));
    let error = h
        .sink()
        .run(h.io.clone())
        .await
        .expect_err("the stream does not cover the prefix");
    assert_eq!(error.kind(), "config");
    assert!(error.to_string().contains("do not cover"), "{error}");

    // create = true brings it to the configured subjects.
    let h = Harness::new(&config(&name, &prefix, r#", storage = "memory""#, ""));
    h.feed.close();
    h.sink().run(h.io.clone()).await.unwrap();
    assert_eq!(
        stream_config(&js, &name).await.subjects,
        vec![format!("{prefix}.>")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_publishes_samples_events_and_definitions_through_its_log() {
    let (name, prefix) = names("engine");
    let _guard = StreamGuard {
        url: SHARED.into(),
        name: name.clone(),
    };
    let registry = common::harness::registry();
    let dir = tempfile::tempdir().unwrap();
    let engine = backplane_testkit::engine::start(
        &config(&name, &prefix, r#", storage = "memory""#, ""),
        dir.path(),
        &registry,
    );
    let handle = engine.handle();
    let js = js(SHARED).await;
    let area = handle.topology().asset_index("acme/plant/area").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    handle
        .set_context(
            area,
            &ContextPatch::default().set(ContextField::WorkOrder, "WO-7"),
            Some("tester"),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    engine.shutdown().await;

    let stored = read_all(&js, &name, 10_000).await;
    assert!(
        stored
            .iter()
            .any(|s| s.subject == format!("{prefix}.acme.plant._definitions"))
    );
    let event = stored
        .iter()
        .find(|s| s.subject == format!("{prefix}.acme.plant.area._events.context_changed"))
        .expect("the context event");
    assert_eq!(event.json["kind"], "event");
    assert_eq!(event.json["new"], "WO-7");
    let seqs: Vec<u64> = stored.iter().filter_map(|s| s.json["seq"].as_u64()).collect();
    assert!(seqs.len() > 10, "{}", seqs.len());
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "contiguous seqs: {seqs:?}"
    );
    assert!(
        stored
            .iter()
            .any(|s| s.json["path"] == "acme/plant/area/tank-1/level"
                && s.json["context"]["work_order"] == "WO-7"),
        "later samples carry the context"
    );
}
