//! The running `nats` sink: publishes every delivery from the store-and-forward log to
//! JetStream and acknowledges a log record only once JetStream acknowledged every message
//! made from it. Publishes are core publishes with a reply subject `<inbox>.<n>`; the
//! stream's publish acks come back on one subscription to `<inbox>.*` and are matched by
//! `n` ([`Acks`]), so a message costs no future, timer or inbox registration of its own.
//! Publishes are pipelined: up to `max_in_flight` messages await their ack; a delivery is
//! read only when the previous one is out and the window has room. A lost connection, an
//! ack timeout or a refused publish rewinds the log (everything unacknowledged comes again,
//! marked `replay`, with the same message ids so JetStream drops what it already has) and
//! ends the sink with a retryable error; the supervisor starts a new one after its
//! backoff.

use std::collections::VecDeque;
use std::time::Instant;

use async_nats::Message;
use async_nats::jetstream;
use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use backplane_config::Table;
use backplane_connector::{ComponentError, Kind, Sink, SinkContext, SinkIo, SinkKind};
use futures::FutureExt;
use futures::StreamExt;
use futures::future::BoxFuture;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;

use crate::acks::{Acked, Acks};
use crate::messages::{Messages, Outgoing};
use crate::puback::PubAck;
use crate::sink_config::NatsSinkSettings;
use crate::stream::ensure;

/// The kind registered as `nats` (sink).
#[derive(Debug, Default)]
pub struct NatsSinkKind;

impl Kind for NatsSinkKind {
    type Settings = NatsSinkSettings;

    fn describe(&self) -> &'static str {
        "unified namespace on NATS JetStream: one subject per attribute, de-duplicated by message id, acknowledged before the log forgets"
    }

    fn parse(&self, table: &mut Table<'_>) -> Option<NatsSinkSettings> {
        NatsSinkSettings::parse(table)
    }
}

impl SinkKind for NatsSinkKind {
    /// Reads its settings, its feed, the topology: kept running by a reload that
    /// changes neither its entry nor the asset tree.
    fn survives_reload(&self, _settings: &NatsSinkSettings) -> bool {
        true
    }

    fn buffered(&self) -> bool {
        true
    }

    fn build(&self, ctx: &SinkContext<'_, NatsSinkSettings>) -> Result<Box<dyn Sink>, ComponentError> {
        if ctx.gateway.contains(['\r', '\n']) {
            return Err(ComponentError::config(
                "nats sink: the gateway name cannot hold line breaks",
            ));
        }
        Ok(Box::new(NatsSink {
            name: ctx.name.to_owned(),
            gateway: ctx.gateway.to_owned(),
            settings: ctx.settings.clone(),
        }))
    }
}

struct NatsSink {
    name: String,
    gateway: String,
    settings: NatsSinkSettings,
}

impl Sink for NatsSink {
    fn run(self: Box<Self>, io: SinkIo) -> BoxFuture<'static, Result<(), ComponentError>> {
        async move {
            let result = self.run_loop(&io).await;
            if let Err(e) = &result {
                io.status
                    .set_degraded(Some(format!("NATS unavailable, buffering on disk: {e}")));
            }
            result
        }
        .boxed()
    }
}

enum Step {
    Connection(Option<async_nats::Event>),
    Reply(Option<Message>),
    AckTimeout,
    Input(Option<backplane_connector::Delivery>),
}

/// Counters and the log, for what the replies say.
struct Tally<'a> {
    io: &'a SinkIo,
    sink: &'a str,
    published: Counter,
    duplicates: Counter,
}

impl Tally<'_> {
    /// One reply on the ack inbox: counts it and acknowledges a record it completes.
    fn reply(&self, acks: &mut Acks, prefix: &str, reply: &Message) -> Result<(), ComponentError> {
        let Some(n) = reply
            .subject
            .as_str()
            .strip_prefix(prefix)
            .and_then(|token| token.parse::<u64>().ok())
        else {
            tracing::debug!(sink = %self.sink, subject = %reply.subject, "nats: reply on an unknown subject, ignored");
            return Ok(());
        };
        let duplicate = match PubAck::read(reply) {
            PubAck::Stored => false,
            PubAck::Duplicate => true,
            PubAck::Refused(why) => {
                return Err(ComponentError::io(format!(
                    "nats sink `{}`: publish not acknowledged: {why}",
                    self.sink
                )));
            }
        };
        let record = match acks.ack(n) {
            Acked::Unknown => {
                tracing::debug!(sink = %self.sink, n, "nats: a second or unknown ack, ignored");
                return Ok(());
            }
            Acked::Message => None,
            Acked::Delivery(record) => record,
        };
        self.published.inc();
        if duplicate {
            self.duplicates.inc();
        }
        if let Some(record) = record {
            self.io.ack(record);
        }
        Ok(())
    }
}

impl NatsSink {
    async fn run_loop(&self, io: &SinkIo) -> Result<(), ComponentError> {
        let s = &self.settings;
        let (events_tx, mut events) = mpsc::unbounded_channel();
        // The ack inbox holds at most the window (plus stray replies) unread.
        let capacity = s.max_in_flight.saturating_add(1024).max(1 << 16);
        let client = s
            .connection
            .connect(
                &format!("backplane-{}-{}", self.gateway, self.name),
                Some(events_tx),
                Some(capacity),
            )
            .await?;
        let js = jetstream::ContextBuilder::new()
            .timeout(s.ack_timeout)
            .build(client.clone());
        ensure(&js, &s.stream, &s.prefix).await?;

        let tally = Tally {
            io,
            sink: &self.name,
            published: io.status.counter("messages_published"),
            duplicates: io.status.counter("duplicates"),
        };
        let unconfirmed = io.status.counter("messages_unconfirmed_at_disconnect");
        let mut messages = Messages::new(
            io.topology.clone(),
            &s.prefix,
            &self.gateway,
            &self.name,
            s.payload,
            s.events,
        );

        // Definitions first, at every (re)connect; the same configuration is de-duplicated.
        if let Some(defs) = messages.definitions(&self.gateway) {
            let ack = js
                .publish_with_headers(defs.subject, defs.headers, defs.payload)
                .await
                .map_err(publish_error)?
                .await
                .map_err(|e| ack_error(&self.name, e))?;
            if ack.duplicate {
                tally.duplicates.inc();
            }
        }

        // Every publish carries the reply subject `<inbox>.<n>`; JetStream's acks come back
        // on one subscription and are matched by `n` (no per-message future, timer or
        // inbox registration).
        let inbox = client.new_inbox();
        let reply_prefix = format!("{inbox}.");
        let mut replies = client
            .subscribe(format!("{inbox}.*"))
            .await
            .map_err(|e| ComponentError::connect(format!("nats: cannot subscribe to the ack inbox: {e}")))?;
        io.status.set_degraded(None);
        tracing::info!(sink = %self.name, servers = %s.connection.servers.join(","), stream = %s.stream.name, "nats: connected");

        let mut acks = Acks::new();
        let mut out: Vec<Outgoing> = Vec::new();
        // The messages of the delivery being published, in order.
        let mut pending: VecDeque<Outgoing> = VecDeque::new();
        let mut input_open = true;
        let timer = tokio::time::sleep(s.ack_timeout);
        tokio::pin!(timer);
        let mut deadline: Option<Instant> = None;
        let fail = |acks: &Acks, error: ComponentError| {
            unconfirmed.inc_by(acks.in_flight() as u64);
            io.rewind();
            tracing::warn!(sink = %self.name, %error, "nats: connection lost; buffering on disk");
            error
        };
        loop {
            // Publish what the window allows: a delivery goes out whole unless it alone
            // exceeds `max_in_flight`.
            if !pending.is_empty() {
                let now = Instant::now();
                while acks.in_flight() < s.max_in_flight {
                    let Some(m) = pending.pop_front() else {
                        break;
                    };
                    let Some(n) = acks.publish(now) else {
                        break;
                    };
                    let mut reply = String::with_capacity(reply_prefix.len() + 20);
                    reply.push_str(&reply_prefix);
                    reply.push_str(itoa::Buffer::new().format(n));
                    if let Err(e) = client
                        .publish_with_reply_and_headers(m.subject, reply, m.headers, m.payload)
                        .await
                    {
                        return Err(fail(&acks, client_publish_error(e)));
                    }
                }
                if pending.is_empty()
                    && let Some(Some(record)) = acks.close()
                {
                    io.ack(record);
                }
            }
            if !input_open && pending.is_empty() && acks.is_idle() {
                return Ok(());
            }
            let oldest = acks.oldest_sent().map(|sent| sent + s.ack_timeout);
            if oldest != deadline {
                deadline = oldest;
                if let Some(at) = deadline {
                    timer.as_mut().reset(at.into());
                }
            }
            let want_input = input_open && pending.is_empty() && acks.in_flight() < s.max_in_flight;
            let step = tokio::select! {
                biased;
                event = events.recv() => Step::Connection(event),
                reply = replies.next() => Step::Reply(reply),
                () = &mut timer, if deadline.is_some() => Step::AckTimeout,
                delivery = io.next(), if want_input => Step::Input(delivery),
            };
            match step {
                Step::Connection(
                    Some(async_nats::Event::Disconnected | async_nats::Event::Closed) | None,
                ) => {
                    return Err(fail(&acks, ComponentError::connect("nats: connection lost")));
                }
                Step::Connection(Some(async_nats::Event::SlowConsumer(_))) => {
                    return Err(fail(
                        &acks,
                        ComponentError::io(format!(
                            "nats sink `{}`: acks were dropped by the client (slow consumer)",
                            self.name
                        )),
                    ));
                }
                Step::Connection(Some(event)) => {
                    tracing::debug!(sink = %self.name, %event, "nats: connection event");
                }
                Step::Reply(None) => {
                    return Err(fail(&acks, ComponentError::connect("nats: the ack inbox closed")));
                }
                Step::Reply(Some(first)) => {
                    if let Err(e) = tally.reply(&mut acks, &reply_prefix, &first) {
                        return Err(fail(&acks, e));
                    }
                    // Whatever else has arrived, without another turn of the loop.
                    while let Some(Some(next)) = replies.next().now_or_never() {
                        if let Err(e) = tally.reply(&mut acks, &reply_prefix, &next) {
                            return Err(fail(&acks, e));
                        }
                    }
                }
                Step::AckTimeout => {
                    return Err(fail(
                        &acks,
                        ComponentError::io(format!(
                            "nats sink `{}`: no acknowledgement within ack_timeout",
                            self.name
                        )),
                    ));
                }
                Step::Input(None) => input_open = false,
                Step::Input(Some(delivery)) => {
                    out.clear();
                    messages.build(&delivery, &mut out);
                    acks.open(delivery.record, Instant::now());
                    pending.extend(out.drain(..));
                    if pending.is_empty()
                        && let Some(Some(record)) = acks.close()
                    {
                        io.ack(record);
                    }
                }
            }
        }
    }
}

fn client_publish_error(e: async_nats::client::PublishError) -> ComponentError {
    match e.kind() {
        async_nats::client::PublishErrorKind::MaxPayloadExceeded => {
            ComponentError::io(format!("nats: a message exceeds the server's max_payload: {e}"))
        }
        _ => ComponentError::connect(format!("nats: publish failed: {e}")),
    }
}

fn publish_error(e: PublishError) -> ComponentError {
    match e.kind() {
        PublishErrorKind::MaxPayloadExceeded => {
            ComponentError::io(format!("nats: a message exceeds the server's max_payload: {e}"))
        }
        _ => ComponentError::connect(format!("nats: publish failed: {e}")),
    }
}

fn ack_error(sink: &str, e: PublishError) -> ComponentError {
    match e.kind() {
        PublishErrorKind::StreamNotFound => ComponentError::io(format!(
            "nats sink `{sink}`: no stream holds the subject (JetStream did not answer the publish)"
        )),
        PublishErrorKind::TimedOut => ComponentError::io(format!(
            "nats sink `{sink}`: no acknowledgement within ack_timeout"
        )),
        _ => ComponentError::io(format!("nats sink `{sink}`: publish not acknowledged: {e}")),
    }
}
