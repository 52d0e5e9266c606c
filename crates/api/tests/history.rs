//! The history endpoints over the demo plant (examples/dairy.toml, periods sped up) with a
//! historian sink: "all pasteurizer hold temperatures during batch B-77", aggregates,
//! latest, events, and errors that name the parameter at fault.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use backplane_api::{ApiOptions, router};
use backplane_engine::Engine;
use backplane_historian::HistorianKind;
use backplane_model::{ContextField, ContextPatch, Timestamp};
use backplane_testkit::{dairy, engine as support};
use common::*;
use std::path::Path;

const PASTEURIZER: &str = "acme-dairy/plant-a/processing/pasteurizer";
const HOLD: &str = "acme-dairy/plant-a/processing/pasteurizer/hold_temperature";

fn demo_config() -> String {
    // The demo with simulated devices; it stores its history itself.
    dairy::simulated()
}

fn start_demo(data_dir: &Path) -> (Engine, axum::Router) {
    start_config(&demo_config(), data_dir)
}

fn start_config(config: &str, data_dir: &Path) -> (Engine, axum::Router) {
    let mut registry = common::registry();
    registry.add_sink("historian", HistorianKind::new());
    let plan = support::plan(config, data_dir, &registry);
    // The engine opens every historian sink's store before it starts; the API finds them
    // among its services, by sink name.
    let engine = Engine::start(plan, &registry, support::options()).unwrap();
    let router = router(engine.handle(), ApiOptions::default());
    (engine, router)
}

fn points_of(reply: &serde_json::Value) -> Vec<serde_json::Value> {
    reply["series"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["points"].as_array().unwrap().clone())
        .collect()
}

async fn raw_count(app: &axum::Router, query: &str) -> usize {
    let reply = get(app, &format!("/api/v1/history/raw?{query}")).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    points_of(&reply.json()).len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_temperatures_during_batch_b77_are_queried_by_context() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, app) = start_demo(dir.path());
    let handle = engine.handle();
    let start = Timestamp::now().to_rfc3339();
    let pasteurizer = handle.topology().asset_index(PASTEURIZER).unwrap();

    let series = get(&app, "/api/v1/history/series?model=Pasteurizer").await;
    assert_eq!(series.status, 200, "{}", series.text);
    let names: Vec<String> = series.json()["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["attribute"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        ["hold_temperature", "flow", "divert_valve", "batch_number"]
    );

    let all = format!("tag={HOLD}&from={start}");
    eventually("hold temperatures before the batch", || async {
        (raw_count(&app, &all).await >= 3).then_some(())
    })
    .await;
    handle
        .set_context(
            pasteurizer,
            &ContextPatch::default().set(ContextField::Batch, "B-77"),
            None,
        )
        .await
        .unwrap();
    let b77 = format!("model=Pasteurizer&attribute=hold_temperature&batch=B-77&from={start}");
    eventually("hold temperatures during B-77", || async {
        (raw_count(&app, &b77).await >= 8).then_some(())
    })
    .await;
    handle
        .set_context(
            pasteurizer,
            &ContextPatch::default().set(ContextField::Batch, "B-78"),
            None,
        )
        .await
        .unwrap();
    eventually("hold temperatures after B-77", || async {
        (raw_count(&app, &format!("tag={HOLD}&batch=B-78&from={start}")).await >= 3).then_some(())
    })
    .await;
    let to = Timestamp::now().to_rfc3339();

    // "All pasteurizer hold temperatures during batch B-77".
    let reply = get(&app, &format!("/api/v1/history/raw?{b77}&to={to}"))
        .await
        .json();
    let series = reply["series"].as_array().unwrap();
    assert_eq!(series.len(), 1);
    assert_eq!(series[0]["path"], HOLD);
    assert_eq!(series[0]["model"], "Pasteurizer");
    assert_eq!(series[0]["unit"], "degC");
    assert_eq!(series[0]["truncated"], false);
    let points = points_of(&reply);
    assert!(points.len() >= 8);
    for p in &points {
        assert_eq!(p["context"]["batch"], "B-77", "{p}");
        assert_eq!(p["quality"], "good");
        let t = p["value"].as_f64().unwrap();
        assert!((72.0..=73.1).contains(&t), "{t}");
        assert!(Timestamp::parse_rfc3339(p["time"].as_str().unwrap()).is_some());
    }
    let times: Vec<&str> = points.iter().map(|p| p["time"].as_str().unwrap()).collect();
    assert!(
        times
            .windows(2)
            .all(|w| Timestamp::parse_rfc3339(w[0]) <= Timestamp::parse_rfc3339(w[1]))
    );
    let total = raw_count(&app, &format!("tag={HOLD}&from={start}&to={to}")).await;
    assert!(total > points.len(), "readings outside the batch are left out");

    // The same batch as aggregates: one bucket over the whole range.
    let reply = get(
        &app,
        &format!("/api/v1/history/aggregate?tag={HOLD}&batch=B-77&from={start}&to={to}&every=1h&fn=count,min,max,mean,twa,first,last"),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let json = reply.json();
    assert_eq!(
        json["functions"],
        serde_json::json!(["count", "min", "max", "mean", "twa", "first", "last"])
    );
    let bucket = &json["series"][0]["buckets"][0];
    assert_eq!(bucket["count"].as_u64().unwrap() as usize, points.len());
    let (min, max, mean) = (
        bucket["min"].as_f64().unwrap(),
        bucket["max"].as_f64().unwrap(),
        bucket["mean"].as_f64().unwrap(),
    );
    assert!(min <= mean && mean <= max);
    let twa = bucket["twa"].as_f64().unwrap();
    assert!(min <= twa && twa <= max);
    assert_eq!(bucket["first"]["time"], points[0]["time"]);
    assert_eq!(bucket["last"]["value"], points[points.len() - 1]["value"]);
    assert!(bucket.get("durations").is_none());

    // The latest B-77 reading of every pasteurizer attribute.
    let reply = get(
        &app,
        &format!("/api/v1/history/latest?asset={PASTEURIZER}&batch=B-77"),
    )
    .await
    .json();
    let latest = reply["series"].as_array().unwrap();
    assert_eq!(
        latest.len(),
        4,
        "hold_temperature, flow, divert_valve, batch_number"
    );
    for s in latest {
        assert_eq!(s["point"]["context"]["batch"], "B-77", "{s}");
    }

    // The context changes are stored events.
    let reply = get(
        &app,
        &format!(
            "/api/v1/history/events?asset=acme-dairy/plant-a/processing&kind=context_changed&from={start}"
        ),
    )
    .await
    .json();
    // The pasteurizer's batch-number rule sets the batch too (B4711, `by` production).
    let events: Vec<&serde_json::Value> = reply["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["by"] != "production")
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["kind"], "event");
    assert_eq!(events[0]["event"], "context_changed");
    assert_eq!(events[0]["asset"], PASTEURIZER);
    assert_eq!(events[0]["field"], "batch");
    assert_eq!(events[0]["new"], "B-77");
    assert_eq!(events[1]["old"], "B-77");
    assert_eq!(events[1]["context"]["batch"], "B-78");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_durations_are_given_for_states_and_left_out_for_floats() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, app) = start_demo(dir.path());
    let from = Timestamp::now();
    let query = format!("model=Filler&from={}", from.to_rfc3339());
    eventually("filler states", || async {
        (raw_count(&app, &format!("{query}&attribute=state")).await >= 10).then_some(())
    })
    .await;
    let to = Timestamp::now();
    let reply = get(
        &app,
        &format!(
            "/api/v1/history/aggregate?{query}&to={}&every=1h&fn=durations,count,mean",
            to.to_rfc3339()
        ),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let json = reply.json();
    let series = json["series"].as_array().unwrap();
    assert_eq!(series.len(), 10, "5 attributes × 2 fillers");
    for s in series {
        let bucket = &s["buckets"][0];
        match s["attribute"].as_str().unwrap() {
            "state" => {
                let durations = bucket["durations"].as_object().unwrap();
                let total: f64 = durations.values().map(|v| v.as_f64().unwrap()).sum();
                let span = (to.unix_nanos() - from.unix_nanos()) as f64 / 1e9;
                assert!(total > 0.0 && total <= span + 1e-6, "{total} of {span}");
                assert!(
                    durations
                        .keys()
                        .all(|k| ["stopped", "idle", "running", "fault"].contains(&k.as_str()))
                );
                assert!(bucket.get("mean").is_none(), "no mean of a string");
            }
            "speed" | "product_temperature" => {
                assert!(bucket.get("durations").is_none());
                assert!(bucket["mean"].as_f64().is_some());
            }
            _ => {}
        }
    }
    engine.shutdown().await;
}

#[tokio::test]
async fn history_errors_name_the_parameter_at_fault() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, app) = start_demo(dir.path());
    let cases: &[(&str, u16, &str, Option<&str>)] = &[
        ("raw?tag=x&bach=B-77", 400, "unknown_parameter", Some("bach")),
        ("raw?from=now-1h", 400, "missing_parameter", Some("tag")),
        (
            "raw?tag=a/b&model=Filler",
            400,
            "invalid_parameter",
            Some("model"),
        ),
        (
            "raw?tag=acme-dairy/plant-a/processing/pasteurizer/temp",
            404,
            "not_found",
            Some("tag"),
        ),
        ("raw?model=Filer", 404, "not_found", Some("model")),
        (
            "raw?model=Filler&attribute=sped",
            404,
            "not_found",
            Some("attribute"),
        ),
        ("raw?asset=Processing", 400, "invalid_prefix", Some("asset")),
        ("raw?asset=acme-dairy/plant-b", 404, "not_found", Some("asset")),
        (
            "raw?model=Filler&from=yesterday",
            400,
            "invalid_parameter",
            Some("from"),
        ),
        (
            "raw?model=Filler&from=now&to=now-1h",
            400,
            "invalid_parameter",
            Some("from"),
        ),
        (
            "raw?model=Filler&limit=0",
            400,
            "invalid_parameter",
            Some("limit"),
        ),
        ("raw?model=Filler&batch=", 400, "invalid_parameter", Some("batch")),
        (
            "aggregate?model=Filler&fn=median",
            400,
            "invalid_parameter",
            Some("fn"),
        ),
        (
            "aggregate?model=Filler&every=0s",
            400,
            "invalid_parameter",
            Some("every"),
        ),
        (
            "aggregate?model=Filler&every=1ms&from=now-1d",
            400,
            "invalid_parameter",
            Some("every"),
        ),
        ("events?asset=../x", 400, "invalid_prefix", Some("asset")),
        // The attack that answered 158 MB: 960 000 buckets of one series.
        (
            "aggregate?tag=acme-dairy/plant-a/packaging/line-1/filler/speed&from=now-16m&every=1ms&fn=count,min,max,mean,twa,first,last",
            400,
            "invalid_parameter",
            Some("every"),
        ),
        (
            "raw?model=Filler&limit=1000000",
            400,
            "invalid_parameter",
            Some("limit"),
        ),
    ];
    for (query, status, code, field) in cases {
        let reply = get(&app, &format!("/api/v1/history/{query}")).await;
        assert_eq!(reply.status.as_u16(), *status, "{query}: {}", reply.text);
        let (c, f) = reply.error();
        assert_eq!(
            (c.as_str(), f.as_deref()),
            (*code, *field),
            "{query}: {}",
            reply.text
        );
    }
    let reply = get(
        &app,
        "/api/v1/history/aggregate?model=Filler&from=now-16m&every=10ms",
    )
    .await;
    assert!(
        reply.text.contains("50000 buckets"),
        "{}",
        &reply.text[..reply.text.len().min(500)]
    );
    let reply = get(
        &app,
        "/api/v1/history/raw?tag=acme-dairy/plant-a/processing/pasteurizer/temp",
    )
    .await;
    assert!(
        reply.text.contains("hold_temperature, flow, divert_valve"),
        "{}",
        reply.text
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn without_a_historian_the_history_endpoints_say_so_with_404() {
    let app = start();
    for endpoint in ["series", "raw?model=Filler", "latest", "aggregate", "events"] {
        let reply = get(&app.router, &format!("/api/v1/history/{endpoint}")).await;
        assert_eq!(reply.status, 404, "{endpoint}");
        assert_eq!(reply.error().0, "historian_not_configured");
        assert!(reply.text.contains("kind = \\\"historian\\\""), "{}", reply.text);
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_historians_are_queried_by_name_and_an_unnamed_request_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // The demo's own historian (`history`, in data/history) and a second one (`archive`)
    // in another directory, so the two stores are distinct.
    let config = format!(
        "{}\n[[sinks]]\nname = \"archive\"\nkind = \"historian\"\npath = \"archive\"\n",
        demo_config()
    );
    let (engine, app) = start_config(&config, dir.path());

    // Each answers by name, from its own directory.
    for name in ["history", "archive"] {
        let reply = get(
            &app,
            &format!("/api/v1/history/series?historian={name}&model=Pasteurizer"),
        )
        .await;
        assert_eq!(reply.status, 200, "{name}: {}", reply.text);
        assert_eq!(reply.json()["series"].as_array().unwrap().len(), 4, "{name}");
        let query = format!("historian={name}&tag={HOLD}&from=now-1h");
        eventually("hold temperatures in each historian", || async {
            (raw_count(&app, &query).await >= 3).then_some(())
        })
        .await;
    }
    assert!(dir.path().join("history").is_dir());
    assert!(dir.path().join("archive").is_dir());

    // Without a name the gateway cannot choose: 400 naming both, on every endpoint.
    for endpoint in [
        "series",
        &format!("raw?tag={HOLD}"),
        &format!("latest?tag={HOLD}"),
        &format!("aggregate?tag={HOLD}"),
        "events",
    ] {
        let reply = get(&app, &format!("/api/v1/history/{endpoint}")).await;
        assert_eq!(reply.status, 400, "{endpoint}: {}", reply.text);
        assert_eq!(
            reply.error(),
            ("missing_parameter".into(), Some("historian".into())),
            "{endpoint}"
        );
        assert!(
            reply.text.contains("archive") && reply.text.contains("history"),
            "{endpoint}: {}",
            reply.text
        );
    }

    // An unknown name is a 404 listing the names.
    let reply = get(&app, "/api/v1/history/series?historian=histroy").await;
    assert_eq!(reply.status, 404, "{}", reply.text);
    assert_eq!(reply.error(), ("not_found".into(), Some("historian".into())));
    assert!(
        reply.text.contains("histroy") && reply.text.contains("archive, history"),
        "{}",
        reply.text
    );
    engine.shutdown().await;
}
