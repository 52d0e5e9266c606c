//! From a poll's rows to readings, a context and the row's key; pure.
//!
//! A cell that cannot be passed on turns its reading bad (never good) and is reported
//! with the row's key and the column: NULL is bad `unspecified` (the database holds no
//! value), a value the attribute's type cannot take is bad `type_mismatch`, a column type
//! the source does not map is bad `config_error`, text over `max_text` and impossible
//! dates are bad `out_of_range`. The row's other cells, and the rows around it, go on.

use std::sync::Arc;

use backplane_connector::RawReading;
use backplane_model::{BadReason, ContextField, DataType, Quality, Value};

use crate::config::{SqlSettings, result_name};
use crate::db::Cell;
use crate::watermark::{Mark, Watermark};

/// What went wrong with one cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Problem {
    Null,
    TypeMismatch,
    Unsupported,
    Invalid,
}

impl Problem {
    /// The counter the source increments.
    pub fn counter(self) -> &'static str {
        match self {
            Problem::Null => "null_cells",
            _ => "bad_cells",
        }
    }
}

/// One cell that did not give a good value.
#[derive(Clone, Debug, PartialEq)]
pub struct CellError {
    pub column: String,
    pub problem: Problem,
    pub detail: String,
}

/// One row, mapped.
#[derive(Clone, Debug, PartialEq)]
pub struct Mapped {
    pub key: Watermark,
    pub readings: Vec<RawReading>,
    /// The context fields the row gives (`None`: the column is NULL, the field is cleared).
    pub context: Vec<(ContextField, Option<Arc<str>>)>,
    pub errors: Vec<CellError>,
}

/// Where each column the source needs is in a poll's result.
#[derive(Clone, Debug)]
pub struct Layout {
    /// Per address: its column and the attribute type it feeds.
    addresses: Vec<(usize, Option<DataType>)>,
    names: Vec<String>,
    watermark: usize,
    tiebreak: Option<usize>,
    time: Option<usize>,
    context: Vec<(ContextField, usize)>,
}

impl Layout {
    /// Finds every needed column in `columns`; the error names one that is missing.
    pub fn new(
        settings: &SqlSettings,
        addresses: &[Arc<str>],
        types: &[Option<DataType>],
        columns: &[String],
    ) -> Result<Layout, String> {
        let find = |name: &str| {
            let name = result_name(name);
            columns.iter().position(|c| c == name).ok_or_else(|| {
                format!(
                    "the result has no column `{name}` (it has: {})",
                    columns.join(", ")
                )
            })
        };
        let mut mapped = Vec::with_capacity(addresses.len());
        for (i, a) in addresses.iter().enumerate() {
            mapped.push((find(a)?, types.get(i).copied().flatten()));
        }
        let context = match &settings.context {
            Some(c) => c
                .fields
                .iter()
                .map(|(f, col)| Ok((*f, find(col)?)))
                .collect::<Result<_, String>>()?,
            None => Vec::new(),
        };
        Ok(Layout {
            addresses: mapped,
            names: columns.to_vec(),
            watermark: find(&settings.watermark)?,
            tiebreak: settings.tiebreak.as_deref().map(find).transpose()?,
            time: settings.time.as_deref().map(find).transpose()?,
            context,
        })
    }

    /// Maps one row. `Err` when the row has no usable key: the watermark (or tiebreak)
    /// column is NULL or of a type that does not order (that is the configuration's fault,
    /// and reading on would skip or repeat rows).
    pub fn row(&self, row: &[Cell]) -> Result<Mapped, String> {
        let key_part = |i: usize| {
            match row.get(i) {
            Some(Cell::Value(v)) => Mark::from_value(v).ok_or_else(|| {
                format!(
                    "column `{}` holds {} values; a watermark or tiebreak must be an integer, timestamp or text column",
                    self.names[i],
                    v.type_name()
                )
            }),
            Some(Cell::Null) => Err(format!("column `{}` is NULL in a row read", self.names[i])),
            Some(Cell::Unsupported(why) | Cell::Invalid(why)) => {
                Err(format!("column `{}` cannot be a key: {why}", self.names[i]))
            }
            None => Err(format!("column `{}` is missing from a row", self.names[i])),
        }
        };
        let key = Watermark {
            key: key_part(self.watermark)?,
            tiebreak: self.tiebreak.map(key_part).transpose()?,
        };
        let source_time = self.time.and_then(|i| match row.get(i) {
            Some(Cell::Value(Value::Timestamp(t))) => Some(*t),
            _ => None,
        });
        let mut errors = Vec::new();
        let mut readings = Vec::with_capacity(self.addresses.len());
        for (address, (col, ty)) in self.addresses.iter().enumerate() {
            let (value, quality) = match row.get(*col) {
                Some(Cell::Value(v)) => match ty.map(|t| v.convert(t)) {
                    Some(Err(e)) => {
                        errors.push(self.error(*col, Problem::TypeMismatch, e.to_string()));
                        (None, Quality::Bad(BadReason::TypeMismatch))
                    }
                    _ => (Some(v.clone()), Quality::Good),
                },
                Some(Cell::Null) | None => {
                    errors.push(self.error(*col, Problem::Null, "NULL".into()));
                    (None, Quality::Bad(BadReason::Unspecified))
                }
                Some(Cell::Unsupported(why)) => {
                    errors.push(self.error(*col, Problem::Unsupported, why.clone()));
                    (None, Quality::Bad(BadReason::ConfigError))
                }
                Some(Cell::Invalid(why)) => {
                    errors.push(self.error(*col, Problem::Invalid, why.clone()));
                    (None, Quality::Bad(BadReason::OutOfRange))
                }
            };
            readings.push(RawReading {
                address: address as u32,
                value,
                quality,
                source_time,
            });
        }
        let mut context = Vec::with_capacity(self.context.len());
        for (field, col) in &self.context {
            match row.get(*col) {
                Some(Cell::Value(Value::String(s))) => context.push((*field, Some(s.clone()))),
                Some(Cell::Value(v @ (Value::Int(_) | Value::UInt(_)))) => {
                    context.push((*field, Some(v.to_string().into())));
                }
                Some(Cell::Null) | None => context.push((*field, None)),
                Some(Cell::Value(v)) => errors.push(self.error(
                    *col,
                    Problem::TypeMismatch,
                    format!("a context field takes text or integers, not {}", v.type_name()),
                )),
                Some(Cell::Unsupported(why)) => {
                    errors.push(self.error(*col, Problem::Unsupported, why.clone()));
                }
                Some(Cell::Invalid(why)) => errors.push(self.error(*col, Problem::Invalid, why.clone())),
            }
        }
        Ok(Mapped {
            key,
            readings,
            context,
            errors,
        })
    }

    fn error(&self, col: usize, problem: Problem, detail: String) -> CellError {
        CellError {
            column: self.names[col].clone(),
            problem,
            detail,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use backplane_model::{ScalarType, Timestamp};

    use super::*;

    fn settings() -> SqlSettings {
        let (s, errors) = backplane_testkit::settings::parse(
            "url = \"postgresql://h/db\"\ntable = \"r\"\nwatermark = \"ts\"\ntiebreak = \"id\"\ntime = \"ts\"\ncontext_asset = \"line-1\"\ncontext = { batch = \"lot\" }",
            crate::config::parse_settings,
        );
        assert!(errors.is_empty(), "{errors:?}");
        s.unwrap()
    }

    fn cols() -> Vec<String> {
        ["id", "ts", "temp", "lot"].map(String::from).to_vec()
    }

    #[test]
    fn a_row_gives_good_readings_its_time_key_and_context() {
        let layout = Layout::new(
            &settings(),
            &["temp".into()],
            &[Some(DataType::Scalar(ScalarType::Float))],
            &cols(),
        )
        .unwrap();
        let t = Timestamp::from_unix_nanos(5_000);
        let m = layout
            .row(&[
                Cell::Value(Value::Int(3)),
                Cell::Value(Value::Timestamp(t)),
                Cell::Value(Value::String("12.5".into())),
                Cell::Value(Value::String("L-9".into())),
            ])
            .unwrap();
        assert_eq!(m.key.key, Mark::Time(t));
        assert_eq!(m.key.tiebreak, Some(Mark::Int(3)));
        assert_eq!(m.readings[0].quality, Quality::Good);
        assert_eq!(m.readings[0].source_time, Some(t));
        assert_eq!(m.context, [(ContextField::Batch, Some("L-9".into()))]);
        assert!(m.errors.is_empty());
    }

    #[test]
    fn null_and_unconvertible_cells_are_bad_and_name_their_column() {
        let layout = Layout::new(
            &settings(),
            &["temp".into(), "lot".into()],
            &[Some(DataType::Scalar(ScalarType::Float)), None],
            &cols(),
        )
        .unwrap();
        let t = Cell::Value(Value::Timestamp(Timestamp::from_unix_nanos(1)));
        let m = layout
            .row(&[
                Cell::Value(Value::Int(1)),
                t.clone(),
                Cell::Value(Value::String("n/a".into())),
                Cell::Null,
            ])
            .unwrap();
        assert_eq!(m.readings[0].quality, Quality::Bad(BadReason::TypeMismatch));
        assert_eq!(m.readings[0].value, None);
        assert_eq!(m.readings[1].quality, Quality::Bad(BadReason::Unspecified));
        assert_eq!(m.errors[0].column, "temp");
        assert_eq!(m.errors[1].problem, Problem::Null);
        assert_eq!(m.context, [(ContextField::Batch, None)]);
    }

    #[test]
    fn a_missing_column_or_a_float_key_is_refused() {
        let s = settings();
        let e = Layout::new(&s, &["pressure".into()], &[None], &cols()).unwrap_err();
        assert!(e.contains("`pressure`"), "{e}");
        let layout = Layout::new(&s, &[], &[], &cols()).unwrap();
        let e = layout
            .row(&[
                Cell::Value(Value::Float(1.5)),
                Cell::Value(Value::Int(1)),
                Cell::Null,
                Cell::Null,
            ])
            .unwrap_err();
        assert!(e.contains("`ts`") || e.contains("`id`"), "{e}");
    }
}
