//! Serving another engine without closing the listener: a configuration reload builds the
//! new engine's router and puts it in place; requests already running finish on the old
//! one, every new request goes to the new one.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::response::Response;
use tower::ServiceExt;
use tower::util::Oneshot;

/// The router in force; cheap to clone (all clones see the same router).
#[derive(Clone)]
pub struct RouterSwap(Arc<ArcSwap<Router>>);

impl std::fmt::Debug for RouterSwap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RouterSwap")
    }
}

impl RouterSwap {
    pub fn new(router: Router) -> RouterSwap {
        RouterSwap(Arc::new(ArcSwap::from_pointee(router)))
    }

    /// Puts `router` in place for every request from now on.
    pub fn replace(&self, router: Router) {
        self.0.store(Arc::new(router));
    }

    /// A router that hands every request to the one in force, for [`crate::serve_tls`].
    pub fn router(&self) -> Router {
        Router::new().fallback_service(self.clone())
    }
}

impl tower::Service<Request<Body>> for RouterSwap {
    type Response = Response;
    type Error = Infallible;
    type Future = Oneshot<Router, Request<Body>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        Router::clone(&self.0.load()).oneshot(request)
    }
}
