//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document, written by hand in `openapi.json`
//! next to this file. Hand-written because the document is a contract to read and review,
//! not a by-product; the tests below keep it in step with the router.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

pub(crate) const DOCUMENT: &str = include_str!("openapi.json");

pub(crate) async fn document() -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        DOCUMENT,
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
