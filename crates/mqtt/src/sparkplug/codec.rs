//! Sparkplug B on the wire: topics, the protobuf payload (bounded, panic-free decoding),
//! metric datatypes and values, and the quality property.
//!
//! Datatype mapping (Sparkplug 3.0 §6.4.16): Backplane `bool` → Boolean, `int` → Int64,
//! `uint` → UInt64, `float` → Double, `string` → String, `timestamp` → DateTime (ms since
//! the epoch), and arrays to the matching `…Array` types, packed little-endian in
//! `bytes_value`. Decoding accepts every scalar and array type of the specification.

use backplane_model::{BadReason, DataType, Quality, ScalarType, Timestamp, UncertainReason, Value};
use prost::Message;

use super::proto::payload::{Metric, PropertySet, PropertyValue, metric, property_value};
use super::proto::{DataType as SpType, Payload};

/// The namespace of every Sparkplug B topic.
pub const NAMESPACE: &str = "spBv1.0";

/// Hard upper bound on a payload we decode, whatever the configuration says.
pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024 * 1024;

/// Why a payload could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    #[error("payload of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("not a Sparkplug B payload: {0}")]
    Protobuf(String),
}

/// Decodes a Sparkplug B payload. Never panics: oversized input is refused before
/// decoding, and prost bounds nesting depth (templates and property sets nest).
pub fn decode_payload(bytes: &[u8], max: usize) -> Result<Payload, DecodeError> {
    let max = max.min(MAX_PAYLOAD_BYTES);
    if bytes.len() > max {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max,
        });
    }
    Payload::decode(bytes).map_err(|e| DecodeError::Protobuf(e.to_string()))
}

pub fn encode_payload(payload: &Payload) -> Vec<u8> {
    payload.encode_to_vec()
}

/// Sparkplug message types (the third topic level).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageType {
    NBirth,
    NDeath,
    DBirth,
    DDeath,
    NData,
    DData,
    NCmd,
    DCmd,
}

impl MessageType {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::NBirth => "NBIRTH",
            MessageType::NDeath => "NDEATH",
            MessageType::DBirth => "DBIRTH",
            MessageType::DDeath => "DDEATH",
            MessageType::NData => "NDATA",
            MessageType::DData => "DDATA",
            MessageType::NCmd => "NCMD",
            MessageType::DCmd => "DCMD",
        }
    }

    fn parse(text: &str) -> Option<MessageType> {
        Some(match text {
            "NBIRTH" => MessageType::NBirth,
            "NDEATH" => MessageType::NDeath,
            "DBIRTH" => MessageType::DBirth,
            "DDEATH" => MessageType::DDeath,
            "NDATA" => MessageType::NData,
            "DDATA" => MessageType::DData,
            "NCMD" => MessageType::NCmd,
            "DCMD" => MessageType::DCmd,
            _ => return None,
        })
    }

    fn is_device(self) -> bool {
        matches!(
            self,
            MessageType::DBirth | MessageType::DDeath | MessageType::DData | MessageType::DCmd
        )
    }
}

/// A parsed Sparkplug topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Topic<'a> {
    /// `spBv1.0/{group}/{type}/{node}[/{device}]`.
    Edge {
        group: &'a str,
        kind: MessageType,
        node: &'a str,
        device: Option<&'a str>,
    },
    /// `spBv1.0/STATE/{host}`: a host application's state.
    State { host: &'a str },
}

impl<'a> Topic<'a> {
    pub fn parse(topic: &'a str) -> Option<Topic<'a>> {
        let mut levels = topic.split('/');
        if levels.next()? != NAMESPACE {
            return None;
        }
        let group = levels.next()?;
        if group == "STATE" {
            let host = levels.next()?;
            return (levels.next().is_none() && !host.is_empty()).then_some(Topic::State { host });
        }
        let kind = MessageType::parse(levels.next()?)?;
        let node = levels.next()?;
        let device = levels.next();
        if levels.next().is_some() || group.is_empty() || node.is_empty() {
            return None;
        }
        if kind.is_device() != device.is_some() || device.is_some_and(str::is_empty) {
            return None;
        }
        Some(Topic::Edge {
            group,
            kind,
            node,
            device,
        })
    }
}

/// Builds `spBv1.0/{group}/{type}/{node}[/{device}]`.
pub fn topic(group: &str, kind: MessageType, node: &str, device: Option<&str>) -> String {
    match device {
        Some(d) => format!("{NAMESPACE}/{group}/{}/{node}/{d}", kind.as_str()),
        None => format!("{NAMESPACE}/{group}/{}/{node}", kind.as_str()),
    }
}

/// Why a group, node or device id cannot be used in a topic.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Empty, or longer than 256 bytes.
    #[error("a Sparkplug id must be 1 to 256 characters")]
    Length,
    /// A topic separator or wildcard.
    #[error("Sparkplug id `{id}` contains `/`, `+` or `#`")]
    Reserved { id: String },
    /// A character MQTT forbids in topic names.
    #[error("Sparkplug id `{}` contains a NUL character, which MQTT topics cannot", id.escape_debug())]
    Nul { id: String },
}

/// Checks a group, node or device id: a non-empty UTF-8 string without `/`, `+` or `#`
/// (Sparkplug's reserved characters) or NUL (which MQTT forbids in topics).
pub fn validate_id(id: &str) -> Result<(), IdError> {
    if id.is_empty() || id.len() > 256 {
        return Err(IdError::Length);
    }
    if id.contains(['/', '+', '#']) {
        return Err(IdError::Reserved { id: id.to_owned() });
    }
    if id.contains('\0') {
        return Err(IdError::Nul { id: id.to_owned() });
    }
    Ok(())
}

/// The Sparkplug datatype a Backplane attribute type is published as.
pub fn datatype_for(t: DataType) -> SpType {
    match t {
        DataType::Scalar(s) => match s {
            ScalarType::Bool => SpType::Boolean,
            ScalarType::Int => SpType::Int64,
            ScalarType::UInt => SpType::UInt64,
            ScalarType::Float => SpType::Double,
            ScalarType::String => SpType::String,
            ScalarType::Timestamp => SpType::DateTime,
        },
        DataType::Array(s) => match s {
            ScalarType::Bool => SpType::BooleanArray,
            ScalarType::Int => SpType::Int64Array,
            ScalarType::UInt => SpType::UInt64Array,
            ScalarType::Float => SpType::DoubleArray,
            ScalarType::String => SpType::StringArray,
            ScalarType::Timestamp => SpType::DateTimeArray,
        },
    }
}

/// Booleans, and the numbers 0 and 1 (registers and coils often carry flags as numbers).
pub fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        other => match other.as_u64()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        },
    }
}

pub fn millis(t: Timestamp) -> u64 {
    u64::try_from(t.unix_nanos().div_euclid(1_000_000)).unwrap_or(0)
}

/// Encodes a value as the given datatype; `None` if it cannot be (the metric is then sent
/// with `is_null`).
pub fn encode_value(value: &Value, datatype: SpType) -> Option<metric::Value> {
    use metric::Value as V;
    Some(match datatype {
        SpType::Boolean => V::BooleanValue(as_bool(value)?),
        SpType::Int64 => V::LongValue(value.as_i64()? as u64),
        SpType::UInt64 => V::LongValue(value.as_u64()?),
        SpType::Double => V::DoubleValue(value.as_f64()?),
        SpType::String | SpType::Text => V::StringValue(match value {
            Value::String(s) => s.to_string(),
            other => other.to_string(),
        }),
        SpType::DateTime => V::LongValue(match value {
            Value::Timestamp(t) => millis(*t),
            other => other.as_u64()?,
        }),
        SpType::BooleanArray
        | SpType::Int64Array
        | SpType::UInt64Array
        | SpType::DoubleArray
        | SpType::StringArray
        | SpType::DateTimeArray => {
            let Value::Array(items) = value else { return None };
            let mut out = Vec::new();
            match datatype {
                SpType::BooleanArray => {
                    let bits: Option<Vec<bool>> = items.iter().map(as_bool).collect();
                    let bits = bits?;
                    out.extend_from_slice(&(bits.len() as u32).to_le_bytes());
                    for chunk in bits.chunks(8) {
                        let byte = chunk
                            .iter()
                            .enumerate()
                            .fold(0u8, |b, (i, bit)| if *bit { b | (0x80 >> i) } else { b });
                        out.push(byte);
                    }
                }
                SpType::StringArray => {
                    for item in items.iter() {
                        let Value::String(s) = item else { return None };
                        out.extend_from_slice(s.as_bytes());
                        out.push(0);
                    }
                }
                _ => {
                    for item in items.iter() {
                        let bytes = match datatype {
                            SpType::Int64Array => item.as_i64()?.to_le_bytes(),
                            SpType::UInt64Array => item.as_u64()?.to_le_bytes(),
                            SpType::DoubleArray => item.as_f64()?.to_le_bytes(),
                            _ => match item {
                                Value::Timestamp(t) => millis(*t).to_le_bytes(),
                                other => other.as_u64()?.to_le_bytes(),
                            },
                        };
                        out.extend_from_slice(&bytes);
                    }
                }
            }
            V::BytesValue(out.into())
        }
        _ => return None,
    })
}

/// A metric whose value is not of its datatype (an unknown datatype never matches).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("metric value does not match its datatype {datatype}")]
pub struct DatatypeMismatch {
    /// The datatype's name in the specification (`Int32`, `Unknown`).
    pub datatype: &'static str,
}

/// Decodes a metric's value given its datatype (from the metric or its birth). `Ok(None)`
/// for a null metric.
pub fn decode_value(m: &Metric, datatype: u32) -> Result<Option<Value>, DatatypeMismatch> {
    use metric::Value as V;
    if m.is_null == Some(true) {
        return Ok(None);
    }
    let Some(raw) = &m.value else {
        return Ok(None);
    };
    let t = SpType::try_from(datatype as i32).unwrap_or(SpType::Unknown);
    let mismatch = || DatatypeMismatch {
        datatype: t.as_str_name(),
    };
    let v = match (t, raw) {
        (SpType::Int8, V::IntValue(i)) => Value::Int(i64::from(*i as i8)),
        (SpType::Int16, V::IntValue(i)) => Value::Int(i64::from(*i as i16)),
        (SpType::Int32, V::IntValue(i)) => Value::Int(i64::from(*i as i32)),
        (SpType::Int64, V::LongValue(i)) => Value::Int(*i as i64),
        (SpType::UInt8, V::IntValue(i)) => Value::UInt(u64::from(*i as u8)),
        (SpType::UInt16, V::IntValue(i)) => Value::UInt(u64::from(*i as u16)),
        (SpType::UInt32, V::IntValue(i)) => Value::UInt(u64::from(*i)),
        // Some encoders put small unsigned values in long_value; accept them.
        (SpType::UInt32, V::LongValue(i)) | (SpType::UInt64, V::LongValue(i)) => Value::UInt(*i),
        (SpType::Float, V::FloatValue(f)) => Value::Float(f64::from(*f)),
        (SpType::Double, V::DoubleValue(f)) => Value::Float(*f),
        (SpType::Boolean, V::BooleanValue(b)) => Value::Bool(*b),
        (SpType::String | SpType::Text | SpType::Uuid, V::StringValue(s)) => Value::String(s.as_str().into()),
        (SpType::DateTime, V::LongValue(ms)) => Value::Timestamp(Timestamp::from_unix_millis(
            i64::try_from(*ms).map_err(|_| mismatch())?,
        )),
        (_, V::BytesValue(b)) => decode_array(t, b).ok_or_else(mismatch)?,
        _ => return Err(mismatch()),
    };
    Ok(Some(v))
}

fn decode_array(t: SpType, b: &[u8]) -> Option<Value> {
    fn fixed<const N: usize>(b: &[u8], f: impl Fn([u8; N]) -> Value) -> Option<Vec<Value>> {
        if !b.len().is_multiple_of(N) {
            return None;
        }
        Some(
            b.chunks_exact(N)
                .map(|c| {
                    let mut a = [0u8; N];
                    a.copy_from_slice(c);
                    f(a)
                })
                .collect(),
        )
    }
    let items = match t {
        SpType::Int8Array => fixed::<1>(b, |a| Value::Int(i64::from(i8::from_le_bytes(a))))?,
        SpType::Int16Array => fixed::<2>(b, |a| Value::Int(i64::from(i16::from_le_bytes(a))))?,
        SpType::Int32Array => fixed::<4>(b, |a| Value::Int(i64::from(i32::from_le_bytes(a))))?,
        SpType::Int64Array => fixed::<8>(b, |a| Value::Int(i64::from_le_bytes(a)))?,
        SpType::UInt8Array => fixed::<1>(b, |a| Value::UInt(u64::from(a[0])))?,
        SpType::UInt16Array => fixed::<2>(b, |a| Value::UInt(u64::from(u16::from_le_bytes(a))))?,
        SpType::UInt32Array => fixed::<4>(b, |a| Value::UInt(u64::from(u32::from_le_bytes(a))))?,
        SpType::UInt64Array => fixed::<8>(b, |a| Value::UInt(u64::from_le_bytes(a)))?,
        SpType::FloatArray => fixed::<4>(b, |a| Value::Float(f64::from(f32::from_le_bytes(a))))?,
        SpType::DoubleArray => fixed::<8>(b, |a| Value::Float(f64::from_le_bytes(a)))?,
        SpType::DateTimeArray => fixed::<8>(b, |a| {
            Value::Timestamp(Timestamp::from_unix_millis(
                i64::try_from(u64::from_le_bytes(a)).unwrap_or(i64::MAX),
            ))
        })?,
        SpType::BooleanArray => {
            let count = u32::from_le_bytes(b.get(..4)?.try_into().ok()?) as usize;
            let bits = b.get(4..)?;
            if count > bits.len() * 8 {
                return None;
            }
            (0..count)
                .map(|i| Value::Bool(bits[i / 8] & (0x80 >> (i % 8)) != 0))
                .collect()
        }
        SpType::StringArray => {
            let text = std::str::from_utf8(b).ok()?;
            let text = text.strip_suffix('\0').unwrap_or(text);
            if text.is_empty() {
                Vec::new()
            } else {
                text.split('\0').map(|s| Value::String(s.into())).collect()
            }
        }
        _ => return None,
    };
    Some(Value::Array(items.into()))
}

/// The `Quality` metric property (Sparkplug 3.0 §6.4.9.1): an Int32 that is 192 (GOOD),
/// 500 (STALE) or 0 (BAD), the only codes the specification allows.
pub const QUALITY_PROPERTY: &str = "Quality";

/// 192 good, 500 uncertain (Sparkplug's STALE: the value is kept but is not to be taken as
/// current), 0 bad. The reason does not travel.
pub fn quality_code(q: Quality) -> u32 {
    match q {
        Quality::Good => 192,
        Quality::Uncertain(_) => 500,
        Quality::Bad(_) => 0,
    }
}

pub fn quality_property(q: Quality) -> (String, PropertyValue) {
    (
        QUALITY_PROPERTY.to_owned(),
        PropertyValue {
            r#type: Some(SpType::Int32 as u32),
            is_null: None,
            value: Some(property_value::Value::IntValue(quality_code(q))),
        },
    )
}

/// The quality a metric carries: its `Quality` property when present, else good (bad for
/// a null value). 500 (STALE) reads uncertain (last usable value); 64–191, the OPC DA
/// uncertain class some peers still send, uncertain; 192–255 good; anything else bad.
pub fn metric_quality(m: &Metric) -> Quality {
    let code = m
        .properties
        .as_ref()
        .and_then(|p| property(p, QUALITY_PROPERTY))
        .and_then(|v| match v.value {
            Some(property_value::Value::IntValue(i)) => Some(i64::from(i as i32)),
            Some(property_value::Value::LongValue(i)) => Some(i as i64),
            _ => None,
        });
    match code {
        Some(192..=255) => Quality::Good,
        Some(500) => Quality::Uncertain(UncertainReason::LastUsableValue),
        Some(64..=191) => Quality::Uncertain(UncertainReason::Unspecified),
        Some(_) => Quality::Bad(BadReason::Unspecified),
        None if m.is_null == Some(true) => Quality::Bad(BadReason::Unspecified),
        None => Quality::Good,
    }
}

pub fn property<'p>(set: &'p PropertySet, key: &str) -> Option<&'p PropertyValue> {
    set.keys
        .iter()
        .position(|k| k == key)
        .and_then(|i| set.values.get(i))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn metric(datatype: SpType, value: metric::Value) -> Metric {
        Metric {
            datatype: Some(datatype as u32),
            value: Some(value),
            ..Metric::default()
        }
    }

    #[test]
    fn topics_parse_and_reject_what_the_specification_forbids() {
        assert_eq!(
            Topic::parse("spBv1.0/g/DDATA/n/d"),
            Some(Topic::Edge {
                group: "g",
                kind: MessageType::DData,
                node: "n",
                device: Some("d")
            })
        );
        assert_eq!(
            Topic::parse("spBv1.0/STATE/host"),
            Some(Topic::State { host: "host" })
        );
        assert_eq!(
            Topic::parse("spBv1.0/g/NDATA/n/d"),
            None,
            "node message with a device"
        );
        assert_eq!(
            Topic::parse("spBv1.0/g/DDATA/n"),
            None,
            "device message without one"
        );
        assert_eq!(Topic::parse("spBv1.0/g/XDATA/n"), None);
        assert_eq!(Topic::parse("spAv1.0/g/NDATA/n"), None);
        assert_eq!(topic("g", MessageType::NBirth, "n", None), "spBv1.0/g/NBIRTH/n");
    }

    /// A value of every Backplane type, with its type (shared with the DDATA writer's test).
    pub(crate) fn every_type() -> Vec<(DataType, Value)> {
        vec![
            (DataType::Scalar(ScalarType::Bool), Value::Bool(true)),
            (DataType::Scalar(ScalarType::Int), Value::Int(-5)),
            (DataType::Scalar(ScalarType::UInt), Value::UInt(u64::MAX)),
            (DataType::Scalar(ScalarType::Float), Value::Float(4.25)),
            (
                DataType::Scalar(ScalarType::String),
                Value::String("running".into()),
            ),
            (
                DataType::Scalar(ScalarType::Timestamp),
                Value::Timestamp(Timestamp::from_unix_millis(1_700_000_000_123)),
            ),
            (
                DataType::Array(ScalarType::Bool),
                Value::Array(vec![Value::Bool(true), Value::Bool(false), Value::Bool(true)].into()),
            ),
            (
                DataType::Array(ScalarType::Int),
                Value::Array(vec![Value::Int(-1), Value::Int(2)].into()),
            ),
            (
                DataType::Array(ScalarType::Float),
                Value::Array(vec![Value::Float(1.5)].into()),
            ),
            (
                DataType::Array(ScalarType::String),
                Value::Array(vec![Value::String("a".into()), Value::String("".into())].into()),
            ),
        ]
    }

    #[test]
    fn every_backplane_type_round_trips_through_its_sparkplug_datatype() {
        let values = every_type();
        for (t, v) in values {
            let sp = datatype_for(t);
            let m = metric(sp, encode_value(&v, sp).unwrap());
            assert_eq!(decode_value(&m, sp as u32), Ok(Some(v.clone())), "{t}");
        }
    }

    #[test]
    fn small_integer_types_are_sign_extended_from_int_value() {
        let m = metric(SpType::Int16, metric::Value::IntValue(0xFFFF_FFFE));
        assert_eq!(decode_value(&m, SpType::Int16 as u32), Ok(Some(Value::Int(-2))));
        let m = metric(SpType::UInt8, metric::Value::IntValue(200));
        assert_eq!(decode_value(&m, SpType::UInt8 as u32), Ok(Some(Value::UInt(200))));
        let m = metric(SpType::Float, metric::Value::FloatValue(0.5));
        assert_eq!(
            decode_value(&m, SpType::Float as u32),
            Ok(Some(Value::Float(0.5)))
        );
    }

    #[test]
    fn mismatched_values_and_ragged_arrays_are_errors_not_panics() {
        let m = metric(SpType::Boolean, metric::Value::StringValue("x".into()));
        assert!(decode_value(&m, SpType::Boolean as u32).is_err());
        let m = metric(
            SpType::Int32Array,
            metric::Value::BytesValue(vec![1, 2, 3].into()),
        );
        assert!(decode_value(&m, SpType::Int32Array as u32).is_err());
        let m = metric(
            SpType::BooleanArray,
            metric::Value::BytesValue(vec![9, 0, 0, 0, 1].into()),
        );
        assert!(decode_value(&m, SpType::BooleanArray as u32).is_err());
        let m = metric(SpType::Int64, metric::Value::LongValue(1));
        assert!(decode_value(&m, 999).is_err());
    }

    #[test]
    fn oversized_and_garbage_payloads_are_refused() {
        assert!(matches!(
            decode_payload(&[0u8; 100], 10),
            Err(DecodeError::TooLarge { len: 100, max: 10 })
        ));
        assert!(decode_payload(&[0xff, 0xff, 0xff], 1024).is_err());
    }

    #[test]
    fn quality_travels_as_an_opc_da_code_property() {
        let (key, value) = quality_property(Quality::Bad(BadReason::CommFailure));
        let m = Metric {
            properties: Some(PropertySet {
                keys: vec![key],
                values: vec![value],
            }),
            ..Metric::default()
        };
        assert_eq!(metric_quality(&m), Quality::Bad(BadReason::Unspecified));
        assert_eq!(metric_quality(&Metric::default()), Quality::Good);
    }
}
