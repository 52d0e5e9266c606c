//! [`S7Kind`], registered as `s7`: reads the source's settings, checks addresses, builds
//! the source, and offers `backplane check` the request plan, `backplane browse` a DB scan
//! and `backplane simulate` the dairy's silo PLC.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use backplane_config::{AddressError, Plan, Table};
use backplane_connector::hooks::{Browser, Options, RunningSimulator, Simulator, SimulatorStart};
use backplane_connector::{ComponentError, Kind, Source, SourceContext, SourceKind};
use futures::FutureExt;

use crate::address::Address;
use crate::browse::{BrowseArgs, OPTIONS};
use crate::config::S7Settings;
use crate::frame::MAX_ITEMS;
use crate::plan::Limits;
use crate::source::{Poller, S7Source};

/// The kind registered as `s7`.
#[derive(Debug, Clone, Copy, Default)]
pub struct S7Kind;

impl Kind for S7Kind {
    type Settings = S7Settings;

    fn describe(&self) -> &'static str {
        "Siemens S7-300/400/1200/1500 CPUs over S7comm (ISO-on-TCP, PUT/GET): DB, M, I, Q, timers, counters"
    }

    fn parse(&self, table: &mut Table<'_>) -> Option<S7Settings> {
        crate::config::parse_settings(table)
    }

    fn check_address(&self, settings: &S7Settings, address: &str) -> Result<(), AddressError> {
        let parsed = Address::parse(address)?;
        let limits = limits(settings);
        let bytes = parsed.ty.size() as usize;
        if bytes > limits.max_item_bytes() {
            return Err(AddressError {
                message: format!(
                    "`{address}` is {bytes} bytes, more than one read carries at pdu_size = {} ({} bytes)",
                    settings.pdu_size,
                    limits.max_item_bytes()
                ),
                hint: Some("raise pdu_size (up to 960, if the CPU grants it) or shorten the string".into()),
            });
        }
        Ok(())
    }

    fn reads_integers(&self, _settings: &S7Settings, address: &str) -> bool {
        Address::parse(address).is_ok_and(|a| a.ty.is_integer())
    }

    fn read_period(&self, settings: &S7Settings, _address: &str) -> Option<Duration> {
        Some(settings.period)
    }

    /// The read requests each poll cycle sends, at the PDU size asked for.
    fn summarize(&self, plan: &Plan, name: &str, settings: &S7Settings) -> Vec<String> {
        let addresses: Vec<&str> = plan
            .assets
            .iter()
            .flat_map(|a| a.bindings.iter())
            .filter(|b| *b.source == *name)
            .map(|b| &*b.address)
            .collect();
        vec![
            match crate::plan::summarize(name, &addresses, limits(settings), settings.period) {
                Ok(summary) => format!("{summary} (replanned for the PDU size the CPU grants)"),
                Err(e) => e.message,
            },
        ]
    }

    fn browser(&self) -> Option<Browser> {
        Some(Browser {
            schemes: &["s7"],
            local_schemes: &[],
            about: "Read a Siemens S7 DB (or M, I, Q) range and show candidate decodings",
            options: OPTIONS,
            run: |url, options: Options| {
                async move {
                    let args = BrowseArgs::from_options(&url, &options).map_err(|e| e.to_string())?;
                    args.run().await.map_err(|e| e.to_string())
                }
                .boxed()
            },
        })
    }

    fn simulators(&self) -> Vec<Simulator> {
        vec![Simulator {
            name: "s7-silos",
            about: "Milk reception silos' PLC, Siemens S7 (DB1 layout in docs/connectors/s7.md)",
            default_listen: SocketAddr::from(([127, 0, 0, 1], 1102)),
            start: |start: SimulatorStart| {
                async move {
                    let (address, task) = crate::simulator::spawn_silo_simulator(start.listen)
                        .await
                        .map_err(|e| {
                            format!("cannot start the S7 silo simulator on {}: {e}", start.listen)
                        })?;
                    Ok(RunningSimulator::new(
                        address,
                        format!("s7://{address}"),
                        format!("S7 silo PLC simulator listening on s7://{address}"),
                        move || task.abort(),
                    ))
                }
                .boxed()
            },
        }]
    }
}

fn limits(settings: &S7Settings) -> Limits {
    Limits {
        pdu: settings.pdu_size,
        max_gap: settings.max_gap,
        max_items: MAX_ITEMS,
    }
}

impl SourceKind for S7Kind {
    /// Reads its own settings and addresses only: a reload keeps it running when those stay.
    fn reads_asset_tree(&self) -> bool {
        false
    }

    fn build(&self, ctx: &SourceContext<'_, S7Settings>) -> Result<Box<dyn Source>, ComponentError> {
        let poller = Poller::new(ctx.name, Arc::new(ctx.settings.clone()), ctx.addresses)
            .map_err(|e| ComponentError::config(format!("s7 source `{}`: {}", ctx.name, e.message)))?;
        Ok(Box::new(S7Source { poller }))
    }
}
