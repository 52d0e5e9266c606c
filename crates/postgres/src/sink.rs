//! The running `postgresql` sink: gathers deliveries from the store-and-forward log into
//! a transaction (up to `batch_rows` rows or `flush_interval`), writes it, and
//! acknowledges the deliveries only once it has committed. When the session is lost it
//! rewinds the log (everything unacknowledged comes again, marked replay) and returns a
//! `connect` error, so the supervisor reconnects with backoff; the unique key
//! `(gateway_id, seq, time)` makes the replay add nothing twice.

use std::time::Duration;

use backplane_connector::{ComponentError, Delivery, Sink, SinkIo};
use backplane_model::Timestamp;
use futures::FutureExt;
use futures::future::BoxFuture;
use prometheus_client::metrics::counter::Counter;
use tokio::time::Instant;

use crate::config::PostgresSettings;
use crate::connect::{self, classify};
use crate::writer::{Writer, Written};

/// How often partitions are checked against `retention`.
pub const RETENTION_CHECK: Duration = Duration::from_secs(3600);

/// One `postgresql` sink instance.
#[derive(Debug)]
pub struct PostgresSink {
    name: String,
    gateway: String,
    settings: PostgresSettings,
}

impl PostgresSink {
    pub fn new(name: &str, gateway: &str, settings: PostgresSettings) -> PostgresSink {
        PostgresSink {
            name: name.to_owned(),
            gateway: gateway.to_owned(),
            settings,
        }
    }

    /// `backplane-<gateway>-<sink>`: how the sink's sessions show in `pg_stat_activity`.
    pub fn application_name(gateway: &str, name: &str) -> String {
        format!("backplane-{gateway}-{name}")
    }
}

impl Sink for PostgresSink {
    fn run(self: Box<Self>, io: SinkIo) -> BoxFuture<'static, Result<(), ComponentError>> {
        async move {
            let result = self.run_loop(&io).await;
            if let Err(e) = &result {
                // Whatever was delivered and not committed comes again, marked replay.
                io.rewind();
                io.status.set_degraded(Some(e.to_string()));
            }
            result
        }
        .boxed()
    }
}

/// The sink's counters (`backplane_component_events_total{event=…}`).
#[derive(Debug)]
struct Counters {
    samples_written: Counter,
    samples_duplicate: Counter,
    events_written: Counter,
    events_duplicate: Counter,
    transactions: Counter,
    unknown_tags: Counter,
    without_seq: Counter,
    partitions_created: Counter,
    partitions_dropped: Counter,
    write_errors: Counter,
}

impl Counters {
    fn new(io: &SinkIo) -> Counters {
        let c = |name: &str| io.status.counter(name);
        Counters {
            samples_written: c("samples_written"),
            samples_duplicate: c("samples_duplicate"),
            events_written: c("events_written"),
            events_duplicate: c("events_duplicate"),
            transactions: c("transactions"),
            unknown_tags: c("samples_unknown_tag"),
            without_seq: c("rows_without_seq"),
            partitions_created: c("partitions_created"),
            partitions_dropped: c("partitions_dropped"),
            write_errors: c("write_errors"),
        }
    }

    fn count(&self, w: &Written) {
        self.samples_written.inc_by(w.samples_inserted);
        self.samples_duplicate.inc_by(w.sample_duplicates());
        self.events_written.inc_by(w.events_inserted);
        self.events_duplicate.inc_by(w.event_duplicates());
        self.transactions.inc();
        self.unknown_tags.inc_by(w.unknown_tags);
        self.without_seq.inc_by(w.without_seq);
        self.partitions_created.inc_by(w.partitions_created);
    }
}

enum Step {
    Input(Option<Delivery>),
    Flush,
}

impl PostgresSink {
    async fn run_loop(&self, io: &SinkIo) -> Result<(), ComponentError> {
        let s = &self.settings;
        let counters = Counters::new(io);
        let app = PostgresSink::application_name(&self.gateway, &self.name);
        let client = connect::connect(s, &app).await?;
        let mut writer = Writer::start(client, s, &io.topology).await?;
        io.status.set_degraded(None);
        tracing::info!(
            sink = %self.name,
            database = %connect::describe(&s.connection),
            schema = %s.schema,
            timescale = writer.is_timescale(),
            "postgresql: connected, schema ready"
        );
        let mut next_retention = Instant::now();
        let mut pending: Vec<Delivery> = Vec::new();
        let mut rows = 0usize;
        let mut deadline: Option<Instant> = None;
        loop {
            if let Some(retention) = s.retention
                && Instant::now() >= next_retention
            {
                next_retention = Instant::now() + RETENTION_CHECK;
                let dropped = writer
                    .drop_expired(Timestamp::now(), retention)
                    .await
                    .map_err(|e| classify(writer.client(), &e, "dropping expired partitions"))?;
                counters.partitions_dropped.inc_by(dropped.len() as u64);
            }
            let step = tokio::select! {
                biased;
                () = sleep_until(deadline) => Step::Flush,
                delivery = io.next(), if rows < s.batch_rows => Step::Input(delivery),
            };
            let closed = match step {
                Step::Input(Some(d)) => {
                    rows += d.batch.len();
                    pending.push(d);
                    deadline.get_or_insert_with(|| Instant::now() + s.flush_interval);
                    if rows < s.batch_rows {
                        continue;
                    }
                    false
                }
                Step::Input(None) => true,
                Step::Flush => false,
            };
            if !pending.is_empty() {
                match writer.write(&pending).await {
                    Ok(w) => {
                        for d in &pending {
                            if let Some(record) = d.record {
                                io.ack(record);
                            }
                        }
                        counters.count(&w);
                        if w.sample_duplicates() + w.event_duplicates() > 0 {
                            tracing::info!(
                                sink = %self.name,
                                samples = w.sample_duplicates(),
                                events = w.event_duplicates(),
                                "postgresql: rows already stored were skipped (a replay)"
                            );
                        }
                        if w.unknown_tags + w.without_seq > 0 {
                            tracing::warn!(
                                sink = %self.name,
                                unknown_tags = w.unknown_tags,
                                without_seq = w.without_seq,
                                "postgresql: rows not written"
                            );
                        }
                    }
                    Err(e) => {
                        counters.write_errors.inc();
                        let error = classify(writer.client(), &e, "writing a batch");
                        tracing::warn!(sink = %self.name, error = %error, "postgresql: the transaction failed; its rows come again");
                        return Err(error);
                    }
                }
            }
            pending.clear();
            rows = 0;
            deadline = None;
            if closed {
                return Ok(());
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
