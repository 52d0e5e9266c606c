//! The web UI's files (`backplane_ui`): `/` is the UI's `index.html`, everything else is
//! under `/ui/`. They are public (they hold no data; every call they make is authenticated
//! like any other) and served with a Content-Security-Policy that lets a page load and
//! connect to this server only, so nothing in the UI can reach another host.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::error::ApiError;

/// Only this server: scripts, styles, images (and `data:` images for exports), fetch,
/// WebSocket and SSE. No inline script, no framing, no plugins.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
                   frame-ancestors 'none'; form-action 'self'";

/// `GET /`.
pub(crate) async fn index(State(state): State<AppState>, headers: HeaderMap) -> Response {
    serve(&state, "index.html", &headers)
}

/// `GET /ui/{*path}`.
pub(crate) async fn file(
    State(state): State<AppState>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Response {
    serve(&state, &path, &headers)
}

fn serve(state: &AppState, path: &str, request: &HeaderMap) -> Response {
    let Some(asset) = state.ui.get(path) else {
        return ApiError::not_found(format!("the UI has no file `{path}`")).into_response();
    };
    let etag = HeaderValue::from_str(&asset.etag).unwrap_or(HeaderValue::from_static("\"\""));
    let mut headers = HeaderMap::new();
    headers.insert(header::ETAG, etag.clone());
    // Revalidated on every load: a gateway upgraded in place never serves yesterday's
    // script beside today's API, and a 304 costs one round trip on loopback or the LAN.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if path == "sw.js" {
        // The service worker lives under /ui/ but keeps the copy of `/` too.
        headers.insert("service-worker-allowed", HeaderValue::from_static("/"));
    }
    if request.get_all(header::IF_NONE_MATCH).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim() == asset.etag))
    }) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    (headers, asset.bytes.into_owned()).into_response()
}
