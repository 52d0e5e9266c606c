//! What a reload does to each component, as `backplane plan` and the reload answer print
//! it (`continuity::effects`), for each kind of change.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use backplane_config::Table;
use backplane_engine::continuity::effects;
use backplane_engine::{ComponentError, Kind, Registry, Sink, SinkContext, SinkKind, Topology};
use backplane_testkit::engine::plan;

/// A buffered sink kind that a reload may keep.
#[derive(Clone, Copy)]
struct Remote;

impl Kind for Remote {
    type Settings = ();
    fn describe(&self) -> &'static str {
        "a network sink (test)"
    }
    fn parse(&self, table: &mut Table<'_>) -> Option<()> {
        let _ = table.optional_u64("label");
        Some(())
    }
}

impl SinkKind for Remote {
    fn buffered(&self) -> bool {
        true
    }
    fn survives_reload(&self, _settings: &()) -> bool {
        true
    }
    fn build(&self, _ctx: &SinkContext<'_, ()>) -> Result<Box<dyn Sink>, ComponentError> {
        Err(ComponentError::config("not run here"))
    }
}

fn registry() -> Registry {
    let mut registry = backplane_engine::builtins();
    registry.add_sink("remote", Remote);
    registry
}

const BASE: &str = r#"
[namespace]
enterprise = "acme"
site = "plant"

[models.Tank.attributes]
level = { type = "float" }
temperature = { type = "float" }

[[assets]]
path = "tank-1"
model = "Tank"
source = "plc-1"
bindings.level = { address = "l" }

[[assets]]
path = "tank-2"
model = "Tank"
source = "plc-2"
bindings.level = { address = "l" }

[[sources]]
name = "plc-1"
kind = "simulator"
period = "1s"
signals.l = { signal = "constant", value = 1.0 }
signals.t = { signal = "constant", value = 2.0 }

[[sources]]
name = "plc-2"
kind = "simulator"
period = "1s"
signals.l = { signal = "constant", value = 1.0 }

[[sinks]]
name = "file"
kind = "jsonl"
path = "out.jsonl"

[[sinks]]
name = "uns"
kind = "remote"

[[sinks]]
name = "cloud"
kind = "remote"
"#;

/// Every component's fate going from `BASE` to `new`, as printed.
fn fates(new: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry();
    let old = Topology::new(plan(BASE, dir.path(), &registry));
    let new = Topology::new(plan(new, dir.path(), &registry));
    effects(&old, &new, &registry)
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn kept(component: &str, name: &str) -> String {
    format!("{component} {name} keeps running (its connection stays)")
}

#[test]
fn a_changed_source_setting_restarts_that_source_only() {
    let new = BASE.replacen("period = \"1s\"", "period = \"2s\"", 1);
    assert_eq!(
        fates(&new),
        [
            "source plc-1 restarts: its settings changed (period)".to_owned(),
            kept("source", "plc-2"),
            kept("sink", "file"),
            kept("sink", "uns"),
            kept("sink", "cloud"),
        ]
    );
}

#[test]
fn a_new_binding_restarts_its_source_and_keeps_every_sink() {
    let new = BASE.replacen(
        "bindings.level = { address = \"l\" }",
        "bindings.level = { address = \"l\" }\nbindings.temperature = { address = \"t\" }",
        1,
    );
    let fates = fates(&new);
    assert_eq!(
        fates[0],
        "source plc-1 restarts: the addresses it reads changed (+1, -0)"
    );
    assert_eq!(fates[1], kept("source", "plc-2"));
    assert!(
        fates[2..]
            .iter()
            .all(|f| f.ends_with("keeps running (its connection stays)")),
        "{fates:?}"
    );
}

#[test]
fn a_new_asset_restarts_every_sink_and_keeps_the_sources() {
    let new = format!(
        "{BASE}\n[[assets]]\npath = \"tank-3\"\nmodel = \"Tank\"\nsource = \"plc-2\"\nbindings.temperature = {{ address = \"l\" }}\n"
    );
    assert_eq!(
        fates(&new),
        [
            kept("source", "plc-1"),
            // The same address, now feeding two tags: the source reads what it read.
            kept("source", "plc-2"),
            "sink file restarts: the asset tree changed".to_owned(),
            "sink uns restarts: the asset tree changed".to_owned(),
            "sink cloud restarts: the asset tree changed".to_owned(),
        ]
    );
}

#[test]
fn buffered_sinks_are_kept_all_together_or_restarted_all_together() {
    let new = BASE.replace(
        "name = \"cloud\"\nkind = \"remote\"",
        "name = \"cloud\"\nkind = \"remote\"\nlabel = 2",
    );
    let fates = fates(&new);
    assert_eq!(
        &fates[2..],
        [
            kept("sink", "file"),
            "sink uns restarts: another buffered sink restarts, starts or stops (they read one log)"
                .to_owned(),
            "sink cloud restarts: its settings changed (label)".to_owned(),
        ]
    );
}

#[test]
fn added_removed_and_disabled_components_start_and_stop() {
    let new = BASE
        .replace(
            "name = \"plc-2\"\nkind = \"simulator\"",
            "name = \"plc-2\"\nkind = \"simulator\"\nenabled = false",
        )
        .replace(
            "[[sinks]]\nname = \"file\"\nkind = \"jsonl\"\npath = \"out.jsonl\"\n",
            "[[sinks]]\nname = \"audit\"\nkind = \"jsonl\"\npath = \"audit.jsonl\"\n",
        );
    assert_eq!(
        fates(&new),
        [
            kept("source", "plc-1"),
            "source plc-2 stops".to_owned(),
            "sink audit starts".to_owned(),
            kept("sink", "uns"),
            kept("sink", "cloud"),
            "sink file stops".to_owned(),
        ]
    );
}
