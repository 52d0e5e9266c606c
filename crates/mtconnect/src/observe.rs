//! Observations → raw readings. [`Decoder::resolve`] finds each configured address in the
//! device model (a data item's `id`, else its unique `name`, or [`MACHINE_STATE`]);
//! [`Decoder::decode`] turns the new observations of an answer, in sequence order, into
//! readings, the derived machine state and alarm events.
//!
//! Values: a `SAMPLE` that reads as a number is a float, anything else the agent's text
//! (the engine converts text to the attribute's type: a `PART_COUNT` to `uint`). A
//! condition reads as its level (`normal`, `warning`, `fault`). `UNAVAILABLE` is no value
//! with bad quality (`comm_failure`: the agent has lost the machine's data), never good.

use std::collections::HashMap;
use std::sync::Arc;

use backplane_connector::RawReading;
use backplane_model::sample::Alarm;
use backplane_model::{BadReason, Quality, Timestamp, UncertainReason, Value};

use crate::alarms::Alarms;
use crate::document::{Category, Devices, Level, Observation};
use crate::state::{Inputs, MACHINE_STATE};

/// What one batch of observations came to.
#[derive(Debug, Default)]
pub struct Decoded {
    pub readings: Vec<RawReading>,
    /// Alarm events, each with the address (index) of the condition it belongs to and
    /// the agent's time of the observation.
    pub alarms: Vec<(u32, Option<Timestamp>, Alarm)>,
}

/// The source's addresses resolved against a device model, and what is derived from it.
#[derive(Debug)]
pub struct Decoder {
    source: Arc<str>,
    by_item: HashMap<String, Vec<u32>>,
    machine_state: Vec<u32>,
    /// Addresses the device model does not have: always bad (`config_error`).
    pub unknown: Vec<(u32, String)>,
    inputs: Inputs,
    last_state: Option<Option<&'static str>>,
    alarms: Alarms,
}

impl Decoder {
    /// Resolves `addresses` in `model`.
    pub fn resolve(source: &str, addresses: &[Arc<str>], model: &Devices) -> Decoder {
        let items: Vec<_> = model.devices.iter().flat_map(|d| d.data_items.iter()).collect();
        let mut by_item: HashMap<String, Vec<u32>> = HashMap::new();
        let mut machine_state = Vec::new();
        let mut unknown = Vec::new();
        for (i, address) in addresses.iter().enumerate() {
            let i = i as u32;
            if &**address == MACHINE_STATE {
                machine_state.push(i);
                continue;
            }
            if items.iter().any(|d| d.id == **address) {
                by_item.entry(address.to_string()).or_default().push(i);
                continue;
            }
            let named: Vec<_> = items
                .iter()
                .filter(|d| d.name.as_deref() == Some(&**address))
                .collect();
            match named.as_slice() {
                [one] => by_item.entry(one.id.clone()).or_default().push(i),
                [] => unknown.push((
                    i,
                    format!("`{address}` is no data item id or name of the agent's device model"),
                )),
                many => unknown.push((
                    i,
                    format!(
                        "`{address}` names {} data items ({}); use the id",
                        many.len(),
                        many.iter().map(|d| d.id.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                )),
            }
        }
        Decoder {
            source: source.into(),
            by_item,
            machine_state,
            unknown,
            inputs: Inputs::default(),
            last_state: None,
            alarms: Alarms::default(),
        }
    }

    /// Readings for the addresses the model does not have.
    pub fn unknown_readings(&self) -> Vec<RawReading> {
        self.unknown
            .iter()
            .map(|(i, _)| RawReading {
                address: *i,
                value: None,
                quality: Quality::Bad(BadReason::ConfigError),
                source_time: None,
            })
            .collect()
    }

    /// Decodes observations already in sequence order. A `snapshot` (the answer to
    /// `current`) holds the latest value of each item, not a history: the machine state
    /// is derived once, after all of it, rather than through states that never were.
    pub fn decode(&mut self, observations: &[Observation], snapshot: bool) -> Decoded {
        let mut out = Decoded::default();
        let mut snapshot_time = None;
        for o in observations {
            let (value, quality, source_time) = reading(o);
            if let Some(addresses) = self.by_item.get(&o.data_item_id) {
                let alarms = match o.category {
                    Category::Condition => self.alarms.observe(&self.source, o),
                    _ => Vec::new(),
                };
                for &address in addresses {
                    out.readings.push(RawReading {
                        address,
                        value: value.clone(),
                        quality,
                        source_time,
                    });
                    for alarm in &alarms {
                        out.alarms.push((address, source_time, alarm.clone()));
                    }
                }
            }
            if !self.machine_state.is_empty() && self.inputs.observe(o) {
                if snapshot {
                    snapshot_time = snapshot_time.max(source_time);
                    continue;
                }
                self.state_changed(source_time, &mut out);
            }
        }
        if snapshot {
            self.state_changed(snapshot_time, &mut out);
        }
        out
    }

    /// A reading of every `machine_state` address if the derived state changed.
    fn state_changed(&mut self, source_time: Option<Timestamp>, out: &mut Decoded) {
        if self.machine_state.is_empty() {
            return;
        }
        let state = self.inputs.state();
        if self.last_state != Some(state) {
            self.last_state = Some(state);
            for &address in &self.machine_state {
                out.readings.push(RawReading {
                    address,
                    value: state.map(|s| Value::String(s.into())),
                    quality: match state {
                        Some(_) => Quality::Good,
                        None => Quality::Bad(BadReason::CommFailure),
                    },
                    source_time,
                });
            }
        }
    }
}

/// The value, quality and source time of one observation.
fn reading(o: &Observation) -> (Option<Value>, Quality, Option<Timestamp>) {
    let time = o.timestamp.as_deref().map(|t| Timestamp::parse_rfc3339(t.trim()));
    let source_time = time.flatten();
    let value = match (&o.value, o.category, o.level) {
        (None, _, _) | (_, _, Some(Level::Unavailable)) => {
            return (None, Quality::Bad(BadReason::CommFailure), source_time);
        }
        (Some(_), Category::Condition, Some(level)) => Value::String(level.name().into()),
        (Some(text), Category::Sample, _) => match text.trim().parse::<f64>() {
            Ok(x) => Value::Float(x),
            Err(_) => Value::String(text.as_str().into()),
        },
        (Some(text), _, _) => Value::String(text.as_str().into()),
    };
    let quality = match time {
        Some(None) => Quality::Uncertain(UncertainReason::SourceTimeInvalid),
        _ => Quality::Good,
    };
    (Some(value), quality, source_time)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::document::{DataItem, Device, Header};

    fn model() -> Devices {
        let item = |id: &str, name: &str, category: &str| DataItem {
            id: id.into(),
            name: Some(name.into()),
            category: category.into(),
            ..DataItem::default()
        };
        Devices {
            header: Header::default(),
            devices: vec![Device {
                data_items: vec![
                    item("x1", "Xact", "SAMPLE"),
                    item("e1", "execution", "EVENT"),
                    item("a1", "avail", "EVENT"),
                    item("p1", "pos", "SAMPLE"),
                    item("p2", "pos", "SAMPLE"),
                ],
                ..Device::default()
            }],
        }
    }

    fn obs(id: &str, element: &str, category: Category, value: Option<&str>, time: &str) -> Observation {
        Observation {
            data_item_id: id.into(),
            name: None,
            sequence: 1,
            timestamp: Some(time.into()),
            category,
            element: element.into(),
            value: value.map(Into::into),
            level: None,
            condition: None,
            device: "d".into(),
        }
    }

    #[test]
    fn addresses_resolve_by_id_then_unique_name() {
        let addresses: Vec<Arc<str>> = ["x1", "execution", "pos", "nope", MACHINE_STATE]
            .into_iter()
            .map(Into::into)
            .collect();
        let d = Decoder::resolve("cnc", &addresses, &model());
        let unknown: Vec<u32> = d.unknown.iter().map(|u| u.0).collect();
        assert_eq!(unknown, [2, 3]);
        assert!(d.unknown[0].1.contains("p1, p2"), "{:?}", d.unknown);
        assert_eq!(
            d.unknown_readings()[0].quality,
            Quality::Bad(BadReason::ConfigError)
        );
    }

    #[test]
    fn unavailable_is_bad_and_a_bad_time_is_uncertain() {
        let addresses: Vec<Arc<str>> = ["x1", "e1", MACHINE_STATE].into_iter().map(Into::into).collect();
        let mut d = Decoder::resolve("cnc", &addresses, &model());
        let t = "2026-12-05T10:00:00.5Z";
        let out = d.decode(
            &[
                obs("x1", "Position", Category::Sample, Some("12.5"), t),
                obs("x1", "Position", Category::Sample, None, t),
                obs("e1", "Execution", Category::Event, Some("ACTIVE"), "noon"),
                obs("a1", "Availability", Category::Event, Some("AVAILABLE"), t),
            ],
            false,
        );
        let r = &out.readings;
        assert_eq!(
            (r[0].value.clone(), r[0].quality),
            (Some(Value::Float(12.5)), Quality::Good)
        );
        assert_eq!(r[0].source_time, Timestamp::parse_rfc3339(t));
        assert_eq!(
            (r[1].value.clone(), r[1].quality),
            (None, Quality::Bad(BadReason::CommFailure))
        );
        assert_eq!(
            r[2].quality,
            Quality::Uncertain(UncertainReason::SourceTimeInvalid)
        );
        // machine_state: bad until availability is known, then running.
        let states: Vec<_> = r
            .iter()
            .filter(|x| x.address == 2)
            .map(|x| x.value.clone())
            .collect();
        assert_eq!(states, [None, Some(Value::String("running".into()))]);
    }
}
