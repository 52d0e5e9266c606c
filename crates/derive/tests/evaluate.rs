//! The derive stage on its own: samples in, derived samples out, with quality, windows,
//! children aggregates and each value's derivation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;

use backplane_connector::{Derivation, Derived, Stage, Topology};
use backplane_derive::stage::DeriveStage;
use backplane_model::{BadReason, Quality, Sample, Timestamp, UncertainReason, Value};
use prometheus_client::metrics::counter::Counter;

const CONFIG: &str = r#"
[gateway]
name = "t"
[namespace]
enterprise = "acme"
site = "p"

[models.Filler.attributes]
state = { type = "string", enum = ["stopped", "running", "fault"] }
good_count = { type = "uint", unit = "bottle" }
temperature = { type = "float", unit = "degC" }
rate = { type = "float", unit = "bottle/min", expr = "delta(good_count) / dt_min" }
per_second = { type = "float", unit = "bottle/s", expr = "rate(good_count)" }
doubled = { type = "float", unit = "bottle/min", expr = "rate * 2" }
mean_temp = { type = "float", unit = "degC", expr = "mean(temperature, '1m')" }
max_temp = { type = "float", unit = "degC", expr = "max(temperature, '1m')" }
running = { type = "float", unit = "s", expr = "time_in_state(state, 'running', '1h')" }
hot = { type = "bool", expr = "temperature > 80.0 && state == 'running'" }
inverse = { type = "float", expr = "1 / temperature" }
small = { type = "int", expr = "temperature * 1e300 * 1e300" }

[models.Line.attributes]
total = { type = "uint", unit = "bottle", expr = "sum(children.good_count)" }
line_rate = { type = "float", unit = "bottle/min", expr = "sum(children.rate)" }
fillers = { type = "uint", expr = "count(children.good_count)" }

[[assets]]
path = "line-1"
level = "line"
model = "Line"

[[assets]]
path = "line-1/filler-a"
model = "Filler"

[[assets]]
path = "line-1/filler-b"
model = "Filler"
"#;

struct Plant {
    topology: Topology,
    stage: DeriveStage,
    errors: Counter,
    bad_inputs: Counter,
}

const T0: i64 = 1_700_000_000_000_000_000;

impl Plant {
    fn new() -> Plant {
        let mut registry = backplane_engine::builtins();
        registry.add_stage("derive", Arc::new(backplane_derive::DeriveStageKind));
        let plan = backplane_config::load_str(CONFIG, Path::new("plant.toml"), &registry.catalog())
            .unwrap_or_else(|e| panic!("{e:#?}"));
        let topology = Topology::new(plan);
        let (compiled, problems) = backplane_derive::compile_models(&topology.plan.models);
        assert!(problems.is_empty(), "{problems:?}");
        let (errors, bad_inputs) = (Counter::default(), Counter::default());
        let stage = DeriveStage::new(
            &topology,
            &|m, i| compiled.get(&(m.to_owned(), i)).cloned(),
            errors.clone(),
            bad_inputs.clone(),
        );
        Plant {
            topology,
            stage,
            errors,
            bad_inputs,
        }
    }

    /// Feeds one batch at `secs` after T0; returns what the stage derived, by path.
    fn feed(
        &mut self,
        secs: f64,
        readings: &[(&str, Option<Value>, Quality)],
    ) -> Vec<(String, Sample, Arc<Derivation>)> {
        let time = Timestamp::from_unix_nanos(T0 + (secs * 1e9) as i64);
        let samples: Vec<Sample> = readings
            .iter()
            .map(|(path, value, quality)| Sample {
                tag: self
                    .topology
                    .tag_by_path(&format!("acme/p/{path}"))
                    .unwrap_or_else(|| panic!("{path}"))
                    .id,
                value: value.clone(),
                quality: *quality,
                source_time: None,
                gateway_time: time,
                context: Default::default(),
            })
            .collect();
        let mut out = Derived::default();
        self.stage.observe(&samples, &mut out);
        out.samples
            .into_iter()
            .map(|(s, d)| {
                let path = self.topology.path(self.topology.tag(s.tag).unwrap()).to_string();
                (path.trim_start_matches("acme/p/").to_owned(), s, d)
            })
            .collect()
    }
}

fn good(path: &str, v: Value) -> (&str, Option<Value>, Quality) {
    (path, Some(v), Quality::Good)
}

fn find<'a>(
    out: &'a [(String, Sample, Arc<Derivation>)],
    path: &str,
) -> &'a (String, Sample, Arc<Derivation>) {
    out.iter()
        .find(|(p, _, _)| p == path)
        .unwrap_or_else(|| panic!("no {path} in {:?}", out.iter().map(|o| &o.0).collect::<Vec<_>>()))
}

#[test]
fn a_rate_from_a_counter_waits_for_a_previous_value_then_is_good() {
    let mut plant = Plant::new();
    let out = plant.feed(0.0, &[good("line-1/filler-a/good_count", Value::UInt(100))]);
    let (_, first, d) = find(&out, "line-1/filler-a/rate");
    assert_eq!(first.quality, Quality::Bad(BadReason::WaitingForInitialData));
    assert!(d.error.as_deref().unwrap().contains("no previous value"), "{d:?}");
    // 160 bottles 2 minutes later: 80/min, 4/3 per second, and `doubled` reads `rate`.
    let out = plant.feed(120.0, &[good("line-1/filler-a/good_count", Value::UInt(260))]);
    let (_, rate, d) = find(&out, "line-1/filler-a/rate");
    assert_eq!(
        (rate.value.clone(), rate.quality),
        (Some(Value::Float(80.0)), Quality::Good)
    );
    assert_eq!(&*d.expression, "delta(good_count) / dt_min");
    let (_, per_second, _) = find(&out, "line-1/filler-a/per_second");
    assert_eq!(per_second.value, Some(Value::Float(160.0 / 120.0)));
    let (_, doubled, _) = find(&out, "line-1/filler-a/doubled");
    assert_eq!(doubled.value, Some(Value::Float(160.0)));
    // `doubled` comes after `rate` in the batch: dependency order.
    let pos = |p: &str| out.iter().position(|(q, _, _)| q == p).unwrap();
    assert!(pos("line-1/filler-a/rate") < pos("line-1/filler-a/doubled"));
}

#[test]
fn the_derivation_names_the_expression_and_each_input_with_value_time_and_quality() {
    let mut plant = Plant::new();
    plant.feed(0.0, &[good("line-1/filler-a/good_count", Value::UInt(100))]);
    let out = plant.feed(60.0, &[good("line-1/filler-a/good_count", Value::UInt(130))]);
    let (_, _, d) = find(&out, "line-1/filler-a/rate");
    let now = d.inputs.iter().find(|i| i.role.is_none()).unwrap();
    assert_eq!(&*now.path, "acme/p/line-1/filler-a/good_count");
    assert_eq!(now.value, Some(Value::UInt(130)));
    assert_eq!(now.quality, Quality::Good);
    assert_eq!(now.time, Some(Timestamp::from_unix_nanos(T0 + 60_000_000_000)));
    let prev = d
        .inputs
        .iter()
        .find(|i| i.role.as_deref() == Some("prev"))
        .unwrap();
    assert_eq!(prev.value, Some(Value::Float(100.0)));
    assert_eq!(prev.time, Some(Timestamp::from_unix_nanos(T0)));
    let json = serde_json::to_value(&**d).unwrap();
    assert_eq!(json["expression"], "delta(good_count) / dt_min");
    assert_eq!(json["inputs"][0]["quality"], "good");
}

#[test]
fn a_bad_input_makes_a_bad_result_with_the_inputs_reason_and_an_uncertain_one_an_uncertain_result() {
    let mut plant = Plant::new();
    let out = plant.feed(
        0.0,
        &[(
            "line-1/filler-a/temperature",
            Some(Value::Float(90.0)),
            Quality::Bad(BadReason::CommFailure),
        )],
    );
    let (_, s, d) = find(&out, "line-1/filler-a/inverse");
    assert_eq!(s.quality, Quality::Bad(BadReason::CommFailure));
    assert!(
        d.error.as_deref().unwrap().contains("is bad (comm_failure)"),
        "{d:?}"
    );
    assert_eq!(plant.errors.get(), 0, "a bad input is no evaluation error");
    assert!(plant.bad_inputs.get() > 0);
    let out = plant.feed(
        1.0,
        &[(
            "line-1/filler-a/temperature",
            Some(Value::Float(50.0)),
            Quality::Uncertain(UncertainReason::LastUsableValue),
        )],
    );
    let (_, s, _) = find(&out, "line-1/filler-a/inverse");
    assert_eq!(
        (s.value.clone(), s.quality),
        (
            Some(Value::Float(0.02)),
            Quality::Uncertain(UncertainReason::LastUsableValue)
        )
    );
    // `hot` is false from the temperature alone (`&&` stops there): the state, which has
    // no value yet, is not needed.
    let (_, hot, d) = find(&out, "line-1/filler-a/hot");
    assert_eq!(
        (hot.value.clone(), hot.quality),
        (
            Some(Value::Bool(false)),
            Quality::Uncertain(UncertainReason::LastUsableValue)
        )
    );
    assert_eq!(d.inputs.len(), 1);
    let out = plant.feed(2.0, &[good("line-1/filler-a/temperature", Value::Float(90.0))]);
    let (_, hot, d) = find(&out, "line-1/filler-a/hot");
    assert_eq!(
        hot.quality,
        Quality::Bad(BadReason::WaitingForInitialData),
        "{d:?}"
    );
}

#[test]
fn division_by_zero_and_overflow_are_bad_counted_and_keep_the_last_value() {
    let mut plant = Plant::new();
    let out = plant.feed(0.0, &[good("line-1/filler-a/temperature", Value::Float(4.0))]);
    assert_eq!(
        find(&out, "line-1/filler-a/inverse").1.value,
        Some(Value::Float(0.25))
    );
    let out = plant.feed(1.0, &[good("line-1/filler-a/temperature", Value::Float(0.0))]);
    let (_, s, d) = find(&out, "line-1/filler-a/inverse");
    assert_eq!(s.quality, Quality::Bad(BadReason::OutOfRange));
    assert_eq!(s.value, Some(Value::Float(0.25)), "the last good value is kept");
    assert!(
        d.error.as_deref().unwrap().starts_with("division by zero"),
        "{d:?}"
    );
    let (_, small, d) = find(&out, "line-1/filler-a/small");
    assert_eq!(small.quality, Quality::Good, "0 × huge is 0");
    assert_eq!(small.value, Some(Value::Int(0)), "{d:?}");
    let out = plant.feed(2.0, &[good("line-1/filler-a/temperature", Value::Float(2.0))]);
    let (_, small, d) = find(&out, "line-1/filler-a/small");
    assert_eq!(small.quality, Quality::Bad(BadReason::OutOfRange));
    assert!(d.error.as_deref().unwrap().starts_with("overflow"), "{d:?}");
    // 4 °C × 1e600 at the start, the division by zero, the overflow.
    assert_eq!(plant.errors.get(), 3);
}

#[test]
fn windows_aggregate_the_values_of_their_width_only() {
    let mut plant = Plant::new();
    let t = |v: f64| good("line-1/filler-a/temperature", Value::Float(v));
    plant.feed(0.0, &[t(10.0)]);
    let out = plant.feed(30.0, &[t(20.0)]);
    assert_eq!(
        find(&out, "line-1/filler-a/mean_temp").1.value,
        Some(Value::Float(15.0))
    );
    assert_eq!(
        find(&out, "line-1/filler-a/max_temp").1.value,
        Some(Value::Float(20.0))
    );
    // 90 s on, the first two values have left the 1-minute window.
    let out = plant.feed(90.0, &[t(5.0)]);
    assert_eq!(
        find(&out, "line-1/filler-a/mean_temp").1.value,
        Some(Value::Float(5.0))
    );
    assert_eq!(
        find(&out, "line-1/filler-a/max_temp").1.value,
        Some(Value::Float(5.0))
    );
}

#[test]
fn time_in_state_counts_the_seconds_spent_in_the_state() {
    let mut plant = Plant::new();
    let s = |v: &str| good("line-1/filler-a/state", Value::String(v.into()));
    let out = plant.feed(0.0, &[s("running")]);
    assert_eq!(
        find(&out, "line-1/filler-a/running").1.value,
        Some(Value::Float(0.0))
    );
    plant.feed(100.0, &[s("fault")]);
    let out = plant.feed(130.0, &[s("running")]);
    let out2 = plant.feed(150.0, &[s("running")]);
    assert_eq!(
        find(&out, "line-1/filler-a/running").1.value,
        Some(Value::Float(100.0))
    );
    assert_eq!(
        find(&out2, "line-1/filler-a/running").1.value,
        Some(Value::Float(120.0))
    );
    // A state the source cannot read: the time in state is not known to be right.
    let unread = (
        "line-1/filler-a/state",
        Some(Value::String("running".into())),
        Quality::Bad(BadReason::CommFailure),
    );
    let out = plant.feed(160.0, &[unread]);
    assert_eq!(
        find(&out, "line-1/filler-a/running").1.quality,
        Quality::Bad(BadReason::CommFailure)
    );
}

#[test]
fn a_line_total_sums_its_fillers_and_turns_bad_with_a_bad_filler() {
    let mut plant = Plant::new();
    let out = plant.feed(0.0, &[good("line-1/filler-a/good_count", Value::UInt(100))]);
    let (_, total, d) = find(&out, "line-1/total");
    assert_eq!(
        total.quality,
        Quality::Bad(BadReason::WaitingForInitialData),
        "filler-b has no count yet"
    );
    assert!(
        d.error.as_deref().unwrap().contains("filler-b/good_count"),
        "{d:?}"
    );
    assert_eq!(find(&out, "line-1/fillers").1.value, Some(Value::UInt(1)));
    let out = plant.feed(1.0, &[good("line-1/filler-b/good_count", Value::UInt(50))]);
    let (_, total, d) = find(&out, "line-1/total");
    assert_eq!(
        (total.value.clone(), total.quality),
        (Some(Value::UInt(150)), Quality::Good)
    );
    assert_eq!(d.inputs.len(), 2);
    assert_eq!(find(&out, "line-1/fillers").1.value, Some(Value::UInt(2)));
    let out = plant.feed(
        2.0,
        &[(
            "line-1/filler-b/good_count",
            Some(Value::UInt(50)),
            Quality::Bad(BadReason::Timeout),
        )],
    );
    let (_, total, _) = find(&out, "line-1/total");
    assert_eq!(total.quality, Quality::Bad(BadReason::Timeout));
    assert_eq!(
        find(&out, "line-1/fillers").1.value,
        Some(Value::UInt(1)),
        "count counts usable values"
    );
}

#[test]
fn a_line_aggregate_of_derived_children_follows_them_in_the_same_batch() {
    let mut plant = Plant::new();
    plant.feed(
        0.0,
        &[
            good("line-1/filler-a/good_count", Value::UInt(0)),
            good("line-1/filler-b/good_count", Value::UInt(0)),
        ],
    );
    let out = plant.feed(
        60.0,
        &[
            good("line-1/filler-a/good_count", Value::UInt(30)),
            good("line-1/filler-b/good_count", Value::UInt(12)),
        ],
    );
    let (_, line_rate, _) = find(&out, "line-1/line_rate");
    assert_eq!(
        (line_rate.value.clone(), line_rate.quality),
        (Some(Value::Float(42.0)), Quality::Good)
    );
}

#[test]
fn samples_of_tags_no_expression_reads_derive_nothing() {
    let mut plant = Plant::new();
    assert_eq!(plant.stage.len(), 2 * 9 + 3);
    assert!(plant.feed(0.0, &[]).is_empty());
    // Nothing reads the line's total.
    assert!(
        plant
            .feed(1.0, &[good("line-1/total", Value::UInt(5))])
            .is_empty()
    );
    let out = plant.feed(2.0, &[good("line-1/filler-a/temperature", Value::Float(5.0))]);
    let mut paths: Vec<&str> = out.iter().map(|(p, _, _)| p.as_str()).collect();
    paths.sort_unstable();
    let readers =
        ["hot", "inverse", "max_temp", "mean_temp", "small"].map(|a| format!("line-1/filler-a/{a}"));
    assert_eq!(
        paths,
        readers.iter().map(String::as_str).collect::<Vec<_>>(),
        "only what reads the temperature"
    );
}
