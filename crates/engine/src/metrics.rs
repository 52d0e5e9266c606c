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
    /// What the next engine of a configuration reload takes over, so counters continue
    /// (and a component that keeps running keeps reporting to the families shown).
    families: Families,
    /// The sinks' names, whose series a reload removes when they go.
    sink_labels: Vec<String>,
    pub sources: Vec<SourceMetrics>,
    pub sinks: Vec<SinkMetrics>,
    buffers: BufferFamilies,
    pub buffer_corrupted: Counter,
    pub buffer_append_errors: Counter,
    pub samples: Counter,
    pub transform_errors: Counter,
    pub deadband_suppressed: Counter,
    pub events: Counter,
    pub stream_lagged: Counter,
    pub component_events: Family<EventLabels, Counter>,
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

/// The metric families and counters, shared (they are handles) by the engines of one process.
#[derive(Clone, Debug)]
struct Families {
    readings: Family<NameLabel, Counter>,
    source_restarts: Family<NameLabel, Counter>,
    source_stale: Family<NameLabel, Counter>,
    sink_records: Family<NameLabel, Counter>,
    sink_dropped: Family<NameLabel, Counter>,
    sink_restarts: Family<NameLabel, Counter>,
    sink_wait: Family<NameLabel, Counter<f64, std::sync::atomic::AtomicU64>>,
    up: Family<ComponentLabels, Gauge>,
    build: Family<BuildLabels, Gauge>,
    buffers: BufferFamilies,
    buffer_corrupted: Counter,
    buffer_append_errors: Counter,
    samples: Counter,
    transform_errors: Counter,
    deadband_suppressed: Counter,
    events: Counter,
    stream_lagged: Counter,
    component_events: Family<EventLabels, Counter>,
    component_delays: DelayFamily,
    /// Per source name: when it last delivered a reading (kept across reloads).
    last_reading: std::collections::HashMap<String, std::sync::Arc<std::sync::atomic::AtomicI64>>,
}

impl Families {
    fn new() -> Families {
        Families {
            readings: Family::default(),
            source_restarts: Family::default(),
            source_stale: Family::default(),
            sink_records: Family::default(),
            sink_dropped: Family::default(),
            sink_restarts: Family::default(),
            sink_wait: Family::default(),
            up: Family::default(),
            build: Family::default(),
            buffers: BufferFamilies::default(),
            buffer_corrupted: Counter::default(),
            buffer_append_errors: Counter::default(),
            samples: Counter::default(),
            transform_errors: Counter::default(),
            deadband_suppressed: Counter::default(),
            events: Counter::default(),
            stream_lagged: Counter::default(),
            component_events: Family::default(),
            component_delays: Family::new_with_constructor(backplane_connector::delay_histogram),
            last_reading: Default::default(),
        }
    }
}

impl Metrics {
    pub fn new(source_names: &[String], sink_names: &[String], config_version: &str) -> Metrics {
        Metrics::with(Families::new(), source_names, sink_names, config_version)
    }

    /// The metrics of the engine that replaces this one at a configuration reload: every
    /// counter continues; the series of components no longer configured are removed.
    pub fn next(&self, source_names: &[String], sink_names: &[String], config_version: &str) -> Metrics {
        let mut f = self.families.clone();
        let gone = |names: &[String], kept: &[String]| -> Vec<NameLabel> {
            names
                .iter()
                .filter(|n| !kept.contains(n))
                .map(|n| NameLabel { name: n.clone() })
                .collect()
        };
        let old_sources: Vec<String> = f.last_reading.keys().cloned().collect();
        for l in gone(&old_sources, source_names) {
            f.readings.remove(&l);
            f.source_restarts.remove(&l);
            f.source_stale.remove(&l);
            f.up.remove(&ComponentLabels {
                component: "source".to_owned(),
                name: l.name.clone(),
            });
            f.last_reading.remove(&l.name);
        }
        for l in gone(&self.sink_labels, sink_names) {
            f.sink_records.remove(&l);
            f.sink_dropped.remove(&l);
            f.sink_restarts.remove(&l);
            f.sink_wait.remove(&l);
            f.up.remove(&ComponentLabels {
                component: "sink".to_owned(),
                name: l.name.clone(),
            });
            f.buffers.remove(&l);
        }
        f.build.clear();
        Metrics::with(f, source_names, sink_names, config_version)
    }

    fn with(
        mut f: Families,
        source_names: &[String],
        sink_names: &[String],
        config_version: &str,
    ) -> Metrics {
        let mut registry = Registry::with_prefix("backplane");
        registry.register(
            "source_readings",
            "Raw readings received from each source",
            f.readings.clone(),
        );
        registry.register(
            "source_restarts",
            "Restarts of each source by the supervisor",
            f.source_restarts.clone(),
        );
        registry.register(
            "source_stale_values",
            "Values of each source that turned uncertain (last_usable_value): not read again within their stale_after",
            f.source_stale.clone(),
        );
        registry.register(
            "sink_records",
            "Samples and events queued to each sink",
            f.sink_records.clone(),
        );
        registry.register(
            "sink_dropped",
            "Samples and events not delivered because the sink's input had closed (the engine was stopping)",
            f.sink_dropped.clone(),
        );
        registry.register(
            "sink_wait_seconds",
            "Time the pipeline waited for each local sink's full queue (backpressure: sources slow down, nothing is lost)",
            f.sink_wait.clone(),
        );
        registry.register(
            "sink_restarts",
            "Restarts of each sink by the supervisor",
            f.sink_restarts.clone(),
        );
        registry.register(
            "component_up",
            "1 while the component runs, 0 while it is down",
            f.up.clone(),
        );
        registry.register("build_info", "Binary and configuration version", f.build.clone());

        let label = |n: &str| NameLabel { name: n.to_owned() };
        let up = f.up.clone();
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
                readings: f.readings.get_or_create(&label(n)).clone(),
                restarts: f.source_restarts.get_or_create(&label(n)).clone(),
                up: up_of("source", n),
                stale: f.source_stale.get_or_create(&label(n)).clone(),
                last_reading: f.last_reading.entry(n.clone()).or_default().clone(),
            })
            .collect();
        let sinks = sink_names
            .iter()
            .map(|n| SinkMetrics {
                records: f.sink_records.get_or_create(&label(n)).clone(),
                dropped: f.sink_dropped.get_or_create(&label(n)).clone(),
                restarts: f.sink_restarts.get_or_create(&label(n)).clone(),
                up: up_of("sink", n),
                wait_seconds: f.sink_wait.get_or_create(&label(n)).clone(),
            })
            .collect();
        f.buffers.register(&mut registry);
        registry.register(
            "buffer_corrupted_records",
            "Damaged records the store-and-forward log skipped when it was opened (counted, never silent)",
            f.buffer_corrupted.clone(),
        );
        registry.register(
            "buffer_append_errors",
            "Batches that could not be written to the store-and-forward log (lost for buffered sinks)",
            f.buffer_append_errors.clone(),
        );
        f.build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_owned(),
                config_version: config_version.to_owned(),
            })
            .set(1);
        registry.register(
            "pipeline_samples",
            "Samples produced by the pipeline",
            f.samples.clone(),
        );
        registry.register(
            "pipeline_transform_errors",
            "Readings whose transform chain failed (reported with bad quality)",
            f.transform_errors.clone(),
        );
        registry.register(
            "pipeline_deadband_suppressed",
            "Readings not reported because they stayed inside their deadband",
            f.deadband_suppressed.clone(),
        );
        registry.register(
            "pipeline_events",
            "Events routed by the pipeline",
            f.events.clone(),
        );
        registry.register(
            "stream_lagged",
            "Batches a slow live-stream subscriber missed",
            f.stream_lagged.clone(),
        );
        registry.register(
            "component_events",
            "Events sources and sinks count about themselves, e.g. messages_lost or dcmd_refused",
            f.component_events.clone(),
        );
        registry.register(
            "component_delay_seconds",
            "Delays sources and sinks measure about themselves, e.g. a sample's way from the device's answer to the socket (what = device_to_socket)",
            f.component_delays.clone(),
        );
        Metrics {
            registry,
            sources,
            sinks,
            buffers: f.buffers.clone(),
            buffer_corrupted: f.buffer_corrupted.clone(),
            buffer_append_errors: f.buffer_append_errors.clone(),
            samples: f.samples.clone(),
            transform_errors: f.transform_errors.clone(),
            deadband_suppressed: f.deadband_suppressed.clone(),
            events: f.events.clone(),
            stream_lagged: f.stream_lagged.clone(),
            component_events: f.component_events.clone(),
            component_delays: f.component_delays.clone(),
            sink_labels: sink_names.to_vec(),
            families: f,
        }
    }

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
#[derive(Clone, Debug, Default)]
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
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "buffer_backlog_samples",
            "Samples and events in a buffered sink's backlog (appended, not yet acknowledged)",
            self.backlog_samples.clone(),
        );
        registry.register(
            "buffer_backlog_bytes",
            "Bytes of log a buffered sink still needs",
            self.backlog_bytes.clone(),
        );
        registry.register(
            "buffer_oldest_age_seconds",
            "Age of the oldest unacknowledged record of a buffered sink",
            self.oldest.clone(),
        );
        registry.register(
            "buffer_drain_rate",
            "Samples and events per second a buffered sink's destination acknowledged (10 s average)",
            self.drain_rate.clone(),
        );
        registry.register(
            "buffer_delivered",
            "Samples and events handed to a buffered sink, replays included",
            self.delivered.clone(),
        );
        registry.register(
            "buffer_acked",
            "Samples and events a buffered sink's destination confirmed",
            self.acked.clone(),
        );
        registry.register(
            "buffer_dropped",
            "Samples and events lost because a buffered sink's backlog exceeded its quota (overflow = drop-oldest)",
            self.dropped.clone(),
        );
        registry.register(
            "buffer_unreadable",
            "Samples and events in log records this version could not decode (skipped)",
            self.unreadable.clone(),
        );
        registry.register(
            "buffer_unknown_tags",
            "Buffered samples skipped because their tag is no longer configured",
            self.unknown_tags.clone(),
        );
    }

    /// Removes a sink's series (it is no longer configured).
    fn remove(&self, l: &NameLabel) {
        self.backlog_samples.remove(l);
        self.backlog_bytes.remove(l);
        self.oldest.remove(l);
        self.drain_rate.remove(l);
        self.delivered.remove(l);
        self.acked.remove(l);
        self.dropped.remove(l);
        self.unreadable.remove(l);
        self.unknown_tags.remove(l);
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
