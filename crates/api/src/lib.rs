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
//! - `auth.rs`: bearer-token check for mutating calls.
//! - `origin.rs`: host names (DNS rebinding), cross-site changes, JSON-only bodies.
//! - `assets.rs`: the asset tree, one asset with its attributes, latest values by prefix.
//! - `context.rs`: reading, setting and clearing production context.
//! - `production.rs`: work orders, lots and genealogy, downtime reasons, machine states,
//!   OEE, operators and operator forms, through the production stage's
//!   `ProductionHandle` service: every change is a `backplane_production::Command` run
//!   between two batches, every query reads the last published copy of the state.
//! - `writes.rs`: machine writes through the engine's write gate, as the caller's identity.
//! - `lineage.rs`: where a value came from.
//! - `history.rs`: queries against the embedded historian (raw, latest, aggregates,
//!   events) by tag, asset or model attribute and by production context; each historian
//!   sink's store (an engine service named by the sink) is queried by name.
//! - `stream.rs`: live changes over WebSocket and Server-Sent Events.
//! - `server.rs`: the accept loop with a connection cap and a header-read timeout.
//! - `ops.rs`: health, metrics and the index of links.
//! - `strict.rs`: query parameters the OpenAPI document does not declare are refused.
//! - `openapi.rs` + `openapi.json`: the OpenAPI 3.1 document, written by hand.
//!
//! The API's contract for people is `docs/api.md`; for machines, `/api/v1/openapi.json`.

mod assets;
mod auth;
mod benchmark;
mod context;
mod error;
mod history;
mod hub;
mod lineage;
mod openapi;
mod ops;
mod origin;
mod production;
mod server;
mod stream;
mod strict;
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
pub use server::{ServeLimits, refused_connections, serve};
use tokio_util::sync::CancellationToken;
use tower_http::trace::TraceLayer;

/// How the API is exposed.
#[derive(Clone)]
pub struct ApiOptions {
    /// The resolved bearer token. When set, mutating calls (POST, PUT, DELETE) require
    /// `Authorization: Bearer <token>`; reads stay open.
    pub token: Option<String>,
    /// Largest request body accepted; larger ones get 413.
    pub max_body_bytes: usize,
    /// Host names answered besides IP addresses and `localhost` (see `origin.rs`).
    pub hosts: Vec<String>,
}

impl Default for ApiOptions {
    fn default() -> ApiOptions {
        ApiOptions {
            token: None,
            max_body_bytes: 64 * 1024,
            hosts: Vec::new(),
        }
    }
}

// Hand-written so the token never ends up in a log line.
impl fmt::Debug for ApiOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiOptions")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("max_body_bytes", &self.max_body_bytes)
            .field("hosts", &self.hosts)
            .finish()
    }
}

/// What every handler gets.
#[derive(Clone, Debug)]
pub(crate) struct AppState {
    pub engine: EngineHandle,
    pub token: Option<Arc<str>>,
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

/// One route: method, axum path and handler.
pub(crate) struct Endpoint {
    pub verb: Verb,
    pub path: &'static str,
    pub handler: MethodRouter<AppState>,
}

impl Endpoint {
    /// The path as OpenAPI writes it: axum's wildcard `{*path}` becomes `{path}`.
    pub fn openapi_path(&self) -> String {
        self.path.replace("{*", "{")
    }
}

fn endpoint<H, T>(verb: Verb, path: &'static str, handler: H) -> Endpoint
where
    H: Handler<T, AppState>,
    T: 'static,
{
    Endpoint {
        verb,
        path,
        handler: on(verb.filter(), handler),
    }
}

/// Every route of the API. The router is built from this list and the OpenAPI test checks
/// the document against it, so the two cannot drift apart.
pub(crate) fn endpoints() -> Vec<Endpoint> {
    use Verb::{Delete, Get, Post, Put};
    vec![
        endpoint(Get, "/api/v1", ops::index),
        endpoint(Get, "/api/v1/assets", assets::tree),
        endpoint(Get, "/api/v1/assets/{*path}", assets::asset),
        endpoint(Get, "/api/v1/values", assets::values),
        endpoint(Get, "/api/v1/context/{*path}", context::get),
        endpoint(Put, "/api/v1/context/{*path}", context::put),
        endpoint(Delete, "/api/v1/context/{*path}", context::delete),
        endpoint(Get, "/api/v1/lineage/{*tagpath}", lineage::get),
        endpoint(Get, "/api/v1/history/series", history::series),
        endpoint(Get, "/api/v1/history/raw", history::raw),
        endpoint(Get, "/api/v1/history/latest", history::latest),
        endpoint(Get, "/api/v1/history/aggregate", history::aggregate),
        endpoint(Get, "/api/v1/history/events", history::events),
        endpoint(Get, "/api/v1/production/work-orders", production::work_orders),
        endpoint(
            Post,
            "/api/v1/production/work-orders",
            production::create_work_order,
        ),
        endpoint(Get, "/api/v1/production/work-orders/{id}", production::work_order),
        endpoint(
            Post,
            "/api/v1/production/work-orders/{id}/{action}",
            production::work_order_action,
        ),
        endpoint(Get, "/api/v1/production/lots", production::lots),
        endpoint(Post, "/api/v1/production/lots", production::create_lot),
        endpoint(Get, "/api/v1/production/lots/{id}", production::lot),
        endpoint(
            Post,
            "/api/v1/production/lots/{id}/status",
            production::lot_status,
        ),
        endpoint(Get, "/api/v1/production/lots/{id}/trace", production::trace),
        endpoint(Post, "/api/v1/production/genealogy", production::genealogy),
        endpoint(Get, "/api/v1/production/downtimes", production::downtimes),
        endpoint(
            Post,
            "/api/v1/production/downtimes/{id}/reason",
            production::assign_reason,
        ),
        endpoint(Get, "/api/v1/production/reasons", production::reasons),
        endpoint(Get, "/api/v1/production/states", production::states),
        endpoint(Get, "/api/v1/production/oee", production::oee),
        endpoint(Get, "/api/v1/production/operators", production::operators),
        endpoint(Post, "/api/v1/production/operators/sign-in", production::sign_in),
        endpoint(
            Post,
            "/api/v1/production/operators/sign-out",
            production::sign_out,
        ),
        endpoint(Get, "/api/v1/benchmark/oee", benchmark::oee),
        endpoint(Get, "/api/v1/benchmark/downtime", benchmark::downtime),
        endpoint(Get, "/api/v1/hub/sites", hub::sites),
        endpoint(Get, "/api/v1/forms", production::forms),
        endpoint(Get, "/api/v1/forms/{name}", production::form),
        endpoint(Get, "/api/v1/forms/{name}/entries", production::entries),
        endpoint(Post, "/api/v1/forms/{name}/entries", production::submit_entry),
        endpoint(Post, "/api/v1/writes", writes::write),
        endpoint(Get, "/api/v1/stream/ws", stream::websocket),
        endpoint(Get, "/api/v1/stream/sse", stream::sse),
        endpoint(Get, "/api/v1/health", ops::health),
        endpoint(Get, "/api/v1/openapi.json", openapi::document),
        endpoint(Get, "/metrics", ops::metrics),
    ]
}

/// The API over a running engine. The history and production endpoints use the engine's
/// services: every historian store (by sink name) and the production handle.
pub fn router(engine: EngineHandle, options: ApiOptions) -> Router {
    let services = engine.services();
    let histories = services
        .all::<Store>()
        .into_iter()
        .map(|(name, store)| (name.to_owned(), store))
        .collect();
    let production = services.get::<ProductionHandle>();
    let hosts = origin::AllowedHosts(options.hosts.into());
    let state = AppState {
        token: options.token.map(Into::into),
        max_body_bytes: options.max_body_bytes,
        histories,
        production,
        heavy: Arc::new(tokio::sync::Semaphore::new(HEAVY_QUERIES)),
        engine,
    };
    let declared = strict::Declared::from_document(openapi::DOCUMENT);
    let mut router = Router::new();
    for e in endpoints() {
        let allowed = declared.names(e.verb.name(), &e.openapi_path());
        let handler = e.handler.layer(axum::middleware::from_fn(move |request, next| {
            strict::check(allowed.clone(), request, next)
        }));
        router = router.route(e.path, handler);
    }
    router
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .method_not_allowed_fallback(error::wrong_method)
        .fallback(error::no_route)
        .layer(axum::middleware::from_fn(move |request, next| {
            origin::check(hosts.clone(), request, next)
        }))
        .layer(DefaultBodyLimit::max(options.max_body_bytes))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
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
