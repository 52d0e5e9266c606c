//! Reading the model over REST: tree, assets, values, lineage, health, metrics, errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::Request;
use backplane_model::Value;
use backplane_model::transform::apply_chain;
use common::*;
use serde_json::json;

fn find<'a>(nodes: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    nodes.as_array()?.iter().find_map(|n| {
        if n["path"] == path {
            Some(n)
        } else {
            find(&n["children"], path)
        }
    })
}

#[tokio::test]
async fn tree_nests_assets_from_the_enterprise_down() {
    let app = start();
    let reply = get(&app.router, "/api/v1/assets").await;
    assert_eq!(reply.status, 200);
    let tree = reply.json();
    let roots = tree.as_array().unwrap();
    assert_eq!(roots.len(), 1);
    assert_eq!(roots[0]["path"], "acme");
    assert_eq!(roots[0]["level"], "enterprise");
    let line = find(&tree, LINE_1).unwrap();
    assert_eq!(line["level"], "line");
    assert_eq!(line["name"], "line-1");
    assert_eq!(line["description"], "Filling line 1 (vendor A)");
    let filler = &line["children"][0];
    assert_eq!(filler["path"], LINE_1_FILLER);
    assert_eq!(filler["model"], "Filler");
    assert_eq!(filler["children"], json!([]));
    app.stop().await;
}

#[tokio::test]
async fn asset_view_shows_units_quality_and_inherited_context() {
    let app = start();
    let asset = wait_for_values(&app.router, LINE_1_FILLER).await;
    assert_eq!(asset["path"], LINE_1_FILLER);
    assert_eq!(asset["model"], "Filler");
    assert_eq!(asset["parent"], LINE_1);
    // `shift` is set on the packaging area and inherited.
    assert_eq!(asset["context"], json!({"shift": "A"}));
    let attributes = asset["attributes"].as_object().unwrap();
    // serde_json sorts keys when parsing, so check the order on the wire.
    let text = get(&app.router, &format!("/api/v1/assets/{LINE_1_FILLER}"))
        .await
        .text;
    let wire = &text[text.find("\"attributes\"").unwrap()..];
    let at: Vec<usize> = [
        "state",
        "speed",
        "good_count",
        "reject_count",
        "product_temperature",
    ]
    .iter()
    .map(|a| wire.find(&format!("\"{a}\":{{")).unwrap())
    .collect();
    assert!(at.is_sorted(), "attributes not in model order: {wire}");
    assert_eq!(attributes.len(), 5);
    let speed = &attributes["speed"];
    assert_eq!(speed["type"], "float");
    assert_eq!(speed["unit"], "bottle/min");
    assert_eq!(speed["quality"], "good");
    assert_eq!(speed["description"], "Filling speed");
    assert!(speed["gateway_time"].as_str().unwrap().ends_with('Z'));
    // 3600..4400 tenths of a bottle per minute.
    let v = speed["value"].as_f64().unwrap();
    assert!((360.0..=440.0).contains(&v), "speed {v}");
    assert_eq!(attributes["state"]["value"], "running");
    // 380..410 tenths of °F is about 3.3..5 °C.
    let t = attributes["product_temperature"]["value"].as_f64().unwrap();
    assert!((3.0..=5.0).contains(&t), "temperature {t}");
    app.stop().await;
}

#[tokio::test]
async fn two_assets_of_one_model_give_identical_keys_types_and_units() {
    let app = start();
    let a = wait_for_values(&app.router, LINE_1_FILLER).await;
    let b = wait_for_values(&app.router, LINE_10_FILLER).await;
    let (a, b) = (
        a["attributes"].as_object().unwrap(),
        b["attributes"].as_object().unwrap(),
    );
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, attr) in a {
        assert_eq!(attr["type"], b[name]["type"], "{name}");
        assert_eq!(attr["unit"], b[name]["unit"], "{name}");
    }
    // Different raw layouts, same engineering values: tenths per minute vs. per hour.
    for speed in [&a["speed"]["value"], &b["speed"]["value"]] {
        assert!(
            (340.0..=450.0).contains(&speed.as_f64().unwrap()),
            "speed {speed}"
        );
    }
    assert_eq!(a["state"]["value"], b["state"]["value"]);
    // Line 10 leaves reject_count unbound: the key is there, saying why it has no value.
    assert_eq!(b["reject_count"]["value"], serde_json::Value::Null);
    assert_eq!(b["reject_count"]["quality"], "bad");
    assert_eq!(b["reject_count"]["quality_reason"], "waiting_for_initial_data");
    assert_eq!(b["reject_count"]["type"], "uint");
    app.stop().await;
}

#[tokio::test]
async fn values_list_every_tag_under_the_prefix_in_sample_form() {
    let app = start();
    wait_for_values(&app.router, LINE_1_FILLER).await;
    let reply = get(&app.router, &format!("/api/v1/values?prefix={LINE_1}")).await;
    assert_eq!(reply.status, 200);
    let samples = reply.json();
    let paths: Vec<&str> = samples
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["path"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = [
        "state",
        "speed",
        "good_count",
        "reject_count",
        "product_temperature",
    ]
    .iter()
    .map(|a| format!("{LINE_1_FILLER}/{a}"))
    .collect();
    assert_eq!(paths, expected);
    let speed = &samples[1];
    assert_eq!(speed["kind"], "sample");
    assert_eq!(speed["asset"], LINE_1_FILLER);
    assert_eq!(speed["attribute"], "speed");
    assert_eq!(speed["model"], "Filler");
    assert_eq!(speed["unit"], "bottle/min");
    assert_eq!(speed["context"]["shift"], "A");

    let all = get(&app.router, "/api/v1/values").await.json();
    assert_eq!(
        all.as_array().unwrap().len(),
        10,
        "both fillers, five attributes each"
    );
    let area = get(&app.router, "/api/v1/values?prefix=acme/plant-a/packaging/")
        .await
        .json();
    assert_eq!(area.as_array().unwrap().len(), 10, "a trailing slash is accepted");
    app.stop().await;
}

#[tokio::test]
async fn bad_prefixes_are_rejected_and_unknown_ones_are_not_found() {
    let app = start();
    let reply = get(&app.router, "/api/v1/values?prefix=Acme/Plant%20A").await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error(), ("invalid_prefix".into(), Some("prefix".into())));
    let reply = get(&app.router, "/api/v1/values?prefix=acme/plant-a/packaging/line-2").await;
    assert_eq!(reply.status, 404);
    assert!(
        reply.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("acme/plant-a/packaging/line-2")
    );
    app.stop().await;
}

#[tokio::test]
async fn unknown_assets_routes_and_methods_get_json_errors() {
    let app = start();
    let reply = get(&app.router, "/api/v1/assets/acme/plant-a/nowhere").await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.error().0, "not_found");
    assert!(reply.text.contains("acme/plant-a/nowhere"));

    let reply = get(&app.router, "/api/v2/assets").await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.error().0, "not_found");

    let reply = get(&app.router, "/api/v1/context/acme/plant-a/nowhere").await;
    assert_eq!(reply.status, 404);

    let request = axum::http::Request::post("/api/v1/assets")
        .body(axum::body::Body::empty())
        .unwrap();
    let reply = call(&app.router, request).await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.error().0, "method_not_allowed");
    app.stop().await;
}

/// Turns a JSON raw reading back into a model value (integers stay unsigned when they can).
fn value_from_json(json: &serde_json::Value) -> Value {
    match json {
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => Value::UInt(u),
            (None, Some(i), _) => Value::Int(i),
            (_, _, Some(f)) => Value::Float(f),
            _ => panic!("unrepresentable number {n}"),
        },
        serde_json::Value::String(s) => Value::String(s.as_str().into()),
        serde_json::Value::Array(items) => Value::Array(items.iter().map(value_from_json).collect()),
        other => panic!("unexpected raw {other}"),
    }
}

#[tokio::test]
async fn lineage_of_a_scaled_attribute_reproduces_its_value() {
    let app = start();
    let tag = format!("{LINE_1_FILLER}/product_temperature");
    let uri = format!("/api/v1/lineage/{tag}");
    let lineage = eventually("lineage with a raw value", || async {
        let json = get(&app.router, &uri).await.json();
        (!json["raw"].is_null()).then_some(json)
    })
    .await;
    assert_eq!(lineage["path"], tag.as_str());
    assert_eq!(lineage["config_version"], app.config_version.as_str());
    assert_eq!(
        lineage["source"],
        json!({"name": "line1-plc", "kind": "simulator", "address": "hr:106"})
    );
    assert_eq!(lineage["reproduces"], true);

    let info = app.handle.topology().tag_by_path(&tag).unwrap();
    let transforms = &info.binding.as_ref().unwrap().transforms;
    let steps = lineage["steps"].as_array().unwrap();
    let listed: Vec<&serde_json::Value> = steps.iter().map(|s| &s["transform"]).collect();
    let expected: Vec<serde_json::Value> = transforms
        .iter()
        .map(|t| serde_json::to_value(t).unwrap())
        .collect();
    assert_eq!(
        listed,
        expected.iter().collect::<Vec<_>>(),
        "the steps are the binding's transforms"
    );
    let ops: Vec<&str> = steps
        .iter()
        .map(|s| s["transform"]["op"].as_str().unwrap())
        .collect();
    // Tenths of °F from an i16 register: rounded to the 1 decimal the gain implies.
    assert_eq!(ops, ["decode", "scale", "round", "convert", "cast"]);
    assert_eq!(steps[2]["transform"], json!({"op": "round", "decimals": 1}));

    let raw = value_from_json(&lineage["raw"]);
    let recomputed = apply_chain(transforms, &raw).unwrap();
    assert_eq!(serde_json::to_value(&recomputed).unwrap(), lineage["value"]);
    assert_eq!(steps.last().unwrap()["output"], lineage["value"]);
    for pair in steps.windows(2) {
        assert_eq!(pair[0]["output"], pair[1]["input"]);
    }
    app.stop().await;
}

#[tokio::test]
async fn lineage_shows_a_scaled_tenth_rounded_to_its_decimal() {
    let app = start();
    let uri = format!("/api/v1/lineage/{LINE_1_FILLER}/speed");
    let lineage = eventually("lineage with a raw value", || async {
        let json = get(&app.router, &uri).await.json();
        (!json["raw"].is_null()).then_some(json)
    })
    .await;
    assert_eq!(lineage["reproduces"], true);
    let steps = lineage["steps"].as_array().unwrap();
    let ops: Vec<&str> = steps
        .iter()
        .map(|s| s["transform"]["op"].as_str().unwrap())
        .collect();
    assert_eq!(ops, ["scale", "round", "cast"]);
    let round = &steps[1];
    assert_eq!(round["transform"], json!({"op": "round", "decimals": 1}));
    assert_eq!(round["input"], steps[0]["output"]);
    // The raw reading is whole tenths; the published value is exactly raw / 10 in decimal.
    let raw = lineage["raw"].as_u64().unwrap();
    let value = lineage["value"].as_f64().unwrap();
    assert_eq!(
        value.to_string(),
        format!("{}.{}", raw / 10, raw % 10).trim_end_matches(".0")
    );
    assert_eq!(round["output"], lineage["value"]);
    app.stop().await;
}

#[tokio::test]
async fn lineage_of_an_unknown_tag_says_which_part_is_unknown() {
    let app = start();
    let reply = get(
        &app.router,
        "/api/v1/lineage/acme/plant-a/packaging/line-9/filler/speed",
    )
    .await;
    assert_eq!(reply.status, 404);
    let message = reply.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("no asset `acme/plant-a/packaging/line-9/filler`"),
        "{message}"
    );

    let reply = get(&app.router, &format!("/api/v1/lineage/{LINE_1_FILLER}/sped")).await;
    assert_eq!(reply.status, 404);
    let message = reply.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("has no attribute `sped`") && message.contains("speed"),
        "{message}"
    );
    app.stop().await;
}

#[tokio::test]
async fn health_lists_every_component_and_answers_200() {
    let app = start();
    let health = eventually("both sources running", || async {
        let reply = get(&app.router, "/api/v1/health").await;
        assert_eq!(reply.status, 200);
        let json = reply.json();
        (json["status"] == "ok").then_some(json)
    })
    .await;
    let names: BTreeSet<&str> = health["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, BTreeSet::from(["line1-plc", "line10-controller"]));
    assert_eq!(health["config_version"], app.config_version.as_str());
    app.stop().await;
}

#[tokio::test]
async fn a_failing_source_shows_restarting_and_turns_only_its_own_values_bad() {
    let app = start_with(&format!("{CONFIG}{FLAKY}"), backplane_api::ApiOptions::default());
    let health = eventually("flaky-plc restarting", || async {
        let json = get(&app.router, "/api/v1/health").await.json();
        let flaky = json["components"]
            .as_array()?
            .iter()
            .find(|c| c["name"] == "flaky-plc")?
            .clone();
        (flaky["state"] == "restarting").then_some(json)
    })
    .await;
    assert_eq!(health["status"], "degraded");
    let flaky = health["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "flaky-plc")
        .unwrap();
    assert!(flaky["last_error"].as_str().unwrap().contains("fail_after"));
    assert!(flaky["restarts"].as_u64().unwrap() >= 1);

    let pressure = eventually("compressor pressure turns bad", || async {
        let json = get(&app.router, &format!("/api/v1/values?prefix={COMPRESSOR}"))
            .await
            .json();
        let sample = json.as_array()?.first()?.clone();
        (sample["quality"] == "bad").then_some(sample)
    })
    .await;
    assert_eq!(pressure["quality_reason"], "comm_failure");

    // Meanwhile line 1 keeps delivering fresh, good values.
    let uri = format!("/api/v1/values?prefix={LINE_1_FILLER}");
    let before = get(&app.router, &uri).await.json()[1]["gateway_time"].clone();
    eventually("line 1 keeps running", || async {
        let speed = get(&app.router, &uri).await.json()[1].clone();
        (speed["quality"] == "good" && speed["gateway_time"] != before).then_some(())
    })
    .await;
    let health = get(&app.router, "/api/v1/health").await.json();
    let line1 = health["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "line1-plc")
        .unwrap();
    assert_eq!(line1["state"], "running");
    assert_eq!(line1["restarts"], 0);
    app.stop().await;
}

#[tokio::test]
async fn metrics_are_openmetrics_text_with_pipeline_counters() {
    let app = start();
    wait_for_values(&app.router, LINE_1_FILLER).await;
    let reply = get(&app.router, "/metrics").await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.headers["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let line = reply
        .text
        .lines()
        .find(|l| l.starts_with("backplane_pipeline_samples_total"))
        .unwrap();
    let count: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count > 0.0, "{line}");
    app.stop().await;
}

#[tokio::test]
async fn openapi_document_and_index_are_served() {
    let app = start();
    let reply = get(&app.router, "/api/v1/openapi.json").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers["content-type"], "application/json");
    let doc = reply.json();
    assert!(doc["paths"]["/api/v1/assets/{path}"]["get"].is_object());

    let index = get(&app.router, "/api/v1").await.json();
    assert_eq!(index["openapi"], "/api/v1/openapi.json");
    let links = index["endpoints"].as_array().unwrap();
    assert!(links.contains(&json!({"method": "PUT", "path": "/api/v1/context/{path}"})));
    for link in links {
        let path = link["path"].as_str().unwrap();
        assert!(
            doc["paths"][path].is_object(),
            "{path} in the index but not in the document"
        );
    }
    app.stop().await;
}

/// Every operation of the OpenAPI document, with path parameters filled in.
fn operations() -> Vec<(String, String)> {
    let doc: serde_json::Value = serde_json::from_str(include_str!("../src/openapi.json")).unwrap();
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{path}", LINE_1)
            .replace("{tagpath}", &format!("{LINE_1_FILLER}/speed"))
            .replace("{id}", "WO-1")
            .replace("{action}", "start")
            .replace("{name}", "milk-lab");
        for method in item.as_object().unwrap().keys() {
            if method != "parameters" {
                out.push((method.to_uppercase(), concrete.clone()));
            }
        }
    }
    out
}

#[tokio::test]
async fn every_endpoint_refuses_a_query_parameter_it_does_not_declare() {
    let app = start();
    let operations = operations();
    assert!(operations.len() >= 40, "{operations:?}");
    for (method, path) in operations {
        let request = Request::builder()
            .method(method.as_str())
            .uri(format!("{path}?prefx=acme"))
            .header("content-type", "application/json")
            .body(Body::from("{}"))
            .unwrap();
        let reply = call(&app.router, request).await;
        assert_eq!(reply.status, 400, "{method} {path}: {}", reply.text);
        assert_eq!(
            reply.error(),
            ("unknown_parameter".into(), Some("prefx".into())),
            "{method} {path}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_misspelt_parameter_on_a_context_delete_clears_nothing() {
    let app = start();
    let uri = format!("/api/v1/context/{LINE_1}");
    let reply = call(
        &app.router,
        put_json(&uri, r#"{"work_order": "WO-9", "batch": "B-1"}"#),
    )
    .await;
    assert!(reply.status.is_success(), "{}", reply.text);
    let reply = call(
        &app.router,
        Request::delete(format!("{uri}?field=batch"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.error(), ("unknown_parameter".into(), Some("field".into())));
    let context = get(&app.router, &uri).await.json();
    assert_eq!(context["own"]["work_order"], "WO-9", "{context}");
    assert_eq!(context["own"]["batch"], "B-1", "{context}");
    app.stop().await;
}

/// A sign-in, as a page on another site would send it.
fn sign_in(host: &str, origin: Option<&str>, content_type: &str) -> Request<Body> {
    let mut builder = Request::post("/api/v1/production/operators/sign-in")
        .header("host", host)
        .header("content-type", content_type);
    if let Some(origin) = origin {
        builder = builder.header("origin", origin);
    }
    let body = r#"{"operator": "mallory", "asset": "acme/plant-a/packaging/line-1"}"#;
    builder
        .header("content-length", body.len())
        .body(Body::from(body))
        .unwrap()
}

#[tokio::test]
async fn a_foreign_page_cannot_change_anything_by_rebinding_cross_site_or_text_plain_posts() {
    let app = start();
    // DNS rebinding: the attacker's name resolved to loopback, reads and changes alike.
    let reply = call(
        &app.router,
        Request::get("/api/v1/assets")
            .header("host", "evil.example:8080")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 403, "{}", reply.text);
    assert_eq!(reply.error().0, "host_not_allowed");
    let reply = call(
        &app.router,
        sign_in(
            "evil.example:8080",
            Some("http://evil.example:8080"),
            "application/json",
        ),
    )
    .await;
    assert_eq!(reply.error().0, "host_not_allowed");
    // A cross-site form post to the real address.
    let reply = call(
        &app.router,
        sign_in("127.0.0.1:8080", Some("http://evil.example"), "text/plain"),
    )
    .await;
    assert_eq!(reply.status, 403, "{}", reply.text);
    assert_eq!(reply.error().0, "cross_origin");
    // Without an Origin (a script, not a browser), text/plain is still not JSON.
    let reply = call(&app.router, sign_in("127.0.0.1:8080", None, "text/plain")).await;
    assert_eq!(reply.status, 415, "{}", reply.text);
    assert_eq!(reply.error().0, "unsupported_media_type");
    // Nobody was signed in by any of them.
    let operators = get(&app.router, "/api/v1/production/operators").await;
    assert!(!operators.text.contains("mallory"), "{}", operators.text);
    // The same-origin page and curl are served.
    let reply = call(
        &app.router,
        Request::get("/api/v1/assets")
            .header("host", "localhost:8080")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    app.stop().await;
}
