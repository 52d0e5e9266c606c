//! The sample payload JSON (`docs/payloads.md`), byte for byte what `serde_json` makes of
//! [`SamplePayload`](backplane_connector::payload::SamplePayload), written without
//! serde's per-field work: each tag's constant fields (kind, path, asset, attribute,
//! model, type, unit) are escaped once into two fragments, the context JSON is kept per
//! asset until the context changes, and the last timestamps' text is reused (the samples
//! of one poll share their gateway time).

use std::sync::Arc;

use backplane_connector::Topology;
use backplane_model::{Context, Quality, Sample, Timestamp};
use bytes::{BufMut, BytesMut};

/// The constant JSON around a tag's value.
#[derive(Debug)]
struct TagFragments {
    /// `{"kind":"sample","path":..,"asset":..,"attribute":..,"model":..,"value":`
    head: Box<[u8]>,
    /// `,"type":..[,"unit":..],"quality":`
    tail: Box<[u8]>,
    asset: usize,
}

/// The last context of an asset and its JSON.
#[derive(Debug)]
struct ContextJson {
    context: Arc<Context>,
    json: Vec<u8>,
}

/// The JSON string of the last timestamp written.
#[derive(Debug, Default)]
struct TimeText {
    nanos: Option<i64>,
    json: Vec<u8>,
}

impl TimeText {
    fn write(&mut self, t: Timestamp, out: &mut BytesMut) {
        if self.nanos != Some(t.unix_nanos()) {
            self.json.clear();
            push_json_str(&mut self.json, &t.to_rfc3339());
            self.nanos = Some(t.unix_nanos());
        }
        out.extend_from_slice(&self.json);
    }
}

/// Writes sample payloads of one topology.
#[derive(Debug)]
pub struct SampleEncoder {
    /// By tag index; `None` for a tag whose asset is missing (never for a built topology).
    tags: Vec<Option<TagFragments>>,
    /// By asset index.
    contexts: Vec<Option<ContextJson>>,
    gateway_time: TimeText,
    source_time: TimeText,
}

impl SampleEncoder {
    pub fn new(topology: &Topology) -> SampleEncoder {
        let tags = topology
            .tags
            .iter()
            .map(|tag| {
                let asset = topology.assets.get(tag.asset)?;
                let mut head = Vec::with_capacity(128);
                head.extend_from_slice(b"{\"kind\":\"sample\",\"path\":");
                push_json_str(&mut head, &tag.path);
                head.extend_from_slice(b",\"asset\":");
                push_json_str(&mut head, asset.path.as_str());
                head.extend_from_slice(b",\"attribute\":");
                push_json_str(&mut head, &tag.attribute.name);
                head.extend_from_slice(b",\"model\":");
                push_json_str(&mut head, &tag.model);
                head.extend_from_slice(b",\"value\":");
                let mut tail = Vec::with_capacity(48);
                tail.extend_from_slice(b",\"type\":");
                push_json_str(&mut tail, &tag.attribute.data_type.to_string());
                if let Some(unit) = &tag.attribute.unit {
                    tail.extend_from_slice(b",\"unit\":");
                    push_json_str(&mut tail, &unit.to_string());
                }
                tail.extend_from_slice(b",\"quality\":");
                Some(TagFragments {
                    head: head.into(),
                    tail: tail.into(),
                    asset: tag.asset,
                })
            })
            .collect();
        SampleEncoder {
            tags,
            contexts: topology.assets.iter().map(|_| None).collect(),
            gateway_time: TimeText::default(),
            source_time: TimeText::default(),
        }
    }

    /// Appends the payload of `sample` with its stream number to `out`; `false` (and `out`
    /// unchanged) if its tag is not in the topology.
    pub fn write(&mut self, sample: &Sample, seq: Option<u64>, replay: bool, out: &mut BytesMut) -> bool {
        let Some(Some(tag)) = self.tags.get(sample.tag.index()) else {
            return false;
        };
        let start = out.len();
        out.extend_from_slice(&tag.head);
        if serde_json::to_writer((&mut *out).writer(), &sample.value).is_err() {
            out.truncate(start);
            return false;
        }
        out.extend_from_slice(&tag.tail);
        out.extend_from_slice(match sample.quality {
            Quality::Good => &b"\"good\""[..],
            Quality::Uncertain(_) => b"\"uncertain\"",
            Quality::Bad(_) => b"\"bad\"",
        });
        if let Some(reason) = sample.quality.reason() {
            out.extend_from_slice(b",\"quality_reason\":");
            push_json_str(out, reason);
        }
        if let Some(t) = sample.source_time {
            out.extend_from_slice(b",\"source_time\":");
            self.source_time.write(t, out);
        }
        out.extend_from_slice(b",\"gateway_time\":");
        self.gateway_time.write(sample.gateway_time, out);
        out.extend_from_slice(b",\"context\":");
        let asset = tag.asset;
        match self.contexts.get_mut(asset) {
            Some(Some(cached)) if Arc::ptr_eq(&cached.context, &sample.context) => {
                out.extend_from_slice(&cached.json);
            }
            // The same context in another allocation: keep the JSON, compare by pointer next.
            Some(Some(cached)) if *cached.context == *sample.context => {
                out.extend_from_slice(&cached.json);
                cached.context = sample.context.clone();
            }
            Some(slot) => {
                let mut json = Vec::with_capacity(64);
                if serde_json::to_writer(&mut json, &*sample.context).is_err() {
                    out.truncate(start);
                    return false;
                }
                out.extend_from_slice(&json);
                *slot = Some(ContextJson {
                    context: sample.context.clone(),
                    json,
                });
            }
            None => {
                out.truncate(start);
                return false;
            }
        }
        if let Some(seq) = seq {
            out.extend_from_slice(b",\"seq\":");
            out.extend_from_slice(itoa::Buffer::new().format(seq).as_bytes());
        }
        if replay {
            out.extend_from_slice(b",\"replay\":true");
        }
        out.put_u8(b'}');
        true
    }
}

/// A JSON string as `serde_json` writes it: quoted, with `"`, `\` and control characters
/// escaped (everything else, non-ASCII included, as it is).
fn push_json_str<B: BufMut>(out: &mut B, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.put_u8(b'"');
        out.put_slice(s.as_bytes());
        out.put_u8(b'"');
    } else if serde_json::to_writer((&mut *out).writer(), s).is_err() {
        // Writing to memory cannot fail; an empty string keeps the JSON well formed.
        out.put_slice(b"\"\"");
    }
}
