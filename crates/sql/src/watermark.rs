//! The watermark: the key of the last row handed to the pipeline, and its file.
//!
//! The key is the `watermark` column's value, with the `tiebreak` column's when one is
//! configured (rows then follow in `(watermark, tiebreak)` order, so rows sharing a time
//! are never split unseen across two polls). The file (`<data_dir>/sql/<source>.watermark`,
//! one JSON object) is replaced atomically: written to a temporary file, fsynced, renamed
//! over the old one, and the directory fsynced; a crash leaves the old key or the new one.

use std::fmt;
use std::path::{Path, PathBuf};

use backplane_model::{Timestamp, Value};
use serde_json::json;

/// One column's value in a row key.
#[derive(Clone, Debug, PartialEq)]
pub enum Mark {
    Int(i64),
    Time(Timestamp),
    Text(String),
}

impl Mark {
    /// A cell's value as a key part; `None` for values that do not order well (floats,
    /// booleans) or do not fit.
    pub fn from_value(value: &Value) -> Option<Mark> {
        match value {
            Value::Int(i) => Some(Mark::Int(*i)),
            Value::UInt(u) => i64::try_from(*u).ok().map(Mark::Int),
            Value::Timestamp(t) => Some(Mark::Time(*t)),
            Value::String(s) => Some(Mark::Text(s.to_string())),
            _ => None,
        }
    }

    fn to_json(&self) -> serde_json::Value {
        match self {
            Mark::Int(i) => json!({ "int": i }),
            Mark::Time(t) => json!({ "time": t.to_rfc3339() }),
            Mark::Text(s) => json!({ "text": s }),
        }
    }

    fn from_json(v: &serde_json::Value) -> Option<Mark> {
        let o = v.as_object()?;
        if let Some(i) = o.get("int") {
            return i.as_i64().map(Mark::Int);
        }
        if let Some(t) = o.get("time") {
            return t.as_str().and_then(Timestamp::parse_rfc3339).map(Mark::Time);
        }
        o.get("text")?.as_str().map(|s| Mark::Text(s.to_owned()))
    }
}

impl fmt::Display for Mark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mark::Int(i) => write!(f, "{i}"),
            Mark::Time(t) => write!(f, "{}", t.to_rfc3339()),
            Mark::Text(s) => write!(f, "{s:?}"),
        }
    }
}

/// A row's key: what the next poll reads after.
#[derive(Clone, Debug, PartialEq)]
pub struct Watermark {
    pub key: Mark,
    pub tiebreak: Option<Mark>,
}

impl fmt::Display for Watermark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.tiebreak {
            Some(t) => write!(f, "({}, {t})", self.key),
            None => write!(f, "{}", self.key),
        }
    }
}

/// Where source `source` keeps its watermark.
pub fn path(data_dir: &Path, source: &str) -> PathBuf {
    data_dir.join("sql").join(format!("{source}.watermark"))
}

/// Why the watermark file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a watermark file (delete it to read the table from the start)")]
    Corrupt { path: PathBuf },
}

/// The watermark saved at `path`; `None` when the source never handed a row over.
pub fn load(path: &Path) -> Result<Option<Watermark>, StateError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    let corrupt = || StateError::Corrupt {
        path: path.to_owned(),
    };
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|_| corrupt())?;
    let key = v.get("key").and_then(Mark::from_json).ok_or_else(corrupt)?;
    let tiebreak = match v.get("tiebreak") {
        None | Some(serde_json::Value::Null) => None,
        Some(t) => Some(Mark::from_json(t).ok_or_else(corrupt)?),
    };
    Ok(Some(Watermark { key, tiebreak }))
}

/// Replaces the file at `path` with `mark`, atomically and durably.
pub fn save(path: &Path, mark: &Watermark) -> Result<(), StateError> {
    let io = |source| StateError::Io {
        path: path.to_owned(),
        source,
    };
    let body = json!({
        "key": mark.key.to_json(),
        "tiebreak": mark.tiebreak.as_ref().map(Mark::to_json),
    });
    backplane_connector::persist::write_atomic(path, format!("{body}\n").as_bytes()).map_err(io)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_saved_watermark_loads_back_and_a_missing_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path(), "lims");
        assert_eq!(load(&p).unwrap(), None);
        for mark in [
            Watermark {
                key: Mark::Int(-5),
                tiebreak: None,
            },
            Watermark {
                key: Mark::Time(Timestamp::from_unix_nanos(1_700_000_000_123_456_000)),
                tiebreak: Some(Mark::Text("a\"b".into())),
            },
        ] {
            save(&p, &mark).unwrap();
            assert_eq!(load(&p).unwrap(), Some(mark));
        }
        assert!(!p.with_extension("watermark.tmp").exists());
    }

    #[test]
    fn a_damaged_file_is_refused_not_read_as_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path(), "lims");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, "{\"key\":").unwrap();
        assert!(matches!(load(&p), Err(StateError::Corrupt { .. })));
    }
}
