//! The [`Sink`] trait and what the engine hands a running sink ([`SinkIo`]).
//!
//! A sink receives shared, immutable batches of normalized samples and events, either
//! from a bounded in-memory queue (local sinks) or through its reader of the durable
//! store-and-forward log (network sinks, which acknowledge what their destination
//! confirmed). Where the batches come from is the engine's [`SinkFeed`].

use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::batch::Batch;
use crate::error::ComponentError;
use crate::gate::WriteGate;
use crate::services::Services;
use crate::stage::CommandPath;
use crate::status::ComponentStatus;
use crate::topology::Topology;

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

/// Where a sink's batches come from; implemented by the engine (a queue, or a reader of
/// the store-and-forward log). Outlives sink instances, so a restarted sink continues
/// where the failed one stopped.
pub trait SinkFeed: Send + Sync + fmt::Debug {
    /// The next delivery, or `None` once the input has ended. Cancel-safe.
    fn next(&self) -> BoxFuture<'_, Option<Delivery>>;
    /// Whether deliveries must be acknowledged (the store-and-forward log).
    fn is_buffered(&self) -> bool;
    /// The destination confirmed everything made from `record`. Any order.
    fn ack(&self, record: u64);
    /// Everything delivered but not acknowledged comes again, marked `replay`.
    fn rewind(&self);
}

/// What a sink is given to run.
#[derive(Clone, Debug)]
pub struct SinkIo {
    feed: Arc<dyn SinkFeed>,
    cancel: CancellationToken,
    /// Cancelled once the pipeline has stopped (shutdown).
    input_closed: CancellationToken,
    pub topology: Arc<Topology>,
    /// For sinks that accept commands from their consumers (e.g. Sparkplug DCMD): the
    /// write gate, the only way to a machine.
    pub gate: WriteGate,
    /// For sinks that hand commands to the pipeline's stages between batches.
    pub commands: CommandPath,
    /// What stages and kinds offer (e.g. the production commands for the MQTT command
    /// topic), by type.
    pub services: Services,
    pub status: ComponentStatus,
}

/// The parts of a [`SinkIo`], for the engine to assemble.
#[derive(Debug)]
pub struct SinkIoParts {
    pub feed: Arc<dyn SinkFeed>,
    pub cancel: CancellationToken,
    pub input_closed: CancellationToken,
    pub topology: Arc<Topology>,
    pub gate: WriteGate,
    pub commands: CommandPath,
    pub services: Services,
    pub status: ComponentStatus,
}

impl SinkIo {
    /// For the engine.
    pub fn new(parts: SinkIoParts) -> SinkIo {
        SinkIo {
            feed: parts.feed,
            cancel: parts.cancel,
            input_closed: parts.input_closed,
            topology: parts.topology,
            gate: parts.gate,
            commands: parts.commands,
            services: parts.services,
            status: parts.status,
        }
    }

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
        self.feed.next().await
    }

    /// Resolves once the engine is shutting down and no more input will come. A sink that
    /// stops reading (e.g. a buffered sink while its destination is away) selects on this
    /// to stop in time; its backlog stays in the log.
    pub async fn input_closed(&self) {
        self.input_closed.cancelled().await
    }

    /// Whether this sink reads through the store-and-forward log and must acknowledge.
    pub fn is_buffered(&self) -> bool {
        self.feed.is_buffered()
    }

    /// The destination confirmed everything made from this delivery's batch: the log may
    /// forget it for this sink. Acks may come in any order.
    pub fn ack(&self, record: u64) {
        self.feed.ack(record);
    }

    /// The sink lost its destination: everything delivered but not acknowledged comes
    /// again (marked `replay`), behind live data. The engine also does this before it
    /// starts a new sink instance after a failure.
    pub fn rewind(&self) {
        self.feed.rewind();
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
