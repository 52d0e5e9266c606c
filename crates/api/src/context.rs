//! Production context: read it, set fields, clear fields.
//!
//! Request bodies are validated by hand from `serde_json::Value` rather than through a
//! derived struct, so that every error names the field at fault in the `field` member of
//! the error (a serde message would bury it in prose).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use backplane_engine::payload::EventPayload;
use backplane_model::context::MAX_CONTEXT_VALUE_LEN;
use backplane_model::{Context, ContextField, ContextPatch, Event};
use serde::{Deserialize, Serialize};

use crate::actor::{Actor, outcome};
use crate::assets::{find_asset, path_param};
use crate::error::ApiError;
use crate::{AppState, json_response};

#[derive(Serialize)]
struct ContextView<'a> {
    path: &'a str,
    own: Context,
    effective: Arc<Context>,
    #[serde(skip_serializing_if = "Option::is_none")]
    events: Option<Vec<EventPayload<'a>>>,
}

/// `GET /api/v1/context/{path}`.
pub(crate) async fn get(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let path = path_param(path)?;
    let (index, node) = find_asset(state.engine.topology(), &path)?;
    let (own, effective) = state.engine.context(index);
    json_response(&ContextView {
        path: node.path.as_str(),
        own,
        effective,
        events: None,
    })
}

/// `PUT /api/v1/context/{path}`: a string sets a field, `null` clears it, fields not named
/// stay as they are.
pub(crate) async fn put(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    actor: Actor,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let path = path_param(path)?;
    let body = body.map_err(|r| ApiError::from_body_rejection(&r, state.max_body_bytes))?;
    let (index, _) = find_asset(state.engine.topology(), &path)?;
    let patch = parse_patch(&body)?;
    apply(&state, index, &patch, &actor, "context.set").await
}

#[derive(Debug, Deserialize)]
pub(crate) struct ClearQuery {
    fields: Option<String>,
}

/// `DELETE /api/v1/context/{path}[?fields=a,b]`: clears the named own fields, or all.
pub(crate) async fn delete(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    actor: Actor,
    query: Result<Query<ClearQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let path = path_param(path)?;
    let Query(query) = query.map_err(|r| ApiError::from_query_rejection(&r))?;
    let (index, _) = find_asset(state.engine.topology(), &path)?;
    let fields = match query.fields.as_deref() {
        None => ContextField::ALL.to_vec(),
        Some(list) => parse_field_list(list)?,
    };
    let patch = fields
        .into_iter()
        .fold(ContextPatch::default(), ContextPatch::clear);
    apply(&state, index, &patch, &actor, "context.clear").await
}

/// Applies `patch` for `actor` and audits it with the asset's own context before and after.
async fn apply(
    state: &AppState,
    index: usize,
    patch: &ContextPatch,
    actor: &Actor,
    action: &str,
) -> Result<Response, ApiError> {
    let target = state
        .engine
        .topology()
        .assets
        .get(index)
        .map(|node| node.path.as_str().to_owned())
        .unwrap_or_default();
    let old = serde_json::to_value(state.engine.context(index).0).ok();
    let result = state
        .engine
        .set_context(index, patch, Some(&actor.name()))
        .await
        .map_err(|_| ApiError::engine_stopped());
    let new = serde_json::to_value(state.engine.context(index).0).ok();
    actor.record(state, action, &target, old, new, outcome(&result));
    let events: Vec<Event> = result?;
    let topology = state.engine.topology();
    let node = topology
        .assets
        .get(index)
        .ok_or_else(|| ApiError::internal("asset vanished"))?;
    let (own, effective) = state.engine.context(index);
    json_response(&ContextView {
        path: node.path.as_str(),
        own,
        effective,
        events: Some(events.iter().map(EventPayload::new).collect()),
    })
}

/// Turns a PUT body into a patch, naming the first field at fault.
fn parse_patch(body: &[u8]) -> Result<ContextPatch, ApiError> {
    let json: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {e}")))?;
    let serde_json::Value::Object(object) = json else {
        return Err(ApiError::bad_request(
            "invalid_json",
            "the body must be a JSON object of context fields, e.g. {\"work_order\": \"WO-1\"}",
        ));
    };
    let mut patch = ContextPatch::default();
    for (key, value) in &object {
        let field = parse_field(key)?;
        patch = match value {
            serde_json::Value::Null => patch.clear(field),
            serde_json::Value::String(text) => patch.set(field, check_value(key, text)?),
            other => {
                return Err(ApiError::bad_request(
                    "invalid_value",
                    format!(
                        "`{key}` must be a string (to set it) or null (to clear it), found {}",
                        json_type(other)
                    ),
                )
                .with_field(key.as_str()));
            }
        };
    }
    Ok(patch)
}

fn parse_field(name: &str) -> Result<ContextField, ApiError> {
    ContextField::parse(name).ok_or_else(|| {
        let known: Vec<&str> = ContextField::ALL.iter().map(|f| f.name()).collect();
        ApiError::bad_request(
            "unknown_field",
            format!(
                "`{name}` is not a context field; the fields are: {}",
                known.join(", ")
            ),
        )
        .with_field(name)
    })
}

fn parse_field_list(list: &str) -> Result<Vec<ContextField>, ApiError> {
    let names: Vec<&str> = crate::history::list_items(list).collect();
    if names.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_value",
            "`fields` is empty; leave it out to clear every field, or list fields like `work_order,batch`",
        )
        .with_field("fields"));
    }
    names.into_iter().map(parse_field).collect()
}

/// Context values are ids of MES/ERP objects: one line of text, not empty, not huge.
fn check_value<'v>(field: &str, text: &'v str) -> Result<&'v str, ApiError> {
    let invalid = |why: String| ApiError::bad_request("invalid_value", why).with_field(field);
    if text.trim().is_empty() {
        return Err(invalid(format!("`{field}` is empty; send null to clear it")));
    }
    let len = text.chars().count();
    if len > MAX_CONTEXT_VALUE_LEN {
        return Err(invalid(format!(
            "`{field}` is {len} characters long; at most {MAX_CONTEXT_VALUE_LEN} are allowed"
        )));
    }
    if text.chars().any(char::is_control) {
        return Err(invalid(format!(
            "`{field}` contains control characters (e.g. a line break)"
        )));
    }
    Ok(text)
}

fn json_type(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(result: Result<ContextPatch, ApiError>) -> (&'static str, Option<String>) {
        let e = result.unwrap_err();
        (e.code, e.field)
    }

    #[test]
    fn strings_set_fields_and_nulls_clear_them() {
        let patch = parse_patch(br#"{"work_order": "WO-1", "batch": null}"#).unwrap();
        assert_eq!(
            patch,
            ContextPatch::default()
                .clear(ContextField::Batch)
                .set(ContextField::WorkOrder, "WO-1")
        );
    }

    #[test]
    fn errors_name_the_field_at_fault() {
        assert_eq!(
            field_of(parse_patch(br#"{"wrk_order": "x"}"#)),
            ("unknown_field", Some("wrk_order".into()))
        );
        assert_eq!(
            field_of(parse_patch(br#"{"batch": 7}"#)),
            ("invalid_value", Some("batch".into()))
        );
        assert_eq!(
            field_of(parse_patch(br#"{"lot": ""}"#)),
            ("invalid_value", Some("lot".into()))
        );
        assert_eq!(
            field_of(parse_patch(br#"{"lot": "a\nb"}"#)),
            ("invalid_value", Some("lot".into()))
        );
        let long = format!(r#"{{"product": "{}"}}"#, "p".repeat(MAX_CONTEXT_VALUE_LEN + 1));
        assert_eq!(
            field_of(parse_patch(long.as_bytes())),
            ("invalid_value", Some("product".into()))
        );
    }

    #[test]
    fn a_value_of_exactly_the_limit_is_accepted() {
        let body = format!(r#"{{"product": "{}"}}"#, "é".repeat(MAX_CONTEXT_VALUE_LEN));
        assert!(parse_patch(body.as_bytes()).is_ok());
    }

    #[test]
    fn bodies_that_are_not_json_objects_are_invalid_json() {
        assert_eq!(field_of(parse_patch(b"{")), ("invalid_json", None));
        assert_eq!(field_of(parse_patch(b"[1]")), ("invalid_json", None));
    }

    #[test]
    fn clear_lists_name_unknown_fields() {
        assert_eq!(
            parse_field_list("work_order, batch").unwrap(),
            vec![ContextField::WorkOrder, ContextField::Batch]
        );
        let e = parse_field_list("work_order,bach").unwrap_err();
        assert_eq!((e.code, e.field.as_deref()), ("unknown_field", Some("bach")));
        assert_eq!(
            parse_field_list(",").unwrap_err().field.as_deref(),
            Some("fields")
        );
    }
}
