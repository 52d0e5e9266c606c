//! The `files` source's configuration keys, read through the config crate's [`Table`] so
//! every key is checked and every error has a position. See docs/connectors/files.md.

use std::path::PathBuf;
use std::time::Duration;

use backplane_config::Table;
use jiff::tz::TimeZone;

use crate::time::{TimeFormat, TimeParser};

/// How the files of a drop folder are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A header line naming the columns, then one record per line.
    Csv,
    /// One JSON document: an array of record objects, one object, or (with `records`) an
    /// object holding the array at a dotted path.
    Json,
    /// One JSON object per line.
    Ndjson,
}

/// What one file may hold; a file over any of them is quarantined with the limit named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_file_bytes: u64,
    pub max_records: usize,
    /// CSV and NDJSON lines (a JSON document is bounded by `max_file_bytes`).
    pub max_line_bytes: usize,
    /// Ready files ingested per scan; the rest wait for the next scan.
    pub max_files_per_scan: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_file_bytes: 16 << 20,
            max_records: 100_000,
            max_line_bytes: 64 << 10,
            max_files_per_scan: 100,
        }
    }
}

/// How records of one file are read (everything the pure mapping needs).
#[derive(Clone, Debug)]
pub struct Layout {
    pub format: Format,
    pub delimiter: u8,
    /// Numbers written with a decimal comma (`3,85`), as European instruments do.
    pub decimal_comma: bool,
    /// JSON: the dotted path of the record array inside the document.
    pub records: Option<String>,
    /// The column (CSV) or field (JSON) holding each record's time, and how it is written;
    /// without it, records take the file's modification time.
    pub time: Option<(String, TimeParser)>,
    pub limits: Limits,
}

/// Everything a `files` source reads from its `[[sources]]` table.
#[derive(Clone, Debug)]
pub struct FilesSettings {
    /// The inbox; relative paths are resolved against the gateway's data directory.
    pub path: PathBuf,
    pub layout: Layout,
    /// How often the inbox is listed.
    pub period: Duration,
    /// How long a file's size and modification time must stay unchanged before it is read.
    pub settle: Duration,
}

/// Reads the keys of one `[[sources]]` table of kind `files`.
pub fn parse_settings(table: &mut Table<'_>) -> Option<FilesSettings> {
    let mut ok = true;
    let path = table.required_str("path").map(PathBuf::from);
    if path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
        table.error(
            "path",
            "`path` is empty",
            Some("the inbox directory the instrument writes to".into()),
        );
        ok = false;
    }
    let format = match table.optional_str("format").unwrap_or("csv") {
        "csv" => Format::Csv,
        "json" => Format::Json,
        "ndjson" => Format::Ndjson,
        other => {
            table.error(
                "format",
                format!("unknown format `{other}`"),
                Some("csv, json or ndjson".into()),
            );
            ok = false;
            Format::Csv
        }
    };
    let delimiter = match table.optional_str("delimiter") {
        None => b',',
        Some("\\t" | "tab") => b'\t',
        Some(d) if d.len() == 1 && d.is_ascii() => d.as_bytes()[0],
        Some(d) => {
            table.error(
                "delimiter",
                format!("delimiter {d:?} is not one ASCII character"),
                Some("e.g. \",\", \";\" or \"tab\"".into()),
            );
            ok = false;
            b','
        }
    };
    let decimal_comma = match table.optional_str("decimal") {
        None | Some(".") => false,
        Some(",") => true,
        Some(d) => {
            table.error(
                "decimal",
                format!("decimal {d:?} is neither \".\" nor \",\""),
                None,
            );
            ok = false;
            false
        }
    };
    if decimal_comma && delimiter == b',' {
        table.error(
            "decimal",
            "a decimal comma needs another delimiter than the comma",
            Some("set delimiter = \";\" (what instruments writing 3,85 use)".into()),
        );
        ok = false;
    }
    let records = table.optional_str("records").map(str::to_owned);
    let column = table.optional_str("time_column").map(str::to_owned);
    let format_text = table.optional_str("time_format");
    let zone_name = table.optional_str("timezone");
    let time_format = match TimeFormat::parse(format_text.unwrap_or("rfc3339")) {
        Ok(f) => f,
        Err(e) => {
            table.error(
                "time_format",
                e,
                Some("e.g. \"rfc3339\", \"unix\", \"unix_ms\" or \"%d.%m.%Y %H:%M:%S\"".into()),
            );
            ok = false;
            TimeFormat::Rfc3339
        }
    };
    let zone = match zone_name {
        None => TimeZone::UTC,
        Some(name) => match TimeZone::get(name) {
            Ok(z) => z,
            Err(e) => {
                table.error(
                    "timezone",
                    format!("unknown time zone `{name}`: {e}"),
                    Some("an IANA name such as \"Europe/Berlin\", or \"UTC\"".into()),
                );
                ok = false;
                TimeZone::UTC
            }
        },
    };
    if column.is_none() && (format_text.is_some() || zone_name.is_some()) {
        table.error(
            "time_column",
            "`time_format`/`timezone` are set but no `time_column`",
            Some("name the column or field holding each record's time".into()),
        );
        ok = false;
    }
    let time = column.map(|c| {
        (
            c,
            TimeParser {
                format: time_format,
                zone,
            },
        )
    });
    let period = table.duration_at_least("period", Duration::from_secs(1), Duration::from_millis(10));
    let settle = table.duration_at_least("settle", Duration::from_secs(2), Duration::ZERO);
    let defaults = Limits::default();
    let mut limit = |table: &mut Table<'_>, key: &str, value: Option<u64>, default: u64| match value {
        None => default,
        Some(0) => {
            table.error(key, format!("`{key}` must be at least 1"), None);
            ok = false;
            default
        }
        Some(v) => v,
    };
    let v = table.optional_bytes("max_file_bytes");
    let max_file_bytes = limit(table, "max_file_bytes", v, defaults.max_file_bytes);
    let v = table.optional_u64("max_records");
    let max_records = limit(table, "max_records", v, defaults.max_records as u64);
    let v = table.optional_bytes("max_line_bytes");
    let max_line_bytes = limit(table, "max_line_bytes", v, defaults.max_line_bytes as u64);
    let v = table.optional_u64("max_files_per_scan");
    let max_files_per_scan = limit(table, "max_files_per_scan", v, defaults.max_files_per_scan as u64);
    let as_usize = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    let (path, period, settle) = (path?, period?, settle?);
    ok.then_some(FilesSettings {
        path,
        layout: Layout {
            format,
            delimiter,
            decimal_comma,
            records,
            time,
            limits: Limits {
                max_file_bytes,
                max_records: as_usize(max_records),
                max_line_bytes: as_usize(max_line_bytes),
                max_files_per_scan: as_usize(max_files_per_scan),
            },
        },
        period,
        settle,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(text: &str) -> (Option<FilesSettings>, Vec<String>) {
        backplane_testkit::settings::parse(text, parse_settings)
    }

    #[test]
    fn a_path_alone_takes_the_documented_defaults() {
        let (s, errors) = parse("path = \"lab\"\n");
        assert!(errors.is_empty(), "{errors:?}");
        let s = s.unwrap();
        assert_eq!(s.path, PathBuf::from("lab"));
        assert_eq!(
            (s.layout.format, s.layout.delimiter, s.layout.decimal_comma),
            (Format::Csv, b',', false)
        );
        assert!(s.layout.time.is_none());
        assert_eq!(
            (s.period, s.settle),
            (Duration::from_secs(1), Duration::from_secs(2))
        );
        assert_eq!(s.layout.limits, Limits::default());
    }

    #[test]
    fn time_columns_limits_and_european_numbers_are_read() {
        let (s, errors) = parse(
            "path = \"/srv/cmm\"\nformat = \"csv\"\ndelimiter = \";\"\ndecimal = \",\"\n\
             time_column = \"Zeit\"\ntime_format = \"%d.%m.%Y %H:%M:%S\"\ntimezone = \"Europe/Berlin\"\n\
             settle = \"0s\"\nmax_file_bytes = \"1MiB\"\nmax_records = 10\nmax_line_bytes = 512\nmax_files_per_scan = 3\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        let s = s.unwrap();
        assert_eq!((s.layout.delimiter, s.layout.decimal_comma), (b';', true));
        let (column, parser) = s.layout.time.unwrap();
        assert_eq!(column, "Zeit");
        assert_eq!(parser.format, TimeFormat::Pattern("%d.%m.%Y %H:%M:%S".into()));
        assert_eq!(s.settle, Duration::ZERO);
        assert_eq!(
            s.layout.limits,
            Limits {
                max_file_bytes: 1 << 20,
                max_records: 10,
                max_line_bytes: 512,
                max_files_per_scan: 3
            }
        );
    }

    #[test]
    fn wrong_values_are_reported_with_hints() {
        let (s, errors) = parse(
            "path = \"x\"\nformat = \"xml\"\ndelimiter = \"ab\"\ndecimal = \",\"\ntimezone = \"Mars/Base\"\n\
             max_records = 0\ntime_format = \"dd.mm\"\n",
        );
        assert!(s.is_none());
        let all = errors.join("\n");
        for needle in [
            "unknown format `xml`",
            "not one ASCII character",
            "unknown time zone `Mars/Base`",
            "`max_records` must be at least 1",
            "neither rfc3339",
            "no `time_column`",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in\n{all}");
        }
        let (_, errors) = parse("path = \"x\"\ndecimal = \",\"\n");
        assert!(errors.join("\n").contains("another delimiter"), "{errors:?}");
    }
}
