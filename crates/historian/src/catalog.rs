//! The catalog: every series and every distinct context the store has seen, with their
//! dense ids, in `catalog.log` (framed records, see [`crate::frame`]).
//!
//! A new entry is written and fsynced before anything that refers to it reaches the WAL,
//! so a record in the WAL never names an id the catalog lost. Entries are never removed:
//! they are small, and an old chunk must always resolve its ids.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use backplane_model::wire::{self, Cursor, Error, put_blob, put_varint};
use backplane_model::{Context, ContextField};

use crate::error::{IoContext, Result, StoreError, corrupt};
use crate::frame;
use crate::point::{ContextId, SeriesId, SeriesInfo, SeriesSpec};

/// Version 02: CRC32C record checksums (01 had CRC-32).
const MAGIC: &[u8; 8] = b"BPHCAT02";
const SERIES: u8 = 1;
const CONTEXT: u8 = 2;

type ContextKey = [Option<Arc<str>>; 7];

fn context_key(c: &Context) -> ContextKey {
    ContextField::ALL.map(|f| c.get(f).cloned())
}

fn series_key(path: &str, model: &str, data_type: &str, unit: Option<&str>) -> String {
    format!("{path}\0{model}\0{data_type}\0{}", unit.unwrap_or(""))
}

#[derive(Debug)]
pub(crate) struct Catalog {
    path: PathBuf,
    file: Option<File>,
    series: Vec<Arc<SeriesInfo>>,
    series_index: HashMap<String, SeriesId>,
    contexts: Vec<Arc<Context>>,
    context_index: HashMap<ContextKey, ContextId>,
}

impl Catalog {
    /// Reads `catalog.log` in `dir`; a writable catalog truncates a torn tail and is
    /// created when missing.
    pub fn open(dir: &Path, writable: bool) -> Result<Catalog> {
        let path = dir.join("catalog.log");
        let mut catalog = Catalog {
            path: path.clone(),
            file: None,
            series: Vec::new(),
            series_index: HashMap::new(),
            contexts: vec![Arc::new(Context::default())],
            context_index: HashMap::from([(context_key(&Context::default()), 0)]),
        };
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(StoreError::Io { path, source: e }),
        };
        let mut valid_end = 0;
        if bytes.len() >= MAGIC.len() {
            frame::check_magic(&path, &bytes, MAGIC, "catalog file")?;
            let (records, end) = frame::scan(&bytes, MAGIC.len());
            for record in records {
                catalog
                    .load(record)
                    .map_err(|m| corrupt(&path, format!("catalog record: {m}")))?;
            }
            valid_end = end;
            if end < bytes.len() {
                tracing::warn!(path = %path.display(), at = end, "catalog: torn tail ignored");
            }
        }
        if writable {
            let mut file = OpenOptions::new()
                .create(true)
                .read(true)
                .write(true)
                .truncate(false)
                .open(&path)
                .at(&path)?;
            if valid_end == 0 {
                file.set_len(0).at(&path)?;
                file.write_all(MAGIC).at(&path)?;
            } else {
                file.set_len(valid_end as u64).at(&path)?;
            }
            file.sync_all().at(&path)?;
            // Appends go to the end; the handle was opened without O_APPEND to truncate.
            drop(file);
            let file = OpenOptions::new().append(true).open(&path).at(&path)?;
            frame::sync_dir(dir)?;
            catalog.file = Some(file);
        }
        Ok(catalog)
    }

    fn load(&mut self, record: &[u8]) -> wire::Result<()> {
        let mut cur = Cursor::new(record);
        let kind = cur.u8()?;
        let id = cur.varint()?;
        match kind {
            SERIES => {
                if id != self.series.len() as u64 {
                    return Err(Error::Invalid("series ids out of sequence"));
                }
                let asset = cur.str()?;
                let attribute = cur.str()?;
                let model = cur.str()?;
                let data_type = cur.str()?;
                let unit = match cur.u8()? {
                    0 => None,
                    _ => Some(cur.str()?),
                };
                self.add_series(SeriesSpec {
                    asset,
                    attribute,
                    model,
                    data_type,
                    unit,
                });
            }
            CONTEXT => {
                if id != self.contexts.len() as u64 {
                    return Err(Error::Invalid("context ids out of sequence"));
                }
                let mut context = Context::default();
                for field in ContextField::ALL {
                    if cur.u8()? != 0 {
                        context.set(field, Some(cur.str()?.into()));
                    }
                }
                self.add_context(context);
            }
            _ => return Err(Error::Invalid("unknown record type")),
        }
        Ok(())
    }

    fn add_series(&mut self, spec: SeriesSpec<'_>) -> SeriesId {
        let id = self.series.len() as SeriesId;
        let path = format!("{}/{}", spec.asset, spec.attribute);
        self.series_index
            .insert(series_key(&path, spec.model, spec.data_type, spec.unit), id);
        self.series.push(Arc::new(SeriesInfo {
            id,
            path: path.into(),
            asset: spec.asset.into(),
            attribute: spec.attribute.into(),
            model: spec.model.into(),
            data_type: spec.data_type.into(),
            unit: spec.unit.map(Into::into),
        }));
        id
    }

    fn add_context(&mut self, context: Context) -> ContextId {
        let id = self.contexts.len() as ContextId;
        self.context_index.insert(context_key(&context), id);
        self.contexts.push(Arc::new(context));
        id
    }

    fn append(&mut self, payload: &[u8]) -> Result<()> {
        let path = self.path.clone();
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| StoreError::ReadOnly { path: path.clone() })?;
        let mut record = Vec::with_capacity(payload.len() + frame::HEADER);
        frame::put(&mut record, payload);
        file.write_all(&record).at(&path)?;
        file.sync_data().at(&path)
    }

    pub fn find_series(&self, spec: &SeriesSpec<'_>) -> Option<SeriesId> {
        let path = format!("{}/{}", spec.asset, spec.attribute);
        self.series_index
            .get(&series_key(&path, spec.model, spec.data_type, spec.unit))
            .copied()
    }

    /// The id of a series, registering (durably) a new one.
    pub fn series_id(&mut self, spec: &SeriesSpec<'_>) -> Result<SeriesId> {
        if let Some(id) = self.find_series(spec) {
            return Ok(id);
        }
        let mut payload = vec![SERIES];
        put_varint(&mut payload, self.series.len() as u64);
        for s in [spec.asset, spec.attribute, spec.model, spec.data_type] {
            put_blob(&mut payload, s.as_bytes());
        }
        match spec.unit {
            Some(u) => {
                payload.push(1);
                put_blob(&mut payload, u.as_bytes());
            }
            None => payload.push(0),
        }
        self.append(&payload)?;
        Ok(self.add_series(*spec))
    }

    pub fn find_context(&self, context: &Context) -> Option<ContextId> {
        self.context_index.get(&context_key(context)).copied()
    }

    /// The id of a context, registering (durably) a new one.
    pub fn context_id(&mut self, context: &Context) -> Result<ContextId> {
        if let Some(id) = self.find_context(context) {
            return Ok(id);
        }
        let mut payload = vec![CONTEXT];
        put_varint(&mut payload, self.contexts.len() as u64);
        for field in ContextField::ALL {
            match context.get(field) {
                Some(v) => {
                    payload.push(1);
                    put_blob(&mut payload, v.as_bytes());
                }
                None => payload.push(0),
            }
        }
        self.append(&payload)?;
        Ok(self.add_context(context.clone()))
    }

    pub fn series(&self) -> &[Arc<SeriesInfo>] {
        &self.series
    }

    pub fn series_info(&self, id: SeriesId) -> Option<&Arc<SeriesInfo>> {
        self.series.get(id as usize)
    }

    pub fn context(&self, id: ContextId) -> Option<&Arc<Context>> {
        self.contexts.get(id as usize)
    }

    pub fn contexts(&self) -> &[Arc<Context>] {
        &self.contexts
    }

    pub fn len_bytes(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec<'a>(attribute: &'a str) -> SeriesSpec<'a> {
        SeriesSpec {
            asset: "acme/plant/line-1/filler",
            attribute,
            model: "Filler",
            data_type: "float",
            unit: Some("degC"),
        }
    }

    #[test]
    fn ids_survive_reopening_and_a_torn_tail_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut c = Catalog::open(dir.path(), true).unwrap();
            assert_eq!(c.series_id(&spec("speed")).unwrap(), 0);
            assert_eq!(c.series_id(&spec("temp")).unwrap(), 1);
            assert_eq!(c.series_id(&spec("speed")).unwrap(), 0);
            let batch = Context {
                batch: Some("B-77".into()),
                ..Context::default()
            };
            assert_eq!(c.context_id(&Context::default()).unwrap(), 0);
            assert_eq!(c.context_id(&batch).unwrap(), 1);
        }
        // A half-written record at the end, as a crash would leave it.
        let path = dir.path().join("catalog.log");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&[40, 0, 0, 0, 1, 2]);
        std::fs::write(&path, &bytes).unwrap();

        let mut c = Catalog::open(dir.path(), true).unwrap();
        assert_eq!(c.series().len(), 2);
        assert_eq!(&*c.series_info(1).unwrap().path, "acme/plant/line-1/filler/temp");
        assert_eq!(c.context(1).unwrap().batch.as_deref(), Some("B-77"));
        assert_eq!(c.series_id(&spec("state")).unwrap(), 2);
        drop(c);
        let c = Catalog::open(dir.path(), false).unwrap();
        assert_eq!(c.series().len(), 3);
    }
}
