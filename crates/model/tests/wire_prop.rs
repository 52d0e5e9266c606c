//! Properties of `backplane_model::wire` over arbitrary input: every value round-trips bit
//! for bit, and no byte string makes a reader panic.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use backplane_model::wire::{self, Cursor, MAX_DEPTH};
use backplane_model::{Timestamp, Value};
use proptest::prelude::*;

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        any::<u64>().prop_map(Value::UInt),
        // Any bit pattern: NaN payloads, -0.0, subnormals.
        any::<u64>().prop_map(|bits| Value::Float(f64::from_bits(bits))),
        ".{0,12}".prop_map(|s| Value::String(s.into())),
        any::<i64>().prop_map(|t| Value::Timestamp(Timestamp::from_unix_nanos(t))),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(MAX_DEPTH as u32, 64, 6, |inner| {
        prop::collection::vec(inner, 0..6).prop_map(|v| Value::Array(v.into()))
    })
}

/// Equality with floats compared by their bits (NaN is not equal to itself).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => x.to_bits() == y.to_bits(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(a, b)| same(a, b))
        }
        _ => a == b,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn values_round_trip_bit_for_bit(values in prop::collection::vec(value(), 1..8)) {
        let mut out = Vec::new();
        for v in &values {
            wire::put_value(&mut out, v);
        }
        let mut cur = Cursor::new(&out);
        for v in &values {
            let back = cur.value().unwrap();
            prop_assert!(same(&back, v), "{back:?} != {v:?}");
        }
        prop_assert!(cur.is_empty());
    }

    #[test]
    fn integers_and_strings_round_trip(u in any::<u64>(), i in any::<i64>(), s in ".{0,40}") {
        let mut out = Vec::new();
        wire::put_varint(&mut out, u);
        prop_assert_eq!(out.len(), wire::varint_len(u));
        wire::put_varint_i64(&mut out, i);
        wire::put_str(&mut out, &s);
        out.extend_from_slice(&u.to_le_bytes());
        out.extend_from_slice(&i.to_le_bytes());
        let mut cur = Cursor::new(&out);
        prop_assert_eq!(cur.varint(), Ok(u));
        prop_assert_eq!(cur.varint_i64(), Ok(i));
        prop_assert_eq!(cur.str(), Ok(s.as_str()));
        prop_assert_eq!(cur.u64_le(), Ok(u));
        prop_assert_eq!(cur.i64_le(), Ok(i));
        prop_assert!(cur.is_empty());
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        // Each reader from the start, then all of them in turn over the same input.
        let _ = Cursor::new(&bytes).value();
        let _ = Cursor::new(&bytes).varint();
        let _ = Cursor::new(&bytes).str();
        let _ = Cursor::new(&bytes).count(usize::MAX, 0);
        let mut cur = Cursor::new(&bytes);
        while !cur.is_empty() {
            let before = cur.position();
            let _ = cur.value();
            let _ = cur.varint_i64();
            let _ = cur.blob();
            let _ = cur.u32_le();
            if cur.position() == before {
                let _ = cur.u8();
            }
        }
    }

    #[test]
    fn every_cut_and_byte_flip_of_a_value_is_an_error_or_a_value(v in value(), at in any::<prop::sample::Index>(), flip in 1u8..) {
        let mut out = Vec::new();
        wire::put_value(&mut out, &v);
        for len in 0..out.len() {
            prop_assert!(Cursor::new(&out[..len]).value().is_err(), "cut to {}", len);
        }
        let i = at.index(out.len());
        out[i] ^= flip;
        let _ = Cursor::new(&out).value();
    }
}
