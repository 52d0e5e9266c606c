//! The pipeline's synchronous core, fed raw batches by hand: deadband, range check,
//! missing values, failed sources, context stamping.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::path::Path;
use std::sync::Arc;

use backplane_engine::context::ContextStore;
use backplane_engine::metrics::Metrics;
use backplane_engine::{LatestValues, Pipeline, PipelineInput, RawBatch, RawReading, Topology};
use backplane_model::{
    BadReason, ContextField, ContextPatch, Quality, Sample, Timestamp, UncertainReason, Value,
};

const CONFIG: &str = r#"
[namespace]
enterprise = "acme"
site = "plant"
[models.Tank.attributes]
level = { type = "float", unit = "%", range = [0, 100] }
temp = { type = "float", unit = "degC" }
count = { type = "uint", range = [0, 100] }
mode = { type = "string", enum = ["auto", "manual"] }
[[assets]]
path = "tank"
model = "Tank"
source = "plc"
bindings.level = { address = "lvl", scale = { raw = [0, 1000], eng = [0, 100] }, deadband = { percent = 1 } }
bindings.temp = { address = "t", unit = "degF", deadband = { absolute = 0.5 } }
bindings.count = { address = "c" }
bindings.mode = { address = "m" }
[[sources]]
name = "plc"
kind = "simulator"
signals.lvl = { signal = "constant", value = 0 }
signals.t = { signal = "constant", value = 0 }
signals.c = { signal = "constant", value = 0 }
signals.m = { signal = "constant", value = "auto" }
"#;

struct Fixture {
    topology: Arc<Topology>,
    contexts: Arc<ContextStore>,
    cache: Arc<LatestValues>,
    pipeline: Pipeline,
}

fn fixture() -> Fixture {
    let registry = backplane_engine::builtins();
    let plan = backplane_config::load_str(CONFIG, Path::new("t.toml"), &registry.catalog()).unwrap();
    let topology = Arc::new(Topology::new(plan));
    let contexts = Arc::new(ContextStore::new(&topology));
    let cache = Arc::new(LatestValues::new(topology.tags.len()));
    let metrics = Arc::new(Metrics::new(&["plc".into()], &[], "v"));
    let pipeline = Pipeline::new(topology.clone(), contexts.clone(), cache.clone(), metrics);
    Fixture {
        topology,
        contexts,
        cache,
        pipeline,
    }
}

impl Fixture {
    fn address(&self, name: &str) -> u32 {
        self.topology.sources[0]
            .addresses
            .iter()
            .position(|a| &**a == name)
            .unwrap() as u32
    }

    fn feed(&mut self, readings: &[(&str, Option<Value>, Quality)]) -> Vec<Sample> {
        let readings = readings
            .iter()
            .map(|(a, v, q)| RawReading {
                address: self.address(a),
                value: v.clone(),
                quality: *q,
                source_time: None,
            })
            .collect();
        let batch = RawBatch {
            source: 0,
            gateway_time: Timestamp::now(),
            readings,
        };
        self.pipeline
            .process(PipelineInput::Readings(batch))
            .map(|b| b.samples)
            .unwrap_or_default()
    }
}

#[test]
fn deadband_suppresses_small_changes_but_never_quality_changes() {
    let mut f = fixture();
    let good = Quality::Good;
    assert_eq!(f.feed(&[("lvl", Some(Value::UInt(500)), good)]).len(), 1);
    // 1 % of a 0..100 range is 1.0; 500 → 505 raw is 0.5 %.
    assert!(f.feed(&[("lvl", Some(Value::UInt(505)), good)]).is_empty());
    let moved = f.feed(&[("lvl", Some(Value::UInt(515)), good)]);
    assert_eq!(moved[0].value, Some(Value::Float(51.5)));
    // Same value, but quality changes: always reported.
    let bad = Quality::Bad(BadReason::DeviceFailure);
    let reported = f.feed(&[("lvl", Some(Value::UInt(515)), bad)]);
    assert_eq!(reported.len(), 1);
    assert_eq!(reported[0].quality, bad);
}

#[test]
fn values_outside_the_range_become_uncertain() {
    let mut f = fixture();
    let samples = f.feed(&[("lvl", Some(Value::UInt(1200)), Quality::Good)]);
    assert_eq!(samples[0].value, Some(Value::Float(120.0)));
    assert_eq!(
        samples[0].quality,
        Quality::Uncertain(UncertainReason::EngineeringUnitsExceeded)
    );
}

#[test]
fn unit_conversion_applies_before_the_absolute_deadband() {
    let mut f = fixture();
    let first = f.feed(&[("t", Some(Value::Float(212.0)), Quality::Good)]);
    assert!((first[0].value.as_ref().unwrap().as_f64().unwrap() - 100.0).abs() < 1e-9);
    // 0.8 °F is 0.44 °C: inside a 0.5 °C deadband.
    assert!(
        f.feed(&[("t", Some(Value::Float(212.8)), Quality::Good)])
            .is_empty()
    );
}

#[test]
fn a_reading_without_a_value_is_bad_and_keeps_the_last_value() {
    let mut f = fixture();
    f.feed(&[("lvl", Some(Value::UInt(100)), Quality::Good)]);
    let samples = f.feed(&[("lvl", None, Quality::Good)]);
    assert_eq!(samples[0].quality, Quality::Bad(BadReason::Unspecified));
    assert_eq!(samples[0].value, Some(Value::Float(10.0)));
}

#[test]
fn a_failed_source_turns_all_its_tags_bad_keeping_values() {
    let mut f = fixture();
    f.feed(&[("lvl", Some(Value::UInt(100)), Quality::Good)]);
    let down = PipelineInput::SourceDown {
        source: 0,
        quality: Quality::Bad(BadReason::CommFailure),
        time: Timestamp::from_unix_nanos(42),
    };
    let samples = f.pipeline.process(down).unwrap().samples;
    assert_eq!(samples.len(), 4, "every tag of the source");
    assert!(
        samples
            .iter()
            .all(|s| s.quality == Quality::Bad(BadReason::CommFailure))
    );
    assert!(
        samples
            .iter()
            .all(|s| s.gateway_time == Timestamp::from_unix_nanos(42))
    );
    let level = samples.iter().find(|s| s.value.is_some()).unwrap();
    assert_eq!(level.value, Some(Value::Float(10.0)));
    assert!(
        samples.iter().any(|s| s.value.is_none()),
        "a never-read tag has no value"
    );
}

#[test]
fn a_source_that_stays_down_is_reported_once_not_at_every_retry() {
    let mut f = fixture();
    let down = |at: i64| PipelineInput::SourceDown {
        source: 0,
        quality: Quality::Bad(BadReason::CommFailure),
        time: Timestamp::from_unix_nanos(at),
    };
    assert_eq!(f.pipeline.process(down(1)).unwrap().samples.len(), 4);
    // The supervisor's next failed attempts: nothing changed, nothing to say.
    assert!(f.pipeline.process(down(2)).is_none());
    assert!(f.pipeline.process(down(3)).is_none());
    // Read again, then down again: the tag read is reported bad again, the others not.
    f.feed(&[("lvl", Some(Value::UInt(100)), Quality::Good)]);
    let samples = f.pipeline.process(down(4)).unwrap().samples;
    assert_eq!(samples.len(), 1);
    assert_eq!(samples[0].value, Some(Value::Float(10.0)));
    assert_eq!(samples[0].gateway_time, Timestamp::from_unix_nanos(4));
    // Another reason is a change.
    let timeout = PipelineInput::SourceDown {
        source: 0,
        quality: Quality::Bad(BadReason::Timeout),
        time: Timestamp::from_unix_nanos(5),
    };
    assert_eq!(f.pipeline.process(timeout).unwrap().samples.len(), 4);
}

#[test]
fn samples_carry_the_context_effective_when_they_are_processed() {
    let mut f = fixture();
    let site = f.topology.asset_index("acme/plant").unwrap();
    let events = f.contexts.apply(
        &f.topology,
        site,
        &ContextPatch::default().set(ContextField::Batch, "B-1"),
        None,
    );
    assert_eq!(events.len(), 1);
    let samples = f.feed(&[("lvl", Some(Value::UInt(100)), Quality::Good)]);
    assert_eq!(samples[0].context.batch.as_deref(), Some("B-1"));
    let tank = f.topology.asset_index("acme/plant/tank").unwrap();
    f.contexts.apply(
        &f.topology,
        tank,
        &ContextPatch::default().set(ContextField::Batch, "B-2"),
        None,
    );
    let samples = f.feed(&[("lvl", Some(Value::UInt(900)), Quality::Good)]);
    assert_eq!(
        samples[0].context.batch.as_deref(),
        Some("B-2"),
        "the asset's own field wins"
    );
}

#[test]
fn integer_values_outside_the_range_become_uncertain_too() {
    let mut f = fixture();
    let samples = f.feed(&[("c", Some(Value::UInt(900)), Quality::Good)]);
    assert_eq!(
        samples[0].quality,
        Quality::Uncertain(UncertainReason::EngineeringUnitsExceeded)
    );
    let samples = f.feed(&[("c", Some(Value::UInt(90)), Quality::Good)]);
    assert_eq!(samples[0].quality, Quality::Good);
}

#[test]
fn labels_outside_the_attribute_enum_are_bad_with_the_reason() {
    let mut f = fixture();
    f.feed(&[("m", Some(Value::String("auto".into())), Quality::Good)]);
    let samples = f.feed(&[("m", Some(Value::String("jogging".into())), Quality::Good)]);
    assert_eq!(samples[0].quality, Quality::Bad(BadReason::ConfigError));
    assert_eq!(
        samples[0].value,
        Some(Value::String("auto".into())),
        "keeps the last good label"
    );
    let tag = f.topology.tag_by_path("acme/plant/tank/mode").unwrap().id;
    let latest = f.cache.get(tag).unwrap();
    assert!(latest.error.unwrap().contains("jogging"));
    assert_eq!(
        latest.raw,
        Some(Value::String("auto".into())),
        "the raw reading behind the kept value"
    );
}

#[test]
fn a_kept_value_keeps_the_raw_reading_that_produced_it() {
    let mut f = fixture();
    f.feed(&[("lvl", Some(Value::UInt(100)), Quality::Good)]);
    f.feed(&[("lvl", None, Quality::Good)]);
    let tag = f.topology.tag_by_path("acme/plant/tank/level").unwrap().id;
    let latest = f.cache.get(tag).unwrap();
    assert_eq!(latest.sample.value, Some(Value::Float(10.0)));
    assert_eq!(latest.raw, Some(Value::UInt(100)));
    assert_eq!(latest.error.as_deref(), Some("the source delivered no value"));

    // The next good reading brings its own raw reading, and the error goes.
    f.feed(&[("lvl", Some(Value::UInt(300)), Quality::Good)]);
    let latest = f.cache.get(tag).unwrap();
    assert_eq!(latest.sample.value, Some(Value::Float(30.0)));
    assert_eq!(latest.raw, Some(Value::UInt(300)));
    assert_eq!(latest.error, None);
}

#[test]
fn context_changes_apply_between_batches_in_queue_order() {
    let mut f = fixture();
    let site = f.topology.asset_index("acme/plant").unwrap();
    let before = f.feed(&[("lvl", Some(Value::UInt(100)), Quality::Good)]);
    let (reply, mut answer) = tokio::sync::oneshot::channel();
    let change = PipelineInput::SetContext {
        asset: site,
        patch: ContextPatch::default().set(ContextField::WorkOrder, "WO-2"),
        by: Some("mes".into()),
        reply,
    };
    let routed = f.pipeline.process(change).unwrap();
    assert_eq!(routed.events.len(), 1);
    assert_eq!(answer.try_recv().unwrap(), routed.events);
    let after = f.feed(&[("lvl", Some(Value::UInt(900)), Quality::Good)]);
    assert_eq!(before[0].context.work_order, None);
    assert_eq!(after[0].context.work_order.as_deref(), Some("WO-2"));
}

/// Readings out of address order (an OPC UA server's) take the pipeline's gathered path;
/// readings in order go straight through. Both must give the same samples and cache.
#[test]
fn readings_out_of_address_order_are_normalized_as_readings_in_order() {
    let good = Quality::Good;
    let batches: [&[(&str, Option<Value>, Quality)]; 3] = [
        &[
            ("lvl", Some(Value::UInt(500)), good),
            ("t", Some(Value::Float(50.0)), good),
            ("c", Some(Value::UInt(7)), good),
            ("m", Some(Value::String("auto".into())), good),
        ],
        // Inside the deadbands (level 0.5 %, temp 0.2 degC after conversion), one count
        // out of range and one label that is not in the enum.
        &[
            ("lvl", Some(Value::UInt(505)), good),
            ("t", Some(Value::Float(50.4)), good),
            ("c", Some(Value::UInt(700)), good),
            ("m", Some(Value::String("remote".into())), good),
        ],
        &[
            ("lvl", Some(Value::UInt(900)), good),
            ("t", None, good),
            ("c", Some(Value::UInt(8)), Quality::Bad(BadReason::DeviceFailure)),
            ("m", Some(Value::String("manual".into())), good),
        ],
    ];
    let mut in_order = fixture();
    let mut reversed = fixture();
    for batch in batches {
        let mut expected = in_order.feed(batch);
        let backwards: Vec<_> = batch.iter().rev().cloned().collect();
        let mut got = reversed.feed(&backwards);
        for samples in [&mut expected, &mut got] {
            samples.sort_by_key(|s| s.tag);
            for s in samples.iter_mut() {
                s.gateway_time = Timestamp::from_unix_nanos(0);
            }
        }
        assert_eq!(got, expected);
    }
    for tag in &in_order.topology.tags {
        let (a, b) = (in_order.cache.get(tag.id), reversed.cache.get(tag.id));
        let strip = |l: Option<backplane_engine::cache::Latest>| {
            l.map(|mut l| {
                l.sample.gateway_time = Timestamp::from_unix_nanos(0);
                l
            })
        };
        assert_eq!(strip(a), strip(b), "{}", in_order.topology.path(tag));
    }
}
