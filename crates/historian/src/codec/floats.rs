//! Float columns, bit-exact (NaN payloads, signed zeros and infinities included).
//!
//! Three encodings; the encoder tries those that apply and keeps the smallest:
//! - decimal (`0`): most plant values are decimals with a fixed number of places (a
//!   temperature rounded to 0.01, a level in tenths). With `d` places every such value is
//!   `i / 10^d` for an integer `i`, and the integers go through [`super::ints`], where a
//!   random walk costs a few bits per point. Values that are not exactly `i / 10^d`
//!   (NaN, ±inf, -0.0, more places) are stored as exceptions: position and raw bits.
//!   Layout: `0, d u8, exceptions varint, (position delta varint, bits u64 LE)*, ints`.
//! - Gorilla XOR (`1`, Pelkonen et al., VLDB 2015): each value XOR the previous, with
//!   the leading/trailing zero window reused when it fits. Layout: `1, bit stream`.
//! - dictionary (`2`): few distinct values that are not decimals, typically a scaled or
//!   unit-converted register (`393 × 0.1 → 39.300000000000004 °F → 4.0555… °C`). The
//!   distinct values sorted, so a random walk of the register stays a walk of small id
//!   steps; then the ids through [`super::ints`]. Layout: `2, count varint,
//!   (bits u64 LE)*, ints`.

use backplane_model::wire::{Cursor, Error, put_varint};

use super::{Result, ints};

const DECIMAL: u8 = 0;
const XOR: u8 = 1;
const DICT: u8 = 2;
const MAX_PLACES: u8 = 9;
/// Scaled integers must stay exact in an f64 mantissa.
const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53

const POW10: [f64; 10] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];

fn scaled(v: f64, scale: f64) -> Option<i64> {
    if !v.is_finite() {
        return None;
    }
    let s = (v * scale).round();
    if s.abs() >= EXACT {
        return None;
    }
    let i = s as i64;
    ((i as f64 / scale).to_bits() == v.to_bits()).then_some(i)
}

/// The number of decimal places that leaves the fewest exceptions, and that count.
fn best_places(values: &[f64]) -> (u8, usize) {
    let mut best = (0u8, usize::MAX);
    for d in 0..=MAX_PLACES {
        let scale = POW10[usize::from(d)];
        let mut exceptions = 0;
        for &v in values {
            if scaled(v, scale).is_none() {
                exceptions += 1;
                if exceptions >= best.1 {
                    break;
                }
            }
        }
        if exceptions < best.1 {
            best = (d, exceptions);
        }
        if exceptions == 0 {
            break;
        }
    }
    best
}

pub fn encode(values: &[f64], out: &mut Vec<u8>) {
    let mut best = Vec::with_capacity(values.len());
    encode_xor(values, &mut best);
    let mut candidate = Vec::with_capacity(best.len());
    let (places, exceptions) = best_places(values);
    if exceptions <= values.len() / 4 {
        encode_decimal(values, places, &mut candidate);
        if candidate.len() < best.len() {
            std::mem::swap(&mut best, &mut candidate);
        }
    }
    candidate.clear();
    if encode_dict(values, &mut candidate) && candidate.len() < best.len() {
        std::mem::swap(&mut best, &mut candidate);
    }
    out.extend_from_slice(&best);
}

/// Writes the dictionary encoding unless there are too many distinct values for it to win.
fn encode_dict(values: &[f64], out: &mut Vec<u8>) -> bool {
    // A look at the first values spares sorting a column that is plainly not a dictionary.
    let head = &values[..values.len().min(512)];
    let mut sample: Vec<u64> = head.iter().map(|v| v.to_bits()).collect();
    sample.sort_unstable();
    sample.dedup();
    if sample.len() > head.len() / 4 + 8 {
        return false;
    }
    let mut distinct: Vec<u64> = values.iter().map(|v| v.to_bits()).collect();
    distinct.sort_unstable_by(|a, b| f64::from_bits(*a).total_cmp(&f64::from_bits(*b)));
    distinct.dedup();
    if distinct.len() > values.len() / 4 {
        return false;
    }
    let ids: Vec<i64> = values
        .iter()
        .map(|v| {
            distinct
                .binary_search_by(|d| f64::from_bits(*d).total_cmp(v))
                .map_or(0, |i| i as i64)
        })
        .collect();
    out.push(DICT);
    put_varint(out, distinct.len() as u64);
    for d in &distinct {
        out.extend_from_slice(&d.to_le_bytes());
    }
    ints::encode(&ids, out);
    true
}

fn encode_decimal(values: &[f64], places: u8, out: &mut Vec<u8>) {
    let scale = POW10[usize::from(places)];
    let mut ints_col = Vec::with_capacity(values.len());
    let mut exceptions = Vec::new();
    let mut previous = 0i64;
    for (i, &v) in values.iter().enumerate() {
        match scaled(v, scale) {
            Some(x) => {
                previous = x;
                ints_col.push(x);
            }
            None => {
                // Repeat the neighbour so the integer deltas stay small.
                exceptions.push((i, v.to_bits()));
                ints_col.push(previous);
            }
        }
    }
    out.push(DECIMAL);
    out.push(places);
    put_varint(out, exceptions.len() as u64);
    let mut last = 0usize;
    for (i, bits) in exceptions {
        put_varint(out, (i - last) as u64);
        out.extend_from_slice(&bits.to_le_bytes());
        last = i;
    }
    ints::encode(&ints_col, out);
}

pub fn decode(cur: &mut Cursor<'_>, n: usize, out: &mut Vec<f64>) -> Result<()> {
    match cur.u8()? {
        DECIMAL => {
            let places = cur.u8()?;
            if places > MAX_PLACES {
                return Err(Error::Invalid("too many decimal places"));
            }
            let scale = POW10[usize::from(places)];
            let count = cur.count(n, 9)?;
            let mut exceptions = Vec::with_capacity(count);
            let mut at = 0usize;
            for _ in 0..count {
                let delta = usize::try_from(cur.varint()?).map_err(|_| Error::Invalid("position"))?;
                at = at.checked_add(delta).ok_or(Error::Invalid("position overflow"))?;
                if at >= n {
                    return Err(Error::Invalid("exception past the column"));
                }
                exceptions.push((at, f64::from_bits(cur.u64_le()?)));
            }
            let mut ints_col = Vec::with_capacity(n);
            ints::decode(cur, n, &mut ints_col)?;
            let start = out.len();
            out.extend(ints_col.iter().map(|&i| i as f64 / scale));
            for (i, v) in exceptions {
                out[start + i] = v;
            }
            Ok(())
        }
        XOR => decode_xor(cur, n, out),
        DICT => {
            let count = cur.count(n, 8)?;
            let mut entries = Vec::with_capacity(count);
            for _ in 0..count {
                entries.push(f64::from_bits(cur.u64_le()?));
            }
            let mut ids = Vec::with_capacity(n);
            ints::decode(cur, n, &mut ids)?;
            for id in ids {
                let v = usize::try_from(id)
                    .ok()
                    .and_then(|i| entries.get(i))
                    .ok_or(Error::Invalid("dictionary id out of range"))?;
                out.push(*v);
            }
            Ok(())
        }
        _ => Err(Error::Invalid("unknown float encoding")),
    }
}

/// Bits written least significant first into bytes.
struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    acc: u128,
    bits: u32,
}

impl BitWriter<'_> {
    fn put(&mut self, value: u64, n: u32) {
        if n == 0 {
            return;
        }
        let value = if n == 64 { value } else { value & ((1u64 << n) - 1) };
        self.acc |= u128::from(value) << self.bits;
        self.bits += n;
        while self.bits >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.bits -= 8;
        }
    }

    fn finish(self) {
        if self.bits > 0 {
            self.out.push(self.acc as u8);
        }
    }
}

struct BitReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    acc: u128,
    bits: u32,
}

impl BitReader<'_> {
    fn get(&mut self, n: u32) -> Result<u64> {
        if n == 0 {
            return Ok(0);
        }
        while self.bits < n {
            let b = *self
                .bytes
                .get(self.pos)
                .ok_or(Error::Invalid("bit stream ends early"))?;
            self.pos += 1;
            self.acc |= u128::from(b) << self.bits;
            self.bits += 8;
        }
        let mask = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
        let v = (self.acc as u64) & mask;
        self.acc >>= n;
        self.bits -= n;
        Ok(v)
    }
}

fn encode_xor(values: &[f64], out: &mut Vec<u8>) {
    out.push(XOR);
    let mut w = BitWriter { out, acc: 0, bits: 0 };
    let mut iter = values.iter().map(|v| v.to_bits());
    let Some(first) = iter.next() else {
        w.finish();
        return;
    };
    w.put(first, 64);
    let mut prev = first;
    // Leading zeros (capped at 31 to fit 5 bits) and trailing zeros of the window in use.
    let mut window: Option<(u32, u32)> = None;
    for bits in iter {
        let xor = bits ^ prev;
        prev = bits;
        if xor == 0 {
            w.put(0, 1);
            continue;
        }
        w.put(1, 1);
        let lead = xor.leading_zeros().min(31);
        let trail = xor.trailing_zeros();
        match window {
            Some((l, t)) if lead >= l && trail >= t => {
                w.put(0, 1);
                w.put(xor >> t, 64 - l - t);
            }
            _ => {
                let len = 64 - lead - trail;
                w.put(1, 1);
                w.put(u64::from(lead), 5);
                w.put(u64::from(len - 1), 6);
                w.put(xor >> trail, len);
                window = Some((lead, trail));
            }
        }
    }
    w.finish();
}

fn decode_xor(cur: &mut Cursor<'_>, n: usize, out: &mut Vec<f64>) -> Result<()> {
    if n == 0 {
        return Ok(());
    }
    let rest = cur.rest();
    let mut r = BitReader {
        bytes: rest,
        pos: 0,
        acc: 0,
        bits: 0,
    };
    let mut prev = r.get(64)?;
    out.push(f64::from_bits(prev));
    let mut window: Option<(u32, u32)> = None;
    for _ in 1..n {
        if r.get(1)? == 1 {
            let (lead, trail) = if r.get(1)? == 0 {
                window.ok_or(Error::Invalid("XOR window reused before it was set"))?
            } else {
                let lead = r.get(5)? as u32;
                let len = r.get(6)? as u32 + 1;
                if lead + len > 64 {
                    return Err(Error::Invalid("XOR window wider than 64 bits"));
                }
                let w = (lead, 64 - lead - len);
                window = Some(w);
                w
            };
            prev ^= r.get(64 - lead - trail)? << trail;
        }
        out.push(f64::from_bits(prev));
    }
    // The stream ends on a byte boundary; the caller goes on after it.
    cur.bytes(r.pos)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(values: &[f64]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(values, &mut out);
        let mut decoded = Vec::new();
        decode(&mut Cursor::new(&out), values.len(), &mut decoded).unwrap();
        let a: Vec<u64> = values.iter().map(|v| v.to_bits()).collect();
        let b: Vec<u64> = decoded.iter().map(|v| v.to_bits()).collect();
        assert_eq!(a, b);
        out
    }

    #[test]
    fn decimals_become_scaled_integers() {
        let values: Vec<f64> = (0..1000).map(|i| f64::from(7000 + (i % 7)) / 100.0).collect();
        let out = round_trip(&values);
        assert_eq!(out[0], DECIMAL);
        assert_eq!(out[1], 2);
        assert!(out.len() < 1000 / 2, "{} bytes", out.len());
    }

    #[test]
    fn specials_survive_as_exceptions_or_xor() {
        round_trip(&[
            1.5,
            f64::NAN,
            f64::INFINITY,
            -0.0,
            f64::NEG_INFINITY,
            2.25,
            f64::MIN_POSITIVE,
        ]);
        round_trip(&[f64::from_bits(0x7ff8_0000_dead_beef), 0.1 + 0.2, 1e300, -1e-300]);
        round_trip(&[]);
        round_trip(&[f64::NAN]);
    }

    #[test]
    fn converted_registers_use_a_sorted_dictionary() {
        // A register walking in 380..410 tenths of °F, scaled and converted to °C.
        let mut raw = 395i64;
        let values: Vec<f64> = (0..3600)
            .map(|i| {
                raw = (raw + [1, -1, 0, 2, -2, 0, 1][i % 7]).clamp(380, 410);
                (raw as f64 * 0.1) * 0.5555555555555556 - 17.77777777777777
            })
            .collect();
        let out = round_trip(&values);
        assert_eq!(out[0], DICT);
        assert!(out.len() < 3600, "{} bytes for 3600 values", out.len());
    }

    #[test]
    fn values_that_are_not_decimals_use_xor() {
        let values: Vec<f64> = (0..100).map(|i| (f64::from(i) * 0.37).sin()).collect();
        assert_eq!(round_trip(&values)[0], XOR);
    }
}
