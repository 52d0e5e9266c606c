//! Samples a stage derives (derived attributes) flow like read ones: stamped with their
//! asset's context, recorded in the cache with their derivation, routed with the batch,
//! and seen by the stages after the one that derived them. The engine knows no formula:
//! these stages are test doubles.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::path::Path;
use std::sync::{Arc, Mutex};

use backplane_connector::{Derivation, DerivationInput, Derived, Stage};
use backplane_engine::context::ContextStore;
use backplane_engine::metrics::Metrics;
use backplane_engine::{LatestValues, Pipeline, PipelineInput, RawBatch, RawReading, Topology};
use backplane_model::{Quality, Sample, TagId, Timestamp, Value};

const CONFIG: &str = r#"
[namespace]
enterprise = "acme"
site = "plant"
[models.Tank.attributes]
level = { type = "float", unit = "%" }
double = { type = "float", unit = "%" }
[[assets]]
path = "tank"
model = "Tank"
source = "plc"
context = { lot = "L-1" }
bindings.level = { address = "lvl" }
[[sources]]
name = "plc"
kind = "simulator"
signals.lvl = { signal = "constant", value = 0 }
"#;

/// Derives `double = 2 × level` for every level sample.
#[derive(Debug)]
struct Doubler {
    level: TagId,
    double: TagId,
}

impl Stage for Doubler {
    fn observe(&mut self, samples: &[Sample], out: &mut Derived) {
        for s in samples.iter().filter(|s| s.tag == self.level) {
            let x = s.value.as_ref().and_then(Value::as_f64).unwrap();
            out.samples.push((
                Sample {
                    tag: self.double,
                    value: Some(Value::Float(2.0 * x)),
                    quality: s.quality,
                    source_time: None,
                    gateway_time: s.gateway_time,
                    context: Default::default(),
                },
                Arc::new(Derivation {
                    expression: "level * 2".into(),
                    inputs: vec![DerivationInput {
                        path: "acme/plant/tank/level".into(),
                        role: None,
                        value: s.value.clone(),
                        quality: s.quality,
                        quality_reason: None,
                        time: Some(s.gateway_time),
                    }],
                    error: None,
                }),
            ));
        }
    }
}

/// Records the tags it observes.
#[derive(Debug)]
struct Witness(Arc<Mutex<Vec<TagId>>>);

impl Stage for Witness {
    fn observe(&mut self, samples: &[Sample], _out: &mut Derived) {
        self.0.lock().unwrap().extend(samples.iter().map(|s| s.tag));
    }
}

#[test]
fn a_derived_sample_is_stamped_cached_with_its_derivation_routed_and_seen_by_later_stages() {
    let registry = backplane_engine::builtins();
    let plan = backplane_config::load_str(CONFIG, Path::new("t.toml"), &registry.catalog()).unwrap();
    let topology = Arc::new(Topology::new(plan));
    let contexts = Arc::new(ContextStore::new(&topology));
    let cache = Arc::new(LatestValues::new(topology.tags.len()));
    let metrics = Arc::new(Metrics::new(&["plc".into()], &[], "v"));
    let mut pipeline = Pipeline::new(topology.clone(), contexts, cache.clone(), metrics);
    let level = topology.tag_by_path("acme/plant/tank/level").unwrap().id;
    let double = topology.tag_by_path("acme/plant/tank/double").unwrap().id;
    let seen = Arc::new(Mutex::new(Vec::new()));
    pipeline.add_stage(Box::new(Doubler { level, double }));
    pipeline.add_stage(Box::new(Witness(seen.clone())));

    let batch = pipeline
        .process(PipelineInput::Readings(RawBatch {
            source: 0,
            gateway_time: Timestamp::now(),
            readings: vec![RawReading {
                address: 0,
                value: Some(Value::Float(21.0)),
                quality: Quality::Good,
                source_time: None,
            }],
        }))
        .unwrap();

    let tags: Vec<TagId> = batch.samples.iter().map(|s| s.tag).collect();
    assert_eq!(
        tags,
        vec![level, double],
        "routed with the batch, after its input"
    );
    let derived = &batch.samples[1];
    assert_eq!(derived.value, Some(Value::Float(42.0)));
    assert_eq!(
        derived.context.lot.as_deref(),
        Some("L-1"),
        "stamped with its asset's context"
    );
    let latest = cache.get(double).expect("cached");
    assert_eq!(latest.sample.value, Some(Value::Float(42.0)));
    assert_eq!(
        &*latest.derivation.expect("with its derivation").expression,
        "level * 2"
    );
    assert_eq!(
        *seen.lock().unwrap(),
        vec![level, double],
        "the later stage saw it"
    );
}
