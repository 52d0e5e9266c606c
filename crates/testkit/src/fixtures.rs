//! Plan texts more than one crate's tests start from: line 1 of the dairy demo as the demo
//! configures it (the Modbus and OPC UA tests compare their fillers with it), and the lab
//! probe the protocol peers' tests (pymodbus, asyncua) read every kind of value through.

/// The demo's namespace, as in examples/dairy.toml.
pub const DAIRY_NAMESPACE: &str = r#"
[namespace]
enterprise = "acme-dairy"
site = "plant-a"
"#;

/// The demo's vendor-independent `Filler` model, as in examples/dairy.toml.
pub const DAIRY_FILLER_MODEL: &str = r#"
[models.Filler]
description = "Bottle filler, vendor independent"
[models.Filler.attributes]
state = { type = "string", enum = ["stopped", "idle", "running", "fault"], description = "Machine state" }
speed = { type = "float", unit = "bottle/min", range = [0, 600], description = "Filling speed" }
good_count = { type = "uint", unit = "bottle", description = "Good bottles since counter reset" }
reject_count = { type = "uint", unit = "bottle", description = "Rejected bottles since counter reset" }
product_temperature = { type = "float", unit = "degC", range = [0, 20], description = "Product temperature at the filler bowl" }
"#;

/// Line 1 of the demo: the packaging area, the line and its vendor-A filler with the demo's
/// bindings, read over Modbus TCP by source `line1-plc` from `tcp://127.0.0.1:MODBUS_PORT`
/// (replace `MODBUS_PORT` with the filler simulator's port). Needs [`DAIRY_FILLER_MODEL`].
pub const DAIRY_LINE_1: &str = r#"
[[assets]]
path = "packaging"
level = "area"

[[assets]]
path = "packaging/line-1"
level = "line"

[[assets]]
path = "packaging/line-1/filler"
model = "Filler"
source = "line1-plc"
bindings.state = { address = "hr:100", map = { 0 = "stopped", 1 = "idle", 2 = "running", 3 = "fault" } }
bindings.speed = { address = "hr:101", scale = { gain = 0.1 } }
bindings.good_count = { address = "hr:102:u32" }
bindings.reject_count = { address = "hr:104" }
bindings.product_temperature = { address = "hr:106:i16", scale = { gain = 0.1 }, unit = "degF" }

# Vendor A: Modbus TCP (`backplane demo` starts the filler simulator on this port).
[[sources]]
name = "line1-plc"
kind = "modbus"
url = "tcp://127.0.0.1:MODBUS_PORT"
unit = 1
address_base = 0          # the vendor's manual counts from 0
word_order = "CDAB"       # vendor A sends 32-bit values low word first
period = "500ms"
"#;

/// One `Probe` asset at `acme/lab/area/line/probe`, bound to one source.
#[derive(Debug, Clone, Copy)]
pub struct LabProbe<'a> {
    /// The lines of `[models.Probe.attributes]`.
    pub attributes: &'a str,
    /// The probe's `bindings.NAME = …` lines.
    pub bindings: &'a str,
    /// The source's name.
    pub source: &'a str,
    /// The rest of the source's table after its name: `kind`, `url`, settings, sub-tables.
    pub settings: &'a str,
}

impl LabProbe<'_> {
    /// The plan text.
    pub fn toml(&self) -> String {
        let LabProbe {
            attributes,
            bindings,
            source,
            settings,
        } = self;
        format!(
            r#"
[namespace]
enterprise = "acme"
site = "lab"

[models.Probe.attributes]
{attributes}

[[assets]]
path = "area"
level = "area"

[[assets]]
path = "area/line"
level = "line"

[[assets]]
path = "area/line/probe"
model = "Probe"
source = "{source}"
{bindings}

[[sources]]
name = "{source}"
{settings}"#
        )
    }
}
