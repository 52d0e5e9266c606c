//! The `opcua` source: one session per source, subscriptions (or polled reads) planned
//! within the server's operation limits, recovery after connection loss, and the failure
//! rules of docs/connectors/opcua.md.
//!
//! Recovery:
//! - async-opcua's event loop ([`crate::session`]) reconnects with exponential backoff,
//!   one attempt at a time, reactivating the existing session when the server still knows
//!   it; only when it does not (a server restart) is one new session created.
//! - While disconnected every tag is `bad (comm_failure)`, and health shows the source
//!   degraded with the reason.
//! - After a reconnect that kept the session, publishing is triggered at once (async-opcua
//!   would not resume it); the changes the server queued arrive with it, and notification
//!   messages lost in the broken connection are asked for again ([`crate::republish`]).
//! - After a reconnect with a new session, the source transfers its subscriptions to it
//!   (`TransferSubscriptions` with initial values); those the server no longer has are
//!   created again, within the limits read anew. Then every subscribed tag is read once,
//!   so values turn good even when they have not changed.
//! - Refusals that retrying cannot fix (user or certificate rejected) end the source with
//!   an error that says what to do; the engine's supervisor tries again after its backoff,
//!   so a misconfigured gateway costs the server one session attempt per backoff period.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use backplane_connector::{ComponentError, RawReading, Source, SourceContext, SourceIo, WriteRequest};
use backplane_model::{BadReason, Quality, Timestamp};
use futures::FutureExt;
use futures::future::BoxFuture;
use opcua::client::{MonitoredItemMap, OnSubscriptionNotificationCore, SessionConnectMode};
use opcua::types::{
    DataChangeFilter, DataChangeTrigger, DataValue, DeadbandType, ExtensionObject,
    MonitoredItemCreateRequest, MonitoringMode, MonitoringParameters, NodeId, NotificationMessage,
    ReadValueId, StatusCode, TimestampsToReturn,
};
use prometheus_client::metrics::counter::Counter;
use rand::Rng;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::address::{Address, Namespace, node_id_text};
use crate::config::{Acquisition, Deadband, Group, OpcUaSettings};
use crate::plan::{self, Limits, Plan, SubscriptionPlan};
use crate::republish::{MAX_REPUBLISH, Sequence, data_changes};
use crate::session::{self, ConnectOptions, Connection, SessionEvent};
use crate::value::{ValueError, reading_parts};
use crate::write::{self, TypeCache, WriteFailure};

/// Builds an `opcua` source (see [`OpcUaKind`](crate::OpcUaKind)).
pub(crate) fn build(ctx: &SourceContext<'_, OpcUaSettings>) -> Result<Box<dyn Source>, ComponentError> {
    let settings = Arc::new(ctx.settings.clone());
    let mut groups = vec![settings.default_group.clone()];
    groups.extend(settings.groups.values().cloned());
    let names: Vec<&String> = settings.groups.keys().collect();
    let mut tags = Vec::with_capacity(ctx.addresses.len());
    for text in ctx.addresses {
        let address = Address::parse(text).map_err(|e| {
            ComponentError::config(format!("opcua source `{}`: `{text}`: {}", ctx.name, e.message))
        })?;
        let group = match &address.group {
            None => 0,
            Some(g) => names.iter().position(|n| *n == g).map(|i| i + 1).ok_or_else(|| {
                ComponentError::config(format!("opcua source `{}`: `{text}`: no group `{g}`", ctx.name))
            })?,
        };
        tags.push(Tag {
            text: text.clone(),
            address,
            group,
            node: None,
            problem: None,
        });
    }
    let pki_dir = match &settings.pki_dir {
        Some(dir) => ctx.data_dir.join(dir),
        None => crate::pki::default_pki_dir(ctx.data_dir),
    };
    // Sources started together do not all retry in step.
    let jitter = rand::rng().random_range(0.5..1.0);
    let options = ConnectOptions {
        url: settings.url.clone(),
        security: settings.security,
        identity: settings.identity.clone(),
        pki_dir,
        application_uri: crate::pki::application_uri(ctx.gateway),
        application_name: format!("Backplane {}", ctx.gateway),
        session_name: format!("Backplane {} {}", ctx.gateway, ctx.name),
        verify_server_certificate: settings.verify_server_certificate,
        base_dir: ctx.data_dir.clone(),
        request_timeout: settings.request_timeout,
        session_timeout: settings.session_timeout,
        keep_alive: settings.keep_alive,
        reconnect_initial: Duration::from_millis(500).mul_f64(jitter),
        reconnect_max: settings.reconnect_max,
    };
    Ok(Box::new(OpcUaSource {
        name: ctx.name.to_owned(),
        settings,
        options,
        tags,
        groups,
    }))
}

#[derive(Debug)]
struct Tag {
    text: Arc<str>,
    address: Address,
    group: usize,
    /// Resolved after connecting (`nsu=` needs the server's namespace array).
    node: Option<NodeId>,
    /// The last per-tag problem logged, so each change is logged once.
    problem: Option<String>,
}

/// A configured `opcua` source, before it runs.
#[derive(Debug)]
pub struct OpcUaSource {
    name: String,
    settings: Arc<OpcUaSettings>,
    options: ConnectOptions,
    tags: Vec<Tag>,
    /// The default group, then the named ones in name order.
    groups: Vec<Group>,
}

impl Source for OpcUaSource {
    fn run(self: Box<Self>, io: SourceIo) -> BoxFuture<'static, Result<(), ComponentError>> {
        run(*self, io).boxed()
    }
}

/// Data change notifications, handed from async-opcua's callback to the source's loop.
///
/// Bounded: while the loop waits on the pipeline (backpressure), notifications pile up
/// here; at `cap` the queue is coalesced to the latest value per tag, so memory stays
/// bounded by the number of tags and the newest state of every tag is kept. Values
/// replaced that way are counted (`notifications_coalesced`).
#[derive(Debug, Default)]
struct Inbox {
    items: Mutex<Vec<(u32, DataValue)>>,
    notify: Notify,
    cap: usize,
    coalesced: std::sync::atomic::AtomicU64,
    /// Per subscription, sequence numbers missing (lost in transit), to republish; at
    /// most [`MAX_GAPS`] entries, the numbers of further gaps are only counted.
    gaps: Mutex<Vec<(u32, std::ops::Range<u32>)>>,
    untracked: std::sync::atomic::AtomicU64,
}

/// Most entries of capacity the source keeps in its spare queue between messages.
const SPARE_MAX: usize = 4096;

/// Gaps waiting to be republished; far more than a few outages produce.
const MAX_GAPS: usize = 64;

impl Inbox {
    fn new(tags: usize) -> Inbox {
        Inbox {
            cap: (4 * tags).max(4096),
            ..Inbox::default()
        }
    }

    /// Queues a message's changes under one lock.
    fn push_all(&self, changes: impl Iterator<Item = (u32, DataValue)>) {
        let mut items = lock(&self.items);
        for (tag, value) in changes {
            if items.len() >= self.cap {
                let before = items.len();
                coalesce_latest(&mut items);
                let dropped = (before - items.len()) as u64;
                self.coalesced
                    .fetch_add(dropped, std::sync::atomic::Ordering::Relaxed);
            }
            items.push((tag, value));
        }
    }

    /// Swaps what is queued for `spare` (empty, its capacity kept from the last time), so
    /// the queue does not grow from nothing again for every message.
    fn take(&self, spare: &mut Vec<(u32, DataValue)>) {
        debug_assert!(spare.is_empty());
        std::mem::swap(&mut *lock(&self.items), spare);
    }
}

/// Keeps only the last entry per tag, in arrival order of those entries.
fn coalesce_latest<T>(items: &mut Vec<(u32, T)>) {
    let mut seen = std::collections::HashSet::with_capacity(items.len());
    let mut kept: Vec<(u32, T)> = Vec::with_capacity(items.len());
    for (tag, value) in std::mem::take(items).into_iter().rev() {
        if seen.insert(tag) {
            kept.push((tag, value));
        }
    }
    kept.reverse();
    *items = kept;
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data is a plain queue: a panic elsewhere cannot leave it inconsistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One subscription's notifications into the inbox, noting gaps in its sequence numbers
/// (messages lost with a broken connection) for the source to ask for again.
struct Callback {
    inbox: Arc<Inbox>,
    /// The server's id for the subscription, set once it is created.
    subscription: Arc<std::sync::atomic::AtomicU32>,
    sequence: Sequence,
}

impl OnSubscriptionNotificationCore for Callback {
    fn on_subscription_notification(&mut self, message: NotificationMessage, _items: MonitoredItemMap<'_>) {
        let has_data = message.notification_data.as_ref().is_some_and(|d| !d.is_empty());
        let missing = self.sequence.observe(message.sequence_number, has_data);
        if !missing.is_empty() {
            let subscription = self.subscription.load(std::sync::atomic::Ordering::Relaxed);
            let mut gaps = lock(&self.inbox.gaps);
            if gaps.len() < MAX_GAPS {
                gaps.push((subscription, missing));
            } else {
                // A server skipping numbers all the time: stop chasing them.
                let count = u64::from(missing.end.saturating_sub(missing.start));
                self.inbox
                    .untracked
                    .fetch_add(count, std::sync::atomic::Ordering::Relaxed);
            }
        }
        // Client handles are tag index + 1 (0 would let the library pick one).
        self.inbox.push_all(
            data_changes(message).filter_map(|(handle, value)| Some((handle.checked_sub(1)?, value))),
        );
        self.inbox.notify.notify_one();
    }
}

async fn run(source: OpcUaSource, io: SourceIo) -> Result<(), ComponentError> {
    let url = source.settings.url.clone();
    let connection = tokio::select! {
        () = io.cancelled() => return Ok(()),
        c = source.options.connect() => c,
    };
    let connection = match connection {
        Ok(c) => c,
        Err(e) => {
            let message = e.to_string();
            tracing::error!(source = %source.name, %url, "{message}");
            io.status.set_degraded(Some(message.clone()));
            return Err(ComponentError::connect_because(message, e));
        }
    };
    let inbox = Arc::new(Inbox::new(source.tags.len()));
    let quick = source
        .tags
        .iter()
        .map(|t| Quick {
            field: t.address.field.is_some(),
            problem: t.problem.is_some(),
        })
        .collect();
    let mut runner = Runner {
        notifications: io.status.counter("notifications"),
        coalesced: io.status.counter("notifications_coalesced"),
        reconnects: io.status.counter("reconnects"),
        republished: io.status.counter("notifications_republished"),
        lost: io.status.counter("notifications_lost"),
        source,
        conn: connection,
        inbox,
        spare: Vec::new(),
        quick,
        limits: Limits::new([None; 4], Default::default()),
        plan: Plan::default(),
        subscriptions: Vec::new(),
        connected: false,
        established: false,
        due: Vec::new(),
        types: TypeState::NotLoaded,
        write_types: TypeCache::default(),
    };
    let result = runner.run(&io).await;
    if let Err(e) = &result {
        tracing::error!(source = %runner.source.name, %url, "{e}");
    }
    // Close the session on the server in every case: a restarted source must not leave
    // one behind.
    runner.conn.close().await;
    result
}

/// What reading a notification needs of its tag, kept apart from the tag's record: a
/// message's items come in the server's order, scattered over the tags, and each 192-byte
/// record read cost a cache miss (most of the time of reading a value, measured natively).
#[derive(Clone, Copy, Debug, Default)]
struct Quick {
    /// The address names a structure field (`field=`): the record has it.
    field: bool,
    /// A problem is logged for the tag ([`Tag::problem`]): a good value ends it.
    problem: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum TypeState {
    NotLoaded,
    /// A structure of unknown type arrived: load the server's data types, once per session.
    Wanted,
    Loaded,
}

struct Runner {
    source: OpcUaSource,
    conn: Connection,
    inbox: Arc<Inbox>,
    /// The inbox's other queue, swapped in while this one's notifications are read.
    spare: Vec<(u32, DataValue)>,
    /// Per tag, what reading a value needs to know of it ([`Quick`]).
    quick: Vec<Quick>,
    limits: Limits,
    plan: Plan,
    /// Subscription id on the server, and its entry in `plan.subscriptions`.
    subscriptions: Vec<(u32, usize)>,
    connected: bool,
    established: bool,
    /// When each entry of `plan.polls` is due.
    due: Vec<Instant>,
    types: TypeState,
    /// The type each written node takes, read once per session.
    write_types: TypeCache,
    notifications: Counter,
    coalesced: Counter,
    reconnects: Counter,
    /// Notification messages lost in transit and recovered (Republish), or not.
    republished: Counter,
    lost: Counter,
}

fn per_item_quality(status: StatusCode) -> Quality {
    match status {
        StatusCode::BadNodeIdUnknown
        | StatusCode::BadNodeIdInvalid
        | StatusCode::BadAttributeIdInvalid
        | StatusCode::BadFilterNotAllowed
        | StatusCode::BadMonitoredItemFilterUnsupported
        | StatusCode::BadMonitoredItemFilterInvalid
        | StatusCode::BadDeadbandFilterInvalid
        | StatusCode::BadNotReadable
        | StatusCode::BadUserAccessDenied => Quality::Bad(BadReason::ConfigError),
        other => Quality::from_status_code(other.bits()),
    }
}

fn per_item_message(status: StatusCode, node: &NodeId) -> String {
    let node = node_id_text(node);
    match status {
        StatusCode::BadNodeIdUnknown => format!("the server has no node {node} ({status})"),
        StatusCode::BadAttributeIdInvalid => format!("{node} is not a variable ({status})"),
        StatusCode::BadNotReadable | StatusCode::BadUserAccessDenied => {
            format!("{node} may not be read by this user ({status})")
        }
        StatusCode::BadFilterNotAllowed
        | StatusCode::BadMonitoredItemFilterUnsupported
        | StatusCode::BadDeadbandFilterInvalid
        | StatusCode::BadMonitoredItemFilterInvalid => format!(
            "the server refused the deadband for {node} ({status}); a percent deadband needs an EURange \
             on the variable, and only numeric variables take one"
        ),
        other => format!("{node}: {other}"),
    }
}

/// Whether a failed service call means the connection is gone (the event loop reports
/// that and reconnects) rather than a refusal of this request.
pub(crate) fn is_connection_error(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::BadConnectionClosed
            | StatusCode::BadNotConnected
            | StatusCode::BadSecureChannelClosed
            | StatusCode::BadSessionClosed
            | StatusCode::BadSessionIdInvalid
            | StatusCode::BadCommunicationError
            | StatusCode::BadServerNotConnected
            | StatusCode::BadDisconnect
    )
}

fn bad(address: u32, quality: Quality) -> RawReading {
    RawReading {
        address,
        value: None,
        quality,
        source_time: None,
    }
}

impl Runner {
    async fn run(&mut self, io: &SourceIo) -> Result<(), ComponentError> {
        let inbox = self.inbox.clone();
        loop {
            let next_poll = if self.connected {
                self.due
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, d)| **d)
                    .map(|(i, d)| (i, *d))
            } else {
                None
            };
            let mut readings = tokio::select! {
                biased;
                () = io.cancelled() => return Ok(()),
                event = self.conn.events.recv() => {
                    let Some(event) = event else {
                        return Err(ComponentError::io("the OPC UA session's event loop stopped"));
                    };
                    self.on_event(io, event).await?
                }
                () = inbox.notify.notified() => {
                    // What was lost in transit is older than what arrived since: first.
                    let mut readings = self.republish().await;
                    let mut items = std::mem::take(&mut self.spare);
                    inbox.take(&mut items);
                    self.notifications.inc_by(items.len() as u64);
                    self.coalesced.inc_by(inbox.coalesced.swap(0, std::sync::atomic::Ordering::Relaxed));
                    readings.reserve(items.len());
                    readings.extend(items.drain(..).filter_map(|(tag, dv)| self.reading(tag, &dv)));
                    // Bounded after a burst: the queue itself is bounded by `cap`.
                    items.shrink_to(SPARE_MAX);
                    self.spare = items;
                    readings
                }
                () = sleep_until_opt(next_poll.map(|(_, d)| d)) => {
                    let Some((index, at)) = next_poll else { continue };
                    self.poll(index, at).await
                }
                Some(write) = io.next_write() => self.on_write(write).await,
            };
            if self.types == TypeState::Wanted && self.connected {
                readings.extend(self.load_types().await);
            }
            if !readings.is_empty() && !io.emit(Timestamp::now(), readings).await {
                return Ok(());
            }
        }
    }

    async fn on_event(
        &mut self,
        io: &SourceIo,
        event: SessionEvent,
    ) -> Result<Vec<RawReading>, ComponentError> {
        let url = &self.source.settings.url;
        let name = &self.source.name;
        match event {
            SessionEvent::Connected(mode) => {
                let readings = if self.established {
                    self.reconnects.inc();
                    self.restore(&mode).await
                } else {
                    self.established = true;
                    self.establish().await
                };
                self.connected = true;
                io.status.set_degraded(None);
                Ok(readings)
            }
            SessionEvent::Lost(status) => {
                self.connected = false;
                let message = format!("connection to {url} lost ({status}); reconnecting");
                tracing::warn!(source = %name, "{message}");
                io.status.set_degraded(Some(message));
                let quality = Quality::Bad(BadReason::CommFailure);
                Ok((0..self.source.tags.len() as u32)
                    .map(|t| bad(t, quality))
                    .collect())
            }
            SessionEvent::Failed(status) => {
                if let Some(hint) = session::fatal_hint(status, &self.source.options) {
                    return Err(ComponentError::connect(format!("{url}: {hint}")));
                }
                let message = if self.established {
                    format!("reconnecting to {url}: {status}")
                } else {
                    format!("connecting to {url}: {status}")
                };
                tracing::warn!(source = %name, "{message}");
                io.status.set_degraded(Some(message));
                Ok(Vec::new())
            }
            SessionEvent::Ended(status) => Err(ComponentError::io(format!(
                "the session to {url} ended{}",
                status.map(|s| format!(": {s}")).unwrap_or_default()
            ))),
        }
    }

    /// Carries out one write from the gate and answers it with the value read back; the
    /// read-back is also a reading, so the written value shows at once.
    async fn on_write(&mut self, request: WriteRequest) -> Vec<RawReading> {
        let WriteRequest {
            address,
            value,
            reply,
            ..
        } = request;
        let result = self.write(address, &value).await;
        let (answer, readings) = match result {
            Ok(reading) => {
                let read_back = reading
                    .as_ref()
                    .filter(|r| !r.quality.is_bad())
                    .and_then(|r| r.value.clone());
                (Ok(read_back), reading.into_iter().collect())
            }
            Err(message) => {
                tracing::warn!(source = %self.source.name, "{message}");
                (Err(ComponentError::protocol(message)), Vec::new())
            }
        };
        let _ = reply.send(answer);
        readings
    }

    async fn write(
        &mut self,
        address: u32,
        value: &backplane_model::Value,
    ) -> Result<Option<RawReading>, String> {
        let name = &self.source.name;
        let tag = backplane_connector::write_target(
            "opcua",
            name,
            &self.source.tags,
            address,
            self.source.settings.writes,
        )?;
        if tag.address.field.is_some() {
            return Err(format!(
                "`{}` is a field of a structure; writing one field would overwrite the others: bind the \
                 whole node, or a variable of its own",
                tag.text
            ));
        }
        if !self.connected {
            return Err(format!(
                "opcua source `{name}` is not connected to {}",
                self.source.settings.url
            ));
        }
        let Some(node) = tag.node.clone() else {
            return Err(format!("`{}` does not name a node on this server", tag.text));
        };
        let session = self.conn.session.clone();
        match write::write(&session, &mut self.write_types, address, &node, value).await {
            Ok(dv) => {
                tracing::info!(source = %name, address = %tag.text, %value, "wrote to the server");
                Ok(self.reading(address, &dv))
            }
            // The event loop reports the loss and reconnects; this write is not retried.
            Err(WriteFailure::Lost(m)) => {
                Err(format!("{m} (connection lost; the write may not have happened)"))
            }
            Err(WriteFailure::Refused(m)) => Err(m),
        }
    }

    /// Asks the server again for the notification messages lost in transit (gaps in the
    /// sequence numbers); what it no longer has is counted as lost, and logged.
    async fn republish(&mut self) -> Vec<RawReading> {
        let gaps = std::mem::take(&mut *lock(&self.inbox.gaps));
        let untracked = self.inbox.untracked.swap(0, std::sync::atomic::Ordering::Relaxed);
        if untracked > 0 {
            self.lost.inc_by(untracked);
            tracing::warn!(
                source = %self.source.name,
                "{untracked} notification messages are missing beyond the {MAX_GAPS} gaps the source asks for again: value changes in between are lost"
            );
        }
        let mut readings = Vec::new();
        for (index, (subscription, missing)) in gaps.iter().enumerate() {
            let count = missing.end.saturating_sub(missing.start);
            if count > MAX_REPUBLISH {
                self.lost.inc_by(u64::from(count));
                tracing::warn!(
                    source = %self.source.name,
                    "{count} notification messages of subscription {subscription} are missing, too many to ask for again: value changes in between are lost"
                );
                continue;
            }
            let mut unavailable = 0u32;
            for number in missing.clone() {
                match self.conn.session.republish(*subscription, number).await {
                    Ok(message) => {
                        self.republished.inc();
                        for (handle, dv) in data_changes(message) {
                            if let Some(r) = handle.checked_sub(1).and_then(|t| self.reading(t, &dv)) {
                                readings.push(r);
                            }
                        }
                    }
                    Err(e) if is_connection_error(e.status()) => {
                        // Try again once reconnected: the server keeps them until acknowledged.
                        let mut rest = vec![(*subscription, number..missing.end)];
                        rest.extend(gaps.iter().skip(index + 1).cloned());
                        lock(&self.inbox.gaps).extend(rest);
                        return readings;
                    }
                    Err(_) => unavailable += 1,
                }
            }
            if unavailable > 0 {
                self.lost.inc_by(u64::from(unavailable));
                tracing::warn!(
                    source = %self.source.name,
                    "{unavailable} notification messages of subscription {subscription} lost in transit are no longer on the server: value changes in between are lost"
                );
            }
        }
        readings
    }

    /// Logs a tag's problem when it changes (and its recovery).
    fn note(&mut self, tag: u32, problem: Option<String>) {
        let name = &self.source.name;
        let Some(t) = self.source.tags.get_mut(tag as usize) else {
            return;
        };
        if t.problem == problem {
            return;
        }
        match &problem {
            Some(p) => tracing::warn!(source = %name, address = %t.text, "{p}"),
            None => tracing::info!(source = %name, address = %t.text, "delivers values again"),
        }
        if let Some(quick) = self.quick.get_mut(tag as usize) {
            quick.problem = problem.is_some();
        }
        t.problem = problem;
    }

    fn reading(&mut self, tag: u32, dv: &DataValue) -> Option<RawReading> {
        let quick = *self.quick.get(tag as usize)?;
        // Some servers accept a monitored item for a node they do not have and report the
        // problem in its values instead: the same per-tag error either way.
        if let Some(status) = dv.status.filter(|s| s.is_bad())
            && per_item_quality(status) == Quality::Bad(BadReason::ConfigError)
        {
            let node = self.source.tags.get(tag as usize).and_then(|t| t.node.as_ref());
            let message = per_item_message(status, node.unwrap_or(&NodeId::null()));
            self.note(tag, Some(message));
            return Some(bad(tag, per_item_quality(status)));
        }
        let field = if quick.field {
            self.source
                .tags
                .get(tag as usize)
                .and_then(|t| t.address.field.as_deref())
        } else {
            None
        };
        let (value, mut quality, source_time) = reading_parts(dv, field);
        if quality.is_bad() {
            quality = per_item_quality(dv.status.unwrap_or(StatusCode::Bad));
        }
        Some(match value {
            Ok(value) => {
                if quick.problem {
                    self.note(tag, None);
                }
                RawReading {
                    address: tag,
                    value,
                    quality,
                    source_time,
                }
            }
            Err(e) => {
                if matches!(e, ValueError::UnknownStructure(_)) && self.types == TypeState::NotLoaded {
                    self.types = TypeState::Wanted;
                }
                self.note(tag, Some(e.message().to_owned()));
                RawReading {
                    address: tag,
                    value: None,
                    quality: e.quality(),
                    source_time,
                }
            }
        })
    }

    /// Resolves node ids (after reading the namespace array); readings for tags that
    /// cannot be resolved. Returns whether any resolved node changed.
    async fn resolve(&mut self) -> (Vec<RawReading>, bool) {
        let needs_namespaces = self
            .source
            .tags
            .iter()
            .any(|t| matches!(t.address.namespace, Namespace::Uri(_)));
        let namespaces = if needs_namespaces {
            match session::read_namespaces(&self.conn.session).await {
                Ok(n) => Some(n),
                Err(e) => {
                    tracing::warn!(source = %self.source.name, "{e}");
                    None
                }
            }
        } else {
            None
        };
        let mut readings = Vec::new();
        let mut changed = false;
        let mut problems = Vec::new();
        for (i, tag) in self.source.tags.iter_mut().enumerate() {
            let node = tag
                .address
                .node_id(|uri| namespaces.as_ref().and_then(|n| n.get_index(uri)));
            if tag.node.is_some() && tag.node != node {
                changed = true;
            }
            if node.is_none() {
                let known: Vec<&String> = namespaces
                    .as_ref()
                    .map(|n| n.known_namespaces().keys().collect())
                    .unwrap_or_default();
                let uri = match &tag.address.namespace {
                    Namespace::Uri(u) => u.as_str(),
                    Namespace::Index(_) => "",
                };
                problems.push((
                    i as u32,
                    format!("the server has no namespace `{uri}` (it has: {known:?})"),
                ));
                readings.push(bad(i as u32, Quality::Bad(BadReason::ConfigError)));
            }
            tag.node = node;
        }
        for (tag, problem) in problems {
            self.note(tag, Some(problem));
        }
        (readings, changed)
    }

    async fn establish(&mut self) -> Vec<RawReading> {
        let (mut readings, _) = self.resolve().await;
        let server = session::read_limits(&self.conn.session).await;
        self.limits = Limits::new(server, self.source.settings.limits);
        let list: Vec<(u32, usize)> = self
            .source
            .tags
            .iter()
            .enumerate()
            .filter(|(_, t)| t.node.is_some())
            .map(|(i, t)| (i as u32, t.group))
            .collect();
        let acquisition: Vec<Acquisition> = self.source.groups.iter().map(|g| g.acquisition).collect();
        self.plan = plan::plan(&list, &acquisition, &self.limits);
        let now = Instant::now();
        self.due = vec![now; self.plan.polls.len()];
        let all = (0..self.plan.subscriptions.len()).collect();
        readings.extend(self.create_subscriptions(all).await);
        if self.plan.overflow > 0 {
            tracing::warn!(
                source = %self.source.name,
                "{} items did not fit into the server's {} subscriptions per session and are polled instead",
                self.plan.overflow,
                self.limits.subscriptions
            );
        }
        tracing::info!(
            source = %self.source.name,
            url = %self.source.settings.url,
            security = %self.conn.security(),
            "connected: {} items in {} subscriptions ({} CreateMonitoredItems calls), {} polled in {} reads per cycle; limits: {}",
            self.plan.subscribed(),
            self.subscriptions.len(),
            self.plan.create_calls(&self.limits),
            self.plan.polled(),
            self.plan.reads_per_cycle(&self.limits),
            self.limits
        );
        readings
    }

    /// Creates subscription `index` of the plan and its monitored items, in calls of at
    /// most MaxMonitoredItemsPerCall; readings for items the server refused.
    async fn create_subscription(&mut self, index: usize) -> (Vec<RawReading>, Vec<u32>) {
        let Some(SubscriptionPlan { group, tags }) = self.plan.subscriptions.get(index).cloned() else {
            return (Vec::new(), Vec::new());
        };
        let Some(settings) = self.source.groups.get(group).cloned() else {
            return (Vec::new(), Vec::new());
        };
        let period = settings.period;
        let period_ms = period.as_secs_f64() * 1000.0;
        // Keep-alive about every 10 s; the server keeps the subscription ≥ 2 minutes
        // without publish requests, long enough to transfer it after a short outage.
        let keep_alive = (10_000.0 / period_ms).ceil().clamp(1.0, 1000.0) as u32;
        let lifetime = ((120_000.0 / period_ms).ceil() as u32).max(keep_alive * 3);
        let subscription = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let created = self
            .conn
            .session
            .create_subscription(
                period,
                lifetime,
                keep_alive,
                0,
                0,
                true,
                Callback {
                    inbox: self.inbox.clone(),
                    subscription: subscription.clone(),
                    sequence: Sequence::default(),
                },
            )
            .await;
        let id = match created {
            Ok(id) => {
                subscription.store(id, std::sync::atomic::Ordering::Relaxed);
                id
            }
            Err(e) => {
                let problem = format!("the server refused a subscription: {e}");
                let quality = Quality::Bad(BadReason::CommFailure);
                let mut readings = Vec::new();
                for &t in &tags {
                    self.note(t, Some(problem.clone()));
                    readings.push(bad(t, quality));
                }
                return (readings, Vec::new());
            }
        };
        self.subscriptions.retain(|(_, i)| *i != index);
        self.subscriptions.push((id, index));
        let filter = match settings.deadband {
            None => ExtensionObject::null(),
            Some(d) => {
                let (kind, value) = match d {
                    Deadband::Absolute(v) => (DeadbandType::Absolute, v),
                    Deadband::Percent(v) => (DeadbandType::Percent, v),
                };
                ExtensionObject::from_message(DataChangeFilter {
                    trigger: DataChangeTrigger::StatusValue,
                    deadband_type: kind as u32,
                    deadband_value: value,
                })
            }
        };
        let sampling = settings
            .sampling_interval
            .map_or(-1.0, |s| s.as_secs_f64() * 1000.0);
        let mut readings = Vec::new();
        let mut accepted = 0usize;
        let mut rest: &[u32] = &tags;
        while !rest.is_empty() {
            let (chunk, after) = rest.split_at(self.limits.items_per_call.clamp(1, rest.len()));
            let mut members = Vec::with_capacity(chunk.len());
            let mut requests = Vec::with_capacity(chunk.len());
            for &t in chunk {
                let Some(node) = self.source.tags.get(t as usize).and_then(|tag| tag.node.clone()) else {
                    continue;
                };
                members.push((t, node.clone()));
                requests.push(MonitoredItemCreateRequest {
                    item_to_monitor: ReadValueId::from(node),
                    monitoring_mode: MonitoringMode::Reporting,
                    requested_parameters: MonitoringParameters {
                        client_handle: t + 1,
                        sampling_interval: sampling,
                        filter: filter.clone(),
                        queue_size: settings.queue_size,
                        discard_oldest: true,
                    },
                });
            }
            if requests.is_empty() {
                rest = after;
                continue;
            }
            match self
                .conn
                .session
                .create_monitored_items(id, TimestampsToReturn::Both, requests)
                .await
            {
                Ok(results) => {
                    let mut full = Vec::new();
                    for ((t, node), r) in members.iter().zip(results) {
                        let status = r.result.status_code;
                        if status == StatusCode::BadTooManyMonitoredItems {
                            full.push(*t);
                        } else if status.is_bad() {
                            self.note(*t, Some(per_item_message(status, node)));
                            readings.push(bad(*t, per_item_quality(status)));
                        } else {
                            accepted += 1;
                        }
                    }
                    if !full.is_empty() {
                        full.extend_from_slice(after);
                        return (readings, self.subscription_full(index, accepted, full));
                    }
                }
                // The server takes fewer items per call than it states (or states none):
                // halve the calls and try again.
                Err(e) if e.status() == StatusCode::BadTooManyOperations && chunk.len() > 1 => {
                    self.limits.items_per_call = chunk.len() / 2;
                    tracing::warn!(
                        source = %self.source.name,
                        "the server refused {} monitored items in one call; sending at most {} per call",
                        chunk.len(),
                        self.limits.items_per_call
                    );
                    continue;
                }
                // This subscription is full although the server stated no such limit.
                Err(e) if e.status() == StatusCode::BadTooManyMonitoredItems && accepted > 0 => {
                    return (readings, self.subscription_full(index, accepted, rest.to_vec()));
                }
                Err(e) => {
                    let problem = format!("CreateMonitoredItems for {} items failed: {e}", members.len());
                    for (t, _) in &members {
                        self.note(*t, Some(problem.clone()));
                        readings.push(bad(*t, Quality::Bad(BadReason::CommFailure)));
                    }
                }
            }
            rest = after;
        }
        (readings, Vec::new())
    }

    /// Subscription `index` took `accepted` items and no more: keep those in it, learn the
    /// cap, and return the tags that need another subscription (or polling).
    fn subscription_full(&mut self, index: usize, accepted: usize, overflow: Vec<u32>) -> Vec<u32> {
        tracing::warn!(
            source = %self.source.name,
            "the server takes at most {accepted} monitored items per subscription; using more subscriptions"
        );
        self.limits.items_per_subscription = accepted.max(1);
        let moved: std::collections::HashSet<u32> = overflow.iter().copied().collect();
        if let Some(plan) = self.plan.subscriptions.get_mut(index) {
            plan.tags.retain(|t| !moved.contains(t));
        }
        overflow
    }

    /// Creates the subscriptions of the plan with these indices, spilling items the server
    /// does not take into further subscriptions, or into polling past the subscription limit.
    async fn create_subscriptions(&mut self, indices: Vec<usize>) -> Vec<RawReading> {
        let mut readings = Vec::new();
        let mut queue: std::collections::VecDeque<usize> = indices.into();
        while let Some(index) = queue.pop_front() {
            let (r, overflow) = self.create_subscription(index).await;
            readings.extend(r);
            if overflow.is_empty() {
                continue;
            }
            let group = self.plan.subscriptions.get(index).map_or(0, |p| p.group);
            if self.plan.subscriptions.len() < self.limits.subscriptions {
                self.plan.subscriptions.push(SubscriptionPlan {
                    group,
                    tags: overflow,
                });
                queue.push_back(self.plan.subscriptions.len() - 1);
            } else {
                tracing::warn!(
                    source = %self.source.name,
                    "{} items did not fit into the server's subscriptions and are polled instead",
                    overflow.len()
                );
                self.plan.overflow += overflow.len();
                self.plan.polls.push(plan::PollPlan {
                    group,
                    tags: overflow,
                });
                self.due.push(Instant::now());
            }
        }
        readings
    }

    /// After a reconnect: keep, transfer or recreate subscriptions, then read every
    /// subscribed tag once so its value turns good again.
    async fn restore(&mut self, mode: &SessionConnectMode) -> Vec<RawReading> {
        let name = self.source.name.clone();
        let mut readings = Vec::new();
        if let SessionConnectMode::NewSession(_) = mode {
            // Possibly another server behind the same URL: read the types again.
            self.write_types.clear();
            let (unresolved, renumbered) = self.resolve().await;
            readings.extend(unresolved);
            let server = session::read_limits(&self.conn.session).await;
            self.limits = Limits::new(server, self.source.settings.limits);
            let ids: Vec<u32> = self.subscriptions.iter().map(|(id, _)| *id).collect();
            let mut failed: Vec<u32> = if renumbered {
                tracing::warn!(source = %name, "the server renumbered its namespaces: subscribing anew");
                ids.clone()
            } else if ids.is_empty() {
                Vec::new()
            } else {
                match self.conn.session.transfer_subscriptions(&ids, true).await {
                    Ok(results) => ids
                        .iter()
                        .zip(
                            results
                                .iter()
                                .map(|r| r.status_code)
                                .chain(std::iter::repeat(StatusCode::Bad)),
                        )
                        .filter(|(_, s)| !s.is_good())
                        .map(|(id, _)| *id)
                        .collect(),
                    Err(_) => ids.clone(),
                }
            };
            failed.sort_unstable();
            let transferred = ids.len() - failed.len();
            if !failed.is_empty() {
                // Also forgets them locally; the server has most likely lost them anyway.
                let _ = self.conn.session.delete_subscriptions(&failed).await;
                let plans: Vec<usize> = self
                    .subscriptions
                    .iter()
                    .filter(|(id, _)| failed.binary_search(id).is_ok())
                    .map(|(_, i)| *i)
                    .collect();
                self.subscriptions
                    .retain(|(id, _)| failed.binary_search(id).is_err());
                readings.extend(self.create_subscriptions(plans).await);
            }
            tracing::info!(
                source = %name,
                "reconnected with a new session: {transferred} subscriptions transferred, {} created again",
                failed.len()
            );
        } else {
            // async-opcua's new publish loop sends no Publish until something triggers it
            // (only a transfer or a new subscription does): without this, a kept session's
            // subscriptions would never report again.
            self.conn.session.trigger_publish_now();
            tracing::info!(source = %name, "reconnected; the session and its subscriptions were kept");
        }
        let subscribed: Vec<u32> = self
            .plan
            .subscriptions
            .iter()
            .flat_map(|s| s.tags.iter().copied())
            .collect();
        readings.extend(self.read_tags(&subscribed).await);
        let now = Instant::now();
        self.due.iter_mut().for_each(|d| *d = now);
        readings
    }

    /// Reads tags in calls of at most MaxNodesPerRead.
    async fn read_tags(&mut self, tags: &[u32]) -> Vec<RawReading> {
        let mut readings = Vec::with_capacity(tags.len());
        let members: Vec<(u32, NodeId)> = tags
            .iter()
            .filter_map(|&t| self.source.tags.get(t as usize)?.node.clone().map(|n| (t, n)))
            .collect();
        for chunk in members.chunks(self.limits.nodes_per_read.max(1)) {
            let nodes: Vec<ReadValueId> = chunk.iter().map(|(_, n)| ReadValueId::from(n.clone())).collect();
            match self
                .conn
                .session
                .read(&nodes, TimestampsToReturn::Both, 0.0)
                .await
            {
                Ok(values) => {
                    for ((t, _), dv) in chunk.iter().zip(values.iter()) {
                        if let Some(r) = self.reading(*t, dv) {
                            readings.push(r);
                        }
                    }
                }
                Err(e) if is_connection_error(e.status()) => {
                    // The event loop reports the loss and every tag turns bad then.
                    break;
                }
                Err(e) => {
                    let problem = format!("Read of {} nodes failed: {e}", chunk.len());
                    for (t, _) in chunk {
                        self.note(*t, Some(problem.clone()));
                        readings.push(bad(*t, Quality::Bad(BadReason::CommFailure)));
                    }
                }
            }
        }
        readings
    }

    /// One cycle of poll plan `index`, due at `at`.
    async fn poll(&mut self, index: usize, at: Instant) -> Vec<RawReading> {
        let Some(p) = self.plan.polls.get(index).cloned() else {
            return Vec::new();
        };
        let period = self
            .source
            .groups
            .get(p.group)
            .map_or(Duration::from_secs(1), |g| g.period);
        let readings = self.read_tags(&p.tags).await;
        // Skip missed ticks rather than bursting to catch up.
        let now = Instant::now();
        let mut next = at + period;
        while next <= now {
            next += period;
        }
        if let Some(d) = self.due.get_mut(index) {
            *d = next;
        }
        readings
    }

    /// Loads the server's data type definitions so structures decode, then reads the
    /// tags that could not be decoded.
    async fn load_types(&mut self) -> Vec<RawReading> {
        self.types = TypeState::Loaded;
        let session = self.conn.session.clone();
        let built = opcua::client::custom_types::DataTypeTreeBuilder::new(|_: &NodeId| true)
            .build(&session)
            .await;
        match built {
            Ok(tree) => {
                session.add_type_loader(Arc::new(opcua::types::custom::DynamicTypeLoader::new(Arc::new(
                    tree,
                ))));
                tracing::info!(source = %self.source.name, "loaded the server's data types to decode structures");
                let retry: Vec<u32> = self
                    .source
                    .tags
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| t.problem.is_some() && t.node.is_some())
                    .map(|(i, _)| i as u32)
                    .collect();
                self.read_tags(&retry).await
            }
            Err(e) => {
                tracing::warn!(
                    source = %self.source.name,
                    "cannot load the server's data types ({e}); structures of unknown type stay bad"
                );
                Vec::new()
            }
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => futures::future::pending().await,
    }
}

#[cfg(test)]
mod inbox_tests {
    use super::*;
    use opcua::types::Variant;

    #[test]
    fn a_backed_up_inbox_stays_bounded_by_the_number_of_tags() {
        let inbox = Inbox::new(3);
        for i in 0..20_000u32 {
            inbox.push_all(std::iter::once((i % 3, DataValue::default())));
        }
        let items = lock(&inbox.items);
        assert!(items.len() <= inbox.cap, "{} queued", items.len());
        assert!(inbox.coalesced.load(std::sync::atomic::Ordering::Relaxed) > 0);
    }

    #[test]
    fn queued_changes_come_out_in_arrival_order_and_leave_the_queue_empty() {
        let inbox = Inbox::new(10);
        let value = |v: u32| DataValue::new_now(v);
        inbox.push_all([(2, value(20)), (1, value(10))].into_iter());
        inbox.push_all(std::iter::once((2, value(21))));
        let mut spare = Vec::with_capacity(8);
        inbox.take(&mut spare);
        let got: Vec<(u32, Option<Variant>)> = spare.drain(..).map(|(t, dv)| (t, dv.value)).collect();
        let want = [(2, 20u32), (1, 10), (2, 21)].map(|(t, v)| (t, Some(Variant::UInt32(v))));
        assert_eq!(got, want);
        // The spare queue (with its capacity) is now the inbox's; nothing is left over.
        inbox.take(&mut spare);
        assert!(spare.is_empty());
        assert!(spare.capacity() >= 8);
    }

    #[test]
    fn coalescing_keeps_the_latest_value_of_every_tag_in_arrival_order() {
        let mut items = vec![(1, "a1"), (2, "b1"), (1, "a2"), (3, "c1"), (2, "b2")];
        coalesce_latest(&mut items);
        assert_eq!(items, vec![(1, "a2"), (3, "c1"), (2, "b2")]);
    }
}
