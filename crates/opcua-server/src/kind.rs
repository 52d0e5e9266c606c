//! [`OpcUaServerKind`], registered as `opcua-server`: reads the sink's settings, summarizes
//! its endpoints for `backplane check`, and builds the running server.

use backplane_config::{Plan, Table};
use backplane_connector::{ComponentError, Kind, Sink, SinkContext, SinkKind};

use crate::config::ServerSettings;

/// The kind registered as `opcua-server`.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpcUaServerKind;

impl Kind for OpcUaServerKind {
    type Settings = ServerSettings;

    fn describe(&self) -> &'static str {
        "OPC UA server: the plant's models and assets as an address space with live values, history, events and methods"
    }

    fn parse(&self, table: &mut Table<'_>) -> Option<ServerSettings> {
        crate::config::parse_settings(table)
    }

    fn summarize(&self, plan: &Plan, _name: &str, s: &ServerSettings) -> Vec<String> {
        let policies: Vec<&str> = s.policies.iter().map(|p| p.name()).collect();
        let modes: Vec<&str> = s.modes.iter().map(|m| m.name()).collect();
        let users = match &plan.api.users {
            Some(path) => format!("users of {}", path.display()),
            None => "no users file".to_owned(),
        };
        vec![format!(
            "opc.tcp://{}, namespace {}, policies {} ({}), {}{}",
            s.listen,
            s.namespace_uri(&plan.gateway.name),
            policies.join(", "),
            modes.join(", "),
            users,
            if s.anonymous { ", anonymous allowed" } else { "" },
        )]
    }
}

impl SinkKind for OpcUaServerKind {
    /// Its address space is built from the asset tree, which such a reload leaves alone;
    /// client sessions and subscriptions stay.
    fn survives_reload(&self, _settings: &ServerSettings) -> bool {
        true
    }

    /// Alarms and production methods go through the stages; history reads the
    /// historians' stores.
    fn uses_services(&self, _settings: &ServerSettings) -> bool {
        true
    }

    fn build(&self, ctx: &SinkContext<'_, ServerSettings>) -> Result<Box<dyn Sink>, ComponentError> {
        Ok(Box::new(crate::sink::ServerSink::new(ctx)))
    }
}
