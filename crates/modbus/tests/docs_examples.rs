//! The configuration examples of docs/connectors/modbus.md load, and plan the number of
//! requests the page says.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use backplane_modbus::ModbusKind;
use std::path::Path;

/// What the page's fragments take from the rest of a configuration.
const NAMESPACE: &str = r#"
[namespace]
enterprise = "acme"
site = "plant"

[[assets]]
path = "packaging"
level = "area"

[[assets]]
path = "packaging/line-1"
level = "line"
"#;
const FILLER: &str = r#"
[models.Filler.attributes]
state = { type = "string", enum = ["stopped", "idle", "running", "fault"] }
speed = { type = "float", unit = "bottle/min" }
good_count = { type = "uint", unit = "bottle" }
reject_count = { type = "uint", unit = "bottle" }
product_temperature = { type = "float", unit = "degC" }
"#;

/// The ```toml blocks of the page that contain `needle`.
fn block(needle: &str) -> String {
    let page = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/connectors/modbus.md"
    ))
    .unwrap();
    page.split("```toml\n")
        .skip(1)
        .filter_map(|rest| rest.split_once("\n```").map(|(b, _)| b.to_owned()))
        .find(|b| b.contains(needle))
        .unwrap_or_else(|| panic!("no toml block with {needle}"))
}

fn summaries(text: &str) -> Vec<String> {
    let mut registry = backplane_engine::builtins();
    registry.add_source("modbus", ModbusKind);
    let plan =
        backplane_config::load_str(text, Path::new("modbus.md"), &registry.catalog()).unwrap_or_else(|d| {
            panic!(
                "{text}\n{}",
                d.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n")
            )
        });
    // What `backplane check` prints: each modbus source's summary from its kind.
    let kind = registry.source("modbus").unwrap();
    plan.sources
        .iter()
        .filter(|s| s.kind == "modbus")
        .flat_map(|s| kind.summarize(&plan, &s.name, &s.settings))
        .collect()
}

#[test]
fn quick_start_reads_line_1_in_one_request() {
    let text = format!("{NAMESPACE}{FILLER}{}", block("name = \"line1-plc\""));
    let s = summaries(&text);
    assert_eq!(s.len(), 1);
    assert!(
        s[0].starts_with("modbus source `line1-plc`: 5 tags in 1 request per cycle"),
        "{}",
        s[0]
    );
}

#[test]
fn worked_example_loads_and_plans_three_requests() {
    let text = format!("{NAMESPACE}{}", block("name = \"capper-plc\""));
    let s = summaries(&text);
    assert!(s[0].contains("6 tags in 3 requests per cycle"), "{}", s[0]);
    assert!(
        s[0].contains("group default every 1s: 3 tags, 2 requests"),
        "{}",
        s[0]
    );
    assert!(
        s[0].contains("group fast every 200ms: 3 tags, 1 request"),
        "{}",
        s[0]
    );
}
