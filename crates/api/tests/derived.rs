//! Derived attributes end to end: a real engine with the derive stage, a simulated
//! filler's counter, its rate and the line's total reach the API (with lineage showing
//! the expression and its inputs) and a sink, like any bound attribute.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use backplane_api::ApiOptions;
use common::*;
use serde_json::Value;

const LINE: &str = "acme/plant-a/packaging/line-1";
const FILLER: &str = "acme/plant-a/packaging/line-1/filler";

const CONFIG: &str = r#"
[gateway]
name = "test-edge"

[namespace]
enterprise = "acme"
site = "plant-a"

[models.Filler.attributes]
good_count = { type = "uint", unit = "bottle" }
rate = { type = "float", unit = "bottle/s", expr = "delta(good_count) / dt" }
ratio = { type = "float", expr = "good_count / (good_count - good_count)" }

[models.Line.attributes]
total = { type = "uint", unit = "bottle", expr = "sum(children.good_count)" }

[[assets]]
path = "packaging"
level = "area"

[[assets]]
path = "packaging/line-1"
level = "line"
model = "Line"

[[assets]]
path = "packaging/line-1/filler"
model = "Filler"
source = "plc"
bindings.good_count = { address = "good" }

[[sources]]
name = "plc"
kind = "simulator"
period = "20ms"
[sources.signals]
"good" = { signal = "counter", start = 1000, increment = 3, type = "uint" }

[[sinks]]
name = "file"
kind = "jsonl"
path = "out.jsonl"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn derived_values_reach_the_api_with_lineage_and_a_sink() {
    let app = start_with(CONFIG, ApiOptions::default());
    let rate_uri = format!("/api/v1/lineage/{FILLER}/rate");
    let lineage = eventually("a good rate", || async {
        let json = get(&app.router, &rate_uri).await.json();
        (json["quality"] == "good").then_some(json)
    })
    .await;
    assert!(lineage["value"].as_f64().unwrap() > 0.0, "{lineage}");
    let derivation = &lineage["derivation"];
    assert_eq!(derivation["expression"], "delta(good_count) / dt");
    let inputs = derivation["inputs"].as_array().unwrap();
    let now = inputs.iter().find(|i| i.get("role").is_none()).unwrap();
    let prev = inputs.iter().find(|i| i["role"] == "prev").unwrap();
    for input in [now, prev] {
        assert_eq!(input["path"], format!("{FILLER}/good_count"));
        assert_eq!(input["quality"], "good");
        assert!(input["value"].as_f64().unwrap() >= 1000.0, "{input}");
        assert!(input["time"].is_string(), "{input}");
    }
    assert!(now["value"].as_f64() > prev["value"].as_f64(), "{derivation}");
    assert!(
        lineage["source"].is_null(),
        "a derived value has no source: {lineage}"
    );

    // The line's total from its filler, through the asset endpoint.
    let line = eventually("the line's total", || async {
        let json = get(&app.router, &format!("/api/v1/assets/{LINE}")).await.json();
        (json["attributes"]["total"]["quality"] == "good").then_some(json)
    })
    .await;
    assert!(
        line["attributes"]["total"]["value"].as_u64().unwrap() >= 1000,
        "{line}"
    );

    // Division by zero: bad with its reason, the error in the lineage, counted.
    let ratio = get(&app.router, &format!("/api/v1/lineage/{FILLER}/ratio"))
        .await
        .json();
    assert_eq!(ratio["quality"], "bad", "{ratio}");
    assert_eq!(ratio["quality_reason"], "out_of_range");
    assert!(
        ratio["derivation"]["error"]
            .as_str()
            .unwrap()
            .starts_with("division by zero"),
        "{ratio}"
    );
    let metrics = get(&app.router, "/metrics").await.text;
    let errors = backplane_testkit::engine::metric(
        &metrics,
        r#"backplane_component_events_total{component="stage",name="derive",event="evaluation_errors"}"#,
    );
    assert!(errors.is_some_and(|n| n >= 1.0), "{metrics}");

    // The data directory (where the sink writes) lives as long as `data`.
    let Running { engine, data, .. } = app;
    engine.shutdown().await;
    let text = std::fs::read_to_string(data.path().join("out.jsonl")).unwrap();
    let records: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let rate = records
        .iter()
        .find(|r| r["path"] == format!("{FILLER}/rate") && r["quality"] == "good")
        .expect("a good rate sample in the sink");
    assert_eq!(rate["unit"], "bottle/s");
    assert_eq!(rate["model"], "Filler");
    assert!(
        records.iter().any(|r| r["path"] == format!("{LINE}/total")),
        "the line total in the sink"
    );
}
