//! Who is calling, and may they: every request to an endpoint gets an [`Identity`] in its
//! extensions, or is refused.
//!
//! Sources, first found wins:
//! - an `Identity` already in the extensions (a verified TLS client certificate);
//! - `Authorization: Bearer <token>`: `[api] token` (the admin token named `token`) or a
//!   machine token of the users file, compared by SHA-256 in constant time;
//! - `Authorization: Basic` user and password of the users file (Argon2id; failures
//!   throttled like logins);
//! - the `backplane_session` cookie of a UI login (`login.rs`); a change made with it must
//!   carry the session's `X-CSRF-Token`.
//!
//! Open mode: with no token and no users configured (the loopback demo), every request is
//! `anonymous` with the admin role, as before identities existed. Otherwise every endpoint
//! but the public ones (health, login) needs a credential (401) and the endpoint's role
//! (403 `forbidden`). `X-Backplane-User` is refused outright (400 `header_not_accepted`):
//! who did something comes from authentication, never from a name the client sent.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Extensions, HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use backplane_security::{AuditEvent, AuditTrail, AuthMethod, Identity, Outcome, Role};
use base64ct::{Base64, Encoding};

use crate::AppState;
use crate::error::ApiError;
use crate::ratelimit::{Limiter, RateLimit, retry_after};
use crate::sessions::{SessionSettings, Sessions, cookie};
use crate::throttle::LoginThrottle;
use crate::users::{Users, constant_time_eq};

/// The header clients used to name themselves; refused now.
pub(crate) const USER_HEADER: &str = "x-backplane-user";
/// The header a change made with a session cookie repeats the session's CSRF token in.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";
/// Password checks (Argon2id: ~20 MiB and tens of ms each) running at once; more wait.
const PASSWORD_CHECKS: usize = 2;

/// Everything authentication needs, shared by all requests.
#[derive(Debug)]
pub(crate) struct Auth {
    /// `[api] token`, the admin machine token named `token`.
    token: Option<String>,
    pub users: Users,
    pub sessions: Sessions,
    pub throttle: LoginThrottle,
    pub limiter: Limiter,
    password_checks: tokio::sync::Semaphore,
    audit: Option<Arc<AuditTrail>>,
}

impl Auth {
    pub fn new(
        token: Option<String>,
        users: Users,
        sessions: SessionSettings,
        rate_limit: RateLimit,
        audit: Option<Arc<AuditTrail>>,
    ) -> Auth {
        Auth {
            token,
            users,
            sessions: Sessions::new(sessions),
            throttle: LoginThrottle::default(),
            limiter: Limiter::new(rate_limit),
            password_checks: tokio::sync::Semaphore::new(PASSWORD_CHECKS),
            audit,
        }
    }

    /// No credential is configured: everyone is an anonymous admin (loopback only).
    pub fn open(&self) -> bool {
        self.token.is_none() && self.users.is_empty()
    }

    /// Records `event` in the audit trail, if the gateway has one. A failure is logged: the
    /// trail's own health is the recorder's to report.
    pub fn record(&self, event: AuditEvent) {
        if let Some(trail) = &self.audit
            && let Err(e) = trail.0.record(event)
        {
            tracing::error!(error = %e, "API: an audit event was not recorded");
        }
    }

    /// The role of `user` if `password` is theirs, checked off the async threads with at
    /// most `PASSWORD_CHECKS` at once. Failures and successes feed the login throttle.
    pub async fn check_password(&self, ip: IpAddr, user: &str, password: &str) -> Option<Role> {
        let _slot = self.password_checks.acquire().await.ok()?;
        let users = self.users.clone();
        let (name, pass) = (user.to_owned(), password.to_owned());
        let role = tokio::task::spawn_blocking(move || users.verify_password(&name, &pass))
            .await
            .ok()
            .flatten();
        match role {
            Some(_) => self.throttle.succeeded(user),
            None => self.throttle.failed(ip, user),
        }
        role
    }
}

/// The peer of the connection, when the server recorded it.
pub(crate) fn peer(extensions: &axum::http::Extensions) -> Option<SocketAddr> {
    extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0)
}

/// The client's IP address, for per-client limits (unspecified without a peer, in tests).
pub(crate) fn client_ip(extensions: &axum::http::Extensions) -> IpAddr {
    peer(extensions).map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.ip())
}

/// `from` of an audit event.
pub(crate) fn origin(extensions: &axum::http::Extensions) -> String {
    match peer(extensions) {
        Some(peer) => format!("http {peer}"),
        None => "http unknown".to_owned(),
    }
}

fn changes(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// A refusal, recorded in the audit trail when the request would have changed something.
fn refuse(state: &AppState, request: &Request, who: Option<Identity>, error: ApiError) -> Response {
    if changes(request.method()) {
        state.auth.record(AuditEvent {
            who,
            from: origin(request.extensions()),
            action: "request".to_owned(),
            target: format!("{} {}", request.method(), request.uri().path()),
            old: None,
            new: None,
            outcome: Outcome::Refused(format!("{}: {}", error.code, error.message)),
        });
    }
    error.into_response()
}

fn too_many(code: &'static str, message: String, wait: std::time::Duration) -> Response {
    ApiError::new(StatusCode::TOO_MANY_REQUESTS, code, message)
        .with_retry_after(retry_after(wait))
        .into_response()
}

/// The per-client rate limit, before routing so unknown paths count too; health is exempt
/// so monitoring still sees a gateway under load. A request with no peer address was not
/// made over a connection (the router called in process) and has no client to limit.
pub(crate) async fn rate_limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(ip) = peer(request.extensions()).map(|p| p.ip()) else {
        return next.run(request).await;
    };
    if request.uri().path() == "/api/v1/health" {
        return next.run(request).await;
    }
    match state.auth.limiter.take(ip) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            let response = too_many(
                "rate_limited",
                format!("too many requests from {ip}; try again in a moment ([api] rate_limit)"),
                wait,
            );
            if changes(request.method()) {
                state.auth.record(AuditEvent {
                    who: request.extensions().get::<Identity>().cloned(),
                    from: origin(request.extensions()),
                    action: "request".to_owned(),
                    target: format!("{} {}", request.method(), request.uri().path()),
                    old: None,
                    new: None,
                    outcome: Outcome::Refused("rate_limited".to_owned()),
                });
            }
            response
        }
    }
}

/// What authentication found.
struct Found {
    identity: Identity,
    /// The session's CSRF token, when the cookie proved it.
    csrf: Option<String>,
}

/// Authenticates the request and checks `role` (None: a public endpoint).
pub(crate) async fn guard(state: AppState, role: Option<Role>, mut request: Request, next: Next) -> Response {
    if request.headers().contains_key(USER_HEADER) {
        return ApiError::bad_request(
            "header_not_accepted",
            "X-Backplane-User is not accepted: who makes a change comes from authentication \
             (a token, a password or a session), not from a header",
        )
        .with_field("X-Backplane-User")
        .into_response();
    }
    let Some(required) = role else {
        return next.run(request).await;
    };
    let found = if let Some(identity) = request.extensions().get::<Identity>() {
        Some(Found {
            identity: identity.clone(),
            csrf: None,
        })
    } else if state.auth.open() {
        Some(Found {
            identity: Identity::new("anonymous", Role::Admin, AuthMethod::Anonymous),
            csrf: None,
        })
    } else {
        match authenticate(&state, request.headers(), request.extensions()).await {
            Ok(found) => found,
            Err(refusal) => return refuse(&state, &request, None, refusal),
        }
    };
    let Some(found) = found else {
        return refuse(
            &state,
            &request,
            None,
            ApiError::unauthorized(
                "this endpoint needs authentication: `Authorization: Bearer <token>`, HTTP Basic \
                 user and password, or a session from POST /api/v1/session",
            ),
        );
    };
    let identity = found.identity;
    if !identity.role.allows(required) {
        let error = ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "{} {} needs the role `{required}`; `{}` has the role `{}`",
                request.method(),
                request.uri().path(),
                identity.name,
                identity.role
            ),
        );
        return refuse(&state, &request, Some(identity), error);
    }
    if let Some(expected) = &found.csrf
        && changes(request.method())
    {
        let sent = request
            .headers()
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !constant_time_eq(sent.as_bytes(), expected.as_bytes()) {
            let error = ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf",
                "a change made with a session cookie needs the header `X-CSRF-Token` with the \
                 session's `csrf_token` (from POST or GET /api/v1/session)",
            )
            .with_field("X-CSRF-Token");
            return refuse(&state, &request, Some(identity), error);
        }
    }
    request.extensions_mut().insert(identity);
    next.run(request).await
}

/// `Ok(None)`: no credential presented. `Err`: one presented and refused.
async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    extensions: &Extensions,
) -> Result<Option<Found>, ApiError> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let text = value
            .to_str()
            .map_err(|_| ApiError::unauthorized("the Authorization header is not visible ASCII"))?;
        let (scheme, credentials) = text.split_once(' ').unwrap_or((text, ""));
        let credentials = credentials.trim();
        // The scheme name is case-insensitive (RFC 9110, 11.1).
        if scheme.eq_ignore_ascii_case("bearer") {
            return bearer(state, credentials).map(Some);
        }
        if scheme.eq_ignore_ascii_case("basic") {
            return basic(state, extensions, credentials).await.map(Some);
        }
        return Err(ApiError::unauthorized(format!(
            "the Authorization scheme `{scheme}` is not supported; use Bearer or Basic"
        )));
    }
    if let Some(id) = cookie(headers) {
        let session = state
            .auth
            .sessions
            .get(id)
            .ok_or_else(|| ApiError::unauthorized("the session has ended; log in again"))?;
        return Ok(Some(Found {
            identity: session.identity,
            csrf: Some(session.csrf),
        }));
    }
    Ok(None)
}

fn bearer(state: &AppState, presented: &str) -> Result<Found, ApiError> {
    // An empty token never matches, so an empty configured token locks rather than opens.
    if presented.is_empty() {
        return Err(ApiError::unauthorized("the bearer token is empty"));
    }
    if let Some(token) = &state.auth.token
        && constant_time_eq(presented.as_bytes(), token.as_bytes())
    {
        return Ok(Found {
            identity: Identity::new("token", Role::Admin, AuthMethod::Token),
            csrf: None,
        });
    }
    match state.auth.users.token(presented) {
        Some((name, role)) => Ok(Found {
            identity: Identity::new(name, role, AuthMethod::Token),
            csrf: None,
        }),
        None => Err(ApiError::unauthorized("the bearer token is not valid")),
    }
}

async fn basic(state: &AppState, extensions: &Extensions, credentials: &str) -> Result<Found, ApiError> {
    let malformed = || ApiError::unauthorized("HTTP Basic credentials must be base64 of `user:password`");
    let decoded = Base64::decode_vec(credentials).map_err(|_| malformed())?;
    let text = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (user, password) = text.split_once(':').ok_or_else(malformed)?;
    let ip = client_ip(extensions);
    if let Err(wait) = state.auth.throttle.check(ip, user) {
        return Err(throttled(user, wait));
    }
    match state.auth.check_password(ip, user, password).await {
        Some(role) => Ok(Found {
            identity: Identity::new(user, role, AuthMethod::Password),
            csrf: None,
        }),
        None => {
            state.auth.record(login_event(
                extensions,
                user,
                Outcome::Refused("wrong user or password (HTTP Basic)".to_owned()),
                None,
            ));
            Err(ApiError::unauthorized("wrong user or password"))
        }
    }
}

/// 429 for a throttled login. Carried as an `ApiError` with its own status.
pub(crate) fn throttled(user: &str, wait: std::time::Duration) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "login_throttled",
        format!(
            "too many failed logins from this address or for `{user}`; try again in {} s",
            retry_after(wait)
        ),
    )
    .with_retry_after(retry_after(wait))
}

/// A login attempt as an audit event.
pub(crate) fn login_event(
    extensions: &axum::http::Extensions,
    user: &str,
    outcome: Outcome,
    who: Option<Identity>,
) -> AuditEvent {
    AuditEvent {
        who,
        from: origin(extensions),
        action: "login".to_owned(),
        target: user.to_owned(),
        old: None,
        new: None,
        outcome,
    }
}

/// Whether the request came over TLS: the TLS server marks it with [`crate::OverTls`].
pub(crate) fn over_tls(extensions: &axum::http::Extensions) -> bool {
    extensions.get::<crate::OverTls>().is_some()
}
