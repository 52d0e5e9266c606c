//! The sample payload (`docs/payloads.md`) written straight into a caller's buffer: byte
//! for byte what `serde_json` makes of [`SamplePayload`](super::SamplePayload), without
//! serde's per-field work, escaping scans or allocations. Nothing is kept per tag (at ~250
//! B per tag it would cost more in memory than it saves); per asset, the payload's head is
//! kept as text around the two places the attribute's name goes (`Head`), so a sample's
//! head is five copies rather than eleven. What a poll's samples share is reused per
//! thread: the text of the last gateway and source times and the JSON of the last context
//! (by `Arc` identity), so the encoder needs only `&self`.
//!
//! Escaping: configuration validation makes every string of the topology an identifier
//! that JSON never escapes (asset paths are slugs, attribute names snake_case, model names
//! PascalCase, units the table's symbols or lower-case words, types fixed names). The
//! encoder checks that once per topology ([`SampleEncoder::new`]) rather than trusting
//! it, so a topology built some other way is still escaped correctly, only slower.

use std::sync::Arc;

use std::cell::{Cell, RefCell};
use std::sync::Weak;
use std::thread::LocalKey;

use backplane_model::timestamp::Rfc3339;
use backplane_model::{Context, DataType, Quality, Sample, ScalarType, Timestamp};
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
    /// Per asset (by index) when `clean`; empty otherwise.
    heads: Arc<[Head]>,
}

/// An asset's part of a sample payload's head, as one text cut in three:
/// `{"kind":"sample","path":"<asset>/`, then `","asset":"<asset>","attribute":"`, then
/// `","model":"<model>",`; the attribute's name goes after the first and the second.
/// Empty for an asset without tags. About 3 × its path's length and 60 bytes, per asset.
#[derive(Debug, Default)]
struct Head {
    text: Box<[u8]>,
    /// Where the second and the third part start.
    cuts: [u32; 2],
}

impl Head {
    fn of(path: &str, model: &str) -> Head {
        let mut text = Vec::with_capacity(3 * path.len() + model.len() + 64);
        text.extend_from_slice(b"{\"kind\":\"sample\",\"path\":\"");
        text.extend_from_slice(path.as_bytes());
        text.push(b'/');
        let first = text.len() as u32;
        text.extend_from_slice(b"\",\"asset\":\"");
        text.extend_from_slice(path.as_bytes());
        text.extend_from_slice(b"\",\"attribute\":\"");
        let second = text.len() as u32;
        text.extend_from_slice(b"\",\"model\":\"");
        text.extend_from_slice(model.as_bytes());
        text.extend_from_slice(b"\",");
        Head {
            text: text.into_boxed_slice(),
            cuts: [first, second],
        }
    }

    /// The three parts; `None` for an empty head.
    fn parts(&self) -> Option<(&[u8], &[u8], &[u8])> {
        let [first, second] = self.cuts.map(|c| c as usize);
        let (a, rest) = self.text.split_at_checked(first)?;
        let (b, c) = rest.split_at_checked(second.checked_sub(first)?)?;
        (!c.is_empty()).then_some((a, b, c))
    }
}

impl SampleEncoder {
    pub fn new(topology: Arc<Topology>) -> SampleEncoder {
        let tags_clean = topology.tags.iter().all(|t| {
            // A tag's path is its asset's path and attribute name, and its model is its
            // asset's: checked with the assets.
            !json::needs_escape(&t.attribute.name)
                && t.attribute
                    .unit
                    .as_ref()
                    .is_none_or(|u| !json::needs_escape(u.symbol()))
        });
        let assets_clean = topology.assets.iter().all(|a| {
            !json::needs_escape(a.path.as_str())
                && a.model.as_ref().is_none_or(|m| !json::needs_escape(&m.name))
        });
        let clean = tags_clean && assets_clean;
        let heads = if clean {
            topology
                .assets
                .iter()
                .map(|a| {
                    if a.tags.is_empty() {
                        Head::default()
                    } else {
                        Head::of(a.path.as_str(), a.model_name())
                    }
                })
                .collect()
        } else {
            Arc::default()
        };
        SampleEncoder {
            clean,
            heads,
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
        if let Some((a, b, c)) = self.heads.get(tag.asset).and_then(Head::parts) {
            let name = tag.attribute.name.as_bytes();
            out.put_slice(a);
            out.put_slice(name);
            out.put_slice(b);
            out.put_slice(name);
            out.put_slice(c);
        } else {
            out.put_slice(b"{\"kind\":\"sample\",\"path\":");
            json::string(out, &asset.tag_path(tag).to_string());
            out.put_slice(b",\"asset\":");
            json::string(out, asset.path.as_str());
            out.put_slice(b",\"attribute\":");
            json::string(out, &tag.attribute.name);
            out.put_slice(b",\"model\":");
            json::string(out, asset.model_name());
            out.put_u8(b',');
        }
        self.write_reading(tag, sample, out);
        out.put_slice(b",\"context\":");
        context(out, &sample.context);
        if let Some(seq) = seq {
            out.put_slice(b",\"seq\":");
            out.put_slice(itoa::Buffer::new().format(seq).as_bytes());
        }
        out.put_slice(if replay { b",\"replay\":true}" } else { b"}" });
        true
    }

    /// The fields a sample shares with the instance form's attribute entries, without
    /// braces: `"value":…,"type":…[,"unit":…],"quality":…[,"quality_reason":…]
    /// [,"source_time":…],"gateway_time":…`. `tag` is the sample's tag.
    pub fn write_reading<B: BufMut>(&self, tag: &TagInfo, sample: &Sample, out: &mut B) {
        out.put_slice(b"\"value\":");
        json::value(out, &sample.value);
        out.put_slice(type_field(tag.attribute.data_type));
        if let Some(unit) = &tag.attribute.unit {
            out.put_slice(b",\"unit\":");
            self.name(out, unit.symbol());
        }
        out.put_slice(match sample.quality {
            Quality::Good => b",\"quality\":\"good\"",
            Quality::Uncertain(_) => b",\"quality\":\"uncertain\"",
            Quality::Bad(_) => b",\"quality\":\"bad\"",
        });
        if let Some(reason) = sample.quality.reason() {
            // Fixed snake_case names.
            out.put_slice(b",\"quality_reason\":");
            json::clean_string(out, reason);
        }
        if let Some(t) = sample.source_time {
            timestamp(out, b",\"source_time\":\"", t, &LAST_SOURCE_TIME);
        }
        timestamp(
            out,
            b",\"gateway_time\":\"",
            sample.gateway_time,
            &LAST_GATEWAY_TIME,
        );
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

/// `,"type":"…"` for a data type.
fn type_field(data_type: DataType) -> &'static [u8] {
    match data_type {
        DataType::Scalar(ScalarType::Bool) => b",\"type\":\"bool\"",
        DataType::Scalar(ScalarType::Int) => b",\"type\":\"int\"",
        DataType::Scalar(ScalarType::UInt) => b",\"type\":\"uint\"",
        DataType::Scalar(ScalarType::Float) => b",\"type\":\"float\"",
        DataType::Scalar(ScalarType::String) => b",\"type\":\"string\"",
        DataType::Scalar(ScalarType::Timestamp) => b",\"type\":\"timestamp\"",
        DataType::Array(ScalarType::Bool) => b",\"type\":\"bool[]\"",
        DataType::Array(ScalarType::Int) => b",\"type\":\"int[]\"",
        DataType::Array(ScalarType::UInt) => b",\"type\":\"uint[]\"",
        DataType::Array(ScalarType::Float) => b",\"type\":\"float[]\"",
        DataType::Array(ScalarType::String) => b",\"type\":\"string[]\"",
        DataType::Array(ScalarType::Timestamp) => b",\"type\":\"timestamp[]\"",
    }
}

type LastTime = Cell<Option<(Timestamp, Rfc3339)>>;

thread_local! {
    /// The last gateway and source times written on this thread and their text: the
    /// samples of one poll share their gateway time, so most are the one before. Per
    /// thread, so the encoder stays `&self` and shareable.
    static LAST_GATEWAY_TIME: LastTime = const { Cell::new(None) };
    static LAST_SOURCE_TIME: LastTime = const { Cell::new(None) };
}

/// `key` (the field's name and the string's opening quote), then a timestamp's text and
/// its closing quote, the text reused when it is the last one of its kind.
fn timestamp<B: BufMut>(out: &mut B, key: &[u8], t: Timestamp, last: &'static LocalKey<LastTime>) {
    let text = last.with(|last| match last.get() {
        Some((at, text)) if at == t => text,
        _ => {
            let text = t.rfc3339();
            last.set(Some((t, text)));
            text
        }
    });
    out.put_slice(key);
    out.put_slice(text.as_bytes());
    out.put_u8(b'"');
}

/// The last context written on this thread (by identity) and its JSON.
#[derive(Default)]
struct LastContext {
    /// A `Weak` keeps the allocation, so no other context can take its address meanwhile.
    context: Weak<Context>,
    json: Vec<u8>,
}

thread_local! {
    /// The samples of one asset share one `Arc<Context>` until it changes, and a poll's
    /// samples come asset by asset: most contexts are the one before.
    static LAST_CONTEXT: RefCell<LastContext> = RefCell::default();
}

/// A sample's context as JSON, its text reused when it is the same `Arc` as the last one.
fn context<B: BufMut>(out: &mut B, context: &Arc<Context>) {
    if json::is_empty(context) {
        out.put_slice(b"{}");
        return;
    }
    LAST_CONTEXT.with(|last| {
        let Ok(mut last) = last.try_borrow_mut() else {
            // Never borrowed elsewhere; written directly should that change.
            json::context(out, context);
            return;
        };
        if !std::ptr::eq(last.context.as_ptr(), Arc::as_ptr(context)) {
            last.json.clear();
            json::context(&mut last.json, context);
            last.context = Arc::downgrade(context);
        }
        out.put_slice(&last.json);
    });
}
