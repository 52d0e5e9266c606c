//! `GET /api/v1/admin/plan` and `POST /api/v1/admin/reload`: what the running gateway's
//! configuration file would change, and reloading it, as SIGHUP does. The program running
//! the API decides and applies (it owns the engine); the API hands it the call.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use crate::AppState;
use crate::actor::Actor;
use crate::error::ApiError;
use backplane_security::Outcome;

/// What a reload (or its plan) found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReloadResult {
    /// Applied: the new configuration runs.
    Applied,
    /// Only a plan was asked for, and these changes would be applied.
    Changes,
    /// The file says what runs: nothing to do.
    Unchanged,
    /// The file has errors; the running configuration stays.
    Invalid,
    /// The file changes what takes a restart (`[gateway]`, `[api]`); the running
    /// configuration stays.
    Refused,
}

/// The answer: the result, and one line per change (`+ sink audit`) or per error.
#[derive(Clone, Debug, Serialize)]
pub struct ReloadReport {
    pub result: ReloadResult,
    pub changes: Vec<String>,
    /// What the reload does (or would do) to each source and sink: kept running, restarted
    /// and why, started, stopped.
    pub components: Vec<String>,
    pub errors: Vec<String>,
    /// The configuration version running after the call.
    pub config_version: String,
}

/// One call from the API to the program that owns the engine.
#[derive(Debug)]
pub struct ReloadCall {
    /// `false`: only say what would change.
    pub apply: bool,
    pub reply: oneshot::Sender<ReloadReport>,
}

/// Where the API sends reload calls; `None` in [`crate::ApiOptions`] when the gateway's
/// configuration is not a file (the demo).
pub type Reloader = mpsc::Sender<ReloadCall>;

async fn call(state: &AppState, apply: bool) -> Result<ReloadReport, ApiError> {
    let Some(reloader) = &state.reload else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "reload_unavailable",
            "this gateway's configuration is built in (the demo), not a file: there is nothing to reload",
        ));
    };
    let (reply, answer) = oneshot::channel();
    let stopped = || {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "engine_stopped",
            "the gateway is shutting down",
        )
    };
    reloader
        .send(ReloadCall { apply, reply })
        .await
        .map_err(|_| stopped())?;
    answer.await.map_err(|_| stopped())
}

fn respond(report: &ReloadReport) -> Response {
    let status = match report.result {
        ReloadResult::Invalid | ReloadResult::Refused => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::OK,
    };
    (status, Json(report)).into_response()
}

/// `GET /api/v1/admin/plan`: what a reload would change now.
pub(crate) async fn plan(State(state): State<AppState>) -> Result<Response, ApiError> {
    Ok(respond(&call(&state, false).await?))
}

/// `POST /api/v1/admin/reload`: re-reads the configuration file and applies it.
pub(crate) async fn reload(State(state): State<AppState>, actor: Actor) -> Result<Response, ApiError> {
    // In a task of its own, so a caller who hangs up cannot skip the audit record.
    let task = tokio::spawn(async move {
        let result = call(&state, true).await;
        let outcome = match &result {
            Ok(r) if matches!(r.result, ReloadResult::Applied | ReloadResult::Unchanged) => Outcome::Done,
            Ok(r) => Outcome::Refused(r.errors.join("; ")),
            Err(e) => Outcome::Refused(format!("{}: {}", e.code, e.message)),
        };
        let details = result
            .as_ref()
            .ok()
            .map(|r| json!({ "result": r.result, "changes": r.changes, "config_version": r.config_version }));
        actor.record(&state, "config.reload", "", None, details, outcome);
        result
    });
    let report = task
        .await
        .map_err(|e| ApiError::internal(format!("the reload task failed: {e}")))??;
    Ok(respond(&report))
}
