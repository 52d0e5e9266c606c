//! The [`Source`] and [`Sink`] traits, what the engine hands them ([`SourceIo`],
//! [`SinkIo`]), and the registry of kinds that builds them from configuration.
//!
//! A source owns its connections and emits batches of raw readings addressed by its own
//! address ids; it never sees assets or sinks. A sink receives shared, immutable batches of
//! normalized samples and events. Both are run by the supervisor, which builds a fresh
//! instance after every failure.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use backplane_config::{Catalog, KindSpec, Settings};
use backplane_model::{Quality, Timestamp, Value};
use futures::future::BoxFuture;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::Batch;
use crate::topology::Topology;

/// Why a source or sink stopped. The supervisor logs it, shows it in health and restarts.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ComponentError(pub String);

impl ComponentError {
    pub fn new(message: impl Into<String>) -> ComponentError {
        ComponentError(message.into())
    }
}

/// One reading of one address, before normalization.
#[derive(Clone, Debug, PartialEq)]
pub struct RawReading {
    /// Index into the addresses the source was built with.
    pub address: u32,
    /// `None` when the device gave no value (e.g. an exception response).
    pub value: Option<Value>,
    pub quality: Quality,
    pub source_time: Option<Timestamp>,
}

/// Readings a source took at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct RawBatch {
    pub source: u32,
    /// When the gateway read the batch.
    pub gateway_time: Timestamp,
    pub readings: Vec<RawReading>,
}

/// What flows into the pipeline.
#[derive(Debug)]
pub enum PipelineInput {
    Readings(RawBatch),
    /// A source failed or stopped: every tag it feeds turns to this quality.
    SourceDown {
        source: u32,
        quality: Quality,
        time: Timestamp,
    },
    /// Events from outside the data path, routed in order with samples.
    Events(Vec<backplane_model::Event>),
    /// A context change, applied by the pipeline between two batches: samples read before
    /// it keep the old context, samples after it carry the new one, and its events are
    /// routed in between. The events (one per changed field) are sent back on `reply`.
    SetContext {
        asset: usize,
        patch: backplane_model::ContextPatch,
        by: Option<String>,
        reply: oneshot::Sender<Vec<backplane_model::Event>>,
    },
    /// Time passes for the derive stage (periods close, shifts change); about every second.
    Tick(Timestamp),
    /// A production command (work orders, lots, reasons, forms), run between two batches;
    /// its events are routed in between.
    Production(crate::production::ProductionCommand),
}

/// A request to write one raw value (already in the device's terms) to one address of a
/// source. The reply carries the value read back after the write, when the source can
/// read the address, so the caller can confirm it.
#[derive(Debug)]
pub struct WriteRequest {
    /// Index into the addresses the source was built with.
    pub address: u32,
    pub value: Value,
    pub reply: oneshot::Sender<Result<Option<Value>, ComponentError>>,
    /// After this the caller has been told the write timed out; it must not happen then.
    pub deadline: tokio::time::Instant,
}

/// Lets a running component report on itself: degraded health and its own counters.
#[derive(Clone, Debug)]
pub struct ComponentStatus {
    pub(crate) component: &'static str,
    pub(crate) name: String,
    pub(crate) slot: usize,
    pub(crate) health: Arc<crate::health::Health>,
    pub(crate) events: prometheus_client::metrics::family::Family<
        crate::metrics::EventLabels,
        prometheus_client::metrics::counter::Counter,
    >,
}

impl ComponentStatus {
    /// Shows the component as degraded in health (e.g. "broker unreachable: ..."), or as
    /// running again with `None`.
    pub fn set_degraded(&self, reason: Option<String>) {
        self.health.set_degraded(self.slot, reason);
    }

    /// A counter exported as `backplane_component_events_total{component, name, event}`.
    /// Get it once and keep it; incrementing is one atomic add.
    pub fn counter(&self, event: &str) -> prometheus_client::metrics::counter::Counter {
        self.events
            .get_or_create(&crate::metrics::EventLabels {
                component: self.component.to_owned(),
                name: self.name.clone(),
                event: event.to_owned(),
            })
            .clone()
    }
}

/// What a source is given to run.
#[derive(Clone, Debug)]
pub struct SourceIo {
    pub(crate) source: u32,
    pub(crate) tx: mpsc::Sender<PipelineInput>,
    pub(crate) cancel: CancellationToken,
    /// Outlives source instances, like a sink's input queue.
    pub(crate) writes: Arc<Mutex<mpsc::Receiver<WriteRequest>>>,
    pub status: ComponentStatus,
}

impl SourceIo {
    /// Hands a batch to the pipeline. Waits while the pipeline's input queue is full
    /// (backpressure: a source slows down rather than losing readings). Returns `false`
    /// once the engine is shutting down.
    pub async fn emit(&self, gateway_time: Timestamp, readings: Vec<RawReading>) -> bool {
        let batch = RawBatch {
            source: self.source,
            gateway_time,
            readings,
        };
        self.tx.send(PipelineInput::Readings(batch)).await.is_ok()
    }

    /// Resolves when the engine shuts down; sources select on it in their loops.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// The next write request for this source. Stays pending while nobody writes, so a
    /// source can `select!` on it beside its poll timer; `None` once the engine stops.
    /// Sources that cannot write answer each request with an error.
    ///
    /// Requests whose caller gave up (timed out, or went away) are dropped here, so a
    /// source that was down does not write stale values to a machine when it comes back.
    pub async fn next_write(&self) -> Option<WriteRequest> {
        let mut writes = self.writes.lock().await;
        loop {
            let request = writes.recv().await?;
            if request.reply.is_closed() || tokio::time::Instant::now() >= request.deadline {
                tracing::warn!(
                    address = request.address,
                    "dropping a write whose caller gave up waiting"
                );
                continue;
            }
            return Some(request);
        }
    }
}

/// A running connection to devices that produces raw readings.
pub trait Source: Send + 'static {
    /// Runs until cancelled (return `Ok`) or until it fails (return `Err`; the supervisor
    /// turns the source's values bad and builds a new instance after a backoff).
    fn run(self: Box<Self>, io: SourceIo) -> BoxFuture<'static, Result<(), ComponentError>>;
}

/// What a sink is given to run. The input outlives sink instances, so a restarted sink
/// continues where the failed one stopped.
#[derive(Clone, Debug)]
pub struct SinkIo {
    pub(crate) input: SinkInput,
    pub(crate) cancel: CancellationToken,
    /// Cancelled once the pipeline has stopped (shutdown).
    pub(crate) input_closed: CancellationToken,
    pub topology: Arc<Topology>,
    /// For sinks that accept commands from their consumers (e.g. Sparkplug DCMD).
    pub writes: crate::writes::WritePath,
    /// For sinks that accept production commands (e.g. the MQTT command topic).
    pub commands: crate::production::CommandPath,
    pub status: ComponentStatus,
}

/// Where a sink's batches come from.
#[derive(Clone, Debug)]
pub(crate) enum SinkInput {
    /// Local sinks: a bounded in-memory queue (the sink misses batches when it is full).
    Queue(Arc<Mutex<mpsc::Receiver<Arc<Batch>>>>),
    /// Buffered (network) sinks: their reader of the store-and-forward log.
    Buffer {
        input: Arc<Mutex<crate::durable::BufferedInput>>,
        commands: mpsc::UnboundedSender<crate::durable::ReaderCommand>,
    },
}

/// A batch handed to a sink, with what it needs to acknowledge it.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub batch: Arc<Batch>,
    /// Buffered sinks: the log record to [`SinkIo::ack`] once the destination confirmed
    /// every message made from this batch.
    pub record: Option<u64>,
    /// Buffered sinks: the sequence number of each sample, then each event, of the batch.
    pub seqs: Option<Arc<[u64]>>,
    /// Sent before, but not confirmed before the sink lost its destination: a consumer may
    /// have seen it already, and live data has moved on (publish it as history).
    pub replay: bool,
}

impl Delivery {
    /// The stream sequence number of `batch.samples[i]`, for buffered sinks.
    pub fn sample_seq(&self, i: usize) -> Option<u64> {
        self.seqs.as_ref()?.get(i).copied()
    }

    /// The stream sequence number of `batch.events[j]`, for buffered sinks.
    pub fn event_seq(&self, j: usize) -> Option<u64> {
        self.seqs.as_ref()?.get(self.batch.samples.len() + j).copied()
    }
}

impl SinkIo {
    /// The next batch, or `None` when the engine has shut down and the input is drained.
    /// A buffered sink that uses this instead of [`next`](Self::next) acknowledges each
    /// batch as it receives it (at-most-once from there on).
    pub async fn recv(&self) -> Option<Arc<Batch>> {
        let delivery = self.next().await?;
        if let Some(record) = delivery.record {
            self.ack(record);
        }
        Some(delivery.batch)
    }

    /// The next delivery, or `None` when the engine has shut down and what is ready has
    /// been handed out (a buffered sink's remaining backlog waits in the log for the next
    /// start). Cancel-safe.
    pub async fn next(&self) -> Option<Delivery> {
        match &self.input {
            SinkInput::Queue(queue) => {
                let batch = queue.lock().await.recv().await?;
                Some(Delivery {
                    batch,
                    record: None,
                    seqs: None,
                    replay: false,
                })
            }
            SinkInput::Buffer { input, .. } => {
                let delivered = input.lock().await.next().await?;
                Some(Delivery {
                    batch: Arc::new(delivered.decoded.batch),
                    record: Some(delivered.record),
                    seqs: Some(delivered.decoded.seqs.into()),
                    replay: delivered.replay,
                })
            }
        }
    }

    /// Resolves once the engine is shutting down and no more input will come. A sink that
    /// stops reading (e.g. a buffered sink while its destination is away) selects on this
    /// to stop in time; its backlog stays in the log.
    pub async fn input_closed(&self) {
        self.input_closed.cancelled().await
    }

    /// Whether this sink reads through the store-and-forward log and must acknowledge.
    pub fn is_buffered(&self) -> bool {
        matches!(self.input, SinkInput::Buffer { .. })
    }

    /// The destination confirmed everything made from this delivery's batch: the log may
    /// forget it for this sink. Acks may come in any order.
    pub fn ack(&self, record: u64) {
        self.command(crate::durable::ReaderCommand::Ack(record));
    }

    /// The sink lost its destination: everything delivered but not acknowledged comes
    /// again (marked `replay`), behind live data. The engine also does this before it
    /// starts a new sink instance after a failure.
    pub fn rewind(&self) {
        self.command(crate::durable::ReaderCommand::Rewind);
    }

    /// Applied at once when no `next` is pending (e.g. acks that arrive after the input
    /// ended at shutdown), else queued for the pending `next`, in order either way.
    fn command(&self, command: crate::durable::ReaderCommand) {
        if let SinkInput::Buffer { input, commands } = &self.input {
            match input.try_lock() {
                Ok(mut input) => {
                    input.apply_pending();
                    input.apply(command);
                }
                Err(_) => {
                    let _ = commands.send(command);
                }
            }
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }
}

/// A consumer of normalized samples and events.
pub trait Sink: Send + 'static {
    /// Consumes batches until the input closes (return `Ok` after flushing) or fails.
    fn run(self: Box<Self>, io: SinkIo) -> BoxFuture<'static, Result<(), ComponentError>>;
}

/// Everything a kind needs to build one source instance.
#[derive(Debug)]
pub struct SourceContext<'a> {
    /// The gateway's name (`[gateway] name`), e.g. for deterministic client ids.
    pub gateway: &'a str,
    pub name: &'a str,
    pub settings: &'a Settings,
    /// The addresses bindings read from this source; a reading's `address` indexes this.
    pub addresses: &'a [Arc<str>],
    pub data_dir: &'a PathBuf,
}

/// Everything a kind needs to build one sink instance.
#[derive(Debug)]
pub struct SinkContext<'a> {
    /// The gateway's name (`[gateway] name`), e.g. for deterministic client ids.
    pub gateway: &'a str,
    pub name: &'a str,
    pub settings: &'a Settings,
    pub data_dir: &'a PathBuf,
}

/// A kind of source: reads its configuration and builds instances.
pub trait SourceKind: KindSpec {
    fn build(&self, ctx: &SourceContext<'_>) -> Result<Box<dyn Source>, ComponentError>;
}

/// A kind of sink: reads its configuration and builds instances.
pub trait SinkKind: KindSpec {
    fn build(&self, ctx: &SinkContext<'_>) -> Result<Box<dyn Sink>, ComponentError>;
}

/// The source and sink kinds this binary knows. Adding a protocol means registering its
/// kinds here (see [`Registry::with_builtins`]).
#[derive(Default, Clone)]
pub struct Registry {
    sources: BTreeMap<String, Arc<dyn SourceKind>>,
    sinks: BTreeMap<String, Arc<dyn SinkKind>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("sources", &self.sources.keys().collect::<Vec<_>>())
            .field("sinks", &self.sinks.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Lets a `SourceKind` stand where the config crate expects a `KindSpec`.
struct SourceSpec(Arc<dyn SourceKind>);
struct SinkSpec(Arc<dyn SinkKind>);

impl KindSpec for SourceSpec {
    fn describe(&self) -> &'static str {
        self.0.describe()
    }
    fn parse(&self, table: &mut backplane_config::Table<'_>) -> Option<Settings> {
        self.0.parse(table)
    }
    fn check_address(
        &self,
        settings: &Settings,
        address: &str,
    ) -> Result<(), backplane_config::AddressError> {
        self.0.check_address(settings, address)
    }
}

impl KindSpec for SinkSpec {
    fn describe(&self) -> &'static str {
        self.0.describe()
    }
    fn buffered(&self) -> bool {
        self.0.buffered()
    }
    fn parse(&self, table: &mut backplane_config::Table<'_>) -> Option<Settings> {
        self.0.parse(table)
    }
}

impl Registry {
    /// The kinds built into the engine: `simulator` (source) and `jsonl` (sink).
    pub fn with_builtins() -> Registry {
        let mut registry = Registry::default();
        registry.add_source("simulator", Arc::new(crate::builtin::simulator::SimulatorKind));
        registry.add_sink("jsonl", Arc::new(crate::builtin::jsonl::JsonlKind));
        registry
    }

    pub fn add_source(&mut self, kind: &str, spec: Arc<dyn SourceKind>) {
        self.sources.insert(kind.to_owned(), spec);
    }

    pub fn add_sink(&mut self, kind: &str, spec: Arc<dyn SinkKind>) {
        self.sinks.insert(kind.to_owned(), spec);
    }

    pub fn source(&self, kind: &str) -> Option<&Arc<dyn SourceKind>> {
        self.sources.get(kind)
    }

    pub fn sink(&self, kind: &str) -> Option<&Arc<dyn SinkKind>> {
        self.sinks.get(kind)
    }

    /// The catalog the config crate validates against.
    pub fn catalog(&self) -> Catalog {
        let mut catalog = Catalog::default();
        for (name, kind) in &self.sources {
            catalog.add_source(name, Arc::new(SourceSpec(kind.clone())));
        }
        for (name, kind) in &self.sinks {
            catalog.add_sink(name, Arc::new(SinkSpec(kind.clone())));
        }
        catalog
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io() -> (SourceIo, mpsc::Sender<WriteRequest>) {
        let (tx, _rx) = mpsc::channel(4);
        let (write_tx, write_rx) = mpsc::channel(4);
        let io = SourceIo {
            source: 0,
            tx,
            cancel: CancellationToken::new(),
            writes: Arc::new(Mutex::new(write_rx)),
            status: ComponentStatus {
                component: "source",
                name: "test".into(),
                slot: 0,
                health: Arc::new(crate::health::Health::new(Vec::new())),
                events: Default::default(),
            },
        };
        (io, write_tx)
    }

    fn request(
        value: i64,
        deadline: tokio::time::Instant,
    ) -> (
        WriteRequest,
        oneshot::Receiver<Result<Option<Value>, ComponentError>>,
    ) {
        let (reply, answer) = oneshot::channel();
        (
            WriteRequest {
                address: 0,
                value: Value::Int(value),
                reply,
                deadline,
            },
            answer,
        )
    }

    #[tokio::test]
    async fn writes_whose_caller_gave_up_are_never_handed_to_the_source() {
        let (io, tx) = io();
        let now = tokio::time::Instant::now();
        let later = now + std::time::Duration::from_secs(60);
        let (expired, _keep) = request(1, now);
        let (abandoned, answer) = request(2, later);
        drop(answer);
        let (live, _answer) = request(3, later);
        for r in [expired, abandoned, live] {
            tx.send(r).await.unwrap();
        }
        let next = io.next_write().await.unwrap();
        assert_eq!(next.value, Value::Int(3));
    }
}
