//! The plant's node manager: async-opcua's in-memory node manager holds the address space
//! and answers Browse, Read and subscriptions; this implementation adds what Backplane
//! decides itself: writes through the write gate, production methods, and HistoryRead
//! from the historian.

use std::sync::Arc;

use async_trait::async_trait;
use opcua::server::address_space::AddressSpace;
use opcua::server::diagnostics::NamespaceMetadata;
use opcua::server::node_manager::memory::{InMemoryNodeManager, InMemoryNodeManagerImpl};
use opcua::server::node_manager::{RequestContext, ServerContext, WriteNode};
use opcua::sync::RwLock;
use opcua::types::StatusCode;

use crate::space::PlantNodes;

/// The node manager type the server holds.
pub type PlantManager = InMemoryNodeManager<PlantManagerImpl>;

/// Backplane's part of the node manager.
pub struct PlantManagerImpl {
    namespace: NamespaceMetadata,
    plant: Arc<PlantNodes>,
}

impl std::fmt::Debug for PlantManagerImpl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlantManagerImpl")
            .field("namespace", &self.namespace.namespace_uri)
            .finish_non_exhaustive()
    }
}

impl PlantManagerImpl {
    pub fn new(namespace: NamespaceMetadata, plant: PlantNodes) -> PlantManagerImpl {
        PlantManagerImpl {
            namespace,
            plant: Arc::new(plant),
        }
    }

    /// The plant's nodes, by tag and asset index.
    pub fn plant(&self) -> &Arc<PlantNodes> {
        &self.plant
    }
}

#[async_trait]
impl InMemoryNodeManagerImpl for PlantManagerImpl {
    async fn init(&self, _address_space: &mut AddressSpace, _context: ServerContext) {}

    fn name(&self) -> &str {
        "backplane-plant"
    }

    fn namespaces(&self) -> Vec<NamespaceMetadata> {
        vec![self.namespace.clone()]
    }

    async fn write(
        &self,
        _context: &RequestContext,
        _address_space: &RwLock<AddressSpace>,
        nodes_to_write: &mut [&mut WriteNode],
    ) -> Result<(), StatusCode> {
        for node in nodes_to_write {
            node.set_status(StatusCode::BadNotWritable);
        }
        Ok(())
    }
}
