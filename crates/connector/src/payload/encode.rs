//! The sample payload (`docs/payloads.md`) written straight into a caller's buffer: byte
//! for byte what `serde_json` makes of [`SamplePayload`](super::SamplePayload), without
//! serde's per-field work, escaping scans or allocations. Nothing is kept per tag: the
//! tag's strings are copied from the topology each time (a copy of ~150 bytes costs less
//! than keeping them pre-rendered, at ~250 B per tag, would cost in memory).
//!
//! Escaping: configuration validation makes every string of the topology an identifier
//! that JSON never escapes (asset paths are slugs, attribute names snake_case, model names
//! PascalCase, units the table's symbols or lower-case words, types fixed names). The
//! encoder checks that once per topology ([`SampleEncoder::new`]) rather than trusting
//! it, so a topology built some other way is still escaped correctly, only slower.

use std::sync::Arc;

use backplane_model::{DataType, Sample};
use bytes::BufMut;

use super::json;
use crate::topology::{TagInfo, Topology};

/// Writes the JSON payloads of one topology's samples. Holds no per-tag state and needs
/// only `&self`, so one encoder serves a sink's every task and message.
#[derive(Debug, Clone)]
pub struct SampleEncoder {
    topology: Arc<Topology>,
    /// No string of the topology needs escaping (see the module documentation).
    clean: bool,
}

impl SampleEncoder {
    pub fn new(topology: Arc<Topology>) -> SampleEncoder {
        let tags_clean = topology.tags.iter().all(|t| {
            !json::needs_escape(&t.path)
                && !json::needs_escape(&t.model)
                && !json::needs_escape(&t.attribute.name)
                && t.attribute
                    .unit
                    .as_ref()
                    .is_none_or(|u| !json::needs_escape(u.symbol()))
        });
        let assets_clean = topology.assets.iter().all(|a| {
            !json::needs_escape(a.path.as_str())
                && a.model.as_ref().is_none_or(|m| !json::needs_escape(&m.name))
        });
        SampleEncoder {
            clean: tags_clean && assets_clean,
            topology,
        }
    }

    pub fn topology(&self) -> &Arc<Topology> {
        &self.topology
    }

    /// Appends the payload of `sample` with its stream number (`seq`, `replay`: buffered
    /// sinks; `None`, `false` otherwise) to `out`; `false`, with nothing written, if its
    /// tag is not in the topology.
    pub fn write<B: BufMut>(&self, sample: &Sample, seq: Option<u64>, replay: bool, out: &mut B) -> bool {
        let Some(tag) = self.topology.tag(sample.tag) else {
            return false;
        };
        let Some(asset) = self.topology.assets.get(tag.asset) else {
            return false;
        };
        out.put_slice(b"{\"kind\":\"sample\",\"path\":");
        self.name(out, &tag.path);
        out.put_slice(b",\"asset\":");
        self.name(out, asset.path.as_str());
        out.put_slice(b",\"attribute\":");
        self.name(out, &tag.attribute.name);
        out.put_slice(b",\"model\":");
        self.name(out, &tag.model);
        out.put_u8(b',');
        self.write_reading(tag, sample, out);
        out.put_slice(b",\"context\":");
        json::context(out, &sample.context);
        if let Some(seq) = seq {
            out.put_slice(b",\"seq\":");
            out.put_slice(itoa::Buffer::new().format(seq).as_bytes());
        }
        if replay {
            out.put_slice(b",\"replay\":true");
        }
        out.put_u8(b'}');
        true
    }

    /// The fields a sample shares with the instance form's attribute entries, without
    /// braces: `"value":…,"type":…[,"unit":…],"quality":…[,"quality_reason":…]
    /// [,"source_time":…],"gateway_time":…`. `tag` is the sample's tag.
    pub fn write_reading<B: BufMut>(&self, tag: &TagInfo, sample: &Sample, out: &mut B) {
        out.put_slice(b"\"value\":");
        json::value(out, &sample.value);
        out.put_slice(b",\"type\":\"");
        let (scalar, array) = match tag.attribute.data_type {
            DataType::Scalar(s) => (s, false),
            DataType::Array(s) => (s, true),
        };
        out.put_slice(scalar.name().as_bytes());
        out.put_slice(if array { b"[]\"" } else { b"\"" });
        if let Some(unit) = &tag.attribute.unit {
            out.put_slice(b",\"unit\":");
            self.name(out, unit.symbol());
        }
        out.put_slice(b",\"quality\":");
        json::quality(out, sample.quality);
        if let Some(reason) = sample.quality.reason() {
            // Fixed snake_case names.
            out.put_slice(b",\"quality_reason\":");
            json::clean_string(out, reason);
        }
        if let Some(t) = sample.source_time {
            out.put_slice(b",\"source_time\":");
            json::timestamp(out, t);
        }
        out.put_slice(b",\"gateway_time\":");
        json::timestamp(out, sample.gateway_time);
    }

    /// A string of the topology (path, name, model, unit) as a JSON string.
    pub fn name<B: BufMut>(&self, out: &mut B, s: &str) {
        if self.clean {
            json::clean_string(out, s);
        } else {
            json::string(out, s);
        }
    }
}
