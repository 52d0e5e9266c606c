//! A fixed number of sample payloads, for instruction counts under callgrind (repeatable
//! where times on a shared machine are not): run it with N = 0 and N = 10 000 and divide
//! the difference by 10 000. Modes: `enc`, `enc_ctx` (SampleEncoder, empty context or a
//! work order, product and shift), `serde`, `serde_ctx` (SamplePayload through serde_json),
//! `ts` (one RFC 3339 text), `none` (the loop alone). The gateway time changes every 125
//! samples, as in a poll of 125-register blocks.
//!
//!     cargo build --profile bench -p backplane-connector --example payload_instructions
//!     valgrind --tool=callgrind $CARGO_TARGET_DIR/release/examples/payload_instructions enc 10000

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // fixed, known-good inputs
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use backplane_config::Catalog;
use backplane_connector::Topology;
use backplane_connector::payload::{SampleEncoder, SamplePayload};
use backplane_model::{Context, Quality, Sample, Timestamp, Value};

const CONFIG: &str = r#"
[gateway]
name = "edge"
[namespace]
enterprise = "acme-dairy"
site = "plant-a"
[models.Filler.attributes]
product_temperature = { type = "float", unit = "degC" }
[[assets]]
path = "packaging"
level = "area"
[[assets]]
path = "packaging/line-1"
level = "line"
[[assets]]
path = "packaging/line-1/filler"
model = "Filler"
"#;

fn main() {
    let mode = std::env::args()
        .nth(1)
        .expect("mode: enc, enc_ctx, serde, serde_ctx, ts or none");
    let n: u64 = std::env::args()
        .nth(2)
        .expect("number of samples")
        .parse()
        .unwrap();
    let plan = backplane_config::load_str(CONFIG, Path::new("bench.toml"), &Catalog::default()).unwrap();
    let topology = Arc::new(Topology::new(plan));
    let context = Context {
        work_order: Some("WO-1001".into()),
        product: Some("milk-1l".into()),
        shift: Some("A".into()),
        ..Context::default()
    };
    let mut sample = Sample {
        tag: topology.tags[0].id,
        value: Some(Value::Float(4.1666)),
        quality: Quality::Good,
        source_time: None,
        gateway_time: Timestamp::from_unix_nanos(1_795_000_000_500_183_000),
        context: Arc::new(if mode.ends_with("ctx") {
            context
        } else {
            Context::default()
        }),
    };
    let encoder = SampleEncoder::new(topology.clone());
    let mut buf = Vec::with_capacity(1024);
    let mut total = 0usize;
    for i in 0..n {
        sample.gateway_time =
            Timestamp::from_unix_nanos(1_795_000_000_500_183_000 + (i as i64 / 125) * 1_000_000);
        sample.value = Some(Value::Float(4.1666 + i as f64 * 0.01));
        buf.clear();
        match mode.as_str() {
            "serde" | "serde_ctx" => {
                let payload = SamplePayload::new(&topology, black_box(&sample))
                    .unwrap()
                    .with_seq(Some(1_234_567 + i), false);
                serde_json::to_writer(&mut buf, &payload).unwrap();
            }
            "enc" | "enc_ctx" => {
                encoder.write(black_box(&sample), Some(1_234_567 + i), false, &mut buf);
            }
            "ts" => {
                total += black_box(sample.gateway_time).rfc3339().as_bytes().len();
            }
            _ => {}
        }
        total += buf.len();
    }
    println!("{total}");
}
