//! Properties of the transforms over arbitrary input: no panics, and register encodings
//! round-trip in every word order.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use backplane_model::transform::apply_chain;
use backplane_model::{DataType, DecodeType, ScalarType, Transform, Value, WordOrder};
use proptest::prelude::*;

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        any::<u64>().prop_map(Value::UInt),
        any::<f64>().prop_map(Value::Float),
        ".{0,8}".prop_map(|s| Value::String(s.into())),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        scalar(),
        prop::collection::vec(scalar(), 0..6).prop_map(|v| Value::Array(v.into())),
    ]
}

fn order() -> impl Strategy<Value = WordOrder> {
    prop_oneof![
        Just(WordOrder::ABCD),
        Just(WordOrder::CDAB),
        Just(WordOrder::BADC),
        Just(WordOrder::DCBA)
    ]
}

fn decode_type() -> impl Strategy<Value = DecodeType> {
    prop_oneof![
        Just(DecodeType::U16),
        Just(DecodeType::I16),
        Just(DecodeType::U32),
        Just(DecodeType::I32),
        Just(DecodeType::U64),
        Just(DecodeType::I64),
        Just(DecodeType::F32),
        Just(DecodeType::F64),
    ]
}

fn data_type() -> impl Strategy<Value = DataType> {
    let scalar = prop_oneof![
        Just(ScalarType::Bool),
        Just(ScalarType::Int),
        Just(ScalarType::UInt),
        Just(ScalarType::Float),
        Just(ScalarType::String),
        Just(ScalarType::Timestamp),
    ];
    (scalar, any::<bool>()).prop_map(|(s, array)| {
        if array {
            DataType::Array(s)
        } else {
            DataType::Scalar(s)
        }
    })
}

proptest! {
    #[test]
    fn every_transform_returns_instead_of_panicking(
        input in value(),
        kind in decode_type(),
        word_order in order(),
        index in 0u8..=63,
        gain in any::<f64>(),
        offset in any::<f64>(),
        to in data_type(),
    ) {
        let chains = [
            vec![Transform::Decode { kind, word_order }],
            vec![Transform::Bit { index }],
            vec![Transform::Scale { gain, offset, raw: None, eng: None }],
            vec![Transform::Map { entries: vec![(1, "a".into())].into() }],
            vec![Transform::Cast { to }],
            vec![Transform::Round { decimals: index % 10 }],
            vec![Transform::Decode { kind, word_order }, Transform::Scale { gain, offset, raw: None, eng: None }, Transform::Cast { to }],
        ];
        for chain in chains {
            let _ = apply_chain(&chain, &input);
        }
    }

    #[test]
    fn rounding_a_finite_float_stays_finite_and_within_half_a_step(x in any::<f64>().prop_filter("finite", |x| x.is_finite()), decimals in 0u8..=9) {
        let r = backplane_model::decimal::round(x, decimals);
        prop_assert!(r.is_finite());
        let half = 0.5 * 10f64.powi(-i32::from(decimals));
        // Half a step, plus the float spacing at x (the decimal text is itself rounded).
        prop_assert!((r - x).abs() <= half + 4.0 * f64::EPSILON * x.abs(), "{x} → {r}");
        prop_assert_eq!(backplane_model::decimal::round(r, decimals), r);
    }

    #[test]
    fn registers_round_trip_in_every_word_order(bits in any::<u64>(), word_order in order(), kind in decode_type()) {
        let words = kind.words();
        let bits = if words == 4 { bits } else { bits & ((1u64 << (16 * words)) - 1) };
        let registers = word_order.split(bits, words);
        prop_assert_eq!(word_order.assemble(&registers), bits);
    }

    #[test]
    fn f32_registers_decode_to_the_encoded_float(x in any::<f32>().prop_filter("finite", |x| x.is_finite()), word_order in order()) {
        let registers = word_order.split(u64::from(x.to_bits()), 2);
        let input = Value::Array(registers.into_iter().map(|w| Value::UInt(u64::from(w))).collect());
        let out = Transform::Decode { kind: DecodeType::F32, word_order }.apply(&input).unwrap();
        prop_assert_eq!(out, Value::Float(f64::from(x)));
    }
}
