//! Strict query strings: a parameter the OpenAPI document does not declare for the
//! operation is a 400 naming it, before any handler runs. A misspelt `fields` on a DELETE
//! must not silently clear everything, and `prefx=` must not silently mean "all".
//!
//! The allowed names come from `openapi.json` itself, so the document and the server
//! cannot disagree about which parameters exist.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Query parameter names per (method, OpenAPI path).
#[derive(Debug, Default)]
pub(crate) struct Declared(HashMap<(String, String), Arc<HashSet<String>>>);

impl Declared {
    pub fn from_document(document: &str) -> Declared {
        let mut out = HashMap::new();
        let Ok(doc) = serde_json::from_str::<serde_json::Value>(document) else {
            return Declared(out);
        };
        let shared = &doc["components"]["parameters"];
        let resolve = |p: &serde_json::Value| -> Option<(String, String)> {
            let p = match p["$ref"].as_str() {
                Some(r) => &shared[r.rsplit('/').next()?],
                None => p,
            };
            Some((p["in"].as_str()?.to_owned(), p["name"].as_str()?.to_owned()))
        };
        let Some(paths) = doc["paths"].as_object() else {
            return Declared(out);
        };
        for (path, item) in paths {
            let common: Vec<_> = item["parameters"]
                .as_array()
                .map(|a| a.iter().filter_map(resolve).collect())
                .unwrap_or_default();
            let Some(ops) = item.as_object() else { continue };
            for (method, op) in ops {
                if method == "parameters" {
                    continue;
                }
                let own = op["parameters"]
                    .as_array()
                    .map(|a| a.iter().filter_map(resolve).collect::<Vec<_>>())
                    .unwrap_or_default();
                let names = common
                    .iter()
                    .chain(&own)
                    .filter(|(place, _)| place == "query")
                    .map(|(_, name)| name.clone())
                    .collect();
                out.insert((method.to_uppercase(), path.clone()), Arc::new(names));
            }
        }
        Declared(out)
    }

    /// The names declared for `method` on `path` (empty when the document lists none).
    pub fn names(&self, method: &str, path: &str) -> Arc<HashSet<String>> {
        self.0
            .get(&(method.to_owned(), path.to_owned()))
            .cloned()
            .unwrap_or_default()
    }
}

/// The middleware of one endpoint: refuses the request if its query names a parameter
/// outside `allowed`.
pub(crate) async fn check(allowed: Arc<HashSet<String>>, request: Request, next: Next) -> Response {
    if let Some(query) = request.uri().query() {
        let pairs: Vec<(String, String)> = match serde_urlencoded::from_str(query) {
            Ok(pairs) => pairs,
            Err(e) => {
                return ApiError::bad_request(
                    "invalid_query",
                    format!("the query string does not decode: {e}"),
                )
                .into_response();
            }
        };
        for (name, _) in pairs {
            if !allowed.contains(&name) {
                let mut known: Vec<&str> = allowed.iter().map(String::as_str).collect();
                known.sort_unstable();
                let message = if known.is_empty() {
                    format!("unknown query parameter `{name}`: this endpoint takes none")
                } else {
                    format!(
                        "unknown query parameter `{name}`; this endpoint takes: {}",
                        known.join(", ")
                    )
                };
                return ApiError::bad_request("unknown_parameter", message)
                    .with_field(name)
                    .into_response();
            }
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_query_names_per_operation_from_the_document_including_shared_ones() {
        let declared = Declared::from_document(crate::openapi::DOCUMENT);
        let values = declared.names("GET", "/api/v1/values");
        assert!(values.contains("prefix"));
        assert_eq!(values.len(), 1);
        let delete = declared.names("DELETE", "/api/v1/context/{path}");
        assert!(delete.contains("fields"));
        assert!(!delete.contains("field"));
        assert!(
            declared
                .names("GET", "/api/v1/history/raw")
                .contains("work_order")
        );
        assert!(declared.names("GET", "/api/v1/health").is_empty());
    }
}
