//! Sparkplug B: the Edge Node (sink kind `sparkplug`) and the host side (source kind
//! `sparkplug`). `docs/connectors/sparkplug.md` is the reference.
//!
//! - [`proto`]: the payload types, generated at build time from `proto/sparkplug_b.proto`
//!   (written from the Sparkplug 3.0 specification) by prost and protox.
//! - [`codec`]: topics, bounded decoding, datatypes and values, quality.
//! - [`ddata`]: DDATA payloads written straight from the samples, without the structs.
//! - [`edge`]: the Edge Node state machine (no I/O); [`sink`] drives it over a link.
//! - [`host`]: birth/data/death decoding with alias resolution and seq checks (no I/O);
//!   [`source`] drives it.
//! - [`state`]: host applications' STATE messages, read by the edge node and published by
//!   the host (no I/O).

pub mod codec;
pub mod ddata;
pub mod edge;
pub mod host;
pub mod sink;
pub mod source;
pub mod state;

/// Generated from `proto/sparkplug_b.proto`.
#[allow(clippy::all, clippy::pedantic, missing_docs, missing_debug_implementations)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/org.eclipse.tahu.protobuf.rs"));
}

pub use codec::{DecodeError, decode_payload};
pub use sink::SparkplugSinkKind;
pub use source::SparkplugSourceKind;

/// Feeds arbitrary bytes through every Sparkplug decode path: the payload decoder, the
/// value of every metric under every datatype, the host (as NBIRTH, DBIRTH, DDATA, NDEATH of
/// one node) and the edge node (as NCMD and DCMD). The fuzz target and the property test
/// both call it; no input may panic.
pub fn decode_everything(data: &[u8]) -> usize {
    let mut touched = 0;
    if let Ok(payload) = decode_payload(data, codec::MAX_PAYLOAD_BYTES) {
        for m in &payload.metrics {
            for datatype in 0..=35 {
                touched += usize::from(codec::decode_value(m, datatype).is_ok());
            }
            let _ = codec::metric_quality(m);
        }
    }
    let addresses = ["g/n:bdSeq", "g/n/d:m", "g/n/d:Inputs/level"]
        .map(|a| host::MetricAddress::parse(a).unwrap_or_else(|_| unreachable_address()));
    let mut host = host::Host::new(&addresses, codec::MAX_PAYLOAD_BYTES);
    let now = backplane_model::Timestamp::from_unix_millis(0);
    for topic in [
        "spBv1.0/g/NBIRTH/n",
        "spBv1.0/g/DBIRTH/n/d",
        "spBv1.0/g/DDATA/n/d",
        "spBv1.0/g/NDATA/n",
        "spBv1.0/g/DDEATH/n/d",
        "spBv1.0/g/NDEATH/n",
    ] {
        touched += host.on_message(topic, data, now).readings.len();
    }
    let mut edge = edge::EdgeNode::new(
        edge::EdgeConfig {
            group: "g".into(),
            node: "n".into(),
            primary_host: Some("h".into()),
            hold_max: 8,
            accept_commands: true,
        },
        vec![edge::DeviceDef {
            id: "d".into(),
            metrics: vec![edge::MetricDef {
                name: "m".into(),
                alias: edge::FIRST_DEVICE_ALIAS,
                tag: backplane_model::TagId(0),
                data_type: backplane_model::DataType::Scalar(backplane_model::ScalarType::Float),
                datatype: proto::DataType::Double,
                unit: None,
                range: None,
            }],
        }],
    );
    edge.start_session(0);
    edge.on_connected(now);
    for topic in ["spBv1.0/g/NCMD/n", "spBv1.0/g/DCMD/n/d", "spBv1.0/STATE/h"] {
        touched += edge.on_message(topic, data, now).len();
    }
    touched
}

/// Never reached: the addresses above are valid. Avoids a panic path in library code.
fn unreachable_address() -> host::MetricAddress {
    host::MetricAddress {
        group: "g".into(),
        node: "n".into(),
        device: None,
        metric: "m".into(),
    }
}
