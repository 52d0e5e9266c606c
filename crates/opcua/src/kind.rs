//! [`OpcUaKind`], registered as `opcua`: reads the source's settings, checks node ids,
//! builds the source, and offers `backplane browse` an address-space walk and `backplane
//! simulate` the vendor-B dairy server.

use std::net::SocketAddr;

use backplane_config::{AddressError, Table};
use backplane_connector::hooks::{Browser, Options, RunningSimulator, Simulator, SimulatorStart};
use backplane_connector::{ComponentError, Kind, Source, SourceContext, SourceKind};
use futures::FutureExt;

use crate::address::Address;
use crate::browse::{BrowseArgs, OPTIONS};
use crate::config::OpcUaSettings;

/// The kind registered as `opcua`.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpcUaKind;

impl Kind for OpcUaKind {
    type Settings = OpcUaSettings;

    fn describe(&self) -> &'static str {
        "OPC UA servers (subscriptions or polled reads of variables by node id)"
    }

    fn parse(&self, table: &mut Table<'_>) -> Option<OpcUaSettings> {
        crate::config::parse_settings(table)
    }

    fn check_address(&self, settings: &OpcUaSettings, address: &str) -> Result<(), AddressError> {
        settings.check(&Address::parse(address)?)
    }

    /// Polled groups read every period; subscribed values come on change (a silent
    /// subscription is the server's to report, by keep-alives), so they do not age.
    fn read_period(&self, settings: &OpcUaSettings, address: &str) -> Option<std::time::Duration> {
        let group = settings.group_of(&Address::parse(address).ok()?)?;
        (group.acquisition == crate::config::Acquisition::Poll).then_some(group.period)
    }

    fn browser(&self) -> Option<Browser> {
        Some(Browser {
            schemes: &["opc.tcp"],
            local_schemes: &[],
            about: "Browse an OPC UA server's address space",
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
            name: "opcua-dairy",
            about: "Filler line 2 (vendor B) and the pasteurizer, an OPC UA server with Basic256Sha256 \
                    (address space in docs/connectors/opcua.md)",
            default_listen: SocketAddr::from(([127, 0, 0, 1], 4841)),
            start: |start: SimulatorStart| {
                async move {
                    let pki = crate::pki::default_pki_dir(&start.data_dir);
                    let (address, server) = crate::simulator::spawn_dairy_simulator(start.listen, &pki)
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok(RunningSimulator::new(
                        address,
                        format!("opc.tcp://{address}"),
                        format!(
                            "OPC UA dairy simulator (line 2, pasteurizer) on opc.tcp://{address}; its certificate is trusted in {}",
                            pki.display()
                        ),
                        move || server.stop(),
                    ))
                }
                .boxed()
            },
        }]
    }
}

impl SourceKind for OpcUaKind {
    /// Reads its own settings and addresses only: a reload keeps it running when those stay.
    fn reads_asset_tree(&self) -> bool {
        false
    }

    fn build(&self, ctx: &SourceContext<'_, OpcUaSettings>) -> Result<Box<dyn Source>, ComponentError> {
        crate::source::build(ctx)
    }
}
