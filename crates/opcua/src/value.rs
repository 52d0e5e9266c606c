//! OPC UA values to Backplane values: the built-in types, arrays of them, and the fields
//! of structures whose type the session knows. Anything else is a per-tag error (the tag
//! turns bad and the reason is logged), never a failed connection.

use std::sync::Arc;

use backplane_model::{BadReason, Quality, Timestamp, Value};
use opcua::types::custom::DynamicStructure;
use opcua::types::{ByteStringBody, DataValue, DateTime, ExtensionObject, Variant};

use crate::address::node_id_text;

/// A timestamp, or `None` for OPC UA's "no time" (ticks 0, the minimum DateTime).
pub fn timestamp(time: &DateTime) -> Option<Timestamp> {
    // From the calendar time the DateTime holds: `DateTime::ticks()` builds chrono's 1601
    // epoch on every call (about 60 instructions a value). A DateTime outside what Unix
    // nanoseconds hold (1677–2262) has no timestamp, as before; so has the minimum one
    // (1601, OPC UA's "no time").
    time.as_chrono()
        .timestamp_nanos_opt()
        .map(Timestamp::from_unix_nanos)
}

/// Why a value could not be delivered. `Unsupported` is a configuration matter (the tag
/// names something Backplane cannot represent); `UnknownStructure` may resolve once the
/// session has loaded the server's data types.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValueError {
    Unsupported(String),
    UnknownStructure(String),
}

impl ValueError {
    pub fn message(&self) -> &str {
        match self {
            ValueError::Unsupported(m) | ValueError::UnknownStructure(m) => m,
        }
    }

    pub fn quality(&self) -> Quality {
        Quality::Bad(match self {
            ValueError::Unsupported(_) => BadReason::ConfigError,
            ValueError::UnknownStructure(_) => BadReason::TypeMismatch,
        })
    }
}

/// Converts a variant; `field` picks a field out of a structure (`a.b` for nested ones).
pub fn convert(variant: &Variant, field: Option<&str>) -> Result<Option<Value>, ValueError> {
    if let Some(path) = field {
        return pick_field(variant, path).and_then(|v| convert(&v, None));
    }
    Ok(Some(match variant {
        Variant::Empty => return Ok(None),
        Variant::Boolean(b) => Value::Bool(*b),
        Variant::SByte(n) => Value::Int(i64::from(*n)),
        Variant::Int16(n) => Value::Int(i64::from(*n)),
        Variant::Int32(n) => Value::Int(i64::from(*n)),
        Variant::Int64(n) => Value::Int(*n),
        Variant::Byte(n) => Value::UInt(u64::from(*n)),
        Variant::UInt16(n) => Value::UInt(u64::from(*n)),
        Variant::UInt32(n) => Value::UInt(u64::from(*n)),
        Variant::UInt64(n) => Value::UInt(*n),
        Variant::Float(x) => Value::Float(f64::from(*x)),
        Variant::Double(x) => Value::Float(*x),
        Variant::String(s) => Value::String(Arc::from(s.as_ref())),
        Variant::DateTime(t) => match timestamp(t) {
            Some(t) => Value::Timestamp(t),
            None => return Ok(None),
        },
        Variant::Guid(g) => Value::String(Arc::from(g.to_string())),
        Variant::StatusCode(s) => Value::UInt(u64::from(s.bits())),
        // Bytes as an array of numbers 0 to 255: Backplane has no byte-string type.
        Variant::ByteString(b) => Value::Array(
            b.value
                .as_deref()
                .unwrap_or_default()
                .iter()
                .map(|b| Value::UInt(u64::from(*b)))
                .collect(),
        ),
        Variant::XmlElement(x) => Value::String(Arc::from(x.to_string())),
        Variant::QualifiedName(q) => Value::String(Arc::from(q.name.as_ref())),
        Variant::LocalizedText(t) => Value::String(Arc::from(t.text.as_ref())),
        Variant::NodeId(n) => Value::String(Arc::from(node_id_text(n))),
        Variant::ExpandedNodeId(n) => Value::String(Arc::from(n.to_string())),
        Variant::Variant(inner) => return convert(inner, None),
        Variant::DataValue(dv) => match &dv.value {
            Some(inner) => return convert(inner, None),
            None => return Ok(None),
        },
        Variant::ExtensionObject(obj) => return Err(structure_error(obj)),
        Variant::DiagnosticInfo(_) => {
            return Err(ValueError::Unsupported("a DiagnosticInfo is not a value".into()));
        }
        Variant::Array(array) => {
            let mut out = Vec::with_capacity(array.values.len());
            for element in &array.values {
                match convert(element, None)? {
                    Some(Value::Array(_)) => {
                        return Err(ValueError::Unsupported(
                            "arrays of byte strings or nested arrays have no Backplane type".into(),
                        ));
                    }
                    Some(v) => out.push(v),
                    None => {
                        return Err(ValueError::Unsupported(
                            "the array holds empty elements, which have no Backplane value".into(),
                        ));
                    }
                }
            }
            Value::Array(out.into())
        }
    }))
}

fn structure_error(obj: &ExtensionObject) -> ValueError {
    if let Some(body) = obj.inner_as::<ByteStringBody>() {
        return ValueError::UnknownStructure(format!(
            "a structure of unknown type (encoding {}) that the server does not describe; \
             Backplane cannot decode it",
            node_id_text(body.encoding_id())
        ));
    }
    if obj.inner_as::<DynamicStructure>().is_some() {
        return ValueError::Unsupported(
            "the node holds a structure: pick one of its fields with `field=NAME;` before the node id".into(),
        );
    }
    match obj.type_name() {
        Some(name) => ValueError::Unsupported(format!(
            "the node holds a {name} structure; Backplane delivers fields of server-defined structures \
             only (`field=NAME;`)"
        )),
        None => ValueError::Unsupported("the node holds an empty structure".into()),
    }
}

/// The variant at `path` (`a.b`) inside a structure value.
fn pick_field(variant: &Variant, path: &str) -> Result<Variant, ValueError> {
    let mut current = variant.clone();
    for name in path.split('.') {
        let next = match &current {
            Variant::ExtensionObject(obj) => match obj.inner_as::<DynamicStructure>() {
                Some(s) => s
                    .get_field_by_name(name)
                    .cloned()
                    .ok_or_else(|| ValueError::Unsupported(format!("the structure has no field `{name}`")))?,
                None => return Err(structure_error(obj)),
            },
            other => {
                return Err(ValueError::Unsupported(format!(
                    "`field={path}`: the value is a {}, not a structure",
                    kind(other)
                )));
            }
        };
        current = next;
    }
    Ok(current)
}

/// The name of a variant's type, for messages.
pub fn kind(variant: &Variant) -> &'static str {
    match variant {
        Variant::Empty => "empty value",
        Variant::Boolean(_) => "Boolean",
        Variant::SByte(_) => "SByte",
        Variant::Byte(_) => "Byte",
        Variant::Int16(_) => "Int16",
        Variant::UInt16(_) => "UInt16",
        Variant::Int32(_) => "Int32",
        Variant::UInt32(_) => "UInt32",
        Variant::Int64(_) => "Int64",
        Variant::UInt64(_) => "UInt64",
        Variant::Float(_) => "Float",
        Variant::Double(_) => "Double",
        Variant::String(_) => "String",
        Variant::DateTime(_) => "DateTime",
        Variant::Guid(_) => "Guid",
        Variant::StatusCode(_) => "StatusCode",
        Variant::ByteString(_) => "ByteString",
        Variant::XmlElement(_) => "XmlElement",
        Variant::QualifiedName(_) => "QualifiedName",
        Variant::LocalizedText(_) => "LocalizedText",
        Variant::NodeId(_) => "NodeId",
        Variant::ExpandedNodeId(_) => "ExpandedNodeId",
        Variant::ExtensionObject(_) => "structure",
        Variant::Variant(_) => "Variant",
        Variant::DataValue(_) => "DataValue",
        Variant::DiagnosticInfo(_) => "DiagnosticInfo",
        Variant::Array(_) => "array",
    }
}

/// The parts of a reading: value (or the error for it), quality and device time.
pub fn reading_parts(
    dv: &DataValue,
    field: Option<&str>,
) -> (Result<Option<Value>, ValueError>, Quality, Option<Timestamp>) {
    let quality = Quality::from_status_code(dv.status.map_or(0, |s| s.bits()));
    let time = dv
        .source_timestamp
        .as_ref()
        .and_then(timestamp)
        .or_else(|| dv.server_timestamp.as_ref().and_then(timestamp));
    let value = match &dv.value {
        Some(v) => convert(v, field),
        None => Ok(None),
    };
    (value, quality, time)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use opcua::types::{
        Array, ByteString, Guid, LocalizedText, NodeId, StatusCode, UAString, VariantScalarTypeId,
    };

    #[test]
    fn built_in_scalars_become_backplane_values() {
        let cases: Vec<(Variant, Value)> = vec![
            (Variant::Boolean(true), Value::Bool(true)),
            (Variant::SByte(-3), Value::Int(-3)),
            (Variant::Int64(i64::MIN), Value::Int(i64::MIN)),
            (Variant::UInt64(u64::MAX), Value::UInt(u64::MAX)),
            (Variant::Byte(7), Value::UInt(7)),
            (Variant::Float(1.5), Value::Float(1.5)),
            (
                Variant::String(UAString::from("Kühler")),
                Value::String("Kühler".into()),
            ),
            (
                Variant::LocalizedText(Box::new(LocalizedText::new("en", "Running"))),
                Value::String("Running".into()),
            ),
            (
                Variant::NodeId(Box::new(NodeId::new(2, "X"))),
                Value::String("ns=2;s=X".into()),
            ),
            (
                Variant::ByteString(ByteString::from(vec![1u8, 255])),
                Value::Array(vec![Value::UInt(1), Value::UInt(255)].into()),
            ),
            (
                Variant::StatusCode(StatusCode::BadNodeIdUnknown),
                Value::UInt(u64::from(StatusCode::BadNodeIdUnknown.bits())),
            ),
        ];
        for (variant, expected) in cases {
            assert_eq!(convert(&variant, None), Ok(Some(expected)), "{variant:?}");
        }
        assert_eq!(convert(&Variant::Empty, None), Ok(None));
        let guid = Guid::new();
        assert_eq!(
            convert(&Variant::Guid(Box::new(guid.clone())), None),
            Ok(Some(Value::String(guid.to_string().into())))
        );
    }

    /// 100 ns ticks from 1601-01-01 (OPC UA's epoch) to 1970-01-01.
    const UNIX_EPOCH_TICKS: i64 = 116_444_736_000_000_000;

    #[test]
    fn date_times_keep_their_instant() {
        let t = DateTime::from(1_700_000_000_000i64 * 10_000 + UNIX_EPOCH_TICKS);
        assert_eq!(
            timestamp(&t),
            Some(Timestamp::from_unix_millis(1_700_000_000_000))
        );
        // To the tick (100 ns), and before 1970.
        let t = DateTime::from(UNIX_EPOCH_TICKS + 1_234_567);
        assert_eq!(timestamp(&t), Some(Timestamp::from_unix_nanos(123_456_700)));
        let t = DateTime::from(UNIX_EPOCH_TICKS - 3);
        assert_eq!(timestamp(&t), Some(Timestamp::from_unix_nanos(-300)));
        // The minimum DateTime is "no time"; so is what Unix nanoseconds cannot hold.
        assert_eq!(timestamp(&DateTime::null()), None);
        assert_eq!(timestamp(&DateTime::from(1)), None);
        assert_eq!(timestamp(&DateTime::endtimes()), None);
    }

    #[test]
    fn arrays_convert_element_by_element() {
        let array = Array::new(
            VariantScalarTypeId::Int32,
            vec![Variant::Int32(1), Variant::Int32(-2)],
        )
        .unwrap();
        assert_eq!(
            convert(&Variant::Array(Box::new(array)), None),
            Ok(Some(Value::Array(vec![Value::Int(1), Value::Int(-2)].into())))
        );
    }

    #[test]
    fn structures_without_a_known_type_are_a_per_tag_error() {
        let unknown = ExtensionObject::new(ByteStringBody::new(
            ByteString::from(vec![1u8, 2, 3]),
            NodeId::new(3, 5001u32),
        ));
        let e = convert(&Variant::ExtensionObject(unknown), None).unwrap_err();
        assert!(
            matches!(&e, ValueError::UnknownStructure(m) if m.contains("ns=3;i=5001")),
            "{e:?}"
        );
        assert!(e.quality().is_bad());
        let e = convert(&Variant::Int32(1), Some("Speed")).unwrap_err();
        assert!(e.message().contains("not a structure"), "{e:?}");
    }

    #[test]
    fn status_codes_map_to_quality_and_source_time_wins() {
        let dv = DataValue {
            value: Some(Variant::Double(4.2)),
            status: Some(StatusCode::UncertainLastUsableValue),
            source_timestamp: Some(DateTime::from(UNIX_EPOCH_TICKS + 10_000)),
            server_timestamp: Some(DateTime::from(UNIX_EPOCH_TICKS + 20_000)),
            ..Default::default()
        };
        let (value, quality, time) = reading_parts(&dv, None);
        assert_eq!(value, Ok(Some(Value::Float(4.2))));
        assert_eq!(quality.reason(), Some("last_usable_value"));
        assert_eq!(time, Some(Timestamp::from_unix_millis(1)));
    }
}
