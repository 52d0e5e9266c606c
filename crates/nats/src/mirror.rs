//! What one mirrored message means for the hub, without I/O: the reading of a sample
//! (with its asset's context change, if any), events, a site's definitions, or why it is
//! refused. `docs/connectors/nats.md` ("The source") describes the rules.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use backplane_connector::{Definitions, RawReading, Topology};
use backplane_model::transform::Transform;
use backplane_model::{
    BadReason, Context, ContextField, ContextPatch, DataType, Event, EventKind, Quality, ScalarType,
    Timestamp, Value,
};
use serde::Deserialize;

use crate::dedup::Dedup;
use crate::subjects::{self, Parsed};

/// Why a message is refused; each is counted (`refused_<name>`) and logged once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// Not JSON, or not the documented schema.
    Garbage,
    /// A subject that is not one of the namespace's.
    Subject,
    /// An asset or tag the hub's configuration does not have.
    Unknown,
    /// An asset of another enterprise than the hub's.
    OtherEnterprise,
}

impl Refusal {
    pub fn name(self) -> &'static str {
        match self {
            Refusal::Garbage => "refused_garbage",
            Refusal::Subject => "refused_subject",
            Refusal::Unknown => "refused_unknown",
            Refusal::OtherEnterprise => "refused_other_enterprise",
        }
    }
}

/// One thing to do, in order.
#[derive(Debug, PartialEq)]
pub enum Action {
    /// Set the context of a hub asset before the next reading.
    Context {
        asset: usize,
        patch: ContextPatch,
        gateway: String,
    },
    Reading(RawReading),
    Events(Vec<Event>),
    Definitions(Definitions),
    /// The reading was refused for model drift (type or unit); already in the readings.
    Drift,
    Duplicate,
    /// `context_changed` events: the hub derives its own.
    Skipped,
    Refused(Refusal),
}

#[derive(Deserialize)]
struct SampleIn {
    kind: String,
    asset: String,
    path: String,
    #[serde(default)]
    value: Option<serde_json::Value>,
    #[serde(rename = "type")]
    data_type: String,
    #[serde(default)]
    unit: Option<String>,
    quality: String,
    #[serde(default)]
    quality_reason: Option<String>,
    #[serde(default)]
    source_time: Option<Timestamp>,
    gateway_time: Timestamp,
    #[serde(default)]
    context: Context,
    #[serde(default)]
    seq: Option<u64>,
}

#[derive(Deserialize)]
struct EventIn {
    kind: String,
    #[serde(flatten)]
    event: Event,
    #[serde(default)]
    seq: Option<u64>,
}

/// What the hub expects of one address.
#[derive(Debug)]
struct Expected {
    address: u32,
    data_type: DataType,
    unit: Option<String>,
}

/// The mirroring state of one source.
#[derive(Debug)]
pub struct Mirror {
    topology: Arc<Topology>,
    prefix: String,
    enterprise: String,
    by_path: HashMap<String, Expected>,
    contexts: HashMap<usize, Context>,
    dedup: Dedup,
    /// Refusals already logged (each kind once).
    pub logged: HashSet<Refusal>,
}

impl Mirror {
    pub fn new(topology: Arc<Topology>, source: &str, addresses: &[Arc<str>], prefix: &str) -> Mirror {
        let routes = topology.sources.iter().find(|s| s.name == source);
        let mut by_path = HashMap::new();
        for (i, address) in addresses.iter().enumerate() {
            let tag = routes
                .and_then(|r| r.routes.get(i))
                .and_then(|tags| tags.first())
                .and_then(|t| topology.tag(*t));
            let Some(tag) = tag else { continue };
            let converted = tag.binding.as_ref().and_then(|b| {
                b.transforms.iter().find_map(|t| match t {
                    Transform::Convert { from, .. } => Some(from.symbol().to_owned()),
                    _ => None,
                })
            });
            let unit = converted.or_else(|| tag.attribute.unit.as_ref().map(|u| u.symbol().to_owned()));
            by_path.insert(
                address.to_string(),
                Expected {
                    address: u32::try_from(i).unwrap_or(u32::MAX),
                    data_type: tag.attribute.data_type,
                    unit,
                },
            );
        }
        let enterprise = topology.plan.namespace.enterprise.clone();
        Mirror {
            topology,
            prefix: prefix.to_owned(),
            enterprise,
            by_path,
            contexts: HashMap::new(),
            dedup: Dedup::default(),
            logged: HashSet::new(),
        }
    }

    fn ours(&self, path: &str) -> bool {
        path.split('/').next() == Some(self.enterprise.as_str())
    }

    /// What the message on `subject` from `gateway` (its `Backplane-Gateway` header) means.
    pub fn ingest(&mut self, subject: &str, gateway: &str, payload: &[u8], out: &mut Vec<Action>) {
        match subjects::parse(&self.prefix, subject) {
            None => out.push(Action::Refused(Refusal::Subject)),
            Some(Parsed::Definitions) => match serde_json::from_slice::<Definitions>(payload) {
                Ok(d) if d.kind == "definitions" && d.enterprise == self.enterprise => {
                    out.push(Action::Definitions(d))
                }
                Ok(d) if d.kind == "definitions" => out.push(Action::Refused(Refusal::OtherEnterprise)),
                _ => out.push(Action::Refused(Refusal::Garbage)),
            },
            Some(Parsed::Sample(_)) => match serde_json::from_slice::<SampleIn>(payload) {
                Ok(s) => self.sample(s, gateway, out),
                Err(_) => out.push(Action::Refused(Refusal::Garbage)),
            },
            Some(Parsed::Batch { .. }) => match serde_json::from_slice::<Vec<SampleIn>>(payload) {
                Ok(all) => {
                    for s in all {
                        self.sample(s, gateway, out);
                    }
                }
                Err(_) => out.push(Action::Refused(Refusal::Garbage)),
            },
            Some(Parsed::Event { .. }) => match serde_json::from_slice::<EventIn>(payload) {
                Ok(e) if e.kind == "event" => self.event(e, gateway, out),
                _ => out.push(Action::Refused(Refusal::Garbage)),
            },
        }
    }

    fn sample(&mut self, s: SampleIn, gateway: &str, out: &mut Vec<Action>) {
        if s.kind != "sample" {
            return out.push(Action::Refused(Refusal::Garbage));
        }
        if !self.ours(&s.path) {
            return out.push(Action::Refused(Refusal::OtherEnterprise));
        }
        let Some(expected) = self.by_path.get(&s.path) else {
            return out.push(Action::Refused(Refusal::Unknown));
        };
        let Some(asset) = self.topology.asset_index(&s.asset) else {
            return out.push(Action::Refused(Refusal::Unknown));
        };
        let Some(quality) = Quality::from_names(&s.quality, s.quality_reason.as_deref()) else {
            return out.push(Action::Refused(Refusal::Garbage));
        };
        let address = expected.address;
        let source_time = Some(s.source_time.unwrap_or(s.gateway_time));
        let drift = DataType::parse(&s.data_type) != Some(expected.data_type) || s.unit != expected.unit;
        let value = if drift {
            None
        } else {
            match &s.value {
                None | Some(serde_json::Value::Null) => None,
                Some(v) => match json_value(v, expected.data_type) {
                    Some(v) => Some(v),
                    None => return out.push(Action::Refused(Refusal::Garbage)),
                },
            }
        };
        if let Some(seq) = s.seq
            && self.dedup.is_duplicate(gateway, seq)
        {
            return out.push(Action::Duplicate);
        }
        let last = self.contexts.entry(asset).or_default();
        if *last != s.context {
            let mut patch = ContextPatch::default();
            for field in ContextField::ALL {
                match (last.get(field), s.context.get(field)) {
                    (a, b) if a == b => {}
                    (_, Some(v)) => patch = patch.set(field, v),
                    (_, None) => patch = patch.clear(field),
                }
            }
            *last = s.context;
            out.push(Action::Context {
                asset,
                patch,
                gateway: gateway.to_owned(),
            });
        }
        if drift {
            out.push(Action::Reading(RawReading {
                address,
                value: None,
                quality: Quality::Bad(BadReason::ConfigError),
                source_time,
            }));
            out.push(Action::Drift);
        } else {
            out.push(Action::Reading(RawReading {
                address,
                value,
                quality,
                source_time,
            }));
        }
    }

    fn event(&mut self, e: EventIn, gateway: &str, out: &mut Vec<Action>) {
        let path = e.event.asset.as_str();
        if !self.ours(path) {
            return out.push(Action::Refused(Refusal::OtherEnterprise));
        }
        if self.topology.asset_index(path).is_none() {
            return out.push(Action::Refused(Refusal::Unknown));
        }
        if let Some(seq) = e.seq
            && self.dedup.is_duplicate(gateway, seq)
        {
            return out.push(Action::Duplicate);
        }
        if matches!(e.event.kind, EventKind::ContextChanged { .. }) {
            return out.push(Action::Skipped);
        }
        out.push(Action::Events(vec![e.event]));
    }
}

/// A JSON value as the attribute's type; `None` if it is not one.
fn json_value(v: &serde_json::Value, t: DataType) -> Option<Value> {
    match t {
        DataType::Scalar(s) => scalar(v, s),
        DataType::Array(s) => {
            let items = v.as_array()?;
            let values: Option<Vec<Value>> = items.iter().map(|i| scalar(i, s)).collect();
            Some(Value::Array(values?.into()))
        }
    }
}

/// As the edge's payloads write them (`docs/payloads.md`): non-finite floats as the strings
/// `"NaN"`, `"inf"`, `"-inf"`; timestamps as RFC 3339, or `@<nanos>ns` outside its years.
fn scalar(v: &serde_json::Value, s: ScalarType) -> Option<Value> {
    Some(match s {
        ScalarType::Bool => Value::Bool(v.as_bool()?),
        ScalarType::Int => Value::Int(v.as_i64()?),
        ScalarType::UInt => Value::UInt(v.as_u64()?),
        ScalarType::Float => Value::Float(match v.as_str() {
            Some("NaN") => f64::NAN,
            Some("inf") => f64::INFINITY,
            Some("-inf") => f64::NEG_INFINITY,
            Some(_) => return None,
            None => v.as_f64()?,
        }),
        ScalarType::String => Value::String(v.as_str()?.into()),
        ScalarType::Timestamp => Value::Timestamp(Timestamp::deserialize(v).ok()?),
    })
}
