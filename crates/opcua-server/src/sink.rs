//! The running `opcua-server` sink: starts the server, then hands each batch to the
//! monitored items of every session and stores it: the tags' values (both timestamps and
//! their quality's status) in the live values by tag index under one lock, an asset's
//! context properties in the address space when its context changed.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use backplane_connector::{Batch, ComponentError, Sink, SinkContext, SinkIo, Topology};
use backplane_model::Context;
use backplane_security::users::Users;
use futures::FutureExt;
use futures::future::BoxFuture;
use opcua::server::address_space::NodeType;
use opcua::server::{ServerHandle, SubscriptionCache};
use opcua::types::{AttributeId, DataValue, DateTime, NodeId};

use crate::auth::Accounts;
use crate::condition_methods::AlarmDoor;
use crate::conditions::{ConditionIndex, Shown};
use crate::config::ServerSettings;
use crate::history::History;
use crate::live::LiveValues;
use crate::manager::{Doors, PlantManager};
use crate::methods::Production;
use crate::notifiers::Notifiers;
use crate::server::{Running, ServerInputs};
use crate::space::{PlantNodes, context_values};
use crate::value::{DateTimes, data_value, date_time};
use crate::watchers::Watchers;
use backplane_alarms::AlarmsHandle;
use backplane_historian::Store;
use backplane_model::sample::EventKind;
use backplane_production::ProductionHandle;
use backplane_security::AuditTrail;

/// One `opcua-server` sink.
#[derive(Debug)]
pub struct ServerSink {
    name: String,
    gateway: String,
    data_dir: PathBuf,
    settings: ServerSettings,
}

impl ServerSink {
    pub fn new(ctx: &SinkContext<'_, ServerSettings>) -> ServerSink {
        ServerSink {
            name: ctx.name.to_owned(),
            gateway: ctx.gateway.to_owned(),
            data_dir: ctx.data_dir.clone(),
            settings: ctx.settings.clone(),
        }
    }
}

/// Writes batches into the address space.
pub struct Publisher {
    manager: Arc<PlantManager>,
    subscriptions: Arc<SubscriptionCache>,
    plant: Arc<PlantNodes>,
    live: Arc<LiveValues>,
    topology: Arc<Topology>,
    /// The context each asset's properties show, compared by pointer: the pipeline shares
    /// one `Arc` until a context changes.
    shown: Vec<Option<Arc<Context>>>,
    /// Makes EventIds unique.
    events: u64,
    /// The limit alarms' condition instances.
    conditions: Arc<ConditionIndex>,
    /// The event items on the assets.
    notifiers: Arc<Notifiers>,
    /// Each asset's ancestors' objects, nearest first, by asset index.
    ancestors: Vec<Vec<NodeId>>,
    /// The server (its type tree evaluates event filters).
    handle: ServerHandle,
    /// The data items on the tag variables.
    watchers: Arc<Watchers>,
    /// The last timestamps converted.
    times: DateTimes,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").finish_non_exhaustive()
    }
}

impl Publisher {
    pub fn new(running: &Running, topology: Arc<Topology>, alarms: Option<&AlarmsHandle>) -> Publisher {
        let plant = running.manager.inner().plant().clone();
        let conditions = running.manager.inner().conditions().clone();
        // The alarms stage restored its state: the instances show it from the start.
        if let Some(alarms) = alarms {
            let now = backplane_model::Timestamp::now();
            let space = running.manager.address_space();
            let mut space = space.write();
            for c in alarms.view().iter().filter(|c| c.retained()) {
                if let Some((i, _)) = conditions.by_path(&c.path) {
                    conditions.show(&mut space, i, &Shown::of_condition(c, now));
                }
            }
        }
        let ancestors = (0..topology.assets.len())
            .map(|i| {
                let mut up = Vec::new();
                let mut at = topology.assets.get(i).and_then(|a| a.parent);
                while let Some(p) = at {
                    if let Some(node) = plant.assets.get(p) {
                        up.push(node.id.clone());
                    }
                    at = topology.assets.get(p).and_then(|a| a.parent);
                }
                up
            })
            .collect();
        Publisher {
            conditions,
            notifiers: running.manager.inner().notifiers().clone(),
            watchers: running.manager.inner().watchers().clone(),
            times: DateTimes::default(),
            ancestors,
            handle: running.handle.clone(),
            subscriptions: running.handle.subscriptions().clone(),
            manager: running.manager.clone(),
            live: running.manager.inner().live().clone(),
            shown: vec![None; plant.assets.len()],
            plant,
            topology,
            events: 0,
        }
    }

    /// Shows a limit alarm's transition in its condition instance and reports it as a
    /// condition event; `false` when the event is not a limit alarm of this plant.
    fn report_condition(&self, event: &backplane_model::Event) -> bool {
        let EventKind::Alarm(alarm) = &event.kind else {
            return false;
        };
        if alarm.condition.as_deref() != Some(backplane_alarms::conditions::CONDITION)
            || &*alarm.source != backplane_alarms::conditions::SOURCE
        {
            return false;
        }
        let path = format!("{}/{}", event.asset, alarm.address);
        let Some((i, node)) = self.conditions.by_path(&path) else {
            return false;
        };
        let shown = Shown::of_event(alarm, event.time);
        {
            let space = self.manager.address_space();
            let mut space = space.write();
            self.conditions.show(&mut space, i, &shown);
        }
        if let Some(opc) = self.conditions.event(i, &shown, false) {
            // The first emitter's notification (the asset's, or the Server's if the
            // condition has no asset) reaches the Server's subscribers too.
            if let Some(first) = node.emitters.first() {
                let opc = &opc as &dyn opcua::nodes::Event;
                self.subscriptions.notify_events(std::iter::once((opc, first)));
                self.notifiers.deliver(
                    &self.subscriptions,
                    self.handle.type_tree(),
                    std::iter::once((opc, node.ancestors())),
                );
            }
        }
        true
    }

    /// Reports the batch's events to the subscribers of their asset, of its ancestors and
    /// of the Server, once each: notified on the asset (async-opcua hands that to the
    /// Server's subscribers too), handed directly to the ancestors' subscribers.
    fn report_events(&mut self, batch: &Batch) {
        let mut reported = Vec::new();
        for event in &batch.events {
            if self.report_condition(event) {
                continue;
            }
            let Some(asset) = self.topology.asset_index(event.asset.as_str()) else {
                continue;
            };
            let Some(source) = self.plant.assets.get(asset).map(|a| &a.id) else {
                continue;
            };
            self.events += 1;
            let Some(opc) = crate::events::convert(event, self.plant.ns, source, self.events) else {
                continue;
            };
            reported.push((opc, asset));
        }
        if reported.is_empty() {
            return;
        }
        fn at((e, asset): &(crate::events::OpcEvent, usize)) -> (&dyn opcua::nodes::Event, usize) {
            (e, *asset)
        }
        self.subscriptions.notify_events(
            reported
                .iter()
                .map(at)
                .filter_map(|(e, a)| self.plant.assets.get(a).map(|n| (e, &n.id))),
        );
        self.notifiers.deliver(
            &self.subscriptions,
            self.handle.type_tree(),
            reported
                .iter()
                .map(at)
                .filter_map(|(e, a)| self.ancestors.get(a).map(|up| (e, up.as_slice()))),
        );
    }

    /// Hands each tag value to the data items on its tag (straight to their subscriptions,
    /// [`crate::watchers`]) and each context value to the monitored items of its node (one
    /// look-up in async-opcua's subscriptions per value), and stores them: the tags' in the
    /// live values by index (one lock, no look-up), the context properties' in the address
    /// space. The sessions get the values once everything is stored.
    fn store_and_notify(&self, tags: Vec<(usize, DataValue)>, context: Vec<(&NodeId, DataValue)>) {
        let mut notifier = self.subscriptions.data_notifier();
        for (id, value) in &context {
            if let Some(mut batch) = notifier.notify_for(*id, AttributeId::Value) {
                // async-opcua takes each item's IndexRange of the value itself.
                batch.data_value(value.clone());
            }
        }
        // A copy stored; the values go to the subscriptions after (each of them, should a
        // batch hold a tag twice).
        self.live.store(tags.iter().map(|(tag, v)| (*tag, v.clone())));
        if !context.is_empty() {
            let space = self.manager.address_space();
            let mut space = space.write();
            for (id, value) in context {
                if let Some(NodeType::Variable(variable)) = space.find_mut(id) {
                    variable.set_data_value(value);
                }
            }
        }
        drop(notifier);
        let now = DateTime::now();
        let elsewhere = self.watchers.deliver(tags, &self.subscriptions, &now);
        if !elsewhere.is_empty() {
            // Subscriptions transferred to another session: async-opcua finds their owner.
            let mut notifier = self.subscriptions.data_notifier();
            for (handle, tag, value) in elsewhere {
                let Some(Some(node)) = self.plant.tags.get(tag) else {
                    continue;
                };
                if let Some(mut batch) = notifier.notify_for(&node.id, AttributeId::Value) {
                    batch.data_value_to_item(value, &handle);
                }
            }
        }
    }

    /// Puts one batch into the address space and notifies subscribers.
    pub fn publish(&mut self, batch: &Batch) {
        if !batch.events.is_empty() {
            self.report_events(batch);
        }
        let plant = self.plant.clone();
        let mut tags: Vec<(usize, DataValue)> = Vec::with_capacity(batch.samples.len());
        let mut changed_assets: Vec<(usize, Arc<Context>, backplane_model::Timestamp)> = Vec::new();
        for sample in &batch.samples {
            let Some(Some(node)) = plant.tags.get(sample.tag.index()) else {
                continue;
            };
            tags.push((sample.tag.index(), data_value(sample, node.data, &mut self.times)));
            if let Some(asset) = self.topology.tag(sample.tag).map(|t| t.asset)
                && let Some(shown) = self.shown.get_mut(asset)
                && !shown.as_ref().is_some_and(|c| Arc::ptr_eq(c, &sample.context))
            {
                *shown = Some(sample.context.clone());
                changed_assets.push((asset, sample.context.clone(), sample.gateway_time));
            }
        }
        for event in &batch.events {
            if let Some(asset) = self.topology.asset_index(event.asset.as_str())
                && let Some(shown) = self.shown.get_mut(asset)
                && !shown.as_ref().is_some_and(|c| Arc::ptr_eq(c, &event.context))
            {
                *shown = Some(event.context.clone());
                changed_assets.push((asset, event.context.clone(), event.time));
            }
        }
        let mut context: Vec<(&NodeId, DataValue)> = Vec::new();
        for (asset, changed, time) in &changed_assets {
            if let Some(nodes) = plant.assets.get(*asset) {
                let time = date_time(*time);
                for (id, value) in nodes.context.iter().zip(context_values(changed)) {
                    context.push((id, DataValue::new_at(value, time)));
                }
            }
        }
        if !tags.is_empty() || !context.is_empty() {
            self.store_and_notify(tags, context);
        }
    }
}

impl ServerSink {
    /// The historian store HistoryRead reads: the one named by `historian`, else the only
    /// one of the gateway.
    fn historian(&self, io: &SinkIo) -> Option<Arc<Store>> {
        match &self.settings.historian {
            Some(name) => {
                let store = io.services.named::<Store>(name);
                if store.is_none() {
                    tracing::warn!(sink = %self.name, historian = %name, "no historian sink of that name: HistoryRead is not served");
                }
                store
            }
            None => {
                let all = io.services.all::<Store>();
                if all.len() > 1 {
                    tracing::warn!(sink = %self.name, "several historians: name one with `historian = NAME`; HistoryRead is not served");
                    return None;
                }
                all.into_iter().next().map(|(_, s)| s)
            }
        }
    }
}

impl Sink for ServerSink {
    fn run(self: Box<Self>, io: SinkIo) -> BoxFuture<'static, Result<(), ComponentError>> {
        async move {
            let topology = io.topology.clone();
            let users = match &topology.plan.api.users {
                Some(path) => {
                    Users::load(path).map_err(|e| ComponentError::config(format!("[api] users: {e}")))?
                }
                None => Users::default(),
            };
            let accounts = Arc::new(Accounts::new(Arc::new(users), self.settings.anonymous));
            let audit = io
                .services
                .named::<AuditTrail>(AuditTrail::SERVICE)
                .map(|a| (*a).clone());
            let alarms_handle = io.services.get::<AlarmsHandle>();
            let alarms = AlarmDoor {
                handle: alarms_handle.clone(),
                audit: audit.clone(),
                accounts: accounts.clone(),
                index: Arc::new(OnceLock::new()),
            };
            let doors = Doors {
                topology: topology.clone(),
                gate: io.gate.clone(),
                production: Production {
                    handle: io.services.get::<ProductionHandle>(),
                    audit,
                },
                accounts,
                history: self.historian(&io).map(|store| History {
                    store,
                    max_values: self.settings.limits.max_history_values,
                }),
            };
            let running = crate::server::start(
                &self.settings,
                ServerInputs {
                    gateway: &self.gateway,
                    data_dir: &self.data_dir,
                    doors,
                    alarms,
                },
            )
            .await
            .map_err(|e| ComponentError::io(format!("OPC UA server `{}`: {e}", self.name)))?;
            let mut publisher = Publisher::new(&running, topology, alarms_handle.as_deref());
            let Running {
                handle, mut server, ..
            } = running;
            let result = loop {
                tokio::select! {
                    batch = io.recv() => match batch {
                        Some(batch) => publisher.publish(&batch),
                        None => break Ok(()),
                    },
                    ended = &mut server => {
                        break Err(ComponentError::io(format!(
                            "OPC UA server `{}` stopped: {}",
                            self.name,
                            match ended {
                                Ok(Ok(())) => "without an error".to_owned(),
                                Ok(Err(e)) => e,
                                Err(e) => e.to_string(),
                            }
                        )));
                    }
                }
            };
            handle.cancel();
            server.abort();
            result
        }
        .boxed()
    }
}
