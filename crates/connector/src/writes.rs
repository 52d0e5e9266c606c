//! The raw write path from IT back to a machine: a request to write one value to the
//! address a tag is bound to, answered by the owning source with a read-back. The write
//! gate (permissions, allowlist, limits, interlocks, audit) sits in front of this.

use std::sync::Arc;
use std::time::Duration;

use backplane_model::{TagId, Value};
use tokio::sync::{mpsc, oneshot};

use crate::source::WriteRequest;
use crate::topology::Topology;

/// Write requests waiting per source; a full queue refuses further writes at once.
const WRITE_QUEUE: usize = 16;

/// How long a write may take, device round trip and read-back included.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a write did not happen or was not confirmed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("tag `{0}` is not bound to a source")]
    Unbound(String),
    #[error("source `{0}` is disabled or not running")]
    SourceUnavailable(String),
    #[error("source `{0}` has too many writes pending")]
    Busy(String),
    #[error("source `{0}` did not answer the write in time")]
    Timeout(String),
    #[error("write refused or failed: {0}")]
    Failed(String),
}

/// Routes write requests to the sources that own the addresses. Only the [`WriteGate`]
/// writes through it; the engine makes one and hands it to the gate.
///
/// [`WriteGate`]: crate::gate::WriteGate
#[derive(Clone, Debug)]
pub struct WritePath {
    topology: Arc<Topology>,
    /// Per source: where its write requests go (`None` for disabled sources).
    senders: Arc<[Option<mpsc::Sender<WriteRequest>>]>,
}

impl WritePath {
    /// For the engine: the path and, per source, the receiving end its instances read from.
    pub fn new(topology: &Arc<Topology>) -> (WritePath, Vec<Option<mpsc::Receiver<WriteRequest>>>) {
        WritePath::keeping(topology, |_| None)
    }

    /// [`Self::new`], except that a source for which `running` gives the sender of the
    /// queue its running instance reads (kept by a configuration reload) gets that queue
    /// again, and no new receiving end.
    pub fn keeping(
        topology: &Arc<Topology>,
        running: impl Fn(usize) -> Option<mpsc::Sender<WriteRequest>>,
    ) -> (WritePath, Vec<Option<mpsc::Receiver<WriteRequest>>>) {
        let (senders, receivers): (Vec<_>, Vec<_>) = topology
            .sources
            .iter()
            .enumerate()
            .map(|(i, s)| {
                if let Some(tx) = running(i) {
                    (Some(tx), None)
                } else if s.enabled {
                    let (tx, rx) = mpsc::channel(WRITE_QUEUE);
                    (Some(tx), Some(rx))
                } else {
                    (None, None)
                }
            })
            .unzip();
        (
            WritePath {
                topology: topology.clone(),
                senders: senders.into(),
            },
            receivers,
        )
    }

    /// The sender of a source's write queue, for a reload that keeps the source running.
    pub fn sender(&self, source: usize) -> Option<mpsc::Sender<WriteRequest>> {
        self.senders.get(source).cloned().flatten()
    }

    /// Writes a raw value (in the device's terms, before any transform) to the address a
    /// tag is bound to, and returns the value read back. This is the raw path under the
    /// write gate, and only the gate (this crate) may call it.
    pub(crate) async fn write_raw(&self, tag: TagId, value: Value) -> Result<Option<Value>, WriteError> {
        let topology = &self.topology;
        let info = topology
            .tag(tag)
            .ok_or_else(|| WriteError::Unbound(format!("#{}", tag.0)))?;
        let (Some(source), Some(binding)) = (info.source, &info.binding) else {
            return Err(WriteError::Unbound(topology.path(info).to_string()));
        };
        let routes = &topology.sources[source as usize];
        let name = routes.name.clone();
        let address = routes
            .addresses
            .iter()
            .position(|a| **a == *binding.address)
            .ok_or_else(|| WriteError::Unbound(topology.path(info).to_string()))?;
        let tx = self.senders[source as usize]
            .as_ref()
            .ok_or_else(|| WriteError::SourceUnavailable(name.clone()))?;
        let (reply, answer) = oneshot::channel();
        tx.try_send(WriteRequest {
            address: address as u32,
            value,
            reply,
            deadline: tokio::time::Instant::now() + WRITE_TIMEOUT,
        })
        .map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => WriteError::Busy(name.clone()),
            mpsc::error::TrySendError::Closed(_) => WriteError::SourceUnavailable(name.clone()),
        })?;
        match tokio::time::timeout(WRITE_TIMEOUT, answer).await {
            Err(_) => Err(WriteError::Timeout(name)),
            Ok(Err(_)) => Err(WriteError::SourceUnavailable(name)),
            Ok(Ok(result)) => result.map_err(|e| WriteError::Failed(e.to_string())),
        }
    }
}
