//! [`EnipKind`], registered as `ethernetip`: reads the source's settings, checks tag
//! paths, builds the source, and offers `backplane check` the packet plan, `backplane
//! browse` the controller's tag list and `backplane simulate` the palletizer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use backplane_config::{AddressError, Plan, Table};
use backplane_connector::hooks::{Browser, Options, RunningSimulator, Simulator, SimulatorStart};
use backplane_connector::{ComponentError, Kind, Source, SourceContext, SourceKind};
use futures::FutureExt;

use crate::address::TagPath;
use crate::config::EnipSettings;
use crate::source::{EnipSource, Poller};

/// The kind registered as `ethernetip`.
#[derive(Debug, Clone, Copy, Default)]
pub struct EnipKind;

impl Kind for EnipKind {
    type Settings = EnipSettings;

    fn describe(&self) -> &'static str {
        "EtherNet/IP controllers with CIP: Allen-Bradley Logix symbolic tags (and compatible devices)"
    }

    fn parse(&self, table: &mut Table<'_>) -> Option<EnipSettings> {
        crate::config::parse_settings(table)
    }

    fn check_address(&self, _settings: &EnipSettings, address: &str) -> Result<(), AddressError> {
        TagPath::parse(address).map(|_| ())
    }

    fn read_period(&self, settings: &EnipSettings, _address: &str) -> Option<Duration> {
        Some(settings.period)
    }

    /// The packets each poll cycle sends, as planned before the tags' types are known.
    fn summarize(&self, plan: &Plan, name: &str, settings: &EnipSettings) -> Vec<String> {
        let addresses: Vec<Arc<str>> = plan
            .assets
            .iter()
            .flat_map(|a| a.bindings.iter())
            .filter(|b| *b.source == *name)
            .map(|b| Arc::<str>::from(&*b.address))
            .collect::<std::collections::BTreeSet<Arc<str>>>()
            .into_iter()
            .collect();
        match Poller::new(name, Arc::new(settings.clone()), &addresses) {
            Ok(p) => {
                let packets = p.planned();
                vec![format!(
                    "ethernetip source `{name}`: {} tags in {packets} packet{} per cycle, every {:?}, at a connection size of {} bytes (4-byte elements assumed until the types are read)",
                    addresses.len(),
                    if packets == 1 { "" } else { "s" },
                    settings.period,
                    settings.connection_size
                )]
            }
            Err(e) => vec![e],
        }
    }

    fn browser(&self) -> Option<Browser> {
        Some(Browser {
            schemes: &["enip", "ethernetip"],
            local_schemes: &[],
            about: "List an EtherNet/IP controller's tags",
            options: crate::browse::OPTIONS,
            run: |url, options: Options| async move { crate::browse::browse(&url, &options).await }.boxed(),
        })
    }

    fn simulators(&self) -> Vec<Simulator> {
        vec![Simulator {
            name: "enip-palletizer",
            about: "Palletizer at the end of the packaging area, EtherNet/IP with Logix tags (tag list in docs/connectors/ethernetip.md)",
            default_listen: SocketAddr::from(([127, 0, 0, 1], 44818)),
            start: |start: SimulatorStart| {
                async move {
                    let (address, task) =
                        crate::simulator::spawn_palletizer(start.listen)
                            .await
                            .map_err(|e| {
                                format!("cannot start the EtherNet/IP palletizer on {}: {e}", start.listen)
                            })?;
                    Ok(RunningSimulator::new(
                        address,
                        format!("enip://{address}"),
                        format!("EtherNet/IP palletizer simulator listening on enip://{address}"),
                        move || task.abort(),
                    ))
                }
                .boxed()
            },
        }]
    }
}

impl SourceKind for EnipKind {
    /// Reads its own settings and addresses only: a reload keeps it running when those stay.
    fn reads_asset_tree(&self) -> bool {
        false
    }

    fn build(&self, ctx: &SourceContext<'_, EnipSettings>) -> Result<Box<dyn Source>, ComponentError> {
        let poller = Poller::new(ctx.name, Arc::new(ctx.settings.clone()), ctx.addresses)
            .map_err(|e| ComponentError::config(format!("ethernetip source `{}`: {e}", ctx.name)))?;
        Ok(Box::new(EnipSource { poller }))
    }
}
