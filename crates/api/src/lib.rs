//! Backplane's HTTP API: how IT applications, the web UI and monitoring read the unified
//! model, set production context and follow live changes, without ever talking to a PLC.
//!
//! Everything is served from one [`router`] over a running engine's [`EngineHandle`];
//! [`serve`] runs it with graceful shutdown and bounded connections. Every route is listed once, in `endpoints()`,
//! which both builds the router and is checked against the hand-written OpenAPI document
//! in tests.
//!
//! Layout:
//! - `error.rs`: `ApiError`, the single JSON error shape, and the
//!   fallbacks for unknown routes and methods.
//! - `auth.rs`: authentication (tokens, HTTP Basic, session cookies, TLS identities),
//!   the role each endpoint needs, CSRF for cookie changes, the per-client rate limit.
//! - `actor.rs`: the authenticated identity handlers attribute changes to and audit.
//! - `login.rs` + `sessions.rs`: UI login, logout and the in-memory session table.
//! - `throttle.rs`: slowing down password guessing; `ratelimit.rs`: per-client token
//!   buckets.
//! - [`users`]: the users file (Argon2id passwords, hashed machine tokens), from
//!   backplane-security, read by the gateway and written by `backplane users`.
//! - `body.rs`: JSON request bodies into typed requests, naming the field at fault.
//! - `origin.rs`: host names (DNS rebinding), cross-site changes, JSON-only bodies.
//! - `assets.rs`: the asset tree, one asset with its attributes, latest values by prefix.
//! - `context.rs`: reading, setting and clearing production context.
//! - `production.rs`: work orders, lots and genealogy, downtime reasons, machine states,
//!   OEE, operators and operator forms, through the production stage's
//!   `ProductionHandle` service: every change is a `backplane_production::Command` run
//!   between two batches, every query reads the last published copy of the state.
//! - `webhooks.rs`: documents POSTed by other systems to an `http` source in webhook mode,
//!   checked against the route's schema (the source kind's `Inbound` service).
//! - `writes.rs`: machine writes through the engine's write gate, as the caller's identity.
//! - `lineage.rs`: where a value came from.
//! - `discover.rs`: browsing a device (the kinds' discovery) for engineers, bounded and audited.
//! - `audit.rs`: the audit trail, queried and exported.
//! - [`admin`]: the configuration's plan and reload, handed to the program owning the engine.
//! - `history.rs`: queries against the embedded historian (raw, latest, aggregates,
//!   events) by tag, asset or model attribute and by production context; each historian
//!   sink's store (an engine service named by the sink) is queried by name.
//! - `stream.rs`: live changes over WebSocket and Server-Sent Events.
//! - `server.rs`: the accept loop with a connection cap and a header-read timeout.
//! - [`swap`]: the router in force, replaced when the gateway reloads its configuration.
//! - `ops.rs`: health, metrics and the index of links.
//! - `ui.rs`: the web UI's files (`backplane_ui`) at `/` and `/ui/`.
//! - `strict.rs`: query parameters the OpenAPI document does not declare are refused.
//! - `openapi.rs` + `openapi.json`: the OpenAPI 3.1 document, written by hand.
//!
//! The API's contract for people is `docs/api.md`; for machines, `/api/v1/openapi.json`.

mod actor;
pub mod admin;
mod assets;
mod audit;
mod auth;
mod benchmark;
mod body;
mod context;
mod discover;
mod error;
mod history;
mod hub;
mod lineage;
mod login;
mod openapi;
mod ops;
mod origin;
mod production;
mod ratelimit;
mod server;
mod sessions;
mod stream;
mod strict;
pub mod swap;
mod throttle;
mod tls;
mod ui;
mod versions;
mod webhooks;
/// The users file lives in backplane-security (the OPC UA server reads it too).
pub use backplane_security::users;
mod writes;

use std::fmt;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use backplane_engine::EngineHandle;
use backplane_historian::Store;
use backplane_production::ProductionHandle;
use backplane_security::{AuditTrail, Role};
pub use ratelimit::RateLimit;
pub use server::{ServeLimits, refused_connections, serve, serve_tls};
pub use sessions::SessionSettings;
pub use tls::{CertificateSource, Tls, TlsError, TlsOptions, TlsServer, tls_handshake_failures};
use tokio_util::sync::CancellationToken;
use tower_http::trace::TraceLayer;
use users::Users;

/// How the API is exposed.
#[derive(Clone)]
pub struct ApiOptions {
    /// The resolved `[api] token`: an admin machine token named `token`.
    pub token: Option<String>,
    /// Users and machine tokens (`[api] users`). With neither a token nor users the API is
    /// open: everyone is an anonymous admin (loopback only).
    pub users: Users,
    pub sessions: SessionSettings,
    pub rate_limit: RateLimit,
    /// Largest request body accepted; larger ones get 413.
    pub max_body_bytes: usize,
    /// Host names answered besides IP addresses and `localhost` (see `origin.rs`).
    pub hosts: Vec<String>,
    /// Where the web UI's files come from: built in, or a directory (UI development).
    pub ui: backplane_ui::Ui,
    /// Where `POST /api/v1/admin/reload` and `GET /api/v1/admin/plan` go; `None`: 409.
    pub reload: Option<admin::Reloader>,
}

impl Default for ApiOptions {
    fn default() -> ApiOptions {
        ApiOptions {
            token: None,
            users: Users::default(),
            sessions: SessionSettings::default(),
            rate_limit: RateLimit::default(),
            max_body_bytes: 64 * 1024,
            hosts: Vec::new(),
            ui: backplane_ui::Ui::Embedded,
            reload: None,
        }
    }
}

// Hand-written so the token never ends up in a log line.
impl fmt::Debug for ApiOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiOptions")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("users", &self.users)
            .field("sessions", &self.sessions)
            .field("rate_limit", &self.rate_limit)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("hosts", &self.hosts)
            .field("ui", &self.ui)
            .finish()
    }
}

/// What every handler gets.
#[derive(Clone, Debug)]
pub(crate) struct AppState {
    pub engine: EngineHandle,
    /// Credentials, sessions, limits and the audit trail.
    pub auth: Arc<auth::Auth>,
    /// For error messages; the limit itself is enforced by `DefaultBodyLimit`.
    pub max_body_bytes: usize,
    /// Every historian sink's store, by sink name (in name order): the engine's `Store`
    /// services. None: the history endpoints answer 404 `historian_not_configured`.
    pub histories: Arc<[(String, Arc<Store>)]>,
    /// The production stage's service. None: the production endpoints answer 404
    /// `production_not_configured`.
    pub production: Option<Arc<ProductionHandle>>,
    /// Slots for history and benchmark queries (memory and CPU heavy): `HEAVY_QUERIES`.
    pub heavy: Arc<tokio::sync::Semaphore>,
    /// The web UI's files.
    pub ui: Arc<backplane_ui::Ui>,
    /// One discovery at a time per gateway (`discover.rs`).
    pub discovering: Arc<tokio::sync::Semaphore>,
    /// Configuration reloads (`admin.rs`); `None` when the configuration is not a file.
    pub reload: Option<admin::Reloader>,
}

/// History and benchmark queries running at once; more wait briefly, then get 503.
pub(crate) const HEAVY_QUERIES: usize = 4;

/// The HTTP methods the API uses; one place maps them to axum and to OpenAPI names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verb {
    Get,
    Post,
    Put,
    Delete,
}

impl Verb {
    fn filter(self) -> MethodFilter {
        match self {
            Verb::Get => MethodFilter::GET,
            Verb::Post => MethodFilter::POST,
            Verb::Put => MethodFilter::PUT,
            Verb::Delete => MethodFilter::DELETE,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
            Verb::Put => "PUT",
            Verb::Delete => "DELETE",
        }
    }
}

/// One route: method, axum path, the role it needs and handler.
pub(crate) struct Endpoint {
    pub verb: Verb,
    pub path: &'static str,
    /// The least role allowed; None for the public endpoints (health, login), which need
    /// no authentication at all.
    pub role: Option<Role>,
    pub handler: MethodRouter<AppState>,
}

impl Endpoint {
    /// The path as OpenAPI writes it: axum's wildcard `{*path}` becomes `{path}`.
    pub fn openapi_path(&self) -> String {
        self.path.replace("{*", "{")
    }
}

fn endpoint<H, T>(verb: Verb, path: &'static str, role: impl Into<Option<Role>>, handler: H) -> Endpoint
where
    H: Handler<T, AppState>,
    T: 'static,
{
    Endpoint {
        verb,
        path,
        role: role.into(),
        handler: on(verb.filter(), handler),
    }
}

/// Every route of the API. The router is built from this list and the OpenAPI test checks
/// the document against it, so the two cannot drift apart.
pub(crate) fn endpoints() -> Vec<Endpoint> {
    use Verb::{Delete, Get, Post, Put};
    // Reads: viewer. Entries, documents other systems post (webhooks) and production
    // actions at the line: operator. Context (it
    // labels every value recorded) and reading the audit trail: engineer. Exporting the
    // whole trail, the configuration's plan and reload: admin. `PUBLIC`: no authentication.
    const PUBLIC: Option<Role> = None;
    let (viewer, operator, engineer, admin) = (Role::Viewer, Role::Operator, Role::Engineer, Role::Admin);
    vec![
        endpoint(Get, "/api/v1", viewer, ops::index),
        endpoint(Post, "/api/v1/session", PUBLIC, login::login),
        endpoint(Get, "/api/v1/session", viewer, login::whoami),
        endpoint(Delete, "/api/v1/session", viewer, login::logout),
        endpoint(Get, "/api/v1/assets", viewer, assets::tree),
        endpoint(Get, "/api/v1/assets/{*path}", viewer, assets::asset),
        endpoint(Get, "/api/v1/values", viewer, assets::values),
        endpoint(Get, "/api/v1/context/{*path}", viewer, context::get),
        endpoint(Put, "/api/v1/context/{*path}", engineer, context::put),
        endpoint(Delete, "/api/v1/context/{*path}", engineer, context::delete),
        endpoint(Get, "/api/v1/lineage/{*tagpath}", viewer, lineage::get),
        endpoint(Get, "/api/v1/history/series", viewer, history::series),
        endpoint(Get, "/api/v1/history/raw", viewer, history::raw),
        endpoint(Get, "/api/v1/history/latest", viewer, history::latest),
        endpoint(Get, "/api/v1/history/aggregate", viewer, history::aggregate),
        endpoint(Get, "/api/v1/history/events", viewer, history::events),
        endpoint(
            Get,
            "/api/v1/production/work-orders",
            viewer,
            production::work_orders,
        ),
        endpoint(
            Post,
            "/api/v1/production/work-orders",
            operator,
            production::create_work_order,
        ),
        endpoint(
            Get,
            "/api/v1/production/work-orders/{id}",
            viewer,
            production::work_order,
        ),
        endpoint(
            Post,
            "/api/v1/production/work-orders/{id}/{action}",
            operator,
            production::work_order_action,
        ),
        endpoint(Get, "/api/v1/production/lots", viewer, production::lots),
        endpoint(Post, "/api/v1/production/lots", operator, production::create_lot),
        endpoint(Get, "/api/v1/production/lots/{id}", viewer, production::lot),
        endpoint(
            Post,
            "/api/v1/production/lots/{id}/status",
            operator,
            production::lot_status,
        ),
        endpoint(
            Get,
            "/api/v1/production/lots/{id}/trace",
            viewer,
            production::trace,
        ),
        endpoint(
            Post,
            "/api/v1/production/genealogy",
            operator,
            production::genealogy,
        ),
        endpoint(Get, "/api/v1/production/downtimes", viewer, production::downtimes),
        endpoint(
            Post,
            "/api/v1/production/downtimes/{id}/reason",
            operator,
            production::assign_reason,
        ),
        endpoint(Get, "/api/v1/production/reasons", viewer, production::reasons),
        endpoint(Get, "/api/v1/production/states", viewer, production::states),
        endpoint(Get, "/api/v1/production/oee", viewer, production::oee),
        endpoint(Get, "/api/v1/production/operators", viewer, production::operators),
        endpoint(
            Post,
            "/api/v1/production/operators/sign-in",
            operator,
            production::sign_in,
        ),
        endpoint(
            Post,
            "/api/v1/production/operators/sign-out",
            operator,
            production::sign_out,
        ),
        endpoint(Get, "/api/v1/benchmark/oee", viewer, benchmark::oee),
        endpoint(Get, "/api/v1/benchmark/downtime", viewer, benchmark::downtime),
        endpoint(Get, "/api/v1/hub/sites", viewer, hub::sites),
        endpoint(Get, "/api/v1/audit", engineer, audit::query),
        endpoint(Get, "/api/v1/audit/export", admin, audit::export),
        endpoint(Get, "/api/v1/config/versions", viewer, versions::list),
        endpoint(Get, "/api/v1/config/versions/{version}", engineer, versions::get),
        endpoint(Get, "/api/v1/admin/plan", admin, crate::admin::plan),
        endpoint(Post, "/api/v1/admin/reload", admin, crate::admin::reload),
        endpoint(Get, "/api/v1/forms", viewer, production::forms),
        endpoint(Get, "/api/v1/forms/{name}", viewer, production::form),
        endpoint(Get, "/api/v1/forms/{name}/entries", viewer, production::entries),
        endpoint(
            Post,
            "/api/v1/forms/{name}/entries",
            operator,
            production::submit_entry,
        ),
        endpoint(Post, "/api/v1/writes", operator, writes::write),
        endpoint(Post, "/api/v1/webhooks/{name}", operator, webhooks::post),
        endpoint(Post, "/api/v1/discover", engineer, discover::discover),
        endpoint(Get, "/api/v1/stream/ws", viewer, stream::websocket),
        endpoint(Get, "/api/v1/stream/sse", viewer, stream::sse),
        endpoint(Get, "/api/v1/health", PUBLIC, ops::health),
        endpoint(Get, "/api/v1/openapi.json", viewer, openapi::document),
        endpoint(Get, "/metrics", viewer, ops::metrics),
    ]
}

/// The API over a running engine. The history and production endpoints use the engine's
/// services: every historian store (by sink name) and the production handle.
pub fn router(engine: EngineHandle, options: ApiOptions) -> Router {
    let audit = engine.services().named::<AuditTrail>(AuditTrail::SERVICE);
    Api::new(options, audit).router(engine)
}

/// What outlives one engine when the gateway reloads its configuration: credentials,
/// sessions and rate limits (nobody is logged out by a reload), the API's settings and
/// limits. [`Api::router`] serves one engine; [`swap::RouterSwap`] changes the engine
/// served without closing the listener.
#[derive(Clone)]
pub struct Api {
    auth: Arc<auth::Auth>,
    max_body_bytes: usize,
    hosts: origin::AllowedHosts,
    ui: Arc<backplane_ui::Ui>,
    heavy: Arc<tokio::sync::Semaphore>,
    discovering: Arc<tokio::sync::Semaphore>,
    reload: Option<admin::Reloader>,
}

impl fmt::Debug for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Api")
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

impl Api {
    pub fn new(options: ApiOptions, audit: Option<Arc<AuditTrail>>) -> Api {
        Api {
            auth: Arc::new(auth::Auth::new(
                options.token,
                options.users,
                options.sessions,
                options.rate_limit,
                audit,
            )),
            max_body_bytes: options.max_body_bytes,
            hosts: origin::AllowedHosts(options.hosts.into()),
            ui: Arc::new(options.ui),
            heavy: Arc::new(tokio::sync::Semaphore::new(HEAVY_QUERIES)),
            discovering: Arc::new(tokio::sync::Semaphore::new(1)),
            reload: options.reload,
        }
    }

    /// The API over `engine`, with its services: every historian store (by sink name)
    /// and the production handle.
    pub fn router(&self, engine: EngineHandle) -> Router {
        let services = engine.services();
        let histories = services
            .all::<Store>()
            .into_iter()
            .map(|(name, store)| (name.to_owned(), store))
            .collect();
        let production = services.get::<ProductionHandle>();
        let hosts = self.hosts.clone();
        let state = AppState {
            auth: self.auth.clone(),
            max_body_bytes: self.max_body_bytes,
            histories,
            production,
            heavy: self.heavy.clone(),
            ui: self.ui.clone(),
            discovering: self.discovering.clone(),
            reload: self.reload.clone(),
            engine,
        };
        let declared = strict::Declared::from_document(openapi::DOCUMENT);
        let mut router = Router::new();
        for e in endpoints() {
            let allowed = declared.names(e.verb.name(), &e.openapi_path());
            let guarded = state.clone();
            let role = e.role;
            let handler = e
                .handler
                .layer(axum::middleware::from_fn(move |request, next| {
                    strict::check(allowed.clone(), request, next)
                }))
                // Outermost: nothing runs for a caller who may not call the endpoint.
                .layer(axum::middleware::from_fn(move |request, next| {
                    auth::guard(guarded.clone(), role, request, next)
                }));
            router = router.route(e.path, handler);
        }
        // The UI is not part of the API (nor of its OpenAPI document): public files, no data.
        router = router
            .route("/", axum::routing::get(ui::index))
            .route("/ui/{*path}", axum::routing::get(ui::file));
        router
            .method_not_allowed_fallback(error::wrong_method)
            .fallback(error::no_route)
            .layer(axum::middleware::from_fn(move |request, next| {
                origin::check(hosts.clone(), request, next)
            }))
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                auth::rate_limit,
            ))
            .layer(DefaultBodyLimit::max(self.max_body_bytes))
            .layer(TraceLayer::new_for_http())
            .with_state(state)
    }
}

/// Serializes `value` straight into a JSON response. Going through `serde_json::Value`
/// would sort object keys and lose the model order of attributes.
pub(crate) fn json_response<T: serde::Serialize + ?Sized>(value: &T) -> Result<Response, error::ApiError> {
    let body = serde_json::to_vec(value).map_err(|e| error::ApiError::internal(e.to_string()))?;
    Ok((
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body,
    )
        .into_response())
}

/// Tells long-lived streams that the server is shutting down, so they close and the
/// graceful shutdown is not held open by a dashboard that never disconnects.
#[derive(Clone, Debug)]
pub(crate) struct StreamShutdown(pub CancellationToken);
