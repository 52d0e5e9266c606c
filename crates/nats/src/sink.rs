//! The running `nats` sink: publishes every delivery from the store-and-forward log to
//! JetStream and acknowledges a log record only once JetStream acknowledged every message
//! made from it. Publishes are pipelined: a delivery is published whole, its ack futures
//! wait in order, and the next delivery is read while fewer than `max_in_flight` messages
//! await their ack. A lost connection, an ack timeout or a refused publish rewinds the log
//! (everything unacknowledged comes again, marked `replay`, with the same message ids so
//! JetStream drops what it already has) and ends the sink with a retryable error; the
//! supervisor starts a new one after its backoff.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll};

use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::{self, publish::PublishAck};
use backplane_config::Table;
use backplane_connector::{ComponentError, Kind, Sink, SinkContext, SinkIo, SinkKind};
use futures::FutureExt;
use futures::future::BoxFuture;
use futures::stream::{FuturesOrdered, StreamExt};
use tokio::sync::mpsc;

use crate::messages::{Messages, Outgoing};
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

type AckFuture = Pin<Box<dyn Future<Output = Result<PublishAck, PublishError>> + Send>>;

/// One publish's ack; the last one of a delivery carries the record to acknowledge.
struct AckWait {
    ack: AckFuture,
    /// `Some(record)` on the last message of a delivery (`Some(None)`: nothing to ack).
    done: Option<Option<u64>>,
}

impl Future for AckWait {
    type Output = (Option<Option<u64>>, Result<PublishAck, PublishError>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let done = self.done;
        self.ack.as_mut().poll(cx).map(|r| (done, r))
    }
}

enum Step {
    Connection(Option<async_nats::Event>),
    Acked(Option<Option<u64>>, Result<PublishAck, PublishError>),
    Input(Option<backplane_connector::Delivery>),
}

impl NatsSink {
    async fn run_loop(&self, io: &SinkIo) -> Result<(), ComponentError> {
        let s = &self.settings;
        let (events_tx, mut events) = mpsc::unbounded_channel();
        let client = s
            .connection
            .connect(
                &format!("backplane-{}-{}", self.gateway, self.name),
                Some(events_tx),
            )
            .await?;
        let js = jetstream::ContextBuilder::new()
            .timeout(s.ack_timeout)
            // Our own window bounds what is in flight; a delivery is published whole.
            .max_ack_inflight(s.max_in_flight.saturating_mul(2).saturating_add(1 << 20))
            .build(client.clone());
        ensure(&js, &s.stream, &s.prefix).await?;

        let duplicates = io.status.counter("duplicates");
        let published = io.status.counter("messages_published");
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
            let ack = publish(&js, defs)
                .await?
                .await
                .map_err(|e| ack_error(&self.name, e))?;
            if ack.duplicate {
                duplicates.inc();
            }
        }
        io.status.set_degraded(None);
        tracing::info!(sink = %self.name, servers = %s.connection.servers.join(","), stream = %s.stream.name, "nats: connected");

        let mut acks: FuturesOrdered<AckWait> = FuturesOrdered::new();
        let mut out: Vec<Outgoing> = Vec::new();
        let mut input_open = true;
        let fail = |acks: &FuturesOrdered<AckWait>, error: ComponentError| {
            unconfirmed.inc_by(acks.len() as u64);
            io.rewind();
            tracing::warn!(sink = %self.name, %error, "nats: connection lost; buffering on disk");
            error
        };
        loop {
            if !input_open && acks.is_empty() {
                return Ok(());
            }
            let want_input = input_open && acks.len() < s.max_in_flight;
            let step = tokio::select! {
                biased;
                event = events.recv() => Step::Connection(event),
                Some((done, result)) = acks.next(), if !acks.is_empty() => Step::Acked(done, result),
                delivery = io.next(), if want_input => Step::Input(delivery),
            };
            match step {
                Step::Connection(
                    Some(async_nats::Event::Disconnected | async_nats::Event::Closed) | None,
                ) => {
                    return Err(fail(&acks, ComponentError::connect("nats: connection lost")));
                }
                Step::Connection(Some(event)) => {
                    tracing::debug!(sink = %self.name, %event, "nats: connection event");
                }
                Step::Acked(done, Ok(ack)) => {
                    published.inc();
                    if ack.duplicate {
                        duplicates.inc();
                    }
                    if let Some(Some(record)) = done {
                        io.ack(record);
                    }
                }
                Step::Acked(_, Err(e)) => return Err(fail(&acks, ack_error(&self.name, e))),
                Step::Input(None) => input_open = false,
                Step::Input(Some(delivery)) => {
                    out.clear();
                    messages.build(&delivery, &mut out);
                    let count = out.len();
                    if count == 0 {
                        if let Some(record) = delivery.record {
                            io.ack(record);
                        }
                        continue;
                    }
                    for (n, message) in out.drain(..).enumerate() {
                        match publish(&js, message).await {
                            Ok(ack) => acks.push_back(AckWait {
                                ack: ack.into_future(),
                                done: (n + 1 == count).then_some(delivery.record),
                            }),
                            Err(e) => return Err(fail(&acks, e)),
                        }
                    }
                }
            }
        }
    }
}

async fn publish(
    js: &jetstream::Context,
    m: Outgoing,
) -> Result<jetstream::context::PublishAckFuture, ComponentError> {
    js.publish_with_headers(m.subject, m.headers, m.payload)
        .await
        .map_err(|e| match e.kind() {
            PublishErrorKind::MaxPayloadExceeded => {
                ComponentError::io(format!("nats: a message exceeds the server's max_payload: {e}"))
            }
            _ => ComponentError::connect(format!("nats: publish failed: {e}")),
        })
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
