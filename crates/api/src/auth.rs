//! Bearer-token authentication for mutating calls.
//!
//! Reads stay open so dashboards and monitoring need no secret; anything that changes
//! state (POST, PUT, DELETE) needs the configured token. Without a configured token the API is
//! open, which is only acceptable on loopback (the demo); `docs/api.md` says so.

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::error::ApiError;

pub(crate) async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(token) = &state.token else {
        return next.run(request).await;
    };
    if matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        // The scheme name is case-insensitive (RFC 9110, 11.1).
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, credentials)| credentials.trim());
    match presented {
        // An empty token never matches, so an empty configured token locks rather than opens.
        Some(p) if !p.is_empty() && constant_time_eq(p.as_bytes(), token.as_bytes()) => {
            next.run(request).await
        }
        Some(_) => ApiError::unauthorized("the bearer token is not valid").into_response(),
        None => ApiError::unauthorized("this call changes state and needs `Authorization: Bearer <token>`")
            .into_response(),
    }
}

/// Compares without stopping at the first difference, so response timing does not tell an
/// attacker how many leading bytes of a guess were right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_tokens_match_and_any_difference_does_not() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3cres"));
        assert!(!constant_time_eq(b"s3cret", b"s3cret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
