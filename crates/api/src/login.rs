//! `POST/GET/DELETE /api/v1/session`: UI login, who am I, logout.
//!
//! Login checks a user's password (throttled per client IP and per user, `throttle.rs`)
//! and answers with the session cookie (`HttpOnly; SameSite=Strict; Path=/`, and `Secure`
//! when the request came over TLS) and the CSRF token the UI repeats in `X-CSRF-Token` on
//! changes. Every login, refused login and logout is audited.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use backplane_security::{AuthMethod, Identity, Outcome, Role};
use serde::{Deserialize, Serialize};

use crate::actor::Actor;
use crate::auth::{client_ip, login_event, over_tls, throttled};
use crate::error::ApiError;
use crate::sessions::{COOKIE, cookie};
use crate::users::MAX_PASSWORD_LEN;
use crate::{AppState, json_response};

/// Marks a request that came over TLS, so the session cookie gets `Secure`. The TLS
/// server inserts it into each request's extensions; without it the request was plain.
#[derive(Clone, Copy, Debug)]
pub struct OverTls;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    user: String,
    password: String,
}

#[derive(Serialize)]
struct Who<'a> {
    user: &'a str,
    role: Role,
    method: AuthMethod,
    #[serde(skip_serializing_if = "Option::is_none")]
    csrf_token: Option<&'a str>,
    /// RFC 3339, UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    expires: Option<String>,
}

/// `POST /api/v1/session` `{"user", "password"}`.
pub(crate) async fn login(
    State(state): State<AppState>,
    extensions: Extensions,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|r| ApiError::from_body_rejection(&r, state.max_body_bytes))?;
    let LoginBody { user, password } = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "invalid_json",
            format!("the body must be {{\"user\": ..., \"password\": ...}}: {e}"),
        )
    })?;
    if user.is_empty() || user.len() > 64 || password.len() > MAX_PASSWORD_LEN {
        return Err(ApiError::unauthorized("wrong user or password"));
    }
    let ip = client_ip(&extensions);
    if let Err(wait) = state.auth.throttle.check(ip, &user) {
        state.auth.record(login_event(
            &extensions,
            &user,
            Outcome::Refused("throttled after repeated failures".to_owned()),
            None,
        ));
        return Err(throttled(&user, wait));
    }
    let Some(role) = state.auth.check_password(ip, &user, &password).await else {
        state.auth.record(login_event(
            &extensions,
            &user,
            Outcome::Refused("wrong user or password".to_owned()),
            None,
        ));
        return Err(ApiError::unauthorized("wrong user or password"));
    };
    let identity = Identity::new(user.clone(), role, AuthMethod::Session);
    let created = state.auth.sessions.create(identity.clone());
    state
        .auth
        .record(login_event(&extensions, &user, Outcome::Done, Some(identity)));
    let secure = if over_tls(&extensions) { "; Secure" } else { "" };
    let set_cookie = format!(
        "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/{secure}",
        created.id
    );
    let mut response = json_response(&Who {
        user: &user,
        role,
        method: AuthMethod::Session,
        csrf_token: Some(&created.session.csrf),
        expires: Some(rfc3339(created.session.expires)),
    })?;
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&set_cookie).map_err(|e| ApiError::internal(e.to_string()))?,
    );
    Ok(response)
}

/// `GET /api/v1/session`: who the request is authenticated as, however.
pub(crate) async fn whoami(
    State(state): State<AppState>,
    actor: Actor,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let session = cookie(&headers)
        .filter(|_| actor.identity.method == AuthMethod::Session)
        .and_then(|id| state.auth.sessions.get(id));
    json_response(&Who {
        user: &actor.identity.name,
        role: actor.identity.role,
        method: actor.identity.method,
        csrf_token: session.as_ref().map(|s| s.csrf.as_str()),
        expires: session.as_ref().map(|s| rfc3339(s.expires)),
    })
}

/// `DELETE /api/v1/session`: ends the cookie's session and clears the cookie.
pub(crate) async fn logout(State(state): State<AppState>, actor: Actor, headers: HeaderMap) -> Response {
    if let Some(id) = cookie(&headers) {
        state.auth.sessions.remove(id);
    }
    actor.record(&state, "logout", &actor.identity.name, None, None, Outcome::Done);
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("backplane_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    response
}

fn rfc3339(t: std::time::SystemTime) -> String {
    let t: time::OffsetDateTime = t.into();
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
