//! Prometheus metrics. Handles to per-component counters are created once and indexed by
//! source / sink id, so the hot path increments an atomic and never looks up a label set.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NameLabel {
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ComponentLabels {
    component: String,
    name: String,
}

/// Labels of the counters components keep themselves.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    pub component: String,
    pub name: String,
    pub event: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    config_version: String,
}

/// Counters of one source.
#[derive(Clone, Debug, Default)]
pub struct SourceMetrics {
    pub readings: Counter,
    pub restarts: Counter,
    pub up: Gauge,
}

/// Counters of one sink.
#[derive(Clone, Debug, Default)]
pub struct SinkMetrics {
    pub records: Counter,
    pub dropped: Counter,
    pub restarts: Counter,
    pub up: Gauge,
}

/// Every metric of one engine.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub sources: Vec<SourceMetrics>,
    pub sinks: Vec<SinkMetrics>,
    pub samples: Counter,
    pub transform_errors: Counter,
    pub deadband_suppressed: Counter,
    pub events: Counter,
    pub stream_lagged: Counter,
    /// Counters that sources and sinks keep about themselves (see `ComponentStatus::counter`).
    pub component_events: Family<EventLabels, Counter>,
}

impl Metrics {
    pub fn new(source_names: &[String], sink_names: &[String], config_version: &str) -> Metrics {
        let mut registry = Registry::with_prefix("backplane");
        let readings = Family::<NameLabel, Counter>::default();
        let source_restarts = Family::<NameLabel, Counter>::default();
        let sink_records = Family::<NameLabel, Counter>::default();
        let sink_dropped = Family::<NameLabel, Counter>::default();
        let sink_restarts = Family::<NameLabel, Counter>::default();
        let up = Family::<ComponentLabels, Gauge>::default();
        let build = Family::<BuildLabels, Gauge>::default();
        registry.register(
            "source_readings",
            "Raw readings received from each source",
            readings.clone(),
        );
        registry.register(
            "source_restarts",
            "Restarts of each source by the supervisor",
            source_restarts.clone(),
        );
        registry.register(
            "sink_records",
            "Samples and events queued to each sink",
            sink_records.clone(),
        );
        registry.register(
            "sink_dropped",
            "Samples and events dropped because the sink's queue was full",
            sink_dropped.clone(),
        );
        registry.register(
            "sink_restarts",
            "Restarts of each sink by the supervisor",
            sink_restarts.clone(),
        );
        registry.register(
            "component_up",
            "1 while the component runs, 0 while it is down",
            up.clone(),
        );
        registry.register("build_info", "Binary and configuration version", build.clone());

        let label = |n: &str| NameLabel { name: n.to_owned() };
        let up_of = |component: &str, name: &str| {
            up.get_or_create(&ComponentLabels {
                component: component.to_owned(),
                name: name.to_owned(),
            })
            .clone()
        };
        let sources = source_names
            .iter()
            .map(|n| SourceMetrics {
                readings: readings.get_or_create(&label(n)).clone(),
                restarts: source_restarts.get_or_create(&label(n)).clone(),
                up: up_of("source", n),
            })
            .collect();
        let sinks = sink_names
            .iter()
            .map(|n| SinkMetrics {
                records: sink_records.get_or_create(&label(n)).clone(),
                dropped: sink_dropped.get_or_create(&label(n)).clone(),
                restarts: sink_restarts.get_or_create(&label(n)).clone(),
                up: up_of("sink", n),
            })
            .collect();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_owned(),
                config_version: config_version.to_owned(),
            })
            .set(1);

        let samples = Counter::default();
        let transform_errors = Counter::default();
        let deadband_suppressed = Counter::default();
        let events = Counter::default();
        let stream_lagged = Counter::default();
        registry.register(
            "pipeline_samples",
            "Samples produced by the pipeline",
            samples.clone(),
        );
        registry.register(
            "pipeline_transform_errors",
            "Readings whose transform chain failed (reported with bad quality)",
            transform_errors.clone(),
        );
        registry.register(
            "pipeline_deadband_suppressed",
            "Readings not reported because they stayed inside their deadband",
            deadband_suppressed.clone(),
        );
        registry.register("pipeline_events", "Events routed by the pipeline", events.clone());
        registry.register(
            "stream_lagged",
            "Batches a slow live-stream subscriber missed",
            stream_lagged.clone(),
        );
        let component_events = Family::<EventLabels, Counter>::default();
        registry.register(
            "component_events",
            "Events sources and sinks count about themselves, e.g. messages_lost or dcmd_refused",
            component_events.clone(),
        );
        Metrics {
            registry,
            sources,
            sinks,
            samples,
            transform_errors,
            deadband_suppressed,
            events,
            stream_lagged,
            component_events,
        }
    }

    /// The Prometheus text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
