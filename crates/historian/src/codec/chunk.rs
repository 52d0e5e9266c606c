//! One chunk: the points of one series in one partition, column by column.
//!
//! Layout (after the format byte and the point count):
//! 1. gateway times: [`ints`] (delta-of-delta wins for regular sampling);
//! 2. source times: `0` none / `1` all present / `2` some (then a 0/1 presence column),
//!    then the offsets `source - gateway` of those present as [`ints`];
//! 3. qualities as OPC UA status codes: [`ints`] (run-length wins);
//! 4. context ids: [`ints`] (run-length wins);
//! 5. value presence: `0` all / `1` none / `2` some (then a 0/1 column);
//! 6. the values present, by column kind: floats ([`floats`]), ints, uints, bools and
//!    timestamps ([`ints`]), or a dictionary (strings, arrays, mixed types): the distinct
//!    values ([`backplane_model::wire`] encoding) then their ids ([`ints`], run-length
//!    wins for states).
//!
//! Points are encoded in the order given; the store sorts them by time first.

use std::collections::HashMap;

use backplane_model::{Quality, Timestamp, Value};

use backplane_model::wire::{self, Cursor, Error, put_varint};

use super::{Result, floats, ints};
use crate::point::Point;

const FORMAT: u8 = 1;
/// Upper bound on points per chunk accepted when decoding; the store writes at most
/// [`crate::store::CHUNK_POINTS`].
pub const MAX_POINTS: usize = 1 << 20;

const ALL: u8 = 0;
const NONE: u8 = 1;
const SOME: u8 = 2;

const K_FLOAT: u8 = 1;
const K_INT: u8 = 2;
const K_UINT: u8 = 3;
const K_BOOL: u8 = 4;
const K_TIMESTAMP: u8 = 5;
const K_DICT: u8 = 6;

pub fn encode(points: &[Point], out: &mut Vec<u8>) {
    out.push(FORMAT);
    put_varint(out, points.len() as u64);
    let times: Vec<i64> = points.iter().map(|p| p.time.unix_nanos()).collect();
    ints::encode(&times, out);

    let with_source = points.iter().filter(|p| p.source_time.is_some()).count();
    let offsets: Vec<i64> = points
        .iter()
        .filter_map(|p| {
            p.source_time
                .map(|s| s.unix_nanos().wrapping_sub(p.time.unix_nanos()))
        })
        .collect();
    presence(
        points.len(),
        with_source,
        points.iter().map(|p| p.source_time.is_some()),
        out,
    );
    if with_source > 0 {
        ints::encode(&offsets, out);
    }

    let qualities: Vec<i64> = points
        .iter()
        .map(|p| i64::from(p.quality.to_status_code()))
        .collect();
    ints::encode(&qualities, out);
    let contexts: Vec<i64> = points.iter().map(|p| i64::from(p.context)).collect();
    ints::encode(&contexts, out);

    let present: Vec<&Value> = points.iter().filter_map(|p| p.value.as_ref()).collect();
    presence(
        points.len(),
        present.len(),
        points.iter().map(|p| p.value.is_some()),
        out,
    );
    if !present.is_empty() {
        encode_values(&present, out);
    }
}

fn presence(n: usize, count: usize, flags: impl Iterator<Item = bool>, out: &mut Vec<u8>) {
    if count == n {
        out.push(ALL);
    } else if count == 0 {
        out.push(NONE);
    } else {
        out.push(SOME);
        let column: Vec<i64> = flags.map(i64::from).collect();
        ints::encode(&column, out);
    }
}

fn encode_values(present: &[&Value], out: &mut Vec<u8>) {
    let first = present[0];
    let same_kind = present
        .iter()
        .all(|v| std::mem::discriminant(*v) == std::mem::discriminant(first));
    match first {
        Value::Float(_) if same_kind => {
            out.push(K_FLOAT);
            let column: Vec<f64> = present.iter().map(|v| v.as_f64().unwrap_or(f64::NAN)).collect();
            floats::encode(&column, out);
        }
        Value::Int(_) | Value::UInt(_) | Value::Bool(_) | Value::Timestamp(_) if same_kind => {
            let (kind, column): (u8, Vec<i64>) = match first {
                Value::Int(_) => (K_INT, present.iter().map(|v| as_int(v)).collect()),
                Value::UInt(_) => (K_UINT, present.iter().map(|v| as_int(v)).collect()),
                Value::Bool(_) => (K_BOOL, present.iter().map(|v| as_int(v)).collect()),
                _ => (K_TIMESTAMP, present.iter().map(|v| as_int(v)).collect()),
            };
            out.push(kind);
            ints::encode(&column, out);
        }
        _ => {
            out.push(K_DICT);
            let mut ids: HashMap<Vec<u8>, i64> = HashMap::new();
            let mut entries: Vec<Vec<u8>> = Vec::new();
            let column: Vec<i64> = present
                .iter()
                .map(|v| {
                    let mut key = Vec::with_capacity(16);
                    wire::put_value(&mut key, v);
                    *ids.entry(key).or_insert_with_key(|key| {
                        entries.push(key.clone());
                        entries.len() as i64 - 1
                    })
                })
                .collect();
            put_varint(out, entries.len() as u64);
            for entry in &entries {
                out.extend_from_slice(entry);
            }
            ints::encode(&column, out);
        }
    }
}

/// The integer image of a value in an integer column (bit-preserving for `u64`).
fn as_int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        Value::UInt(u) => *u as i64,
        Value::Bool(b) => i64::from(*b),
        Value::Timestamp(t) => t.unix_nanos(),
        _ => 0,
    }
}

/// Decodes a whole chunk.
pub fn decode(bytes: &[u8]) -> Result<Vec<Point>> {
    decode_range(bytes, i64::MIN, i64::MAX)
}

/// Decodes the points of a chunk whose time is in `[from, to)` (every point when the
/// range is `i64::MIN..i64::MAX`), in chunk order; the others are never built.
pub fn decode_range(bytes: &[u8], from: i64, to: i64) -> Result<Vec<Point>> {
    let mut cur = Cursor::new(bytes);
    if cur.u8()? != FORMAT {
        return Err(Error::Invalid("unknown chunk format"));
    }
    let n = cur.count(MAX_POINTS, 0)?;
    let mut times = Vec::with_capacity(n);
    ints::decode(&mut cur, n, &mut times)?;

    let source_flags = read_presence(&mut cur, n)?;
    let with_source = source_flags.iter().filter(|f| **f).count();
    let mut offsets = Vec::with_capacity(with_source);
    if with_source > 0 {
        ints::decode(&mut cur, with_source, &mut offsets)?;
    }

    let mut qualities = Vec::with_capacity(n);
    ints::decode(&mut cur, n, &mut qualities)?;
    let mut contexts = Vec::with_capacity(n);
    ints::decode(&mut cur, n, &mut contexts)?;

    let value_flags = read_presence(&mut cur, n)?;
    let present = value_flags.iter().filter(|f| **f).count();
    let column = if present > 0 {
        decode_values(&mut cur, present)?
    } else {
        Column::None
    };
    if !cur.is_empty() {
        return Err(Error::Invalid("bytes after the last column"));
    }

    let mut offsets = offsets.into_iter();
    let mut next_value = 0usize;
    let wanted = times.iter().filter(|&&t| t >= from && t < to).count();
    let mut points = Vec::with_capacity(wanted);
    // Qualities come in runs: convert each distinct code once.
    let mut quality_cache: Option<(i64, Quality)> = None;
    for i in 0..n {
        let t = times[i];
        let offset = if source_flags[i] {
            Some(offsets.next().ok_or(Error::Invalid("source column short"))?)
        } else {
            None
        };
        let value_at = value_flags[i].then(|| {
            next_value += 1;
            next_value - 1
        });
        if t < from || t >= to {
            continue;
        }
        let value = value_at
            .map(|v| column.value(v))
            .transpose()
            .map_err(Error::Invalid)?;
        let quality = match quality_cache {
            Some((code, q)) if code == qualities[i] => q,
            _ => {
                let code = u32::try_from(qualities[i]).map_err(|_| Error::Invalid("quality out of range"))?;
                let q = Quality::from_status_code(code);
                quality_cache = Some((qualities[i], q));
                q
            }
        };
        let context = u32::try_from(contexts[i]).map_err(|_| Error::Invalid("context id out of range"))?;
        points.push(Point {
            time: Timestamp::from_unix_nanos(t),
            source_time: offset.map(|o| Timestamp::from_unix_nanos(t.wrapping_add(o))),
            value,
            quality,
            context,
        });
    }
    Ok(points)
}

fn read_presence(cur: &mut Cursor<'_>, n: usize) -> Result<Vec<bool>> {
    match cur.u8()? {
        ALL => Ok(vec![true; n]),
        NONE => Ok(vec![false; n]),
        SOME => {
            let mut column = Vec::with_capacity(n);
            ints::decode(cur, n, &mut column)?;
            column
                .into_iter()
                .map(|f| match f {
                    0 => Ok(false),
                    1 => Ok(true),
                    _ => Err(Error::Invalid("presence flag out of range")),
                })
                .collect()
        }
        _ => Err(Error::Invalid("unknown presence mode")),
    }
}

/// A decoded value column, kept typed so values are built only for the points wanted.
enum Column {
    None,
    Float(Vec<f64>),
    Ints(u8, Vec<i64>),
    Dict(Vec<Value>, Vec<i64>),
}

impl Column {
    /// The `i`th value. Fails with the message for [`Error::Invalid`]: the smaller error
    /// keeps the result of this per-point call (the query's hot loop) as small as a value.
    fn value(&self, i: usize) -> std::result::Result<Value, &'static str> {
        let short = "value column short";
        match self {
            Column::None => Err(short),
            Column::Float(c) => c.get(i).map(|x| Value::Float(*x)).ok_or(short),
            Column::Ints(kind, c) => {
                let x = *c.get(i).ok_or(short)?;
                match *kind {
                    K_INT => Ok(Value::Int(x)),
                    K_UINT => Ok(Value::UInt(x as u64)),
                    K_BOOL => match x {
                        0 => Ok(Value::Bool(false)),
                        1 => Ok(Value::Bool(true)),
                        _ => Err("bool out of range"),
                    },
                    _ => Ok(Value::Timestamp(Timestamp::from_unix_nanos(x))),
                }
            }
            Column::Dict(entries, ids) => {
                let id = *ids.get(i).ok_or(short)?;
                usize::try_from(id)
                    .ok()
                    .and_then(|i| entries.get(i).cloned())
                    .ok_or("dictionary id out of range")
            }
        }
    }
}

fn decode_values(cur: &mut Cursor<'_>, n: usize) -> Result<Column> {
    let kind = cur.u8()?;
    match kind {
        K_FLOAT => {
            let mut column = Vec::with_capacity(n);
            floats::decode(cur, n, &mut column)?;
            Ok(Column::Float(column))
        }
        K_DICT => {
            let entries_n = cur.count(n, 2)?;
            let mut entries = Vec::with_capacity(entries_n);
            for _ in 0..entries_n {
                entries.push(cur.value()?);
            }
            let mut ids = Vec::with_capacity(n);
            ints::decode(cur, n, &mut ids)?;
            Ok(Column::Dict(entries, ids))
        }
        K_INT | K_UINT | K_BOOL | K_TIMESTAMP => {
            let mut column = Vec::with_capacity(n);
            ints::decode(cur, n, &mut column)?;
            Ok(Column::Ints(kind, column))
        }
        _ => Err(Error::Invalid("unknown value column kind")),
    }
}
