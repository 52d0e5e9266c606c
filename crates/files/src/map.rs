//! One file's bytes to readings, all or nothing: [`map_file`] returns every reading of the
//! file or the one [`Rejection`] naming the line (or JSON record) and field that failed.
//! Pure and I/O-free (the fuzzed part); bounded by the configured [`Limits`].

use std::fmt;
use std::sync::Arc;

use backplane_connector::RawReading;
use backplane_model::{Quality, ScalarType, Timestamp, Value};
use serde_json::Value as Json;

use crate::address::Address;
use crate::config::{Format, Layout, Limits};

/// Why a file was not ingested; the text of its `.reason` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// 1-based line of the file (CSV, NDJSON, JSON syntax errors).
    pub line: Option<u64>,
    /// 1-based record of a JSON document (its records carry no line).
    pub record: Option<usize>,
    pub field: Option<String>,
    pub message: String,
}

impl Rejection {
    fn file(message: impl Into<String>) -> Rejection {
        Rejection {
            line: None,
            record: None,
            field: None,
            message: message.into(),
        }
    }

    fn at(at: At, field: Option<&str>, message: impl Into<String>) -> Rejection {
        let (line, record) = match at {
            At::Line(l) => (Some(l), None),
            At::Record(r) => (None, Some(r)),
        };
        Rejection {
            line,
            record,
            field: field.map(str::to_owned),
            message: message.into(),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}, ")?;
        }
        if let Some(record) = self.record {
            write!(f, "record {record}, ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "field `{field}`: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Where a record is, for messages.
#[derive(Clone, Copy, Debug)]
enum At {
    Line(u64),
    Record(usize),
}

/// A field's content as the file has it.
enum Cell<'a> {
    Text(&'a str),
    Json(&'a Json),
}

/// What a file gives: its readings (address = index into the addresses) and how many
/// records it held.
#[derive(Debug, Default, PartialEq)]
pub struct Mapped {
    pub readings: Vec<RawReading>,
    pub records: usize,
}

/// Maps a whole file, or rejects it. `file_time` stamps records when the layout has no
/// time column (the file's modification time).
pub fn map_file(
    bytes: &[u8],
    layout: &Layout,
    addresses: &[Address],
    file_time: Timestamp,
) -> Result<Mapped, Rejection> {
    let limits = &layout.limits;
    if bytes.len() as u64 > limits.max_file_bytes {
        return Err(Rejection::file(format!(
            "the file is {} bytes, more than max_file_bytes = {}",
            bytes.len(),
            limits.max_file_bytes
        )));
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut mapper = Mapper {
        layout,
        addresses,
        file_time,
        out: Mapped::default(),
    };
    match layout.format {
        Format::Csv => {
            check_lines(bytes, limits)?;
            mapper.csv(bytes)?;
        }
        Format::Ndjson => {
            check_lines(bytes, limits)?;
            mapper.ndjson(bytes)?;
        }
        Format::Json => mapper.json(bytes)?,
    }
    Ok(mapper.out)
}

/// Rejects the first line longer than `max_line_bytes`.
fn check_lines(bytes: &[u8], limits: &Limits) -> Result<(), Rejection> {
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        let len = line.strip_suffix(b"\r").unwrap_or(line).len();
        if len > limits.max_line_bytes {
            return Err(Rejection::at(
                At::Line(i as u64 + 1),
                None,
                format!(
                    "the line is {len} bytes, more than max_line_bytes = {}",
                    limits.max_line_bytes
                ),
            ));
        }
    }
    Ok(())
}

struct Mapper<'a> {
    layout: &'a Layout,
    addresses: &'a [Address],
    file_time: Timestamp,
    out: Mapped,
}

impl Mapper<'_> {
    fn count_record(&mut self, at: At) -> Result<(), Rejection> {
        self.out.records += 1;
        if self.out.records > self.layout.limits.max_records {
            return Err(Rejection::at(
                at,
                None,
                format!(
                    "more than max_records = {} records",
                    self.layout.limits.max_records
                ),
            ));
        }
        Ok(())
    }

    /// The readings of one record; `get` finds a field's cell.
    fn record<'c>(&mut self, at: At, get: impl Fn(&str) -> Option<Cell<'c>>) -> Result<(), Rejection> {
        let time = match &self.layout.time {
            None => self.file_time,
            Some((column, parser)) => {
                let text = match get(column) {
                    Some(Cell::Text(t)) if !t.trim().is_empty() => t.to_owned(),
                    Some(Cell::Json(Json::String(t))) if !t.trim().is_empty() => t.clone(),
                    Some(Cell::Json(Json::Number(n))) => n.to_string(),
                    Some(Cell::Json(other)) if !other.is_null() => {
                        return Err(Rejection::at(
                            at,
                            Some(column),
                            format!("time is {other}, not a string or number"),
                        ));
                    }
                    _ => return Err(Rejection::at(at, Some(column), "the record has no time")),
                };
                parser
                    .parse(&text)
                    .map_err(|e| Rejection::at(at, Some(column), e))?
            }
        };
        for (i, address) in self.addresses.iter().enumerate() {
            if let Some((key, wanted)) = &address.filter {
                let matches = match get(key) {
                    Some(Cell::Text(t)) => t.trim() == wanted,
                    Some(Cell::Json(Json::String(s))) => s.trim() == wanted,
                    Some(Cell::Json(j @ (Json::Number(_) | Json::Bool(_)))) => {
                        let text = j.to_string();
                        text == *wanted
                    }
                    _ => false,
                };
                if !matches {
                    continue;
                }
            }
            let Some(cell) = get(&address.field) else { continue };
            let value = match cell {
                Cell::Text(t) if t.trim().is_empty() => continue,
                Cell::Json(Json::Null) => continue,
                Cell::Text(t) => from_text(t.trim(), address.ty, self.layout.decimal_comma),
                Cell::Json(j) => from_json(j, address.ty, self.layout.decimal_comma),
            }
            .map_err(|e| Rejection::at(at, Some(&address.field), e))?;
            self.out.readings.push(RawReading {
                address: i as u32,
                value: Some(value),
                quality: Quality::Good,
                source_time: Some(time),
            });
        }
        Ok(())
    }

    fn csv(&mut self, bytes: &[u8]) -> Result<(), Rejection> {
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(self.layout.delimiter)
            .has_headers(true)
            .flexible(false)
            .trim(csv::Trim::All)
            .from_reader(bytes);
        let headers = reader.headers().map_err(csv_error)?.clone();
        if headers.is_empty() || headers.iter().all(str::is_empty) {
            return Err(Rejection::file(
                "the file is empty: no header line naming the columns",
            ));
        }
        let column = |name: &str| headers.iter().position(|h| h == name);
        // Every column a binding, filter or the time names must be there.
        let mut needed: Vec<&str> = Vec::new();
        for a in self.addresses {
            needed.push(&a.field);
            if let Some((key, _)) = &a.filter {
                needed.push(key);
            }
        }
        if let Some((time, _)) = &self.layout.time {
            needed.push(time);
        }
        if let Some(missing) = needed.iter().find(|n| column(n).is_none()) {
            return Err(Rejection::at(
                At::Line(1),
                Some(missing),
                "the header has no such column",
            ));
        }
        let mut record = csv::StringRecord::new();
        loop {
            match reader.read_record(&mut record) {
                Ok(true) => {}
                Ok(false) => return Ok(()),
                Err(e) => return Err(csv_error(e)),
            }
            let line = record.position().map_or(0, csv::Position::line);
            self.count_record(At::Line(line))?;
            let record = &record;
            self.record(At::Line(line), |name| {
                column(name).and_then(|i| record.get(i)).map(Cell::Text)
            })?;
        }
    }

    fn ndjson(&mut self, bytes: &[u8]) -> Result<(), Rejection> {
        for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
            let at = At::Line(i as u64 + 1);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let value: Json = serde_json::from_slice(line)
                .map_err(|e| Rejection::at(at, None, format!("not JSON at column {}: {e}", e.column())))?;
            self.count_record(at)?;
            self.object(at, &value)?;
        }
        Ok(())
    }

    fn json(&mut self, bytes: &[u8]) -> Result<(), Rejection> {
        let document: Json = serde_json::from_slice(bytes).map_err(|e| Rejection {
            line: Some(e.line() as u64),
            record: None,
            field: None,
            message: format!("not JSON at column {}: {e}", e.column()),
        })?;
        let records = match &self.layout.records {
            Some(path) => match field(&document, path) {
                Some(Json::Array(items)) => items.as_slice(),
                Some(other) => {
                    return Err(Rejection::at(
                        At::Line(1),
                        Some(path),
                        format!("is {}, not an array of records", kind(other)),
                    ));
                }
                None => {
                    return Err(Rejection::at(
                        At::Line(1),
                        Some(path),
                        "the document has no such field",
                    ));
                }
            },
            None => match &document {
                Json::Array(items) => items.as_slice(),
                one => std::slice::from_ref(one),
            },
        };
        for (i, value) in records.iter().enumerate() {
            let at = At::Record(i + 1);
            self.count_record(at)?;
            self.object(at, value)?;
        }
        Ok(())
    }

    fn object(&mut self, at: At, value: &Json) -> Result<(), Rejection> {
        if !value.is_object() {
            return Err(Rejection::at(
                at,
                None,
                format!("the record is {}, not an object", kind(value)),
            ));
        }
        self.record(at, |name| field(value, name).map(Cell::Json))
    }
}

/// A field of a JSON object: the key as written, else its dotted path.
fn field<'j>(value: &'j Json, name: &str) -> Option<&'j Json> {
    if let Some(v) = value.get(name) {
        return Some(v);
    }
    name.split('.').try_fold(value, |v, key| v.get(key))
}

fn kind(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

fn csv_error(e: csv::Error) -> Rejection {
    let line = e.position().map(csv::Position::line);
    let message = match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => {
            format!("the record has {len} fields, the header {expected_len} (a cut or malformed line)")
        }
        csv::ErrorKind::Utf8 { err, .. } => format!("field {} is not UTF-8 text", err.field() + 1),
        _ => e.to_string(),
    };
    Rejection {
        line,
        record: None,
        field: None,
        message,
    }
}

fn from_text(text: &str, ty: ScalarType, decimal_comma: bool) -> Result<Value, String> {
    let wrong = |what: &str| format!("{text:?} is not {what}");
    match ty {
        ScalarType::Float => {
            let normalized;
            let text = if decimal_comma {
                normalized = text.replace(',', ".");
                &normalized
            } else {
                text
            };
            match text.parse::<f64>() {
                Ok(x) if x.is_finite() => Ok(Value::Float(x)),
                _ => Err(wrong("a number")),
            }
        }
        ScalarType::Int => text.parse().map(Value::Int).map_err(|_| wrong("an integer")),
        ScalarType::UInt => text
            .parse()
            .map(Value::UInt)
            .map_err(|_| wrong("an unsigned integer")),
        ScalarType::Bool => match text.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(Value::Bool(true)),
            "false" | "0" | "no" | "off" => Ok(Value::Bool(false)),
            _ => Err(wrong("a boolean (true/false, 1/0, yes/no)")),
        },
        ScalarType::String | ScalarType::Timestamp => Ok(Value::String(Arc::from(text))),
    }
}

fn from_json(value: &Json, ty: ScalarType, decimal_comma: bool) -> Result<Value, String> {
    match (value, ty) {
        (Json::String(s), ScalarType::String | ScalarType::Timestamp) => {
            Ok(Value::String(Arc::from(s.as_str())))
        }
        (Json::String(s), _) => from_text(s.trim(), ty, decimal_comma),
        (Json::Number(n), ScalarType::Float) => n
            .as_f64()
            .filter(|x| x.is_finite())
            .map(Value::Float)
            .ok_or_else(|| format!("{n} is not a finite number")),
        (Json::Number(n), ScalarType::Int) => n
            .as_i64()
            .map(Value::Int)
            .ok_or_else(|| format!("{n} is not an integer")),
        (Json::Number(n), ScalarType::UInt) => n
            .as_u64()
            .map(Value::UInt)
            .ok_or_else(|| format!("{n} is not an unsigned integer")),
        (Json::Number(n), ScalarType::String | ScalarType::Timestamp) => {
            Ok(Value::String(Arc::from(n.to_string())))
        }
        (Json::Bool(b), ScalarType::Bool) => Ok(Value::Bool(*b)),
        (other, ty) => Err(format!("{} is not {}", kind(other), ty.name())),
    }
}

/// Maps `data` the way the source does, for the fuzzer and the property test: the first
/// byte picks the format, delimiter, decimal comma and time format, the rest is the file.
/// No input may panic; a mapped file's readings name only configured addresses, at most
/// `max_records` records.
pub fn fuzz_map(data: &[u8]) {
    use crate::time::{TimeFormat, TimeParser};
    let (choice, file) = data.split_first().map_or((0, data), |(c, rest)| (*c, rest));
    let format = [Format::Csv, Format::Json, Format::Ndjson][usize::from(choice % 3)];
    let time_format = [
        TimeFormat::Rfc3339,
        TimeFormat::Unix,
        TimeFormat::UnixMs,
        TimeFormat::Pattern("%d.%m.%Y %H:%M:%S".into()),
    ][usize::from((choice >> 2) % 4)]
    .clone();
    let layout = Layout {
        format,
        delimiter: if choice & 0x10 == 0 { b',' } else { b';' },
        decimal_comma: choice & 0x30 == 0x30,
        records: (choice & 0x40 != 0).then(|| "a.b".to_owned()),
        time: (choice & 0x80 != 0).then(|| {
            (
                "t".to_owned(),
                TimeParser {
                    format: time_format,
                    zone: jiff::tz::TimeZone::UTC,
                },
            )
        }),
        limits: Limits {
            max_file_bytes: 1 << 16,
            max_records: 64,
            max_line_bytes: 256,
            max_files_per_scan: 1,
        },
    };
    let addresses: Vec<Address> = ["v", "v:int[k=1]", "a.b:uint", "s:string", "f:bool[k=x]"]
        .iter()
        .filter_map(|a| Address::parse(a).ok())
        .collect();
    match map_file(file, &layout, &addresses, Timestamp::from_unix_nanos(0)) {
        Ok(mapped) => {
            assert!(mapped.records <= layout.limits.max_records);
            assert!(
                mapped
                    .readings
                    .iter()
                    .all(|r| (r.address as usize) < addresses.len())
            );
        }
        Err(rejection) => assert!(!rejection.to_string().is_empty()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::time::{TimeFormat, TimeParser};

    fn layout(format: Format) -> Layout {
        Layout {
            format,
            delimiter: b',',
            decimal_comma: false,
            records: None,
            time: Some((
                "time".into(),
                TimeParser {
                    format: TimeFormat::Rfc3339,
                    zone: jiff::tz::TimeZone::UTC,
                },
            )),
            limits: Limits::default(),
        }
    }

    fn addresses(list: &[&str]) -> Vec<Address> {
        list.iter().map(|a| Address::parse(a).unwrap()).collect()
    }

    const T0: Timestamp = Timestamp::from_unix_nanos(0);

    fn values(m: &Mapped) -> Vec<(u32, Value, i64)> {
        m.readings
            .iter()
            .map(|r| {
                (
                    r.address,
                    r.value.clone().unwrap(),
                    r.source_time.unwrap().unix_nanos() / 1_000_000_000,
                )
            })
            .collect()
    }

    proptest::proptest! {
        #[test]
        fn no_file_content_panics_the_mapping(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            fuzz_map(&bytes);
        }

        #[test]
        fn no_csv_like_text_panics_the_mapping(choice in 0u8..=255, text in "[tvk,;\"\\n.0-9:a-z\\[\\]{} -]{0,300}") {
            let mut data = vec![choice];
            data.extend_from_slice(text.as_bytes());
            fuzz_map(&data);
        }
    }

    #[test]
    fn csv_rows_give_readings_for_their_filtered_columns_at_the_row_time() {
        let csv =
            "time,silo,fat,cells\n1970-01-01T00:00:10Z,silo-1,3.9,180000\n1970-01-01T00:00:20Z,silo-2,4.1,\n";
        let a = addresses(&["fat[silo=silo-1]", "fat[silo=silo-2]", "cells:uint[silo=silo-1]"]);
        let m = map_file(csv.as_bytes(), &layout(Format::Csv), &a, T0).unwrap();
        assert_eq!(m.records, 2);
        assert_eq!(
            values(&m),
            [
                (0, Value::Float(3.9), 10),
                (2, Value::UInt(180_000), 10),
                (1, Value::Float(4.1), 20)
            ]
        );
    }

    #[test]
    fn a_cut_csv_line_and_a_wrong_type_name_the_line_and_field() {
        let l = layout(Format::Csv);
        let a = addresses(&["fat"]);
        let cut = "time,fat\n1970-01-01T00:00:10Z,3.9\n1970-01-01T00:00:20Z\n";
        let e = map_file(cut.as_bytes(), &l, &a, T0).unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        let typed = "time,fat\n1970-01-01T00:00:10Z,3.9\n1970-01-01T00:00:20Z,high\n";
        let e = map_file(typed.as_bytes(), &l, &a, T0).unwrap_err();
        assert_eq!(e.to_string(), "line 3, field `fat`: \"high\" is not a number");
        let no_column = "time,protein\n";
        let e = map_file(no_column.as_bytes(), &l, &a, T0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 1, field `fat`: the header has no such column"
        );
        let bad_time = "time,fat\nnoon,3.9\n";
        let e = map_file(bad_time.as_bytes(), &l, &a, T0).unwrap_err();
        assert!(
            e.to_string().starts_with("line 2, field `time`: time \"noon\""),
            "{e}"
        );
    }

    #[test]
    fn json_documents_and_ndjson_lines_map_dotted_fields() {
        let a = addresses(&["result.fat", "ok:bool"]);
        let doc = r#"[{"time":"1970-01-01T00:00:05Z","result":{"fat":3.5},"ok":true}]"#;
        let m = map_file(doc.as_bytes(), &layout(Format::Json), &a, T0).unwrap();
        assert_eq!(values(&m), [(0, Value::Float(3.5), 5), (1, Value::Bool(true), 5)]);
        let mut l = layout(Format::Json);
        l.records = Some("data.samples".into());
        let doc = r#"{"data":{"samples":[{"time":7,"result":{"fat":"3.6"}}]}}"#;
        l.time = Some((
            "time".into(),
            TimeParser {
                format: TimeFormat::Unix,
                zone: jiff::tz::TimeZone::UTC,
            },
        ));
        let m = map_file(doc.as_bytes(), &l, &a, T0).unwrap();
        assert_eq!(values(&m), [(0, Value::Float(3.6), 7)]);
        let lines = "{\"time\":\"1970-01-01T00:00:01Z\",\"ok\":false}\n\n{\"time\":\"1970-01-01T00:00:02Z\",\"ok\":1}\n";
        let e = map_file(lines.as_bytes(), &layout(Format::Ndjson), &a, T0).unwrap_err();
        assert_eq!(e.to_string(), "line 3, field `ok`: a number is not bool");
    }

    #[test]
    fn malformed_json_names_the_line() {
        let a = addresses(&["fat"]);
        let doc = "[\n{\"time\": \"1970-01-01T00:00:05Z\", \"fat\": 3.5},\n{\"time\": \n";
        let e = map_file(doc.as_bytes(), &layout(Format::Json), &a, T0).unwrap_err();
        assert_eq!(e.line, Some(4), "{e}");
        let e = map_file(b"[1]", &layout(Format::Json), &a, T0).unwrap_err();
        assert_eq!(e.to_string(), "record 1, the record is a number, not an object");
    }

    #[test]
    fn limits_reject_long_lines_and_too_many_records() {
        let mut l = layout(Format::Csv);
        l.limits.max_line_bytes = 30;
        l.limits.max_records = 1;
        let a = addresses(&["fat"]);
        let long = format!("time,fat\n1970-01-01T00:00:10Z,{}\n", "1".repeat(40));
        let e = map_file(long.as_bytes(), &l, &a, T0).unwrap_err();
        assert!(e.to_string().starts_with("line 2, the line is"), "{e}");
        let two = "time,fat\n1970-01-01T00:00:10Z,1\n1970-01-01T00:00:11Z,2\n";
        let e = map_file(two.as_bytes(), &l, &a, T0).unwrap_err();
        assert_eq!(e.to_string(), "line 3, more than max_records = 1 records");
    }

    #[test]
    fn european_numbers_and_files_without_time_column_use_the_file_time() {
        let mut l = layout(Format::Csv);
        l.delimiter = b';';
        l.decimal_comma = true;
        l.time = None;
        let a = addresses(&["Fett %"]);
        let m = map_file(
            "\u{feff}Probe;Fett %\nA;3,85\n".as_bytes(),
            &l,
            &a,
            Timestamp::from_unix_nanos(9_000_000_000),
        )
        .unwrap();
        assert_eq!(values(&m), [(0, Value::Float(3.85), 9)]);
    }
}
