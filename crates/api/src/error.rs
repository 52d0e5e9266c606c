//! The one error shape of the API: `{"error": {"code", "message", "field"?}}`, and for a
//! request with several bad fields at once (an operator entry) also `"errors": [{"field",
//! "message"}, ...]` beside it, naming every one.
//!
//! Every failure, including axum's own rejections (bad JSON, oversized bodies, unknown
//! routes), is turned into an [`ApiError`] here, so clients parse one shape and can show
//! `message` to a person and switch on `code` in code.

use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error response. `code` is a stable snake_case identifier; `message` is for people.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// The request field (body key, query parameter, header) the error is about.
    pub field: Option<String>,
    /// Every bad field, when a request has several (operator entries); empty otherwise.
    pub errors: Vec<FieldProblem>,
    /// Seconds for `Retry-After` (429).
    pub retry_after: Option<u64>,
}

/// One bad field of a request that has several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct FieldProblem {
    pub field: String,
    pub message: String,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
    #[serde(skip_serializing_if = "<[FieldProblem]>::is_empty")]
    errors: &'a [FieldProblem],
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            errors: Vec::new(),
            retry_after: None,
        }
    }

    /// The same error telling the client how many seconds to wait.
    pub fn with_retry_after(mut self, seconds: u64) -> ApiError {
        self.retry_after = Some(seconds);
        self
    }

    /// The same error listing every bad field of the request.
    pub fn with_errors(mut self, errors: Vec<FieldProblem>) -> ApiError {
        self.errors = errors;
        self
    }

    pub fn with_field(mut self, field: impl Into<String>) -> ApiError {
        self.field = Some(field.into());
        self
    }

    /// The same error under a more specific stable code.
    pub fn with_code(mut self, code: &'static str) -> ApiError {
        self.code = code;
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn unknown_asset(path: &str) -> ApiError {
        ApiError::not_found(format!("no asset `{path}`"))
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn engine_stopped() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "engine_stopped",
            "the engine is shutting down",
        )
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// A body that could not be read: larger than `limit` (413) or cut off.
    pub fn from_body_rejection(rejection: &BytesRejection, limit: usize) -> ApiError {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the body is larger than the limit of {limit} bytes (`api.max_body_bytes`)"),
            )
        } else {
            ApiError::new(rejection.status(), "invalid_body", rejection.body_text())
        }
    }

    pub fn from_path_rejection(rejection: &PathRejection) -> ApiError {
        ApiError::bad_request("invalid_path", rejection.body_text())
    }

    pub fn from_query_rejection(rejection: &QueryRejection) -> ApiError {
        ApiError::bad_request("invalid_query", rejection.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Inner {
                code: self.code,
                message: &self.message,
                field: self.field.as_deref(),
            },
            errors: &self.errors,
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"backplane\""),
            );
        }
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// Fallback for paths no route matches.
pub(crate) async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!(
        "no endpoint {method} {}; see /api/v1/openapi.json",
        uri.path()
    ))
}

/// Fallback for a known path called with a method it does not support.
pub(crate) async fn wrong_method(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} does not support {method}; see /api/v1/openapi.json",
            uri.path()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn errors_render_code_message_and_field() {
        let response = ApiError::bad_request("unknown_field", "no such field")
            .with_field("wrk_order")
            .into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let bytes = axum::body::to_bytes(response.into_body(), 4096).await.unwrap();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"error": {"code": "unknown_field", "message": "no such field", "field": "wrk_order"}})
        );
    }

    #[tokio::test]
    async fn errors_with_several_bad_fields_list_each_beside_the_error() {
        let problem = |field: &str, message: &str| FieldProblem {
            field: field.into(),
            message: message.into(),
        };
        let response = ApiError::bad_request("invalid_entry", "2 fields are wrong")
            .with_errors(vec![problem("fat", "required"), problem("colour", "unknown")])
            .into_response();
        let bytes = axum::body::to_bytes(response.into_body(), 4096).await.unwrap();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "error": {"code": "invalid_entry", "message": "2 fields are wrong"},
                "errors": [
                    {"field": "fat", "message": "required"},
                    {"field": "colour", "message": "unknown"}
                ]
            })
        );
    }

    #[test]
    fn unauthorized_responses_ask_for_a_bearer_token() {
        let response = ApiError::unauthorized("token required").into_response();
        let challenge = response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .unwrap()
            .to_str()
            .unwrap();
        assert!(challenge.starts_with("Bearer"));
    }
}
