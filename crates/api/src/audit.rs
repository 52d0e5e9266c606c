//! The audit trail through the API: a filtered, paged query, and the raw export an
//! auditor checks offline with `backplane audit verify`.
//!
//! The trail is the engine's `AuditLog` service (registered by the binary under
//! `AuditTrail::SERVICE`); without it both endpoints answer 404 `audit_not_configured`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use backplane_security::{AuditLog, AuditTrail, MAX_QUERY_RECORDS, Query};
use futures::StreamExt;

use crate::AppState;
use crate::error::ApiError;
use crate::history::{Params, invalid};

/// Records a query returns when `limit` is not given.
const DEFAULT_LIMIT: usize = 100;

fn trail(state: &AppState) -> Result<Arc<AuditLog>, ApiError> {
    state
        .engine
        .services()
        .named::<AuditLog>(AuditTrail::SERVICE)
        .ok_or_else(|| {
            ApiError::not_found(
                "this gateway keeps no audit trail (it runs embedded, without the binary's trail)",
            )
            .with_code("audit_not_configured")
        })
}

/// `GET /api/v1/audit`: records oldest first; `after` is the cursor of the next page.
pub(crate) async fn query(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let log = trail(&state)?;
    let p = Params::parse(
        raw,
        &[&["after", "since", "until", "who", "action", "target", "limit"]],
    )?;
    let number = |name: &str| -> Result<Option<u64>, ApiError> {
        p.get(name)
            .map(|t| {
                t.parse::<u64>()
                    .map_err(|_| invalid(name, format!("`{name}` must be a whole number, not `{t}`")))
            })
            .transpose()
    };
    let limit = number("limit")?.unwrap_or(DEFAULT_LIMIT as u64);
    if limit == 0 || limit > MAX_QUERY_RECORDS as u64 {
        return Err(invalid(
            "limit",
            format!(
                "`limit` is 1 to {MAX_QUERY_RECORDS} records per page; follow `last` with `after` for more"
            ),
        ));
    }
    let query = Query {
        after: number("after")?.unwrap_or(0),
        since: p.time("since")?,
        until: p.time("until")?,
        who: p.get("who").map(str::to_owned),
        action: p.get("action").map(str::to_owned),
        target: p.get("target").map(str::to_owned),
        limit: limit as usize,
    };
    let page = tokio::task::spawn_blocking(move || log.query(&query))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "audit_error", e))?;
    // The records go out exactly as stored, so each one still checks against its hash.
    let mut body = Vec::with_capacity(page.records.iter().map(|r| r.len() + 1).sum::<usize>() + 64);
    body.extend_from_slice(b"{\"records\":[");
    for (i, record) in page.records.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(record);
    }
    body.extend_from_slice(b"],\"last\":");
    body.extend_from_slice(
        page.last
            .map(|l| l.to_string())
            .unwrap_or_else(|| "null".into())
            .as_bytes(),
    );
    body.extend_from_slice(format!(",\"more\":{}}}", page.more).as_bytes());
    Ok((
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body,
    )
        .into_response())
}

/// `GET /api/v1/audit/export`: every file of the trail, in order, as one JSON-lines
/// stream (read file by file, never held in memory).
pub(crate) async fn export(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let log = trail(&state)?;
    Params::parse(raw, &[])?;
    let dir = log.dir().to_path_buf();
    let files = tokio::task::spawn_blocking(move || backplane_security::trail_files(&dir))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "audit_error", e.to_string()))?;
    let stream = futures::stream::iter(files).then(|path| async move {
        tokio::fs::File::open(path)
            .await
            .map(tokio_util::io::ReaderStream::new)
    });
    let body = stream
        .map(|opened| match opened {
            Ok(s) => s.left_stream(),
            Err(e) => futures::stream::once(async move { Err(e) }).right_stream(),
        })
        .flatten();
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-ndjson"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"audit.jsonl\""),
            ),
        ],
        Body::from_stream(body),
    )
        .into_response())
}
