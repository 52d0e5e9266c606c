//! Supervision: runs a source or sink, and when it fails (error, unexpected return or
//! panic) reports it, waits a capped exponential backoff with jitter, and starts a fresh
//! instance. Each component has its own supervisor task, so a failing one never stops the
//! others.
//!
//! Backoff: [`BackoffPolicy`] (the n-th consecutive failure waits `min(cap, base · 2ⁿ)`
//! scaled by a random factor in [0.5, 1.0]). A component that ran for at least
//! [`STABLE_AFTER`] counts as recovered: the next failure starts again from `base`.
//!
//! A failure that retrying cannot fix ([`ComponentError::is_retryable`] is false: a
//! configuration or permanent error) is not retried: the component stays `failed` in
//! health with the error and its kind, instead of failing the same way every minute.

use std::sync::Arc;
use std::time::{Duration, Instant};

use backplane_model::Timestamp;
use futures::future::BoxFuture;
use prometheus_client::metrics::{counter::Counter, gauge::Gauge};
use rand::SeedableRng;
use tokio_util::sync::CancellationToken;

pub use backplane_connector::BackoffPolicy;
use backplane_connector::ComponentError;

use crate::health::{ComponentState, Health};
use crate::repeats::{Repeats, Say};

/// Runs this long without failing and the backoff starts over.
pub const STABLE_AFTER: Duration = Duration::from_secs(60);

/// How long a component may take to stop by itself once cancelled.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(5);

/// What a supervisor needs besides the component itself.
pub(crate) struct Supervised {
    pub component: &'static str,
    pub name: String,
    pub slot: usize,
    pub health: Arc<Health>,
    pub restarts: Counter,
    pub up: Gauge,
    pub cancel: CancellationToken,
    pub policy: BackoffPolicy,
    /// Sources must run until cancelled; a sink returning means its input closed.
    pub return_is_stop: bool,
}

type Start =
    Box<dyn FnMut() -> Result<BoxFuture<'static, Result<(), ComponentError>>, ComponentError> + Send>;
/// A duration as a person reads it in a log line: `42 s`, `17 min`, `3.5 h`.
fn minutes(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0..120 => format!("{secs} s"),
        120..7200 => format!("{} min", secs / 60),
        _ => format!("{:.1} h", secs as f64 / 3600.0),
    }
}

type OnFailure = Box<dyn FnMut() -> BoxFuture<'static, ()> + Send>;

pub(crate) async fn supervise(s: Supervised, mut start: Start, mut on_failure: OnFailure) {
    // Seeded per supervisor so jitter differs between components and gateways.
    let mut rng = rand::rngs::StdRng::from_rng(&mut rand::rng());
    let mut attempt = 0u32;
    let mut repeats = Repeats::default();
    'supervise: while !s.cancel.is_cancelled() {
        s.health.set_state(s.slot, ComponentState::Starting);
        let started = Instant::now();
        let error = match start() {
            Err(e) => Failure::Error(e),
            Ok(future) => {
                s.health.set_state(s.slot, ComponentState::Running);
                s.up.set(1);
                let mut task = tokio::spawn(future);
                let stable_at = tokio::time::Instant::from_std(started + STABLE_AFTER);
                let outcome = loop {
                    tokio::select! {
                        joined = &mut task => break joined,
                        () = s.cancel.cancelled() => {
                            if tokio::time::timeout(STOP_GRACE, &mut task).await.is_err() {
                                tracing::warn!(component = s.component, name = %s.name, "did not stop in time; aborted");
                                task.abort();
                            }
                            break 'supervise;
                        }
                        () = tokio::time::sleep_until(stable_at), if repeats.failing() => {
                            if let Some(ended) = repeats.recovered(Instant::now()) {
                                tracing::info!(component = s.component, name = %s.name, failures = ended.count, "running again after {} failures over {}", ended.count, minutes(ended.over));
                            }
                        }
                    }
                };
                match outcome {
                    Ok(Ok(())) if s.return_is_stop || s.cancel.is_cancelled() => break,
                    Ok(Ok(())) => Failure::Stopped,
                    Ok(Err(e)) => Failure::Error(e),
                    Err(join) if join.is_panic() => Failure::Panic(panic_message(join.into_panic())),
                    Err(join) => Failure::Ended(join.to_string()),
                }
            }
        };
        s.up.set(0);
        let (kind, message) = error.describe();
        if !error.is_retryable() {
            tracing::error!(component = s.component, name = %s.name, error = %message, kind, "failed; not retrying (fix the cause and restart the gateway)");
            s.health.record_failure(s.slot, message, kind, None);
            on_failure().await;
            // A source waits to be stopped. A sink returns at once: what it was given goes
            // with it, so its queue closes and the pipeline never waits for a sink that
            // will not run again, and shutdown has nothing of it to drain.
            if !s.return_is_stop {
                s.cancel.cancelled().await;
            }
            return;
        }
        s.restarts.inc();
        if started.elapsed() >= STABLE_AFTER {
            attempt = 0;
        }
        let delay = s.policy.delay(attempt, &mut rng);
        attempt = attempt.saturating_add(1);
        let retry_at = Timestamp::now().add_nanos(i64::try_from(delay.as_nanos()).unwrap_or(i64::MAX));
        // One line per recurring failure: the first in full, then a count now and then.
        match repeats.failed(&message, Instant::now()) {
            Say::Failure => {
                tracing::warn!(component = s.component, name = %s.name, error = %message, kind, retry_in_ms = delay.as_millis() as u64, "failed; restarting after backoff (the same failure again is counted, not logged each time)")
            }
            Say::StillFailing { count, for_ } => {
                tracing::warn!(component = s.component, name = %s.name, error = %message, kind, failures = count, "still failing: {count} times over {}; restarting after backoff", minutes(for_))
            }
            Say::Nothing => {
                tracing::debug!(component = s.component, name = %s.name, error = %message, kind, retry_in_ms = delay.as_millis() as u64, "failed again; restarting after backoff")
            }
        }
        s.health.record_failure(s.slot, message, kind, Some(retry_at));
        on_failure().await;
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = s.cancel.cancelled() => break,
        }
    }
    s.up.set(0);
    s.health.set_state(s.slot, ComponentState::Stopped);
}

/// Why a run ended, as the supervisor sees it.
enum Failure {
    Error(ComponentError),
    /// A source returned `Ok` while the engine was running.
    Stopped,
    Panic(String),
    /// The task was aborted from elsewhere.
    Ended(String),
}

impl Failure {
    fn is_retryable(&self) -> bool {
        match self {
            Failure::Error(e) => e.is_retryable(),
            Failure::Stopped | Failure::Panic(_) | Failure::Ended(_) => true,
        }
    }

    /// The kind health shows, and the message.
    fn describe(&self) -> (&'static str, String) {
        match self {
            Failure::Error(e) => (e.kind(), e.chain()),
            Failure::Stopped => (
                "io",
                "stopped without an error while the engine was running".to_owned(),
            ),
            Failure::Panic(m) => ("panic", format!("panicked: {m}")),
            Failure::Ended(m) => ("io", format!("task ended: {m}")),
        }
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_in_range() {
        let policy = BackoffPolicy {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(2),
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for (attempt, full) in [(0, 100), (1, 200), (2, 400), (4, 1600), (5, 2000), (40, 2000)] {
            for _ in 0..50 {
                let d = policy.delay(attempt, &mut rng).as_millis() as u64;
                assert!(
                    d >= full / 2 && d <= full,
                    "attempt {attempt}: {d} ms not in [{}, {full}]",
                    full / 2
                );
            }
        }
    }
}
