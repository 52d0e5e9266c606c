//! `backplane check` on derived attributes: every problem at its line and column inside
//! the `expr` string, with a hint where one helps.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;

use backplane_config::{Catalog, Diagnostic};

fn catalog() -> Catalog {
    let mut catalog = Catalog::default();
    catalog.set_expressions(Arc::new(backplane_derive::ExprChecker));
    catalog
}

/// A Filler model whose attribute `derived` has `expr` (written on line 11 as
/// `derived = { type = TYPE, unit = UNIT, expr = "EXPR" }`), and a line asset above it.
fn config(ty: &str, unit: &str, expr: &str) -> String {
    format!(
        r#"[gateway]
name = "t"
[namespace]
enterprise = "acme"
site = "p"
[models.Filler.attributes]
state = {{ type = "string", enum = ["stopped", "running"] }}
good_count = {{ type = "uint", unit = "bottle" }}
temperature = {{ type = "float", unit = "degC" }}
pressure = {{ type = "float", unit = "bar" }}
derived = {{ type = "{ty}", unit = "{unit}", expr = "{expr}" }}

[[assets]]
path = "line-1"
level = "line"

[[assets]]
path = "line-1/filler"
model = "Filler"
"#
    )
}

/// Column of the `expr` string's first character on line 11.
fn expr_column(ty: &str, unit: &str) -> usize {
    format!(r#"derived = {{ type = "{ty}", unit = "{unit}", expr = ""#)
        .chars()
        .count()
        + 1
}

fn errors(text: &str) -> Vec<Diagnostic> {
    backplane_config::load_str(text, Path::new("plant.toml"), &catalog())
        .expect_err("the configuration has errors")
}

fn ok(text: &str) {
    if let Err(errors) = backplane_config::load_str(text, Path::new("plant.toml"), &catalog()) {
        panic!("unexpected errors: {errors:#?}");
    }
}

/// The one error, at line 11 and `at` characters into the expression.
fn one_error_at(ty: &str, unit: &str, expr: &str, at: usize) -> Diagnostic {
    let errors = errors(&config(ty, unit, expr));
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let e = errors.into_iter().next().unwrap();
    assert_eq!(
        (e.location.line, e.location.column),
        (11, expr_column(ty, unit) + at),
        "{e:#?}"
    );
    e
}

#[test]
fn a_well_typed_rate_from_a_counter_is_accepted() {
    ok(&config("float", "bottle/min", "delta(good_count) / dt_min"));
    ok(&config("float", "bottle/s", "rate(good_count)"));
    ok(&config("float", "degC", "mean(temperature, '5m') + 1"));
    ok(&config("float", "s", "time_in_state(state, 'running', '1h')"));
    ok(&config("bool", "", "temperature > 72.0 && state == 'running'").replace(r#", unit = """#, ""));
}

#[test]
fn an_unknown_attribute_is_reported_where_it_is_with_a_suggestion() {
    let e = one_error_at("float", "degC", "temperature + temperatur", 14);
    assert_eq!(e.message, "unknown attribute `temperatur` of model `Filler`");
    assert_eq!(e.hint.as_deref(), Some("did you mean `temperature`?"));
    assert_eq!(e.key, "models.Filler.attributes.derived.expr");
}

#[test]
fn a_string_in_arithmetic_is_a_type_mismatch() {
    let e = one_error_at("float", "degC", "temperature + state", 14);
    assert!(
        e.message
            .contains("type mismatch: `state` is a string, expected a number"),
        "{e:#?}"
    );
}

#[test]
fn a_result_of_another_type_than_the_attribute_is_an_error() {
    let e = one_error_at("float", "degC", "temperature > 3.0", 12);
    assert!(
        e.message
            .contains("the expression is a boolean, but attribute `derived` is float"),
        "{e:#?}"
    );
}

#[test]
fn adding_attributes_of_different_units_is_a_unit_mismatch() {
    let e = one_error_at("float", "degC", "temperature + pressure", 12);
    assert!(e.message.starts_with("unit mismatch: degC and bar"), "{e:#?}");
    // The result's unit against the attribute's.
    let e = one_error_at("float", "bottle/s", "delta(good_count) / dt_min", 18);
    assert!(
        e.message
            .contains("in bottle/min, but attribute `derived` is in bottle/s"),
        "{e:#?}"
    );
}

#[test]
fn an_unknown_function_and_a_wrong_argument_count_are_reported() {
    let e = one_error_at("float", "bottle/s", "rat(good_count)", 0);
    assert_eq!(e.message, "unknown function `rat`");
    assert_eq!(e.hint.as_deref(), Some("did you mean `rate`?"));
    let e = one_error_at("float", "degC", "2 * abs(temperature, pressure)", 4);
    assert_eq!(e.message, "`abs` takes 1 argument, 2 given");
}

#[test]
fn a_syntax_error_points_into_the_expression() {
    let e = one_error_at("float", "degC", "temperature + * 2", 14);
    assert!(e.message.starts_with("syntax error"), "{e:#?}");
}

#[test]
fn derived_attributes_reading_each_other_in_a_cycle_are_an_error() {
    let text = config("float", "degC", "other + 1").replacen(
        "\n\n[[assets]]",
        "\nother = { type = \"float\", unit = \"degC\", expr = \"derived * 2\" }\n\n[[assets]]",
        1,
    );
    let errors = errors(&text);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].message.contains("cycle: derived → other → derived"),
        "{errors:#?}"
    );
    // prev() reads the previous value: no cycle.
    ok(&config("float", "bottle", "prev(derived) + delta(good_count)"));
}

#[test]
fn a_children_aggregate_needs_an_attribute_some_model_has() {
    let line = |expr: &str| {
        config("float", "degC", "temperature").replace(
            "[[assets]]\npath = \"line-1\"\nlevel = \"line\"",
            &format!("[models.Line.attributes]\ntotal = {{ type = \"uint\", unit = \"bottle\", expr = \"{expr}\" }}\n\n[[assets]]\npath = \"line-1\"\nlevel = \"line\"\nmodel = \"Line\""),
        )
    };
    ok(&line("sum(children.good_count)"));
    let found = errors(&line("sum(children.good_cnt)"));
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(
        found[0].message,
        "no model has an attribute `good_cnt` for `children.good_cnt`"
    );
    assert_eq!(found[0].hint.as_deref(), Some("did you mean `good_count`?"));
    let found = errors(&line("sum(children.state)"));
    assert!(found[0].message.contains("`sum` needs numbers"), "{found:#?}");
}

#[test]
fn a_derived_attribute_takes_no_binding() {
    let text = config("float", "degC", "temperature * 2")
        + "source = \"plc\"\nbindings.derived = { address = \"x\" }\n\n[[sources]]\nname = \"plc\"\nkind = \"simulator\"\n";
    let mut registry = backplane_engine::builtins();
    registry.add_stage("derive", Arc::new(backplane_derive::DeriveStageKind));
    let errors = backplane_config::load_str(&text, Path::new("plant.toml"), &registry.catalog())
        .expect_err("a binding of a derived attribute");
    assert!(
        errors
            .iter()
            .any(|e| e.message == "attribute `derived` of `Filler` is derived (`expr`) and takes no binding"),
        "{errors:#?}"
    );
}

#[test]
fn without_a_derive_stage_an_expression_is_an_error() {
    let errors = backplane_config::load_str(
        &config("float", "degC", "temperature * 2"),
        Path::new("plant.toml"),
        &Catalog::default(),
    )
    .expect_err("no checker");
    assert!(
        errors[0].message.contains("this build has no derive stage"),
        "{errors:#?}"
    );
}

#[test]
fn an_expression_nested_too_deep_is_refused_before_it_can_exhaust_a_stack() {
    let errors = errors(&config(
        "float",
        "degC",
        &format!("temperature{}", " + 1".repeat(100)),
    ));
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].message.contains("nests deeper than 64"), "{errors:#?}");
    let e = one_error_at(
        "float",
        "degC",
        &format!("{}temperature{}", "abs(".repeat(40), ")".repeat(40)),
        131,
    );
    assert!(e.message.contains("brackets nest deeper than 32"), "{e:#?}");
}

#[test]
fn the_documented_example_passes_the_check() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/derived.md")).unwrap();
    let example = doc
        .split("```toml\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    ok(&format!(
        "[gateway]\nname = \"t\"\n[namespace]\nenterprise = \"acme\"\nsite = \"p\"\n{example}"
    ));
}
