//! The sample payload (`docs/payloads.md`) written straight into a caller's buffer: byte
//! for byte what `serde_json` makes of [`SamplePayload`](super::SamplePayload), without
//! serde's per-field work, escaping scans or allocations. Nothing is kept per tag (at ~250
//! B per tag it would cost more in memory than it saves); per asset, the payload's head is
//! kept as text around the two places the attribute's name goes (`Head`), so a sample's
//! head is five copies rather than eleven. What a poll's samples share is reused per
//! thread: the text of the last source time, and the payload's tail of the last gateway
//! time and context (`,"gateway_time":…,"context":…`, the context by `Arc` identity) as
//! one piece, so the encoder needs only `&self`. Each piece is a copy of its own (a call
//! and the buffer's checks, about 25 instructions), so fewer and longer pieces are what
//! makes a payload cheaper.
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
/// `","model":"<model>","value":`; the attribute's name goes after the first and the second.
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
        text.extend_from_slice(b"\",\"value\":");
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
            out.put_slice(b",\"value\":");
        }
        self.write_value_fields(tag, sample, out);
        tail(out, sample.gateway_time, &sample.context);
        if let Some(seq) = seq {
            out.put_slice(b",\"seq\":");
            out.put_slice(itoa::Buffer::new().format(seq).as_bytes());
        }
        // Each copy of a literal of its own: of a known length, it is a few moves, not a
        // call (as the type and the quality below).
        if replay {
            out.put_slice(b",\"replay\":true}");
        } else {
            out.put_u8(b'}');
        }
        true
    }

    /// The fields a sample shares with the instance form's attribute entries, without
    /// braces: `"value":…,"type":…[,"unit":…],"quality":…[,"quality_reason":…]
    /// [,"source_time":…],"gateway_time":…`. `tag` is the sample's tag.
    pub fn write_reading<B: BufMut>(&self, tag: &TagInfo, sample: &Sample, out: &mut B) {
        out.put_slice(b"\"value\":");
        self.write_value_fields(tag, sample, out);
        timestamp(out, GATEWAY_TIME, sample.gateway_time, &LAST_GATEWAY_TIME);
    }

    /// [`write_reading`](Self::write_reading)'s fields from the value's to the source
    /// time's, without the `"value":` before them.
    fn write_value_fields<B: BufMut>(&self, tag: &TagInfo, sample: &Sample, out: &mut B) {
        json::value(out, &sample.value);
        type_field(out, tag.attribute.data_type);
        if let Some(unit) = &tag.attribute.unit {
            out.put_slice(b",\"unit\":");
            self.name(out, unit.symbol());
        }
        match sample.quality {
            Quality::Good => out.put_slice(b",\"quality\":\"good\""),
            Quality::Uncertain(_) => out.put_slice(b",\"quality\":\"uncertain\""),
            Quality::Bad(_) => out.put_slice(b",\"quality\":\"bad\""),
        }
        if let Some(reason) = sample.quality.reason() {
            // Fixed snake_case names.
            out.put_slice(b",\"quality_reason\":");
            json::clean_string(out, reason);
        }
        if let Some(t) = sample.source_time {
            timestamp(out, b",\"source_time\":\"", t, &LAST_SOURCE_TIME);
        }
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

/// Writes `,"type":"…"` for a data type.
fn type_field<B: BufMut>(out: &mut B, data_type: DataType) {
    // In each arm: a literal of a known length is copied by a few moves, not a call.
    match data_type {
        DataType::Scalar(ScalarType::Bool) => out.put_slice(b",\"type\":\"bool\""),
        DataType::Scalar(ScalarType::Int) => out.put_slice(b",\"type\":\"int\""),
        DataType::Scalar(ScalarType::UInt) => out.put_slice(b",\"type\":\"uint\""),
        DataType::Scalar(ScalarType::Float) => out.put_slice(b",\"type\":\"float\""),
        DataType::Scalar(ScalarType::String) => out.put_slice(b",\"type\":\"string\""),
        DataType::Scalar(ScalarType::Timestamp) => out.put_slice(b",\"type\":\"timestamp\""),
        DataType::Array(ScalarType::Bool) => out.put_slice(b",\"type\":\"bool[]\""),
        DataType::Array(ScalarType::Int) => out.put_slice(b",\"type\":\"int[]\""),
        DataType::Array(ScalarType::UInt) => out.put_slice(b",\"type\":\"uint[]\""),
        DataType::Array(ScalarType::Float) => out.put_slice(b",\"type\":\"float[]\""),
        DataType::Array(ScalarType::String) => out.put_slice(b",\"type\":\"string[]\""),
        DataType::Array(ScalarType::Timestamp) => out.put_slice(b",\"type\":\"timestamp[]\""),
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

/// The gateway time's key and the string's opening quote.
const GATEWAY_TIME: &[u8] = b",\"gateway_time\":\"";

/// The last tail of a sample payload written on this thread: `,"gateway_time":"<time>",
/// "context":<context>`, for that time and context.
#[derive(Default)]
struct LastTail {
    time: Option<Timestamp>,
    /// A `Weak` keeps the allocation, so no other context can take its address meanwhile.
    context: Weak<Context>,
    /// The context has no field set: any empty context has the same text.
    empty: bool,
    text: Vec<u8>,
}

thread_local! {
    /// The samples of one poll share their gateway time, and those of one asset one
    /// `Arc<Context>` until it changes: most tails are the one before.
    static LAST_TAIL: RefCell<LastTail> = RefCell::default();
}

/// A sample payload's gateway time and context, `,"gateway_time":"…","context":{…}`, as
/// one copy of the last tail's text when the time and the context are the last ones.
fn tail<B: BufMut>(out: &mut B, time: Timestamp, context: &Arc<Context>) {
    LAST_TAIL.with(|last| {
        let Ok(mut last) = last.try_borrow_mut() else {
            // Never borrowed elsewhere; written directly should that change.
            write_tail(out, time, context);
            return;
        };
        let same_context = std::ptr::eq(last.context.as_ptr(), Arc::as_ptr(context))
            || (last.empty && json::is_empty(context));
        if last.time != Some(time) || !same_context {
            last.text.clear();
            write_tail(&mut last.text, time, context);
            last.time = Some(time);
            last.context = Arc::downgrade(context);
            last.empty = json::is_empty(context);
        }
        out.put_slice(&last.text);
    });
}

fn write_tail<B: BufMut>(out: &mut B, time: Timestamp, context: &Context) {
    timestamp(out, GATEWAY_TIME, time, &LAST_GATEWAY_TIME);
    out.put_slice(b",\"context\":");
    json::context(out, context);
}
