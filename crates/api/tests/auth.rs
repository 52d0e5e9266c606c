//! Identities and roles: every endpoint against every role, sessions and CSRF, login
//! throttling, per-client rate limits, who is recorded for a change, and the audit trail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use backplane_api::users::Users;
use backplane_api::{ApiOptions, RateLimit};
use backplane_engine::Services;
use backplane_security::{AuditTrail, MemoryRecorder, Outcome, Role};
use common::*;
use serde_json::{Value, json};
use tower::ServiceExt;

const PASSWORD: &str = "correct horse battery";

/// A token per role, named after it, and the users anna (operator) and erik (engineer).
struct Credentials {
    options: ApiOptions,
    tokens: BTreeMap<Role, String>,
}

fn credentials() -> Credentials {
    let mut users = Users::default();
    let tokens = Role::ALL
        .into_iter()
        .map(|role| (role, users.add_token(role.as_str(), role).unwrap()))
        .collect();
    users.add_user("anna", Role::Operator, PASSWORD).unwrap();
    users.add_user("erik", Role::Engineer, PASSWORD).unwrap();
    Credentials {
        options: ApiOptions {
            users,
            ..ApiOptions::default()
        },
        tokens,
    }
}

/// A concrete URI for a documented path: every parameter filled with something.
fn concrete(path: &str) -> String {
    path.replace("{path}", LINE_1)
        .replace("{tagpath}", &format!("{LINE_1_FILLER}/speed"))
        .replace("{id}", "X-1")
        .replace("{action}", "start")
        .replace("{name}", "milk-lab")
}

fn request(method: &str, uri: &str, bearer: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(token) = bearer {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    if method == "GET" {
        builder.body(Body::empty()).unwrap()
    } else {
        builder
            .header("content-type", "application/json")
            .body(Body::from("{}"))
            .unwrap()
    }
}

/// Only the status: some endpoints stream forever (SSE).
async fn status(app: &Running, request: Request<Body>) -> StatusCode {
    app.router.clone().oneshot(request).await.unwrap().status()
}

/// Every operation of the OpenAPI document with the role it needs (None: public). The
/// document's roles are checked against the router's `endpoints()` in the crate's tests, and
/// its operations against the routes, so this covers every endpoint there is.
fn operations() -> Vec<(String, String, Option<Role>)> {
    let doc: Value = serde_json::from_str(include_str!("../src/openapi.json")).unwrap();
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let role = match op["x-required-role"].as_str() {
                Some("none") => None,
                Some(role) => Some(role.parse::<Role>().unwrap()),
                None => panic!("{method} {path} names no role"),
            };
            out.push((method.to_uppercase(), path.clone(), role));
        }
    }
    assert!(out.len() > 40, "{} operations", out.len());
    out
}

#[tokio::test]
async fn every_endpoint_refuses_exactly_the_callers_below_its_role() {
    let creds = credentials();
    let app = start_with(CONFIG, creds.options);
    let mut checked = 0;
    for (method, path, required) in operations() {
        let uri = concrete(&path);
        // Anonymous: 401 wherever a role is needed, never 401/403 on a public endpoint.
        let got = status(&app, request(&method, &uri, None)).await;
        match required {
            Some(_) => assert_eq!(got, 401, "anonymous {method} {path}"),
            None => assert!(got != 401 && got != 403, "anonymous {method} {path}: {got}"),
        }
        for (role, token) in &creds.tokens {
            let got = status(&app, request(&method, &uri, Some(token))).await;
            let allowed = required.is_none_or(|r| role.allows(r));
            if allowed {
                assert!(got != 401 && got != 403, "{role} {method} {path}: {got}");
            } else {
                assert_eq!(got, 403, "{role} {method} {path}");
            }
            checked += 1;
        }
    }
    assert!(checked > 160);
    app.stop().await;
}

#[tokio::test]
async fn refusals_name_the_role_needed_and_the_role_held() {
    let creds = credentials();
    let app = start_with(CONFIG, creds.options);
    let put = put_json(&format!("/api/v1/context/{LINE_1}"), r#"{"batch": "B-1"}"#);
    let mut put = put;
    put.headers_mut().insert(
        "authorization",
        format!("Bearer {}", creds.tokens[&Role::Operator])
            .parse()
            .unwrap(),
    );
    let reply = call(&app.router, put).await;
    assert_eq!(reply.status, 403);
    assert_eq!(reply.error().0, "forbidden");
    let message = reply.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("`engineer`") && message.contains("`operator`"),
        "{message}"
    );

    let reply = get(&app.router, "/api/v1/assets").await;
    assert_eq!(reply.status, 401);
    assert!(reply.headers.contains_key("www-authenticate"));
    // Health stays open for monitoring.
    assert_eq!(get(&app.router, "/api/v1/health").await.status, 200);
    app.stop().await;
}

#[tokio::test]
async fn open_mode_makes_everyone_an_anonymous_admin() {
    let app = start();
    let reply = get(&app.router, "/api/v1/session").await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json(),
        json!({"user": "anonymous", "role": "admin", "method": "anonymous"})
    );
    app.stop().await;
}

fn basic(user: &str, password: &str) -> String {
    use base64ct::{Base64, Encoding};
    format!(
        "Basic {}",
        Base64::encode_string(format!("{user}:{password}").as_bytes())
    )
}

#[tokio::test]
async fn a_change_is_recorded_for_the_authenticated_user_never_for_a_header() {
    let creds = credentials();
    let app = start_with(CONFIG, creds.options);
    let uri = format!("/api/v1/context/{LINE_1}");
    // Hole 9: erik's credentials with someone else's name in the old header.
    let mut spoofed = put_json(&uri, r#"{"batch": "B-9"}"#);
    spoofed
        .headers_mut()
        .insert("authorization", basic("erik", PASSWORD).parse().unwrap());
    spoofed
        .headers_mut()
        .insert("x-backplane-user", "mallory".parse().unwrap());
    let reply = call(&app.router, spoofed).await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.error(),
        ("header_not_accepted".into(), Some("X-Backplane-User".into()))
    );

    let mut honest = put_json(&uri, r#"{"batch": "B-9"}"#);
    honest
        .headers_mut()
        .insert("authorization", basic("erik", PASSWORD).parse().unwrap());
    let reply = call(&app.router, honest).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["events"][0]["by"], "erik");

    let mut wrong = put_json(&uri, r#"{"batch": "B-10"}"#);
    wrong.headers_mut().insert(
        "authorization",
        basic("erik", "not the password").parse().unwrap(),
    );
    assert_eq!(call(&app.router, wrong).await.status, 401);
    app.stop().await;
}

/// `(status, json, headers)` of a request made with `cookie` and optional CSRF token.
async fn with_cookie(app: &Running, mut request: Request<Body>, cookie: &str, csrf: Option<&str>) -> Reply {
    request.headers_mut().insert("cookie", cookie.parse().unwrap());
    if let Some(csrf) = csrf {
        request
            .headers_mut()
            .insert("x-csrf-token", csrf.parse().unwrap());
    }
    call(&app.router, request).await
}

#[tokio::test]
async fn a_session_cookie_authenticates_and_changes_need_its_csrf_token() {
    let creds = credentials();
    let app = start_with(CONFIG, creds.options);
    let login = post_json(
        "/api/v1/session",
        &json!({"user": "erik", "password": PASSWORD}).to_string(),
    );
    let reply = call(&app.router, login).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let set_cookie = reply.headers["set-cookie"].to_str().unwrap().to_owned();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(flag), "{set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "plain HTTP: {set_cookie}");
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let session = reply.json();
    assert_eq!(
        (session["user"].as_str(), session["role"].as_str()),
        (Some("erik"), Some("engineer"))
    );
    let csrf = session["csrf_token"].as_str().unwrap().to_owned();
    assert!(session["expires"].as_str().is_some());

    let me = Request::get("/api/v1/session").body(Body::empty()).unwrap();
    let reply = with_cookie(&app, me, &cookie, None).await;
    assert_eq!(reply.json()["user"], "erik");
    assert_eq!(reply.json()["csrf_token"], csrf.as_str());

    let uri = format!("/api/v1/context/{LINE_1}");
    let reply = with_cookie(&app, put_json(&uri, r#"{"batch": "B-1"}"#), &cookie, None).await;
    assert_eq!(reply.status, 403);
    assert_eq!(reply.error().0, "csrf");
    let reply = with_cookie(
        &app,
        put_json(&uri, r#"{"batch": "B-1"}"#),
        &cookie,
        Some("forged"),
    )
    .await;
    assert_eq!(reply.error().0, "csrf");
    let reply = with_cookie(&app, put_json(&uri, r#"{"batch": "B-1"}"#), &cookie, Some(&csrf)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["events"][0]["by"], "erik");

    // Bearer calls need no CSRF token.
    let mut bearer = put_json(&uri, r#"{"batch": "B-2"}"#);
    bearer.headers_mut().insert(
        "authorization",
        format!("Bearer {}", creds.tokens[&Role::Admin]).parse().unwrap(),
    );
    assert_eq!(call(&app.router, bearer).await.status, 200);

    let logout = Request::delete("/api/v1/session").body(Body::empty()).unwrap();
    let reply = with_cookie(&app, logout, &cookie, Some(&csrf)).await;
    assert_eq!(reply.status, 204);
    let me = Request::get("/api/v1/session").body(Body::empty()).unwrap();
    assert_eq!(with_cookie(&app, me, &cookie, None).await.status, 401);
    app.stop().await;
}

#[tokio::test]
async fn repeated_failed_logins_are_held_off_and_audited() {
    let creds = credentials();
    let recorder = Arc::new(MemoryRecorder::default());
    let services = Services::one(AuditTrail::SERVICE, Arc::new(AuditTrail(recorder.clone())));
    let app = start_with_services(CONFIG, creds.options, services);
    let login = |password: &str| {
        post_json(
            "/api/v1/session",
            &json!({"user": "anna", "password": password}).to_string(),
        )
    };
    for _ in 0..5 {
        let reply = call(&app.router, login("wrong password")).await;
        assert_eq!(reply.status, 401);
    }
    // Now even the right password waits.
    let reply = call(&app.router, login(PASSWORD)).await;
    assert_eq!(reply.status, 429);
    assert_eq!(reply.error().0, "login_throttled");
    let wait: u64 = reply.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(wait >= 1);

    let logins: Vec<_> = recorder
        .events()
        .into_iter()
        .filter(|e| e.action == "login" && e.target == "anna")
        .collect();
    assert_eq!(logins.len(), 6);
    assert!(
        logins
            .iter()
            .all(|e| matches!(e.outcome, Outcome::Refused(_)) && e.who.is_none())
    );
    app.stop().await;
}

/// Serves `app`'s router on a loopback port; stops when the sender is dropped or sent.
async fn serve(app: &Running) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(backplane_api::serve(
        listener,
        app.router.clone(),
        backplane_api::ServeLimits::default(),
        async {
            let _ = stopped.await;
        },
    ));
    (address, stop)
}

#[tokio::test]
async fn changes_and_refusals_are_audited_with_the_peer_address() {
    let creds = credentials();
    let recorder = Arc::new(MemoryRecorder::default());
    let services = Services::one(AuditTrail::SERVICE, Arc::new(AuditTrail(recorder.clone())));
    let app = start_with_services(CONFIG, creds.options, services);
    let (address, stop) = serve(&app).await;
    let client = reqwest::Client::new();
    let uri = format!("http://{address}/api/v1/context/{LINE_1}");

    let set = client
        .put(&uri)
        .bearer_auth(&creds.tokens[&Role::Engineer])
        .json(&json!({"work_order": "WO-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    let clear = client
        .delete(&uri)
        .bearer_auth(&creds.tokens[&Role::Engineer])
        .send()
        .await
        .unwrap();
    assert_eq!(clear.status(), 200);
    let refused = client
        .put(&uri)
        .bearer_auth(&creds.tokens[&Role::Viewer])
        .json(&json!({"work_order": "WO-2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);

    let events = recorder.events();
    let local = format!("http 127.0.0.1:");
    let set = events.iter().find(|e| e.action == "context.set").unwrap();
    assert_eq!(set.who.as_ref().unwrap().name, "engineer");
    assert_eq!(set.target, LINE_1);
    assert!(set.from.starts_with(&local), "{}", set.from);
    assert_eq!(set.old, Some(json!({})));
    assert_eq!(set.new, Some(json!({"work_order": "WO-1"})));
    assert_eq!(set.outcome, Outcome::Done);
    let clear = events.iter().find(|e| e.action == "context.clear").unwrap();
    assert_eq!(clear.old, Some(json!({"work_order": "WO-1"})));
    assert_eq!(clear.new, Some(json!({})));
    let refusal = events
        .iter()
        .find(|e| matches!(&e.outcome, Outcome::Refused(r) if r.starts_with("forbidden")))
        .unwrap();
    assert_eq!(refusal.who.as_ref().unwrap().name, "viewer");
    assert!(refusal.from.starts_with(&local));
    assert_eq!(refusal.target, format!("PUT /api/v1/context/{LINE_1}"));
    let _ = stop.send(());
    app.stop().await;
}

#[tokio::test]
async fn a_client_over_its_rate_gets_429_while_health_and_metrics_tell() {
    let creds = credentials();
    let options = ApiOptions {
        rate_limit: RateLimit {
            requests_per_second: 1,
            burst: 3,
        },
        ..creds.options
    };
    let app = start_with(CONFIG, options);
    let (address, stop) = serve(&app).await;
    let client = reqwest::Client::new();
    let token = &creds.tokens[&Role::Viewer];
    let base = format!("http://{address}");
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let r = client
            .get(format!("{base}/api/v1/assets"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            assert!(
                r.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap()
                    >= 1
            );
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["error"]["code"], "rate_limited");
        }
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
    // Health is exempt.
    let health = client.get(format!("{base}/api/v1/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    // The in-process router has no client address and no limit: read the counter there.
    let metrics = app
        .router
        .clone()
        .oneshot(
            Request::get("/metrics")
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let text = axum::body::to_bytes(metrics.into_body(), 1 << 20).await.unwrap();
    let text = String::from_utf8(text.to_vec()).unwrap();
    assert!(text.contains("backplane_api_rate_limited_total 1\n"), "{text}");
    let _ = stop.send(());
    app.stop().await;
}
