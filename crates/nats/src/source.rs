//! The `nats` source: a durable pull consumer on another gateway's stream that mirrors its
//! namespace into this one (a hub mirroring plants). Messages come in one continuous pull;
//! each batch (what has arrived, up to `batch`) is turned into readings, context changes
//! and events ([`Mirror`]) and handed to the pipeline in order; its messages are
//! acknowledged only once the pipeline accepted them (at-least-once).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer};
use backplane_config::{AddressError, Plan, Table};
use backplane_connector::{
    Browser, ComponentError, Kind, ModelDrift, Options, RawReading, Services, SiteBoard, Source,
    SourceContext, SourceIo, SourceKind,
};
use backplane_model::Timestamp;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};

use crate::connection::ConnectionSettings;
use crate::messages::GATEWAY_HEADER;
use crate::mirror::{Action, Mirror};
use crate::sink_config::parse_prefix;
use crate::subjects::{filter_covers, validate_filter};

/// How long one pull request stays open on the server, and how often the server says it
/// is alive meanwhile (two missed heartbeats end the source; the supervisor restarts it).
const PULL_EXPIRES: Duration = Duration::from_secs(30);
const PULL_HEARTBEAT: Duration = Duration::from_secs(5);

/// Settings of one `nats` source.
#[derive(Clone, Debug, PartialEq)]
pub struct NatsSourceSettings {
    pub connection: ConnectionSettings,
    pub prefix: String,
    pub stream: String,
    /// `None`: `backplane-<gateway>-<source>`.
    pub durable: Option<String>,
    /// `None`: `["<prefix>.>"]`.
    pub subjects: Option<Vec<String>>,
    pub batch: usize,
    pub max_ack_pending: i64,
    pub ack_wait: Duration,
}

/// The kind registered as `nats` (source).
#[derive(Debug, Default)]
pub struct NatsSourceKind;

impl Kind for NatsSourceKind {
    type Settings = NatsSourceSettings;

    fn describe(&self) -> &'static str {
        "mirrors other gateways' namespaces from a NATS JetStream stream (durable pull consumer), with context, events and definitions"
    }

    fn parse(&self, table: &mut Table<'_>) -> Option<NatsSourceSettings> {
        let connection = ConnectionSettings::parse(table);
        let prefix = parse_prefix(table);
        let stream = table.required_str("stream").map(str::to_owned);
        let durable = table.optional_str("durable").map(str::to_owned);
        if let Some(d) = &durable
            && (d.is_empty()
                || d.chars()
                    .any(|c| c.is_whitespace() || matches!(c, '.' | '*' | '>')))
        {
            table.error("durable", format!("`{d}` is not a valid consumer name"), None);
        }
        let subjects = match table.optional_item("subjects") {
            None => None,
            Some(item) => {
                let mut out = Vec::new();
                match item.as_array() {
                    Some(items) => {
                        for i in items {
                            match i.as_str() {
                                Some(s) => match validate_filter(s) {
                                    Ok(()) => out.push(s.to_owned()),
                                    Err(e) => i.error(format!("invalid subject filter `{s}`: {e}"), None),
                                },
                                None => i.error("`subjects` must list subject filters", None),
                            }
                        }
                    }
                    None => item.error("`subjects` must be a list of subject filters", None),
                }
                if out.len() > 1 {
                    table.error(
                        "subjects",
                        "one subject filter only (several need `filter_subjects`, NATS 2.10, not supported yet)",
                        None,
                    );
                }
                Some(out)
            }
        };
        let batch = table.optional_u64("batch").unwrap_or(500);
        if !(1..=10_000).contains(&batch) {
            table.error("batch", "`batch` must be 1 to 10000", None);
        }
        let max_ack_pending = table.optional_u64("max_ack_pending").unwrap_or(10_000);
        if max_ack_pending < batch {
            table.error(
                "max_ack_pending",
                "`max_ack_pending` must be at least `batch`",
                None,
            );
        }
        let ack_wait = table
            .optional_duration("ack_wait")
            .unwrap_or(Duration::from_secs(30));
        if ack_wait < Duration::from_secs(1) {
            table.error("ack_wait", "`ack_wait` must be at least 1s", None);
        }
        Some(NatsSourceSettings {
            connection: connection?,
            prefix: prefix?,
            stream: stream?,
            durable,
            subjects,
            batch: usize::try_from(batch).unwrap_or(500),
            max_ack_pending: i64::try_from(max_ack_pending).unwrap_or(10_000),
            ack_wait,
        })
    }

    fn browser(&self) -> Option<Browser> {
        Some(Browser {
            schemes: &["nats"],
            local_schemes: &[],
            about: "List the sites' assets published on a JetStream stream, as a hub's TOML bindings",
            options: crate::browse::OPTIONS,
            run: |url, options: Options| {
                crate::browse::browse(url, options)
                    .map(|r| r.map(backplane_connector::BrowseReport::text))
                    .boxed()
            },
        })
    }

    fn check_address(&self, _settings: &NatsSourceSettings, address: &str) -> Result<(), AddressError> {
        if address.split('/').count() >= 4 && !address.split('/').any(str::is_empty) {
            Ok(())
        } else {
            Err(AddressError {
                message: format!("`{address}` is not the full path of a mirrored tag"),
                hint: Some(
                    "write the tag's full path, e.g. \"acme/plant-b/packaging/filler/good_count\"".into(),
                ),
            })
        }
    }

    /// One [`SiteBoard`] for every `nats` source of the plan: the sites' latest definitions
    /// and the drift between them and the hub, for the API.
    fn prepare(
        &self,
        plan: &Plan,
        _instances: &[(&str, &NatsSourceSettings)],
    ) -> Result<Services, ComponentError> {
        Ok(Services::one("nats", Arc::new(SiteBoard::new(&plan.models))))
    }
}

impl SourceKind for NatsSourceKind {
    fn build(&self, ctx: &SourceContext<'_, NatsSourceSettings>) -> Result<Box<dyn Source>, ComponentError> {
        let settings = ctx.settings.clone();
        Ok(Box::new(NatsSource {
            name: ctx.name.to_owned(),
            gateway: ctx.gateway.to_owned(),
            mirror: Mirror::new(ctx.topology.clone(), ctx.name, ctx.addresses, &settings.prefix),
            board: ctx.services.get::<SiteBoard>(),
            settings,
        }))
    }
}

struct NatsSource {
    name: String,
    gateway: String,
    settings: NatsSourceSettings,
    mirror: Mirror,
    board: Option<Arc<SiteBoard>>,
}

impl Source for NatsSource {
    fn run(self: Box<Self>, io: SourceIo) -> BoxFuture<'static, Result<(), ComponentError>> {
        async move { self.run_loop(io).await }.boxed()
    }
}

impl NatsSource {
    async fn run_loop(mut self, io: SourceIo) -> Result<(), ComponentError> {
        let s = self.settings.clone();
        let client = s
            .connection
            .connect(&format!("backplane-{}-{}", self.gateway, self.name), None, None)
            .await?;
        let js = jetstream::new(client);
        let stream = js.get_stream(&s.stream).await.map_err(|e| {
            ComponentError::connect(format!(
                "nats source `{}`: cannot open stream `{}`: {e}",
                self.name, s.stream
            ))
        })?;
        let durable = s
            .durable
            .clone()
            .unwrap_or_else(|| format!("backplane-{}-{}", self.gateway, self.name).replace('.', "_"));
        let filters = s
            .subjects
            .clone()
            .unwrap_or_else(|| vec![format!("{}.>", s.prefix)]);
        let mut config = consumer::pull::Config {
            durable_name: Some(durable.clone()),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: s.ack_wait,
            max_ack_pending: s.max_ack_pending,
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        };
        // Parsing allows one filter (several need NATS 2.10's `filter_subjects`). One that
        // takes in all the stream holds is left out: an unfiltered consumer spares the
        // server subject matching and the costlier pending counts of a filtered one (2.9).
        let filter = filters.first().cloned().unwrap_or_default();
        let subjects = &stream.cached_info().config.subjects;
        if subjects.is_empty() || !subjects.iter().all(|subject| filter_covers(&filter, subject)) {
            config.filter_subject = filter;
        }
        let consumer = stream
            .get_or_create_consumer(&durable, config)
            .await
            .map_err(|e| {
                ComponentError::connect(format!("nats source `{}`: consumer `{durable}`: {e}", self.name))
            })?;
        tracing::info!(source = %self.name, stream = %s.stream, %durable, "nats: consuming");

        let duplicates = io.status.counter("duplicates");
        let drift_refused = io.status.counter("drift_refused");
        let skipped = io.status.counter("context_events_skipped");
        let mut reported_drift: HashSet<(String, String, &'static str)> = HashSet::new();
        let mut actions = Vec::new();
        // One continuous pull: the server keeps up to two batches on their way while the
        // pipeline takes the last one, instead of a request and a round trip per batch.
        let mut incoming = consumer
            .stream()
            .max_messages_per_batch(s.batch)
            .expires(PULL_EXPIRES)
            .heartbeat(PULL_HEARTBEAT)
            .messages()
            .await
            .map_err(|e| ComponentError::connect(format!("nats source `{}`: pull: {e}", self.name)))?;
        let mut messages = Vec::with_capacity(s.batch);
        loop {
            // A batch: the next message, and those already here, up to `batch`.
            let first = tokio::select! {
                () = io.cancelled() => return Ok(()),
                m = incoming.next() => m,
            };
            messages.clear();
            let mut failed = None;
            let mut next = Some(first);
            while let Some(item) = next.take() {
                match item {
                    Some(Ok(m)) => messages.push(m),
                    Some(Err(e)) => failed = Some(format!("{e}")),
                    None => failed = Some("the consumer's message stream ended".into()),
                }
                if failed.is_none() && messages.len() < s.batch {
                    next = incoming.next().now_or_never();
                }
            }
            // What arrived before an error is passed on and acknowledged first.
            let failed =
                failed.map(|e| ComponentError::connect(format!("nats source `{}`: pull: {e}", self.name)));
            if messages.is_empty() {
                return Err(failed.unwrap_or_else(|| ComponentError::connect("nats: no message")));
            }
            let mut refused = Vec::with_capacity(messages.len());
            let mut readings: Vec<RawReading> = Vec::new();
            for m in &messages {
                let gateway = m
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(GATEWAY_HEADER))
                    .map(|v| v.as_str())
                    .unwrap_or("");
                actions.clear();
                self.mirror
                    .ingest(m.subject.as_str(), gateway, &m.payload, &mut actions);
                let mut is_refused = false;
                for action in actions.drain(..) {
                    match action {
                        Action::Reading(r) => {
                            readings.push(r);
                        }
                        Action::Context {
                            asset,
                            patch,
                            gateway,
                        } => {
                            if !flush(&io, &mut readings).await
                                || !io
                                    .set_context(asset, patch, Some(format!("gateway {gateway}")))
                                    .await
                            {
                                return Ok(());
                            }
                        }
                        Action::Events(events) => {
                            if !flush(&io, &mut readings).await || !io.emit_events(events).await {
                                return Ok(());
                            }
                        }
                        Action::Definitions(defs) => {
                            self.definitions(&io, defs, &mut reported_drift);
                        }
                        Action::Drift => {
                            drift_refused.inc();
                        }
                        Action::Duplicate => {
                            duplicates.inc();
                        }
                        Action::Skipped => {
                            skipped.inc();
                        }
                        Action::Refused(why) => {
                            is_refused = true;
                            io.status.counter(why.name()).inc();
                            if self.mirror.logged.insert(why) {
                                tracing::warn!(source = %self.name, subject = %m.subject, reason = why.name(), "nats: refused a mirrored message (logged once per reason; counted)");
                            }
                        }
                    }
                }
                refused.push(is_refused);
            }
            if !flush(&io, &mut readings).await {
                return Ok(());
            }
            // The pipeline has everything: acknowledge (refused ones terminated).
            for (m, refused) in messages.iter().zip(refused) {
                let kind = if refused { AckKind::Term } else { AckKind::Ack };
                m.ack_with(kind)
                    .await
                    .map_err(|e| ComponentError::connect(format!("nats source `{}`: ack: {e}", self.name)))?;
            }
            if let Some(e) = failed {
                return Err(e);
            }
        }
    }

    fn definitions(
        &self,
        io: &SourceIo,
        defs: backplane_connector::Definitions,
        reported: &mut HashSet<(String, String, &'static str)>,
    ) {
        let site = defs.site.clone();
        let Some(board) = &self.board else { return };
        let drift: Vec<ModelDrift> = board.record(defs, Timestamp::now());
        let new: Vec<&ModelDrift> = drift
            .iter()
            .filter(|d| reported.insert((d.model.clone(), d.attribute.clone(), d.difference)))
            .collect();
        if !new.is_empty() {
            let text = new
                .iter()
                .map(|d| format!("{}.{} ({})", d.model, d.attribute, d.difference))
                .collect::<Vec<_>>()
                .join(", ");
            tracing::warn!(source = %self.name, %site, drift = %text, "nats: model drift between the hub and a site; values whose type or unit differ are refused");
            io.status
                .set_degraded(Some(format!("model drift with site {site}: {text}")));
        }
    }
}

/// Emits what has been read so far; `false` once the pipeline has stopped.
async fn flush(io: &SourceIo, readings: &mut Vec<RawReading>) -> bool {
    if readings.is_empty() {
        return true;
    }
    io.emit(Timestamp::now(), std::mem::take(readings)).await
}
