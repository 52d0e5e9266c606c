//! The quick start of docs/connectors/ethernetip.md loads, plans the number of packets the
//! page says, and is the demo's palletizer source.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::Path;

use backplane_ethernetip::EnipKind;

const PAGE: &str = include_str!("../../../docs/connectors/ethernetip.md");
const DAIRY: &str = include_str!("../../../examples/dairy.toml");

const CONTEXT: &str = r#"
[namespace]
enterprise = "acme"
site = "plant"

[[assets]]
path = "packaging"
level = "area"

[models.Palletizer.attributes]
state = { type = "string", enum = ["stopped", "idle", "running", "fault"] }
pallet_count = { type = "uint", unit = "pallet" }
layer_count = { type = "uint" }
layers_per_pallet = { type = "uint" }
case_rate = { type = "float", unit = "case/min" }
fault_code = { type = "uint" }
recipe = { type = "string" }
"#;

fn quick_start() -> &'static str {
    let start = PAGE.find("```toml\n").unwrap() + "```toml\n".len();
    &PAGE[start..start + PAGE[start..].find("```").unwrap()]
}

#[test]
fn quick_start_reads_the_palletizer_in_one_packet() {
    let mut registry = backplane_engine::builtins();
    registry.add_source("ethernetip", EnipKind);
    let text = format!("{CONTEXT}{}", quick_start());
    let plan = backplane_config::load_str(&text, Path::new("ethernetip.md"), &registry.catalog())
        .unwrap_or_else(|d| {
            panic!(
                "{}",
                d.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n")
            )
        });
    let kind = registry.source("ethernetip").unwrap();
    let source = &plan.sources[0];
    let summary = kind.summarize(&plan, &source.name, &source.settings);
    assert!(
        summary[0].starts_with("ethernetip source `palletizer-plc`: 7 tags in 1 packet per cycle, every 1s"),
        "{}",
        summary[0]
    );
}

#[test]
fn the_quick_start_is_the_demos_palletizer() {
    for line in quick_start()
        .lines()
        .filter(|l| l.starts_with("bindings.") || l.starts_with("url"))
    {
        assert!(DAIRY.contains(line), "examples/dairy.toml lacks {line}");
    }
}
