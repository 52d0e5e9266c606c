//! Where sinks' batches come from: the engine's two [`SinkFeed`]s.
//!
//! - [`QueueFeed`]: local sinks read a bounded in-memory queue (they miss batches when it
//!   is full, counted by the router).
//! - [`BufferFeed`]: network sinks read their own reader of the store-and-forward log and
//!   acknowledge what their destination confirmed.

use std::sync::Arc;

use backplane_connector::{Batch, Delivery, SinkFeed};
use futures::future::BoxFuture;
use tokio::sync::{Mutex, mpsc};

use crate::durable::{BufferedInput, ReaderCommand};

/// A local sink's bounded queue.
#[derive(Debug)]
pub(crate) struct QueueFeed(pub(crate) Mutex<mpsc::Receiver<Arc<Batch>>>);

impl SinkFeed for QueueFeed {
    fn next(&self) -> BoxFuture<'_, Option<Delivery>> {
        Box::pin(async move {
            let batch = self.0.lock().await.recv().await?;
            Some(Delivery {
                batch,
                record: None,
                seqs: None,
                replay: false,
            })
        })
    }

    fn is_buffered(&self) -> bool {
        false
    }

    fn ack(&self, _record: u64) {}

    fn rewind(&self) {}
}

/// A buffered sink's reader of the store-and-forward log. Acks and rewinds go through a
/// channel when a `next` is pending (the sink may ack inside a `select!` beside it).
#[derive(Debug)]
pub(crate) struct BufferFeed {
    pub(crate) input: Mutex<BufferedInput>,
    pub(crate) commands: mpsc::UnboundedSender<ReaderCommand>,
}

impl BufferFeed {
    /// Applied at once when no `next` is pending (e.g. acks that arrive after the input
    /// ended at shutdown), else queued for the pending `next`, in order either way.
    fn command(&self, command: ReaderCommand) {
        match self.input.try_lock() {
            Ok(mut input) => {
                input.apply_pending();
                input.apply(command);
            }
            Err(_) => {
                let _ = self.commands.send(command);
            }
        }
    }
}

impl SinkFeed for BufferFeed {
    fn next(&self) -> BoxFuture<'_, Option<Delivery>> {
        Box::pin(async move {
            let delivered = self.input.lock().await.next().await?;
            Some(Delivery {
                batch: delivered.batch,
                record: Some(delivered.record),
                seqs: Some(delivered.seqs),
                replay: delivered.replay,
            })
        })
    }

    fn is_buffered(&self) -> bool {
        true
    }

    fn ack(&self, record: u64) {
        self.command(ReaderCommand::Ack(record));
    }

    fn rewind(&self) {
        self.command(ReaderCommand::Rewind);
    }
}
