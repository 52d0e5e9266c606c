//! `POST /api/v1/writes`: write one engineering value to a machine through the write gate
//! (`docs/writes.md`). The caller is the [`Actor`] the authentication guard established
//! (in open mode the anonymous identity, which the gate refuses). Every attempt, refused or
//! not, is in the audit trail.
//!
//! The body is validated by hand so every error names its field, as in `context.rs`.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use backplane_engine::{Failure, MachineWrite, Rule, WriteReport, WriteStatus};
use backplane_model::Value;
use serde::Serialize;
use serde_json::Value as Json;

use crate::AppState;
use crate::actor::Actor;
use crate::error::ApiError;

/// Longest string value accepted; a device string register is far shorter.
const MAX_STRING_VALUE: usize = 1024;

/// `POST /api/v1/writes`.
pub(crate) async fn write(
    State(state): State<AppState>,
    actor: Actor,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|r| ApiError::from_body_rejection(&r, state.max_body_bytes))?;
    let request = parse(&body)?;
    let report = state
        .engine
        .write(MachineWrite {
            tag: request.tag,
            value: request.value,
            dry_run: request.dry_run,
            who: actor.identity,
            from: actor.from,
        })
        .await;
    respond(&report)
}

struct Request {
    tag: String,
    value: Value,
    dry_run: bool,
}

fn parse(body: &[u8]) -> Result<Request, ApiError> {
    let json: Json = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("the body is not JSON: {e}")))?;
    let Json::Object(object) = json else {
        return Err(ApiError::bad_request(
            "invalid_json",
            "the body must be an object: {\"tag\": \"asset/attribute\", \"value\": ...}",
        ));
    };
    for key in object.keys() {
        if !["tag", "asset", "attribute", "value", "dry_run"].contains(&key.as_str()) {
            return Err(ApiError::bad_request(
                "unknown_field",
                format!("unknown field `{key}`; fields are tag (or asset and attribute), value, dry_run"),
            )
            .with_field(key.clone()));
        }
    }
    let text = |key: &str| -> Result<Option<&str>, ApiError> {
        match object.get(key) {
            None => Ok(None),
            Some(Json::String(s)) if !s.is_empty() => Ok(Some(s.as_str())),
            Some(_) => Err(ApiError::bad_request(
                "invalid_value",
                format!("`{key}` must be a non-empty string"),
            )
            .with_field(key)),
        }
    };
    let tag = match (text("tag")?, text("asset")?, text("attribute")?) {
        (Some(tag), None, None) => tag.trim_matches('/').to_owned(),
        (None, Some(asset), Some(attribute)) => format!("{}/{attribute}", asset.trim_matches('/')),
        (None, None, None) => {
            return Err(ApiError::bad_request(
                "missing_field",
                "name the tag as `tag` (\"asset/attribute\"), or as `asset` and `attribute`",
            )
            .with_field("tag"));
        }
        _ => {
            return Err(ApiError::bad_request(
                "invalid_value",
                "name the tag as `tag` (\"asset/attribute\"), or as `asset` and `attribute`, not both",
            )
            .with_field("tag"));
        }
    };
    let value = match object.get("value") {
        None => return Err(ApiError::bad_request("missing_field", "`value` is missing").with_field("value")),
        Some(v) => value(v).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_value",
                format!("`value` must be a number, a bool or a string of at most {MAX_STRING_VALUE} bytes"),
            )
            .with_field("value")
        })?,
    };
    let dry_run = match object.get("dry_run") {
        None => false,
        Some(Json::Bool(b)) => *b,
        Some(_) => {
            return Err(
                ApiError::bad_request("invalid_value", "`dry_run` must be true or false")
                    .with_field("dry_run"),
            );
        }
    };
    Ok(Request { tag, value, dry_run })
}

fn value(json: &Json) -> Option<Value> {
    match json {
        Json::Bool(b) => Some(Value::Bool(*b)),
        Json::String(s) if s.len() <= MAX_STRING_VALUE => Some(Value::String(s.as_str().into())),
        Json::Number(n) => n
            .as_u64()
            .map(Value::UInt)
            .or_else(|| n.as_i64().map(Value::Int))
            .or_else(|| n.as_f64().map(Value::Float)),
        _ => None,
    }
}

/// The HTTP status of an outcome: see `docs/api.md`, "Machine writes".
fn status(report: &WriteReport) -> StatusCode {
    match &report.status {
        WriteStatus::Done | WriteStatus::DryRun => StatusCode::OK,
        WriteStatus::Refused { rule, .. } => match rule {
            Rule::UnknownTag => StatusCode::NOT_FOUND,
            Rule::Anonymous | Rule::NotAllowlisted | Rule::Role => StatusCode::FORBIDDEN,
            Rule::Type | Rule::Range => StatusCode::BAD_REQUEST,
            Rule::MaxStep | Rule::MinInterval | Rule::Interlock | Rule::NoInverse => StatusCode::CONFLICT,
            Rule::Audit => StatusCode::SERVICE_UNAVAILABLE,
        },
        WriteStatus::Failed { failure, .. } => match failure {
            Failure::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Failure::Device | Failure::ReadBack => StatusCode::BAD_GATEWAY,
        },
    }
}

#[derive(Serialize)]
struct Refusal<'a> {
    error: ErrorInner<'a>,
    write: &'a WriteReport,
}

#[derive(Serialize)]
struct ErrorInner<'a> {
    code: &'a str,
    message: &'a str,
}

/// 200 with the report; otherwise the API's error shape with the report beside it.
fn respond(report: &WriteReport) -> Result<Response, ApiError> {
    let status = status(report);
    let body = match &report.status {
        WriteStatus::Done | WriteStatus::DryRun => serde_json::to_vec(report),
        WriteStatus::Refused { rule, reason } => serde_json::to_vec(&Refusal {
            error: ErrorInner {
                code: if *rule == Rule::UnknownTag {
                    "not_found"
                } else {
                    "write_refused"
                },
                message: reason,
            },
            write: report,
        }),
        WriteStatus::Failed { reason, .. } => serde_json::to_vec(&Refusal {
            error: ErrorInner {
                code: "write_failed",
                message: reason,
            },
            write: report,
        }),
    }
    .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok((
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_name_the_tag_either_way_and_refuse_the_rest_by_field() {
        let r = parse(br#"{"tag": "a/b/speed", "value": 4.5, "dry_run": true}"#).unwrap();
        assert_eq!(
            (r.tag.as_str(), r.value, r.dry_run),
            ("a/b/speed", Value::Float(4.5), true)
        );
        let r = parse(br#"{"asset": "a/b/", "attribute": "speed", "value": 7}"#).unwrap();
        assert_eq!(
            (r.tag.as_str(), r.value, r.dry_run),
            ("a/b/speed", Value::UInt(7), false)
        );
        assert_eq!(
            parse(br#"{"tag": "t", "value": -2}"#).unwrap().value,
            Value::Int(-2)
        );
        let field = |body: &[u8]| parse(body).err().and_then(|e| e.field);
        assert_eq!(field(br#"{"tag": "t"}"#).as_deref(), Some("value"));
        assert_eq!(field(br#"{"tag": "t", "value": null}"#).as_deref(), Some("value"));
        assert_eq!(field(br#"{"tag": "t", "value": [1]}"#).as_deref(), Some("value"));
        assert_eq!(
            field(br#"{"tag": "t", "asset": "a", "value": 1}"#).as_deref(),
            Some("tag")
        );
        assert_eq!(
            field(br#"{"tag": "t", "value": 1, "dry_run": "yes"}"#).as_deref(),
            Some("dry_run")
        );
        assert_eq!(
            field(br#"{"tag": "t", "value": 1, "who": "admin"}"#).as_deref(),
            Some("who")
        );
        assert!(parse(b"[]").is_err());
    }
}
