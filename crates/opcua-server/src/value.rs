//! Backplane values to OPC UA: the DataType of an attribute type, a value as a Variant of
//! that type, a timestamp as a DateTime, and a sample as a DataValue with both timestamps
//! and the StatusCode of its quality (the model crate's lossless mapping, the same the
//! client side reads with). The other direction (writes) is the client side's
//! [`backplane_opcua::value::convert`].

use backplane_model::{DataType, Quality, Sample, ScalarType, Timestamp, Value};
use opcua::types::{
    Array, DataTypeId, DataValue, DateTime, StatusCode, UAString, Variant, VariantScalarTypeId,
};

/// 100 ns ticks from 1601-01-01 (OPC UA's epoch) to 1970-01-01.
const UNIX_EPOCH_TICKS: i64 = 116_444_736_000_000_000;

/// The OPC UA DataType of an attribute's scalar type.
pub fn data_type(scalar: ScalarType) -> DataTypeId {
    match scalar {
        ScalarType::Bool => DataTypeId::Boolean,
        ScalarType::Int => DataTypeId::Int64,
        ScalarType::UInt => DataTypeId::UInt64,
        ScalarType::Float => DataTypeId::Double,
        ScalarType::String => DataTypeId::String,
        ScalarType::Timestamp => DataTypeId::DateTime,
    }
}

fn scalar_type_id(scalar: ScalarType) -> VariantScalarTypeId {
    match scalar {
        ScalarType::Bool => VariantScalarTypeId::Boolean,
        ScalarType::Int => VariantScalarTypeId::Int64,
        ScalarType::UInt => VariantScalarTypeId::UInt64,
        ScalarType::Float => VariantScalarTypeId::Double,
        ScalarType::String => VariantScalarTypeId::String,
        ScalarType::Timestamp => VariantScalarTypeId::DateTime,
    }
}

/// (DataType, ValueRank) of an attribute type: -1 scalar, 1 one-dimensional array.
pub fn type_and_rank(data: DataType) -> (DataTypeId, i32) {
    match data {
        DataType::Scalar(s) => (data_type(s), -1),
        DataType::Array(s) => (data_type(s), 1),
    }
}

/// A timestamp as an OPC UA DateTime (100 ns ticks; finer digits are dropped).
///
/// Built from the Unix seconds: async-opcua's `From<i64>` (ticks since 1601) builds its
/// 1601 epoch and adds a duration to it on every call, about 260 instructions a timestamp,
/// two per served value (a sixth of the server's work per change, by callgrind).
pub fn date_time(t: Timestamp) -> DateTime {
    let nanos = t.unix_nanos();
    let seconds = nanos.div_euclid(1_000_000_000);
    let fraction = u32::try_from(nanos.rem_euclid(1_000_000_000)).unwrap_or(0);
    match chrono::DateTime::from_timestamp(seconds, fraction) {
        Some(utc) => DateTime::from(utc),
        None => date_time_from_ticks(t),
    }
}

/// Timestamps converted with the last two conversions remembered: a batch's samples mostly
/// share their times (one poll: one source and one gateway time), and a conversion costs
/// about 120 instructions.
#[derive(Debug, Default)]
pub struct DateTimes {
    last: [Option<(Timestamp, DateTime)>; 2],
    /// The slot the next new conversion replaces.
    next: usize,
}

impl DateTimes {
    pub fn get(&mut self, t: Timestamp) -> DateTime {
        for (at, dt) in self.last.iter().flatten() {
            if *at == t {
                return *dt;
            }
        }
        let dt = date_time(t);
        if let Some(slot) = self.last.get_mut(self.next) {
            *slot = Some((t, dt));
        }
        self.next = (self.next + 1) % 2;
        dt
    }
}

fn date_time_from_ticks(t: Timestamp) -> DateTime {
    DateTime::from(t.unix_nanos().div_euclid(100).saturating_add(UNIX_EPOCH_TICKS))
}

fn scalar(value: &Value) -> Variant {
    match value {
        Value::Bool(b) => Variant::Boolean(*b),
        Value::Int(n) => Variant::Int64(*n),
        Value::UInt(n) => Variant::UInt64(*n),
        Value::Float(x) => Variant::Double(*x),
        Value::String(s) => Variant::String(UAString::from(&**s)),
        Value::Timestamp(t) => Variant::DateTime(Box::new(date_time(*t))),
        Value::Array(_) => Variant::Empty,
    }
}

/// A value as a Variant of the attribute's type. The pipeline has already cast values to
/// their attribute's type, so a value of another type is a bug upstream: it becomes
/// `None` (an empty value with BadTypeMismatch), never a wrong type on the wire.
pub fn variant(value: &Value, data: DataType) -> Option<Variant> {
    let matches = |v: &Value, s: ScalarType| {
        matches!(
            (v, s),
            (Value::Bool(_), ScalarType::Bool)
                | (Value::Int(_), ScalarType::Int)
                | (Value::UInt(_), ScalarType::UInt)
                | (Value::Float(_), ScalarType::Float)
                | (Value::String(_), ScalarType::String)
                | (Value::Timestamp(_), ScalarType::Timestamp)
        )
    };
    match (value, data) {
        (v, DataType::Scalar(s)) if matches(v, s) => Some(scalar(v)),
        (Value::Array(items), DataType::Array(s)) if items.iter().all(|v| matches(v, s)) => {
            let values: Vec<Variant> = items.iter().map(scalar).collect();
            Array::new(scalar_type_id(s), values)
                .ok()
                .map(|a| Variant::Array(Box::new(a)))
        }
        _ => None,
    }
}

/// The StatusCode of a quality.
pub fn status(quality: Quality) -> StatusCode {
    StatusCode::from(quality.to_status_code())
}

/// A sample as the DataValue of its variable: source time (the device's, else the
/// gateway's), server time (the gateway's), and the status of its quality.
pub fn data_value(sample: &Sample, data: DataType, times: &mut DateTimes) -> DataValue {
    reading_with(
        sample.value.as_ref(),
        sample.quality,
        sample.source_time,
        sample.gateway_time,
        data,
        times,
    )
}

/// A value read at `gateway` time (a live sample, a stored point) as a DataValue.
pub fn reading(
    value: Option<&Value>,
    quality: Quality,
    source: Option<Timestamp>,
    gateway: Timestamp,
    data: DataType,
) -> DataValue {
    reading_with(value, quality, source, gateway, data, &mut DateTimes::default())
}

/// [`reading`], converting the timestamps through `times`.
pub fn reading_with(
    value: Option<&Value>,
    quality: Quality,
    source: Option<Timestamp>,
    gateway: Timestamp,
    data: DataType,
    times: &mut DateTimes,
) -> DataValue {
    // No value is an Empty variant, not `None`: async-opcua drops the status of a stored
    // DataValue without a value when it is read, and a bad reading would read as Good.
    let (value, status) = match value {
        None => (Variant::Empty, status(quality)),
        Some(v) => match variant(v, data) {
            Some(variant) => (variant, status(quality)),
            None => (Variant::Empty, StatusCode::BadTypeMismatch),
        },
    };
    let source = match source {
        Some(s) if s != gateway => times.get(s),
        _ => times.get(gateway),
    };
    let gateway = times.get(gateway);
    DataValue {
        value: Some(value),
        // Good is sent as no StatusCode, as OPC UA encodes it (Part 6, DataValue: its bit
        // is false if the StatusCode is Good); clients read it as Good. Saves encoding four
        // bytes for every notification of a good value.
        status: (status != StatusCode::Good).then_some(status),
        source_timestamp: Some(source),
        source_picoseconds: None,
        server_timestamp: Some(gateway),
        server_picoseconds: None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    #[test]
    fn a_timestamp_becomes_the_same_date_time_as_through_ticks_since_1601() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut stamps = vec![
            i64::MIN,
            i64::MAX,
            -1,
            0,
            1,
            99,
            100,
            101,
            -99,
            -100,
            -101,
            1_764_930_000_123_456_789,
        ];
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            stamps.push(x as i64);
        }
        for nanos in stamps {
            let t = Timestamp::from_unix_nanos(nanos);
            assert_eq!(date_time(t), date_time_from_ticks(t), "{nanos} ns");
            assert_eq!(
                date_time(t).ticks(),
                date_time_from_ticks(t).ticks(),
                "{nanos} ns"
            );
        }
    }
    #[test]
    fn remembered_conversions_are_the_conversions_of_their_own_timestamps() {
        let stamps: Vec<Timestamp> = [0, 1_000, 2_000, 3_000]
            .into_iter()
            .map(Timestamp::from_unix_millis)
            .collect();
        let mut times = DateTimes::default();
        // Repeats, alternations and a third time that evicts one of two remembered.
        for i in [0, 0, 1, 0, 1, 2, 0, 2, 1, 3, 3, 0, 2, 1, 0] {
            let t = stamps[i];
            assert_eq!(times.get(t), date_time(t), "timestamp {i}");
        }
        // Both times of a sample, the device's older than the gateway's.
        let mut times = DateTimes::default();
        for (source, gateway) in [(0, 1), (1, 2), (0, 2), (2, 2), (3, 1)] {
            let dv = reading_with(
                Some(&Value::UInt(1)),
                Quality::Good,
                Some(stamps[source]),
                stamps[gateway],
                DataType::Scalar(ScalarType::UInt),
                &mut times,
            );
            assert_eq!(dv.source_timestamp, Some(date_time(stamps[source])));
            assert_eq!(dv.server_timestamp, Some(date_time(stamps[gateway])));
        }
    }

    use std::sync::Arc;

    use super::*;
    use backplane_model::{BadReason, TagId, UncertainReason};

    fn sample(value: Option<Value>, quality: Quality, source: Option<Timestamp>) -> Sample {
        Sample {
            tag: TagId(0),
            value,
            quality,
            source_time: source,
            gateway_time: Timestamp::from_unix_millis(2_000),
            context: Arc::default(),
        }
    }

    #[test]
    fn values_become_variants_of_the_attribute_type() {
        let f = DataType::Scalar(ScalarType::Float);
        assert_eq!(variant(&Value::Float(1.5), f), Some(Variant::Double(1.5)));
        assert_eq!(
            variant(&Value::Int(-3), DataType::Scalar(ScalarType::Int)),
            Some(Variant::Int64(-3))
        );
        assert_eq!(
            variant(
                &Value::String("Running".into()),
                DataType::Scalar(ScalarType::String)
            ),
            Some(Variant::String("Running".into()))
        );
        assert_eq!(
            variant(&Value::Int(1), f),
            None,
            "a value of another type is never sent"
        );
        let array = variant(
            &Value::Array(vec![Value::UInt(1), Value::UInt(2)].into()),
            DataType::Array(ScalarType::UInt),
        )
        .unwrap();
        assert!(
            matches!(array, Variant::Array(a) if a.values == vec![Variant::UInt64(1), Variant::UInt64(2)])
        );
    }

    #[test]
    fn timestamps_round_trip_with_the_client_side() {
        let t = Timestamp::from_unix_millis(1_700_000_000_123);
        assert_eq!(backplane_opcua::value::timestamp(&date_time(t)), Some(t));
    }

    #[test]
    fn samples_carry_both_times_and_the_status_of_their_quality() {
        let dv = data_value(
            &sample(
                Some(Value::Float(4.2)),
                Quality::Uncertain(UncertainReason::LastUsableValue),
                Some(Timestamp::from_unix_millis(1_000)),
            ),
            DataType::Scalar(ScalarType::Float),
            &mut DateTimes::default(),
        );
        assert_eq!(dv.value, Some(Variant::Double(4.2)));
        assert_eq!(dv.status, Some(StatusCode::UncertainLastUsableValue));
        assert_eq!(
            dv.source_timestamp,
            Some(date_time(Timestamp::from_unix_millis(1_000)))
        );
        assert_eq!(
            dv.server_timestamp,
            Some(date_time(Timestamp::from_unix_millis(2_000)))
        );
        // The client side reads the same quality back.
        let (_, quality, _) = backplane_opcua::value::reading_parts(&dv, None);
        assert_eq!(quality, Quality::Uncertain(UncertainReason::LastUsableValue));

        let good = data_value(
            &sample(Some(Value::Float(1.0)), Quality::Good, None),
            DataType::Scalar(ScalarType::Float),
            &mut DateTimes::default(),
        );
        assert_eq!(good.status, None, "Good goes without a StatusCode");
        assert_eq!(good.status(), StatusCode::Good);
        let (_, quality, _) = backplane_opcua::value::reading_parts(&good, None);
        assert_eq!(quality, Quality::Good);

        let bad = data_value(
            &sample(None, Quality::Bad(BadReason::CommFailure), None),
            DataType::Scalar(ScalarType::Float),
            &mut DateTimes::default(),
        );
        assert_eq!(bad.value, Some(Variant::Empty));
        assert_eq!(bad.status, Some(StatusCode::BadCommunicationError));
        assert_eq!(bad.source_timestamp, bad.server_timestamp);
    }
}
