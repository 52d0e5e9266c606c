//! Engines for tests: a plan from TOML text with the data in a test's own directory and a
//! short restart backoff, and a bounded wait for a condition. Shared by every crate's
//! integration tests; included with
//! `#[path = "../../../tests/support/engine.rs"] mod engine;`.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use backplane_config::Plan;
use backplane_engine::supervisor::BackoffPolicy;
use backplane_engine::{Engine, EngineOptions, Registry};

/// Loads `config` against `registry`'s kinds, with `data_dir` as the gateway's data
/// directory; panics listing every diagnostic.
pub fn plan(config: &str, data_dir: &Path, registry: &Registry) -> Plan {
    let mut plan = backplane_config::load_str(config, Path::new("test.toml"), &registry.catalog())
        .unwrap_or_else(|d| {
            panic!(
                "config: {}",
                d.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
            )
        });
    plan.gateway.data_dir = data_dir.to_path_buf();
    plan
}

/// Restarts after 50–200 ms instead of seconds, so failure tests run quickly.
pub fn options() -> EngineOptions {
    EngineOptions {
        backoff: BackoffPolicy {
            base: Duration::from_millis(50),
            cap: Duration::from_millis(200),
        },
        ..EngineOptions::default()
    }
}

/// Starts an engine on `config` (see [`plan`] and [`options`]). Needs a Tokio runtime.
pub fn start(config: &str, data_dir: &Path, registry: &Registry) -> Engine {
    Engine::start(plan(config, data_dir, registry), registry, options()).unwrap()
}

/// Polls `check` every 10 ms until it gives a value, for at most `limit`; the limit only
/// turns a hang into a failure naming `what`, it is not a timing assertion.
pub async fn eventually<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("gave up waiting for {what} after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
