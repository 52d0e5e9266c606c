//! One sample's JSON payload, as the MQTT UNS and NATS sinks make it per message: the
//! serde reference (`SamplePayload` through `serde_json`, what the sinks did before) and
//! the shared `SampleEncoder`, both into a reused buffer and as an MQTT message needs it
//! (topic string and payload allocated per message, the way `attribute_message` makes
//! them); and a timestamp's RFC 3339 text, through the `time` crate and on its own.
//!
//! Run: `cargo bench -p backplane-connector --bench payload` (time per sample).
//!
//! The sample is a Modbus-like reading: a float in degC, good, no source time, a gateway
//! time with microseconds, a stream number, on a five-level ISA-95 path; once with an
//! empty context and once with a work order, product and shift.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // fixed, known-good inputs

use std::hint::black_box;

use backplane_connector::payload::{SampleEncoder, SamplePayload};
use backplane_model::{Context, Timestamp};
use criterion::{Criterion, criterion_group, criterion_main};

mod fixture;
use fixture::{GATEWAY_TIME, setup, typical_context};

fn bench_sample(c: &mut Criterion) {
    let typical = typical_context();
    for (name, context) in [("empty_context", Context::default()), ("context", typical)] {
        let (topology, sample) = setup(context);
        let encoder = SampleEncoder::new(topology.clone());
        let seq = Some(1_234_567u64);
        let mut group = c.benchmark_group(format!("sample_json/{name}"));
        let mut buf = Vec::with_capacity(1024);
        group.bench_function("serde", |b| {
            b.iter(|| {
                buf.clear();
                let payload = SamplePayload::new(&topology, black_box(&sample))
                    .unwrap()
                    .with_seq(seq, false);
                serde_json::to_writer(&mut buf, &payload).unwrap();
                black_box(buf.len())
            })
        });
        group.bench_function("encoder", |b| {
            b.iter(|| {
                buf.clear();
                encoder.write(black_box(&sample), seq, false, &mut buf);
                black_box(buf.len())
            })
        });
        let prefix = "uns/";
        group.bench_function("serde_message", |b| {
            b.iter(|| {
                let sample = black_box(&sample);
                let payload = SamplePayload::new(&topology, sample)
                    .unwrap()
                    .with_seq(seq, false);
                let payload = serde_json::to_vec(&payload).unwrap();
                let topic = format!("{prefix}{}", topology.path(topology.tag(sample.tag).unwrap()));
                black_box((topic, payload))
            })
        });
        group.bench_function("encoder_message", |b| {
            b.iter(|| {
                let sample = black_box(&sample);
                let mut payload = Vec::with_capacity(512);
                encoder.write(sample, seq, false, &mut payload);
                let path = topology.path(topology.tag(sample.tag).unwrap());
                let mut topic = String::with_capacity(prefix.len() + path.len());
                topic.push_str(prefix);
                path.push_to(&mut topic);
                black_box((topic, payload))
            })
        });
        group.finish();
    }
}

fn bench_rfc3339(c: &mut Criterion) {
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;
    let t = Timestamp::from_unix_nanos(GATEWAY_TIME);
    let mut group = c.benchmark_group("rfc3339");
    group.bench_function("time", |b| {
        b.iter(|| {
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(black_box(t).unix_nanos()))
                .unwrap()
                .format(&Rfc3339)
                .unwrap()
        })
    });
    group.bench_function("own", |b| b.iter(|| black_box(t).rfc3339().as_bytes().len()));
    group.finish();
}

criterion_group!(benches, bench_sample, bench_rfc3339);
criterion_main!(benches);
