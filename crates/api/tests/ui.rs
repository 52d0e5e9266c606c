//! The web UI's files as the API serves them: public, self-only Content-Security-Policy,
//! revalidated with ETags, nothing outside the UI reachable.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use backplane_api::ApiOptions;
use common::*;

#[tokio::test]
async fn the_root_serves_the_ui_with_a_self_only_content_security_policy() {
    let app = start();
    let index = get(&app.router, "/").await;
    assert_eq!(index.status, StatusCode::OK);
    assert_eq!(index.headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    assert!(index.text.contains(r#"src="/ui/app.js""#), "{}", index.text);
    let csp = index.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} in {csp}");
    }
    assert_eq!(index.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    let app_js = get(&app.router, "/ui/app.js").await;
    assert_eq!(app_js.status, StatusCode::OK);
    assert_eq!(
        app_js.headers[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_unchanged_file_is_revalidated_with_its_etag() {
    let app = start();
    let first = get(&app.router, "/ui/style.css").await;
    let etag = first.headers[header::ETAG].to_str().unwrap().to_owned();
    assert_eq!(first.headers[header::CACHE_CONTROL], "no-cache");
    let again = call(
        &app.router,
        Request::get("/ui/style.css")
            .header(header::IF_NONE_MATCH, &etag)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert!(again.text.is_empty());
    let other = call(
        &app.router,
        Request::get("/ui/style.css")
            .header(header::IF_NONE_MATCH, "\"0000\"")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(other.status, StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn paths_outside_the_ui_and_unknown_files_are_404() {
    let app = start();
    for uri in [
        "/ui/nope.js",
        "/ui/../Cargo.toml",
        "/ui/%2e%2e/Cargo.toml",
        "/ui/.hidden",
        "/ui/lib//dom.js",
    ] {
        let reply = get(&app.router, uri).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{uri}: {}", reply.text);
        assert_eq!(reply.error().0, "not_found", "{uri}");
    }
    app.stop().await;
}

#[tokio::test]
async fn the_ui_needs_no_credentials_while_the_data_does() {
    let app = start_with(
        CONFIG,
        ApiOptions {
            token: Some("a-token-of-sufficient-length-1234".to_owned()),
            ..ApiOptions::default()
        },
    );
    assert_eq!(get(&app.router, "/").await.status, StatusCode::OK);
    assert_eq!(get(&app.router, "/ui/app.js").await.status, StatusCode::OK);
    assert_eq!(
        get(&app.router, "/api/v1/assets").await.status,
        StatusCode::UNAUTHORIZED
    );
    app.stop().await;
}
