//! `backplane export`: a wide, AI-ready table of one model from the historian.
//!
//! One row per asset (instance of the model) per interval of `every`, starting at `from`;
//! rows ordered by time, then asset path. Columns:
//!
//! | column | content |
//! |---|---|
//! | `time` | start of the interval (RFC 3339, UTC) |
//! | `asset` | the asset path |
//! | `<attribute>` | float attributes: mean of the usable points in the interval; other types: the last usable value at or before the interval's end. With no usable point in the interval, the last usable value before it (held) |
//! | `<attribute>_quality` | the worst quality of the attribute's points in the interval (`good`, `uncertain`, `bad`), or that of the last point before it when the interval has none |
//! | `work_order` … `machine_state` | the asset's context at the end of the interval (that of its latest point) |
//!
//! Column names are unique (pyarrow refuses to read a Parquet file with two columns of one
//! name): an attribute whose columns would repeat `time`, `asset`, a context column or an
//! earlier column is exported as `attribute_<name>` (and `attribute_<name>_quality`).
//!
//! "Usable" is a value with a quality that is not bad (see [`crate::query`]). Attributes are
//! in the order the store first saw them (model order). Rows before an asset's first known
//! value are left out. A context option (`--batch B-77`) keeps the rows whose context
//! matches. The store is opened read-only, so exporting from a running gateway is safe.

use std::collections::{BTreeMap, HashSet};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backplane_config::Plan;
use backplane_model::{Context, ContextField, Quality, Timestamp, Value};

use crate::error::StoreError;
use crate::point::{ContextId, Point, SeriesInfo};
use crate::query::{ContextFilter, Selector, under_prefix};
use crate::sink::historian_stores;
use crate::store::Store;

#[cfg(feature = "parquet")]
mod to_parquet;

/// Intervals in one export at most (rows = intervals × assets).
pub const MAX_INTERVALS: u64 = 100_000_000;

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// Comma-separated values with a header line (RFC 4180 quoting).
    Csv,
    /// Apache Parquet with typed columns (the `parquet` feature, on by default).
    Parquet,
}

/// What `backplane export` was asked for (the binary reads it from the command line).
#[derive(Clone, Debug, PartialEq)]
pub struct ExportOptions {
    /// The historian store directory; when `None`, that of the historian sink of the plan
    /// given to [`run`].
    pub store: Option<PathBuf>,
    /// With a plan: the gateway's data directory, when it is not the configured one
    /// (e.g. `data` for `backplane demo`, which writes to ./data).
    pub data_dir: Option<PathBuf>,
    /// The historian sink to read, when the plan has several.
    pub sink: Option<String>,
    /// Model whose instances become the rows, e.g. Filler.
    pub model: String,
    pub from: Timestamp,
    /// End, exclusive.
    pub to: Timestamp,
    /// Interval of one row.
    pub every: Duration,
    pub format: ExportFormat,
    /// Output file; `-` writes to stdout.
    pub output: PathBuf,
    /// Only assets at or below this path.
    pub asset: Option<String>,
    /// Only rows whose context has this work order.
    pub work_order: Option<String>,
    /// Only rows whose context has this batch.
    pub batch: Option<String>,
    /// Only rows whose context has this lot.
    pub lot: Option<String>,
    /// Only rows whose context has this product.
    pub product: Option<String>,
    /// Draw a progress bar on stderr (when it is a terminal).
    pub progress: bool,
}

/// RFC 3339, `now`, or `now-<duration>` (e.g. `now-8h`).
pub fn parse_time(text: &str) -> Result<Timestamp, String> {
    let text = text.trim();
    if let Some(rest) = text.strip_prefix("now") {
        let now = Timestamp::now();
        if rest.is_empty() {
            return Ok(now);
        }
        if let Some(ago) = rest.strip_prefix('-') {
            let d = backplane_config::parse_duration(ago).map_err(|e| format!("`{text}`: {e}"))?;
            return Ok(now.add_nanos(-i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)));
        }
        return Err(format!(
            "`{text}`: write `now` or `now-<duration>` such as now-8h"
        ));
    }
    Timestamp::parse_rfc3339(text)
        .ok_or_else(|| format!("`{text}` is not an RFC 3339 time such as 2026-11-27T06:00:00Z"))
}

/// A duration longer than zero such as `1s`, `250ms`, `15m`.
pub fn parse_every(text: &str) -> Result<Duration, String> {
    let d = backplane_config::parse_duration(text.trim()).map_err(|e| format!("`{text}`: {e}"))?;
    if d.is_zero() {
        return Err("the interval must be longer than zero".to_owned());
    }
    Ok(d)
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The arguments do not say which store or what to export.
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Nothing of the model is stored.
    #[error("no stored series of model `{model}`{hint}")]
    NoData { model: String, hint: String },
    #[error("writing {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error(
        "this backplane was built without Parquet support (the `parquet` feature, on by default, was turned off); use --format csv"
    )]
    ParquetUnavailable,
    #[error("Parquet: {0}")]
    Parquet(String),
}

/// What an export wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportSummary {
    pub rows: u64,
    pub assets: usize,
    pub columns: Vec<String>,
}

/// What to export, once the store is open.
#[derive(Clone, Debug, PartialEq)]
pub struct TableSpec {
    pub model: String,
    pub from: Timestamp,
    pub to: Timestamp,
    pub every: Duration,
    pub asset: Option<String>,
    pub context: ContextFilter,
}

impl ExportOptions {
    pub fn table(&self) -> TableSpec {
        let mut context = ContextFilter::default();
        for (field, value) in [
            (ContextField::WorkOrder, &self.work_order),
            (ContextField::Batch, &self.batch),
            (ContextField::Lot, &self.lot),
            (ContextField::Product, &self.product),
        ] {
            if let Some(v) = value {
                context = context.with(field, v);
            }
        }
        TableSpec {
            model: self.model.clone(),
            from: self.from,
            to: self.to,
            every: self.every,
            asset: self.asset.clone(),
            context,
        }
    }

    /// The store directory: `store`, or the historian sink of the loaded `plan`
    /// (`--config`; the caller loads it with its full kind registry).
    pub fn store_dir(&self, plan: Option<&Plan>) -> Result<PathBuf, ExportError> {
        if let Some(dir) = &self.store {
            return Ok(dir.clone());
        }
        let plan = plan.ok_or_else(|| ExportError::Usage("pass --config FILE or --store DIR".into()))?;
        let mut stores = historian_stores(plan);
        if let Some(data_dir) = &self.data_dir {
            for (_, dir) in &mut stores {
                if let Ok(relative) = dir.strip_prefix(&plan.gateway.data_dir) {
                    *dir = data_dir.join(relative);
                }
            }
        }
        let names = || {
            stores
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match (&self.sink, stores.as_slice()) {
            (_, []) => Err(ExportError::Usage(
                "the configuration has no historian sink ([[sinks]] kind = \"historian\")".into(),
            )),
            (None, [(_, dir)]) => Ok(dir.clone()),
            (None, _) => Err(ExportError::Usage(format!(
                "the configuration has several historian sinks ({}); choose one with --sink",
                names()
            ))),
            (Some(name), _) => stores
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, d)| d.clone())
                .ok_or_else(|| {
                    ExportError::Usage(format!(
                        "no historian sink `{name}`; the historian sinks are: {}",
                        names()
                    ))
                }),
        }
    }
}

/// Runs an export as `backplane export` does: opens the store read-only, writes the
/// table to `output` with a progress bar on stderr (when it is a terminal).
pub fn run(args: &ExportOptions, plan: Option<&Plan>) -> Result<ExportSummary, ExportError> {
    if args.format == ExportFormat::Parquet && !cfg!(feature = "parquet") {
        return Err(ExportError::ParquetUnavailable);
    }
    let dir = args.store_dir(plan)?;
    let store = Store::open_read_only(&dir)?;
    let spec = args.table();
    let mut progress = Progress::new(args.progress && std::io::stderr().is_terminal());
    let mut report = |done: u64, total: u64, rows: u64| progress.update(done, total, rows);
    let summary = if args.output.as_os_str() == "-" {
        let stdout = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout());
        write_table(
            &store,
            &spec,
            args.format,
            stdout,
            Path::new("stdout"),
            &mut report,
        )?
    } else {
        let file = std::fs::File::create(&args.output).map_err(|source| ExportError::Write {
            path: args.output.clone(),
            source,
        })?;
        write_table(
            &store,
            &spec,
            args.format,
            std::io::BufWriter::with_capacity(1 << 20, file),
            &args.output,
            &mut report,
        )?
    };
    progress.finish(summary.rows);
    Ok(summary)
}

/// A hand-drawn progress bar: `export [#######.............]  35%  12345 rows`.
#[derive(Debug)]
struct Progress {
    enabled: bool,
    last: Option<Instant>,
}

impl Progress {
    fn new(enabled: bool) -> Progress {
        Progress { enabled, last: None }
    }

    fn update(&mut self, done: u64, total: u64, rows: u64) {
        if !self.enabled
            || self
                .last
                .is_some_and(|t| t.elapsed() < Duration::from_millis(100))
                && done < total
        {
            return;
        }
        self.last = Some(Instant::now());
        let width = 30u64;
        let filled = done.saturating_mul(width) / total.max(1);
        let bar: String = (0..width).map(|i| if i < filled { '#' } else { '.' }).collect();
        let percent = done.saturating_mul(100) / total.max(1);
        eprint!("\rexport [{bar}] {percent:>3}%  {rows} rows");
    }

    fn finish(&mut self, rows: u64) {
        if self.enabled {
            eprintln!("\rexport done: {rows} rows{}", " ".repeat(30));
        }
    }
}

/// One cell: the attribute's value and quality for the interval.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cell {
    pub value: Option<Value>,
    pub quality: Option<Quality>,
}

/// One row of the wide table.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub time: Timestamp,
    pub asset: Arc<str>,
    pub cells: Vec<Cell>,
    pub context: Arc<Context>,
}

/// A column of attribute values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub attribute: String,
    /// The stored type (`float`, `uint`, `float[]`, ...); the Parquet column type follows it.
    pub data_type: String,
    /// The table's name for the values: the attribute, unless that name is taken.
    pub name: String,
}

impl Column {
    /// The name of the quality column that follows the values.
    pub fn quality_name(&self) -> String {
        format!("{}_quality", self.name)
    }
}

/// Gives each column a name no other column of the table has (see the module docs).
fn name_columns(columns: &mut [Column]) {
    let mut taken: HashSet<String> = ["time", "asset"]
        .into_iter()
        .map(str::to_owned)
        .chain(ContextField::ALL.iter().map(|f| f.name().to_owned()))
        .collect();
    for c in columns {
        let free = |name: &str, taken: &HashSet<String>| {
            !taken.contains(name) && !taken.contains(&format!("{name}_quality"))
        };
        let mut name = c.attribute.clone();
        if !free(&name, &taken) {
            name = format!("attribute_{}", c.attribute);
            let mut n = 2;
            while !free(&name, &taken) {
                name = format!("attribute_{}_{n}", c.attribute);
                n += 1;
            }
        }
        taken.insert(format!("{name}_quality"));
        taken.insert(name.clone());
        c.name = name;
    }
}

/// Per asset and attribute, what carries from one interval to the next.
#[derive(Clone, Debug, Default)]
struct Held {
    value: Option<Value>,
    quality: Option<Quality>,
}

struct AssetState {
    path: Arc<str>,
    /// Per column: the series holding it (several when its type or unit changed).
    series: Vec<Vec<Arc<SeriesInfo>>>,
    held: Vec<Held>,
    /// Time and context of the asset's latest point so far.
    context: Option<(i64, ContextId)>,
}

/// Builds the table window by window (an hour of intervals at a time), so memory stays
/// flat whatever the range.
pub struct TableBuilder<'s> {
    store: &'s Store,
    spec: TableSpec,
    pub columns: Vec<Column>,
    assets: Vec<AssetState>,
    contexts: Option<HashSet<ContextId>>,
    every: i64,
    window: i64,
    next: i64,
    first: bool,
    pub total_windows: u64,
    pub done_windows: u64,
}

impl std::fmt::Debug for TableBuilder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableBuilder")
            .field("spec", &self.spec)
            .field("columns", &self.columns)
            .finish_non_exhaustive()
    }
}

fn worse(a: Option<Quality>, b: Quality) -> Quality {
    let rank = |q: Quality| match q {
        Quality::Good => 0,
        Quality::Uncertain(_) => 1,
        Quality::Bad(_) => 2,
    };
    match a {
        Some(a) if rank(a) >= rank(b) => a,
        _ => b,
    }
}

impl<'s> TableBuilder<'s> {
    pub fn new(store: &'s Store, spec: TableSpec) -> Result<TableBuilder<'s>, ExportError> {
        let every = i64::try_from(spec.every.as_nanos()).unwrap_or(i64::MAX).max(1);
        let (from, to) = (spec.from.unix_nanos(), spec.to.unix_nanos());
        if to <= from {
            return Err(ExportError::Usage("--to must be after --from".into()));
        }
        let intervals = ((to - from) as u64).div_ceil(every as u64);
        if intervals > MAX_INTERVALS {
            return Err(ExportError::Usage(format!(
                "{intervals} intervals is more than {MAX_INTERVALS}; use a longer --every or a shorter range"
            )));
        }
        let series: Vec<Arc<SeriesInfo>> = store
            .select(&Selector::Model {
                model: spec.model.clone(),
                attribute: None,
            })
            .into_iter()
            .filter(|s| spec.asset.as_deref().is_none_or(|p| under_prefix(&s.asset, p)))
            .collect();
        if series.is_empty() {
            let models: Vec<String> = store.models().into_keys().collect();
            let hint = match (&spec.asset, models.is_empty()) {
                (Some(p), _) => format!(" under `{p}`"),
                (None, true) => " (the store is empty)".to_owned(),
                (None, false) => format!("; stored models: {}", models.join(", ")),
            };
            return Err(ExportError::NoData {
                model: spec.model.clone(),
                hint,
            });
        }
        let mut columns: Vec<Column> = Vec::new();
        for s in &series {
            if !columns.iter().any(|c| c.attribute == *s.attribute) {
                columns.push(Column {
                    attribute: s.attribute.to_string(),
                    data_type: s.data_type.to_string(),
                    name: String::new(),
                });
            }
        }
        name_columns(&mut columns);
        let mut by_asset: BTreeMap<Arc<str>, Vec<Vec<Arc<SeriesInfo>>>> = BTreeMap::new();
        for s in series {
            let per_column = by_asset
                .entry(s.asset.clone())
                .or_insert_with(|| vec![Vec::new(); columns.len()]);
            if let Some(i) = columns.iter().position(|c| c.attribute == *s.attribute) {
                per_column[i].push(s);
            }
        }
        let assets = by_asset
            .into_iter()
            .map(|(path, series)| AssetState {
                path,
                held: vec![Held::default(); series.len()],
                series,
                context: None,
            })
            .collect();
        // About an hour of intervals per window, at least one.
        let per_window = (3_600_000_000_000 / every).max(1);
        let window = every.saturating_mul(per_window);
        let total_windows = ((to - from) as u64).div_ceil(window as u64);
        let contexts = store.matching_contexts(&spec.context);
        Ok(TableBuilder {
            store,
            spec,
            columns,
            assets,
            contexts,
            every,
            window,
            next: from,
            first: true,
            total_windows,
            done_windows: 0,
        })
    }

    /// Column names in order.
    pub fn header(&self) -> Vec<String> {
        let mut names = vec!["time".to_owned(), "asset".to_owned()];
        for c in &self.columns {
            names.push(c.name.clone());
            names.push(c.quality_name());
        }
        names.extend(ContextField::ALL.iter().map(|f| f.name().to_owned()));
        names
    }

    /// The rows of the next window, or `None` when the range is done.
    pub fn next_window(&mut self) -> Result<Option<Vec<Row>>, ExportError> {
        let to = self.spec.to.unix_nanos();
        if self.next >= to {
            return Ok(None);
        }
        let ws = self.next;
        let we = ws.saturating_add(self.window).min(to);
        self.next = we;
        let first = std::mem::replace(&mut self.first, false);
        let intervals = usize::try_from(((we - ws) as u64).div_ceil(self.every as u64)).unwrap_or(0);
        let mut rows_by_interval: Vec<Vec<Row>> = vec![Vec::new(); intervals];
        for asset in &mut self.assets {
            // Per column: the points of the window, sorted by time.
            let mut columns: Vec<Vec<Point>> = Vec::with_capacity(asset.series.len());
            for (ci, series) in asset.series.iter().enumerate() {
                let mut points = Vec::new();
                for s in series {
                    let scan = self.store.scan(s.id, ws, we, None, first)?;
                    if let Some(p) = scan.prior {
                        let t = p.time.unix_nanos();
                        if asset.context.is_none_or(|(ct, _)| t >= ct) {
                            asset.context = Some((t, p.context));
                        }
                        let held = &mut asset.held[ci];
                        held.quality = Some(p.quality);
                        if let Some(v) = p.usable() {
                            held.value = Some(v.clone());
                        }
                    }
                    points.extend(scan.points);
                }
                points.sort_by_key(|p| p.time);
                columns.push(points);
            }
            let mut cursors = vec![0usize; columns.len()];
            for (i, rows) in rows_by_interval.iter_mut().enumerate() {
                let is = ws + i as i64 * self.every;
                let ie = is.saturating_add(self.every).min(we);
                let mut cells = Vec::with_capacity(columns.len());
                for (ci, points) in columns.iter().enumerate() {
                    let float = self.columns.get(ci).is_some_and(|c| c.data_type == "float");
                    let held = &mut asset.held[ci];
                    let (mut sum, mut n) = (0.0, 0u64);
                    let mut worst: Option<Quality> = None;
                    let mut last_usable: Option<&Value> = None;
                    while let Some(p) = points.get(cursors[ci]).filter(|p| p.time.unix_nanos() < ie) {
                        cursors[ci] += 1;
                        worst = Some(worse(worst, p.quality));
                        let t = p.time.unix_nanos();
                        if asset.context.is_none_or(|(ct, _)| t >= ct) {
                            asset.context = Some((t, p.context));
                        }
                        if let Some(v) = p.usable() {
                            last_usable = Some(v);
                            if let Some(x) = v.as_f64().filter(|x| !x.is_nan()) {
                                sum += x;
                                n += 1;
                            }
                        }
                    }
                    if let Some(v) = last_usable {
                        held.value = Some(v.clone());
                    }
                    let value = if float && n > 0 {
                        Some(Value::Float(sum / n as f64))
                    } else {
                        held.value.clone()
                    };
                    if worst.is_some() {
                        held.quality = worst;
                    }
                    cells.push(Cell {
                        value,
                        quality: held.quality,
                    });
                }
                let Some((_, context)) = asset.context else {
                    continue;
                };
                if self.contexts.as_ref().is_some_and(|set| !set.contains(&context)) {
                    continue;
                }
                if cells.iter().all(|c| c.value.is_none() && c.quality.is_none()) {
                    continue;
                }
                rows.push(Row {
                    time: Timestamp::from_unix_nanos(is),
                    asset: asset.path.clone(),
                    cells,
                    context: self.store.context(context).unwrap_or_default(),
                });
            }
        }
        self.done_windows += 1;
        Ok(Some(rows_by_interval.into_iter().flatten().collect()))
    }
}

/// Writes the whole table to `out`; `progress(done_windows, total_windows, rows)`.
pub fn write_table<W: Write + Send>(
    store: &Store,
    spec: &TableSpec,
    format: ExportFormat,
    out: W,
    path: &Path,
    progress: &mut dyn FnMut(u64, u64, u64),
) -> Result<ExportSummary, ExportError> {
    let mut table = TableBuilder::new(store, spec.clone())?;
    let header = table.header();
    let rows = match format {
        ExportFormat::Csv => write_csv(&mut table, &header, out, path, progress)?,
        ExportFormat::Parquet => write_parquet(&mut table, out, progress)?,
    };
    Ok(ExportSummary {
        rows,
        assets: table.assets.len(),
        columns: header,
    })
}

fn write_csv<W: Write>(
    table: &mut TableBuilder<'_>,
    header: &[String],
    mut out: W,
    path: &Path,
    progress: &mut dyn FnMut(u64, u64, u64),
) -> Result<u64, ExportError> {
    let io = |source| ExportError::Write {
        path: path.to_owned(),
        source,
    };
    let mut line = String::with_capacity(256);
    line.push_str(&header.join(","));
    line.push_str("\r\n");
    out.write_all(line.as_bytes()).map_err(io)?;
    let mut rows = 0u64;
    while let Some(window) = table.next_window()? {
        for row in window {
            line.clear();
            line.push_str(&row.time.to_rfc3339());
            line.push(',');
            csv_field(&mut line, &row.asset);
            for cell in &row.cells {
                line.push(',');
                if let Some(v) = &cell.value {
                    csv_field(&mut line, &value_text(v));
                }
                line.push(',');
                if let Some(q) = cell.quality {
                    line.push_str(q.class());
                }
            }
            for field in ContextField::ALL {
                line.push(',');
                if let Some(v) = row.context.get(field) {
                    csv_field(&mut line, v);
                }
            }
            line.push_str("\r\n");
            out.write_all(line.as_bytes()).map_err(io)?;
            rows += 1;
        }
        progress(table.done_windows, table.total_windows, rows);
    }
    out.flush().map_err(io)?;
    Ok(rows)
}

/// A value as table text: numbers as Rust prints them (shortest exact form), NaN and
/// infinities as `NaN`, `inf`, `-inf`, times in RFC 3339, arrays as JSON.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::Float(x) if x.is_nan() => "NaN".to_owned(),
        Value::Float(x) if x.is_infinite() => if *x > 0.0 { "inf" } else { "-inf" }.to_owned(),
        Value::String(s) => s.to_string(),
        Value::Timestamp(t) => t.to_rfc3339(),
        Value::Array(_) => serde_json::to_string(v).unwrap_or_default(),
        other => other.to_string(),
    }
}

fn csv_field(line: &mut String, text: &str) {
    if text.contains([',', '"', '\n', '\r']) {
        line.push('"');
        line.push_str(&text.replace('"', "\"\""));
        line.push('"');
    } else {
        line.push_str(text);
    }
}

#[cfg(not(feature = "parquet"))]
fn write_parquet<W: Write + Send>(
    _table: &mut TableBuilder<'_>,
    _out: W,
    _progress: &mut dyn FnMut(u64, u64, u64),
) -> Result<u64, ExportError> {
    Err(ExportError::ParquetUnavailable)
}

#[cfg(feature = "parquet")]
use to_parquet::write_parquet;
