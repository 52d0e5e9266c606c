//! Requests a browser was tricked into sending (issue 18, hole 4), in every mode, token
//! or not:
//! - DNS rebinding: a page on `evil.example` whose name now resolves to 127.0.0.1 talks to
//!   the gateway with `Host: evil.example`. Only IP addresses, `localhost` and the names in
//!   `[api] hosts` are answered (`403 host_not_allowed`).
//! - Cross-site requests: a change (POST, PUT, DELETE) whose `Origin` is not this server
//!   is refused (`403 cross_origin`); browsers always send `Origin` on those.
//! - A change with a body must say `application/json` (`415 unsupported_media_type`): a
//!   `text/plain` form post, which a browser sends cross-site without asking, is not JSON
//!   to us even if its text is.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Names the API answers to besides IP literals and `localhost`, lower case.
#[derive(Clone, Debug, Default)]
pub(crate) struct AllowedHosts(pub Arc<[String]>);

impl AllowedHosts {
    fn allows(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        host == "localhost"
            || host.ends_with(".localhost")
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok()
            || self.0.contains(&host)
    }
}

/// The host part of a `Host` header or an origin's authority, without the port.
fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        // [v6]:port
        return rest.split(']').next().unwrap_or(rest);
    }
    authority.rsplit_once(':').map_or(authority, |(h, port)| {
        if port.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            authority
        }
    })
}

fn header(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn has_body(headers: &HeaderMap) -> bool {
    header(headers, header::TRANSFER_ENCODING).is_some()
        || header(headers, header::CONTENT_LENGTH).is_some_and(|n| n.trim() != "0")
}

pub(crate) async fn check(allowed: AllowedHosts, request: Request, next: Next) -> Response {
    let headers = request.headers();
    // HTTP/2 carries the host in the URI's authority.
    let host = header(headers, header::HOST)
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.as_str().to_owned()));
    if let Some(host) = &host
        && !allowed.allows(host_of(host))
    {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "host_not_allowed",
            format!(
                "this gateway does not answer to the host name `{}`: add it to [api] hosts if it is really this gateway's name",
                host_of(host)
            ),
        )
        .into_response();
    }
    let changes = !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if changes {
        if let Some(origin) = header(headers, header::ORIGIN) {
            let authority = origin.split_once("://").map(|(_, a)| a.trim_end_matches('/'));
            let same = match (authority, &host) {
                (Some(a), Some(h)) => a.eq_ignore_ascii_case(h),
                _ => false,
            };
            if !same {
                return ApiError::new(
                    StatusCode::FORBIDDEN,
                    "cross_origin",
                    format!("a change from the page at `{origin}` is refused: it is not this server"),
                )
                .into_response();
            }
        }
        if has_body(headers) && !header(headers, header::CONTENT_TYPE).is_some_and(is_json) {
            return ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "a request body must be JSON, sent with `Content-Type: application/json`",
            )
            .into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_ip_literals_localhost_or_configured_names() {
        let allowed = AllowedHosts(Arc::from(vec!["gw.plant.example".to_owned()]));
        for ok in [
            "127.0.0.1",
            "::1",
            "[::1]",
            "localhost",
            "LOCALHOST",
            "gw.plant.example",
            "10.1.2.3",
        ] {
            assert!(allowed.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "127.0.0.1.evil.example",
            "gw.plant.example.evil",
            "",
        ] {
            assert!(!allowed.allows(bad), "{bad}");
        }
    }

    #[test]
    fn the_port_is_not_part_of_the_host() {
        assert_eq!(host_of("127.0.0.1:8080"), "127.0.0.1");
        assert_eq!(host_of("[::1]:8080"), "::1");
        assert_eq!(host_of("localhost"), "localhost");
        assert_eq!(host_of("evil.example:80"), "evil.example");
    }

    #[test]
    fn json_content_types_are_recognised() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(is_json("application/merge-patch+json"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/x-www-form-urlencoded"));
    }
}
