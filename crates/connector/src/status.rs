//! [`ComponentStatus`]: how a running component reports on itself (degraded health, its
//! own counters) without knowing where the engine keeps health and metrics.

use std::fmt;
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;

/// Where a component's reports go; the engine implements it over its health table and
/// metrics registry.
pub trait Report: Send + Sync + fmt::Debug {
    fn set_degraded(&self, reason: Option<String>);
    fn counter(&self, event: &str) -> Counter;
    fn delay(&self, what: &str) -> Histogram;
}

/// The buckets of [`ComponentStatus::delay`], in seconds: 50 µs to 10 s.
pub const DELAY_BUCKETS: [f64; 17] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0,
];

/// A histogram with the [`DELAY_BUCKETS`].
pub fn delay_histogram() -> Histogram {
    Histogram::new(DELAY_BUCKETS)
}

/// Lets a running component report on itself: degraded health and its own counters.
#[derive(Clone, Debug)]
pub struct ComponentStatus(Arc<dyn Report>);

impl ComponentStatus {
    pub fn new(report: Arc<dyn Report>) -> ComponentStatus {
        ComponentStatus(report)
    }

    /// Reports nowhere: for benchmarks and unit tests that run a component alone.
    pub fn detached() -> ComponentStatus {
        ComponentStatus(Arc::new(Detached))
    }

    /// Shows the component as degraded in health (e.g. "broker unreachable: ..."), or as
    /// running again with `None`.
    pub fn set_degraded(&self, reason: Option<String>) {
        self.0.set_degraded(reason);
    }

    /// A counter exported as `backplane_component_events_total{component, name, event}`.
    /// Get it once and keep it; incrementing is one atomic add.
    pub fn counter(&self, event: &str) -> Counter {
        self.0.counter(event)
    }

    /// A histogram of delays in seconds, exported as
    /// `backplane_component_delay_seconds{component, name, what}` with the
    /// [`DELAY_BUCKETS`]. Get it once and keep it; observing takes a short lock, so a hot
    /// path observes a sample of its events rather than each.
    pub fn delay(&self, what: &str) -> Histogram {
        self.0.delay(what)
    }
}

#[derive(Debug)]
struct Detached;

impl Report for Detached {
    fn set_degraded(&self, _reason: Option<String>) {}
    fn counter(&self, _event: &str) -> Counter {
        Counter::default()
    }
    fn delay(&self, _what: &str) -> Histogram {
        delay_histogram()
    }
}
