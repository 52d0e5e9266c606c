//! The configurations in `examples/`: the dairy demo loads into the expected plan, and
//! `broken.toml` shows every class of error at once.

// Helpers outside `#[test]` functions are not covered by clippy's allow-*-in-tests.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use backplane_config::Plan;
use backplane_model::{Context, DataType, Deadband, Level, ScalarType, Transform, Unit};
use common::{JsonlSettings, catalog};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
}

fn dairy() -> Plan {
    match backplane_config::load(&example("dairy.toml"), &catalog()) {
        Ok(plan) => plan,
        Err(diagnostics) => {
            let shown: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
            panic!("dairy.toml does not load:\n{}", shown.join("\n\n"));
        }
    }
}

fn chain(plan: &Plan, asset: &str, attribute: &str) -> Vec<Transform> {
    let asset = plan.asset(&format!("acme-dairy/plant-a/{asset}")).unwrap();
    let binding = asset
        .bindings
        .iter()
        .find(|b| &*b.attribute == attribute)
        .unwrap();
    binding.transforms.to_vec()
}

fn unit(symbol: &str) -> Unit {
    Unit::parse(symbol).unwrap()
}

fn cast(scalar: ScalarType) -> Transform {
    Transform::Cast {
        to: DataType::Scalar(scalar),
    }
}

fn assert_close(actual: f64, expected: f64) {
    assert!((actual - expected).abs() < 1e-9, "{actual} != {expected}");
}

#[test]
fn dairy_loads_every_asset_with_parents_first() {
    let plan = dairy();
    let assets: Vec<(&str, Level)> = plan.assets.iter().map(|a| (a.path.as_str(), a.level)).collect();
    let area = Level::Area;
    let line = Level::parse("line").unwrap();
    let equipment = Level::Equipment;
    // The enterprise and the site, then the 14 declared assets in file order.
    assert_eq!(
        assets,
        [
            ("acme-dairy", Level::Enterprise),
            ("acme-dairy/plant-a", Level::Site),
            ("acme-dairy/plant-a/reception", area),
            ("acme-dairy/plant-a/reception/silo-1", equipment),
            ("acme-dairy/plant-a/reception/silo-2", equipment),
            ("acme-dairy/plant-a/processing", area),
            ("acme-dairy/plant-a/processing/pasteurizer", equipment),
            ("acme-dairy/plant-a/packaging", area),
            ("acme-dairy/plant-a/packaging/line-1", line),
            ("acme-dairy/plant-a/packaging/line-1/filler", equipment),
            ("acme-dairy/plant-a/packaging/line-2", line),
            ("acme-dairy/plant-a/packaging/line-2/filler", equipment),
            ("acme-dairy/plant-a/packaging/palletizer", equipment),
            ("acme-dairy/plant-a/maintenance", area),
            (
                "acme-dairy/plant-a/maintenance/machining",
                Level::parse("cell").unwrap()
            ),
            ("acme-dairy/plant-a/maintenance/machining/mill-1", equipment),
        ]
    );
    // The shift comes from the calendar now, not from the configuration.
    let packaging = plan.asset("acme-dairy/plant-a/packaging").unwrap();
    assert_eq!(packaging.context, Context::default());
    assert_eq!(plan.production.calendar.as_ref().map(|c| c.shifts.len()), Some(3));
    let bound: usize = plan.assets.iter().map(|a| a.bindings.len()).sum();
    assert_eq!(
        bound, 42,
        "17 process values, two silo lot numbers, the batch number, 7 palletizer tags, 6 lab values, 9 of the mill"
    );
}

#[test]
fn dairy_models_keep_their_attributes_in_order() {
    let plan = dairy();
    let names: Vec<&str> = plan.models.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        ["Silo", "Pasteurizer", "Filler", "Palletizer", "CncMachine"]
    );
    let filler = plan.model("Filler").unwrap();
    let attributes: Vec<&str> = filler.attributes.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        attributes,
        [
            "state",
            "speed",
            "good_count",
            "reject_count",
            "product_temperature"
        ]
    );
    let state = filler.attribute("state").unwrap();
    assert_eq!(
        state.allowed.as_deref().unwrap(),
        ["stopped", "idle", "running", "fault"]
    );
    assert_eq!(filler.attribute("speed").unwrap().range, Some([0.0, 600.0]));
    assert_eq!(filler.attribute("speed").unwrap().unit, Some(unit("bottle/min")));
}

#[test]
fn dairy_line_1_temperature_scales_converts_casts_and_rounds_to_the_declared_decimals() {
    // The Modbus source decodes `hr:106:i16` itself; the binding scales tenths and
    // converts; the model's `decimals = 2` rounds once at the end, in place of the
    // 1 decimal a gain of 0.1 implies.
    let plan = dairy();
    let temperature = chain(&plan, "packaging/line-1/filler", "product_temperature");
    let (gain, offset) = unit("degF").conversion_to(&unit("degC")).unwrap();
    assert_eq!(
        temperature,
        [
            Transform::Scale {
                gain: 0.1,
                offset: 0.0,
                raw: None,
                eng: None
            },
            Transform::Convert {
                from: unit("degF"),
                to: unit("degC"),
                gain,
                offset
            },
            cast(ScalarType::Float),
            Transform::Round { decimals: 2 },
        ]
    );
    // Speed in tenths keeps the rounding its gain implies.
    assert_eq!(
        chain(&plan, "packaging/line-1/filler", "speed")[1],
        Transform::Round { decimals: 1 }
    );
    assert_eq!(
        chain(&plan, "packaging/line-2/filler", "product_temperature"),
        [cast(ScalarType::Float), Transform::Round { decimals: 2 }]
    );
}

#[test]
fn dairy_chains_follow_the_fixed_transform_order() {
    let plan = dairy();
    assert_eq!(
        chain(&plan, "packaging/line-1/filler", "good_count"),
        [cast(ScalarType::UInt)]
    );
    let state = chain(&plan, "packaging/line-1/filler", "state");
    let Transform::Map { entries } = &state[0] else {
        panic!("expected a map, got {state:?}")
    };
    let entries: Vec<(i64, &str)> = entries.iter().map(|(k, v)| (*k, &**v)).collect();
    assert_eq!(
        entries,
        [(0, "stopped"), (1, "idle"), (2, "running"), (3, "fault")]
    );
    assert_eq!(state[1], cast(ScalarType::String));
    assert_eq!(
        chain(&plan, "processing/pasteurizer", "divert_valve"),
        [Transform::Bit { index: 2 }, cast(ScalarType::Bool)]
    );
    let Transform::Scale {
        gain,
        offset,
        raw,
        eng,
    } = chain(&plan, "reception/silo-1", "level")[0].clone()
    else {
        panic!("expected a scale")
    };
    assert_close(gain, 100.0 / 27648.0);
    assert_close(offset, 0.0);
    assert_eq!((raw, eng), (Some([0.0, 27648.0]), Some([0.0, 100.0])));
    let Transform::Convert { gain, .. } = chain(&plan, "processing/pasteurizer", "flow")[0].clone() else {
        panic!("expected a conversion")
    };
    assert_close(gain, 1000.0);
    let Transform::Convert { gain, .. } = chain(&plan, "packaging/line-2/filler", "speed")[0].clone() else {
        panic!("expected a conversion")
    };
    assert_close(gain, 1.0 / 60.0);
    assert_eq!(
        chain(&plan, "packaging/line-2/filler", "good_count"),
        [cast(ScalarType::UInt)]
    );
}

#[test]
fn dairy_deadbands_resolve_percent_against_the_range() {
    let plan = dairy();
    let binding = |asset: &str, attribute: &str| {
        let asset = plan.asset(&format!("acme-dairy/plant-a/{asset}")).unwrap();
        asset
            .bindings
            .iter()
            .find(|b| &*b.attribute == attribute)
            .unwrap()
            .clone()
    };
    let hold = binding("processing/pasteurizer", "hold_temperature");
    assert_eq!(
        hold.deadband,
        Some(Deadband::Percent {
            percent: 0.1,
            span: 30.0
        })
    );
    assert_eq!(
        (&*hold.source, &*hold.address),
        ("processing-plc", "ns=2;s=HTST.HoldTemp")
    );
    assert_eq!(
        binding("reception/silo-2", "temperature").deadband,
        Some(Deadband::Absolute(0.05))
    );
}

#[test]
fn dairy_sources_and_sinks_carry_their_kind_settings() {
    let plan = dairy();
    let names: Vec<(&str, &str, bool)> = plan
        .sources
        .iter()
        .map(|s| (s.name.as_str(), s.kind.as_str(), s.enabled))
        .collect();
    assert_eq!(
        names,
        [
            ("reception-plc", "s7", true),
            ("reception-lab", "files", true),
            ("processing-plc", "opcua", true),
            ("line1-plc", "modbus", true),
            ("line2-controller", "opcua", true),
            ("palletizer-plc", "ethernetip", true),
            ("shop-cnc", "mtconnect", true),
        ]
    );
    let reception = plan.sources[0].settings.downcast_ref::<String>().unwrap();
    assert_eq!(reception, "s7://127.0.0.1:1102");
    let silo = plan.asset("acme-dairy/plant-a/reception/silo-2").unwrap();
    let addresses: Vec<(&str, &str)> = silo.bindings.iter().map(|b| (&*b.source, &*b.address)).collect();
    assert_eq!(
        addresses,
        [
            ("reception-plc", "DB1.DBW10:int"),
            ("reception-plc", "DB1.DBD12:real"),
            ("reception-plc", "DB1.DBD16:udint"),
            ("reception-lab", "fat_pct[silo=silo-2]"),
            ("reception-lab", "protein_pct[silo=silo-2]"),
            ("reception-lab", "somatic_cells:uint[silo=silo-2]"),
        ]
    );
    let lab = plan.sources[1].settings.downcast_ref::<String>().unwrap();
    assert_eq!(lab, "lab-inbox");
    let sink = plan.sinks[0].settings.downcast_ref::<JsonlSettings>().unwrap();
    assert_eq!(
        (sink.path.as_str(), sink.max_bytes),
        ("samples.jsonl", Some(20_000_000))
    );
}

#[test]
fn dairy_gateway_settings_resolve_against_the_file() {
    let plan = dairy();
    assert_eq!(plan.gateway.name, "plant-a-edge");
    assert_eq!(plan.gateway.data_dir, example("data"));
    assert_eq!(plan.api.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(plan.api.max_body_bytes, 65536);
    assert_eq!(plan.api.token, None);
    assert_eq!(plan.files, [example("dairy.toml")]);
    assert_eq!(plan.version.len(), 64);
    assert!(
        plan.version
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
}

#[test]
fn broken_example_reports_every_error_with_a_position() {
    let diagnostics = backplane_config::load(&example("broken.toml"), &catalog()).unwrap_err();
    let shown: Vec<String> = diagnostics.iter().map(|d| d.render(None)).collect();
    assert_eq!(diagnostics.len(), 20, "{}", shown.join("\n"));
    for d in &diagnostics {
        assert!(
            d.location.line >= 1 && d.location.column >= 1,
            "{}",
            d.render(None)
        );
        assert_eq!(d.location.file, example("broken.toml"));
    }
    // One announcing comment per error, at most four lines above it.
    let text = std::fs::read_to_string(example("broken.toml")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let announced = lines.iter().filter(|l| l.starts_with("# Error:")).count();
    assert_eq!(announced, diagnostics.len());
    for d in &diagnostics {
        let above = &lines[d.location.line.saturating_sub(5)..d.location.line - 1];
        assert!(
            above.iter().any(|l| l.starts_with("# Error:")),
            "no comment above {}",
            d.render(None)
        );
    }
    let lines: Vec<usize> = diagnostics.iter().map(|d| d.location.line).collect();
    assert!(lines.windows(2).all(|w| w[0] <= w[1]), "not sorted: {lines:?}");
}
