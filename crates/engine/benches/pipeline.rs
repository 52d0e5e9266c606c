//! Pipeline throughput: normalize + contextualize + route, in samples per second on one
//! core. DESIGN.md budget: ≥ 5 million samples/s per core.
//!
//! Run: `cargo bench -p backplane-engine --bench pipeline`.
//! The `store_and_forward` group measures what network sinks add: encoding each batch into
//! the durable log and reading it back. The figure to read is the
//! `thrpt` line (elements = samples).
//!
//! The workload is a plant of 2 500 filler-like assets (10 000 tags) fed by one source in
//! batches of 1 000 readings, with a realistic mix of transform chains: decode of two
//! registers (f32, CDAB) + unit conversion + deadband; linear scale; enum map; counter
//! cast. Values change every iteration so the deadband rarely suppresses. Every batch is
//! routed to two sink queues and the (subscriber-less) live stream.

#![allow(clippy::unwrap_used)] // fixed, known-good inputs

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;

use backplane_config::{ApiSettings, AssetSpec, ComponentSpec, Gateway, Namespace, Plan};
use backplane_engine::{
    LatestValues, Pipeline, PipelineInput, RawBatch, RawReading, Router, Topology, context::ContextStore,
    metrics::Metrics,
};
use backplane_model::model::Binding;
use backplane_model::{
    AssetPath, Attribute, Context, DataType, Deadband, DecodeType, Level, Model, Quality, ScalarType,
    Timestamp, Transform, Unit, Value, WordOrder,
};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

const ASSETS: usize = 2_500;
const BATCH: usize = 1_000;

fn attribute(name: &str, data_type: DataType, unit: Option<&str>) -> Attribute {
    Attribute {
        name: name.into(),
        data_type,
        unit: unit.and_then(Unit::parse),
        description: None,
        range: None,
        allowed: None,
        decimals: None,
        expr: None,
        limits: None,
    }
}

fn plan() -> Plan {
    let float = DataType::Scalar(ScalarType::Float);
    let model = Arc::new(Model {
        name: "Filler".into(),
        description: None,
        attributes: vec![
            attribute("temperature", float, Some("degC")).into(),
            attribute("speed", float, Some("bottle/min")).into(),
            attribute("state", DataType::Scalar(ScalarType::String), None).into(),
            attribute("count", DataType::Scalar(ScalarType::UInt), Some("bottle")).into(),
        ],
    });
    let degf = Unit::parse("degF").unwrap();
    let degc = Unit::parse("degC").unwrap();
    let (gain, offset) = degf.conversion_to(&degc).unwrap();
    let map: Arc<[(i64, Arc<str>)]> =
        vec![(0, "stopped".into()), (1, "idle".into()), (2, "running".into())].into();
    let root = AssetPath::parse("acme/plant").unwrap();
    let mut assets = vec![
        AssetSpec {
            path: AssetPath::parse("acme").unwrap(),
            level: Level::Enterprise,
            description: None,
            model: None,
            bindings: vec![],
            context: Context::default(),
            writes: None,
        },
        AssetSpec {
            path: root.clone(),
            level: Level::Site,
            description: None,
            model: None,
            bindings: vec![],
            context: Context {
                work_order: Some("WO-1".into()),
                ..Context::default()
            },
            writes: None,
        },
    ];
    for i in 0..ASSETS {
        let binding =
            |attribute: &str, slot: usize, transforms: Vec<Transform>, deadband: Option<Deadband>| Binding {
                attribute: attribute.into(),
                source: "plc".into(),
                address: format!("{}", i * 4 + slot).into(),
                transforms: transforms.into(),
                deadband,
                stale_after: None,
            };
        assets.push(AssetSpec {
            path: root.child(&format!("filler-{i}")).unwrap(),
            level: Level::Equipment,
            description: None,
            model: Some(model.clone()),
            bindings: vec![
                binding(
                    "temperature",
                    0,
                    vec![
                        Transform::Decode {
                            kind: DecodeType::F32,
                            word_order: WordOrder::CDAB,
                        },
                        Transform::Convert {
                            from: degf.clone(),
                            to: degc.clone(),
                            gain,
                            offset,
                        },
                        Transform::Cast { to: float },
                    ],
                    Some(Deadband::Absolute(0.001)),
                ),
                binding(
                    "speed",
                    1,
                    vec![
                        Transform::Scale {
                            gain: 0.1,
                            offset: 0.0,
                            raw: None,
                            eng: None,
                        },
                        Transform::Cast { to: float },
                    ],
                    None,
                ),
                binding(
                    "state",
                    2,
                    vec![
                        Transform::Map { entries: map.clone() },
                        Transform::Cast {
                            to: DataType::Scalar(ScalarType::String),
                        },
                    ],
                    None,
                ),
                binding(
                    "count",
                    3,
                    vec![Transform::Cast {
                        to: DataType::Scalar(ScalarType::UInt),
                    }],
                    None,
                ),
            ],
            context: Context::default(),
            writes: None,
        });
    }
    Plan {
        version: "bench".into(),
        files: vec![],
        gateway: Gateway {
            name: "bench".into(),
            data_dir: PathBuf::from("data"),
            buffer: Default::default(),
            workers: None,
        },
        api: ApiSettings {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..ApiSettings::default()
        },
        namespace: Namespace {
            enterprise: "acme".into(),
            site: "plant".into(),
            sites: Vec::new(),
        },
        models: vec![model],
        assets,
        sources: vec![ComponentSpec {
            name: "plc".into(),
            kind: "simulator".into(),
            enabled: true,
            settings: Arc::new(()),
            buffer: None,
            keys: Default::default(),
        }],
        sinks: vec![],
        production: Default::default(),
        writes: Vec::new(),
    }
}

/// Batches covering every address, values varying with `round`.
fn batches(topology: &Topology, round: u64) -> Vec<RawBatch> {
    let addresses = topology.sources[0].addresses.len();
    let now = Timestamp::now();
    (0..addresses)
        .collect::<Vec<_>>()
        .chunks(BATCH)
        .map(|chunk| RawBatch {
            source: 0,
            gateway_time: now,
            readings: chunk
                .iter()
                .map(|&a| {
                    let n = round + a as u64;
                    let value = match a % 4 {
                        0 => {
                            let words = WordOrder::CDAB
                                .split(u64::from((38.0f32 + (n % 50) as f32 * 0.1).to_bits()), 2);
                            Value::Array(words.into_iter().map(|w| Value::UInt(u64::from(w))).collect())
                        }
                        1 => Value::UInt(4000 + n % 100),
                        2 => Value::UInt(n % 3),
                        _ => Value::UInt(n),
                    };
                    RawReading {
                        address: a as u32,
                        value: Some(value),
                        quality: Quality::Good,
                        source_time: Some(now),
                    }
                })
                .collect(),
        })
        .collect()
}

fn bench_pipeline(c: &mut Criterion) {
    let topology = Arc::new(Topology::new(plan()));
    let sink_names = vec!["a".to_owned(), "b".to_owned()];
    let metrics = Arc::new(Metrics::new(&["plc".to_owned()], &sink_names, "bench"));
    let contexts = Arc::new(ContextStore::new(&topology));
    let cache = Arc::new(LatestValues::new(topology.tags.len()));
    let mut pipeline = Pipeline::new(topology.clone(), contexts, cache, metrics.clone());
    let (tx_a, mut rx_a) = tokio::sync::mpsc::channel(16);
    let (tx_b, mut rx_b) = tokio::sync::mpsc::channel(16);
    let (stream, _) = tokio::sync::broadcast::channel(16);
    let mut router = Router::new(vec![Some(tx_a), Some(tx_b)], sink_names, stream, metrics);

    let templates: Vec<Vec<RawBatch>> = (0..4).map(|r| batches(&topology, r * 7)).collect();
    let mut round = 0usize;
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("normalize_contextualize_route", |b| {
        b.iter_batched(
            || {
                round += 1;
                let set = &templates[round % templates.len()];
                set[round % set.len()].clone()
            },
            |batch| {
                if let Some(out) = pipeline.process(PipelineInput::Readings(batch)) {
                    // The queues are drained each round: routing never waits here.
                    let _ = futures::FutureExt::now_or_never(router.route(black_box(out)));
                }
                while rx_a.try_recv().is_ok() {}
                while rx_b.try_recv().is_ok() {}
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// Store-and-forward as the engine does it: each pipeline batch of 1 000 samples encoded
/// (`durable::encode`) and appended to the log (fsync every 100 ms), and decoded again as a
/// buffered sink does when it reads.
/// DESIGN.md budget: append ≥ 1 million samples/s; drain ≥ 10× the live rate.
fn bench_store_and_forward(c: &mut Criterion) {
    use backplane_buffer::{Log, LogOptions, ReaderOptions};
    use backplane_engine::durable;

    let topology = Arc::new(Topology::new(plan()));
    let metrics = Arc::new(Metrics::new(&["plc".to_owned()], &[], "bench"));
    let contexts = Arc::new(ContextStore::new(&topology));
    let cache = Arc::new(LatestValues::new(topology.tags.len()));
    let mut pipeline = Pipeline::new(topology.clone(), contexts, cache, metrics);
    let outputs: Vec<_> = batches(&topology, 3)
        .into_iter()
        .filter_map(|b| pipeline.process(PipelineInput::Readings(b)))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let (log, mut readers, _) = Log::open(
        dir.path(),
        LogOptions::default(),
        &[("bench", ReaderOptions::default())],
    )
    .unwrap();
    let _reader = readers.pop().unwrap();
    let mut bytes = Vec::new();
    let mut i = 0usize;

    let mut group = c.benchmark_group("store_and_forward");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("encode_append", |b| {
        b.iter(|| {
            i += 1;
            let batch = &outputs[i % outputs.len()];
            durable::encode(batch, &topology, &mut bytes);
            log.append(batch.len() as u32, black_box(&bytes)).unwrap();
        })
    });
    // Reading the log itself is measured in crates/buffer (`cargo bench -p backplane-buffer`).
    let encoded: Vec<Vec<u8>> = outputs
        .iter()
        .map(|batch| {
            let mut bytes = Vec::new();
            durable::encode(batch, &topology, &mut bytes);
            bytes
        })
        .collect();
    group.bench_function("decode", |b| {
        b.iter(|| {
            i += 1;
            let decoded = durable::decode(&encoded[i % encoded.len()], 0, &topology).unwrap();
            black_box(decoded.batch.samples.len());
        })
    });
    group.finish();
}

criterion_group!(benches, bench_pipeline, bench_store_and_forward);
criterion_main!(benches);
