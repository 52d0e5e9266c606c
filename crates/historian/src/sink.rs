//! Sink kind `historian`: stores every sample and event the pipeline routes.
//!
//! ```toml
//! [[sinks]]
//! name = "history"
//! kind = "historian"
//! path = "history"           # under gateway.data_dir (default "history")
//! partition = "1h"           # time span of one partition file
//! flush_interval = "5m"      # WAL → compressed chunks at least this often
//! flush_points = 200000      # ... or when this many points wait in memory (~14 MB)
//! fsync = "batch"            # or "interval" (then fsync_interval, default "1s")
//! max_age = "90d"            # drop partitions older than this (default: keep)
//! max_bytes = "1GB"          # drop the oldest partitions above this (default 1 GB; "unlimited")
//! ```
//!
//! The kind opens each enabled historian sink's store before the engine starts
//! ([`Kind::prepare`]) and offers it as a service named by the sink, so the API queries by
//! sink name the same [`Store`] the sink writes, and a restarted sink continues on the store
//! already open.
//!
//! Batches waiting in the sink's queue are appended together (one WAL write and one fsync
//! for all of them), so the fsync cost is shared when data arrives fast.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use backplane_config::{ComponentSpec, Plan, Table};
use backplane_connector::kind::settings_of;
use backplane_connector::{Batch, ComponentError, Sink, SinkContext, SinkIo, SinkKind, Topology};
use backplane_connector::{Kind, Services};
use backplane_model::{Context, Event, Timestamp};
use futures::FutureExt;
use futures::future::BoxFuture;
use parking_lot::Mutex;

use crate::error::StoreError;
use crate::point::{ContextId, Point, SeriesId, SeriesSpec, StoredEvent};
use crate::store::{Store, StoreOptions};
use crate::wal::Fsync;

/// Batches appended together at most.
const MAX_GROUP: usize = 256;

/// The parsed `[[sinks]]` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct HistorianSettings {
    /// Relative paths are resolved against the gateway's data directory.
    pub path: PathBuf,
    pub options: StoreOptions,
}

/// The kind registered as `historian`.
#[derive(Debug, Default)]
pub struct HistorianKind {
    /// Every store opened, by directory: two sinks on one directory share a store, and a
    /// restarted engine continues on the store already open.
    by_dir: Mutex<HashMap<PathBuf, Arc<Store>>>,
}

impl HistorianKind {
    pub fn new() -> HistorianKind {
        HistorianKind::default()
    }

    fn open_store(&self, dir: &Path, options: &StoreOptions) -> Result<Arc<Store>, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Io {
            path: dir.to_owned(),
            source: e,
        })?;
        let key = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
        let mut by_dir = self.by_dir.lock();
        let store = match by_dir.get(&key) {
            Some(store) => store.clone(),
            None => {
                let store = Store::open(dir, options.clone())?;
                by_dir.insert(key, store.clone());
                store
            }
        };
        Ok(store)
    }
}

/// Registers a series for every attribute of every asset of `plan`, in plan order (the
/// order the engine's topology numbers tags in).
fn register_plan(store: &Store, plan: &Plan) -> Result<(), StoreError> {
    for asset in &plan.assets {
        let Some(model) = &asset.model else {
            continue;
        };
        for attribute in &model.attributes {
            let data_type = attribute.data_type.to_string();
            store.series_id(&SeriesSpec {
                asset: asset.path.as_str(),
                attribute: &attribute.name,
                model: &model.name,
                data_type: &data_type,
                unit: attribute.unit.as_ref().map(|u| u.symbol()),
            })?;
        }
    }
    Ok(())
}

/// Every historian sink of a plan (enabled or not) with its store directory.
pub fn historian_stores(plan: &Plan) -> Vec<(String, PathBuf)> {
    plan.sinks
        .iter()
        .filter_map(|spec: &ComponentSpec| {
            let settings = settings_of::<HistorianKind>(spec)?;
            Some((spec.name.clone(), plan.gateway.data_dir.join(&settings.path)))
        })
        .collect()
}

pub use backplane_config::parse_bytes;

fn check_duration(table: &Table<'_>, key: &str, d: Duration, min: Duration, max: Duration) -> bool {
    if d < min || d > max {
        table.error(
            key,
            format!("`{key}` must be between {} and {}", show(min), show(max)),
            None,
        );
        return false;
    }
    true
}

fn show(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => format!("{}ms", d.as_millis()),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

impl Kind for HistorianKind {
    type Settings = HistorianSettings;

    fn describe(&self) -> &'static str {
        "embedded historian: compressed history of every sample and event, queried by the API"
    }

    fn parse(&self, table: &mut Table<'_>) -> Option<HistorianSettings> {
        let mut ok = true;
        let path = table.optional_str("path").unwrap_or("history");
        if path.trim().is_empty() {
            table.error(
                "path",
                "`path` is empty",
                Some("a directory name, e.g. \"history\"".into()),
            );
            ok = false;
        }
        let mut options = StoreOptions::default();
        if let Some(d) = table.optional_duration("partition") {
            ok &= check_duration(
                table,
                "partition",
                d,
                Duration::from_secs(60),
                Duration::from_secs(7 * 86_400),
            );
            options.partition = d;
        }
        if let Some(d) = table.optional_duration("flush_interval") {
            ok &= check_duration(
                table,
                "flush_interval",
                d,
                Duration::from_secs(1),
                Duration::from_secs(3600),
            );
            options.flush_interval = d;
        }
        if let Some(n) = table.optional_u64("flush_points") {
            if !(1_000..=100_000_000).contains(&n) {
                table.error(
                    "flush_points",
                    "`flush_points` must be between 1000 and 100000000",
                    None,
                );
                ok = false;
            }
            options.flush_points = usize::try_from(n).unwrap_or(usize::MAX);
        }
        let interval = table.optional_duration("fsync_interval");
        match table.optional_str("fsync") {
            None | Some("batch") => {
                if interval.is_some() {
                    table.error(
                        "fsync_interval",
                        "`fsync_interval` needs `fsync = \"interval\"`",
                        Some(
                            "with `fsync = \"batch\"` every batch is fsynced before it counts as stored"
                                .into(),
                        ),
                    );
                    ok = false;
                }
            }
            Some("interval") => {
                let d = interval.unwrap_or(Duration::from_secs(1));
                ok &= check_duration(
                    table,
                    "fsync_interval",
                    d,
                    Duration::from_millis(10),
                    Duration::from_secs(60),
                );
                options.fsync = Fsync::Interval(d);
            }
            Some(other) => {
                table.error(
                    "fsync",
                    format!("`fsync` must be \"batch\" or \"interval\", not \"{other}\""),
                    Some("\"batch\": nothing stored is lost on power loss; \"interval\": faster on slow disks, a power loss can lose up to fsync_interval".into()),
                );
                ok = false;
            }
        }
        if let Some(d) = table.optional_duration("max_age") {
            ok &= check_duration(
                table,
                "max_age",
                d,
                Duration::from_secs(3600),
                Duration::from_secs(100 * 365 * 86_400),
            );
            options.max_age = Some(d);
        }
        if let Some(item) = table.optional_item("max_bytes") {
            let parsed = match (item.as_i64(), item.as_str()) {
                (Some(n), _) => u64::try_from(n)
                    .map(Some)
                    .map_err(|_| "`max_bytes` is negative".to_owned()),
                (None, Some(text)) => parse_bytes(text),
                _ => Err("`max_bytes` must be a number of bytes or a size such as \"2GB\"".to_owned()),
            };
            match parsed {
                Ok(Some(n)) if n < 1_000_000 => {
                    item.error("`max_bytes` must be at least 1 MB", None);
                    ok = false;
                }
                Ok(n) => options.max_bytes = n,
                Err(message) => {
                    item.error(message, Some("e.g. \"500MB\", \"20GiB\" or \"unlimited\"".into()));
                    ok = false;
                }
            }
        }
        ok.then(|| HistorianSettings {
            path: PathBuf::from(path),
            options,
        })
    }

    /// Opens the store of every enabled historian sink now, so the API can query them
    /// from the first request and a broken store is reported before anything starts.
    /// Every configured tag is registered, so queries know it before its first value.
    /// The sinks write to these same stores.
    fn prepare(
        &self,
        plan: &Plan,
        instances: &[(&str, &HistorianSettings)],
    ) -> Result<Services, ComponentError> {
        let mut services = Services::default();
        for (name, settings) in instances {
            let dir = plan.gateway.data_dir.join(&settings.path);
            let store = self
                .open_store(&dir, &settings.options)
                .map_err(|e| cannot_open(name, e))?;
            register_plan(&store, plan).map_err(|e| component_error(name, e))?;
            services.insert(name, store);
        }
        Ok(services)
    }
}

impl SinkKind for HistorianKind {
    /// Reads its settings, its feed, the topology and its store (prepared, handed on with it): kept running by a reload that
    /// changes neither its entry nor the asset tree.
    fn survives_reload(&self, _settings: &HistorianSettings) -> bool {
        true
    }

    /// Its store, which the API and the OPC UA server read.
    fn offers_services(&self) -> bool {
        true
    }

    fn build(&self, ctx: &SinkContext<'_, HistorianSettings>) -> Result<Box<dyn Sink>, ComponentError> {
        let store = match ctx.services.named::<Store>(ctx.name) {
            Some(store) => store,
            // Not prepared (an engine started without `Registry::prepare`): open it now.
            None => self
                .open_store(&ctx.data_dir.join(&ctx.settings.path), &ctx.settings.options)
                .map_err(|e| cannot_open(ctx.name, e))?,
        };
        Ok(Box::new(HistorianSink {
            name: ctx.name.to_owned(),
            store,
        }))
    }
}

struct HistorianSink {
    name: String,
    store: Arc<Store>,
}

/// Turns engine batches into store records: tag ids into series ids, contexts into ids.
struct Mapper {
    series: Vec<Option<SeriesId>>,
    /// By `Arc` address; the `Arc` is kept so the address cannot be reused meanwhile.
    contexts: HashMap<usize, (Arc<Context>, ContextId)>,
}

impl Mapper {
    /// Registers every tag of the topology, in topology (model) order.
    fn new(store: &Store, topology: &Topology) -> Result<Mapper, StoreError> {
        let mut series = Vec::with_capacity(topology.tags.len());
        for tag in &topology.tags {
            let Some(asset) = topology.assets.get(tag.asset) else {
                series.push(None);
                continue;
            };
            let data_type = tag.attribute.data_type.to_string();
            let spec = SeriesSpec {
                asset: asset.path.as_str(),
                attribute: &tag.attribute.name,
                model: asset.model_name(),
                data_type: &data_type,
                unit: tag.attribute.unit.as_ref().map(|u| u.symbol()),
            };
            series.push(Some(store.series_id(&spec)?));
        }
        Ok(Mapper {
            series,
            contexts: HashMap::new(),
        })
    }

    fn context(&mut self, store: &Store, context: &Arc<Context>) -> Result<ContextId, StoreError> {
        let key = Arc::as_ptr(context) as usize;
        if let Some((_, id)) = self.contexts.get(&key) {
            return Ok(*id);
        }
        let id = store.context_id(context)?;
        if self.contexts.len() >= 4096 {
            self.contexts.clear();
        }
        self.contexts.insert(key, (context.clone(), id));
        Ok(id)
    }

    fn append(&mut self, store: &Store, group: &[Arc<Batch>]) -> Result<(), StoreError> {
        let mut points = Vec::with_capacity(group.iter().map(|b| b.samples.len()).sum());
        let mut events = Vec::new();
        for batch in group {
            for s in &batch.samples {
                let Some(Some(series)) = self.series.get(s.tag.index()).copied() else {
                    continue;
                };
                let context = self.context(store, &s.context)?;
                points.push((
                    series,
                    Point {
                        time: s.gateway_time,
                        source_time: s.source_time,
                        value: s.value.clone(),
                        quality: s.quality,
                        context,
                    },
                ));
            }
            for e in &batch.events {
                events.push(self.event(store, e)?);
            }
        }
        store.append(points, events)
    }

    fn event(&mut self, store: &Store, e: &Event) -> Result<StoredEvent, StoreError> {
        let body = serde_json::to_value(&e.kind).unwrap_or(serde_json::Value::Null);
        let kind = body
            .get("event")
            .and_then(|k| k.as_str())
            .unwrap_or("unknown")
            .to_owned();
        Ok(StoredEvent {
            time: e.time,
            asset: e.asset.as_str().into(),
            kind: kind.into(),
            body: body.to_string().into(),
            context: self.context(store, &e.context)?,
        })
    }
}

/// Runs [`Store::maintain`] every second (or when nudged) off the async threads, and keeps
/// the last error for the sink to report.
struct Maintainer {
    task: tokio::task::JoinHandle<()>,
    nudge: Arc<tokio::sync::Notify>,
    error: Arc<Mutex<Option<String>>>,
}

impl Maintainer {
    fn spawn(store: Arc<Store>, name: String) -> Maintainer {
        let nudge = Arc::new(tokio::sync::Notify::new());
        let error: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
        let task = tokio::spawn({
            let nudge = nudge.clone();
            let error = error.clone();
            async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        () = nudge.notified() => {}
                    }
                    let store = store.clone();
                    match tokio::task::spawn_blocking(move || store.maintain(Timestamp::now())).await {
                        Ok(Ok(report)) => {
                            if report.flushed_points > 0 {
                                tracing::debug!(sink = %name, points = report.flushed_points, "historian: flushed");
                            }
                            *error.lock() = None;
                        }
                        Ok(Err(e)) => {
                            tracing::error!(sink = %name, error = %e, "historian: maintenance failed");
                            *error.lock() = Some(e.to_string());
                        }
                        Err(e) => *error.lock() = Some(format!("maintenance task failed: {e}")),
                    }
                }
            }
        });
        Maintainer { task, nudge, error }
    }
}

impl Drop for Maintainer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The store is local disk: its failures are I/O, retried with backoff.
fn component_error(name: &str, cause: impl std::error::Error + Send + Sync + 'static) -> ComponentError {
    ComponentError::io_because(format!("historian `{name}`: {cause}"), cause)
}

fn cannot_open(name: &str, cause: StoreError) -> ComponentError {
    ComponentError::io_because(
        format!("historian `{name}`: cannot open the store: {cause}"),
        cause,
    )
}

impl Sink for HistorianSink {
    fn run(self: Box<Self>, io: SinkIo) -> BoxFuture<'static, Result<(), ComponentError>> {
        async move {
            let HistorianSink { name, store } = *self;
            let topology = io.topology.clone();
            let mut mapper = {
                let store = store.clone();
                tokio::task::spawn_blocking(move || Mapper::new(&store, &topology))
                    .await
                    .map_err(|e| component_error(&name, e))?
                    .map_err(|e| component_error(&name, e))?
            };
            let maintainer = Maintainer::spawn(store.clone(), name.clone());
            while let Some(first) = io.recv().await {
                let mut group = vec![first];
                while group.len() < MAX_GROUP {
                    match io.recv().now_or_never() {
                        Some(Some(batch)) => group.push(batch),
                        _ => break,
                    }
                }
                let s = store.clone();
                let (m, result) = tokio::task::spawn_blocking(move || {
                    let result = mapper.append(&s, &group);
                    (mapper, result)
                })
                .await
                .map_err(|e| component_error(&name, e))?;
                mapper = m;
                result.map_err(|e| component_error(&name, e))?;
                if store.needs_flush() {
                    maintainer.nudge.notify_one();
                }
                if let Some(e) = maintainer.error.lock().take() {
                    return Err(ComponentError::io(format!("historian `{name}`: {e}")));
                }
            }
            drop(maintainer);
            // A clean stop leaves nothing to replay at the next start.
            tokio::task::spawn_blocking(move || store.flush())
                .await
                .map_err(|e| component_error(&name, e))?
                .map_err(|e| component_error(&name, e))?;
            Ok(())
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use backplane_config::reader::with_table;

    use super::*;

    fn parse(text: &str) -> (Option<HistorianSettings>, Vec<String>) {
        let (settings, diagnostics) = with_table(text, Path::new("test.toml"), |mut t| {
            let settings = HistorianKind::new().parse(&mut t);
            t.finish();
            settings
        });
        let settings = settings.flatten();
        (settings, diagnostics.iter().map(|d| d.to_string()).collect())
    }

    #[test]
    fn defaults_apply_when_only_the_kind_is_given() {
        let (settings, errors) = parse("");
        assert!(errors.is_empty(), "{errors:?}");
        let settings = settings.unwrap();
        assert_eq!(settings.path, PathBuf::from("history"));
        assert_eq!(settings.options, StoreOptions::default());
    }

    #[test]
    fn every_key_is_read_with_units() {
        let (settings, errors) = parse(
            r#"
path = "/var/lib/backplane/history"
partition = "6h"
flush_interval = "30s"
flush_points = 200000
fsync = "interval"
fsync_interval = "250ms"
max_age = "90d"
max_bytes = "20GiB"
"#,
        );
        assert!(errors.is_empty(), "{errors:?}");
        let o = settings.unwrap().options;
        assert_eq!(o.partition, Duration::from_secs(6 * 3600));
        assert_eq!(o.flush_interval, Duration::from_secs(30));
        assert_eq!(o.flush_points, 200_000);
        assert_eq!(o.fsync, Fsync::Interval(Duration::from_millis(250)));
        assert_eq!(o.max_age, Some(Duration::from_secs(90 * 86_400)));
        assert_eq!(o.max_bytes, Some(20 << 30));
    }

    #[test]
    fn wrong_values_are_errors_that_name_the_key() {
        for (text, key) in [
            ("fsync = \"sometimes\"", "fsync"),
            ("fsync_interval = \"1s\"", "fsync_interval"),
            ("partition = \"10s\"", "partition"),
            ("max_bytes = \"lots\"", "max_bytes"),
            ("max_bytes = 1000", "max_bytes"),
            ("flush_points = 5", "flush_points"),
            ("max_age = \"5m\"", "max_age"),
            ("retention = \"90d\"", "retention"),
        ] {
            let (_, errors) = parse(text);
            assert_eq!(errors.len(), 1, "{text}: {errors:?}");
            assert!(errors[0].contains(key), "{text}: {errors:?}");
        }
    }

    #[test]
    fn sizes_take_decimal_and_binary_units() {
        assert_eq!(parse_bytes("500MB"), Ok(Some(500_000_000)));
        assert_eq!(parse_bytes("1.5 GiB"), Ok(Some(1_610_612_736)));
        assert_eq!(parse_bytes("unlimited"), Ok(None));
        assert!(parse_bytes("5 parsecs").is_err());
    }
}
