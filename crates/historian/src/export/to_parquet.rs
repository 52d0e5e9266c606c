//! The wide table as Apache Parquet with typed columns: one Arrow record batch per window
//! of rows, written with the `parquet` crate's `ArrowWriter` (its Arrow schema is stored in
//! the file, so readers such as pyarrow get the time zone and unsigned types back).
//!
//! | stored type | column |
//! |---|---|
//! | `float` | float64 |
//! | `int` | int64 |
//! | `uint` | uint64 |
//! | `bool` | boolean |
//! | `timestamp` (and `time`) | timestamp[ns, UTC] |
//! | `string` (and `asset`, qualities, context) | UTF-8 |
//! | `T[]` | list of the type of `T` |

use std::io::Write;
use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Float64Builder, Int64Builder, NullBufferBuilder, OffsetBufferBuilder, StringBuilder,
    TimestampNanosecondBuilder, UInt64Builder,
};
use arrow_array::{ArrayRef, ListArray, RecordBatch};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use backplane_model::{ContextField, Value};

use super::{ExportError, TableBuilder, value_text};

const UTC: &str = "UTC";

fn parquet_error(e: &dyn std::fmt::Display) -> ExportError {
    ExportError::Parquet(e.to_string())
}

/// The Arrow type of a stored scalar type name; anything unknown is text.
fn scalar_type(name: &str) -> DataType {
    match name {
        "float" => DataType::Float64,
        "int" => DataType::Int64,
        "uint" => DataType::UInt64,
        "bool" => DataType::Boolean,
        "timestamp" => DataType::Timestamp(TimeUnit::Nanosecond, Some(UTC.into())),
        _ => DataType::Utf8,
    }
}

/// The Arrow type of a stored type name (`float`, `float[]`, ...).
fn column_type(name: &str) -> DataType {
    match name.strip_suffix("[]") {
        Some(element) => DataType::List(Arc::new(Field::new_list_field(scalar_type(element), true))),
        None => scalar_type(name),
    }
}

/// Values of one scalar Arrow type; a value of another type is a null.
enum Scalars {
    Float(Float64Builder),
    Int(Int64Builder),
    UInt(UInt64Builder),
    Bool(BooleanBuilder),
    Time(TimestampNanosecondBuilder),
    Text(StringBuilder),
}

impl Scalars {
    fn new(data_type: &DataType) -> Scalars {
        match data_type {
            DataType::Float64 => Scalars::Float(Float64Builder::new()),
            DataType::Int64 => Scalars::Int(Int64Builder::new()),
            DataType::UInt64 => Scalars::UInt(UInt64Builder::new()),
            DataType::Boolean => Scalars::Bool(BooleanBuilder::new()),
            DataType::Timestamp(_, zone) => {
                Scalars::Time(TimestampNanosecondBuilder::new().with_timezone_opt(zone.clone()))
            }
            _ => Scalars::Text(StringBuilder::new()),
        }
    }

    fn append(&mut self, value: Option<&Value>) {
        match self {
            Scalars::Float(b) => b.append_option(value.and_then(Value::as_f64)),
            Scalars::Int(b) => b.append_option(value.and_then(Value::as_i64)),
            Scalars::UInt(b) => b.append_option(value.and_then(Value::as_u64)),
            Scalars::Bool(b) => b.append_option(match value {
                Some(Value::Bool(x)) => Some(*x),
                _ => None,
            }),
            Scalars::Time(b) => b.append_option(match value {
                Some(Value::Timestamp(t)) => Some(t.unix_nanos()),
                _ => None,
            }),
            Scalars::Text(b) => b.append_option(value.map(value_text)),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Scalars::Float(b) => Arc::new(b.finish()),
            Scalars::Int(b) => Arc::new(b.finish()),
            Scalars::UInt(b) => Arc::new(b.finish()),
            Scalars::Bool(b) => Arc::new(b.finish()),
            Scalars::Time(b) => Arc::new(b.finish()),
            Scalars::Text(b) => Arc::new(b.finish()),
        }
    }
}

/// One column of `cells` as an array of `data_type`.
fn column<'v>(
    data_type: &DataType,
    cells: impl ExactSizeIterator<Item = Option<&'v Value>>,
) -> Result<ArrayRef, ExportError> {
    let DataType::List(element) = data_type else {
        let mut values = Scalars::new(data_type);
        cells.for_each(|v| values.append(v));
        return Ok(values.finish());
    };
    let mut offsets = OffsetBufferBuilder::<i32>::new(cells.len());
    let mut nulls = NullBufferBuilder::new(cells.len());
    let mut values = Scalars::new(element.data_type());
    for cell in cells {
        let items: &[Value] = match cell {
            Some(Value::Array(items)) => items,
            _ => &[],
        };
        items.iter().for_each(|v| values.append(Some(v)));
        offsets
            .try_push_length(items.len())
            .map_err(|e| parquet_error(&e))?;
        nulls.append(matches!(cell, Some(Value::Array(_))));
    }
    let offsets = offsets.try_finish().map_err(|e| parquet_error(&e))?;
    let list = ListArray::try_new(element.clone(), offsets, values.finish(), nulls.finish())
        .map_err(|e| parquet_error(&e))?;
    Ok(Arc::new(list))
}

pub(super) fn write_parquet<W: Write + Send>(
    table: &mut TableBuilder<'_>,
    out: W,
    progress: &mut dyn FnMut(u64, u64, u64),
) -> Result<u64, ExportError> {
    let time_type = scalar_type("timestamp");
    let mut fields = vec![
        Field::new("time", time_type.clone(), false),
        Field::new("asset", DataType::Utf8, false),
    ];
    for c in &table.columns {
        fields.push(Field::new(c.name.as_str(), column_type(&c.data_type), true));
        fields.push(Field::new(c.quality_name(), DataType::Utf8, true));
    }
    for f in ContextField::ALL {
        fields.push(Field::new(f.name(), DataType::Utf8, true));
    }
    let schema = Arc::new(Schema::new(fields));
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(out, schema.clone(), None).map_err(|e| parquet_error(&e))?;
    let mut total = 0u64;
    while let Some(rows) = table.next_window()? {
        if rows.is_empty() {
            progress(table.done_windows, table.total_windows, total);
            continue;
        }
        let mut time = TimestampNanosecondBuilder::new().with_timezone(UTC);
        let mut asset = StringBuilder::new();
        for r in &rows {
            time.append_value(r.time.unix_nanos());
            asset.append_value(&*r.asset);
        }
        let mut arrays: Vec<ArrayRef> = vec![Arc::new(time.finish()), Arc::new(asset.finish())];
        for (ci, c) in table.columns.iter().enumerate() {
            let cells = rows
                .iter()
                .map(|r| r.cells.get(ci).and_then(|c| c.value.as_ref()));
            arrays.push(column(&column_type(&c.data_type), cells)?);
            let mut quality = StringBuilder::new();
            for r in &rows {
                quality.append_option(r.cells.get(ci).and_then(|c| c.quality).map(|q| q.class()));
            }
            arrays.push(Arc::new(quality.finish()));
        }
        for f in ContextField::ALL {
            let mut b = StringBuilder::new();
            for r in &rows {
                b.append_option(r.context.get(f).map(|v| &**v));
            }
            arrays.push(Arc::new(b.finish()));
        }
        let batch = RecordBatch::try_new(schema.clone(), arrays).map_err(|e| parquet_error(&e))?;
        writer.write(&batch).map_err(|e| parquet_error(&e))?;
        total += rows.len() as u64;
        progress(table.done_windows, table.total_windows, total);
    }
    writer.close().map_err(|e| parquet_error(&e))?;
    Ok(total)
}
