//! The plant's node manager: async-opcua's in-memory node manager holds the address space
//! and answers Browse, Read and subscriptions; this implementation adds what Backplane
//! decides itself: writes through the write gate, production methods, and HistoryRead
//! from the historian.

use std::sync::Arc;

use async_trait::async_trait;
use backplane_connector::{Topology, WriteGate};
use backplane_security::Role;
use opcua::server::address_space::AddressSpace;
use opcua::server::diagnostics::NamespaceMetadata;
use opcua::server::node_manager::memory::{InMemoryNodeManager, InMemoryNodeManagerImpl};
use opcua::server::node_manager::{
    HistoryNode, MethodCall, MonitoredItemRef, ParsedReadValueId, RequestContext, ServerContext, WriteNode,
};
use opcua::server::{ContinuationPoint, CreateMonitoredItem};
use opcua::sync::RwLock;
use opcua::types::{
    AttributeId, DataValue, HistoryData, Identifier, NodeId, NumericRange, ReadProcessedDetails,
    ReadRawModifiedDetails, StatusCode, TimestampsToReturn,
};

use crate::auth::Accounts;
use crate::conditions::ConditionIndex;
use crate::history::{Aggregate, History, RawContinuation, range};
use crate::live::LiveValues;
use crate::methods::{Method, Production};
use crate::notifiers::Notifiers;
use crate::space::PlantNodes;
use crate::watchers::Watchers;

/// The node manager type the server holds.
pub type PlantManager = InMemoryNodeManager<PlantManagerImpl>;

/// The doors from OPC UA into the gateway: the write gate, the production commands, the
/// users and their roles.
#[derive(Debug, Clone)]
pub struct Doors {
    pub topology: Arc<Topology>,
    pub gate: WriteGate,
    pub production: Production,
    pub accounts: Arc<Accounts>,
    /// The historian HistoryRead is answered from, if the gateway has one.
    pub history: Option<History>,
}

/// Backplane's part of the node manager.
pub struct PlantManagerImpl {
    namespace: NamespaceMetadata,
    plant: Arc<PlantNodes>,
    /// The tag variables' values (the address space keeps their other attributes).
    live: Arc<LiveValues>,
    /// The limit alarms' condition instances.
    conditions: Arc<ConditionIndex>,
    /// The event items on the assets, for delivery to ancestors' subscribers.
    notifiers: Arc<Notifiers>,
    /// The data items on the tag variables, for the sink's delivery of values.
    watchers: Arc<Watchers>,
    doors: Doors,
}

impl std::fmt::Debug for PlantManagerImpl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlantManagerImpl")
            .field("namespace", &self.namespace.namespace_uri)
            .finish_non_exhaustive()
    }
}

impl PlantManagerImpl {
    pub fn new(
        namespace: NamespaceMetadata,
        plant: PlantNodes,
        conditions: Arc<ConditionIndex>,
        doors: Doors,
    ) -> PlantManagerImpl {
        PlantManagerImpl {
            namespace,
            conditions,
            notifiers: Arc::default(),
            live: Arc::new(LiveValues::new(plant.tags.len())),
            watchers: Arc::new(Watchers::new(plant.tags.len())),
            plant: Arc::new(plant),
            doors,
        }
    }

    /// The plant's nodes, by tag and asset index.
    pub fn plant(&self) -> &Arc<PlantNodes> {
        &self.plant
    }

    /// The limit alarms' condition instances.
    pub fn conditions(&self) -> &Arc<ConditionIndex> {
        &self.conditions
    }

    /// The event items on the assets.
    pub fn notifiers(&self) -> &Arc<Notifiers> {
        &self.notifiers
    }

    /// The tag variables' live values, by tag index.
    pub fn live(&self) -> &Arc<LiveValues> {
        &self.live
    }

    /// The data items on the tag variables.
    pub fn watchers(&self) -> &Arc<Watchers> {
        &self.watchers
    }

    /// The tag index of a tag variable of this namespace.
    fn tag_index(&self, id: &NodeId) -> Option<usize> {
        let Identifier::String(s) = &id.identifier else {
            return None;
        };
        if id.namespace != self.plant.ns {
            return None;
        }
        let index = self.doors.topology.tag_by_path(s.as_ref())?.id.index();
        self.plant.tags.get(index)?.as_ref().map(|_| index)
    }

    /// The session's user and role; `None` for anonymous sessions.
    fn user<'c>(&self, context: &'c RequestContext) -> Option<(&'c str, Role)> {
        let role = self.doors.accounts.role(&context.token)?;
        Some((context.token.0.as_str(), role))
    }

    /// The tag a node of this namespace is the variable of: its path and type.
    fn tag_of(&self, id: &opcua::types::NodeId) -> Option<(Arc<str>, backplane_model::DataType)> {
        let Identifier::String(s) = &id.identifier else {
            return None;
        };
        if id.namespace != self.plant.ns {
            return None;
        }
        let tag = self.doors.topology.tag_by_path(s.as_ref())?;
        Some((
            self.doors.topology.path(tag).to_string().into(),
            tag.attribute.data_type,
        ))
    }

    /// The historian, or BadHistoryOperationUnsupported without one.
    fn history(&self) -> Result<&History, StatusCode> {
        self.doors
            .history
            .as_ref()
            .ok_or(StatusCode::BadHistoryOperationUnsupported)
    }

    async fn write_one(&self, context: &RequestContext, node: &mut WriteNode) {
        let value = node.value();
        let tag = match &value.node_id.identifier {
            Identifier::String(s) if value.node_id.namespace == self.plant.ns => {
                self.doors.topology.tag_by_path(s.as_ref())
            }
            _ => None,
        };
        let Some(tag) = tag else {
            // Our other nodes (types, properties, context) are never written.
            node.set_status(StatusCode::BadNotWritable);
            return;
        };
        let writable = self
            .plant
            .tags
            .get(tag.id.index())
            .and_then(Option::as_ref)
            .is_some_and(|t| t.writable);
        if value.attribute_id != AttributeId::Value || !writable {
            node.set_status(StatusCode::BadNotWritable);
            return;
        }
        if value.index_range != NumericRange::None {
            node.set_status(StatusCode::BadWriteNotSupported);
            return;
        }
        let Some(variant) = value.value.value.clone() else {
            node.set_status(StatusCode::BadTypeMismatch);
            return;
        };
        let Some(user) = self.user(context) else {
            node.set_status(StatusCode::BadUserAccessDenied);
            return;
        };
        let path = self.doors.topology.path(tag).to_string();
        let status = crate::writes::write(
            &self.doors.gate,
            &path,
            &variant,
            crate::writes::identity(Some(user)),
            context.session_id,
        )
        .await;
        node.set_status(status);
    }
}

/// Puts history values (or the reason there are none) into a node's answer.
fn answer(node: &mut HistoryNode, values: Result<Vec<opcua::types::DataValue>, StatusCode>) {
    match values {
        Ok(values) => {
            node.set_result(HistoryData {
                data_values: Some(values),
            });
            node.set_status(StatusCode::Good);
        }
        Err(status) => node.set_status(status),
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

    /// Values of tag variables come from the live values, checked by the address space
    /// (the node exists, the session may read it, the encoding); everything else from the
    /// address space.
    async fn read_values(
        &self,
        context: &RequestContext,
        address_space: &RwLock<AddressSpace>,
        nodes: &[&ParsedReadValueId],
        max_age: f64,
        timestamps_to_return: TimestampsToReturn,
    ) -> Vec<DataValue> {
        let space = address_space.read();
        nodes
            .iter()
            .map(|node| match self.tag_index(&node.node_id) {
                Some(tag) => match space.validate_node_read(context, node) {
                    Ok(_) => self.live.read(tag, timestamps_to_return, &node.index_range),
                    Err(status) => DataValue {
                        status: Some(status),
                        ..Default::default()
                    },
                },
                None => space.read(context, node, max_age, timestamps_to_return),
            })
            .collect()
    }

    /// async-opcua's default (each item's initial value, read as a Read would, and Good),
    /// and records the items on tag variables for the sink's delivery of values.
    async fn create_value_monitored_items(
        &self,
        context: &RequestContext,
        address_space: &RwLock<AddressSpace>,
        items: &mut [&mut &mut CreateMonitoredItem],
    ) {
        let to_read: Vec<_> = items.iter().map(|r| r.item_to_monitor()).collect();
        let values = self
            .read_values(context, address_space, &to_read, 0.0, TimestampsToReturn::Both)
            .await;
        for (value, item) in values.into_iter().zip(items.iter_mut()) {
            if value.status() != StatusCode::BadAttributeIdInvalid {
                item.set_initial_value(value);
            }
            item.set_status(StatusCode::Good);
            if let Some(tag) = self.tag_index(&item.item_to_monitor().node_id) {
                self.watchers.add(tag, context.session_id, item.handle());
            }
        }
    }

    /// Records the event items on the plant's notifiers (the assets; async-opcua checked
    /// the node is one).
    async fn create_event_monitored_items(
        &self,
        context: &RequestContext,
        _address_space: &RwLock<AddressSpace>,
        items: &mut [&mut &mut CreateMonitoredItem],
    ) {
        for item in items.iter().filter(|i| i.status_code().is_good()) {
            self.notifiers
                .add(&item.item_to_monitor().node_id, context.session_id, item.handle());
        }
    }

    async fn delete_monitored_items(&self, _context: &RequestContext, items: &[&MonitoredItemRef]) {
        for item in items {
            match item.attribute() {
                AttributeId::EventNotifier => self.notifiers.remove(item.node_id(), item.handle()),
                AttributeId::Value => {
                    if let Some(tag) = self.tag_index(item.node_id()) {
                        self.watchers.remove(tag, item.handle());
                    }
                }
                _ => {}
            }
        }
    }

    async fn write(
        &self,
        context: &RequestContext,
        _address_space: &RwLock<AddressSpace>,
        nodes_to_write: &mut [&mut WriteNode],
    ) -> Result<(), StatusCode> {
        for node in nodes_to_write.iter_mut() {
            self.write_one(context, node).await;
        }
        Ok(())
    }

    async fn history_read_raw_modified(
        &self,
        _context: &RequestContext,
        details: &ReadRawModifiedDetails,
        nodes: &mut [&mut &mut HistoryNode],
        _timestamps_to_return: TimestampsToReturn,
    ) -> Result<(), StatusCode> {
        let history = self.history()?;
        if details.is_read_modified {
            return Err(StatusCode::BadHistoryOperationUnsupported);
        }
        let (from, to) = range(&details.start_time, &details.end_time);
        for node in nodes.iter_mut() {
            let Some((path, data)) = self.tag_of(node.node_id()) else {
                node.set_status(StatusCode::BadHistoryOperationUnsupported);
                continue;
            };
            let from = match node.continuation_point() {
                Some(cp) => match cp.get::<RawContinuation>() {
                    Some(c) => c.from,
                    None => {
                        node.set_status(StatusCode::BadContinuationPointInvalid);
                        continue;
                    }
                },
                None => from,
            };
            match history.raw(&path, data, from, to, details.num_values_per_node as usize) {
                Ok((values, next)) => {
                    node.set_next_continuation_point(next.map(|c| ContinuationPoint::new(Box::new(c))));
                    answer(node, Ok(values));
                }
                Err(status) => node.set_status(status),
            }
        }
        Ok(())
    }

    async fn history_read_processed(
        &self,
        _context: &RequestContext,
        details: &ReadProcessedDetails,
        nodes: &mut [&mut &mut HistoryNode],
        _timestamps_to_return: TimestampsToReturn,
    ) -> Result<(), StatusCode> {
        let history = self.history()?;
        let (from, to) = range(&details.start_time, &details.end_time);
        let every = std::time::Duration::from_secs_f64((details.processing_interval / 1000.0).max(0.0));
        let aggregates = details.aggregate_type.as_deref().unwrap_or_default();
        let count = nodes.len();
        for (i, node) in nodes.iter_mut().enumerate() {
            // One aggregate per node of the request, or one for all.
            let aggregate = match aggregates.len() {
                1 => aggregates.first(),
                n if n == count => aggregates.get(i),
                _ => None,
            };
            let Some(aggregate) = aggregate else {
                node.set_status(StatusCode::BadAggregateListMismatch);
                continue;
            };
            let Some(aggregate) = Aggregate::of(aggregate) else {
                node.set_status(StatusCode::BadAggregateNotSupported);
                continue;
            };
            let Some((path, _)) = self.tag_of(node.node_id()) else {
                node.set_status(StatusCode::BadHistoryOperationUnsupported);
                continue;
            };
            answer(node, history.processed(&path, from, to, every, aggregate));
        }
        Ok(())
    }

    async fn call(
        &self,
        context: &RequestContext,
        _address_space: &RwLock<AddressSpace>,
        methods_to_call: &mut [&mut &mut MethodCall],
    ) -> Result<(), StatusCode> {
        for call in methods_to_call.iter_mut() {
            let Some(method) = Method::of(self.plant.ns, call.method_id()) else {
                call.set_status(StatusCode::BadMethodInvalid);
                continue;
            };
            let args = call.arguments().to_vec();
            match self
                .doors
                .production
                .call(method, &args, self.user(context), context.session_id)
                .await
            {
                Ok(outputs) => {
                    call.set_outputs(outputs);
                    call.set_status(StatusCode::Good);
                }
                Err(status) => call.set_status(status),
            }
        }
        Ok(())
    }
}
