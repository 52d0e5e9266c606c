//! Integer sequences: delta order 0, 1 or 2, then run-length or frame-of-reference
//! bit-packing, whichever is smallest for this column.
//!
//! Layout: one header byte `method << 4 | order`, then the body. The element count is not
//! stored: the chunk knows it. Deltas use wrapping arithmetic, so every `i64` sequence
//! (out of order, duplicates, `i64::MIN` next to `i64::MAX`) round-trips exactly.
//!
//! - run-length (`method` 0): `(zigzag value varint, run length - 1 varint)*`.
//! - bit-packing (`method` 1): blocks of [`BLOCK`] values, each `min zigzag varint,
//!   width u8`, then `width` bits per value of `value - min`, least significant bit first.

use backplane_model::wire::{Cursor, Error, put_varint, unzigzag, varint_len, zigzag};

use super::Result;

pub const BLOCK: usize = 128;
const RLE: u8 = 0;
const PACKED: u8 = 1;

/// Applies `order` passes of differencing in place (wrapping).
fn forward(x: &mut [i64], order: u8) {
    for pass in 0..usize::from(order) {
        for i in (pass + 1..x.len()).rev() {
            x[i] = x[i].wrapping_sub(x[i - 1]);
        }
    }
}

fn inverse(x: &mut [i64], order: u8) {
    for pass in (0..usize::from(order)).rev() {
        for i in pass + 1..x.len() {
            x[i] = x[i].wrapping_add(x[i - 1]);
        }
    }
}

fn rle_size(codes: &[u64]) -> usize {
    let mut size = 0;
    let mut i = 0;
    while i < codes.len() {
        let v = codes[i];
        let mut j = i + 1;
        while j < codes.len() && codes[j] == v {
            j += 1;
        }
        size += varint_len(v) + varint_len((j - i - 1) as u64);
        i = j;
    }
    size
}

fn width(range: u64) -> u32 {
    64 - range.leading_zeros()
}

fn packed_size(x: &[i64]) -> usize {
    x.chunks(BLOCK)
        .map(|block| {
            let (min, max) = min_max(block);
            varint_len(zigzag(min)) + 1 + (width(span(min, max)) as usize * block.len()).div_ceil(8)
        })
        .sum()
}

fn min_max(block: &[i64]) -> (i64, i64) {
    block
        .iter()
        .fold((i64::MAX, i64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)))
}

/// `max - min` as an unsigned distance (exact for any pair with `min <= max`).
fn span(min: i64, max: i64) -> u64 {
    max.wrapping_sub(min) as u64
}

/// Appends the encoding of `values` to `out`.
pub fn encode(values: &[i64], out: &mut Vec<u8>) {
    let mut best: Option<(usize, u8, u8)> = None;
    let mut scratch = values.to_vec();
    let mut codes: Vec<u64> = Vec::with_capacity(values.len());
    for order in 0..=2u8 {
        if order > 0 {
            // Each pass differences the previous order's result once more.
            let start = usize::from(order);
            for i in (start..scratch.len()).rev() {
                scratch[i] = scratch[i].wrapping_sub(scratch[i - 1]);
            }
        }
        codes.clear();
        codes.extend(scratch.iter().map(|&v| zigzag(v)));
        for (method, size) in [(RLE, rle_size(&codes)), (PACKED, packed_size(&scratch))] {
            if best.is_none_or(|(s, _, _)| size < s) {
                best = Some((size, method, order));
            }
        }
    }
    let (_, method, order) = best.unwrap_or((0, RLE, 0));
    let mut x = values.to_vec();
    forward(&mut x, order);
    out.push(method << 4 | order);
    if method == RLE {
        write_rle(x.iter().map(|&v| zigzag(v)), out);
    } else {
        for block in x.chunks(BLOCK) {
            let (min, max) = min_max(block);
            put_varint(out, zigzag(min));
            let w = width(span(min, max));
            out.push(w as u8);
            pack(block.iter().map(|&v| span(min, v)), w, out);
        }
    }
}

fn write_rle(mut codes: impl Iterator<Item = u64>, out: &mut Vec<u8>) {
    let Some(mut current) = codes.next() else {
        return;
    };
    let mut run = 1u64;
    for v in codes {
        if v == current {
            run += 1;
        } else {
            put_varint(out, current);
            put_varint(out, run - 1);
            current = v;
            run = 1;
        }
    }
    put_varint(out, current);
    put_varint(out, run - 1);
}

fn pack(values: impl Iterator<Item = u64>, w: u32, out: &mut Vec<u8>) {
    if w == 0 {
        return;
    }
    let mut acc: u128 = 0;
    let mut bits = 0u32;
    for v in values {
        acc |= u128::from(v) << bits;
        bits += w;
        while bits >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            bits -= 8;
        }
    }
    if bits > 0 {
        out.push(acc as u8);
    }
}

/// Decodes `n` values written by [`encode`], appending them to `out`.
pub fn decode(cur: &mut Cursor<'_>, n: usize, out: &mut Vec<i64>) -> Result<()> {
    let header = cur.u8()?;
    let (method, order) = (header >> 4, header & 0x0f);
    if order > 2 {
        return Err(Error::Invalid("unknown delta order"));
    }
    let start = out.len();
    match method {
        RLE => {
            let mut left = n;
            while left > 0 {
                let v = unzigzag(cur.varint()?);
                let run = cur
                    .varint()?
                    .checked_add(1)
                    .ok_or(Error::Invalid("run overflow"))?;
                let run = usize::try_from(run).map_err(|_| Error::Invalid("run too long"))?;
                if run > left {
                    return Err(Error::Invalid("run longer than the column"));
                }
                out.extend(std::iter::repeat_n(v, run));
                left -= run;
            }
        }
        PACKED => {
            let mut left = n;
            while left > 0 {
                let len = left.min(BLOCK);
                let min = unzigzag(cur.varint()?);
                let w = u32::from(cur.u8()?);
                if w > 64 {
                    return Err(Error::Invalid("bit width above 64"));
                }
                let bytes = cur.bytes((w as usize * len).div_ceil(8))?;
                unpack(bytes, w, len, min, out);
                left -= len;
            }
        }
        _ => return Err(Error::Invalid("unknown integer method")),
    }
    inverse(&mut out[start..], order);
    Ok(())
}

fn unpack(bytes: &[u8], w: u32, len: usize, min: i64, out: &mut Vec<i64>) {
    if w == 0 {
        out.extend(std::iter::repeat_n(min, len));
        return;
    }
    let mask = if w == 64 { u64::MAX } else { (1u64 << w) - 1 };
    let mut acc: u128 = 0;
    let mut bits = 0u32;
    let mut input = bytes.iter();
    for _ in 0..len {
        while bits < w {
            // `bytes` holds exactly enough bits for `len` values.
            acc |= u128::from(*input.next().unwrap_or(&0)) << bits;
            bits += 8;
        }
        let v = (acc as u64) & mask;
        acc >>= w;
        bits -= w;
        out.push(min.wrapping_add(v as i64));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(values: &[i64]) -> usize {
        let mut out = Vec::new();
        encode(values, &mut out);
        let mut decoded = Vec::new();
        let mut cur = Cursor::new(&out);
        decode(&mut cur, values.len(), &mut decoded).unwrap();
        assert_eq!(decoded, values);
        assert!(cur.is_empty());
        out.len()
    }

    #[test]
    fn regular_timestamps_take_a_few_bytes_whatever_their_number() {
        let times: Vec<i64> = (0..10_000)
            .map(|i| 1_795_000_000_000_000_000 + i * 1_000_000_000)
            .collect();
        assert!(round_trip(&times) < 24);
    }

    #[test]
    fn extremes_and_disorder_round_trip() {
        round_trip(&[i64::MIN, i64::MAX, 0, -1, i64::MIN, 5, 5, 5, -7]);
        round_trip(&[]);
        round_trip(&[42]);
    }

    #[test]
    fn small_steps_pack_into_few_bits() {
        let mut x = 0i64;
        let walk: Vec<i64> = (0..4096)
            .map(|i| {
                x += [3, -2, 1, -4, 0, 2][i % 6];
                x
            })
            .collect();
        let size = round_trip(&walk);
        assert!(size < 4096 * 4 / 8 + 64, "{size}");
    }

    #[test]
    fn runs_longer_than_the_column_are_rejected() {
        let bytes = [0x00, 0x02, 0x09];
        assert!(decode(&mut Cursor::new(&bytes), 3, &mut Vec::new()).is_err());
    }
}
