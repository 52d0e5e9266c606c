//! Writes to the server, under the write gate (docs/writes.md): the gate has already turned
//! the engineering value into the raw one through the inverse of the binding's transforms;
//! here the raw value becomes a variant of the node's own DataType, goes out in one Write
//! call, and the node is read back.
//!
//! The DataType is read from the server once per node and session ([`TypeCache`]); servers
//! refuse a variant of another type (BadTypeMismatch), so an Int16 node gets an Int16 and a
//! value that does not fit is refused here, naming the node, before anything is sent.

use std::collections::HashMap;

use backplane_model::Value;
use opcua::client::Session;
use opcua::types::{
    AttributeId, DataTypeId, DataValue, DateTime, Identifier, LocalizedText, NodeId, NumericRange,
    QualifiedName, ReadValueId, StatusCode, TimestampsToReturn, UAString, Variant, WriteValue,
};

use crate::address::node_id_text;
use crate::value::kind;

/// The built-in scalar types Backplane writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scalar {
    Boolean,
    SByte,
    Byte,
    Int16,
    UInt16,
    Int32,
    UInt32,
    Int64,
    UInt64,
    Float,
    Double,
    String,
    DateTime,
    LocalizedText,
}

impl Scalar {
    pub fn name(self) -> &'static str {
        match self {
            Scalar::Boolean => "Boolean",
            Scalar::SByte => "SByte",
            Scalar::Byte => "Byte",
            Scalar::Int16 => "Int16",
            Scalar::UInt16 => "UInt16",
            Scalar::Int32 => "Int32",
            Scalar::UInt32 => "UInt32",
            Scalar::Int64 => "Int64",
            Scalar::UInt64 => "UInt64",
            Scalar::Float => "Float",
            Scalar::Double => "Double",
            Scalar::String => "String",
            Scalar::DateTime => "DateTime",
            Scalar::LocalizedText => "LocalizedText",
        }
    }

    /// The built-in type of a DataType node id of namespace 0, with the common subtypes
    /// (Duration, UtcTime, Counter, IntegerId). `None` for abstract and other types.
    fn of_data_type(data_type: &NodeId) -> Option<Scalar> {
        let (0, Identifier::Numeric(id)) = (data_type.namespace, &data_type.identifier) else {
            return None;
        };
        let id = *id;
        Some(match id {
            x if x == DataTypeId::Boolean as u32 => Scalar::Boolean,
            x if x == DataTypeId::SByte as u32 => Scalar::SByte,
            x if x == DataTypeId::Byte as u32 => Scalar::Byte,
            x if x == DataTypeId::Int16 as u32 => Scalar::Int16,
            x if x == DataTypeId::UInt16 as u32 => Scalar::UInt16,
            x if x == DataTypeId::Int32 as u32 => Scalar::Int32,
            x if x == DataTypeId::UInt32 as u32
                || x == DataTypeId::Counter as u32
                || x == DataTypeId::IntegerId as u32 =>
            {
                Scalar::UInt32
            }
            x if x == DataTypeId::Int64 as u32 => Scalar::Int64,
            x if x == DataTypeId::UInt64 as u32 => Scalar::UInt64,
            x if x == DataTypeId::Float as u32 => Scalar::Float,
            x if x == DataTypeId::Double as u32 || x == DataTypeId::Duration as u32 => Scalar::Double,
            x if x == DataTypeId::String as u32 => Scalar::String,
            x if x == DataTypeId::DateTime as u32 || x == DataTypeId::UtcTime as u32 => Scalar::DateTime,
            x if x == DataTypeId::LocalizedText as u32 => Scalar::LocalizedText,
            _ => return None,
        })
    }

    /// The type of a current value, for nodes whose DataType is abstract (Number,
    /// BaseDataType) or a server-defined enumeration (whose values are Int32).
    fn of_variant(value: &Variant) -> Option<Scalar> {
        Some(match value {
            Variant::Boolean(_) => Scalar::Boolean,
            Variant::SByte(_) => Scalar::SByte,
            Variant::Byte(_) => Scalar::Byte,
            Variant::Int16(_) => Scalar::Int16,
            Variant::UInt16(_) => Scalar::UInt16,
            Variant::Int32(_) => Scalar::Int32,
            Variant::UInt32(_) => Scalar::UInt32,
            Variant::Int64(_) => Scalar::Int64,
            Variant::UInt64(_) => Scalar::UInt64,
            Variant::Float(_) => Scalar::Float,
            Variant::Double(_) => Scalar::Double,
            Variant::String(_) => Scalar::String,
            Variant::DateTime(_) => Scalar::DateTime,
            Variant::LocalizedText(_) => Scalar::LocalizedText,
            _ => return None,
        })
    }

    /// What to send for a node with this DataType and current value.
    pub fn resolve(data_type: &NodeId, current: Option<&Variant>) -> Result<Scalar, String> {
        if let Some(s) = Scalar::of_data_type(data_type) {
            return Ok(s);
        }
        match current {
            Some(Variant::Array(_)) => Err("it holds an array; Backplane writes scalars only".to_owned()),
            Some(v) => Scalar::of_variant(v).ok_or_else(|| {
                format!(
                    "its DataType {} holds a {}, which Backplane cannot write",
                    node_id_text(data_type),
                    kind(v)
                )
            }),
            None => Err(format!(
                "its DataType {} is not a built-in scalar type and it has no value to tell the type by",
                node_id_text(data_type)
            )),
        }
    }
}

/// The variant of type `scalar` holding `value`, or why it cannot: a value of another kind
/// (a string for a number), a fraction for an integer node, a number out of its range.
pub fn encode(value: &Value, scalar: Scalar) -> Result<Variant, String> {
    let mismatch = || {
        format!(
            "{value} ({}) cannot be written to a {} node",
            value.type_name(),
            scalar.name()
        )
    };
    let out_of_range = || format!("{value} is outside the range of {}", scalar.name());
    let integer = || -> Result<i128, String> {
        match value {
            Value::Int(i) => Ok(i128::from(*i)),
            Value::UInt(u) => Ok(i128::from(*u)),
            Value::Float(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 2f64.powi(64) => Ok(*f as i128),
            Value::Float(f) if f.is_finite() && f.fract() == 0.0 => Err(out_of_range()),
            Value::Float(_) => Err(format!(
                "{value} is not a whole number, and the node is {}",
                scalar.name()
            )),
            _ => Err(mismatch()),
        }
    };
    macro_rules! int {
        ($variant:ident, $t:ty) => {{
            let i = integer()?;
            Variant::$variant(<$t>::try_from(i).map_err(|_| out_of_range())?)
        }};
    }
    Ok(match scalar {
        Scalar::Boolean => match value {
            Value::Bool(b) => Variant::Boolean(*b),
            _ => return Err(mismatch()),
        },
        Scalar::SByte => int!(SByte, i8),
        Scalar::Byte => int!(Byte, u8),
        Scalar::Int16 => int!(Int16, i16),
        Scalar::UInt16 => int!(UInt16, u16),
        Scalar::Int32 => int!(Int32, i32),
        Scalar::UInt32 => int!(UInt32, u32),
        Scalar::Int64 => int!(Int64, i64),
        Scalar::UInt64 => int!(UInt64, u64),
        Scalar::Float => {
            let x = number(value).ok_or_else(mismatch)?;
            let f = x as f32;
            if x.is_finite() && !f.is_finite() {
                return Err(out_of_range());
            }
            Variant::Float(f)
        }
        Scalar::Double => Variant::Double(number(value).ok_or_else(mismatch)?),
        Scalar::String => match value {
            Value::String(s) => Variant::String(UAString::from(&**s)),
            _ => return Err(mismatch()),
        },
        Scalar::LocalizedText => match value {
            Value::String(s) => Variant::LocalizedText(Box::new(LocalizedText::new("", s))),
            _ => return Err(mismatch()),
        },
        Scalar::DateTime => match value {
            Value::Timestamp(t) => {
                let ticks = t
                    .unix_nanos()
                    .checked_div(100)
                    .and_then(|t| t.checked_add(116_444_736_000_000_000))
                    .ok_or_else(out_of_range)?;
                Variant::DateTime(Box::new(DateTime::from(ticks)))
            }
            _ => return Err(mismatch()),
        },
    })
}

fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Int(_) | Value::UInt(_) | Value::Float(_) => value.as_f64(),
        _ => None,
    }
}

/// A refused or failed Write, in words that name the node and say what to do.
pub fn status_message(status: StatusCode, node: &NodeId) -> String {
    let node = node_id_text(node);
    match status {
        StatusCode::BadUserAccessDenied => format!(
            "the server does not let this user write {node} ({status}): grant the session's user write \
             access, or check the node's AccessLevel/UserAccessLevel"
        ),
        StatusCode::BadNotWritable => {
            format!("{node} is not writable on the server ({status}): its AccessLevel lacks CurrentWrite")
        }
        StatusCode::BadWriteNotSupported => {
            format!("the server does not support writing {node} this way ({status})")
        }
        StatusCode::BadTypeMismatch => format!(
            "the server refused the value's type for {node} ({status}); its DataType may have changed"
        ),
        StatusCode::BadOutOfRange => {
            format!("the server refused the value for {node} as out of range ({status})")
        }
        StatusCode::BadNodeIdUnknown => format!("the server has no node {node} ({status})"),
        StatusCode::BadAttributeIdInvalid => format!("{node} is not a variable ({status})"),
        other => format!("the server refused the write to {node} ({other})"),
    }
}

/// Per tag: the type its node takes, read once per session.
#[derive(Debug, Default)]
pub struct TypeCache(HashMap<u32, Scalar>);

impl TypeCache {
    /// A new session (or a server that may have changed): read the types again.
    pub fn clear(&mut self) {
        self.0.clear();
    }
}

/// Why a write did not complete. `Lost`: the connection is gone (the session's event loop
/// reconnects); everything else is an answer about this one write.
#[derive(Debug, PartialEq, Eq)]
pub enum WriteFailure {
    Refused(String),
    Lost(String),
}

fn service_failure(what: &str, node: &NodeId, status: StatusCode) -> WriteFailure {
    let message = format!("{what} {}: {status}", node_id_text(node));
    if crate::source::is_connection_error(status) {
        WriteFailure::Lost(message)
    } else {
        WriteFailure::Refused(message)
    }
}

/// Writes `value` to the Value attribute of `node` (tag `tag`) and reads it back. The
/// read-back's DataValue is returned as the server sent it.
pub async fn write(
    session: &Session,
    cache: &mut TypeCache,
    tag: u32,
    node: &NodeId,
    value: &Value,
) -> Result<DataValue, WriteFailure> {
    let scalar = match cache.0.get(&tag) {
        Some(s) => *s,
        None => {
            let s = read_type(session, node).await?;
            cache.0.insert(tag, s);
            s
        }
    };
    let variant = encode(value, scalar)
        .map_err(|m| WriteFailure::Refused(format!("cannot write to {}: {m}", node_id_text(node))))?;
    let request = WriteValue {
        node_id: node.clone(),
        attribute_id: AttributeId::Value as u32,
        index_range: NumericRange::None,
        value: DataValue::value_only(variant),
    };
    let results = session
        .write(&[request])
        .await
        .map_err(|e| service_failure("Write to", node, e.status()))?;
    let status = results.first().copied().unwrap_or(StatusCode::BadUnexpectedError);
    if !status.is_good() {
        if status == StatusCode::BadTypeMismatch {
            // The cached type may be stale: read it again next time.
            cache.0.remove(&tag);
        }
        return Err(WriteFailure::Refused(status_message(status, node)));
    }
    let read = session
        .read(&[ReadValueId::from(node)], TimestampsToReturn::Both, 0.0)
        .await
        .map_err(|e| service_failure("read-back of", node, e.status()))?;
    Ok(read.into_iter().next().unwrap_or_default())
}

/// The node's DataType (and, for abstract types, its current value's type).
async fn read_type(session: &Session, node: &NodeId) -> Result<Scalar, WriteFailure> {
    let attribute = |a: AttributeId| ReadValueId {
        node_id: node.clone(),
        attribute_id: a as u32,
        index_range: NumericRange::None,
        data_encoding: QualifiedName::null(),
    };
    let values = session
        .read(
            &[attribute(AttributeId::DataType), attribute(AttributeId::Value)],
            TimestampsToReturn::Neither,
            0.0,
        )
        .await
        .map_err(|e| service_failure("reading the DataType of", node, e.status()))?;
    let mut values = values.into_iter();
    let data_type = values.next().unwrap_or_default();
    if let Some(status) = data_type.status.filter(|s| s.is_bad()) {
        return Err(WriteFailure::Refused(status_message(status, node)));
    }
    let Some(Variant::NodeId(data_type)) = data_type.value else {
        return Err(WriteFailure::Refused(format!(
            "the server did not say which DataType {} has",
            node_id_text(node)
        )));
    };
    let current = values.next().and_then(|dv| dv.value);
    Scalar::resolve(&data_type, current.as_ref())
        .map_err(|m| WriteFailure::Refused(format!("cannot write to {}: {m}", node_id_text(node))))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[test]
    fn values_become_the_variant_of_the_nodes_data_type() {
        assert_eq!(encode(&Value::UInt(425), Scalar::Int16), Ok(Variant::Int16(425)));
        assert_eq!(
            encode(&Value::Float(42.0), Scalar::UInt16),
            Ok(Variant::UInt16(42))
        );
        assert_eq!(encode(&Value::Int(-2), Scalar::Double), Ok(Variant::Double(-2.0)));
        assert_eq!(encode(&Value::Float(1.5), Scalar::Float), Ok(Variant::Float(1.5)));
        assert_eq!(
            encode(&Value::Bool(true), Scalar::Boolean),
            Ok(Variant::Boolean(true))
        );
        assert_eq!(
            encode(&Value::UInt(u64::MAX), Scalar::UInt64),
            Ok(Variant::UInt64(u64::MAX))
        );
        assert_eq!(
            encode(&Value::String("idle".into()), Scalar::String),
            Ok(Variant::String("idle".into()))
        );
    }

    #[test]
    fn timestamps_become_date_times_that_read_back_the_same() {
        let t = backplane_model::Timestamp::parse_rfc3339("2026-01-02T03:04:05.678Z").unwrap();
        let Ok(Variant::DateTime(d)) = encode(&Value::Timestamp(t), Scalar::DateTime) else {
            panic!("a DateTime")
        };
        assert_eq!(crate::value::timestamp(&d), Some(t));
    }

    #[test]
    fn values_that_do_not_fit_the_node_are_refused_before_sending() {
        let e = encode(&Value::Int(70_000), Scalar::Int16).unwrap_err();
        assert!(e.contains("outside the range of Int16"), "{e}");
        let e = encode(&Value::Int(-1), Scalar::UInt32).unwrap_err();
        assert!(e.contains("outside the range of UInt32"), "{e}");
        let e = encode(&Value::Float(2.5), Scalar::Int32).unwrap_err();
        assert!(e.contains("not a whole number"), "{e}");
        let e = encode(&Value::String("abc".into()), Scalar::Int16).unwrap_err();
        assert!(e.contains("cannot be written to a Int16 node"), "{e}");
        assert!(encode(&Value::Float(1e39), Scalar::Float).is_err());
        assert!(encode(&Value::Float(1e30), Scalar::Int64).is_err());
        assert!(encode(&Value::UInt(1), Scalar::Boolean).is_err());
    }

    #[test]
    fn data_types_resolve_to_built_in_types_or_the_current_values_type() {
        let ns0 = |id: DataTypeId| NodeId::new(0, id as u32);
        assert_eq!(Scalar::resolve(&ns0(DataTypeId::Int16), None), Ok(Scalar::Int16));
        assert_eq!(
            Scalar::resolve(&ns0(DataTypeId::Duration), None),
            Ok(Scalar::Double)
        );
        assert_eq!(
            Scalar::resolve(&ns0(DataTypeId::UtcTime), None),
            Ok(Scalar::DateTime)
        );
        // An abstract Number, or a server's enumeration: what the node holds now.
        assert_eq!(
            Scalar::resolve(&ns0(DataTypeId::Number), Some(&Variant::Float(1.0))),
            Ok(Scalar::Float)
        );
        assert_eq!(
            Scalar::resolve(&NodeId::new(2, 3001), Some(&Variant::Int32(1))),
            Ok(Scalar::Int32)
        );
        assert!(Scalar::resolve(&NodeId::new(2, 3001), None).is_err());
        assert!(
            Scalar::resolve(
                &ns0(DataTypeId::BaseDataType),
                Some(&Variant::from(vec![1i32, 2]))
            )
            .is_err()
        );
    }

    #[test]
    fn refusals_name_the_node_and_the_status() {
        let node = NodeId::new(2, "Filler.Speed");
        for (status, words) in [
            (StatusCode::BadUserAccessDenied, "does not let this user write"),
            (StatusCode::BadNotWritable, "not writable"),
            (StatusCode::BadTypeMismatch, "refused the value's type"),
            (StatusCode::BadOutOfRange, "out of range"),
            (StatusCode::BadInternalError, "refused the write"),
        ] {
            let m = status_message(status, &node);
            assert!(m.contains("ns=2;s=Filler.Speed"), "{m}");
            assert!(m.contains(words), "{m}");
            assert!(m.contains(&status.to_string()), "{m}");
        }
    }
}
