//! Test kinds standing in for the engine's `simulator` source, `jsonl` sink and the Modbus source, and
//! helpers to load configuration text.

// Each test binary uses a different subset of these helpers, and helpers outside
// `#[test]` functions are not covered by clippy's allow-*-in-tests settings.
#![allow(dead_code, clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use backplane_config::{AddressError, Catalog, Diagnostic, KindSpec, Plan, Settings, Table};

/// Reads `seed`, `period`, `fail_after` and `signals` (address → signal table) and accepts
/// only addresses that name one of its signals.
#[derive(Debug)]
pub struct Simulator;

#[derive(Debug)]
pub struct SimulatorSettings {
    pub seed: i64,
    pub period: Duration,
    pub fail_after: Option<Duration>,
    pub signals: Vec<String>,
}

impl KindSpec for Simulator {
    fn describe(&self) -> &'static str {
        "simulated device (test)"
    }

    fn parse(&self, table: &mut Table<'_>) -> Option<Settings> {
        let seed = table.optional_i64("seed").unwrap_or(0);
        let period = table
            .optional_duration("period")
            .unwrap_or(Duration::from_secs(1));
        let fail_after = table.optional_duration("fail_after");
        let mut signals = Vec::new();
        if let Some(mut t) = table.optional_table("signals") {
            for (key, item) in t.take_remaining() {
                if item.as_table().is_none() {
                    item.error(
                        format!("expected a signal table, found a {}", item.type_name()),
                        None,
                    );
                }
                signals.push(key.name.to_owned());
            }
            t.finish();
        }
        Some(Arc::new(SimulatorSettings {
            seed,
            period,
            fail_after,
            signals,
        }))
    }

    fn check_address(&self, settings: &Settings, address: &str) -> Result<(), AddressError> {
        let Some(settings) = settings.downcast_ref::<SimulatorSettings>() else {
            return Err(AddressError {
                message: "not a simulator".to_owned(),
                hint: None,
            });
        };
        if settings.signals.iter().any(|s| s == address) {
            return Ok(());
        }
        Err(AddressError {
            message: format!("the simulator has no signal `{address}`"),
            hint: Some(format!("signals: {}", settings.signals.join(", "))),
        })
    }
}

/// Reads `path` and `max_bytes`.
#[derive(Debug)]
pub struct Jsonl;

#[derive(Debug)]
pub struct JsonlSettings {
    pub path: String,
    pub max_bytes: Option<u64>,
}

impl KindSpec for Jsonl {
    fn describe(&self) -> &'static str {
        "JSON lines file (test)"
    }

    fn parse(&self, table: &mut Table<'_>) -> Option<Settings> {
        let path = table.optional_str("path").unwrap_or("-").to_owned();
        let max_bytes = table.optional_u64("max_bytes");
        Some(Arc::new(JsonlSettings { path, max_bytes }))
    }
}

/// Stands in for the Modbus connector in examples: reads its common keys and accepts any
/// address (the real kind checks them in crates/modbus).
#[derive(Debug)]
pub struct Modbus;

impl KindSpec for Modbus {
    fn describe(&self) -> &'static str {
        "Modbus device (test)"
    }

    fn parse(&self, table: &mut Table<'_>) -> Option<Settings> {
        table.required_str("url")?;
        table.optional_u64("unit");
        table.optional_u64("address_base");
        table.optional_str("word_order");
        table.optional_duration("period");
        Some(Arc::new(()))
    }

    /// Like the real kind: registers served raw or decoded as integers read whole numbers.
    fn reads_integers(&self, _settings: &Settings, address: &str) -> bool {
        let typed = address.split(':').nth(2);
        address.starts_with("hr:")
            && !address.contains('.')
            && typed.is_none_or(|t| !matches!(t, "f32" | "f64" | "str"))
    }
}

/// Stands in for the S7 connector in examples: reads its keys and accepts any address (the
/// real kind checks them in crates/s7).
#[derive(Debug)]
pub struct S7;

impl KindSpec for S7 {
    fn describe(&self) -> &'static str {
        "Siemens S7 CPU (test)"
    }

    fn parse(&self, table: &mut Table<'_>) -> Option<Settings> {
        let url = table.required_str("url")?.to_owned();
        table.optional_u64("rack");
        table.optional_u64("slot");
        table.optional_duration("period");
        Some(Arc::new(url))
    }

    /// Like the real kind: addresses typed as integers read whole numbers.
    fn reads_integers(&self, _settings: &Settings, address: &str) -> bool {
        address.rsplit_once(':').is_some_and(|(_, t)| {
            matches!(
                t,
                "byte" | "word" | "dword" | "sint" | "usint" | "int" | "uint" | "dint" | "udint"
            )
        })
    }
}

/// Stands in for the OPC UA connector in examples: accepts its keys and any address (the
/// real kind checks them in crates/opcua).
#[derive(Debug)]
pub struct OpcUa;

impl KindSpec for OpcUa {
    fn describe(&self) -> &'static str {
        "OPC UA server (test)"
    }

    fn parse(&self, table: &mut Table<'_>) -> Option<Settings> {
        table.required_str("url")?;
        table.take_remaining();
        Some(Arc::new(()))
    }
}

/// Stands in for the EtherNet/IP connector in examples: accepts its keys and any address
/// (the real kind checks them in crates/ethernetip).
#[derive(Debug)]
pub struct EtherNetIp;

impl KindSpec for EtherNetIp {
    fn describe(&self) -> &'static str {
        "EtherNet/IP controller (test)"
    }

    fn parse(&self, table: &mut Table<'_>) -> Option<Settings> {
        table.required_str("url")?;
        table.take_remaining();
        Some(Arc::new(()))
    }
}

/// Stands in for the drop-folder connector in examples: accepts its keys and any address
/// (the real kind checks them in crates/files).
#[derive(Debug)]
pub struct Files;

impl KindSpec for Files {
    fn describe(&self) -> &'static str {
        "drop folder (test)"
    }

    fn parse(&self, table: &mut Table<'_>) -> Option<Settings> {
        let path = table.required_str("path")?.to_owned();
        table.take_remaining();
        Some(Arc::new(path))
    }

    /// Like the real kind: `FIELD:int` and `FIELD:uint` (before a `[KEY=VALUE]`) read
    /// whole numbers.
    fn reads_integers(&self, _settings: &Settings, address: &str) -> bool {
        let typed = address.split('[').next().unwrap_or(address);
        typed
            .rsplit_once(':')
            .is_some_and(|(_, t)| matches!(t, "int" | "uint"))
    }
}

/// Stands in for the MTConnect connector in examples: accepts its keys and any address
/// (the real kind checks them in crates/mtconnect).
#[derive(Debug)]
pub struct MtConnect;

impl KindSpec for MtConnect {
    fn describe(&self) -> &'static str {
        "MTConnect agent (test)"
    }

    fn parse(&self, table: &mut Table<'_>) -> Option<Settings> {
        table.required_str("url")?;
        table.take_remaining();
        Some(Arc::new(()))
    }
}

/// Stands in for the historian sink: accepts its keys unread (the real kind checks them in
/// crates/historian).
#[derive(Debug)]
pub struct Historian;

impl KindSpec for Historian {
    fn describe(&self) -> &'static str {
        "historian (test)"
    }

    fn parse(&self, table: &mut Table<'_>) -> Option<Settings> {
        table.take_remaining();
        Some(Arc::new(()))
    }
}

/// Stands in for a network sink (e.g. `mqtt`): buffered, its own keys accepted unread.
#[derive(Debug)]
pub struct NetworkSink;

impl KindSpec for NetworkSink {
    fn describe(&self) -> &'static str {
        "network sink (test)"
    }

    fn parse(&self, table: &mut Table<'_>) -> Option<Settings> {
        table.take_remaining();
        Some(Arc::new(()))
    }

    fn buffered(&self) -> bool {
        true
    }
}

pub fn catalog() -> Catalog {
    let mut catalog = Catalog::default();
    catalog.add_sink("network", Arc::new(NetworkSink));
    catalog.add_source("simulator", Arc::new(Simulator));
    catalog.add_source("modbus", Arc::new(Modbus));
    catalog.add_source("opcua", Arc::new(OpcUa));
    catalog.add_source("s7", Arc::new(S7));
    catalog.add_source("ethernetip", Arc::new(EtherNetIp));
    catalog.add_source("files", Arc::new(Files));
    catalog.add_source("mtconnect", Arc::new(MtConnect));
    catalog.add_sink("jsonl", Arc::new(Jsonl));
    catalog.add_sink("historian", Arc::new(Historian));
    // The demo's OPC UA server: a local sink whose keys the test does not read.
    catalog.add_sink("opcua-server", Arc::new(Historian));
    catalog
}

/// Loads `text` as if it were the file `test.toml`.
pub fn load(text: &str) -> Result<Plan, Vec<Diagnostic>> {
    backplane_config::load_str(text, Path::new("test.toml"), &catalog())
}

/// The diagnostics of a configuration that must fail.
pub fn errors(text: &str) -> Vec<Diagnostic> {
    match load(text) {
        Ok(_) => panic!("configuration loaded, but errors were expected:\n{text}"),
        Err(diagnostics) => diagnostics,
    }
}

/// The one diagnostic of a configuration that must fail with exactly one.
pub fn one_error(text: &str) -> Diagnostic {
    let mut diagnostics = errors(text);
    let rendered: Vec<String> = diagnostics.iter().map(|d| d.render(Some(text))).collect();
    assert_eq!(
        diagnostics.len(),
        1,
        "expected one diagnostic, got:\n{}",
        rendered.join("\n")
    );
    diagnostics.remove(0)
}

/// A valid configuration for the error tests to add to: a `Filler` model, a simulator
/// source `plc` with signals `hr:1` .. `hr:3`, and an area `line-1`.
pub const BASE: &str = r#"[namespace]
enterprise = "acme"
site = "plant"

[models.Filler]
description = "test filler"
[models.Filler.attributes]
state = { type = "string", enum = ["idle", "running"] }
speed = { type = "float", unit = "bottle/min", range = [0, 600] }
count = { type = "uint", unit = "bottle" }
temperature = { type = "float", unit = "degC" }
running = { type = "bool" }

[[sources]]
name = "plc"
kind = "simulator"
period = "1s"
signals = { "hr:1" = {}, "hr:2" = {}, "hr:3" = {} }

[[assets]]
path = "line-1"

"#;

/// The line number of the first line after [`BASE`].
pub const NEXT: usize = 23;

/// `BASE` followed by `extra`.
pub fn with_base(extra: &str) -> String {
    format!("{BASE}{extra}")
}

/// Asserts where a diagnostic points and which key it names.
#[track_caller]
pub fn assert_at(d: &Diagnostic, line: usize, column: usize, key: &str) {
    assert_eq!(
        (d.location.line, d.location.column, d.key.as_str()),
        (line, column, key),
        "diagnostic: {}",
        d.render(None)
    );
}
