//! `backplane plan`'s comparison of two configurations: each kind of change named with the
//! keys, attributes and bindings it touches; layout and comments are no change.

// Helpers outside `#[test]` functions are not covered by clippy's allow-*-in-tests.
#![allow(clippy::panic)]

mod common;

use backplane_config::Plan;
use backplane_config::diff::{Change, diff};

fn plan(text: &str) -> Plan {
    common::load(text).unwrap_or_else(|e| panic!("{e:?}"))
}

fn lines(old: &str, new: &str) -> Vec<String> {
    diff(&plan(old), &plan(new))
        .iter()
        .map(ToString::to_string)
        .collect()
}

const BASE: &str = r#"
[namespace]
enterprise = "acme"
site = "dairy"

[models.Filler.attributes]
speed = { type = "float", unit = "bottle/min" }
count = { type = "int" }

[[sources]]
name = "plc"
kind = "simulator"
period = "1s"
signals.speed = {}
signals.count = {}

[[sinks]]
name = "out"
kind = "jsonl"
path = "out.jsonl"

[[assets]]
path = "packaging"

[[assets]]
path = "packaging/line-1"

[[assets]]
path = "packaging/line-1/filler"
model = "Filler"
bindings.speed = { source = "plc", address = "speed" }
bindings.count = { source = "plc", address = "count" }
"#;

#[test]
fn the_same_configuration_with_other_comments_and_layout_has_no_changes() {
    let relaid = BASE
        .replace("period = \"1s\"", "# polled every second\nperiod    = \"1s\"")
        .replace("path = \"out.jsonl\"", "path = 'out.jsonl'");
    assert_eq!(diff(&plan(BASE), &plan(&relaid)), Vec::<Change>::new());
}

#[test]
fn each_kind_of_change_is_named_with_the_keys_attributes_and_bindings_it_touches() {
    let changed = BASE
        .replace("period = \"1s\"", "period = \"2s\"")
        .replace("count = { type = \"int\" }", "count = { type = \"int\" }\nstate = { type = \"string\" }")
        .replace("address = \"count\"", "address = \"speed\"")
        .replace(
            "[[sinks]]\nname = \"out\"",
            "[[sinks]]\nname = \"audit\"\nkind = \"jsonl\"\npath = \"audit.jsonl\"\n\n[[sinks]]\nname = \"out\"",
        );
    assert_eq!(
        lines(BASE, &changed),
        [
            "~ model Filler: +attribute state",
            "~ source plc: period",
            "+ sink audit",
            "~ asset acme/dairy/packaging/line-1/filler: model definition, binding count",
        ]
    );
}

#[test]
fn removed_items_and_the_processes_own_settings_are_listed_apart() {
    let changed = BASE
        .replace("bindings.count = { source = \"plc\", address = \"count\" }\n", "")
        .replace(
            "[[sinks]]\nname = \"out\"\nkind = \"jsonl\"\npath = \"out.jsonl\"\n",
            "",
        )
        .replace("[namespace]", "[api]\nlisten = \"127.0.0.1:9999\"\n\n[namespace]");
    let changes = diff(&plan(BASE), &plan(&changed));
    let text: Vec<String> = changes.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        [
            "~ [api]: listen",
            "- sink out",
            "~ asset acme/dairy/packaging/line-1/filler: -binding count",
        ]
    );
    assert!(changes[0].part.needs_process_restart());
    assert!(!changes[1].part.needs_process_restart());
}

#[test]
fn other_runtime_threads_take_a_restart() {
    let changes = diff(&plan(BASE), &plan(&format!("[gateway]\nworkers = 1\n{BASE}")));
    let text: Vec<String> = changes.iter().map(ToString::to_string).collect();
    assert_eq!(text, ["~ [gateway]: workers"]);
    assert!(changes[0].part.needs_process_restart());
}
