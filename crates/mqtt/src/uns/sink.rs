//! The running `mqtt` sink: drives the [`Session`] state machine with one [`Link`] after
//! another (reconnecting with backoff), the engine's [`SinkIo`] and the command topic's
//! [`CommandChannel`]. What to publish and when, when to read input and which log records
//! are delivered are the session's decisions (command replies go first, within its
//! in-flight window); this file only does the I/O. A delivery's messages are written into
//! the link's buffer under one lock as they are made ([`Session::on_delivery_into`]).

use backplane_connector::{ComponentError, Delivery, Sink, SinkContext, SinkIo, SinkKind};
use backplane_model::Timestamp;
use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;

use super::command_channel::CommandChannel;
use super::config::{CommandTopic, MqttSinkKind, MqttSinkSettings};
use super::namespace::Namespace;
use super::session::{Action, Session};
use crate::client_id::{Component, default_client_id};
use crate::common::{CLOSE_TIMEOUT, next_event, sleep_until};
use crate::link::{Link, LinkEvent, LinkOptions, SessionMode};
use crate::settings::{Qos, ResolvedConnection};
use backplane_connector::Backoff;

impl SinkKind for MqttSinkKind {
    /// Reads its settings, its feed and the topology: kept running by a reload that
    /// changes neither its entry nor the asset tree.
    fn survives_reload(&self, _settings: &MqttSinkSettings) -> bool {
        true
    }

    /// With `commands`, it runs production commands through the production stage.
    fn uses_services(&self, settings: &MqttSinkSettings) -> bool {
        !matches!(settings.commands, crate::uns::config::CommandTopic::Off)
    }

    fn buffered(&self) -> bool {
        true
    }

    fn build(&self, ctx: &SinkContext<'_, MqttSinkSettings>) -> Result<Box<dyn Sink>, ComponentError> {
        let settings = ctx.settings;
        let connection = settings
            .connection
            .resolve()
            .map_err(|e| ComponentError::config_because(format!("mqtt sink `{}`: {e}", ctx.name), e))?;
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
        let mut session = Session::new(Namespace::new(io.topology.clone(), s), s, &gateway);
        let client_id = s
            .connection
            .client_id
            .clone()
            .unwrap_or_else(|| default_client_id(&gateway, Component::Sink, &self.name));
        let options = LinkOptions {
            client_id,
            will: Some(session.will()),
            inflight: s.max_inflight,
            // The sink replays what was not confirmed itself; a kept session would resend
            // it a second time, and keep commands for a gateway that may never come back.
            session: SessionMode::Clean,
            write_delay: Some(io.status.delay("device_to_socket")),
        };
        let mut backoff = Backoff::new(s.connection.reconnect_min, s.connection.reconnect_max);
        // Unconfirmed messages at a disconnect; their records are sent again (replayed).
        let lost = io.status.counter("messages_unconfirmed_at_disconnect");
        let rejected_counter = io.status.counter("messages_rejected");
        let mut link: Option<Link> = Some(Link::open(&self.connection, &options));
        let mut retry_at: Option<tokio::time::Instant> = None;
        let mut commands = None;
        let mut commands_refused = None;
        let command_topic = match &s.commands {
            CommandTopic::Off => None,
            CommandTopic::Default => Some(session.namespace().default_commands_topic(&gateway)),
            CommandTopic::Topic(topic) => Some(topic.clone()),
        };
        if let Some(topic) = command_topic {
            let production = io.services.get::<backplane_production::ProductionHandle>().ok_or_else(|| {
                ComponentError::config(format!(
                    "mqtt sink `{}`: `commands` needs the production stage, which this gateway does not run",
                    self.name
                ))
            })?;
            let accepted = io.status.counter("commands_accepted");
            let refused = io.status.counter("commands_refused");
            commands_refused = Some(refused.clone());
            // Whoever can publish on the topic can write any `by`: commands run as the sink.
            let identity = backplane_security::Identity::new(
                s.commands_identity
                    .clone()
                    .unwrap_or_else(|| format!("mqtt:{}", self.name)),
                backplane_security::Role::Operator,
                backplane_security::AuthMethod::Connection,
            );
            let audit = io
                .services
                .named::<backplane_security::AuditTrail>(backplane_security::AuditTrail::SERVICE);
            commands = Some(CommandChannel::start(
                &self.name,
                topic,
                (*production).clone(),
                identity,
                audit,
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
        let act = |actions: Vec<Action>| {
            for action in actions {
                match action {
                    Action::Ack(record) => io.ack(record),
                    Action::Rejected { reason, total } => {
                        rejected_counter.inc();
                        tracing::warn!(sink = %self.name, %reason, rejected = total, "mqtt: the broker refused a message");
                    }
                }
            }
        };

        loop {
            let want_input = session.wants_input();
            let linger_until = session.deadline().map(tokio::time::Instant::from_std);
            let step = tokio::select! {
                biased;
                event = next_event(&mut link) => Step::Link(event),
                () = sleep_until(retry_at) => Step::Retry,
                () = sleep_until(linger_until) => Step::Linger,
                reply = async { match commands.as_mut().and_then(|c| c.replies.as_mut()) { Some(r) => r.recv().await, None => std::future::pending().await } } => Step::Reply(reply),
                delivery = io.next(), if want_input => Step::Input(delivery),
                () = io.input_closed(), if session.is_input_open() && !session.is_connected() => Step::Input(None),
            };
            // Only a turn that took a delivery yields after handing messages over (below):
            // the write waited behind the next delivery taken at once. Turns woken by
            // acknowledgements, many a second with QoS 1, would pay for a yield that
            // frees nothing.
            let took_input = matches!(step, Step::Input(Some(_)));
            let mut handed_in_place = false;
            match step {
                Step::Link(LinkEvent::Connected) => {
                    backoff.reset();
                    io.status.set_degraded(None);
                    tracing::info!(sink = %self.name, broker = %s.connection.host, "mqtt: connected");
                    session.on_connected(Timestamp::now());
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
                Step::Link(LinkEvent::Delivered(d)) => act(session.on_confirmation(d)),
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
                Step::Link(LinkEvent::Oversized { topic, bytes }) => {
                    count_refused();
                    tracing::warn!(sink = %self.name, %topic, bytes, "mqtt: message over max_packet_bytes refused unread");
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
                    if session.is_connected() {
                        tracing::warn!(sink = %self.name, %why, "mqtt: connection lost; buffering on disk");
                    } else {
                        tracing::warn!(sink = %self.name, %why, "mqtt: cannot connect");
                    }
                    io.status
                        .set_degraded(Some(format!("broker unreachable, buffering on disk: {why}")));
                    lost.inc_by(session.on_disconnected());
                    link = None;
                    io.rewind();
                    if !session.is_input_open() {
                        return Ok(());
                    }
                    retry_at = Some(tokio::time::Instant::now() + backoff.next_delay());
                }
                Step::Retry => {
                    retry_at = None;
                    link = Some(Link::open(&self.connection, &options));
                }
                Step::Input(Some(delivery)) => {
                    let now = tokio::time::Instant::now().into_std();
                    // Command replies waiting go first (below): then the delivery queues.
                    let replies_waiting = commands.as_ref().is_some_and(|c| !c.waiting.is_empty());
                    match link.as_mut() {
                        // Written straight into the link's buffer while it has room.
                        Some(l) if session.is_connected() && !replies_waiting => {
                            let mut batch = l.batch();
                            let mut outstanding = batch.outstanding();
                            let before = outstanding;
                            let actions =
                                session.on_delivery_into(&delivery, now, &mut batch, &mut outstanding);
                            drop(batch);
                            handed_in_place = outstanding > before;
                            act(actions);
                        }
                        _ => act(session.on_delivery(&delivery, now)),
                    }
                }
                Step::Input(None) => {
                    act(session.on_input_closed());
                    if !session.is_connected() {
                        tracing::warn!(sink = %self.name, "mqtt: stopping while disconnected; the backlog stays buffered on disk");
                        return Ok(());
                    }
                }
                Step::Linger => act(session.on_timer(tokio::time::Instant::now().into_std())),
            }
            // Confirmations by the batch: the link gathers them per write and per read.
            if let Some(l) = link.as_mut() {
                let mut actions = Vec::new();
                l.drain_deliveries(|report| session.on_report(report, &mut actions));
                if !actions.is_empty() {
                    act(actions);
                }
            }
            if session.is_connected()
                && let Some(l) = link.as_mut()
            {
                // Command replies first: they are few, and someone is waiting for them.
                if let Some(c) = commands.as_mut() {
                    while session.has_room(l.outstanding()) {
                        let Some(reply) = c.waiting.pop_front() else { break };
                        if l.publish(&c.reply_topic, Qos::AtLeastOnce, false, &reply)
                            .await
                            .is_err()
                        {
                            c.waiting.push_front(reply);
                            break;
                        }
                    }
                }
                // Under one lock while the link has room; whatever is left goes through
                // `publish_stamped`, which waits for room. Counted here rather than asked
                // of the link per message: only the connection task lowers it, and it then
                // wakes the sink, so this count is never below the link's and the window
                // is never exceeded.
                let mut handed = handed_in_place;
                let mut outstanding = {
                    let mut batch = l.batch();
                    let mut outstanding = batch.outstanding();
                    while let Some(p) = session.next_publish(outstanding) {
                        match batch.publish_stamped(p.topic, p.qos, p.retain, &p.payload, p.born) {
                            Some(Ok(token)) => {
                                session.published(token);
                                outstanding += 1;
                                handed = true;
                            }
                            // No room (the rest waits below), or the link has ended.
                            None | Some(Err(_)) => break,
                        }
                    }
                    outstanding
                };
                while let Some(p) = session.next_publish(outstanding) {
                    match l
                        .publish_stamped(p.topic, p.qos, p.retain, &p.payload, p.born)
                        .await
                    {
                        Ok(token) => {
                            session.published(token);
                            outstanding += 1;
                            handed = true;
                        }
                        // The link has ended; the message stays next.
                        Err(_) => break,
                    }
                }
                // The connection task woken to write what was just handed over waits in
                // this task's slot of the runtime (tokio runs a task woken by a running
                // one next on the same thread, and no other thread takes it from there).
                // With input always ready this task would go on taking deliveries, up to
                // the window, before the first write: at 100 000 changes/s the device
                // answer → socket write p99 was 3.3-4.9 ms, mostly under 2 with this
                // (docs/performance.md, "Let the connection write before taking more").
                if handed && took_input {
                    tokio::task::yield_now().await;
                }
                if session.is_drained() {
                    // Orderly stop: say so on the status topic, wait for the broker, then
                    // DISCONNECT (which discards the will).
                    let bye = session.goodbye(Timestamp::now());
                    let _ = l.publish(bye.topic, bye.qos, bye.retain, &bye.payload).await;
                    if let Some(l) = link.take() {
                        l.close(CLOSE_TIMEOUT).await;
                    }
                    return Ok(());
                }
            }
        }
    }
}
