//! [`ModbusKind`], registered as `modbus`: reads the source's settings, checks addresses,
//! builds the source, and offers `backplane check` the request plan, `backplane browse`
//! a register scan and `backplane simulate` the vendor-A filler.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use backplane_config::{AddressError, Plan, Table};
use backplane_connector::hooks::{Browser, Options, RunningSimulator, Simulator, SimulatorStart};
use backplane_connector::{ComponentError, Kind, Source, SourceContext, SourceKind};
use futures::FutureExt;

use crate::browse::{BrowseArgs, OPTIONS};
use crate::config::ModbusSettings;
use crate::source::{ModbusSource, Poller};

/// The kind registered as `modbus`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ModbusKind;

impl Kind for ModbusKind {
    type Settings = ModbusSettings;

    fn describe(&self) -> &'static str {
        "Modbus TCP, RTU and RTU-over-TCP devices (coils, discrete inputs, input and holding registers)"
    }

    fn parse(&self, table: &mut Table<'_>) -> Option<ModbusSettings> {
        crate::config::parse_settings(table)
    }

    fn check_address(&self, settings: &ModbusSettings, address: &str) -> Result<(), AddressError> {
        let parsed = crate::address::Address::parse(address)?;
        settings.check(&parsed)
    }

    /// Registers served raw (`hr:100`) or decoded as an integer type (`hr:100:i32`).
    fn reads_integers(&self, _settings: &ModbusSettings, address: &str) -> bool {
        crate::address::Address::parse(address).is_ok_and(|a| a.kind.reads_integers())
    }

    /// Every address is read once per period of its poll group.
    fn read_period(&self, settings: &ModbusSettings, address: &str) -> Option<Duration> {
        let address = crate::address::Address::parse(address).ok()?;
        match &address.group {
            None => Some(settings.period),
            Some(group) => settings.groups.get(group).copied(),
        }
    }

    /// The requests each poll cycle sends, per group.
    fn summarize(&self, plan: &Plan, name: &str, settings: &ModbusSettings) -> Vec<String> {
        vec![match crate::plan::plan_summary(plan, name, settings) {
            Ok(summary) => summary.to_string(),
            Err(e) => e.to_string(),
        }]
    }

    fn browser(&self) -> Option<Browser> {
        Some(Browser {
            schemes: &["modbus", "tcp", "rtu", "rtu+tcp"],
            local_schemes: &["rtu"],
            about: "Scan a Modbus device's addresses",
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
            name: "modbus-filler",
            about: "Filler line 1, vendor A, Modbus TCP (register map in docs/connectors/modbus.md)",
            default_listen: SocketAddr::from(([127, 0, 0, 1], 5020)),
            start: |start: SimulatorStart| {
                async move {
                    let (address, task) = crate::simulator::spawn_filler_simulator(start.listen)
                        .await
                        .map_err(|e| {
                            format!(
                                "cannot start the Modbus filler simulator on {}: {e}",
                                start.listen
                            )
                        })?;
                    Ok(RunningSimulator::new(
                        address,
                        format!("tcp://{address}"),
                        format!("Modbus filler simulator (vendor A) listening on tcp://{address}"),
                        move || task.abort(),
                    ))
                }
                .boxed()
            },
        }]
    }
}

impl SourceKind for ModbusKind {
    /// Reads its own settings and addresses only: a reload keeps it running when those stay.
    fn reads_asset_tree(&self) -> bool {
        false
    }

    fn build(&self, ctx: &SourceContext<'_, ModbusSettings>) -> Result<Box<dyn Source>, ComponentError> {
        let poller = Poller::new(ctx.name, Arc::new(ctx.settings.clone()), ctx.addresses)
            .map_err(|e| ComponentError::config_because(format!("modbus source `{}`: {e}", ctx.name), e))?;
        Ok(Box::new(ModbusSource { poller }))
    }
}
