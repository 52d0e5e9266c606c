//! The `http` source's configuration keys, read through the config crate's [`Table`] so
//! every key is checked and every error has a position. See docs/connectors/http.md.

use std::time::Duration;

use backplane_config::{Item, Secret, Table};
use reqwest::header::{HeaderName, HeaderValue};

use crate::schema::{FieldSpec, FieldType};
use crate::select::{EpochUnit, Selector};

/// Largest document a poll reads by default.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;
/// Largest document a poll may be allowed to read.
pub const MAX_BODY_LIMIT: u64 = 64 * 1024 * 1024;
/// Largest webhook body by default (the API's own `max_body_bytes` caps it too).
pub const DEFAULT_WEBHOOK_BODY: usize = 64 * 1024;
/// Most fields a webhook schema declares.
pub const MAX_FIELDS: usize = 256;

/// Everything an `http` source reads from its `[[sources]]` table.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    pub mode: Mode,
    /// Largest document read (poll) or accepted (webhook).
    pub max_body_bytes: usize,
    /// Where a document carries the device time; `None` to ignore.
    pub timestamp_path: Option<Selector>,
    pub timestamp_unit: EpochUnit,
}

/// Poll an endpoint, or take documents posted to the API.
#[derive(Clone, Debug)]
pub enum Mode {
    Poll(Box<PollSettings>),
    Webhook(WebhookSettings),
}

/// How to poll.
#[derive(Clone, Debug)]
pub struct PollSettings {
    pub url: reqwest::Url,
    pub period: Duration,
    /// For the whole request: connect, headers and body.
    pub timeout: Duration,
    /// Extra request headers (not secret).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub auth: Option<Auth>,
}

/// Credentials, always by secret reference.
#[derive(Clone, Debug)]
pub enum Auth {
    /// `Authorization: Bearer <secret>`.
    Bearer(Secret),
    /// `Authorization: Basic` with `user` and the secret password.
    Basic { user: String, password: Secret },
    /// A header of the endpoint's choice carrying the secret (e.g. `X-Api-Key`).
    Header { name: HeaderName, value: Secret },
}

/// The schema of posted documents.
#[derive(Clone, Debug)]
pub struct WebhookSettings {
    pub fields: Vec<FieldSpec>,
}

/// Reads the keys of one `[[sources]]` table of kind `http`.
pub fn parse_settings(table: &mut Table<'_>) -> Option<HttpSettings> {
    let mut ok = true;
    let mode = table.optional_str("mode").unwrap_or("poll");
    let webhook = match mode {
        "poll" => false,
        "webhook" => true,
        other => {
            table.error(
                "mode",
                format!("unknown mode `{other}`"),
                Some("`poll` (the gateway fetches a URL) or `webhook` (systems POST to the API)".into()),
            );
            return None;
        }
    };
    let (default_body, most) = if webhook {
        (DEFAULT_WEBHOOK_BODY, MAX_BODY_LIMIT)
    } else {
        (DEFAULT_MAX_BODY, MAX_BODY_LIMIT)
    };
    let max_body_bytes = match table.optional_bytes("max_body_bytes") {
        None => default_body,
        Some(n) if (1..=most).contains(&n) => n as usize,
        Some(n) => {
            table.error(
                "max_body_bytes",
                format!("max_body_bytes = {n} is outside 1 to {most}"),
                None,
            );
            ok = false;
            default_body
        }
    };
    let timestamp_path = match table.optional_str("timestamp_path").unwrap_or("$.timestamp") {
        "" => None,
        text => match Selector::parse(text) {
            Ok(s) => Some(s),
            Err(e) => {
                table.error("timestamp_path", e, Some(selector_hint()));
                ok = false;
                None
            }
        },
    };
    let timestamp_unit = match table.optional_str("timestamp_unit").map(EpochUnit::parse) {
        None => EpochUnit::Millis,
        Some(Some(unit)) => unit,
        Some(None) => {
            table.error("timestamp_unit", "unknown unit", Some("s, ms, us or ns".into()));
            ok = false;
            EpochUnit::Millis
        }
    };
    let mode = if webhook {
        Mode::Webhook(parse_webhook(table, &mut ok)?)
    } else {
        Mode::Poll(Box::new(parse_poll(table, &mut ok)?))
    };
    ok.then_some(HttpSettings {
        mode,
        max_body_bytes,
        timestamp_path,
        timestamp_unit,
    })
}

/// How selectors are written, for hints.
pub fn selector_hint() -> String {
    "an RFC 9535 JSONPath from the document's root, e.g. `$.silo.level`, `$.items[0].temp`, `$['a b']`"
        .to_owned()
}

fn parse_poll(table: &mut Table<'_>, ok: &mut bool) -> Option<PollSettings> {
    let url = table
        .required_str("url")
        .and_then(|text| match reqwest::Url::parse(text) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Some(url),
            Ok(_) => {
                table.error(
                    "url",
                    format!("`{text}` is not an http:// or https:// URL with a host"),
                    None,
                );
                None
            }
            Err(e) => {
                table.error("url", format!("`{text}` is not a URL: {e}"), None);
                None
            }
        });
    let mut at_least = |table: &mut Table<'_>, key: &str, default: Duration, min: Duration| {
        let d = table.optional_duration(key).unwrap_or(default);
        if d < min {
            table.error(key, format!("`{key}` must be at least {min:?}"), None);
            *ok = false;
        }
        d
    };
    let period = at_least(
        table,
        "period",
        Duration::from_secs(10),
        Duration::from_millis(100),
    );
    let timeout = at_least(
        table,
        "timeout",
        Duration::from_secs(5),
        Duration::from_millis(10),
    );
    let mut headers = Vec::new();
    if let Some(mut t) = table.optional_table("headers") {
        for (key, item) in t.take_remaining() {
            let Some(text) = item.as_str() else {
                item.error("a header value must be a string", None);
                *ok = false;
                continue;
            };
            let name = HeaderName::from_bytes(key.name.as_bytes());
            let value = HeaderValue::from_str(text);
            match (name, value) {
                (Ok(name), Ok(value)) if !is_credential_header(&name) => headers.push((name, value)),
                (Ok(_), Ok(_)) => {
                    key.error(
                        format!("`{}` carries credentials: give it in `auth`, as a secret reference", key.name),
                        Some("auth = { bearer = \"env:NAME\" } or auth = { header = \"X-Api-Key\", value = \"env:NAME\" }".into()),
                    );
                    *ok = false;
                }
                (Err(_), _) => {
                    key.error(format!("`{}` is not a valid header name", key.name), None);
                    *ok = false;
                }
                (_, Err(_)) => {
                    item.error("not a valid header value (visible ASCII only)", None);
                    *ok = false;
                }
            }
        }
        t.finish();
    }
    let auth = match table.optional_table("auth").map(|mut t| {
        let auth = parse_auth(&mut t);
        t.finish();
        auth
    }) {
        None => None,
        Some(Ok(auth)) => Some(auth),
        Some(Err(reported)) => {
            if !reported {
                table.error(
                    "auth",
                    "`auth` needs exactly one way to authenticate",
                    Some("one of: { bearer = \"env:NAME\" }, { user = \"NAME\", password = \"env:NAME\" }, { header = \"X-Api-Key\", value = \"env:NAME\" }".to_owned()),
                );
            }
            *ok = false;
            None
        }
    };
    // Fields are a webhook's: say so rather than "unknown key".
    if table.has("fields") {
        table.error("fields", "`fields` is for `mode = \"webhook\"`", None);
        table.optional_item("fields");
        *ok = false;
    }
    Some(PollSettings {
        url: url?,
        period,
        timeout,
        headers,
        auth,
    })
}

fn is_credential_header(name: &HeaderName) -> bool {
    name == reqwest::header::AUTHORIZATION || name == reqwest::header::PROXY_AUTHORIZATION
}

/// The `auth` table; `Err(true)` when the problem is already reported at its key,
/// `Err(false)` when the combination of keys is wrong (the caller reports it at `auth`).
fn parse_auth(t: &mut Table<'_>) -> Result<Auth, bool> {
    let keys = ["bearer", "user", "password", "header", "value"];
    let given: Vec<bool> = keys.iter().map(|k| t.has(k)).collect();
    let bearer = t.optional_secret("bearer");
    let user = t.optional_str("user");
    let password = t.optional_secret("password");
    let header = t.optional_str("header");
    let value = t.optional_secret("value");
    let read = [
        bearer.is_some(),
        user.is_some(),
        password.is_some(),
        header.is_some(),
        value.is_some(),
    ];
    if given != read {
        return Err(true);
    }
    match (bearer, user, password, header, value) {
        (Some(token), None, None, None, None) => Ok(Auth::Bearer(token)),
        (None, Some(user), Some(password), None, None) => Ok(Auth::Basic {
            user: user.to_owned(),
            password,
        }),
        (None, None, None, Some(name), Some(value)) => match HeaderName::from_bytes(name.as_bytes()) {
            Ok(name) => Ok(Auth::Header { name, value }),
            Err(_) => {
                t.error("header", format!("`{name}` is not a valid header name"), None);
                Err(true)
            }
        },
        _ => Err(false),
    }
}

fn parse_webhook(table: &mut Table<'_>, ok: &mut bool) -> Option<WebhookSettings> {
    for key in ["url", "period", "timeout", "headers", "auth"] {
        if table.has(key) {
            table.error(key, format!("`{key}` is for `mode = \"poll\"`"), None);
            table.optional_item(key);
            *ok = false;
        }
    }
    let mut fields = Vec::new();
    let mut t = table.required_table("fields")?;
    for (key, item) in t.take_remaining() {
        match parse_field(key.name, &item) {
            Some(field) => fields.push(field),
            None => *ok = false,
        }
    }
    t.finish();
    if fields.is_empty() {
        table.error("fields", "a webhook needs at least one field", None);
        *ok = false;
    }
    if fields.len() > MAX_FIELDS {
        table.error("fields", format!("more than {MAX_FIELDS} fields"), None);
        *ok = false;
    }
    Some(WebhookSettings { fields })
}

/// `name = { type = "float", required = true }` or `name = "float"`.
fn parse_field(name: &str, item: &Item<'_>) -> Option<FieldSpec> {
    let type_hint = || Some("float, int, bool, string or time".to_owned());
    let (type_text, required) = if let Some(text) = item.as_str() {
        (text.to_owned(), false)
    } else if let Some(mut t) = item.as_table() {
        let ty = t.required_str("type").map(str::to_owned);
        let required = t.optional_bool("required").unwrap_or(false);
        t.finish();
        (ty?, required)
    } else {
        item.error(
            "a field is a type (\"float\") or a table ({ type = \"float\", required = true })",
            type_hint(),
        );
        return None;
    };
    let Some(field_type) = FieldType::parse(&type_text) else {
        item.error(format!("unknown field type `{type_text}`"), type_hint());
        return None;
    };
    Some(FieldSpec {
        name: name.to_owned(),
        field_type,
        required,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn parse(text: &str) -> (Option<HttpSettings>, Vec<String>) {
        backplane_testkit::settings::parse(text, parse_settings)
    }

    #[test]
    fn a_poll_source_takes_documented_defaults() {
        let (s, errors) = parse("url = \"http://lims.local/api/silos\"\n");
        assert!(errors.is_empty(), "{errors:?}");
        let s = s.unwrap();
        let Mode::Poll(p) = &s.mode else { panic!("poll") };
        assert_eq!(
            (p.period, p.timeout, s.max_body_bytes),
            (Duration::from_secs(10), Duration::from_secs(5), DEFAULT_MAX_BODY)
        );
        assert_eq!(s.timestamp_path.unwrap().text(), "$.timestamp");
        assert!(p.auth.is_none());
    }

    #[test]
    fn auth_is_read_from_secret_references_only() {
        let (s, errors) = parse("url = \"https://h/x\"\nauth = { bearer = \"env:TOKEN\" }\n");
        assert!(errors.is_empty(), "{errors:?}");
        let Mode::Poll(p) = s.unwrap().mode else {
            panic!("poll")
        };
        assert!(matches!(p.auth, Some(Auth::Bearer(_))));
        let (s, errors) = parse("url = \"https://h/x\"\nauth = { bearer = \"hunter2\" }\n");
        assert!(s.is_none());
        assert!(errors.join("\n").contains("not the secret itself"), "{errors:?}");
        assert_eq!(errors.len(), 1, "{errors:?}");
        let (s, errors) = parse("url = \"https://h/x\"\nauth = { user = \"lims\" }\n");
        assert!(s.is_none());
        assert!(errors.join("\n").contains("exactly one way"), "{errors:?}");
        let (s, errors) = parse("url = \"https://h/x\"\nheaders = { Authorization = \"Bearer x\" }\n");
        assert!(s.is_none());
        assert!(errors.join("\n").contains("carries credentials"), "{errors:?}");
    }

    #[test]
    fn a_webhook_declares_its_fields_and_refuses_poll_keys() {
        let (s, errors) = parse(
            "mode = \"webhook\"\n[fields]\nfat = { type = \"float\", required = true }\nnote = \"string\"\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        let Mode::Webhook(w) = s.unwrap().mode else {
            panic!("webhook")
        };
        assert_eq!(w.fields.len(), 2);
        assert!(w.fields.iter().any(|f| f.name == "fat" && f.required));
        let (s, errors) = parse("mode = \"webhook\"\nurl = \"http://h/\"\n[fields]\nfat = \"number\"\n");
        assert!(s.is_none());
        let all = errors.join("\n");
        assert!(all.contains("`url` is for `mode = \"poll\"`"), "{all}");
        assert!(all.contains("unknown field type `number`"), "{all}");
    }

    #[test]
    fn wrong_values_are_reported_with_their_key() {
        let (s, errors) = parse(
            "url = \"ftp://h/x\"\nperiod = \"1ms\"\nmax_body_bytes = 0\ntimestamp_path = \"$.[\"\nmode = \"poll\"\n",
        );
        assert!(s.is_none());
        let all = errors.join("\n");
        for needle in [
            "not an http://",
            "`period` must be at least",
            "max_body_bytes = 0",
            "timestamp_path",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in\n{all}");
        }
    }
}
