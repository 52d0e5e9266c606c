//! The settings of the `nats` sink kind and how they are read from its TOML table
//! (`docs/connectors/nats.md` lists the keys and defaults). No I/O.

use std::time::Duration;

use backplane_config::Table;

use crate::connection::ConnectionSettings;
use crate::stream::StreamSettings;
use crate::subjects::validate_prefix;

/// One message per sample, or one per asset per delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadForm {
    /// `<prefix>.<asset>.<attribute>`, one sample payload each.
    Sample,
    /// `<prefix>.<asset>._batch`, a JSON array of the asset's samples of one delivery.
    Batch,
}

/// Settings of one `nats` sink.
#[derive(Clone, Debug, PartialEq)]
pub struct NatsSinkSettings {
    pub connection: ConnectionSettings,
    /// First subject tokens (default `uns`).
    pub prefix: String,
    pub stream: StreamSettings,
    pub payload: PayloadForm,
    /// Publish events (`<prefix>.<asset>._events.<name>`).
    pub events: bool,
    /// Most messages awaiting their JetStream acknowledgement before the next delivery is
    /// read.
    pub max_in_flight: usize,
    /// How long a publish may wait for its acknowledgement before the connection is
    /// deemed lost.
    pub ack_timeout: Duration,
}

pub const DEFAULT_PREFIX: &str = "uns";
pub const DEFAULT_MAX_IN_FLIGHT: u64 = 4096;

impl NatsSinkSettings {
    pub fn parse(table: &mut Table<'_>) -> Option<NatsSinkSettings> {
        let connection = ConnectionSettings::parse(table);
        let prefix = parse_prefix(table);
        let stream = match table.required_table("stream") {
            Some(t) => StreamSettings::parse(t),
            None => None,
        };
        let payload = match table.optional_str("payload") {
            None | Some("sample") => PayloadForm::Sample,
            Some("batch") => PayloadForm::Batch,
            Some(other) => {
                table.error(
                    "payload",
                    format!("unknown payload form `{other}`"),
                    Some("\"sample\" or \"batch\"".into()),
                );
                PayloadForm::Sample
            }
        };
        let events = table.optional_bool("events").unwrap_or(true);
        let max_in_flight = table
            .optional_u64("max_in_flight")
            .unwrap_or(DEFAULT_MAX_IN_FLIGHT);
        if !(1..=1_000_000).contains(&max_in_flight) {
            table.error("max_in_flight", "`max_in_flight` must be 1 to 1000000", None);
        }
        let ack_timeout = table
            .optional_duration("ack_timeout")
            .unwrap_or(Duration::from_secs(10));
        if ack_timeout < Duration::from_millis(100) {
            table.error("ack_timeout", "`ack_timeout` must be at least 100ms", None);
        }
        Some(NatsSinkSettings {
            connection: connection?,
            prefix: prefix?,
            stream: stream?,
            payload,
            events,
            max_in_flight: usize::try_from(max_in_flight).unwrap_or(4096),
            ack_timeout,
        })
    }
}

/// Reads `prefix` (default `uns`) and checks it is a valid subject without wildcards.
pub fn parse_prefix(table: &mut Table<'_>) -> Option<String> {
    let prefix = table.optional_str("prefix").unwrap_or(DEFAULT_PREFIX).to_owned();
    match validate_prefix(&prefix) {
        Ok(()) => Some(prefix),
        Err(e) => {
            table.error(
                "prefix",
                format!("invalid `prefix` `{prefix}`: {e}"),
                Some("subject tokens separated by `.`, e.g. \"uns\" or \"acme.uns\"".into()),
            );
            None
        }
    }
}
