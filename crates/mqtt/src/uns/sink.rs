//! The running `mqtt` sink: drives one [`Link`] after another, publishing what the
//! [`Namespace`] makes of the engine's deliveries, and acknowledging log records once the
//! broker confirmed them.

use std::collections::{HashMap, VecDeque};

use backplane_engine::{ComponentError, Delivery, Sink, SinkContext, SinkIo, SinkKind};
use backplane_model::Timestamp;
use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;

use super::command_channel::CommandChannel;
use super::config::{CommandTopic, MqttSinkKind, MqttSinkSettings};
use super::namespace::{Message, MessageKind, Namespace, status};
use crate::backoff::Backoff;
use crate::common::{CLOSE_TIMEOUT, Groups, next_event, sleep_until};
use crate::delivery::Delivery as Confirmation;
use crate::link::{Link, LinkEvent, LinkOptions, Will};
use crate::settings::{Qos, ResolvedConnection};

impl SinkKind for MqttSinkKind {
    fn build(&self, ctx: &SinkContext<'_>) -> Result<Box<dyn Sink>, ComponentError> {
        let settings = ctx
            .settings
            .downcast_ref::<MqttSinkSettings>()
            .ok_or_else(|| ComponentError::new("mqtt: settings of another kind"))?;
        let connection = settings
            .connection
            .resolve()
            .map_err(|e| ComponentError::new(format!("mqtt sink `{}`: {e}", ctx.name)))?;
        Ok(Box::new(UnsSink {
            name: ctx.name.to_owned(),
            settings: settings.clone(),
            connection,
        }))
    }
}

struct UnsSink {
    name: String,
    settings: MqttSinkSettings,
    connection: ResolvedConnection,
}

/// Most messages made and not yet handed to the client before the sink reads more input.
const PENDING_MAX: usize = 4096;

impl Sink for UnsSink {
    fn run(self: Box<Self>, io: SinkIo) -> BoxFuture<'static, Result<(), ComponentError>> {
        async move { self.run_loop(io).await }.boxed()
    }
}

enum Step {
    Link(LinkEvent),
    Input(Option<Delivery>),
    Linger,
    Retry,
    /// A reply of the command worker; `None` if the worker has stopped.
    Reply(Option<Bytes>),
}

impl UnsSink {
    async fn run_loop(self, io: SinkIo) -> Result<(), ComponentError> {
        let s = &self.settings;
        let gateway = io.topology.plan.gateway.name.clone();
        let mut ns = Namespace::new(io.topology.clone(), s);
        let status_topic = s
            .status_topic
            .clone()
            .unwrap_or_else(|| ns.default_status_topic(&gateway));
        let client_id = s
            .connection
            .client_id
            .clone()
            .unwrap_or_else(|| format!("backplane-{gateway}-{}", self.name));
        let options = LinkOptions {
            client_id,
            will: Some(Will {
                topic: status_topic.clone(),
                payload: status(&gateway, false, Some("connection_lost"), None),
                qos: Qos::AtLeastOnce,
                retain: true,
            }),
            inflight: s.max_inflight,
        };
        let mut backoff = Backoff::new(s.connection.reconnect_min, s.connection.reconnect_max);
        // Unconfirmed messages at a disconnect; their records are sent again (replayed).
        let lost = io.status.counter("messages_unconfirmed_at_disconnect");
        let rejected_counter = io.status.counter("messages_rejected");
        let mut pending: VecDeque<Message> = VecDeque::new();
        let mut unconfirmed: HashMap<u64, Option<u64>> = HashMap::new();
        let mut groups = Groups::default();
        let mut link: Option<Link> = Some(Link::open(&self.connection, &options));
        let mut connected = false;
        let mut retry_at: Option<tokio::time::Instant> = None;
        let mut input_open = true;
        let mut linger_until: Option<tokio::time::Instant> = None;
        let mut rejected = 0u64;
        let mut commands = None;
        let mut commands_refused = None;
        let command_topic = match &s.commands {
            CommandTopic::Off => None,
            CommandTopic::Default => Some(ns.default_commands_topic(&gateway)),
            CommandTopic::Topic(topic) => Some(topic.clone()),
        };
        if let Some(topic) = command_topic {
            let accepted = io.status.counter("commands_accepted");
            let refused = io.status.counter("commands_refused");
            commands_refused = Some(refused.clone());
            commands = Some(CommandChannel::start(
                &self.name,
                topic,
                io.commands.clone(),
                move || {
                    accepted.inc();
                },
                move || {
                    refused.inc();
                },
            ));
        }
        let count_refused = move || {
            if let Some(c) = &commands_refused {
                c.inc();
            }
        };

        loop {
            // Read input only while connected: while the broker is away the backlog
            // waits in the store-and-forward log, not in memory.
            let want_input = input_open && connected && pending.len() < PENDING_MAX;
            let step = tokio::select! {
                biased;
                event = next_event(&mut link) => Step::Link(event),
                () = sleep_until(retry_at) => Step::Retry,
                () = sleep_until(linger_until) => Step::Linger,
                reply = async { match commands.as_mut().and_then(|c| c.replies.as_mut()) { Some(r) => r.recv().await, None => std::future::pending().await } } => Step::Reply(reply),
                delivery = io.next(), if want_input => Step::Input(delivery),
                () = io.input_closed(), if input_open && !connected => Step::Input(None),
            };
            match step {
                Step::Link(LinkEvent::Connected) => {
                    connected = true;
                    backoff.reset();
                    io.status.set_degraded(None);
                    tracing::info!(sink = %self.name, broker = %s.connection.host, "mqtt: connected");
                    pending.push_back(Message {
                        topic: status_topic.clone(),
                        payload: status(&gateway, true, None, Some(Timestamp::now())),
                        retain: true,
                        kind: MessageKind::State,
                        group: None,
                    });
                    // The broker may have lost its retained messages: repeat the state.
                    ns.snapshot(&mut pending);
                    // Clean session: subscribe again at every connection. A failure means
                    // the link has ended; its Disconnected event follows.
                    if let (Some(c), Some(l)) = (commands.as_ref(), link.as_ref())
                        && l.subscribe(std::slice::from_ref(&c.topic), Qos::AtLeastOnce)
                            .await
                            .is_ok()
                    {
                        tracing::info!(sink = %self.name, topic = %c.topic, "mqtt: taking production commands");
                    }
                }
                Step::Link(LinkEvent::Delivered(d)) => {
                    let token = d.token();
                    if let Confirmation::Rejected { reason, .. } = &d {
                        // Refused for good (e.g. not authorized): resending would not help.
                        rejected += 1;
                        rejected_counter.inc();
                        tracing::warn!(sink = %self.name, %reason, rejected, "mqtt: the broker refused a message");
                    }
                    match d {
                        Confirmation::Confirmed(_) | Confirmation::Rejected { .. } => {
                            if let Some(Some(group)) = unconfirmed.remove(&token) {
                                for record in groups.done(group) {
                                    io.ack(record);
                                }
                            }
                        }
                        // Counted at the disconnect that follows.
                        Confirmation::Lost(_) => {}
                    }
                }
                Step::Link(LinkEvent::Message {
                    topic,
                    payload,
                    retain,
                }) => {
                    if let Some(c) = commands.as_mut()
                        && topic == c.topic
                    {
                        c.receive(&self.name, payload, retain, &count_refused);
                    }
                }
                Step::Reply(Some(reply)) => {
                    if let Some(c) = commands.as_mut() {
                        c.reply(&self.name, reply);
                    }
                }
                Step::Reply(None) => {
                    tracing::error!(sink = %self.name, "mqtt: the command worker stopped; commands are no longer run");
                    if let Some(c) = commands.as_mut() {
                        c.replies = None;
                    }
                }
                Step::Link(LinkEvent::Disconnected(why)) => {
                    if connected {
                        tracing::warn!(sink = %self.name, %why, "mqtt: connection lost; buffering on disk");
                    } else {
                        tracing::warn!(sink = %self.name, %why, "mqtt: cannot connect");
                    }
                    io.status
                        .set_degraded(Some(format!("broker unreachable, buffering on disk: {why}")));
                    lost.inc_by(unconfirmed.len() as u64);
                    connected = false;
                    link = None;
                    unconfirmed.clear();
                    // Everything made from records is sent again from the log, marked replay.
                    pending.clear();
                    groups.clear();
                    linger_until = None;
                    io.rewind();
                    if !input_open {
                        return Ok(());
                    }
                    retry_at = Some(tokio::time::Instant::now() + backoff.next_delay());
                }
                Step::Retry => {
                    retry_at = None;
                    link = Some(Link::open(&self.connection, &options));
                }
                Step::Input(Some(delivery)) => {
                    let group = groups.current();
                    if let Some(record) = delivery.record {
                        groups.add_record(group, record);
                    }
                    let before = pending.len();
                    let coalesce = !s.linger.is_zero();
                    ns.apply_delivery(&delivery, coalesce, Some(group), &mut pending);
                    if !coalesce {
                        ns.flush_group(Some(group), &mut pending);
                    }
                    groups.add_messages(group, pending.len() - before);
                    if !coalesce {
                        for record in groups.close() {
                            io.ack(record);
                        }
                    } else if linger_until.is_none() {
                        linger_until = Some(tokio::time::Instant::now() + s.linger);
                    }
                }
                Step::Input(None) => {
                    input_open = false;
                    if let Some(group) = groups.open() {
                        let before = pending.len();
                        ns.flush_group(Some(group), &mut pending);
                        groups.add_messages(group, pending.len() - before);
                    }
                    for record in groups.close() {
                        io.ack(record);
                    }
                    if !connected {
                        tracing::warn!(sink = %self.name, "mqtt: stopping while disconnected; the backlog stays buffered on disk");
                        return Ok(());
                    }
                }
                Step::Linger => {
                    linger_until = None;
                    if let Some(group) = groups.open() {
                        let before = pending.len();
                        ns.flush_group(Some(group), &mut pending);
                        groups.add_messages(group, pending.len() - before);
                    }
                    for record in groups.close() {
                        io.ack(record);
                    }
                }
            }
            if connected && let Some(l) = link.as_mut() {
                // Command replies first: they are few, and someone is waiting for them.
                if let Some(c) = commands.as_mut() {
                    while l.outstanding() < usize::from(s.max_inflight) {
                        let Some(reply) = c.waiting.pop_front() else { break };
                        if l.publish(&c.reply_topic, Qos::AtLeastOnce, false, reply.clone())
                            .await
                            .is_err()
                        {
                            c.waiting.push_front(reply);
                            break;
                        }
                    }
                }
                while l.outstanding() < usize::from(s.max_inflight) {
                    let Some(m) = pending.pop_front() else { break };
                    match l.publish(&m.topic, s.qos, m.retain, m.payload.clone()).await {
                        Ok(token) => {
                            unconfirmed.insert(token, m.group);
                        }
                        Err(_) => {
                            pending.push_front(m);
                            break;
                        }
                    }
                }
                if !input_open && pending.is_empty() && unconfirmed.is_empty() {
                    // Orderly stop: say so on the status topic, wait for the broker, then
                    // DISCONNECT (which discards the will).
                    let _ = l
                        .publish(
                            &status_topic,
                            Qos::AtLeastOnce,
                            true,
                            status(&gateway, false, Some("shutdown"), Some(Timestamp::now())),
                        )
                        .await;
                    if let Some(l) = link.take() {
                        l.close(CLOSE_TIMEOUT).await;
                    }
                    return Ok(());
                }
            }
        }
    }
}
