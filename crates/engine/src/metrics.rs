//! Prometheus metrics. Handles to per-component counters are created once and indexed by
//! source / sink id, so the hot path increments an atomic and never looks up a label set.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
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
    /// Values of the source that turned stale: not read again within their `stale_after`.
    pub stale: Counter,
    /// When the pipeline last received readings from the source (unix nanoseconds; 0:
    /// never), for health's `last_reading_at`.
    pub last_reading: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

/// Counters of one sink.
#[derive(Clone, Debug, Default)]
pub struct SinkMetrics {
    pub records: Counter,
    pub dropped: Counter,
    pub restarts: Counter,
    pub up: Gauge,
    /// Time the pipeline waited for this (local) sink's queue: its backpressure.
    pub wait_seconds: Counter<f64, std::sync::atomic::AtomicU64>,
}

/// Figures of one buffered sink's store-and-forward backlog, refreshed every second.
#[derive(Clone, Debug, Default)]
pub struct BufferMetrics {
    pub backlog_samples: Gauge,
    pub backlog_bytes: Gauge,
    pub oldest_age_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub drain_rate: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub delivered: Counter,
    pub acked: Counter,
    pub dropped: Counter,
    pub unreadable: Counter,
    pub unknown_tags: Counter,
}

/// Every metric of one engine.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub sources: Vec<SourceMetrics>,
    pub sinks: Vec<SinkMetrics>,
    buffers: BufferFamilies,
    /// Records lost by recovery: checksum failures and torn tails, since start.
    pub buffer_corrupted: Counter,
    /// Batches that could not be written to the log (disk full, I/O error).
    pub buffer_append_errors: Counter,
    pub samples: Counter,
    pub transform_errors: Counter,
    pub deadband_suppressed: Counter,
    pub events: Counter,
    pub stream_lagged: Counter,
    /// Counters that sources and sinks keep about themselves (see `ComponentStatus::counter`).
    pub component_events: Family<EventLabels, Counter>,
    /// Delays that sources and sinks measure (see `ComponentStatus::delay`).
    pub component_delays: DelayFamily,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DelayLabels {
    pub component: String,
    pub name: String,
    pub what: String,
}

/// `backplane_component_delay_seconds`, every histogram with the same buckets.
pub type DelayFamily = Family<DelayLabels, Histogram, fn() -> Histogram>;

impl Metrics {
    pub fn new(source_names: &[String], sink_names: &[String], config_version: &str) -> Metrics {
        let mut registry = Registry::with_prefix("backplane");
        let readings = Family::<NameLabel, Counter>::default();
        let source_restarts = Family::<NameLabel, Counter>::default();
        let source_stale = Family::<NameLabel, Counter>::default();
        let sink_records = Family::<NameLabel, Counter>::default();
        let sink_dropped = Family::<NameLabel, Counter>::default();
        let sink_restarts = Family::<NameLabel, Counter>::default();
        let sink_wait = Family::<NameLabel, Counter<f64, std::sync::atomic::AtomicU64>>::default();
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
            "source_stale_values",
            "Values of each source that turned uncertain (last_usable_value): not read again within their stale_after",
            source_stale.clone(),
        );
        registry.register(
            "sink_records",
            "Samples and events queued to each sink",
            sink_records.clone(),
        );
        registry.register(
            "sink_dropped",
            "Samples and events not delivered because the sink's input had closed (the engine was stopping)",
            sink_dropped.clone(),
        );
        registry.register(
            "sink_wait_seconds",
            "Time the pipeline waited for each local sink's full queue (backpressure: sources slow down, nothing is lost)",
            sink_wait.clone(),
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
                stale: source_stale.get_or_create(&label(n)).clone(),
                last_reading: Default::default(),
            })
            .collect();
        let sinks = sink_names
            .iter()
            .map(|n| SinkMetrics {
                records: sink_records.get_or_create(&label(n)).clone(),
                dropped: sink_dropped.get_or_create(&label(n)).clone(),
                restarts: sink_restarts.get_or_create(&label(n)).clone(),
                up: up_of("sink", n),
                wait_seconds: sink_wait.get_or_create(&label(n)).clone(),
            })
            .collect();
        let buffers = BufferFamilies::register(&mut registry);
        let buffer_corrupted = Counter::default();
        let buffer_append_errors = Counter::default();
        registry.register(
            "buffer_corrupted_records",
            "Damaged records the store-and-forward log skipped when it was opened (counted, never silent)",
            buffer_corrupted.clone(),
        );
        registry.register(
            "buffer_append_errors",
            "Batches that could not be written to the store-and-forward log (lost for buffered sinks)",
            buffer_append_errors.clone(),
        );
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
        let component_delays: DelayFamily =
            Family::new_with_constructor(backplane_connector::delay_histogram);
        registry.register(
            "component_delay_seconds",
            "Delays sources and sinks measure about themselves, e.g. a sample's way from the device's answer to the socket (what = device_to_socket)",
            component_delays.clone(),
        );
        Metrics {
            registry,
            component_delays,
            sources,
            sinks,
            buffers,
            buffer_corrupted,
            buffer_append_errors,
            samples,
            transform_errors,
            deadband_suppressed,
            events,
            stream_lagged,
            component_events,
        }
    }

    /// The backlog metrics of a buffered sink (created on first use, so local sinks have
    /// none).
    pub fn buffer(&self, sink: &str) -> BufferMetrics {
        self.buffers.get(sink)
    }

    /// Copies a buffered sink's reader figures into its metrics.
    pub fn update_buffer(&self, sink: &str, stats: &backplane_buffer::ReaderStats, drain_rate: f64) {
        let m = self.buffer(sink);
        m.backlog_samples
            .set(i64::try_from(stats.backlog_seqs).unwrap_or(i64::MAX));
        m.backlog_bytes
            .set(i64::try_from(stats.backlog_bytes).unwrap_or(i64::MAX));
        m.oldest_age_seconds
            .set(stats.oldest_unacked_age.map_or(0.0, |d| d.as_secs_f64()));
        m.drain_rate.set(drain_rate);
        let catch_up = |c: &Counter, total: u64| {
            c.inc_by(total.saturating_sub(c.get()));
        };
        catch_up(&m.delivered, stats.delivered_seqs);
        catch_up(&m.acked, stats.acked_seqs);
        catch_up(&m.dropped, stats.dropped_seqs);
    }

    /// The Prometheus text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The label families behind [`BufferMetrics`].
#[derive(Debug, Default)]
struct BufferFamilies {
    backlog_samples: Family<NameLabel, Gauge>,
    backlog_bytes: Family<NameLabel, Gauge>,
    oldest: Family<NameLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    drain_rate: Family<NameLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    delivered: Family<NameLabel, Counter>,
    acked: Family<NameLabel, Counter>,
    dropped: Family<NameLabel, Counter>,
    unreadable: Family<NameLabel, Counter>,
    unknown_tags: Family<NameLabel, Counter>,
}

impl BufferFamilies {
    fn register(registry: &mut Registry) -> BufferFamilies {
        let backlog_samples = Family::<NameLabel, Gauge>::default();
        let backlog_bytes = Family::<NameLabel, Gauge>::default();
        let oldest = Family::<NameLabel, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        let drain_rate = Family::<NameLabel, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        let delivered = Family::<NameLabel, Counter>::default();
        let acked = Family::<NameLabel, Counter>::default();
        let dropped = Family::<NameLabel, Counter>::default();
        let unreadable = Family::<NameLabel, Counter>::default();
        let unknown_tags = Family::<NameLabel, Counter>::default();
        registry.register(
            "buffer_backlog_samples",
            "Samples and events in a buffered sink's backlog (appended, not yet acknowledged)",
            backlog_samples.clone(),
        );
        registry.register(
            "buffer_backlog_bytes",
            "Bytes of log a buffered sink still needs",
            backlog_bytes.clone(),
        );
        registry.register(
            "buffer_oldest_age_seconds",
            "Age of the oldest unacknowledged record of a buffered sink",
            oldest.clone(),
        );
        registry.register(
            "buffer_drain_rate",
            "Samples and events per second a buffered sink's destination acknowledged (10 s average)",
            drain_rate.clone(),
        );
        registry.register(
            "buffer_delivered",
            "Samples and events handed to a buffered sink, replays included",
            delivered.clone(),
        );
        registry.register(
            "buffer_acked",
            "Samples and events a buffered sink's destination confirmed",
            acked.clone(),
        );
        registry.register(
        "buffer_dropped",
        "Samples and events lost because a buffered sink's backlog exceeded its quota (overflow = drop-oldest)",
        dropped.clone(),
    );
        registry.register(
            "buffer_unreadable",
            "Samples and events in log records this version could not decode (skipped)",
            unreadable.clone(),
        );
        registry.register(
            "buffer_unknown_tags",
            "Buffered samples skipped because their tag is no longer configured",
            unknown_tags.clone(),
        );
        BufferFamilies {
            backlog_samples,
            backlog_bytes,
            oldest,
            drain_rate,
            delivered,
            acked,
            dropped,
            unreadable,
            unknown_tags,
        }
    }

    fn get(&self, sink: &str) -> BufferMetrics {
        let l = NameLabel {
            name: sink.to_owned(),
        };
        BufferMetrics {
            backlog_samples: self.backlog_samples.get_or_create(&l).clone(),
            backlog_bytes: self.backlog_bytes.get_or_create(&l).clone(),
            oldest_age_seconds: self.oldest.get_or_create(&l).clone(),
            drain_rate: self.drain_rate.get_or_create(&l).clone(),
            delivered: self.delivered.get_or_create(&l).clone(),
            acked: self.acked.get_or_create(&l).clone(),
            dropped: self.dropped.get_or_create(&l).clone(),
            unreadable: self.unreadable.get_or_create(&l).clone(),
            unknown_tags: self.unknown_tags.get_or_create(&l).clone(),
        }
    }
}
