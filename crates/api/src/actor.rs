//! Who makes a change, as handlers see it: the authenticated [`Identity`] the `auth.rs`
//! guard put in the request, and where the request came from, for the `by` of production
//! records and context events and for the audit trail.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use backplane_security::{AuditEvent, Identity, Outcome};

use crate::AppState;
use crate::auth::origin;
use crate::error::ApiError;

#[derive(Clone, Debug)]
pub(crate) struct Actor {
    pub identity: Identity,
    /// `http <peer ip:port>`.
    pub from: String,
}

impl Actor {
    /// The name changes are attributed to.
    pub fn name(&self) -> String {
        self.identity.name.clone()
    }

    /// Records what this actor did (or tried) in the audit trail.
    pub fn record(
        &self,
        state: &AppState,
        action: &str,
        target: &str,
        old: Option<serde_json::Value>,
        new: Option<serde_json::Value>,
        outcome: Outcome,
    ) {
        state.auth.record(AuditEvent {
            who: Some(self.identity.clone()),
            from: self.from.clone(),
            action: action.to_owned(),
            target: target.to_owned(),
            old,
            new,
            outcome,
        });
    }
}

impl FromRequestParts<AppState> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Actor, ApiError> {
        // Every endpoint with a role runs behind the guard, which always inserts one.
        let identity = parts
            .extensions
            .get::<Identity>()
            .cloned()
            .ok_or_else(|| ApiError::internal("the request has no authenticated identity"))?;
        Ok(Actor {
            identity,
            from: origin(&parts.extensions),
        })
    }
}

/// The outcome of a handler's result, for the audit trail.
pub(crate) fn outcome<T>(result: &Result<T, ApiError>) -> Outcome {
    match result {
        Ok(_) => Outcome::Done,
        Err(e) if e.status.is_client_error() => Outcome::Refused(format!("{}: {}", e.code, e.message)),
        Err(e) => Outcome::Failed(format!("{}: {}", e.code, e.message)),
    }
}
