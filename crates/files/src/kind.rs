//! [`FilesKind`], registered as `files`: reads the source's settings, checks addresses,
//! builds the source, and offers `backplane check` a summary and `backplane simulate` the
//! dairy's milk reception lab analyser.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use backplane_config::{AddressError, Plan, Table};
use backplane_connector::hooks::{RunningSimulator, Simulator, SimulatorStart};
use backplane_connector::{ComponentError, Kind, Source, SourceContext, SourceKind};
use backplane_model::ScalarType;
use futures::FutureExt;

use crate::address::Address;
use crate::config::{FilesSettings, Format};
use crate::source::FilesSource;

/// The kind registered as `files`.
#[derive(Debug, Clone, Copy, Default)]
pub struct FilesKind;

impl Kind for FilesKind {
    type Settings = FilesSettings;

    fn describe(&self) -> &'static str {
        "Drop folder: CSV and JSON files from instruments, ingested whole, then moved to done/ (or quarantine/ with the reason)"
    }

    fn parse(&self, table: &mut Table<'_>) -> Option<FilesSettings> {
        crate::config::parse_settings(table)
    }

    fn check_address(&self, _settings: &FilesSettings, address: &str) -> Result<(), AddressError> {
        Address::parse(address).map(|_| ())
    }

    fn reads_integers(&self, _settings: &FilesSettings, address: &str) -> bool {
        Address::parse(address).is_ok_and(|a| matches!(a.ty, ScalarType::Int | ScalarType::UInt))
    }

    fn summarize(&self, plan: &Plan, name: &str, settings: &FilesSettings) -> Vec<String> {
        let fields = plan
            .assets
            .iter()
            .flat_map(|a| a.bindings.iter())
            .filter(|b| *b.source == *name)
            .count();
        let format = match settings.layout.format {
            Format::Csv => "CSV",
            Format::Json => "JSON",
            Format::Ndjson => "NDJSON",
        };
        let time = match &settings.layout.time {
            Some((column, parser)) => format!(
                "time from `{column}` ({}, zone {})",
                parser.format,
                parser.zone.iana_name().unwrap_or("fixed")
            ),
            None => "time = the file's modification time".to_owned(),
        };
        vec![format!(
            "files source `{name}`: {format} files from {} ({} relative to the data directory), {fields} bindings, {time}, scanned every {:?}, read once unchanged for {:?}",
            settings.path.display(),
            if settings.path.is_absolute() {
                "not"
            } else {
                "resolved"
            },
            settings.period,
            settings.settle,
        )]
    }

    fn simulators(&self) -> Vec<Simulator> {
        vec![Simulator {
            name: "files-lab",
            about: "Milk reception lab analyser: drops a CSV (fat, protein, somatic cells per silo) into <data_dir>/lab-inbox every 30 s",
            // A drop folder listens nowhere; the address is unused.
            default_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            start: |start: SimulatorStart| {
                async move {
                    let inbox = start.data_dir.join(crate::simulator::LAB_INBOX);
                    let task = crate::simulator::spawn_lab_analyser(inbox.clone())
                        .map_err(|e| format!("cannot start the lab analyser in {}: {e}", inbox.display()))?;
                    Ok(RunningSimulator::new(
                        start.listen,
                        crate::simulator::LAB_INBOX.to_owned(),
                        format!("lab analyser dropping CSV files into {}", inbox.display()),
                        move || task.abort(),
                    ))
                }
                .boxed()
            },
        }]
    }
}

/// `path` resolved against the data directory when relative.
pub fn inbox(path: &Path, data_dir: &Path) -> std::path::PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        data_dir.join(path)
    }
}

impl SourceKind for FilesKind {
    /// Reads its own settings and addresses only: a reload keeps it running when those stay.
    fn reads_asset_tree(&self) -> bool {
        false
    }

    fn build(&self, ctx: &SourceContext<'_, FilesSettings>) -> Result<Box<dyn Source>, ComponentError> {
        let addresses = ctx
            .addresses
            .iter()
            .map(|a| Address::parse(a))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ComponentError::config(format!("files source `{}`: {}", ctx.name, e.message)))?;
        Ok(Box::new(FilesSource {
            name: ctx.name.to_owned(),
            inbox: inbox(&ctx.settings.path, ctx.data_dir),
            state_dir: ctx.data_dir.join("files").join(ctx.name),
            settings: Arc::new(ctx.settings.clone()),
            addresses: addresses.into(),
        }))
    }
}
