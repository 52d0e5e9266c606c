//! [`ComponentStatus`]: how a running component reports on itself (degraded health, its
//! own counters) without knowing where the engine keeps health and metrics.

use std::fmt;
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;

/// Where a component's reports go; the engine implements it over its health table and
/// metrics registry.
pub trait Report: Send + Sync + fmt::Debug {
    fn set_degraded(&self, reason: Option<String>);
    fn counter(&self, event: &str) -> Counter;
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
}

#[derive(Debug)]
struct Detached;

impl Report for Detached {
    fn set_degraded(&self, _reason: Option<String>) {}
    fn counter(&self, _event: &str) -> Counter {
        Counter::default()
    }
}
