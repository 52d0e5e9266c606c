//! The [`Source`] trait and what the engine hands a running source ([`SourceIo`]).
//!
//! A source owns its connections and emits batches of raw readings addressed by its own
//! address ids; it never sees assets or sinks. It is run by the supervisor, which builds a
//! fresh instance after every failure.

use std::sync::{Arc, RwLock};

use backplane_model::{ContextPatch, Event, Timestamp, Value};
use futures::future::BoxFuture;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::batch::{PipelineInput, RawBatch, RawReading};
use crate::error::ComponentError;
use crate::stage::StageCall;
use crate::status::ComponentStatus;

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

/// What a source's write comes to: the value read back and the readings taken with it, or
/// why not, with the connection's error when the connection is gone.
pub type WriteOutcome<E> = Result<(Option<Value>, Vec<RawReading>), (String, Option<E>)>;

/// The tag a write to `address` is for, or why the source refuses it before sending
/// anything: an address the source does not read, or writes not enabled in its
/// configuration (the message names the key to set). `kind` and `source` name the source.
pub fn write_target<'a, T>(
    kind: &str,
    source: &str,
    tags: &'a [T],
    address: u32,
    writes: bool,
) -> Result<&'a T, String> {
    let Some(tag) = tags.get(address as usize) else {
        return Err(format!(
            "address #{address} is not read by {kind} source `{source}`"
        ));
    };
    if !writes {
        return Err(format!(
            "writes are disabled on {kind} source `{source}`: set `writes = true` in its [[sources]] table"
        ));
    }
    Ok(tag)
}

/// What a source is given to run.
#[derive(Clone, Debug)]
pub struct SourceIo {
    /// Where readings go: replaced when a configuration reload keeps this source running
    /// under the next engine ([`SourceIo::retarget`]), so its connection stays.
    port: Arc<RwLock<Port>>,
    cancel: CancellationToken,
    /// Outlives source instances, like a sink's input queue.
    writes: Arc<Mutex<mpsc::Receiver<WriteRequest>>>,
    pub status: ComponentStatus,
}

/// The pipeline a source's readings go to, and the source's index in its topology.
#[derive(Clone, Debug)]
struct Port {
    source: u32,
    tx: mpsc::Sender<PipelineInput>,
}

impl SourceIo {
    /// For the engine: source number `source` feeds `tx`, stops on `cancel` and receives
    /// the write requests for its addresses on `writes`.
    pub fn new(
        source: u32,
        tx: mpsc::Sender<PipelineInput>,
        cancel: CancellationToken,
        writes: mpsc::Receiver<WriteRequest>,
        status: ComponentStatus,
    ) -> SourceIo {
        SourceIo {
            port: Arc::new(RwLock::new(Port { source, tx })),
            cancel,
            writes: Arc::new(Mutex::new(writes)),
            status,
        }
    }

    /// Hands a batch to the pipeline. Waits while the pipeline's input queue is full
    /// (backpressure: a source slows down rather than losing readings). Returns `false`
    /// once the engine is shutting down.
    pub async fn emit(&self, gateway_time: Timestamp, readings: Vec<RawReading>) -> bool {
        let (source, tx) = self.pipeline();
        let batch = RawBatch {
            source,
            gateway_time,
            readings,
        };
        tx.send(PipelineInput::Readings(batch)).await.is_ok()
    }

    /// This source's index in the running topology and the pipeline's input, as of now.
    /// For the engine (the supervisor's "source down" report); a source calls [`Self::emit`].
    pub fn pipeline(&self) -> (u32, mpsc::Sender<PipelineInput>) {
        // A poisoned lock only means a panic elsewhere while swapping two plain fields.
        let port = self
            .port
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (port.source, port.tx.clone())
    }

    /// For the engine, at a configuration reload that keeps this source running: from now
    /// on its readings go to `tx` under index `source` of the next topology. What it sent
    /// before stays in the previous pipeline's queue, which drains first.
    pub fn retarget(&self, source: u32, tx: mpsc::Sender<PipelineInput>) {
        let mut port = self
            .port
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *port = Port { source, tx };
    }

    /// Hands events to the pipeline, routed in order with this source's readings. For
    /// sources that mirror another gateway (its downtimes, OEE periods, work orders), not
    /// for events the pipeline derives itself. Returns `false` once the engine stops.
    pub async fn emit_events(&self, events: Vec<Event>) -> bool {
        self.pipeline()
            .1
            .send(PipelineInput::Events(events))
            .await
            .is_ok()
    }

    /// Waits until the pipeline has processed everything this source emitted before: its
    /// samples were handed to every sink's input queue and, when a sink is buffered,
    /// appended to the store-and-forward log (which loses nothing on kill -9 once appended;
    /// see `backplane_buffer`). `emit` alone only queues a batch in memory. For sources that
    /// must know their data left the process's memory before they acknowledge it to their
    /// peer (e.g. a drop folder moving a file to `done/`). Returns `false` once the engine
    /// stops.
    pub async fn settled(&self) -> bool {
        let (done, ran) = oneshot::channel();
        let call = StageCall(Box::new(move |_, _| {
            let _ = done.send(());
        }));
        if self.pipeline().1.send(PipelineInput::Call(call)).await.is_err() {
            return false;
        }
        ran.await.is_ok()
    }

    /// Changes the own context of asset `asset` (an index into the topology's assets)
    /// between two batches: readings emitted before keep the old context, readings after
    /// carry the new one. `by` names who made the change (e.g. the mirrored gateway).
    /// Waits until the pipeline applied it, so the next emitted batch sees it; returns
    /// `false` once the engine stops.
    pub async fn set_context(&self, asset: usize, patch: ContextPatch, by: Option<String>) -> bool {
        let (reply, applied) = oneshot::channel();
        let input = PipelineInput::SetContext {
            asset,
            patch,
            by,
            reply,
        };
        if self.pipeline().1.send(input).await.is_err() {
            return false;
        }
        applied.await.is_ok()
    }

    /// Answers a write the source carried out: the caller gets the value read back (and
    /// the pipeline the readings taken with it), or the refusal. `Ok(false)` once the
    /// engine stops; `Err` (from `lost`) when the outcome says the connection is gone.
    pub async fn finish_write<E>(
        &self,
        reply: oneshot::Sender<Result<Option<Value>, ComponentError>>,
        outcome: WriteOutcome<E>,
        lost: impl FnOnce(E) -> ComponentError,
    ) -> Result<bool, ComponentError> {
        match outcome {
            Ok((read_back, readings)) => {
                let _ = reply.send(Ok(read_back));
                Ok(readings.is_empty() || self.emit(Timestamp::now(), readings).await)
            }
            Err((message, connection)) => {
                let _ = reply.send(Err(ComponentError::protocol(message)));
                match connection {
                    Some(e) => Err(lost(e)),
                    None => Ok(true),
                }
            }
        }
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
    /// turns the source's values bad and builds a new instance after a backoff, unless
    /// the error says retrying cannot help).
    fn run(self: Box<Self>, io: SourceIo) -> BoxFuture<'static, Result<(), ComponentError>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io() -> (SourceIo, mpsc::Sender<WriteRequest>) {
        let (tx, _rx) = mpsc::channel(4);
        let (write_tx, write_rx) = mpsc::channel(4);
        let io = SourceIo::new(
            0,
            tx,
            CancellationToken::new(),
            write_rx,
            ComponentStatus::detached(),
        );
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
    async fn settled_resolves_once_the_pipeline_took_everything_emitted_before_it() {
        let (tx, mut rx) = mpsc::channel(4);
        let (_write_tx, write_rx) = mpsc::channel(1);
        let io = SourceIo::new(
            3,
            tx,
            CancellationToken::new(),
            write_rx,
            ComponentStatus::detached(),
        );
        assert!(io.emit(Timestamp::now(), Vec::new()).await);
        let settled = tokio::spawn({
            let io = io.clone();
            async move { io.settled().await }
        });
        // A pipeline: the batch first, then the call, which it runs.
        assert!(matches!(rx.recv().await, Some(PipelineInput::Readings(b)) if b.source == 3));
        tokio::task::yield_now().await;
        assert!(!settled.is_finished(), "not before the pipeline ran the call");
        let Some(PipelineInput::Call(call)) = rx.recv().await else {
            panic!("settled sends a call behind the batch")
        };
        (call.0)(Timestamp::now(), &mut crate::stage::Derived::default());
        assert!(settled.await.unwrap());
        drop(rx);
        assert!(!io.settled().await, "false once the pipeline is gone");
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
