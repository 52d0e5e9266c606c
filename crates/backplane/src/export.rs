//! `backplane export` arguments: the command line of the historian's wide-table export
//! ([`backplane_historian::export`]), read into its plain [`ExportOptions`].

use std::path::PathBuf;
use std::time::Duration;

use backplane_historian::export::{parse_every, parse_time};
use backplane_historian::{ExportFormat, ExportOptions};
use backplane_model::Timestamp;

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Comma-separated values with a header line (RFC 4180 quoting).
    Csv,
    /// Apache Parquet with typed columns (the `parquet` feature, on by default).
    Parquet,
}

/// `backplane export` arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct ExportArgs {
    /// Configuration file whose historian sink holds the data.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "store",
        conflicts_with = "store"
    )]
    pub config: Option<PathBuf>,
    /// Historian store directory, instead of --config.
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// With --config: the gateway's data directory, when it is not the configured one
    /// (e.g. `data` for `backplane demo`, which writes to ./data).
    #[arg(long, value_name = "DIR", requires = "config")]
    pub data_dir: Option<PathBuf>,
    /// The historian sink to read, when the configuration has several.
    #[arg(long, value_name = "NAME")]
    pub sink: Option<String>,
    /// Model whose instances become the rows, e.g. Filler.
    #[arg(long)]
    pub model: String,
    /// Start (RFC 3339, e.g. 2026-11-27T06:00:00Z, or now-8h).
    #[arg(long, value_parser = parse_time)]
    pub from: Timestamp,
    /// End, exclusive (RFC 3339 or now).
    #[arg(long, value_parser = parse_time)]
    pub to: Timestamp,
    /// Interval of one row, e.g. 1s, 1m, 15m.
    #[arg(long, default_value = "1s", value_parser = parse_every)]
    pub every: Duration,
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    pub format: Format,
    /// Output file; `-` writes to stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: PathBuf,
    /// Only assets at or below this path.
    #[arg(long, value_name = "PREFIX")]
    pub asset: Option<String>,
    /// Only rows whose context has this work order.
    #[arg(long, value_name = "ID")]
    pub work_order: Option<String>,
    /// Only rows whose context has this batch.
    #[arg(long, value_name = "ID")]
    pub batch: Option<String>,
    /// Only rows whose context has this lot.
    #[arg(long, value_name = "ID")]
    pub lot: Option<String>,
    /// Only rows whose context has this product.
    #[arg(long, value_name = "ID")]
    pub product: Option<String>,
    /// No progress bar on stderr.
    #[arg(long)]
    pub no_progress: bool,
}

impl ExportArgs {
    /// What the historian's export is asked for (`--config` is loaded by the caller).
    pub fn options(&self) -> ExportOptions {
        ExportOptions {
            store: self.store.clone(),
            data_dir: self.data_dir.clone(),
            sink: self.sink.clone(),
            model: self.model.clone(),
            from: self.from,
            to: self.to,
            every: self.every,
            format: match self.format {
                Format::Csv => ExportFormat::Csv,
                Format::Parquet => ExportFormat::Parquet,
            },
            output: self.output.clone(),
            asset: self.asset.clone(),
            work_order: self.work_order.clone(),
            batch: self.batch.clone(),
            lot: self.lot.clone(),
            product: self.product.clone(),
            progress: !self.no_progress,
        }
    }
}
