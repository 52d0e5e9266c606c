//! `POST /api/v1/discover`: browse a device from the UI (a Modbus range scan, an OPC UA
//! tree) with the same discovery `backplane browse` runs, and answer what it found as data.
//!
//! The kinds' browsers are the engine's `Discovery` service, registered by the binary
//! (without it: 404 `discovery_not_configured`). Making the gateway connect somewhere on a
//! caller's behalf is a server-side request (SSRF) risk, so this endpoint is for engineers,
//! runs one discovery at a time per gateway, stops after [`TIMEOUT`], answers at most
//! [`MAX_SIGNALS`] signals, refuses options that name files or variables of the gateway
//! and schemes that open local devices, and records each attempt (who, which URL) in the
//! audit trail. See docs/security.md.

use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use backplane_connector::{BrowseReport, Browser, Discovery, Options};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::actor::{Actor, outcome};
use crate::error::ApiError;

/// Longest a discovery may run before it is stopped.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(60);
/// Signals answered at most; `truncated` says when more were found.
pub(crate) const MAX_SIGNALS: usize = 2000;
/// The printed report is cut after this many bytes.
const MAX_TEXT_BYTES: usize = 256 * 1024;
const MAX_URL: usize = 1024;
const MAX_OPTION_VALUE: usize = 256;
const MAX_OPTION_VALUES: usize = 64;

/// `POST /api/v1/discover` `{url, options}`.
pub(crate) async fn discover(
    State(state): State<AppState>,
    actor: Actor,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body.map_err(|r| ApiError::from_body_rejection(&r, state.max_body_bytes))?;
    let parsed = parse_body(&body);
    let (url, given) = match &parsed {
        Ok((url, given)) => (url.clone(), given.clone()),
        Err(_) => (String::new(), Value::Null),
    };
    // In a task of its own, so a caller who hangs up mid-scan cannot skip the audit record:
    // the discovery runs to its end (or its timeout) and is recorded either way.
    let task = tokio::spawn(async move {
        let result = match parsed {
            Ok((url, given)) => run(&state, url, &given).await,
            Err(e) => Err(e),
        };
        // Every attempt, refused or not: who made the gateway connect where.
        actor.record(
            &state,
            "discover",
            &url,
            None,
            Some(json!({ "options": given })),
            outcome(&result),
        );
        result
    });
    task.await
        .map_err(|e| ApiError::internal(format!("the discovery task failed: {e}")))?
        .map(Json)
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_value", message).with_field(field)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    // Defaults, so a missing `url` is reported like an empty one.
    #[serde(default)]
    url: String,
    #[serde(default)]
    options: Option<Map<String, Value>>,
}

/// The URL and the options object (`{}` when absent).
fn parse_body(body: &[u8]) -> Result<(String, Value), ApiError> {
    let Body { url, options } = crate::body::parse_body(body)?;
    let url = url.trim().to_owned();
    if url.is_empty() {
        return Err(invalid(
            "url",
            "`url` must be the device's URL, e.g. tcp://10.0.0.5:502",
        ));
    }
    if url.len() > MAX_URL || url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(invalid(
            "url",
            format!("`url` must be at most {MAX_URL} bytes without spaces or control characters"),
        ));
    }
    Ok((url, Value::Object(options.unwrap_or_default())))
}

/// The options of `given` for `browser`, checked, then the gateway's fixed ones.
fn options(browser: &Browser, given: &Value, fixed: &Options) -> Result<Options, ApiError> {
    let mut options = Options::default();
    let offered: Vec<&str> = browser
        .options
        .iter()
        .filter(|s| !s.local && fixed.get(s.name).is_none())
        .map(|s| s.name)
        .collect();
    for (name, value) in given.as_object().into_iter().flatten() {
        let field = format!("options.{name}");
        let Some(spec) = browser
            .options
            .iter()
            .find(|s| s.name == name && offered.contains(&s.name))
        else {
            let why = if browser.options.iter().any(|s| s.name == name) {
                format!(
                    "option `{name}` names something on the gateway's machine and is not offered through the API"
                )
            } else {
                format!("no option `{name}`")
            };
            return Err(invalid(
                &field,
                format!("{why}; options for this URL: {}", offered.join(", ")),
            ));
        };
        let values: Vec<&Value> = match value {
            Value::Array(items) if spec.repeated => items.iter().collect(),
            other => vec![other],
        };
        if values.len() > MAX_OPTION_VALUES {
            return Err(invalid(&field, format!("at most {MAX_OPTION_VALUES} values")));
        }
        for value in values {
            match (value, spec.value) {
                (Value::Bool(true), None) => options.push(name, "true"),
                (Value::Bool(false), None) => {}
                (Value::String(text), Some(_)) => {
                    if text.len() > MAX_OPTION_VALUE || text.chars().any(char::is_control) {
                        return Err(invalid(
                            &field,
                            format!("at most {MAX_OPTION_VALUE} bytes without control characters"),
                        ));
                    }
                    options.push(name, text.clone());
                }
                (Value::Number(n), Some(_)) => options.push(name, n.to_string()),
                (_, None) => return Err(invalid(&field, format!("`{name}` is a switch: true or false"))),
                (_, Some(placeholder)) => {
                    return Err(invalid(
                        &field,
                        format!(
                            "`{name}` takes a {placeholder}{}",
                            if spec.repeated { " (or a list of them)" } else { "" }
                        ),
                    ));
                }
            }
        }
    }
    for spec in browser.options {
        for value in fixed.all(spec.name) {
            options.push(spec.name, value.clone());
        }
    }
    Ok(options)
}

async fn run(state: &AppState, url: String, given: &Value) -> Result<Value, ApiError> {
    let discovery = state
        .engine
        .services()
        .named::<Discovery>(Discovery::SERVICE)
        .ok_or_else(|| {
            ApiError::not_found(
                "this gateway offers no discovery (it runs embedded, without the binary's kinds)",
            )
            .with_code("discovery_not_configured")
        })?;
    let schemes = || {
        discovery
            .browsers
            .iter()
            .flat_map(|b| b.schemes.iter().filter(|s| !b.local_schemes.contains(s)))
            .map(|s| format!("{s}://"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(browser) = discovery.browser_for(&url) else {
        return Err(invalid(
            "url",
            format!(
                "no kind of this gateway browses `{url}`; the URL must start with one of: {}",
                schemes()
            ),
        ));
    };
    let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or_default();
    if browser
        .local_schemes
        .iter()
        .any(|s| s.eq_ignore_ascii_case(scheme))
    {
        return Err(invalid(
            "url",
            format!(
                "`{scheme}://` opens a device of the gateway's machine: browse it with `backplane browse` there; through the API: {}",
                schemes()
            ),
        ));
    }
    let options = options(browser, given, &discovery.fixed)?;
    let Ok(_permit) = state.discovering.clone().try_acquire_owned() else {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "discovery_busy",
            "another discovery is running on this gateway; try again when it has finished",
        )
        .with_retry_after(5));
    };
    let started = Instant::now();
    let report = tokio::time::timeout(TIMEOUT, (browser.run)(url.clone(), options))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "discovery_timeout",
                format!(
                    "browsing {url} took longer than {} s: scan a smaller range or fewer levels",
                    TIMEOUT.as_secs()
                ),
            )
        })?
        .map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "discovery_failed",
                format!("browsing {url} failed: {e}"),
            )
        })?;
    Ok(answer(&url, report, started.elapsed()))
}

/// The JSON answer, bounded: at most [`MAX_SIGNALS`] signals and [`MAX_TEXT_BYTES`] of text.
fn answer(url: &str, mut report: BrowseReport, elapsed: Duration) -> Value {
    let found = report.signals.len();
    report.signals.truncate(MAX_SIGNALS);
    if report.text.len() > MAX_TEXT_BYTES {
        let mut end = MAX_TEXT_BYTES;
        while !report.text.is_char_boundary(end) {
            end -= 1;
        }
        report.text.truncate(end);
        report.text.push_str("\n… (cut)");
    }
    json!({
        "url": url,
        "text": report.text,
        "source": report.source,
        "signals": report.signals,
        "found": found,
        "truncated": found > MAX_SIGNALS,
        "elapsed_seconds": elapsed.as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use backplane_connector::OptionSpec;
    use futures::FutureExt;

    use super::*;

    const SPECS: &[OptionSpec] = &[
        OptionSpec::value("unit", "ID", "Unit"),
        OptionSpec::value("select", "PATTERNS", "Select").repeated(),
        OptionSpec::value("pki-dir", "DIR", "PKI").local(),
        OptionSpec::value("gateway", "NAME", "Name"),
        OptionSpec::switch("verbose", "More"),
    ];

    fn browser() -> Browser {
        Browser {
            schemes: &["test"],
            local_schemes: &[],
            about: "Test",
            options: SPECS,
            run: |_, _| async { Ok(BrowseReport::default()) }.boxed(),
        }
    }

    fn fixed() -> Options {
        let mut o = Options::default();
        o.push("gateway", "edge-1");
        o
    }

    #[test]
    fn options_are_checked_and_the_gateway_sets_its_own() {
        let given = json!({"unit": 3, "select": ["a/*", "b"], "verbose": true});
        let o = options(&browser(), &given, &fixed()).unwrap();
        assert_eq!(o.get("unit"), Some("3"));
        assert_eq!(o.all("select"), ["a/*", "b"]);
        assert!(o.flag("verbose"));
        assert_eq!(o.get("gateway"), Some("edge-1"));
        let refused = |given: Value| options(&browser(), &given, &fixed()).unwrap_err();
        let e = refused(json!({"pki-dir": "/etc"}));
        assert!(e.message.contains("gateway's machine"), "{}", e.message);
        assert_eq!(e.field.as_deref(), Some("options.pki-dir"));
        assert!(
            refused(json!({"gateway": "other"}))
                .message
                .contains("not offered")
        );
        assert!(refused(json!({"nope": "1"})).message.contains("no option `nope`"));
        assert!(
            refused(json!({"unit": ["1", "2"]}))
                .message
                .contains("takes a ID")
        );
        assert!(refused(json!({"verbose": "yes"})).message.contains("switch"));
        assert!(refused(json!({"unit": "1\n2"})).message.contains("control"));
    }

    #[test]
    fn the_body_needs_a_url_without_spaces_and_knows_its_fields() {
        assert!(parse_body(br#"{"url": "tcp://h:502"}"#).is_ok());
        assert_eq!(
            parse_body(br#"{"url": ""}"#).unwrap_err().field.as_deref(),
            Some("url")
        );
        assert_eq!(
            parse_body(br#"{"url": "tcp://h:502 x"}"#)
                .unwrap_err()
                .field
                .as_deref(),
            Some("url")
        );
        assert_eq!(
            parse_body(br#"{"url": "tcp://h", "x": 1}"#).unwrap_err().code,
            "unknown_field"
        );
    }

    #[test]
    fn answers_are_bounded() {
        let signal = backplane_connector::Signal {
            address: "hr:0".into(),
            name: "hr_0".into(),
            description: String::new(),
            decodings: Vec::new(),
        };
        let report = BrowseReport {
            text: "é".repeat(MAX_TEXT_BYTES),
            source: String::new(),
            signals: vec![signal; MAX_SIGNALS + 5],
        };
        let json = answer("tcp://h", report, Duration::ZERO);
        assert_eq!(json["signals"].as_array().unwrap().len(), MAX_SIGNALS);
        assert_eq!(
            (json["found"].as_u64(), json["truncated"].as_bool()),
            (Some(MAX_SIGNALS as u64 + 5), Some(true))
        );
        assert!(json["text"].as_str().unwrap().len() <= MAX_TEXT_BYTES + 16);
    }
}
