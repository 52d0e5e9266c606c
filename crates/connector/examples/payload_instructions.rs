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

use backplane_connector::payload::{SampleEncoder, SamplePayload};
use backplane_model::{Context, Timestamp, Value};

#[path = "../benches/fixture/mod.rs"]
mod fixture;

fn main() {
    let mode = std::env::args()
        .nth(1)
        .expect("mode: enc, enc_ctx, serde, serde_ctx, ts or none");
    let n: u64 = std::env::args()
        .nth(2)
        .expect("number of samples")
        .parse()
        .unwrap();
    let (topology, mut sample) = fixture::setup(if mode.ends_with("ctx") {
        fixture::typical_context()
    } else {
        Context::default()
    });
    let encoder = SampleEncoder::new(topology.clone());
    let mut buf = Vec::with_capacity(1024);
    let mut total = 0usize;
    for i in 0..n {
        sample.gateway_time =
            Timestamp::from_unix_nanos(fixture::GATEWAY_TIME + (i as i64 / 125) * 1_000_000);
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
