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

/// Random token soup through the whole checker, and what it accepts through the stage
/// with odd inputs: never a panic, always a verdict.
#[test]
fn random_expressions_get_a_verdict_and_never_a_panic() {
    const TOKENS: &[&str] = &[
        "good_count",
        "temperature",
        "state",
        "derived",
        "children",
        ".",
        "good_count",
        "dt",
        "dt_min",
        "(",
        ")",
        ",",
        "+",
        "-",
        "*",
        "/",
        "%",
        "==",
        "<",
        "&&",
        "||",
        "!",
        "?",
        ":",
        "1",
        "0",
        "2.5",
        "1e308",
        "'running'",
        "'5m'",
        "'0s'",
        "prev(",
        "delta(",
        "rate(",
        "mean(",
        "min(",
        "max(",
        "sum(",
        "count(",
        "time_in_state(",
        "abs(",
        "[",
        "]",
        "{",
        "}",
        "null",
        "true",
        "x.all(y, y)",
        "has(",
        "size(",
        "\"",
    ];
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let mut accepted = 0;
    for round in 0..600 {
        let expr = if round % 2 == 0 {
            let len = 1 + next(12);
            let expr: Vec<&str> = (0..len).map(|_| TOKENS[next(TOKENS.len())]).collect();
            expr.join(" ").replace('"', "'")
        } else {
            number(&mut next, 4)
        };
        let text = config("float", "", &expr).replace(r#", unit = """#, "");
        match backplane_config::load_str(&text, Path::new("plant.toml"), &catalog()) {
            Ok(plan) => {
                accepted += 1;
                evaluate_a_few_times(plan);
            }
            Err(errors) => assert!(
                errors
                    .iter()
                    .all(|e| e.location.line == 11 && !e.message.is_empty()),
                "{expr}: {errors:#?}"
            ),
        }
    }
    // The grammar's half is mostly well typed: the stage ran on those.
    assert!(accepted > 100, "{accepted}");
}

/// A random numeric expression over the test model, `depth` levels at most.
fn number(next: &mut dyn FnMut(usize) -> usize, depth: usize) -> String {
    const LEAVES: &[&str] = &[
        "good_count",
        "temperature",
        "pressure",
        "dt",
        "dt_min",
        "0",
        "1",
        "2.5",
        "1e308",
        "prev(temperature)",
        "delta(good_count)",
        "rate(good_count)",
        "mean(temperature, '5m')",
        "max(pressure, '1s')",
        "time_in_state(state, 'running', '1m')",
        "prev(derived)",
    ];
    if depth == 0 || next(3) == 0 {
        return LEAVES[next(LEAVES.len())].to_owned();
    }
    let (a, b) = (number(next, depth - 1), number(next, depth - 1));
    match next(7) {
        0 => format!("({a} + {b})"),
        1 => format!("({a} - {b})"),
        2 => format!("({a} * {b})"),
        3 => format!("({a} / {b})"),
        4 => format!("abs({a})"),
        5 => format!("min({a}, {b})"),
        _ => format!("({a} > {b} && state == 'running' ? {a} : {b})"),
    }
}

/// Feeds the filler's inputs zero, huge, negative and bad values; the derived attribute
/// always comes out, with a quality.
fn evaluate_a_few_times(plan: backplane_config::Plan) {
    use backplane_connector::{Derived, Stage, Topology};
    use backplane_model::{BadReason, Quality, Sample, Timestamp, Value};
    let topology = Topology::new(plan);
    let (compiled, problems) = backplane_derive::compile_models(&topology.plan.models);
    assert!(problems.is_empty());
    let mut stage = backplane_derive::stage::DeriveStage::new(
        &topology,
        &|m, i| compiled.get(&(m.to_owned(), i)).cloned(),
        Default::default(),
        Default::default(),
    );
    let tag = |a: &str| {
        topology
            .tag_by_path(&format!("acme/p/line-1/filler/{a}"))
            .unwrap()
            .id
    };
    let values: [(f64, Quality); 4] = [
        (0.0, Quality::Good),
        (1e308, Quality::Good),
        (-1.0, Quality::Bad(BadReason::CommFailure)),
        (7.0, Quality::Good),
    ];
    for (i, (x, quality)) in values.into_iter().enumerate() {
        let time = Timestamp::from_unix_nanos(1_700_000_000_000_000_000 + i as i64 * 1_000_000_000);
        let sample = |tag, value| Sample {
            tag,
            value: Some(value),
            quality,
            source_time: None,
            gateway_time: time,
            context: Default::default(),
        };
        let samples = vec![
            sample(tag("good_count"), Value::UInt(x.max(0.0) as u64)),
            sample(tag("temperature"), Value::Float(x)),
            sample(tag("pressure"), Value::Float(x)),
            sample(
                tag("state"),
                Value::String(if i % 2 == 0 { "running" } else { "stopped" }.into()),
            ),
        ];
        let mut out = Derived::default();
        stage.observe(&samples, &mut out);
        assert_eq!(out.samples.len(), 1);
    }
}

#[test]
fn an_expression_that_reads_no_input_is_refused_as_never_computed() {
    for expr in ["42", "dt * 2", "prev(derived) + 1"] {
        let e = one_error_at("float", "degC", expr, 0);
        assert!(e.message.contains("would never be computed"), "{expr}: {e:#?}");
    }
}
