//! Reading JSON request bodies into typed requests: the body must be a JSON object, and
//! every problem names the field at fault (`unknown_field`, `missing_field`,
//! `invalid_value`, also inside arrays: `consumed[1].quantity`). A request's own fields are
//! never `null`: an optional field is left out for its default, and `null` is refused
//! rather than read as absent, so a client's mistake is not silently taken for "now" or
//! "none". Free-form maps inside a request (form `values`, discovery `options`) keep their
//! own rules.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ApiError;

/// Reads a JSON object body into `T`, naming the field at fault; no field may be `null`.
pub(crate) fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    parse_body_nullable(body, &[])
}

/// [`parse_body`] where the top-level fields in `nullable` may be `null` (read as absent).
pub(crate) fn parse_body_nullable<T: DeserializeOwned>(
    body: &[u8],
    nullable: &[&str],
) -> Result<T, ApiError> {
    let json: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {e}")))?;
    // Serde would also read a struct from an array of its fields in order; a body is an
    // object with named fields only.
    if !json.is_object() {
        return Err(ApiError::bad_request(
            "invalid_json",
            "the body must be a JSON object; see docs/api.md",
        ));
    }
    if let Some(field) = null_field(&json, nullable) {
        return Err(ApiError::bad_request(
            "invalid_value",
            format!("`{field}` must not be null; leave it out for its default"),
        )
        .with_field(field));
    }
    serde_path_to_error::deserialize(json).map_err(|e| body_error(&e))
}

/// The first `null` among the request's own fields: the body's members (but those in
/// `nullable`) and the members of objects in its lists (`consumed[1].quantity`). Maps that
/// are a field's value are the field's business and not looked into.
fn null_field(json: &Value, nullable: &[&str]) -> Option<String> {
    let object = json.as_object()?;
    for (name, value) in object {
        match value {
            Value::Null if !nullable.contains(&name.as_str()) => return Some(name.clone()),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let Some(inner) = null_field(item, &[]) {
                        return Some(format!("{name}[{i}].{inner}"));
                    }
                }
            }
            _ => {}
        }
    }
    None
}

/// Text between `start` and the next `end` in `text`.
fn between<'t>(text: &'t str, start: &str, end: &str) -> Option<&'t str> {
    let rest = &text[text.find(start)? + start.len()..];
    Some(&rest[..rest.find(end)?])
}

fn body_error(e: &serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let inner = e.inner();
    if !inner.is_data() {
        return ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {inner}"));
    }
    let text = inner.to_string();
    // serde_json appends the position; the field name says more.
    let message = text.rsplit_once(" at line ").map_or(text.as_str(), |(m, _)| m);
    let path = e.path().to_string();
    let at_root = path == ".";
    let child = |name: &str| {
        if at_root {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        }
    };
    if let Some(name) = between(message, "unknown field `", "`") {
        // The path may already end at the unknown key.
        let field = if path.ends_with(name) {
            path.clone()
        } else {
            child(name)
        };
        let known = message
            .split_once(", expected ")
            .map(|(_, rest)| format!("; expected {rest}"))
            .unwrap_or_default();
        return ApiError::bad_request(
            "unknown_field",
            format!("`{field}` is not a field of this request{known}"),
        )
        .with_field(field);
    }
    if let Some(name) = between(message, "missing field `", "`") {
        let field = child(name);
        return ApiError::bad_request("missing_field", format!("`{field}` is required")).with_field(field);
    }
    if at_root {
        return ApiError::bad_request(
            "invalid_json",
            format!("the body must be a JSON object ({message}); see docs/api.md"),
        );
    }
    ApiError::bad_request("invalid_value", format!("`{path}`: {message}")).with_field(path)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        id: String,
        #[serde(default)]
        items: Vec<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        lot: String,
        #[serde(default)]
        quantity: Option<f64>,
    }

    fn error_of(body: &str) -> (&'static str, Option<String>, String) {
        let e = parse_body::<Outer>(body.as_bytes()).unwrap_err();
        (e.code, e.field, e.message)
    }

    #[test]
    fn body_errors_name_the_field_at_fault_also_inside_arrays() {
        let (code, field, message) = error_of(r#"{"id": "a", "colour": 1}"#);
        assert_eq!((code, field.as_deref()), ("unknown_field", Some("colour")));
        assert!(message.contains("`id`"), "{message}");
        let (code, field, _) = error_of(r#"{"id": "a", "items": [{"lot": "x"}, {"lot": "y", "qty": 2}]}"#);
        assert_eq!((code, field.as_deref()), ("unknown_field", Some("items[1].qty")));
        let (code, field, _) = error_of(r#"{"id": "a", "items": [{"lot": "x", "quantity": "lots"}]}"#);
        assert_eq!(
            (code, field.as_deref()),
            ("invalid_value", Some("items[0].quantity"))
        );
        let (code, field, _) = error_of(r#"{"items": []}"#);
        assert_eq!((code, field.as_deref()), ("missing_field", Some("id")));
        let (code, field, _) = error_of(r#"{"id": "a", "items": [{}]}"#);
        assert_eq!((code, field.as_deref()), ("missing_field", Some("items[0].lot")));
    }

    #[test]
    fn a_null_field_is_refused_by_name_not_read_as_absent() {
        let (code, field, message) = error_of(r#"{"id": null}"#);
        assert_eq!((code, field.as_deref()), ("invalid_value", Some("id")));
        assert!(message.contains("must not be null"), "{message}");
        let (code, field, _) = error_of(r#"{"id": "a", "items": null}"#);
        assert_eq!((code, field.as_deref()), ("invalid_value", Some("items")));
        let (code, field, _) =
            error_of(r#"{"id": "a", "items": [{"lot": "x"}, {"lot": "y", "quantity": null}]}"#);
        assert_eq!(
            (code, field.as_deref()),
            ("invalid_value", Some("items[1].quantity"))
        );
        // Left out, the same optional field is fine; a field declared nullable may be null.
        assert!(parse_body::<Outer>(br#"{"id": "a", "items": [{"lot": "y"}]}"#).is_ok());
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Named {
            #[serde(default)]
            name: Option<String>,
        }
        assert!(parse_body_nullable::<Named>(br#"{"name": null}"#, &["name"]).is_ok());
        assert!(parse_body::<Named>(br#"{"name": null}"#).is_err());
    }

    #[test]
    fn bodies_that_are_not_json_objects_are_invalid_json() {
        assert_eq!(error_of("{").0, "invalid_json");
        assert_eq!(error_of("[1]").0, "invalid_json");
        assert_eq!(error_of(r#"{"id": "a"} x"#).0, "invalid_json");
        assert_eq!(error_of("").0, "invalid_json");
    }
}
