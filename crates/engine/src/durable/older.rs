//! Reading the samples of records written by older versions, so a backlog left on disk by
//! one is delivered after an upgrade. Only a sample's layout differs between formats; the
//! contexts before the samples and the events after them are the same.
//!
//! - Format 2: `tag path (string), flags u8 (1 = source time, 2 = value), quality status
//!   code u32 LE, [source time i64 LE], gateway time i64 LE, context index varint,
//!   [value]`, values in the [`wire`] encoding.
//! - Format 1: `tag path, value (type byte 0 = none, 1 bool u8, 2 int i64 LE, 3 uint u64
//!   LE, 4 float f64 LE, 5 string, 6 timestamp i64 LE, 7 array: varint count then values),
//!   quality u32 LE, source time flag u8 and [i64 LE], gateway time i64 LE, context index
//!   varint`.

use std::sync::Arc;

use backplane_model::wire::{self, Cursor, Error, MAX_DEPTH};
use backplane_model::{Quality, Timestamp, Value};

use super::{HAS_SOURCE_TIME, HAS_VALUE, RawSample, StoredPath};

pub(super) fn format2_sample<'a>(r: &mut Cursor<'a>) -> wire::Result<RawSample<'a>> {
    let path = StoredPath::Joined(r.blob()?);
    let flags = r.u8()?;
    if flags & !(HAS_SOURCE_TIME | HAS_VALUE) != 0 {
        return Err(Error::Invalid("unknown sample flags"));
    }
    let quality = Quality::from_status_code(r.u32_le()?);
    let source_time = if flags & HAS_SOURCE_TIME != 0 {
        Some(Timestamp::from_unix_nanos(r.i64_le()?))
    } else {
        None
    };
    let gateway_time = Timestamp::from_unix_nanos(r.i64_le()?);
    let context = r.varint()?;
    let value = if flags & HAS_VALUE != 0 {
        Some(r.value()?)
    } else {
        None
    };
    Ok(RawSample {
        path,
        value,
        quality,
        source_time,
        gateway_time,
        context,
    })
}

pub(super) fn format1_sample<'a>(r: &mut Cursor<'a>) -> wire::Result<RawSample<'a>> {
    let path = StoredPath::Joined(r.blob()?);
    let value = if r.peek() == Some(0) {
        r.u8()?;
        None
    } else {
        Some(format1_value(r, 0)?)
    };
    let quality = Quality::from_status_code(r.u32_le()?);
    let source_time = match r.u8()? {
        0 => None,
        1 => Some(Timestamp::from_unix_nanos(r.i64_le()?)),
        _ => return Err(Error::Invalid("bad source time flag")),
    };
    let gateway_time = Timestamp::from_unix_nanos(r.i64_le()?);
    let context = r.varint()?;
    Ok(RawSample {
        path,
        value,
        quality,
        source_time,
        gateway_time,
        context,
    })
}

fn format1_value(r: &mut Cursor<'_>, depth: usize) -> wire::Result<Value> {
    Ok(match r.u8()? {
        1 => Value::Bool(r.u8()? != 0),
        2 => Value::Int(r.i64_le()?),
        3 => Value::UInt(r.u64_le()?),
        4 => Value::Float(f64::from_bits(r.u64_le()?)),
        5 => Value::String(Arc::from(r.str()?)),
        6 => Value::Timestamp(Timestamp::from_unix_nanos(r.i64_le()?)),
        7 if depth < MAX_DEPTH => {
            let n = r.count(usize::MAX, 1)?;
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(format1_value(r, depth + 1)?);
            }
            Value::Array(items.into())
        }
        7 => return Err(Error::TooDeep),
        tag => return Err(Error::UnknownValueType(tag)),
    })
}
