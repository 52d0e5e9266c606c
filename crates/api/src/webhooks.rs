//! Webhook routes: `POST /api/v1/webhooks/{name}` hands a JSON document to the `http`
//! source called `name` in webhook mode, through the [`Inbound`] route its kind opened
//! (an engine service named by the source). The route's schema is checked before
//! anything is delivered: every bad field is named in `errors` (`invalid_entry`, as for
//! operator entries) and nothing is recorded. Authentication, the role (operator), the
//! rate limit and the API's body limit apply as to every endpoint; the route's own
//! `max_body_bytes` can only lower the limit.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use backplane_connector::{Inbound, InboundError};
use serde_json::json;

use crate::actor::Actor;
use crate::error::{ApiError, FieldProblem};
use crate::{AppState, json_response};

pub(crate) async fn post(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    actor: Actor,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Path(name) = path.map_err(|r| ApiError::from_path_rejection(&r))?;
    let route = state.engine.services().named::<Inbound>(&name).ok_or_else(|| {
        ApiError::not_found(format!(
            "no webhook `{name}`: no enabled http source of that name in webhook mode"
        ))
    })?;
    let body = body.map_err(|r| ApiError::from_body_rejection(&r, state.max_body_bytes))?;
    if body.len() > route.max_body_bytes() {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!(
                "the body is larger than webhook `{name}`'s limit of {} bytes (its source's `max_body_bytes`)",
                route.max_body_bytes()
            ),
        ));
    }
    match route.deliver(&body, &actor.name()).await {
        Ok(readings) => {
            let mut response = json_response(&json!({ "webhook": name, "readings": readings }))?;
            *response.status_mut() = StatusCode::ACCEPTED;
            Ok(response)
        }
        Err(InboundError::NotJson(message)) => Err(ApiError::bad_request("invalid_json", message)),
        Err(InboundError::Fields(fields)) => {
            let message = match fields.as_slice() {
                [one] => format!("nothing was recorded: {}", one.message),
                many => format!(
                    "nothing was recorded: {} problems, each listed in `errors`",
                    many.len()
                ),
            };
            let field = (fields.len() == 1).then(|| fields[0].field.clone());
            let problems = fields
                .into_iter()
                .map(|f| FieldProblem {
                    field: f.field,
                    message: f.message,
                })
                .collect();
            let error = ApiError::bad_request("invalid_entry", message).with_errors(problems);
            Err(match field {
                Some(field) => error.with_field(field),
                None => error,
            })
        }
        Err(e @ InboundError::Busy(_)) => {
            Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", e.to_string()).with_retry_after(5))
        }
        Err(InboundError::Refused(message)) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "engine_stopped",
            message,
        )),
    }
}
