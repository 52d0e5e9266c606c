//! The one list of what this build knows: every source, sink and stage kind. Everything
//! else the binary offers is derived from it: `check` summaries, `browse` URL schemes
//! and options, `simulate` devices, the demo's devices, the kinds named in `--help`.
//! Adding a protocol means one line here.

use std::sync::Arc;

use backplane_connector::{Browser, Registry, Simulator};

/// Every kind this build registers: the engine's built-ins, each protocol crate's, the
/// historian, and the derive, production and alarms stages.
pub fn registry() -> Registry {
    let mut registry = backplane_engine::builtins();
    registry.add_source("modbus", backplane_modbus::ModbusKind);
    registry.add_source("opcua", backplane_opcua::OpcUaKind);
    registry.add_source("s7", backplane_s7::S7Kind);
    registry.add_source("ethernetip", backplane_ethernetip::EnipKind);
    registry.add_source("sql", backplane_sql::SqlKind);
    registry.add_source("http", backplane_http::HttpKind);
    registry.add_source("mtconnect", backplane_mtconnect::MtConnectKind::default());
    registry.add_source("files", backplane_files::FilesKind);
    registry.add_source("ascii", backplane_ascii::AsciiKind);
    backplane_mqtt::register(&mut registry);
    backplane_nats::register(&mut registry);
    registry.add_sink("historian", backplane_historian::HistorianKind::new());
    registry.add_sink("postgresql", backplane_postgres::PostgresKind);
    registry.add_sink("opcua-server", backplane_opcua_server::OpcUaServerKind);
    // Before production: its states and counts may read derived attributes.
    registry.add_stage("derive", Arc::new(backplane_derive::DeriveStageKind));
    registry.add_stage("production", Arc::new(backplane_production::ProductionStageKind));
    registry.add_stage("alarms", Arc::new(backplane_alarms::AlarmsStageKind));
    registry
}

/// Every kind's discovery hook, in kind order.
pub fn browsers(registry: &Registry) -> Vec<Browser> {
    registry.kinds().filter_map(|(_, kind)| kind.browser()).collect()
}

/// The browser for `url`'s scheme (the text before `://`).
pub fn browser_for(registry: &Registry, url: &str) -> Option<Browser> {
    let (scheme, _) = url.split_once("://")?;
    browsers(registry)
        .into_iter()
        .find(|b| b.schemes.iter().any(|s| s.eq_ignore_ascii_case(scheme)))
}

/// Every kind's simulated devices, by name.
pub fn simulators(registry: &Registry) -> Vec<Simulator> {
    let mut all: Vec<Simulator> = registry.kinds().flat_map(|(_, kind)| kind.simulators()).collect();
    all.sort_by_key(|s| s.name);
    all.dedup_by_key(|s| s.name);
    all
}

/// The simulator called `name`.
pub fn simulator(registry: &Registry, name: &str) -> Option<Simulator> {
    simulators(registry).into_iter().find(|s| s.name == name)
}

/// What `backplane --help` lists after the commands: the kinds, browse schemes and
/// simulators of this build.
pub fn overview(registry: &Registry) -> String {
    let sources: Vec<&str> = registry.sources().map(|(name, _)| name).collect();
    let sinks: Vec<&str> = registry.sinks().map(|(name, _)| name).collect();
    let stages: Vec<&str> = registry.stages().map(|(name, _)| name).collect();
    let schemes: Vec<String> = browsers(registry)
        .iter()
        .flat_map(|b| b.schemes.iter().map(|s| format!("{s}://")))
        .collect();
    let simulators: Vec<&str> = simulators(registry).iter().map(|s| s.name).collect();
    let list = |names: &[&str]| {
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    };
    format!(
        "Kinds this build knows:\n  sources:    {}\n  sinks:      {}\n  stages:     {}\n  browse:     {}\n  simulators: {}",
        list(&sources),
        list(&sinks),
        list(&stages),
        if schemes.is_empty() {
            "none".to_owned()
        } else {
            schemes.join(" ")
        },
        list(&simulators),
    )
}
