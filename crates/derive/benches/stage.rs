//! The derive stage's cost per evaluation: 1000 fillers, each with a rate from its counter
//! and a 5-minute mean of it, one counter sample per filler per batch.
#![allow(clippy::panic)] // a benchmark whose set-up fails has nothing to measure

use std::path::Path;
use std::sync::Arc;

use backplane_connector::{Derived, Stage, Topology};
use backplane_derive::stage::DeriveStage;
use backplane_model::{Quality, Sample, Timestamp, Value};
use criterion::{Criterion, criterion_group, criterion_main};
use prometheus_client::metrics::counter::Counter;

const FILLERS: usize = 1000;

fn config() -> String {
    let mut text = String::from(
        r#"[gateway]
name = "bench"
[namespace]
enterprise = "acme"
site = "p"
[models.Filler.attributes]
good_count = { type = "uint", unit = "bottle" }
rate = { type = "float", unit = "bottle/min", expr = "delta(good_count) / dt_min" }
mean_rate = { type = "float", unit = "bottle/min", expr = "mean(rate, '5m')" }
[models.Line.attributes]
total = { type = "uint", unit = "bottle", expr = "sum(children.good_count)" }
[[assets]]
path = "line"
level = "line"
model = "Line"
"#,
    );
    for i in 0..FILLERS {
        text.push_str(&format!(
            "[[assets]]\npath = \"line/filler-{i}\"\nmodel = \"Filler\"\n"
        ));
    }
    text
}

fn stage(c: &mut Criterion) {
    let mut registry = backplane_engine::builtins();
    registry.add_stage("derive", Arc::new(backplane_derive::DeriveStageKind));
    let plan = backplane_config::load_str(&config(), Path::new("bench.toml"), &registry.catalog())
        .unwrap_or_else(|e| panic!("{e:#?}"));
    let topology = Topology::new(plan);
    let (compiled, _) = backplane_derive::compile_models(&topology.plan.models);
    let mut stage = DeriveStage::new(
        &topology,
        &|m, i| compiled.get(&(m.to_owned(), i)).cloned(),
        Counter::default(),
        Counter::default(),
    );
    let tags: Vec<_> = (0..FILLERS)
        .map(|i| {
            topology
                .tag_by_path(&format!("acme/p/line/filler-{i}/good_count"))
                .map(|t| t.id)
        })
        .collect::<Option<_>>()
        .unwrap_or_default();
    let mut n: u64 = 0;
    let mut out = Derived::default();
    // Per batch: 1000 rates, 1000 means and the line total (one sum over 1000 children).
    c.bench_function("derive: batch of 1000 counters (2001 derived values)", |b| {
        b.iter(|| {
            n += 1;
            let time = Timestamp::from_unix_nanos(1_700_000_000_000_000_000 + n as i64 * 100_000_000);
            let samples: Vec<Sample> = tags
                .iter()
                .map(|&tag| Sample {
                    tag,
                    value: Some(Value::UInt(n * 3)),
                    quality: Quality::Good,
                    source_time: None,
                    gateway_time: time,
                    context: Default::default(),
                })
                .collect();
            stage.observe(&samples, &mut out);
            out.samples.clear();
        })
    });
}

criterion_group!(benches, stage);
criterion_main!(benches);
