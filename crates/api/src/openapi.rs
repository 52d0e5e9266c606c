//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document, written by hand in `openapi.json`
//! next to this file. Hand-written because the document is a contract to read and review,
//! not a by-product; the tests below keep it in step with the router.

use std::sync::LazyLock;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::AppState;

pub(crate) const DOCUMENT: &str = include_str!("openapi.json");

/// The document an open gateway (no credential configured) serves: without the top-level
/// `security` requirement, which such a gateway does not enforce, so clients and test tools
/// are not told to authenticate where nothing checks it.
static OPEN_DOCUMENT: LazyLock<String> = LazyLock::new(|| with_security(DOCUMENT, None));

/// The document of a gateway with tokens but no user with a password: a bearer token is
/// the only way in (HTTP Basic and sessions need a password), so only it is offered.
static TOKEN_ONLY_DOCUMENT: LazyLock<String> =
    LazyLock::new(|| with_security(DOCUMENT, Some(serde_json::json!([{ "bearer": [] }]))));

/// `document` with its top-level `security` replaced (None: removed) and the description
/// saying so.
fn with_security(document: &str, security: Option<serde_json::Value>) -> String {
    let Ok(mut doc) = serde_json::from_str::<serde_json::Value>(document) else {
        return document.to_owned();
    };
    let note = match &security {
        None => "This gateway runs open: no credential is configured and nothing is authenticated.",
        Some(_) => {
            "This gateway has tokens and no users with a password: only `Authorization: Bearer` authenticates."
        }
    };
    if let Some(root) = doc.as_object_mut() {
        match security {
            None => root.remove("security"),
            Some(security) => root.insert("security".to_owned(), security),
        };
    }
    if let Some(text) = doc.pointer_mut("/info/description")
        && let Some(description) = text.as_str()
    {
        *text = format!("{description} {note}").into();
    }
    serde_json::to_string(&doc).unwrap_or_else(|_| document.to_owned())
}

pub(crate) async fn document(State(state): State<AppState>) -> Response {
    let body: &'static str = if state.auth.open() {
        OPEN_DOCUMENT.as_str()
    } else if state.auth.users.users().next().is_none() {
        TOKEN_ONLY_DOCUMENT.as_str()
    } else {
        DOCUMENT
    };
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::endpoints;

    fn document_json() -> serde_json::Value {
        serde_json::from_str(DOCUMENT).unwrap()
    }

    #[test]
    fn document_is_openapi_3_1_json() {
        let doc = document_json();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn served_documents_differ_from_the_written_one_only_in_security() {
        let doc = document_json();
        assert_eq!(doc["security"].as_array().unwrap().len(), 3);
        let open: serde_json::Value = serde_json::from_str(&with_security(DOCUMENT, None)).unwrap();
        assert!(open.get("security").is_none());
        let token: serde_json::Value = serde_json::from_str(&TOKEN_ONLY_DOCUMENT).unwrap();
        assert_eq!(token["security"], serde_json::json!([{ "bearer": [] }]));
        for served in [open, token] {
            assert_eq!(served["paths"], doc["paths"]);
            assert_eq!(served["components"], doc["components"]);
        }
    }

    #[test]
    fn every_route_is_documented_and_every_documented_path_is_routed() {
        let doc = document_json();
        let documented: BTreeSet<(String, String)> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .unwrap()
                    .keys()
                    .filter(|k| {
                        ["get", "put", "post", "delete", "patch", "head", "options"].contains(&k.as_str())
                    })
                    .map(move |method| (method.to_uppercase(), path.clone()))
            })
            .collect();
        let routed: BTreeSet<(String, String)> = endpoints()
            .iter()
            .map(|e| (e.verb.name().to_owned(), e.openapi_path()))
            .collect();
        assert_eq!(routed, documented);
    }

    #[test]
    fn every_operation_names_the_role_the_router_checks() {
        let doc = document_json();
        for e in endpoints() {
            let op = &doc["paths"][e.openapi_path()][e.verb.name().to_lowercase()];
            let expected = e.role.map_or("none", |r| r.as_str());
            assert_eq!(
                op["x-required-role"].as_str(),
                Some(expected),
                "{} {}",
                e.verb.name(),
                e.path
            );
        }
    }

    #[test]
    fn every_schema_reference_resolves() {
        let doc = document_json();
        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        assert!(!refs.is_empty());
        for r in refs {
            let pointer = r.strip_prefix('#').unwrap();
            assert!(doc.pointer(pointer).is_some(), "dangling $ref {r}");
        }
    }

    fn collect_refs(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("$ref", serde_json::Value::String(r)) => out.push(r.clone()),
                        _ => collect_refs(v, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_operation_documents_its_error_responses() {
        let doc = document_json();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let Some(responses) = op.get("responses").and_then(|r| r.as_object()) else {
                    continue;
                };
                assert!(
                    responses.keys().any(|c| c.starts_with('2') || c == "101"),
                    "{method} {path}: no success"
                );
                if path.contains('{') {
                    assert!(responses.contains_key("404"), "{method} {path}: no 404");
                }
            }
        }
    }
}
