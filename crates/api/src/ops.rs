//! What operators and monitoring read: health, metrics, and the index of links.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::ApiError;
use crate::{AppState, endpoints, json_response};

/// The content type of the OpenMetrics text format, which Prometheus negotiates.
pub(crate) const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `GET /api/v1/health`. Always 200: `status` says `ok` or `degraded` for people and
/// monitoring. It is not a liveness signal: answering 503 when one PLC is switched off would
/// make an orchestrator restart the whole gateway and cut every other machine's data too.
pub(crate) async fn health(State(state): State<AppState>) -> Result<Response, ApiError> {
    json_response(&state.engine.health())
}

/// `GET /metrics`: Prometheus / OpenMetrics text.
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let mut text = state.engine.metrics_text();
    // The server's own counter, before the terminating `# EOF`.
    let end = text.rfind("# EOF").unwrap_or(text.len());
    text.truncate(end);
    text.push_str(&format!(
        "# HELP backplane_api_connections_refused Connections closed at accept because the API's connection cap was reached.\n\
         # TYPE backplane_api_connections_refused counter\n\
         backplane_api_connections_refused_total {}\n\
         # HELP backplane_api_rate_limited Requests refused with 429 by the per-client rate limit.\n\
         # TYPE backplane_api_rate_limited counter\n\
         backplane_api_rate_limited_total {}\n\
         # HELP backplane_api_tls_handshake_failures TLS handshakes that failed or timed out (no or a wrong client certificate, an untrusting client, plain HTTP on the HTTPS port).\n\
         # TYPE backplane_api_tls_handshake_failures counter\n\
         backplane_api_tls_handshake_failures_total {}\n# EOF\n",
        crate::refused_connections(),
        state.auth.limiter.refused(),
        crate::tls_handshake_failures()
    ));
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(OPENMETRICS))],
        text,
    )
        .into_response()
}

#[derive(Serialize)]
struct Index {
    name: &'static str,
    version: &'static str,
    openapi: &'static str,
    docs: &'static str,
    endpoints: Vec<Link>,
}

#[derive(Serialize)]
struct Link {
    method: &'static str,
    path: String,
}

/// `GET /api/v1`: what is here, for a person exploring with curl.
pub(crate) async fn index() -> Result<Response, ApiError> {
    json_response(&Index {
        name: "backplane",
        version: env!("CARGO_PKG_VERSION"),
        openapi: "/api/v1/openapi.json",
        docs: "docs/api.md",
        endpoints: endpoints()
            .iter()
            .map(|e| Link {
                method: e.verb.name(),
                path: e.openapi_path(),
            })
            .collect(),
    })
}
