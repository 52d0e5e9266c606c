//! Setting and clearing production context, its validation, limits and authentication.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::Body;
use axum::http::Request;
use backplane_api::ApiOptions;
use backplane_model::{ContextField, EventKind};
use common::*;
use serde_json::json;

fn context_uri(asset: &str) -> String {
    format!("/api/v1/context/{asset}")
}

#[tokio::test]
async fn context_set_on_a_line_reaches_the_fillers_view_samples_and_event_stream() {
    let app = start();
    let mut stream = app.handle.subscribe();
    let request = Request::put(context_uri(LINE_1))
        .body(Body::from(r#"{"work_order": "WO-4711", "batch": "B-118"}"#))
        .unwrap();
    let reply = call(&app.router, as_user(request, "mes-connector")).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["path"], LINE_1);
    assert_eq!(body["own"], json!({"work_order": "WO-4711", "batch": "B-118"}));
    assert_eq!(
        body["effective"],
        json!({"work_order": "WO-4711", "batch": "B-118", "shift": "A"})
    );
    let events = body["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    let wo = events.iter().find(|e| e["field"] == "work_order").unwrap();
    assert_eq!(wo["kind"], "event");
    assert_eq!(wo["event"], "context_changed");
    assert_eq!(wo["asset"], LINE_1);
    assert_eq!(wo["old"], serde_json::Value::Null);
    assert_eq!(wo["new"], "WO-4711");
    assert_eq!(wo["by"], "mes-connector");

    // The filler inherits it.
    let filler = get(&app.router, &context_uri(LINE_1_FILLER)).await.json();
    assert_eq!(filler["own"], json!({}));
    assert_eq!(filler["effective"]["work_order"], "WO-4711");
    let asset = get(&app.router, &format!("/api/v1/assets/{LINE_1_FILLER}"))
        .await
        .json();
    assert_eq!(asset["context"]["work_order"], "WO-4711");

    // Its next samples carry it; line 10's do not.
    let uri = format!("/api/v1/values?prefix={LINE_1_FILLER}");
    eventually("filler samples stamped with the work order", || async {
        let samples = get(&app.router, &uri).await.json();
        samples
            .as_array()?
            .iter()
            .filter(|s| s["quality"] == "good")
            .all(|s| s["context"]["work_order"] == "WO-4711" && s["context"]["batch"] == "B-118")
            .then_some(())
    })
    .await;
    let other = get(&app.router, &format!("/api/v1/values?prefix={LINE_10_FILLER}"))
        .await
        .json();
    assert!(
        other
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["context"].get("work_order").is_none())
    );

    // The events went to the live stream (and so to sinks) too.
    let event = eventually("context event on the stream", || {
        let found = loop {
            match stream.try_recv() {
                Ok(batch) => {
                    if let Some(e) = batch.events.iter().find(|e| e.asset.as_str() == LINE_1) {
                        break Some(e.clone());
                    }
                }
                Err(_) => break None,
            }
        };
        async move { found }
    })
    .await;
    assert!(matches!(
        event.kind,
        EventKind::ContextChanged {
            field: ContextField::WorkOrder | ContextField::Batch,
            ..
        }
    ));
    app.stop().await;
}

#[tokio::test]
async fn delete_clears_listed_fields_or_all_and_reports_real_changes_only() {
    let app = start();
    let set = put_json(
        &context_uri(LINE_1),
        r#"{"work_order": "WO-1", "batch": "B-1", "operator": "jane"}"#,
    );
    assert_eq!(call(&app.router, set).await.status, 200);

    let clear_one = Request::delete(format!("{}?fields=work_order,batch", context_uri(LINE_1)))
        .body(Body::empty())
        .unwrap();
    let body = call(&app.router, clear_one).await.json();
    assert_eq!(body["own"], json!({"operator": "jane"}));
    let events = body["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    // Open mode: the anonymous admin.
    assert!(
        events
            .iter()
            .all(|e| e["new"].is_null() && e["by"] == "anonymous")
    );
    assert_eq!(
        events.iter().find(|e| e["field"] == "work_order").unwrap()["old"],
        "WO-1"
    );

    // `null` in a PUT clears as well.
    let body = call(
        &app.router,
        put_json(&context_uri(LINE_1), r#"{"operator": null}"#),
    )
    .await
    .json();
    assert_eq!(body["own"], json!({}));

    // Clearing what is already clear changes nothing and emits nothing.
    let clear_all = Request::delete(context_uri(LINE_1)).body(Body::empty()).unwrap();
    let body = call(&app.router, clear_all).await.json();
    assert_eq!(body["events"], json!([]));
    assert_eq!(body["effective"], json!({"shift": "A"}));

    // Clearing all on the area removes the inherited shift everywhere below.
    let clear_area = Request::delete(context_uri("acme/plant-a/packaging"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        call(&app.router, clear_area).await.json()["events"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let filler = get(&app.router, &context_uri(LINE_1_FILLER)).await.json();
    assert_eq!(filler["effective"], json!({}));
    app.stop().await;
}

#[tokio::test]
async fn invalid_context_requests_name_the_field_at_fault() {
    let app = start();
    let cases = [
        (r#"{"wrk_order": "WO-1"}"#, "unknown_field", Some("wrk_order")),
        (r#"{"work_order": 4711}"#, "invalid_value", Some("work_order")),
        (r#"{"batch": ""}"#, "invalid_value", Some("batch")),
        (r#"{"work_order": "WO-1""#, "invalid_json", None),
        (r#"["work_order"]"#, "invalid_json", None),
    ];
    for (body, code, field) in cases {
        let reply = call(&app.router, put_json(&context_uri(LINE_1), body)).await;
        assert_eq!(reply.status, 400, "{body}");
        assert_eq!(
            reply.error(),
            (code.to_owned(), field.map(str::to_owned)),
            "{body}"
        );
    }
    let long = format!(r#"{{"lot": "{}"}}"#, "L".repeat(257));
    let reply = call(&app.router, put_json(&context_uri(LINE_1), &long)).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error(), ("invalid_value".into(), Some("lot".into())));
    assert!(reply.text.contains("256"));

    let unknown = Request::delete(format!("{}?fields=batch,wrk_order", context_uri(LINE_1)))
        .body(Body::empty())
        .unwrap();
    let reply = call(&app.router, unknown).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error(), ("unknown_field".into(), Some("wrk_order".into())));

    // Who makes a change comes from authentication, never from a header.
    let named = Request::put(context_uri(LINE_1))
        .header("x-backplane-user", "mallory")
        .body(Body::from(r#"{"batch": "B-1"}"#))
        .unwrap();
    let reply = call(&app.router, named).await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.error(),
        ("header_not_accepted".into(), Some("X-Backplane-User".into()))
    );

    // Nothing of the rejected requests was applied.
    let context = get(&app.router, &context_uri(LINE_1)).await.json();
    assert_eq!(context["own"], json!({}));
    app.stop().await;
}

#[tokio::test]
async fn bodies_over_the_limit_get_413_in_the_error_shape() {
    let app = start_with(
        CONFIG,
        ApiOptions {
            token: None,
            max_body_bytes: 1024,
            ..ApiOptions::default()
        },
    );
    let body = format!(r#"{{"work_order": "WO-1", "padding": "{}"}}"#, "x".repeat(4096));
    let reply = call(&app.router, put_json(&context_uri(LINE_1), &body)).await;
    assert_eq!(reply.status, 413);
    assert_eq!(reply.error().0, "body_too_large");
    assert!(reply.text.contains("1024 bytes"), "{}", reply.text);

    // Also when the client does not announce the length.
    let chunks = futures::stream::iter((0..8).map(|_| Ok::<_, std::io::Error>("x".repeat(512))));
    let streamed = Request::put(context_uri(LINE_1))
        .body(Body::from_stream(chunks))
        .unwrap();
    let reply = call(&app.router, streamed).await;
    assert_eq!(reply.status, 413);
    assert_eq!(reply.error().0, "body_too_large");
    app.stop().await;
}

#[tokio::test]
async fn changes_need_the_bearer_token_when_one_is_configured() {
    let app = start_with(
        CONFIG,
        ApiOptions {
            token: Some("s3cret-token".into()),
            max_body_bytes: 65536,
            ..ApiOptions::default()
        },
    );
    let body = r#"{"work_order": "WO-9"}"#;

    let reply = call(&app.router, put_json(&context_uri(LINE_1), body)).await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.error().0, "unauthorized");
    assert!(
        reply.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );

    let mut wrong = put_json(&context_uri(LINE_1), body);
    wrong
        .headers_mut()
        .insert("authorization", "Bearer s3cret-tokem".parse().unwrap());
    assert_eq!(call(&app.router, wrong).await.status, 401);

    let mut empty = Request::delete(context_uri(LINE_1)).body(Body::empty()).unwrap();
    empty
        .headers_mut()
        .insert("authorization", "Bearer ".parse().unwrap());
    assert_eq!(call(&app.router, empty).await.status, 401);

    let read = Request::get(context_uri(LINE_1))
        .header("authorization", "Bearer s3cret-token")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        call(&app.router, read).await.json()["own"],
        json!({}),
        "nothing applied"
    );

    // The scheme is case-insensitive.
    let mut right = put_json(&context_uri(LINE_1), body);
    right
        .headers_mut()
        .insert("authorization", "bearer s3cret-token".parse().unwrap());
    let reply = call(&app.router, right).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["own"]["work_order"], "WO-9");

    // Reads need it too, and the token is an admin named `token`.
    assert_eq!(get(&app.router, "/api/v1/assets").await.status, 401);
    let read = Request::get("/api/v1/assets")
        .header("authorization", "Bearer s3cret-token")
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&app.router, read).await.status, 200);
    assert_eq!(
        reply.json()["events"][0]["by"],
        "token",
        "attributed to the token"
    );
    app.stop().await;
}

#[tokio::test]
async fn changes_after_engine_shutdown_get_503() {
    let app = start();
    let router = app.router.clone();
    app.engine.shutdown().await;
    let reply = call(&router, put_json(&context_uri(LINE_1), r#"{"batch": "B-2"}"#)).await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.error().0, "engine_stopped");
    // Reads still answer from the last state.
    assert_eq!(get(&router, "/api/v1/assets").await.status, 200);
}
