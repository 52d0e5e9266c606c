//! How a running component's reports reach health and metrics: the engine's side of
//! [`ComponentStatus`](backplane_connector::ComponentStatus).

use std::sync::Arc;

use backplane_connector::Report;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

use crate::health::Health;
use crate::metrics::{DelayFamily, DelayLabels, EventLabels};

/// One component's slot in the health table and its label in the events counter family.
#[derive(Debug)]
pub(crate) struct EngineReport {
    pub(crate) component: &'static str,
    pub(crate) name: String,
    pub(crate) slot: usize,
    pub(crate) health: Arc<Health>,
    pub(crate) events: Family<EventLabels, Counter>,
    pub(crate) delays: DelayFamily,
}

impl Report for EngineReport {
    fn set_degraded(&self, reason: Option<String>) {
        self.health.set_degraded(self.slot, reason);
    }

    fn counter(&self, event: &str) -> Counter {
        self.events
            .get_or_create(&EventLabels {
                component: self.component.to_owned(),
                name: self.name.clone(),
                event: event.to_owned(),
            })
            .clone()
    }

    fn delay(&self, what: &str) -> Histogram {
        self.delays
            .get_or_create(&DelayLabels {
                component: self.component.to_owned(),
                name: self.name.clone(),
                what: what.to_owned(),
            })
            .clone()
    }
}
