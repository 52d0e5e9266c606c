//! The `postgresql` kind: reads its settings, builds sinks that read through the
//! store-and-forward log.

use backplane_config::{Plan, Table};
use backplane_connector::{ComponentError, Kind, Sink, SinkContext, SinkKind};

use crate::config::{self, PostgresSettings};
use crate::connect::describe;
use crate::sink::PostgresSink;

/// `kind = "postgresql"`.
#[derive(Clone, Copy, Debug, Default)]
pub struct PostgresKind;

impl Kind for PostgresKind {
    type Settings = PostgresSettings;

    fn describe(&self) -> &'static str {
        "PostgreSQL (TimescaleDB when installed): samples, events and context in a partitioned schema with BI views"
    }

    fn parse(&self, table: &mut Table<'_>) -> Option<PostgresSettings> {
        config::parse(table)
    }

    fn summarize(&self, _plan: &Plan, _name: &str, s: &PostgresSettings) -> Vec<String> {
        let tls = s.tls.describe();
        vec![format!(
            "{} schema `{}`, {tls}, {:?} in transactions of up to {} rows every {:?}, {} partitions{}",
            describe(&s.connection),
            s.schema,
            s.method,
            s.batch_rows,
            s.flush_interval,
            s.partition.name(),
            s.retention
                .map(|r| format!(", retention {}d", r.as_secs() / 86_400))
                .unwrap_or_default(),
        )]
    }
}

impl SinkKind for PostgresKind {
    /// Reads its settings, its feed, the topology: kept running by a reload that
    /// changes neither its entry nor the asset tree.
    fn survives_reload(&self, _settings: &PostgresSettings) -> bool {
        true
    }

    fn buffered(&self) -> bool {
        true
    }

    fn build(&self, ctx: &SinkContext<'_, PostgresSettings>) -> Result<Box<dyn Sink>, ComponentError> {
        Ok(Box::new(PostgresSink::new(
            ctx.name,
            ctx.gateway,
            ctx.settings.clone(),
        )))
    }
}
