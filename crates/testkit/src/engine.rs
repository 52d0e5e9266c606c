//! Engines for tests: a plan from TOML text with the data in a test's own directory and a
//! short restart backoff, the latest value of a tag, and a bounded wait for a condition.

use std::path::Path;
use std::time::Duration;

use backplane_config::Plan;
use backplane_engine::supervisor::BackoffPolicy;
use backplane_engine::{Engine, EngineHandle, EngineOptions, Latest, Registry};

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
    backoff(Duration::from_millis(50), Duration::from_millis(200))
}

/// Default options but for the restart backoff, for tests whose peers need longer to
/// come back than [`options`] allows.
pub fn backoff(base: Duration, cap: Duration) -> EngineOptions {
    EngineOptions {
        backoff: BackoffPolicy { base, cap },
        ..EngineOptions::default()
    }
}

/// Starts an engine on `config` (see [`plan`] and [`options`]). Needs a Tokio runtime.
pub fn start(config: &str, data_dir: &Path, registry: &Registry) -> Engine {
    start_with(config, data_dir, registry, options())
}

/// [`start`] with other engine options (e.g. a [`backoff`]).
pub fn start_with(config: &str, data_dir: &Path, registry: &Registry, options: EngineOptions) -> Engine {
    Engine::start(plan(config, data_dir, registry), registry, options).expect("the engine starts")
}

/// The latest value of the tag at `path` (`enterprise/site/…/asset/attribute`), if any.
pub fn latest(handle: &EngineHandle, path: &str) -> Option<Latest> {
    let tag = handle.topology().tag_by_path(path)?;
    handle.latest(tag.id)
}

/// The value of one series in a metrics text (`GET /metrics`, `EngineHandle::metrics_text`),
/// named with its labels as printed, e.g. `backplane_sink_dropped_total{name="file"}`.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Polls `check` every 10 ms until it gives a value, for at most `limit`; the limit only
/// turns a hang into a failure naming `what`, it is not a timing assertion.
pub async fn eventually<T>(what: &str, limit: Duration, check: impl FnMut() -> Option<T>) -> T {
    eventually_every(what, limit, Duration::from_millis(10), check).await
}

/// [`eventually`], polling every `every` (for checks that cost their peer something).
pub async fn eventually_every<T>(
    what: &str,
    limit: Duration,
    every: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("gave up waiting for {what} after {limit:?}");
        }
        tokio::time::sleep(every).await;
    }
}
